/* keyring_db.c: keyring.db schema and statements (SQLite, WAL, synchronous=FULL, secure_delete). */
#include "keyring_db.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS meta (\n"
        "  name  TEXT PRIMARY KEY,\n"
        "  value BLOB NOT NULL\n"
        ") STRICT;\n"
        "CREATE TABLE IF NOT EXISTS kek (\n"
        "  kek_id     BLOB NOT NULL CHECK (length(kek_id) = 16),\n"
        "  version    INTEGER NOT NULL CHECK (version >= 1),\n"
        "  master_id  BLOB NOT NULL,\n"
        "  wrapped    BLOB NOT NULL,\n"
        "  created_at INTEGER NOT NULL,\n"
        "  PRIMARY KEY (kek_id, version)\n"
        ") STRICT;\n"
        "CREATE TABLE IF NOT EXISTS dek (\n"
        "  object_id   BLOB PRIMARY KEY CHECK (length(object_id) = 16),\n"
        "  kek_id      BLOB NOT NULL,\n"
        "  kek_version INTEGER NOT NULL,\n"
        "  wrapped     BLOB NOT NULL,\n"
        "  created_at  INTEGER NOT NULL,\n"
        "  FOREIGN KEY (kek_id, kek_version) REFERENCES kek (kek_id, version)\n"
        ") STRICT;\n"
        "CREATE INDEX IF NOT EXISTS dek_by_kek ON dek (kek_id, kek_version);\n"
        "CREATE TABLE IF NOT EXISTS org_key (\n"
        "  kek_id      BLOB NOT NULL,\n"
        "  purpose     TEXT NOT NULL,\n"
        "  kek_version INTEGER NOT NULL,\n"
        "  wrapped     BLOB NOT NULL,\n"
        "  created_at  INTEGER NOT NULL,\n"
        "  PRIMARY KEY (kek_id, purpose),\n"
        "  FOREIGN KEY (kek_id, kek_version) REFERENCES kek (kek_id, version)\n"
        ") STRICT;\n"
        "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', X'01');\n";

static int sql_err(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        case SQLITE_NOTADB:
        case SQLITE_CORRUPT:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

static void finalizep(sqlite3_stmt **s) {
        sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(finalizep)

static int exec(sqlite3 *db, const char *sql) {
        return sql_err(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **ret) {
        return sql_err(sqlite3_prepare_v2(db, sql, -1, ret, NULL));
}

static int bind_blob(sqlite3_stmt *s, int i, const void *p, size_t n) {
        return sql_err(sqlite3_bind_blob(s, i, p, (int) n, SQLITE_TRANSIENT));
}

/* Copies a blob column that must be exactly n bytes (or up to n with ret_len). */
static int col_blob(sqlite3_stmt *s, int i, uint8_t *out, size_t n, size_t *ret_len) {
        const void *p = sqlite3_column_blob(s, i);
        size_t l = (size_t) sqlite3_column_bytes(s, i);
        if (!p || (ret_len ? l > n : l != n))
                return -EBADMSG;
        memcpy(out, p, l);
        if (ret_len)
                *ret_len = l;
        return 0;
}

static int col_version(sqlite3_stmt *s, int i, uint32_t *ret) {
        sqlite3_int64 v = sqlite3_column_int64(s, i);
        if (v < 1 || v > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t) v;
        return 0;
}

/* Steps a statement that returns no row (or whose rows are ignored). */
static int step_done(sqlite3_stmt *s) {
        int rc = sqlite3_step(s);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sql_err(rc);
}

int kdb_open(const char *path, sqlite3 **ret) {
        sqlite3 *db = NULL;
        int r = sql_err(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL));
        if (r < 0) {
                sqlite3_close_v2(db);
                return r;
        }
        sqlite3_busy_timeout(db, 10000); /* another process (the CLI) may hold the write lock briefly */
        r = exec(db, "PRAGMA journal_mode = WAL;"
                     "PRAGMA synchronous = FULL;"
                     "PRAGMA foreign_keys = ON;"
                     "PRAGMA secure_delete = ON;");
        if (r < 0) {
                sqlite3_close_v2(db);
                return r;
        }
        *ret = db;
        return 0;
}

int kdb_schema(sqlite3 *db) {
        int r = kdb_begin(db);
        if (r < 0)
                return r;
        return kdb_end(db, exec(db, schema_sql));
}

int kdb_begin(sqlite3 *db) {
        return exec(db, "BEGIN IMMEDIATE");
}

int kdb_end(sqlite3 *db, int r) {
        if (r < 0) {
                (void) exec(db, "ROLLBACK");
                return r;
        }
        int c = exec(db, "COMMIT");
        if (c < 0) {
                (void) exec(db, "ROLLBACK");
                return c;
        }
        return r;
}

int kdb_read_begin(sqlite3 *db) {
        return exec(db, "BEGIN DEFERRED");
}

void kdb_read_end(sqlite3 *db) {
        (void) exec(db, "COMMIT");
}

int kdb_checkpoint(sqlite3 *db) {
        int n_log = -1, n_done = -1;
        int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &n_log, &n_done);
        if (rc == SQLITE_BUSY)
                return -EBUSY;
        if (rc != SQLITE_OK)
                return sql_err(rc);
        /* TRUNCATE leaves an empty WAL when it completes */
        return n_log == 0 ? 0 : -EBUSY;
}

int kdb_meta_get(sqlite3 *db, const char *name, uint8_t *out, size_t size) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "SELECT value FROM meta WHERE name = ?", &s);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_err(rc);
        return col_blob(s, 0, out, size, NULL);
}

