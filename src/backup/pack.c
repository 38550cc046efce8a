/* pack.c: writing and checking packs, and the in-memory and on-disk index of blobs. */
#include "backup/pack.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#define MAGIC_LEN 8u

struct backup_pack_writer {
        enum backup_series series;
        struct buf data;
        struct backup_pack_entry *e;
        size_t n, cap;
};

int backup_pack_writer_new(enum backup_series series, struct backup_pack_writer **ret) {
        struct backup_pack_writer *w = calloc(1, sizeof *w);

        if (!w)
                return -ENOMEM;
        w->series = series;
        buf_init(&w->data, BACKUP_PACK_MAX);
        *ret = w;
        return 0;
}

void backup_pack_writer_free(struct backup_pack_writer *w) {
        if (!w)
                return;
        buf_free(&w->data);
        free(w->e);
        free(w);
}

size_t backup_pack_writer_bytes(const struct backup_pack_writer *w) {
        return w->data.len;
}

size_t backup_pack_writer_count(const struct backup_pack_writer *w) {
        return w->n;
}

int backup_pack_writer_add(struct backup_pack_writer *w, const struct backup_keys *k, const backup_id *id,
                           const uint8_t *p, size_t n) {
        size_t start;
        uint8_t flags;
        int r;

        if (w->data.len == 0) {
                r = buf_append(&w->data, BACKUP_PACK_MAGIC, MAGIC_LEN);
                if (r < 0)
                        return r;
        }
        if (w->n == w->cap) {
                size_t cap = w->cap ? 2 * w->cap : 64;
                struct backup_pack_entry *e = realloc(w->e, cap * sizeof *e);
                if (!e)
                        return -ENOMEM;
                w->e = e;
                w->cap = cap;
        }
        start = w->data.len;
        r = backup_blob_seal(k, id, p, n, &w->data, &flags);
        if (r < 0) {
                w->data.len = start;
                return r;
        }
        w->e[w->n++] = (struct backup_pack_entry){ .id = *id,
                                                   .offset = (uint32_t) start,
                                                   .length = (uint32_t) (w->data.len - start),
                                                   .raw_len = (uint32_t) n,
                                                   .flags = flags };
        return 0;
}

static void entry_put(uint8_t *p, const struct backup_pack_entry *e) {
        memcpy(p, e->id.b, BACKUP_ID_SIZE);
        backup_put_u32(p + BACKUP_ID_SIZE, e->offset);
        backup_put_u32(p + BACKUP_ID_SIZE + 4, e->length);
        backup_put_u32(p + BACKUP_ID_SIZE + 8, e->raw_len);
        p[BACKUP_ID_SIZE + 12] = e->flags;
}

static void entry_get(const uint8_t *p, struct backup_pack_entry *e) {
        memcpy(e->id.b, p, BACKUP_ID_SIZE);
        e->offset = backup_get_u32(p + BACKUP_ID_SIZE);
        e->length = backup_get_u32(p + BACKUP_ID_SIZE + 4);
        e->raw_len = backup_get_u32(p + BACKUP_ID_SIZE + 8);
        e->flags = p[BACKUP_ID_SIZE + 12];
}

/* pack header plaintext: series (1) || count (u32) || count entries */
int backup_pack_writer_finish(struct backup_pack_writer *w, const struct backup_keys *k, struct buf *ret_file,
                              backup_id *ret_id, struct backup_pack_entry **ret_entries, size_t *ret_n) {
        _cleanup_free_ uint8_t *hdr = NULL;
        size_t hlen = 5 + w->n * BACKUP_PACK_ENTRY_SIZE, before;
        uint8_t tail[4];
        int r;

        if (w->n == 0)
                return -ENODATA;
        hdr = malloc(hlen);
        if (!hdr)
                return -ENOMEM;
        hdr[0] = (uint8_t) w->series;
        backup_put_u32(hdr + 1, (uint32_t) w->n);
        for (size_t i = 0; i < w->n; i++)
                entry_put(hdr + 5 + i * BACKUP_PACK_ENTRY_SIZE, &w->e[i]);
        before = w->data.len;
        r = backup_meta_seal(k, (const uint8_t *) BACKUP_PACK_MAGIC, MAGIC_LEN, hdr, hlen, &w->data);
        if (r < 0)
                return r;
        backup_put_u32(tail, (uint32_t) (w->data.len - before));
        r = buf_append(&w->data, tail, sizeof tail);
        if (r < 0)
                return r;
        backup_content_id(w->data.data, w->data.len, ret_id);
        *ret_file = w->data;
        buf_init(&w->data, BACKUP_PACK_MAX);
        *ret_entries = w->e;
        *ret_n = w->n;
        w->e = NULL;
        w->n = w->cap = 0;
        return 0;
}

