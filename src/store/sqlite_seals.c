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