int kdb_meta_put(sqlite3 *db, const char *name, const uint8_t *p, size_t n) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", &s);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        r = bind_blob(s, 2, p, n);
        return r < 0 ? r : step_done(s);
}

static int kek_select(sqlite3 *db, const char *sql, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version,
                      uint32_t *ret_version, uint8_t wrapped[KEY_WRAP_SIZE], size_t *ret_len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        uint32_t v;
        int r = prep(db, sql, &s);
        if (r < 0)
                return r;
        r = bind_blob(s, 1, kek_id, KEY_WRAP_ID_SIZE);
        if (r < 0)
                return r;
        if (version > 0)
                sqlite3_bind_int64(s, 2, version);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_err(rc);
        r = col_version(s, 0, &v);
        if (r >= 0 && wrapped)
                r = col_blob(s, 1, wrapped, KEY_WRAP_SIZE, ret_len);
        if (r < 0)
                return r;
        if (ret_version)
                *ret_version = v;
        return 0;
}

int kdb_kek_current(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t *ret_version,
                    uint8_t wrapped[KEY_WRAP_SIZE], size_t *ret_len) {
        return kek_select(db, "SELECT version, wrapped FROM kek WHERE kek_id = ? ORDER BY version DESC LIMIT 1", kek_id, 0,
                          ret_version, wrapped, ret_len);
}

int kdb_kek_any(sqlite3 *db, uint8_t ret_kek_id[KEY_WRAP_ID_SIZE], uint32_t *ret_version, uint8_t wrapped[KEY_WRAP_SIZE],
                size_t *ret_len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "SELECT kek_id, version, wrapped FROM kek LIMIT 1", &s);
        if (r < 0)
                return r;
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_err(rc);
        if ((r = col_blob(s, 0, ret_kek_id, KEY_WRAP_ID_SIZE, NULL)) < 0 || (r = col_version(s, 1, ret_version)) < 0)
                return r;
        return col_blob(s, 2, wrapped, KEY_WRAP_SIZE, ret_len);
}

int kdb_kek_oldest(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t *ret_version) {
        return kek_select(db, "SELECT version, wrapped FROM kek WHERE kek_id = ? ORDER BY version ASC LIMIT 1", kek_id, 0,
                          ret_version, NULL, NULL);
}

int kdb_kek_get(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version, uint8_t wrapped[KEY_WRAP_SIZE],
                size_t *ret_len) {
        return kek_select(db, "SELECT version, wrapped FROM kek WHERE kek_id = ? AND version = ?", kek_id, version, NULL,
                          wrapped, ret_len);
}

