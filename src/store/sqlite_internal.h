/* sqlite_internal.h: what sqlite.c and sqlite_schema.c share (connections, prepared statement
 * cache, error mapping, schema), plus two hooks the unit tests use. Not for other modules. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store.h"

enum sqlite_stmt_id {
        STMT_ORG_INSERT,
        STMT_ORG_GET,
        STMT_ORG_ALL,
        STMT_DOC_INSERT,
        STMT_DOC_GET,
        STMT_DOC_LIST,
        STMT_DOC_LIST_CLASS,
        STMT_DOC_LIST_NAME,
        STMT_DOC_CLEAR_NAMES,
        STMT_DOC_SEAL_NAME,
        STMT_DOC_DELETE,
        STMT_DOC_EXISTS,
        STMT_DOC_STATS,
        STMT_TOKEN_INSERT,
        STMT_TOKEN_LOOKUP,
        STMT_ORG_UPDATE,
        STMT_TOKEN_LIST,
        STMT_TOKEN_REVOKE,
        STMT_TOKEN_REVOKE_KIND,
        STMT_TOKEN_TOUCH,
        STMT_TOKEN_DELETE_USER,
        STMT_USER_INSERT,
        STMT_USER_GET,
        STMT_USER_GET_ANY,
        STMT_USER_GET_INDEX,
        STMT_USER_LIST,
        STMT_USER_UPDATE,
        STMT_USER_LOGIN_UPDATE,
        STMT_USER_DELETE,
        STMT_USER_COUNT_ROLE,
        STMT_USER_COUNT_ROLE_ANY,
        STMT_USER_COUNT_ROLE_ACTIVE,
        STMT_RECOVERY_INSERT,
        STMT_RECOVERY_DELETE_USER,
        STMT_RECOVERY_USE,
        STMT_RECOVERY_COUNT,
        STMT_SESSION_INSERT,
        STMT_SESSION_LOOKUP,
        STMT_SESSION_TOUCH,
        STMT_SESSION_REVOKE,
        STMT_SESSION_REVOKE_USER,
        STMT_SESSION_DELETE_USER,
        STMT_SETTING_GET,
        STMT_SETTING_SET,
        STMT_AUDIT_REF_ADD,
        STMT_AUDIT_REF_LIST,
        STMT_AUDIT_REF_MAX,
        STMT_SEAL_INSERT,
        STMT_SEAL_GET,
        STMT_SEAL_UPGRADE,
        STMT_SEAL_LIST_LEVEL,
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        _STMT_MAX,
};

/* One SQLite connection with its own cache of prepared statements. Used by one thread at a time. */
struct sqlite_conn {
        sqlite3 *db;
        sqlite3_stmt *stmt[_STMT_MAX];
        struct sqlite_conn *next; /* free list of the reader pool */
};

/* Maps an SQLite result code (extended or not) to 0 or a negative errno. */
int sqlite_errno(int rc);

/* Opens a connection with the store's pragmas (WAL, synchronous=FULL, foreign keys, busy timeout).
 * Readers are query_only. */
int sqlite_conn_open(const char *path, bool writer, struct sqlite_conn **ret) _warn_unused_;
void sqlite_conn_close(struct sqlite_conn *c);

/* The cached statement id, prepared on first use; reset and unbound by the caller (stmt_release). */
int sqlite_conn_stmt(struct sqlite_conn *c, enum sqlite_stmt_id id, sqlite3_stmt **ret) _warn_unused_;

/* The SQL text of a statement (tests check its query plan). */
const char *sqlite_stmt_sql(enum sqlite_stmt_id id);

static inline void sqlite_stmt_releasep(sqlite3_stmt **st) {
        if (*st) {
                sqlite3_reset(*st);
                sqlite3_clear_bindings(*st);
        }
}
#define _cleanup_stmt_ _cleanup_(sqlite_stmt_releasep)

