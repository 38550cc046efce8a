/* keyring_db.h: the SQL side of the keyring (schema, statements, transactions). Knows rows and
 * bytes, never a plaintext key. Callers serialise use of one connection. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "key_wrap.h"
#include "macro.h"

int kdb_open(const char *path, sqlite3 **ret) _warn_unused_;
int kdb_schema(sqlite3 *db) _warn_unused_;

/* BEGIN IMMEDIATE (write) ... kdb_end commits when r >= 0, else rolls back; returns r or the commit error. */
int kdb_begin(sqlite3 *db) _warn_unused_;
int kdb_end(sqlite3 *db, int r) _warn_unused_;
/* A read snapshot, so that related rows are read consistently. */
int kdb_read_begin(sqlite3 *db) _warn_unused_;
void kdb_read_end(sqlite3 *db);
/* Best effort: copy the WAL into the database and truncate it (after destroying keys). */
/* Copies the WAL into keyring.db and truncates it, so no destroyed key stays in keyring.db-wal.
 * 0, -EBUSY when a reader or writer kept it from completing, or another negative errno. */
int kdb_checkpoint(sqlite3 *db) _warn_unused_;

int kdb_meta_get(sqlite3 *db, const char *name, uint8_t *out, size_t size) _warn_unused_;
int kdb_meta_put(sqlite3 *db, const char *name, const uint8_t *p, size_t n) _warn_unused_;

/* wrapped may be NULL when only the version is wanted. -ENOENT when the KEK has no version. */
int kdb_kek_current(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t *ret_version,
                    uint8_t wrapped[KEY_WRAP_SIZE], size_t *ret_len) _warn_unused_;
/* Some KEK row (any), to test a master key against. -ENOENT when there is none. */
int kdb_kek_any(sqlite3 *db, uint8_t ret_kek_id[KEY_WRAP_ID_SIZE], uint32_t *ret_version, uint8_t wrapped[KEY_WRAP_SIZE],
                size_t *ret_len) _warn_unused_;
int kdb_kek_oldest(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t *ret_version) _warn_unused_;
int kdb_kek_get(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version, uint8_t wrapped[KEY_WRAP_SIZE],
                size_t *ret_len) _warn_unused_;
int kdb_kek_insert(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version,
                   const uint8_t master_id[KEY_WRAP_ID_SIZE], const uint8_t *wrapped, size_t len) _warn_unused_;
/* Deletes versions below `version`; -EBUSY while a DEK or organisation key still uses one. */
int kdb_kek_delete_below(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version) _warn_unused_;
/* Deletes every version of the KEK and every key it wraps. -ENOENT when there was no KEK. */
int kdb_kek_destroy_all(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE]) _warn_unused_;

/* -EEXIST when the object already has a DEK. */
int kdb_dek_insert(sqlite3 *db, const uint8_t object_id[KEY_WRAP_ID_SIZE], const uint8_t kek_id[KEY_WRAP_ID_SIZE],
                   uint32_t kek_version, const uint8_t *wrapped, size_t len) _warn_unused_;
int kdb_dek_get(sqlite3 *db, const uint8_t object_id[KEY_WRAP_ID_SIZE], uint8_t ret_kek_id[KEY_WRAP_ID_SIZE],
                uint32_t *ret_version, uint8_t wrapped[KEY_WRAP_SIZE], size_t *ret_len) _warn_unused_;
int kdb_dek_delete(sqlite3 *db, const uint8_t object_id[KEY_WRAP_ID_SIZE]) _warn_unused_;
/* Up to max object ids greater than after (NULL: from the start), in order. */
int kdb_dek_page(sqlite3 *db, const uint8_t *after, uint8_t (*page)[KEY_WRAP_ID_SIZE], size_t max, size_t *ret_n) _warn_unused_;

int kdb_org_key_get(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], const char *purpose, uint32_t *ret_version,
                    uint8_t wrapped[KEY_WRAP_SIZE], size_t *ret_len) _warn_unused_;
int kdb_org_key_insert(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], const char *purpose, uint32_t version,
                       const uint8_t *wrapped, size_t len) _warn_unused_;

/* A DEK or organisation key wrapped under an older KEK version, for rotation. */
struct kdb_wrapped_row {
        bool is_dek;
        uint8_t object_id[KEY_WRAP_ID_SIZE]; /* DEK rows */
        char purpose[KEY_WRAP_PURPOSE_MAX + 1]; /* organisation key rows */
        uint32_t kek_version;
        uint8_t wrapped[KEY_WRAP_SIZE];
        size_t wrapped_len;
};
int kdb_rows_below(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version, size_t limit,
                   struct kdb_wrapped_row **ret, size_t *ret_n) _warn_unused_;
int kdb_row_rewrap(sqlite3 *db, const struct kdb_wrapped_row *row, const uint8_t kek_id[KEY_WRAP_ID_SIZE],
                   uint32_t new_version, const uint8_t *wrapped, size_t len) _warn_unused_;

/* Every KEK row, for a change of master key (there is one KEK per organisation and version). */
#define KDB_KEK_ALL_MAX 1000000u
struct kdb_kek_row {
        uint8_t kek_id[KEY_WRAP_ID_SIZE];
        uint32_t version;
        uint8_t master_id[KEY_WRAP_ID_SIZE];
        uint8_t wrapped[KEY_WRAP_SIZE];
        size_t wrapped_len;
};
int kdb_kek_all(sqlite3 *db, struct kdb_kek_row **ret, size_t *ret_n) _warn_unused_;
/* Replaces one KEK row's wrapping (a new master key). -ENOENT when the row is gone. */
int kdb_kek_rewrap_master(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version,
                          const uint8_t master_id[KEY_WRAP_ID_SIZE], const uint8_t *wrapped, size_t len) _warn_unused_;