int kdb_kek_insert(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version,
                   const uint8_t master_id[KEY_WRAP_ID_SIZE], const uint8_t *wrapped, size_t len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "INSERT INTO kek (kek_id, version, master_id, wrapped, created_at) VALUES (?, ?, ?, ?, ?)", &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, kek_id, KEY_WRAP_ID_SIZE)) < 0 || (r = bind_blob(s, 3, master_id, KEY_WRAP_ID_SIZE)) < 0 ||
            (r = bind_blob(s, 4, wrapped, len)) < 0)
                return r;
        sqlite3_bind_int64(s, 2, version);
        sqlite3_bind_int64(s, 5, (sqlite3_int64) time(NULL));
        return step_done(s);
}

static int count_below(sqlite3 *db, const char *sql, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version,
                       int64_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, sql, &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, kek_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        sqlite3_bind_int64(s, 2, version);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW)
                return sql_err(rc) < 0 ? sql_err(rc) : -EIO;
        *ret = sqlite3_column_int64(s, 0);
        return 0;
}

int kdb_kek_delete_below(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int64_t a, b;
        int r = count_below(db, "SELECT count(*) FROM dek WHERE kek_id = ? AND kek_version < ?", kek_id, version, &a);
        if (r < 0)
                return r;
        r = count_below(db, "SELECT count(*) FROM org_key WHERE kek_id = ? AND kek_version < ?", kek_id, version, &b);
        if (r < 0)
                return r;
        if (a > 0 || b > 0) /* never destroy a KEK version that still wraps a key */
                return -EBUSY;
        r = prep(db, "DELETE FROM kek WHERE kek_id = ? AND version < ?", &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, kek_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        sqlite3_bind_int64(s, 2, version);
        return step_done(s);
}

static int delete_by_kek(sqlite3 *db, const char *sql, const uint8_t kek_id[KEY_WRAP_ID_SIZE]) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, sql, &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, kek_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        r = step_done(s);
        return r < 0 ? r : sqlite3_changes(db);
}

int kdb_kek_destroy_all(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE]) {
        int r = delete_by_kek(db, "DELETE FROM dek WHERE kek_id = ?", kek_id);
        if (r >= 0)
                r = delete_by_kek(db, "DELETE FROM org_key WHERE kek_id = ?", kek_id);
        if (r >= 0)
                r = delete_by_kek(db, "DELETE FROM kek WHERE kek_id = ?", kek_id);
        if (r < 0)
                return r;
        return r == 0 ? -ENOENT : 0;
}

int kdb_dek_insert(sqlite3 *db, const uint8_t object_id[KEY_WRAP_ID_SIZE], const uint8_t kek_id[KEY_WRAP_ID_SIZE],
                   uint32_t kek_version, const uint8_t *wrapped, size_t len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "INSERT INTO dek (object_id, kek_id, kek_version, wrapped, created_at) VALUES (?, ?, ?, ?, ?)", &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, object_id, KEY_WRAP_ID_SIZE)) < 0 || (r = bind_blob(s, 2, kek_id, KEY_WRAP_ID_SIZE)) < 0 ||
            (r = bind_blob(s, 4, wrapped, len)) < 0)
                return r;
        sqlite3_bind_int64(s, 3, kek_version);
        sqlite3_bind_int64(s, 5, (sqlite3_int64) time(NULL));
        return step_done(s);
}

int kdb_dek_get(sqlite3 *db, const uint8_t object_id[KEY_WRAP_ID_SIZE], uint8_t ret_kek_id[KEY_WRAP_ID_SIZE],
                uint32_t *ret_version, uint8_t wrapped[KEY_WRAP_SIZE], size_t *ret_len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "SELECT kek_id, kek_version, wrapped FROM dek WHERE object_id = ?", &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, object_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_err(rc);
        if ((r = col_blob(s, 0, ret_kek_id, KEY_WRAP_ID_SIZE, NULL)) < 0 || (r = col_version(s, 1, ret_version)) < 0)
                return r;
        return col_blob(s, 2, wrapped, KEY_WRAP_SIZE, ret_len);
}