/* Seals (sqlite_seals.c): the insert, inside the caller's transaction, and the read. */
int sqlite_seal_insert(struct sqlite_conn *c, const char *id, const struct store_seal *seal) _warn_unused_;
int sqlite_seal_get(struct store *st, const char *id, struct store_seal *ret);
int sqlite_seal_upgrade(struct store *st, const char *id, const struct store_seal *seal);
int sqlite_seal_list_level(struct store *st, const char *level, size_t max, struct store_seal_ref *ret, size_t *ret_n);

/* Brings the schema up to date (PRAGMA user_version), in one transaction. */
int sqlite_schema_migrate(struct sqlite_conn *c, bool create) _warn_unused_;
#define SQLITE_SCHEMA_VERSION 6

/* A queued document insert, on its caller's stack until the leader marks it done. */
#define SQLITE_NO_REF UINT64_MAX /* an insert without an audit reference */

struct insert_req {
        const struct store_document *doc;
        uint64_t ref_index; /* SQLITE_NO_REF or the audit entry to reference in the same transaction */
        int result;
        bool done;
        struct insert_req *next;
};

/* The store: one writer connection (every change), a pool of reader connections, and the
 * group commit queue for document inserts. */
struct sqlite_store {
        struct store base;
        char *path;

        pthread_mutex_t write_lock; /* guards writer */
        struct sqlite_conn *writer;

        pthread_mutex_t queue_lock; /* guards everything below down to the pool */
        pthread_cond_t queue_cond;
        struct insert_req *queue_head, *queue_tail;
        bool leader_active;
        uint64_t commits, committed_rows;
        unsigned queued, hold; /* test seam (sqlite_store_hold_group): no batch until hold are queued */

        pthread_mutex_t pool_lock;
        pthread_cond_t pool_cond;
        struct sqlite_conn *pool_free;
        unsigned pool_count;
};

static inline struct sqlite_store *sqlite_store_of(struct store *s) {
        return (struct sqlite_store *) s;
}

