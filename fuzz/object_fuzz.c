/* object_fuzz.c: fuzz target for the encrypted object reader (obj_reader_new / obj_reader_read)
 * and obj_header_parse, on arbitrary ciphertext under a fixed key.
 * Properties: an object either fails with an error or yields plaintext; a range read gives the
 * same bytes as the whole read; and what decrypts, encrypted again with its own header, gives
 * back the input byte for byte (one ciphertext per plaintext, header and nonce prefix). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto/object_stream.h"
#include "fuzz.h"

int fuzz_verdict;

/* The key the corpus objects were sealed with (fuzz/make_corpus.py): 32 bytes 0xa0..0xbf. */
static const uint8_t fuzz_dek[OBJ_KEY_SIZE] = {
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
        0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
};

struct input {
        const uint8_t *p;
        size_t n;
};

static int read_at(void *ud, uint8_t *p, size_t n, uint64_t off) {
        const struct input *in = ud;
        if (off >= in->n)
                return 0;
        size_t k = MIN(n, in->n - (size_t) off);
        k = MIN(k, (size_t) 4096 + 3); /* short reads, as a file or socket may give */
        memcpy(p, in->p + off, k);
        return (int) k;
}

static int to_buf(void *ud, const uint8_t *p, size_t n) {
        return buf_append(ud, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(obj_reader_freep) struct obj_reader *r = NULL;
        _cleanup_(obj_writer_freep) struct obj_writer *w = NULL;
        _cleanup_buf_ struct buf plain, part, again;
        struct input in = { data, size };
        struct obj_header h;
        uint64_t ps;
        int k, hk;

        fuzz_verdict = 0;
        buf_init(&plain, FUZZ_MAX_INPUT);
        buf_init(&part, FUZZ_MAX_INPUT);
        buf_init(&again, FUZZ_MAX_INPUT + 1);

        hk = obj_header_parse(data, size, &h);
        if (hk < 0 && hk != -EBADMSG)
                abort();
        k = obj_reader_new(fuzz_dek, size, read_at, &in, &r);
        if (k < 0) {
                if (k != -EBADMSG)
                        abort();
                return 0;
        }
        /* an object that opened has a well-formed header and a consistent size */
        if (hk < 0 || memcmp(obj_reader_header(r), &h, sizeof h) != 0)
                abort();
        if (obj_plaintext_size(size, &ps) < 0 || ps != obj_reader_plaintext_size(r) || obj_ciphertext_size(ps) != size)
                abort();
        k = obj_reader_read(r, 0, ps, to_buf, &plain);
        if (k < 0) {
                if (k != -EBADMSG)
                        abort();
                return 0; /* a damaged middle segment: refused, with nothing emitted past it */
        }
        fuzz_verdict = 1;
        if (plain.len != ps)
                abort();
        /* a range in the middle, and one past the end */
        uint64_t off = ps / 3, len = ps / 2;
        if (obj_reader_read(r, off, len, to_buf, &part) < 0 || part.len != len ||
            (len && memcmp(part.data, plain.data + off, len) != 0))
                abort();
        if (obj_reader_read(r, ps, 1, to_buf, &part) != -EINVAL)
                abort();
        /* encrypting the plaintext again under the same header reproduces the input */
        if (obj_writer_new_with_nonce(fuzz_dek, h.object_id, h.kek_id, h.nonce_prefix, to_buf, &again, &w) < 0 ||
            obj_writer_update(w, plain.data, plain.len) < 0 || obj_writer_final(w) < 0)
                abort();
        if (again.len != size || memcmp(again.data, data, size) != 0)
                abort();
        buf_free_secure(&plain);
        buf_free_secure(&part);
        return 0;
}
