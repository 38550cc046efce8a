/* zipw.c: streaming ZIP writer (stored entries, data descriptor and ZIP64 for the last one).
 * Layout per APPNOTE.TXT 6.3: local headers and data in order, the central directory, then
 * (ZIP64) the end of central directory record and locator, then the end of central directory. */
#include "zipw.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_DESCRIPTOR 0x08074b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define FLAG_DESCRIPTOR 0x0008u
#define FLAG_UTF8 0x0800u
#define DOS_DATE_1980 0x0021u /* 1980-01-01: fixed, so an archive of the same parts is the same bytes */
#define U32_MAX_FIELD 0xffffffffu

struct zipw_entry {
        char name[ZIPW_NAME_MAX + 1];
        uint8_t *data; /* memory entries */
        uint64_t size;
        uint32_t crc;
        uint64_t offset; /* of its local header */
        bool stream;
};

struct zipw {
        struct zipw_entry e[ZIPW_MAX_ENTRIES];
        size_t n;
        bool has_stream, zip64;
        zipw_read_fn fn;
        void *ud;
        /* reading out */
        struct buf head; /* everything before the stream's data */
        uint64_t pos, head_len, stream_start, stream_done;
        uint32_t stream_crc;
        struct buf tail; /* descriptor, central directory and end records, made after the stream */
        bool tail_made;
        uint64_t total;
};

static uint32_t crc_table[256];
static bool crc_ready;

uint32_t zipw_crc32(uint32_t crc, const void *p, size_t n) {
        if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE)) {
                for (uint32_t i = 0; i < 256; i++) {
                        uint32_t c = i;
                        for (int k = 0; k < 8; k++)
                                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
                        crc_table[i] = c;
                }
                __atomic_store_n(&crc_ready, true, __ATOMIC_RELEASE);
        }
        const uint8_t *b = p;
        crc = ~crc;
        for (size_t i = 0; i < n; i++)
                crc = crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
        return ~crc;
}

int zipw_new(struct zipw **ret) {
        struct zipw *z = calloc(1, sizeof *z);
        if (!z)
                return -ENOMEM;
        buf_init(&z->head, 0);
        buf_init(&z->tail, 0);
        *ret = z;
        return 0;
}

void zipw_free(struct zipw *z) {
        if (!z)
                return;
        for (size_t i = 0; i < z->n; i++)
                free(z->e[i].data);
        buf_free(&z->head);
        buf_free(&z->tail);
        free(z);
}

static int add(struct zipw *z, const char *name, struct zipw_entry **ret) {
        size_t l = name ? strlen(name) : 0;
        if (!z || l == 0 || l > ZIPW_NAME_MAX)
                return -EINVAL;
        if (z->has_stream)
                return -EBUSY;
        if (z->n >= ZIPW_MAX_ENTRIES)
                return -E2BIG;
        for (size_t i = 0; i < z->n; i++)
                if (strcmp(z->e[i].name, name) == 0)
                        return -EEXIST;
        struct zipw_entry *e = &z->e[z->n];
        memset(e, 0, sizeof *e);
        memcpy(e->name, name, l + 1);
        *ret = e;
        return 0;
}

int zipw_add_mem(struct zipw *z, const char *name, const void *p, size_t n) {
        struct zipw_entry *e;
        int r = add(z, name, &e);
        if (r < 0)
                return r;
        if (n >= U32_MAX_FIELD)
                return -EFBIG; /* memory entries stay small */
        e->data = malloc(n ? n : 1);
        if (!e->data)
                return -ENOMEM;
        if (n)
                memcpy(e->data, p, n);
        e->size = n;
        e->crc = zipw_crc32(0, p, n);
        z->n++;
        return 0;
}

int zipw_add_stream(struct zipw *z, const char *name, uint64_t size, zipw_read_fn fn, void *ud) {
        struct zipw_entry *e;
        if (!fn)
                return -EINVAL;
        int r = add(z, name, &e);
        if (r < 0)
                return r;
        e->size = size;
        e->stream = true;
        z->has_stream = true;
        z->fn = fn;
        z->ud = ud;
        z->n++;
        return 0;
}

static int put16(struct buf *b, uint16_t v) {
        uint8_t p[2] = { (uint8_t) v, (uint8_t) (v >> 8) };
        return buf_append(b, p, 2);
}

static int put32(struct buf *b, uint32_t v) {
        uint8_t p[4] = { (uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16), (uint8_t) (v >> 24) };
        return buf_append(b, p, 4);
}