/* 32 lower-case hex characters and nothing else. */
static inline bool sqlite_id_is_valid(const char *id) {
        if (!id)
                return false;
        for (size_t i = 0; i < STORE_ID_LEN; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return id[STORE_ID_LEN] == 0;
}

/* A NUL inside the fixed-size field, and not empty unless allowed. */
static inline bool sqlite_field_is_valid(const char *s, size_t size, bool allow_empty) {
        const char *nul = memchr(s, 0, size);
        return nul && (allow_empty || nul != s);
}

/* Copies a text column into a fixed field; -EBADMSG if the stored value does not fit. */
int sqlite_column_copy(sqlite3_stmt *st, int col, char *out, size_t size) _warn_unused_;
/* Steps a statement that returns no row. */
int sqlite_step_done(sqlite3_stmt *st);
/* Borrows a reader connection from the pool (opening one if the pool is not full) and gives it back. */
int sqlite_reader_get(struct sqlite_store *s, struct sqlite_conn **ret) _warn_unused_;
void sqlite_reader_put(struct sqlite_store *s, struct sqlite_conn *c);

/* The document operations (sqlite_documents.c). */
int sqlite_document_insert(struct store *st, const struct store_document *d);
int sqlite_document_insert_ref(struct store *st, const struct store_document *d, uint64_t audit_index);
int sqlite_document_get(struct store *st, const char *org_id, const char *id, struct store_document *ret);
int sqlite_document_list(struct store *st, const struct store_document_filter *f, struct store_document **ret,
                         size_t *ret_n, char **ret_next_cursor);
int sqlite_document_delete(struct store *st, const char *org_id, const char *id);
int sqlite_document_exists(struct store *st, const char *id, bool *ret);
int sqlite_document_stats(struct store *st, uint64_t *ret_count, uint64_t *ret_bytes);
int sqlite_document_clear_names(struct store *st, size_t limit, struct store_document **ret, size_t *ret_n);
int sqlite_document_seal_names(struct store *st, const struct store_document *docs, size_t n);
int sqlite_store_compact(struct store *st);
/* Reads a row of DOC_COLUMNS. */
int sqlite_document_from_row(sqlite3_stmt *q, struct store_document *d) _warn_unused_;

/* Retention, holds, tombstones (sqlite_lifecycle.c). */
int sqlite_document_set_retention(struct store *st, const char *org_id, const char *id, const char *class_,
                                  int64_t retain_until, const char *lock);
int sqlite_document_erase(struct store *st, const struct store_tombstone *t);
int sqlite_tombstone_get(struct store *st, const char *org_id, const char *id, struct store_tombstone *ret);
int sqlite_document_expired(struct store *st, int64_t now, int64_t after_until, const char *after_id, size_t limit,
                            struct store_document **ret, size_t *ret_n);
int sqlite_hold_insert(struct store *st, const struct store_hold *h);
int sqlite_hold_release(struct store *st, const char *org_id, const char *document_id, const char *id, int64_t now);
int sqlite_hold_list(struct store *st, const char *org_id, const char *document_id, size_t max, struct store_hold **ret,
                     size_t *ret_n);

/* The account operations (sqlite_accounts.c), and the row readers sqlite.c shares with them. */
int sqlite_org_from_row(sqlite3_stmt *q, struct store_org *o) _warn_unused_;
int sqlite_token_from_row(sqlite3_stmt *q, struct store_token *t) _warn_unused_;
int sqlite_org_update(struct store *st, const struct store_org *o);
int sqlite_user_insert(struct store *st, const struct store_user *u);
int sqlite_user_get(struct store *st, const char *org_id, const char *id, struct store_user *ret);
int sqlite_user_get_by_index(struct store *st, const uint8_t idx[32], struct store_user *ret);
int sqlite_user_list(struct store *st, const char *org_id, size_t max, struct store_user **ret, size_t *ret_n);
int sqlite_user_update(struct store *st, const struct store_user *u);
int sqlite_user_login_update(struct store *st, const struct store_user *u, uint64_t prev_step);
int sqlite_user_delete(struct store *st, const char *org_id, const char *id);
int sqlite_user_count_role(struct store *st, const char *org_id, const char *role, uint64_t *ret);
int sqlite_user_count_active_role(struct store *st, const char *org_id, const char *role, uint64_t *ret);
int sqlite_recovery_set(struct store *st, const char *user_id, const uint8_t (*hashes)[32], size_t n);
int sqlite_recovery_use(struct store *st, const char *user_id, const uint8_t hash[32], int64_t now);
int sqlite_recovery_count(struct store *st, const char *user_id, uint64_t *ret_unused);
int sqlite_session_insert(struct store *st, const struct store_session *se, const uint8_t hash[32]);
int sqlite_session_lookup(struct store *st, const uint8_t hash[32], struct store_session *ret);
int sqlite_session_touch(struct store *st, const char *id, int64_t now);
int sqlite_session_revoke(struct store *st, const char *id, int64_t now);
int sqlite_session_revoke_user(struct store *st, const char *user_id, int64_t now, uint64_t *ret_n);
int sqlite_token_list(struct store *st, const char *org_id, size_t max, struct store_token **ret, size_t *ret_n);
int sqlite_token_revoke(struct store *st, const char *org_id, const char *id, int64_t now);
int sqlite_token_revoke_kind(struct store *st, const char *kind, int64_t now);
int sqlite_token_touch(struct store *st, const char *id, int64_t now);

/* Test hooks. Inserts docs in one transaction the way the group-commit leader does; results[i]
 * gets each row's own result. */
int sqlite_store_insert_batch(struct store *s, const struct store_document *const *docs, int *results, size_t n);
/* How many commit transactions the group commit ran, and how many rows they carried. */
void sqlite_store_commit_stats(struct store *s, uint64_t *ret_commits, uint64_t *ret_rows);
/* The next group commit starts only once n inserts are queued (then takes them all), so a
 * batching test does not depend on scheduling. One-shot; n inserts must come. */
void sqlite_store_hold_group(struct store *s, unsigned n);