int kdb_dek_delete(sqlite3 *db, const uint8_t object_id[KEY_WRAP_ID_SIZE]) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "DELETE FROM dek WHERE object_id = ?", &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, object_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        r = step_done(s);
        if (r < 0)
                return r;
        return sqlite3_changes(db) == 0 ? -ENOENT : 0;
}

int kdb_dek_page(sqlite3 *db, const uint8_t *after, uint8_t (*page)[KEY_WRAP_ID_SIZE], size_t max, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        size_t n = 0;
        int r = prep(db, "SELECT object_id FROM dek WHERE object_id > ? ORDER BY object_id LIMIT ?", &s);
        if (r < 0)
                return r;
        /* An empty blob sorts before every 16-byte id. */
        if ((r = bind_blob(s, 1, after ? after : (const uint8_t *) "", after ? KEY_WRAP_ID_SIZE : 0)) < 0)
                return r;
        sqlite3_bind_int64(s, 2, (sqlite3_int64) max);
        for (;;) {
                int rc = sqlite3_step(s);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW)
                        return sql_err(rc);
                if (n >= max)
                        return -EIO;
                if ((r = col_blob(s, 0, page[n], KEY_WRAP_ID_SIZE, NULL)) < 0)
                        return r;
                n++;
        }
        *ret_n = n;
        return 0;
}

int kdb_org_key_get(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], const char *purpose, uint32_t *ret_version,
                    uint8_t wrapped[KEY_WRAP_SIZE], size_t *ret_len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "SELECT kek_version, wrapped FROM org_key WHERE kek_id = ? AND purpose = ?", &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, kek_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        sqlite3_bind_text(s, 2, purpose, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_err(rc);
        if ((r = col_version(s, 0, ret_version)) < 0)
                return r;
        return col_blob(s, 1, wrapped, KEY_WRAP_SIZE, ret_len);
}

int kdb_org_key_insert(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], const char *purpose, uint32_t version,
                       const uint8_t *wrapped, size_t len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "INSERT INTO org_key (kek_id, purpose, kek_version, wrapped, created_at) VALUES (?, ?, ?, ?, ?)", &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, kek_id, KEY_WRAP_ID_SIZE)) < 0 || (r = bind_blob(s, 4, wrapped, len)) < 0)
                return r;
        sqlite3_bind_text(s, 2, purpose, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, version);
        sqlite3_bind_int64(s, 5, (sqlite3_int64) time(NULL));
        return step_done(s);
}

int kdb_rows_below(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version, size_t limit,
                   struct kdb_wrapped_row **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        _cleanup_free_ struct kdb_wrapped_row *rows = NULL;
        size_t n = 0;
        /* DEKs and organisation keys in one list, oldest version first. */
        int r = prep(db,
                     "SELECT 1, object_id, NULL, kek_version, wrapped FROM dek WHERE kek_id = ?1 AND kek_version < ?2 "
                     "UNION ALL "
                     "SELECT 0, NULL, purpose, kek_version, wrapped FROM org_key WHERE kek_id = ?1 AND kek_version < ?2 "
                     "ORDER BY 4 LIMIT ?3",
                     &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, kek_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        sqlite3_bind_int64(s, 2, version);
        sqlite3_bind_int64(s, 3, (sqlite3_int64) limit);
        rows = calloc(limit > 0 ? limit : 1, sizeof *rows);
        if (!rows)
                return -ENOMEM;
        for (;;) {
                int rc = sqlite3_step(s);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW)
                        return sql_err(rc);
                if (n >= limit)
                        return -EIO;
                struct kdb_wrapped_row *w = &rows[n];
                w->is_dek = sqlite3_column_int(s, 0) == 1;
                if (w->is_dek)
                        r = col_blob(s, 1, w->object_id, KEY_WRAP_ID_SIZE, NULL);
                else {
                        const unsigned char *p = sqlite3_column_text(s, 2);
                        size_t l = (size_t) sqlite3_column_bytes(s, 2);
                        if (!p || l == 0 || l > KEY_WRAP_PURPOSE_MAX)
                                return -EBADMSG;
                        memcpy(w->purpose, p, l);
                        w->purpose[l] = 0;
                }
                if (r >= 0)
                        r = col_version(s, 3, &w->kek_version);
                if (r >= 0)
                        r = col_blob(s, 4, w->wrapped, KEY_WRAP_SIZE, &w->wrapped_len);
                if (r < 0)
                        return r;
                n++;
        }
        *ret = TAKE_PTR(rows);
        *ret_n = n;
        return 0;
}

