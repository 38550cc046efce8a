/* format.h: the byte-level pieces of a backup repository that packs, indexes and snapshots
 * share: the keys derived from the repository's backup key, blob ids, and sealing one blob
 * (zstd, then AES-256-GCM). Layouts in docs/formats.md ("Backup repository"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

#define BACKUP_KEY_SIZE 32u
#define BACKUP_ID_SIZE 32u /* blob, pack, index and snapshot ids */
#define BACKUP_ID_HEX (2 * BACKUP_ID_SIZE)
#define BACKUP_NONCE_SIZE 12u
#define BACKUP_TAG_SIZE 16u
#define BACKUP_SEAL_OVERHEAD (BACKUP_NONCE_SIZE + BACKUP_TAG_SIZE)
#define BACKUP_BLOB_MAX ((size_t) 64 << 20) /* plaintext bytes of one blob (the chunker's ceiling) */

#define BACKUP_BLOB_ZSTD 0x01u /* flag: the sealed bytes are a zstd frame */

/* The series a pack or snapshot belongs to: data, and the keyring kept apart (short retention). */
enum backup_series {
        BACKUP_SERIES_DATA = 1,
        BACKUP_SERIES_KEYRING = 2,
};

typedef struct {
        uint8_t b[BACKUP_ID_SIZE];
} backup_id;

/* Every key the repository uses, each derived from the backup key by keyed BLAKE2b-256 of a
 * label (format.c). Lives in sodium_malloc'd memory (backup_keys_new). */
struct backup_keys {
        uint8_t id[BACKUP_KEY_SIZE];      /* "coffre-backup-id": HMAC-SHA-256 key of blob ids */
        uint8_t blob[BACKUP_KEY_SIZE];    /* "coffre-backup-blob": AES-256-GCM of blobs */
        uint8_t meta[BACKUP_KEY_SIZE];    /* "coffre-backup-meta": pack headers, indexes, snapshot bodies */
        uint8_t chunker[BACKUP_KEY_SIZE]; /* "coffre-backup-cdc": the chunker's gear table */
        uint8_t config[BACKUP_KEY_SIZE];  /* "coffre-backup-config": HMAC of the repository config */
};

int backup_keys_new(const uint8_t backup_key[BACKUP_KEY_SIZE], struct backup_keys **ret) _warn_unused_;
void backup_keys_free(struct backup_keys *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_keys *, backup_keys_free);

/* id = HMAC-SHA-256(keys->id, plaintext). */
void backup_blob_id(const struct backup_keys *k, const uint8_t *p, size_t n, backup_id *ret);
/* SHA-256 of p: the name of packs, indexes and snapshots (content addressed). */
void backup_content_id(const uint8_t *p, size_t n, backup_id *ret);
void backup_id_hex(const backup_id *id, char out[BACKUP_ID_HEX + 1]);
int backup_id_parse(const char *hex, backup_id *ret) _warn_unused_;

/* Seals one blob: zstd (level 3) when that makes it smaller, then AES-256-GCM under keys->blob
 * with a random nonce and AAD "CFRBLOB1" || id || flags || raw length (u32 LE). Appends
 * nonce || ciphertext || tag to out; *ret_flags says whether it is compressed. */
int backup_blob_seal(const struct backup_keys *k, const backup_id *id, const uint8_t *p, size_t n, struct buf *out,
                     uint8_t *ret_flags) _warn_unused_;
/* Opens a sealed blob into out (reset first; raw_len bytes), checks the AAD, the tag, the size and
 * that the plaintext has the id it claims. -EBADMSG for any mismatch. */
int backup_blob_open(const struct backup_keys *k, const backup_id *id, uint8_t flags, uint32_t raw_len,
                     const uint8_t *sealed, size_t sealed_len, struct buf *out) _warn_unused_;

/* Generic sealed record of metadata under keys->meta: nonce || AES-256-GCM(plain) || tag, with
 * aad as given. Appends to out. */
int backup_meta_seal(const struct backup_keys *k, const uint8_t *aad, size_t aad_len, const uint8_t *p, size_t n,
                     struct buf *out) _warn_unused_;
int backup_meta_open(const struct backup_keys *k, const uint8_t *aad, size_t aad_len, const uint8_t *sealed,
                     size_t sealed_len, struct buf *out) _warn_unused_;

static inline void backup_put_u32(uint8_t *p, uint32_t v) {
        for (unsigned i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static inline uint32_t backup_get_u32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static inline void backup_put_u64(uint8_t *p, uint64_t v) {
        for (unsigned i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static inline uint64_t backup_get_u64(const uint8_t *p) {
        uint64_t v = 0;
        for (unsigned i = 0; i < 8; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}
