/* object_stream.c: the encrypted object format, AES-256-GCM in the STREAM construction.
 *
 * An object is a 56-byte header followed by segments of 64 KiB plaintext, each sealed with its own
 * nonce (prefix || segment index || last flag) and the whole header as AAD. The writer holds at most
 * one segment; the reader decrypts only the segments a range needs. Layout in docs/formats.md. */
#include "object_stream.h"

#include "aead.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define OBJ_MAGIC "CFRO"
#define OBJ_VERSION 1u
#define OBJ_ALGORITHM 1u
#define OBJ_NONCE_SIZE 12u
#define OBJ_SEGMENT_CT_SIZE ((uint64_t) OBJ_SEGMENT_SIZE + OBJ_TAG_SIZE)
#define OBJ_MAX_SEGMENTS ((uint64_t) UINT32_MAX + 1)

/* Header field offsets. */
enum {
        HDR_MAGIC = 0,
        HDR_VERSION = 4,
        HDR_ALGORITHM = 5,
        HDR_RESERVED = 6,
        HDR_SEGMENT_SIZE = 8,
        HDR_OBJECT_ID = 12,
        HDR_KEK_ID = 28,
        HDR_NONCE_PREFIX = 44,
        HDR_PADDING = 51,
};

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void header_encode(const struct obj_header *h, uint8_t out[OBJ_HEADER_SIZE]) {
        memset(out, 0, OBJ_HEADER_SIZE);
        memcpy(out + HDR_MAGIC, OBJ_MAGIC, 4);
        out[HDR_VERSION] = h->version;
        out[HDR_ALGORITHM] = h->algorithm;
        put_be32(out + HDR_SEGMENT_SIZE, h->segment_size);
        memcpy(out + HDR_OBJECT_ID, h->object_id, OBJ_ID_SIZE);
        memcpy(out + HDR_KEK_ID, h->kek_id, OBJ_ID_SIZE);
        memcpy(out + HDR_NONCE_PREFIX, h->nonce_prefix, OBJ_NONCE_PREFIX_SIZE);
}

int obj_header_parse(const uint8_t *p, size_t n, struct obj_header *ret) {
        struct obj_header h = {};

        if (!p || n < OBJ_HEADER_SIZE)
                return -EBADMSG;
        if (memcmp(p + HDR_MAGIC, OBJ_MAGIC, 4) != 0)
                return -EBADMSG;
        h.version = p[HDR_VERSION];
        h.algorithm = p[HDR_ALGORITHM];
        if (h.version != OBJ_VERSION || h.algorithm != OBJ_ALGORITHM)
                return -EBADMSG;
        if (p[HDR_RESERVED] != 0 || p[HDR_RESERVED + 1] != 0)
                return -EBADMSG;
        h.segment_size = get_be32(p + HDR_SEGMENT_SIZE);
        if (h.segment_size != OBJ_SEGMENT_SIZE) /* the only size of format version 1 */
                return -EBADMSG;
        for (size_t i = HDR_PADDING; i < OBJ_HEADER_SIZE; i++)
                if (p[i] != 0)
                        return -EBADMSG;
        memcpy(h.object_id, p + HDR_OBJECT_ID, OBJ_ID_SIZE);
        memcpy(h.kek_id, p + HDR_KEK_ID, OBJ_ID_SIZE);
        memcpy(h.nonce_prefix, p + HDR_NONCE_PREFIX, OBJ_NONCE_PREFIX_SIZE);
        *ret = h;
        return 0;
}

uint64_t obj_ciphertext_size(uint64_t plaintext_size) {
        /* An empty object is one empty final segment; otherwise the last segment is 1..64 KiB. */
        uint64_t segments = plaintext_size == 0 ? 1 : (plaintext_size - 1) / OBJ_SEGMENT_SIZE + 1;
        return OBJ_HEADER_SIZE + plaintext_size + segments * OBJ_TAG_SIZE;
}