int backup_pack_parse(const struct backup_keys *k, const backup_id *name, const uint8_t *p, size_t n,
                      enum backup_series *ret_series, struct backup_pack_entry **ret_entries, size_t *ret_n) {
        _cleanup_buf_ struct buf hdr = {};
        _cleanup_free_ struct backup_pack_entry *e = NULL;
        backup_id got;
        uint32_t hlen, count;
        size_t hstart;
        int r;

        if (n < MAGIC_LEN + 4 + BACKUP_SEAL_OVERHEAD + 5 || memcmp(p, BACKUP_PACK_MAGIC, MAGIC_LEN) != 0)
                return -EBADMSG;
        backup_content_id(p, n, &got);
        if (sodium_memcmp(got.b, name->b, BACKUP_ID_SIZE) != 0)
                return -EBADMSG;
        hlen = backup_get_u32(p + n - 4);
        if (hlen > n - 4 - MAGIC_LEN)
                return -EBADMSG;
        hstart = n - 4 - hlen;
        buf_init(&hdr, BACKUP_PACK_MAX);
        r = backup_meta_open(k, (const uint8_t *) BACKUP_PACK_MAGIC, MAGIC_LEN, p + hstart, hlen, &hdr);
        if (r < 0)
                return r;
        if (hdr.len < 5)
                return -EBADMSG;
        count = backup_get_u32(hdr.data + 1);
        if (count == 0 || count > BACKUP_PACK_MAX_BLOBS || hdr.len != 5 + (size_t) count * BACKUP_PACK_ENTRY_SIZE ||
            (hdr.data[0] != BACKUP_SERIES_DATA && hdr.data[0] != BACKUP_SERIES_KEYRING))
                return -EBADMSG;
        e = calloc(count, sizeof *e);
        if (!e)
                return -ENOMEM;
        for (uint32_t i = 0; i < count; i++) {
                entry_get(hdr.data + 5 + (size_t) i * BACKUP_PACK_ENTRY_SIZE, &e[i]);
                if (e[i].offset < MAGIC_LEN || e[i].length < BACKUP_SEAL_OVERHEAD ||
                    (uint64_t) e[i].offset + e[i].length > hstart)
                        return -EBADMSG;
        }
        *ret_series = (enum backup_series) hdr.data[0];
        *ret_entries = TAKE_PTR(e);
        *ret_n = count;
        return 0;
}

/* ---- index ---- */

struct backup_index {
        struct backup_index_pack *packs;
        size_t n_packs, cap_packs;
        struct backup_index_entry *e;
        size_t n, cap;
        uint32_t *slots; /* open addressing: entry position + 1, 0 empty */
        size_t n_slots;
        struct backup_index *alt; /* second places of blobs stored twice (pack = position in this index) */
};

int backup_index_new(struct backup_index **ret) {
        struct backup_index *x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        *ret = x;
        return 0;
}

void backup_index_free(struct backup_index *x) {
        if (!x)
                return;
        free(x->packs);
        free(x->e);
        free(x->slots);
        backup_index_free(x->alt);
        free(x);
}

const struct backup_index_entry *backup_index_find_alt(const struct backup_index *x, const backup_id *blob) {
        return x->alt ? backup_index_find(x->alt, blob) : NULL;
}

static size_t slot_of(const backup_id *id, size_t n_slots) {
        uint64_t h;
        memcpy(&h, id->b, sizeof h); /* ids are keyed hashes: uniform */
        return (size_t) (h & (n_slots - 1));
}

static int rehash(struct backup_index *x, size_t n_slots) {
        uint32_t *s = calloc(n_slots, sizeof *s);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < x->n; i++) {
                size_t j = slot_of(&x->e[i].e.id, n_slots);
                while (s[j])
                        j = (j + 1) & (n_slots - 1);
                s[j] = (uint32_t) (i + 1);
        }
        free(x->slots);
        x->slots = s;
        x->n_slots = n_slots;
        return 0;
}

const struct backup_index_entry *backup_index_find(const struct backup_index *x, const backup_id *blob) {
        if (x->n_slots == 0)
                return NULL;
        for (size_t j = slot_of(blob, x->n_slots); x->slots[j]; j = (j + 1) & (x->n_slots - 1)) {
                const struct backup_index_entry *e = &x->e[x->slots[j] - 1];
                if (memcmp(e->e.id.b, blob->b, BACKUP_ID_SIZE) == 0)
                        return e;
        }
        return NULL;
}

