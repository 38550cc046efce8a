/* pack.h: packs (many sealed blobs in one file, with an authenticated, encrypted header listing
 * them) and the repository index (blob id -> pack, offset, length), kept in index files.
 * Layouts in docs/formats.md ("Backup repository"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/format.h"
#include "buf.h"
#include "macro.h"

#define BACKUP_PACK_MAGIC "CFRPACK1"
#define BACKUP_INDEX_MAGIC "CFRIDX01"
#define BACKUP_PACK_ENTRY_SIZE (BACKUP_ID_SIZE + 13u) /* id, offset, length, raw length, flags */
#define BACKUP_PACK_TARGET ((size_t) 16 << 20)        /* a pack is closed once it holds this much */
#define BACKUP_PACK_MAX ((size_t) 96 << 20)           /* larger files are refused on reading */
#define BACKUP_PACK_MAX_BLOBS 1000000u

struct backup_pack_entry {
        backup_id id;
        uint32_t offset; /* of the sealed blob in the pack file */
        uint32_t length; /* of the sealed blob */
        uint32_t raw_len;
        uint8_t flags;
};

/* ---- writing a pack ---- */
struct backup_pack_writer;
int backup_pack_writer_new(enum backup_series series, struct backup_pack_writer **ret) _warn_unused_;
void backup_pack_writer_free(struct backup_pack_writer *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_pack_writer *, backup_pack_writer_free);
/* Seals plaintext p (whose id the caller computed) into the pack. */
int backup_pack_writer_add(struct backup_pack_writer *w, const struct backup_keys *k, const backup_id *id,
                           const uint8_t *p, size_t n) _warn_unused_;
size_t backup_pack_writer_bytes(const struct backup_pack_writer *w);
size_t backup_pack_writer_count(const struct backup_pack_writer *w);
/* Appends the header and hands over the file's bytes (*ret_file), its id (SHA-256 of the bytes)
 * and its entries (malloc'd). The writer is empty afterwards and can be reused. */
int backup_pack_writer_finish(struct backup_pack_writer *w, const struct backup_keys *k, struct buf *ret_file,
                              backup_id *ret_id, struct backup_pack_entry **ret_entries, size_t *ret_n) _warn_unused_;

/* ---- reading a pack ---- */
/* Checks a whole pack file: its name (SHA-256), magic, header tag, entry bounds; *ret_entries
 * malloc'd. -EBADMSG on any damage. */
int backup_pack_parse(const struct backup_keys *k, const backup_id *name, const uint8_t *p, size_t n,
                      enum backup_series *ret_series, struct backup_pack_entry **ret_entries, size_t *ret_n)
        _warn_unused_;

/* ---- the index ---- */
struct backup_index_entry {
        struct backup_pack_entry e;
        uint32_t pack; /* position in the index's pack list */
};
struct backup_index_pack {
        backup_id id;
        uint8_t series;
        bool fresh; /* added since the index was loaded: goes into the next index file */
};
struct backup_index;
int backup_index_new(struct backup_index **ret) _warn_unused_;
void backup_index_free(struct backup_index *x);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_index *, backup_index_free);
/* Adds one blob with no pack (a set of blobs written in this run but not yet in a stored pack). */
int backup_index_add_blob(struct backup_index *x, const struct backup_pack_entry *e) _warn_unused_;
/* Adds a pack and its blobs. A blob already known keeps its first place, except that a fresh
 * pack takes over blobs of packs that are not fresh (written again because their pack was gone). */
int backup_index_add_pack(struct backup_index *x, const backup_id *pack, enum backup_series series, bool fresh,
                          const struct backup_pack_entry *e, size_t n) _warn_unused_;
const struct backup_index_entry *backup_index_find(const struct backup_index *x, const backup_id *blob);
/* The second place of a blob stored in two packs (its pack is a position in x), or NULL. */
const struct backup_index_entry *backup_index_find_alt(const struct backup_index *x, const backup_id *blob);
/* The i-th blob (NULL past the end), for walking the whole index. */
const struct backup_index_entry *backup_index_entry_at(const struct backup_index *x, size_t i);
const struct backup_index_pack *backup_index_pack_at(const struct backup_index *x, uint32_t i);
size_t backup_index_pack_count(const struct backup_index *x);
bool backup_index_has_pack(const struct backup_index *x, const backup_id *pack);
/* An index file of the fresh packs (and their blobs): appended to out; *ret_empty when none. */
int backup_index_serialize_fresh(const struct backup_index *x, const struct backup_keys *k, struct buf *out,
                                 bool *ret_empty) _warn_unused_;
/* Marks every pack as not fresh (after its index file was written). */
void backup_index_settle(struct backup_index *x);
/* Loads one index file (checked against its name); -EBADMSG when damaged. */
int backup_index_load(struct backup_index *x, const struct backup_keys *k, const backup_id *name, const uint8_t *p,
                      size_t n) _warn_unused_;