int obj_plaintext_size(uint64_t ciphertext_size, uint64_t *ret) {
        if (ciphertext_size < OBJ_HEADER_SIZE + OBJ_TAG_SIZE)
                return -EBADMSG;
        uint64_t body = ciphertext_size - OBJ_HEADER_SIZE;
        uint64_t segments = (body - 1) / OBJ_SEGMENT_CT_SIZE + 1;
        uint64_t last = body - (segments - 1) * OBJ_SEGMENT_CT_SIZE;
        if (segments > OBJ_MAX_SEGMENTS)
                return -EBADMSG;
        /* A last segment carries a tag and, unless it is the only one, at least one byte. */
        if (last < OBJ_TAG_SIZE || (last == OBJ_TAG_SIZE && segments > 1))
                return -EBADMSG;
        *ret = body - segments * OBJ_TAG_SIZE;
        return 0;
}

static void make_nonce(const uint8_t prefix[OBJ_NONCE_PREFIX_SIZE], uint32_t index, bool last,
                       uint8_t nonce[OBJ_NONCE_SIZE]) {
        memcpy(nonce, prefix, OBJ_NONCE_PREFIX_SIZE);
        put_be32(nonce + OBJ_NONCE_PREFIX_SIZE, index);
        nonce[OBJ_NONCE_SIZE - 1] = last ? 1 : 0;
}

/* ---- writer ---- */

struct obj_writer {
        EVP_CIPHER_CTX *ctx;
        obj_sink_t sink;
        void *userdata;
        uint8_t header[OBJ_HEADER_SIZE];
        uint8_t nonce_prefix[OBJ_NONCE_PREFIX_SIZE];
        uint64_t segments_done;
        size_t filled;       /* plaintext bytes waiting in seg */
        bool header_sent;
        bool finished;
        int error;           /* sticky: once a call failed, the object is unusable */
        uint8_t seg[OBJ_SEGMENT_SIZE + OBJ_TAG_SIZE];
};

void obj_writer_free(struct obj_writer *w) {
        if (!w)
                return;
        EVP_CIPHER_CTX_free(w->ctx);
        OPENSSL_cleanse(w, sizeof *w);
        free(w);
}

int obj_writer_new_with_nonce(const uint8_t dek[OBJ_KEY_SIZE], const uint8_t object_id[OBJ_ID_SIZE],
                              const uint8_t kek_id[OBJ_ID_SIZE], const uint8_t nonce_prefix[7], obj_sink_t sink,
                              void *userdata, struct obj_writer **ret) {
        if (!dek || !object_id || !kek_id || !nonce_prefix || !sink || !ret)
                return -EINVAL;
        _cleanup_(obj_writer_freep) struct obj_writer *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->ctx = aead_ctx_new(dek, true);
        if (!w->ctx)
                return -ENOMEM;
        struct obj_header h = {
                .version = OBJ_VERSION,
                .algorithm = OBJ_ALGORITHM,
                .segment_size = OBJ_SEGMENT_SIZE,
        };
        memcpy(h.object_id, object_id, OBJ_ID_SIZE);
        memcpy(h.kek_id, kek_id, OBJ_ID_SIZE);
        memcpy(h.nonce_prefix, nonce_prefix, OBJ_NONCE_PREFIX_SIZE);
        header_encode(&h, w->header);
        memcpy(w->nonce_prefix, nonce_prefix, OBJ_NONCE_PREFIX_SIZE);
        w->sink = sink;
        w->userdata = userdata;
        *ret = TAKE_PTR(w);
        return 0;
}

int obj_writer_new(const uint8_t dek[OBJ_KEY_SIZE], const uint8_t object_id[OBJ_ID_SIZE], const uint8_t kek_id[OBJ_ID_SIZE],
                   obj_sink_t sink, void *userdata, struct obj_writer **ret) {
        uint8_t prefix[OBJ_NONCE_PREFIX_SIZE];
        /* A fresh DEK per object makes nonce reuse impossible; the random prefix is a second guard. */
        if (RAND_bytes(prefix, sizeof prefix) != 1)
                return -EIO;
        return obj_writer_new_with_nonce(dek, object_id, kek_id, prefix, sink, userdata, ret);
}