static int put64(struct buf *b, uint64_t v) {
        int r = put32(b, (uint32_t) v);
        return r < 0 ? r : put32(b, (uint32_t) (v >> 32));
}

static int local_header(struct zipw *z, const struct zipw_entry *e, struct buf *b) {
        bool z64 = e->stream && z->zip64;
        size_t nl = strlen(e->name);
        int r = 0;
        if ((r = put32(b, SIG_LOCAL)) < 0 || (r = put16(b, z64 ? 45 : 20)) < 0 ||
            (r = put16(b, FLAG_UTF8 | (e->stream ? FLAG_DESCRIPTOR : 0))) < 0 || (r = put16(b, 0)) < 0 ||
            (r = put16(b, 0)) < 0 || (r = put16(b, DOS_DATE_1980)) < 0)
                return r;
        /* with a descriptor the CRC and sizes here are zero (ZIP64: the sizes sit in the extra field) */
        uint32_t crc = e->stream ? 0 : e->crc, sz = e->stream ? (z64 ? U32_MAX_FIELD : 0) : (uint32_t) e->size;
        if ((r = put32(b, crc)) < 0 || (r = put32(b, sz)) < 0 || (r = put32(b, sz)) < 0 ||
            (r = put16(b, (uint16_t) nl)) < 0 || (r = put16(b, z64 ? 20 : 0)) < 0 ||
            (r = buf_append(b, e->name, nl)) < 0)
                return r;
        if (z64 &&
            ((r = put16(b, 0x0001)) < 0 || (r = put16(b, 16)) < 0 || (r = put64(b, 0)) < 0 || (r = put64(b, 0)) < 0))
                return r;
        return 0;
}

/* The descriptor of the stream entry, the central directory and the end records. */
static int make_tail(struct zipw *z, struct buf *b) {
        int r = 0;
        uint64_t cd_start = 0;
        if (z->has_stream) {
                const struct zipw_entry *s = &z->e[z->n - 1];
                if ((r = put32(b, SIG_DESCRIPTOR)) < 0 || (r = put32(b, s->crc)) < 0)
                        return r;
                for (int k = 0; k < 2 && r >= 0; k++) /* compressed and uncompressed: the same */
                        r = z->zip64 ? put64(b, s->size) : put32(b, (uint32_t) s->size);
                if (r < 0)
                        return r;
                cd_start = s->offset + (z->head_len - s->offset) + s->size + b->len;
        } else
                cd_start = z->head_len;
        size_t cd_from = b->len;
        for (size_t i = 0; i < z->n; i++) {
                const struct zipw_entry *e = &z->e[i];
                bool z64 = e->stream && z->zip64;
                size_t nl = strlen(e->name);
                uint32_t sz = z64 ? U32_MAX_FIELD : (uint32_t) e->size;
                if ((r = put32(b, SIG_CENTRAL)) < 0 || (r = put16(b, 0x0300 | (z64 ? 45 : 20))) < 0 ||
                    (r = put16(b, z64 ? 45 : 20)) < 0 ||
                    (r = put16(b, FLAG_UTF8 | (e->stream ? FLAG_DESCRIPTOR : 0))) < 0 || (r = put16(b, 0)) < 0 ||
                    (r = put16(b, 0)) < 0 || (r = put16(b, DOS_DATE_1980)) < 0 || (r = put32(b, e->crc)) < 0 ||
                    (r = put32(b, sz)) < 0 || (r = put32(b, sz)) < 0 || (r = put16(b, (uint16_t) nl)) < 0 ||
                    (r = put16(b, z64 ? 20 : 0)) < 0 || (r = put16(b, 0)) < 0 || (r = put16(b, 0)) < 0 ||
                    (r = put16(b, 0)) < 0 || (r = put32(b, 0100644u << 16)) < 0 ||
                    (r = put32(b, (uint32_t) e->offset)) < 0 || (r = buf_append(b, e->name, nl)) < 0)
                        return r;
                if (z64 && ((r = put16(b, 0x0001)) < 0 || (r = put16(b, 16)) < 0 || (r = put64(b, e->size)) < 0 ||
                            (r = put64(b, e->size)) < 0))
                        return r;
        }
        uint64_t cd_size = b->len - cd_from;
        if (z->zip64) {
                uint64_t eocd64 = cd_start + cd_size;
                if ((r = put32(b, SIG_EOCD64)) < 0 || (r = put64(b, 44)) < 0 || (r = put16(b, 0x0300 | 45)) < 0 ||
                    (r = put16(b, 45)) < 0 || (r = put32(b, 0)) < 0 || (r = put32(b, 0)) < 0 ||
                    (r = put64(b, z->n)) < 0 || (r = put64(b, z->n)) < 0 || (r = put64(b, cd_size)) < 0 ||
                    (r = put64(b, cd_start)) < 0 || (r = put32(b, SIG_LOCATOR64)) < 0 || (r = put32(b, 0)) < 0 ||
                    (r = put64(b, eocd64)) < 0 || (r = put32(b, 1)) < 0)
                        return r;
        }
        if ((r = put32(b, SIG_EOCD)) < 0 || (r = put16(b, 0)) < 0 || (r = put16(b, 0)) < 0 ||
            (r = put16(b, (uint16_t) z->n)) < 0 || (r = put16(b, (uint16_t) z->n)) < 0 ||
            (r = put32(b, (uint32_t) cd_size)) < 0 ||
            (r = put32(b, z->zip64 && cd_start >= U32_MAX_FIELD ? U32_MAX_FIELD : (uint32_t) cd_start)) < 0 ||
            (r = put16(b, 0)) < 0)
                return r;
        return 0;
}