bool backup_index_has_pack(const struct backup_index *x, const backup_id *pack) {
        for (size_t i = 0; i < x->n_packs; i++)
                if (memcmp(x->packs[i].id.b, pack->b, BACKUP_ID_SIZE) == 0)
                        return true;
        return false;
}

const struct backup_index_entry *backup_index_entry_at(const struct backup_index *x, size_t i) {
        return i < x->n ? &x->e[i] : NULL;
}

const struct backup_index_pack *backup_index_pack_at(const struct backup_index *x, uint32_t i) {
        return i < x->n_packs ? &x->packs[i] : NULL;
}

size_t backup_index_pack_count(const struct backup_index *x) {
        return x->n_packs;
}

/* Records a second place of a blob (the first second place wins). */
static int index_add_alt(struct backup_index *x, const struct backup_index_entry *e) {
        int r;

        if (!x->alt && (r = backup_index_new(&x->alt)) < 0)
                return r;
        if (backup_index_find(x->alt, &e->e.id))
                return 0;
        r = backup_index_add_blob(x->alt, &e->e);
        if (r < 0)
                return r;
        ((struct backup_index_entry *) backup_index_find(x->alt, &e->e.id))->pack = e->pack;
        return 0;
}

int backup_index_add_pack(struct backup_index *x, const backup_id *pack, enum backup_series series, bool fresh,
                          const struct backup_pack_entry *e, size_t n) {
        int r;

        if (backup_index_has_pack(x, pack))
                return 0; /* the same pack named by two index files (a run that wrote it twice) */
        if (x->n_packs == x->cap_packs) {
                size_t cap = x->cap_packs ? 2 * x->cap_packs : 16;
                struct backup_index_pack *p = realloc(x->packs, cap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                x->packs = p;
                x->cap_packs = cap;
        }
        if (x->n + n > x->cap) {
                size_t cap = x->cap ? x->cap : 256;
                while (cap < x->n + n)
                        cap *= 2;
                struct backup_index_entry *ne = realloc(x->e, cap * sizeof *ne);
                if (!ne)
                        return -ENOMEM;
                x->e = ne;
                x->cap = cap;
        }
        if ((x->n + n) * 2 > x->n_slots) {
                size_t ns = x->n_slots ? x->n_slots : 1024;
                while ((x->n + n) * 2 > ns)
                        ns *= 2;
                r = rehash(x, ns);
                if (r < 0)
                        return r;
        }
        uint32_t pi = (uint32_t) x->n_packs;
        x->packs[x->n_packs++] = (struct backup_index_pack){ .id = *pack, .series = (uint8_t) series, .fresh = fresh };
        for (size_t i = 0; i < n; i++) {
                struct backup_index_entry *known = (struct backup_index_entry *) backup_index_find(x, &e[i].id);
                if (known) {
                        struct backup_index_entry other = { .e = e[i], .pack = pi };
                        /* a pack of this run holds a blob again only because its old pack was gone */
                        if (fresh && known->pack != UINT32_MAX && !x->packs[known->pack].fresh) {
                                struct backup_index_entry t = *known;
                                *known = other;
                                other = t;
                        }
                        if (known->pack != UINT32_MAX && (r = index_add_alt(x, &other)) < 0)
                                return r;
                        continue;
                }
                x->e[x->n] = (struct backup_index_entry){ .e = e[i], .pack = pi };
                size_t j = slot_of(&e[i].id, x->n_slots);
                while (x->slots[j])
                        j = (j + 1) & (x->n_slots - 1);
                x->slots[j] = (uint32_t) (++x->n);
        }
        return 0;
}

int backup_index_add_blob(struct backup_index *x, const struct backup_pack_entry *e) {
        int r;

        if (backup_index_find(x, &e->id))
                return 0;
        if (x->n == x->cap) {
                size_t cap = x->cap ? 2 * x->cap : 256;
                struct backup_index_entry *ne = realloc(x->e, cap * sizeof *ne);
                if (!ne)
                        return -ENOMEM;
                x->e = ne;
                x->cap = cap;
        }
        if ((x->n + 1) * 2 > x->n_slots) {
                r = rehash(x, x->n_slots ? 2 * x->n_slots : 1024);
                if (r < 0)
                        return r;
        }
        x->e[x->n] = (struct backup_index_entry){ .e = *e, .pack = UINT32_MAX };
        size_t j = slot_of(&e->id, x->n_slots);
        while (x->slots[j])
                j = (j + 1) & (x->n_slots - 1);
        x->slots[j] = (uint32_t) (++x->n);
        return 0;
}

void backup_index_settle(struct backup_index *x) {
        for (size_t i = 0; i < x->n_packs; i++)
                x->packs[i].fresh = false;
}

/* index file: magic || sealed(count (u32) || per pack: id || series (1) || n (u32) || n entries) */
int backup_index_serialize_fresh(const struct backup_index *x, const struct backup_keys *k, struct buf *out,
                                 bool *ret_empty) {
        _cleanup_buf_ struct buf plain = {};
        uint8_t tmp[BACKUP_PACK_ENTRY_SIZE + 8];
        uint32_t count = 0;
        int r;

        buf_init(&plain, (size_t) 1 << 30);
        r = buf_append(&plain, "\0\0\0\0", 4);
        for (size_t i = 0; r >= 0 && i < x->n_packs; i++) {
                if (!x->packs[i].fresh)
                        continue;
                uint32_t nb = 0;
                for (size_t j = 0; j < x->n; j++)
                        nb += x->e[j].pack == i;
                memcpy(tmp, x->packs[i].id.b, BACKUP_ID_SIZE);
                tmp[BACKUP_ID_SIZE] = x->packs[i].series;
                backup_put_u32(tmp + BACKUP_ID_SIZE + 1, nb);
                r = buf_append(&plain, tmp, BACKUP_ID_SIZE + 5);
                for (size_t j = 0; r >= 0 && j < x->n; j++)
                        if (x->e[j].pack == i) {
                                entry_put(tmp, &x->e[j].e);
                                r = buf_append(&plain, tmp, BACKUP_PACK_ENTRY_SIZE);
                        }
                count++;
        }
        if (r < 0)
                return r;
        backup_put_u32(plain.data, count);
        *ret_empty = count == 0;
        r = buf_append(out, BACKUP_INDEX_MAGIC, MAGIC_LEN);
        if (r >= 0)
                r = backup_meta_seal(k, (const uint8_t *) BACKUP_INDEX_MAGIC, MAGIC_LEN, plain.data, plain.len, out);
        return r < 0 ? r : 0;
}

int backup_index_load(struct backup_index *x, const struct backup_keys *k, const backup_id *name, const uint8_t *p,
                      size_t n) {
        _cleanup_buf_ struct buf plain = {};
        _cleanup_free_ struct backup_pack_entry *e = NULL;
        backup_id got;
        size_t off;
        uint32_t count;
        int r;

        if (n < MAGIC_LEN || memcmp(p, BACKUP_INDEX_MAGIC, MAGIC_LEN) != 0)
                return -EBADMSG;
        backup_content_id(p, n, &got);
        if (sodium_memcmp(got.b, name->b, BACKUP_ID_SIZE) != 0)
                return -EBADMSG;
        buf_init(&plain, (size_t) 1 << 30);
        r = backup_meta_open(k, (const uint8_t *) BACKUP_INDEX_MAGIC, MAGIC_LEN, p + MAGIC_LEN, n - MAGIC_LEN, &plain);
        if (r < 0)
                return r;
        if (plain.len < 4)
                return -EBADMSG;
        count = backup_get_u32(plain.data);
        off = 4;
        for (uint32_t i = 0; i < count; i++) {
                backup_id pack;
                uint8_t series;
                uint32_t nb;

                if (plain.len - off < BACKUP_ID_SIZE + 5)
                        return -EBADMSG;
                memcpy(pack.b, plain.data + off, BACKUP_ID_SIZE);
                series = plain.data[off + BACKUP_ID_SIZE];
                nb = backup_get_u32(plain.data + off + BACKUP_ID_SIZE + 1);
                off += BACKUP_ID_SIZE + 5;
                if ((series != BACKUP_SERIES_DATA && series != BACKUP_SERIES_KEYRING) || nb > BACKUP_PACK_MAX_BLOBS ||
                    (plain.len - off) / BACKUP_PACK_ENTRY_SIZE < nb)
                        return -EBADMSG;
                free(e);
                e = calloc(nb ? nb : 1, sizeof *e);
                if (!e)
                        return -ENOMEM;
                for (uint32_t j = 0; j < nb; j++, off += BACKUP_PACK_ENTRY_SIZE)
                        entry_get(plain.data + off, &e[j]);
                r = backup_index_add_pack(x, &pack, (enum backup_series) series, false, e, nb);
                if (r < 0)
                        return r;
        }
        return off == plain.len ? 0 : -EBADMSG;
}
