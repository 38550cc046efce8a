/* sqlite_seals.c: the seals of documents in the SQLite store: one row per sealed document,
 * inserted in the document's own transaction and removed with it (ON DELETE CASCADE). */
#include "store/sqlite_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool level_ok(const char *level) {
        return strcmp(level, "B-B") == 0 || strcmp(level, "B-T") == 0;
}

int sqlite_seal_insert(struct sqlite_conn *c, const char *id, const struct store_seal *seal) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r;

        if (!level_ok(seal->level) || !seal->sealed || seal->sealed_len == 0 || seal->sealed_len > STORE_SEAL_MAX)
                return -EINVAL;
        r = sqlite_conn_stmt(c, STMT_SEAL_INSERT, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, seal->level, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, seal->signing_time);
        sqlite3_bind_int64(q, 4, seal->timestamp_time);
        sqlite3_bind_blob(q, 5, seal->sealed, (int) seal->sealed_len, SQLITE_STATIC);
        return sqlite_step_done(q);
}

static int seal_get_conn(struct sqlite_conn *c, const char *id, struct store_seal *ret) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        struct store_seal s = { .audit_index = UINT64_MAX };
        int r = sqlite_conn_stmt(c, STMT_SEAL_GET, &q);
        int n;

        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sqlite_errno(rc);
        r = sqlite_column_copy(q, 0, s.level, sizeof s.level);
        if (r < 0)
                return r;
        n = sqlite3_column_bytes(q, 3);
        if (!level_ok(s.level) || n <= 0 || (size_t) n > STORE_SEAL_MAX)
                return -EBADMSG;
        s.signing_time = sqlite3_column_int64(q, 1);
        s.timestamp_time = sqlite3_column_int64(q, 2);
        s.sealed = malloc((size_t) n);
        if (!s.sealed)
                return -ENOMEM;
        memcpy(s.sealed, sqlite3_column_blob(q, 3), (size_t) n);
        s.sealed_len = (size_t) n;
        *ret = s;
        return 0;
}

int sqlite_seal_get(struct store *st, const char *id, struct store_seal *ret) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!sqlite_id_is_valid(id) || !ret)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = seal_get_conn(c, id, ret);
        sqlite_reader_put(s, c);
        return r;
}

static int seal_stmt_simple(struct sqlite_conn *c, enum sqlite_stmt_id id) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, id, &q);
        if (r < 0)
                return r;
        return sqlite_step_done(q);
}

static int seal_upgrade_locked(struct sqlite_conn *c, const char *id, const struct store_seal *seal) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL, *ref = NULL;
        int r = sqlite_conn_stmt(c, STMT_SEAL_UPGRADE, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, seal->level, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, seal->signing_time);
        sqlite3_bind_int64(q, 4, seal->timestamp_time);
        sqlite3_bind_blob(q, 5, seal->sealed, (int) seal->sealed_len, SQLITE_STATIC);
        r = sqlite_step_done(q);
        if (r < 0)
                return r;
        if (sqlite3_changes(c->db) != 1)
                return -ENOENT;
        if (seal->audit_index == SQLITE_NO_REF)
                return 0;
        r = sqlite_conn_stmt(c, STMT_AUDIT_REF_ADD, &ref);
        if (r < 0)
                return r;
        sqlite3_bind_text(ref, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ref, 2, (int64_t) seal->audit_index);
        return sqlite_step_done(ref);
}

int sqlite_seal_upgrade(struct store *st, const char *id, const struct store_seal *seal) {
        struct sqlite_store *s = sqlite_store_of(st);

        if (!sqlite_id_is_valid(id) || !seal || strcmp(seal->level, "B-T") != 0 || !seal->sealed ||
            seal->sealed_len == 0 || seal->sealed_len > STORE_SEAL_MAX ||
            (seal->audit_index != SQLITE_NO_REF && seal->audit_index > (uint64_t) INT64_MAX))
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        struct sqlite_conn *c = s->writer;
        int r = seal_stmt_simple(c, STMT_BEGIN);
        if (r >= 0) {
                r = seal_upgrade_locked(c, id, seal);
                if (r >= 0)
                        r = seal_stmt_simple(c, STMT_COMMIT);
                if (r < 0 && !sqlite3_get_autocommit(c->db))
                        (void) seal_stmt_simple(c, STMT_ROLLBACK);
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

int sqlite_seal_list_level(struct store *st, const char *level, size_t max, struct store_seal_ref *ret, size_t *ret_n) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;
        size_t n = 0;

        if (!level_ok(level) || max == 0 || max > INT32_MAX)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        {
                _cleanup_stmt_ sqlite3_stmt *q = NULL;
                r = sqlite_conn_stmt(c, STMT_SEAL_LIST_LEVEL, &q);
                if (r >= 0) {
                        sqlite3_bind_text(q, 1, level, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 2, (int64_t) max);
                        int rc = SQLITE_DONE;
                        while (n < max && (rc = sqlite3_step(q)) == SQLITE_ROW) {
                                r = sqlite_column_copy(q, 0, ret[n].id, sizeof ret[n].id);
                                if (r >= 0)
                                        r = sqlite_column_copy(q, 1, ret[n].org_id, sizeof ret[n].org_id);
                                if (r < 0)
                                        break;
                                n++;
                        }
                        if (r >= 0 && n < max && rc != SQLITE_DONE)
                                r = sqlite_errno(rc);
                }
        }
        sqlite_reader_put(s, c);
        if (r < 0)
                return r;
        *ret_n = n;
        return 0;
}