/* Lays out the head (once) and computes the total size. */
static int prepare(struct zipw *z) {
        if (z->total)
                return 0;
        int r = 0;
        if (z->has_stream && z->e[z->n - 1].size >= (uint64_t) U32_MAX_FIELD - (1u << 24))
                z->zip64 = true; /* (or forced by zipw_force_zip64) */
        for (size_t i = 0; i < z->n && r >= 0; i++) {
                struct zipw_entry *e = &z->e[i];
                e->offset = z->head.len;
                r = local_header(z, e, &z->head);
                if (r >= 0 && !e->stream)
                        r = buf_append(&z->head, e->data, (size_t) e->size);
        }
        if (r < 0)
                return r;
        z->head_len = z->head.len;
        if (z->head_len >= U32_MAX_FIELD)
                return -EFBIG;
        /* the tail's size does not depend on the CRC: make it once with a zero CRC to measure it */
        struct buf probe;
        buf_init(&probe, 0);
        r = make_tail(z, &probe);
        uint64_t tail_len = probe.len;
        buf_free(&probe);
        if (r < 0)
                return r;
        uint64_t stream = z->has_stream ? z->e[z->n - 1].size : 0;
        z->total = z->head_len + stream + tail_len;
        return 0;
}

void zipw_force_zip64(struct zipw *z) {
        if (z && z->has_stream)
                z->zip64 = true;
}

uint64_t zipw_size(const struct zipw *z) {
        if (prepare((struct zipw *) z) < 0)
                return 0;
        return z->total;
}

ssize_t zipw_read(struct zipw *z, uint8_t *out, size_t max) {
        int r = prepare(z);
        if (r < 0)
                return r;
        size_t done = 0;
        uint64_t stream = z->has_stream ? z->e[z->n - 1].size : 0;
        while (done < max && z->pos < z->total) {
                if (z->pos < z->head_len) {
                        size_t n = (size_t) MIN((uint64_t) (max - done), z->head_len - z->pos);
                        memcpy(out + done, z->head.data + z->pos, n);
                        z->pos += n;
                        done += n;
                } else if (z->pos < z->head_len + stream) {
                        uint64_t off = z->pos - z->head_len;
                        size_t want = (size_t) MIN((uint64_t) (max - done), stream - off);
                        ssize_t n = z->fn(z->ud, off, out + done, want);
                        if (n < 0)
                                return done ? (ssize_t) done : n;
                        if (n == 0 || (size_t) n > want)
                                return -EIO;
                        z->stream_crc = zipw_crc32(z->stream_crc, out + done, (size_t) n);
                        z->pos += (uint64_t) n;
                        done += (size_t) n;
                } else {
                        if (!z->tail_made) {
                                if (z->has_stream)
                                        z->e[z->n - 1].crc = z->stream_crc;
                                r = make_tail(z, &z->tail);
                                if (r < 0)
                                        return r;
                                if (z->head_len + stream + z->tail.len != z->total)
                                        return -EIO;
                                z->tail_made = true;
                        }
                        uint64_t off = z->pos - z->head_len - stream;
                        size_t n = (size_t) MIN((uint64_t) (max - done), z->tail.len - off);
                        memcpy(out + done, z->tail.data + off, n);
                        z->pos += n;
                        done += n;
                }
        }
        return (ssize_t) done;
}