static int writer_send_header(struct obj_writer *w) {
        if (w->header_sent)
                return 0;
        int r = w->sink(w->userdata, w->header, OBJ_HEADER_SIZE);
        if (r < 0)
                return r;
        w->header_sent = true;
        return 0;
}

/* Seals n plaintext bytes at in (which may be w->seg) as the next segment and sends it on. */
static int writer_emit(struct obj_writer *w, const uint8_t *in, size_t n, bool last) {
        uint8_t nonce[OBJ_NONCE_SIZE];
        int r;

        if (w->segments_done >= OBJ_MAX_SEGMENTS)
                return -EFBIG;
        r = writer_send_header(w);
        if (r < 0)
                return r;
        make_nonce(w->nonce_prefix, (uint32_t) w->segments_done, last, nonce);
        r = aead_seal(w->ctx, nonce, OBJ_NONCE_SIZE, w->header, OBJ_HEADER_SIZE, in, n, w->seg, w->seg + n);
        if (r < 0)
                return r;
        w->segments_done++;
        return w->sink(w->userdata, w->seg, n + OBJ_TAG_SIZE);
}

int obj_writer_update(struct obj_writer *w, const void *p, size_t n) {
        const uint8_t *in = p;
        int r;

        if (!w || (!p && n > 0))
                return -EINVAL;
        if (w->error)
                return w->error;
        if (w->finished)
                return -EINVAL;
        r = writer_send_header(w);
        if (r < 0)
                return (w->error = r);
        while (n > 0) {
                /* A full segment is sealed only once more data proves it is not the last one. */
                if (w->filled == OBJ_SEGMENT_SIZE) {
                        r = writer_emit(w, w->seg, OBJ_SEGMENT_SIZE, false);
                        if (r < 0)
                                return (w->error = r);
                        w->filled = 0;
                }
                if (w->filled == 0 && n > OBJ_SEGMENT_SIZE) {
                        /* Fast path: seal straight from the caller's buffer, no copy. */
                        r = writer_emit(w, in, OBJ_SEGMENT_SIZE, false);
                        if (r < 0)
                                return (w->error = r);
                        in += OBJ_SEGMENT_SIZE;
                        n -= OBJ_SEGMENT_SIZE;
                        continue;
                }
                size_t take = MIN(n, (size_t) OBJ_SEGMENT_SIZE - w->filled);
                memcpy(w->seg + w->filled, in, take);
                w->filled += take;
                in += take;
                n -= take;
        }
        return 0;
}

int obj_writer_final(struct obj_writer *w) {
        if (!w)
                return -EINVAL;
        if (w->error)
                return w->error;
        if (w->finished)
                return -EINVAL;
        int r = writer_emit(w, w->seg, w->filled, true);
        OPENSSL_cleanse(w->seg, sizeof w->seg);
        w->filled = 0;
        if (r < 0)
                return (w->error = r);
        w->finished = true;
        return 0;
}

/* ---- reader ---- */

struct obj_reader {
        EVP_CIPHER_CTX *ctx;
        obj_read_at_t read_at;
        void *read_userdata;
        struct obj_header header;
        uint8_t header_raw[OBJ_HEADER_SIZE];
        uint64_t ciphertext_size;
        uint64_t plaintext_size;
        uint64_t segments;
        int64_t cached;      /* index of the authenticated plaintext segment held in seg, or -1 */
        size_t cached_len;
        uint8_t seg[OBJ_SEGMENT_SIZE + OBJ_TAG_SIZE];
};

void obj_reader_free(struct obj_reader *r) {
        if (!r)
                return;
        EVP_CIPHER_CTX_free(r->ctx);
        OPENSSL_cleanse(r, sizeof *r);
        free(r);
}

