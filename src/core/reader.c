/* reader.c: a document's way out: streaming, random-access decryption of its object, with
 * read-ahead on a second thread for long sequential reads. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob.h"
#include "crypto/keyring.h"
#include "crypto/object_stream.h"
#include "hex.h"
#include "log.h"
#include "prefetch.h"
#include "vault_internal.h"

struct vault_reader {
        struct vault *v;
        struct blob_reader *br;
        struct obj_reader *or;
        uint64_t size;
        uint64_t seg_index;
        size_t seg_len;
        bool seg_valid;
        struct prefetch *pf; /* sequential read-ahead, when started */
        uint8_t seg[OBJ_SEGMENT_SIZE];
};

static int reader_read_at(void *ud, uint8_t *p, size_t n, uint64_t off) {
        struct vault_reader *r = ud;
        /* obj_read_at_t answers like pread (a count); the blob reads all n bytes or fails */
        if (n > INT32_MAX)
                return -EINVAL;
        int k = r->v->blob->ops->reader_pread(r->br, p, n, off);
        return k < 0 ? k : (int) n;
}

static int reader_sink(void *ud, const uint8_t *p, size_t n) {
        struct vault_reader *r = ud;
        if (r->seg_len + n > sizeof r->seg)
                return -EBADMSG;
        memcpy(r->seg + r->seg_len, p, n);
        r->seg_len += n;
        return 0;
}

void vault_reader_free(struct vault_reader *r) {
        if (!r)
                return;
        prefetch_free(r->pf);
        obj_reader_free(r->or);
        if (r->br)
                r->v->blob->ops->reader_close(r->br);
        sodium_memzero(r->seg, sizeof r->seg);
        free(r);
}

int vault_document_open(struct vault *v, const struct vault_actor *a, const char *id, const char *request_id,
                        struct store_document *ret_doc, struct vault_reader **ret) {
        return vault_document_open_as(v, a, id, request_id, "document.read", ret_doc, ret);
}

int vault_document_open_as(struct vault *v, const struct vault_actor *a, const char *id, const char *request_id,
                           const char *action, struct store_document *ret_doc, struct vault_reader **ret) {
        struct store_document d;
        uint8_t raw[16], dek[KEYRING_KEY_SIZE];
        uint64_t csize = 0;
        int r;

        r = vault_document_get(v, a, id, &d);
        if (r < 0)
                return r;
        if (hex_decode(d.id, raw, sizeof raw) < 0)
                return -EBADMSG;
        _cleanup_(vault_reader_freep) struct vault_reader *rd = calloc(1, sizeof *rd);
        if (!rd)
                return -ENOMEM;
        rd->v = v;
        r = v->blob->ops->reader_open(v->blob, d.id, &rd->br, &csize);
        if (r < 0) {
                log_error("document %s: object missing or unreadable: %s", d.id, strerror(-r));
                return r == -ENOENT ? -EBADMSG : r;
        }
        r = keyring_dek_get(v->keyring, raw, dek);
        if (r < 0) {
                log_error("document %s: key unavailable: %s", d.id, strerror(-r));
                return r == -ENOENT ? -EBADMSG : r;
        }
        r = obj_reader_new(dek, csize, reader_read_at, rd, &rd->or);
        sodium_memzero(dek, sizeof dek);
        if (r < 0) {
                log_error("document %s: object header invalid: %s", d.id, strerror(-r));
                return r;
        }
        const struct obj_header *h = obj_reader_header(rd->or);
        if (memcmp(h->object_id, raw, sizeof raw) != 0 || obj_reader_plaintext_size(rd->or) != d.size) {
                log_error("document %s: object does not belong to this document", d.id);
                return -EBADMSG;
        }
        rd->size = d.size;
        r = vault_record(v, a->org_id, a->actor_id, action, d.id, d.sha256, request_id, NULL);
        if (r < 0)
                return r;
        *ret_doc = d;
        *ret = TAKE_PTR(rd);
        return 0;
}

struct fill_buf {
        uint8_t *p;
        size_t len;
};

static int fill_sink(void *ud, const uint8_t *p, size_t n) {
        struct fill_buf *f = ud;
        if (f->len + n > PREFETCH_SEGMENT_MAX)
                return -EBADMSG;
        memcpy(f->p + f->len, p, n);
        f->len += n;
        return 0;
}

/* Runs on the prefetch thread, which alone uses r->or while it lives. */
static int reader_fill(void *ud, uint64_t seg, uint8_t *buf, size_t *ret_len) {
        struct vault_reader *r = ud;
        uint64_t start = seg * OBJ_SEGMENT_SIZE;
        uint64_t len = MIN((uint64_t) OBJ_SEGMENT_SIZE, r->size - start);
        struct fill_buf f = { .p = buf };
        int k = obj_reader_read(r->or, start, len, fill_sink, &f);
        if (k < 0)
                return k;
        if (f.len != len)
                return -EBADMSG;
        *ret_len = f.len;
        return 0;
}

int vault_reader_prefetch(struct vault_reader *r, uint64_t off, uint64_t len) {
        if (r->pf || len == 0 || off >= r->size)
                return 0;
        uint64_t first = off / OBJ_SEGMENT_SIZE;
        uint64_t end = (MIN(off + len, r->size) - 1) / OBJ_SEGMENT_SIZE + 1;
        return prefetch_new(first, end, reader_fill, r, &r->pf);
}

int vault_reader_read(struct vault_reader *r, uint64_t off, uint8_t *buf, size_t n, size_t *ret_n) {
        if (off >= r->size) {
                *ret_n = 0;
                return 0;
        }
        uint64_t seg = off / OBJ_SEGMENT_SIZE;
        if (r->pf) {
                const uint8_t *data;
                size_t len;
                int k = prefetch_get(r->pf, seg, &data, &len);
                if (k == 0) {
                        size_t in_seg = (size_t) (off - seg * OBJ_SEGMENT_SIZE);
                        size_t take = MIN(n, len - in_seg);
                        memcpy(buf, data + in_seg, take);
                        *ret_n = take;
                        return 0;
                }
                if (k != -ESPIPE)
                        return k;
                /* not sequential after all: read directly from now on */
                prefetch_free(TAKE_PTR(r->pf));
        }
        if (!r->seg_valid || r->seg_index != seg) {
                uint64_t start = seg * OBJ_SEGMENT_SIZE;
                uint64_t len = MIN((uint64_t) OBJ_SEGMENT_SIZE, r->size - start);
                r->seg_valid = false;
                r->seg_len = 0;
                int k = obj_reader_read(r->or, start, len, reader_sink, r);
                if (k < 0)
                        return k;
                if (r->seg_len != len)
                        return -EBADMSG;
                r->seg_index = seg;
                r->seg_valid = true;
        }
        size_t in_seg = (size_t) (off - seg * OBJ_SEGMENT_SIZE);
        size_t take = MIN(n, r->seg_len - in_seg);
        memcpy(buf, r->seg + in_seg, take);
        *ret_n = take;
        return 0;
}