int kdb_row_rewrap(sqlite3 *db, const struct kdb_wrapped_row *row, const uint8_t kek_id[KEY_WRAP_ID_SIZE],
                   uint32_t new_version, const uint8_t *wrapped, size_t len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db,
                     row->is_dek ? "UPDATE dek SET kek_version = ?1, wrapped = ?2 WHERE object_id = ?3 AND kek_id = ?4"
                                 : "UPDATE org_key SET kek_version = ?1, wrapped = ?2 WHERE purpose = ?3 AND kek_id = ?4",
                     &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, new_version);
        if ((r = bind_blob(s, 2, wrapped, len)) < 0 || (r = bind_blob(s, 4, kek_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        if (row->is_dek)
                r = bind_blob(s, 3, row->object_id, KEY_WRAP_ID_SIZE);
        else
                r = sql_err(sqlite3_bind_text(s, 3, row->purpose, -1, SQLITE_STATIC));
        if (r < 0)
                return r;
        r = step_done(s);
        if (r < 0)
                return r;
        return sqlite3_changes(db) == 1 ? 0 : -EIO;
}

int kdb_kek_all(sqlite3 *db, struct kdb_kek_row **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        _cleanup_free_ struct kdb_kek_row *rows = NULL;
        size_t n = 0, cap = 0;
        int r = prep(db, "SELECT kek_id, version, master_id, wrapped FROM kek ORDER BY kek_id, version", &s);
        if (r < 0)
                return r;
        for (;;) {
                int rc = sqlite3_step(s);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW)
                        return sql_err(rc) < 0 ? sql_err(rc) : -EIO;
                if (n == cap) {
                        if (cap >= KDB_KEK_ALL_MAX)
                                return -E2BIG;
                        size_t nc = cap ? cap * 2 : 16;
                        struct kdb_kek_row *g = realloc(rows, nc * sizeof *g);
                        if (!g)
                                return -ENOMEM;
                        rows = g;
                        cap = nc;
                }
                struct kdb_kek_row *w = &rows[n];
                memset(w, 0, sizeof *w);
                if ((r = col_blob(s, 0, w->kek_id, KEY_WRAP_ID_SIZE, NULL)) < 0 ||
                    (r = col_version(s, 1, &w->version)) < 0 ||
                    (r = col_blob(s, 3, w->wrapped, KEY_WRAP_SIZE, &w->wrapped_len)) < 0)
                        return r;
                size_t ml = 0;
                if (col_blob(s, 2, w->master_id, KEY_WRAP_ID_SIZE, &ml) < 0 || ml != KEY_WRAP_ID_SIZE)
                        memset(w->master_id, 0, KEY_WRAP_ID_SIZE); /* an id of another size is nobody's */
                n++;
        }
        *ret = TAKE_PTR(rows);
        *ret_n = n;
        return 0;
}

int kdb_kek_rewrap_master(sqlite3 *db, const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version,
                          const uint8_t master_id[KEY_WRAP_ID_SIZE], const uint8_t *wrapped, size_t len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prep(db, "UPDATE kek SET master_id = ?, wrapped = ? WHERE kek_id = ? AND version = ?", &s);
        if (r < 0)
                return r;
        if ((r = bind_blob(s, 1, master_id, KEY_WRAP_ID_SIZE)) < 0 || (r = bind_blob(s, 2, wrapped, len)) < 0 ||
            (r = bind_blob(s, 3, kek_id, KEY_WRAP_ID_SIZE)) < 0)
                return r;
        sqlite3_bind_int64(s, 4, version);
        r = step_done(s);
        if (r < 0)
                return r;
        return sqlite3_changes(db) == 1 ? 0 : -ENOENT;
}