/* Reads exactly n bytes at off; a short object is a damaged object. */
static int reader_fetch(struct obj_reader *r, uint8_t *p, size_t n, uint64_t off) {
        while (n > 0) {
                int k = r->read_at(r->read_userdata, p, n, off);
                if (k < 0)
                        return k;
                if (k == 0)
                        return -EBADMSG;
                if ((size_t) k > n)
                        return -EIO;
                p += k;
                n -= (size_t) k;
                off += (uint64_t) k;
        }
        return 0;
}

/* Brings segment idx, authenticated and decrypted, into r->seg. */
static int reader_load(struct obj_reader *r, uint64_t idx) {
        uint8_t nonce[OBJ_NONCE_SIZE];
        int k;

        if (r->cached == (int64_t) idx)
                return 0;
        r->cached = -1;
        bool last = idx == r->segments - 1;
        size_t len = last ? (size_t) (r->plaintext_size - idx * OBJ_SEGMENT_SIZE) : OBJ_SEGMENT_SIZE;
        k = reader_fetch(r, r->seg, len + OBJ_TAG_SIZE, OBJ_HEADER_SIZE + idx * OBJ_SEGMENT_CT_SIZE);
        if (k < 0)
                return k;
        make_nonce(r->header.nonce_prefix, (uint32_t) idx, last, nonce);
        /* In place; aead_open wipes the buffer when the tag does not match, so nothing leaks. */
        k = aead_open(r->ctx, nonce, OBJ_NONCE_SIZE, r->header_raw, OBJ_HEADER_SIZE, r->seg, len, r->seg, r->seg + len);
        if (k < 0)
                return k;
        r->cached = (int64_t) idx;
        r->cached_len = len;
        return 0;
}

int obj_reader_new(const uint8_t dek[OBJ_KEY_SIZE], uint64_t ciphertext_size, obj_read_at_t read_at, void *read_userdata,
                   struct obj_reader **ret) {
        int k;

        if (!dek || !read_at || !ret)
                return -EINVAL;
        _cleanup_(obj_reader_freep) struct obj_reader *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->read_at = read_at;
        r->read_userdata = read_userdata;
        r->cached = -1;
        r->ciphertext_size = ciphertext_size;
        k = obj_plaintext_size(ciphertext_size, &r->plaintext_size);
        if (k < 0)
                return k;
        r->segments = r->plaintext_size == 0 ? 1 : (r->plaintext_size - 1) / OBJ_SEGMENT_SIZE + 1;
        r->ctx = aead_ctx_new(dek, false);
        if (!r->ctx)
                return -ENOMEM;
        k = reader_fetch(r, r->header_raw, OBJ_HEADER_SIZE, 0);
        if (k < 0)
                return k;
        k = obj_header_parse(r->header_raw, OBJ_HEADER_SIZE, &r->header);
        if (k < 0)
                return k;
        /* Authenticate the last segment now: it proves the header, the key and the length, so a
         * truncated or foreign object fails at open, and obj_reader_header() is trustworthy. */
        k = reader_load(r, r->segments - 1);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

const struct obj_header *obj_reader_header(const struct obj_reader *r) {
        return &r->header;
}

uint64_t obj_reader_plaintext_size(const struct obj_reader *r) {
        return r->plaintext_size;
}

int obj_reader_read(struct obj_reader *r, uint64_t offset, uint64_t length, obj_sink_t sink, void *userdata) {
        int k;

        if (!r || !sink)
                return -EINVAL;
        if (offset > r->plaintext_size || length > r->plaintext_size - offset)
                return -EINVAL;
        while (length > 0) {
                uint64_t idx = offset / OBJ_SEGMENT_SIZE;
                size_t in_seg = (size_t) (offset % OBJ_SEGMENT_SIZE);
                k = reader_load(r, idx);
                if (k < 0)
                        return k;
                size_t n = (size_t) MIN((uint64_t) (r->cached_len - in_seg), length);
                k = sink(userdata, r->seg + in_seg, n);
                if (k < 0)
                        return k;
                offset += n;
                length -= n;
        }
        return 0;
}
