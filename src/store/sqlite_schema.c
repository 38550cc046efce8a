/* sqlite_schema.c: the SQLite side of the metadata store that is not about requests: opening a
 * connection with the right pragmas, the prepared statement cache, result code mapping and the
 * schema with its migrations (tracked by PRAGMA user_version and the schema_migrations table). */
#include "store/sqlite_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUSY_TIMEOUT_MS 10000

#define ORG_COLUMNS "id, name, created_at, status, require_2fa, default_class, time_zone"
#define TOKEN_COLUMNS                                                                                       \
        "id, org_id, role, created_at, expires_at, kind, coalesce(user_id, ''), name, scopes, revoked_at, " \
        "last_used"
#define USER_COLUMNS                                                                                      \
        "id, org_id, role, status, email_index, email, display_name, phone, password_hash, totp_secret, " \
        "totp_enabled, totp_last_step, logged_in, created_at"

/* The columns of a document row, in the order document_from_row reads them. */
#define DOC_COLUMNS \
        "id, org_id, name, class, size, sha256, created_at, created_by, name_bi, retain_until, lock, document_date"

/* Every statement the store runs, one per use, prepared once per connection. */
static const char *const stmt_sql[_STMT_MAX] = {
        [STMT_ORG_INSERT] = "INSERT INTO orgs (id, name, created_at, status, require_2fa, default_class, time_zone) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        [STMT_ORG_GET] = "SELECT " ORG_COLUMNS " FROM orgs WHERE id = ?1",
        [STMT_ORG_ALL] = "SELECT " ORG_COLUMNS " FROM orgs ORDER BY id",
        [STMT_ORG_UPDATE] = "UPDATE orgs SET name = ?2, status = ?3, require_2fa = ?4, default_class = ?5, "
                            "time_zone = ?6 WHERE id = ?1",
        [STMT_DOC_INSERT] =
                "INSERT INTO documents (id, org_id, name, name_bi, class, size, sha256, created_at, "
                "created_by, retain_until, lock, document_date) VALUES (?1, ?2, ?3, ?9, ?4, ?5, ?6, ?7, ?8, ?10, ?11, "
                "?12)",
        [STMT_DOC_GET] = "SELECT " DOC_COLUMNS " FROM documents WHERE id = ?1 AND org_id = ?2",
        /* Keyset pagination, newest first: rows strictly below the bound (created_at, id), which is
         * the cursor, or (created_before, '') on the first page. One row-value bound lets SQLite
         * seek straight to it in the index, so a deep page costs what the first one does. */
        [STMT_DOC_LIST] = "SELECT " DOC_COLUMNS " FROM documents WHERE org_id = ?1 AND created_at >= ?2 "
                          "AND (created_at, id) < (?3, ?4) ORDER BY created_at DESC, id DESC LIMIT ?5",
        [STMT_DOC_LIST_CLASS] = "SELECT " DOC_COLUMNS " FROM documents WHERE org_id = ?1 AND class = ?6 "
                                "AND created_at >= ?2 AND (created_at, id) < (?3, ?4) "
                                "ORDER BY created_at DESC, id DESC LIMIT ?5",
        /* An exact name, through its blind index (class optional: the name narrows enough). */
        [STMT_DOC_LIST_NAME] = "SELECT " DOC_COLUMNS " FROM documents WHERE org_id = ?1 AND name_bi = ?7 "
                               "AND (?6 IS NULL OR class = ?6) AND created_at >= ?2 AND (created_at, id) < (?3, ?4) "
                               "ORDER BY created_at DESC, id DESC LIMIT ?5",
        [STMT_DOC_CLEAR_NAMES] = "SELECT " DOC_COLUMNS " FROM documents WHERE name_bi IS NULL LIMIT ?1",
        [STMT_DOC_SEAL_NAME] = "UPDATE documents SET name = ?2, name_bi = ?3 WHERE id = ?1 AND name_bi IS NULL",
        [STMT_DOC_DELETE] = "DELETE FROM documents WHERE id = ?1 AND org_id = ?2",
        [STMT_DOC_EXISTS] = "SELECT 1 FROM documents WHERE id = ?1",
        [STMT_DOC_STATS] = "SELECT count(*), coalesce(sum(size), 0) FROM documents",
        [STMT_TOKEN_INSERT] = "INSERT INTO tokens (hash, id, org_id, role, created_at, expires_at, kind, user_id, "
                              "name, scopes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        [STMT_TOKEN_LOOKUP] = "SELECT " TOKEN_COLUMNS " FROM tokens WHERE hash = ?1",
        [STMT_TOKEN_LIST] = "SELECT " TOKEN_COLUMNS " FROM tokens WHERE org_id = ?1 AND kind = 'api' "
                            "ORDER BY created_at DESC, id DESC LIMIT ?2",
        [STMT_TOKEN_REVOKE] = "UPDATE tokens SET revoked_at = ?3 WHERE id = ?1 AND org_id = ?2 AND kind = 'api' "
                              "AND revoked_at = 0",
        [STMT_TOKEN_REVOKE_KIND] = "UPDATE tokens SET revoked_at = ?2 WHERE kind = ?1 AND revoked_at = 0",
        [STMT_TOKEN_TOUCH] = "UPDATE tokens SET last_used = ?2 WHERE id = ?1",
        [STMT_TOKEN_DELETE_USER] = "DELETE FROM tokens WHERE user_id = ?1",
        [STMT_USER_INSERT] = "INSERT INTO users (" USER_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                             "?11, ?12, ?13, ?14)",
        [STMT_USER_GET] = "SELECT " USER_COLUMNS " FROM users WHERE id = ?1 AND org_id = ?2",
        [STMT_USER_GET_ANY] = "SELECT " USER_COLUMNS " FROM users WHERE id = ?1",
        [STMT_USER_GET_INDEX] = "SELECT " USER_COLUMNS " FROM users WHERE email_index = ?1",
        [STMT_USER_LIST] = "SELECT " USER_COLUMNS " FROM users WHERE org_id = ?1 ORDER BY created_at, id LIMIT ?2",
        [STMT_USER_UPDATE] = "UPDATE users SET role = ?3, status = ?4, email_index = ?5, email = ?6, "
                             "display_name = ?7, phone = ?8, password_hash = ?9, totp_secret = ?10, "
                             "totp_enabled = ?11, totp_last_step = ?12, logged_in = ?13 WHERE id = ?1 AND org_id = ?2",
        [STMT_USER_LOGIN_UPDATE] = "UPDATE users SET password_hash = ?2, totp_last_step = ?3, logged_in = ?4 "
                                   "WHERE id = ?1 AND totp_last_step = ?5",
        [STMT_USER_DELETE] = "DELETE FROM users WHERE id = ?1 AND org_id = ?2",
        [STMT_USER_COUNT_ROLE] = "SELECT count(*) FROM users WHERE org_id = ?1 AND role = ?2",
        [STMT_USER_COUNT_ROLE_ANY] = "SELECT count(*) FROM users WHERE role = ?1",
        [STMT_USER_COUNT_ROLE_ACTIVE] =
                "SELECT count(*) FROM users WHERE org_id = ?1 AND role = ?2 AND status = 'active'",
        [STMT_RECOVERY_INSERT] = "INSERT INTO recovery_codes (user_id, hash) VALUES (?1, ?2)",
        [STMT_RECOVERY_DELETE_USER] = "DELETE FROM recovery_codes WHERE user_id = ?1",
        [STMT_RECOVERY_USE] = "UPDATE recovery_codes SET used_at = ?3 WHERE user_id = ?1 AND hash = ?2 AND used_at = 0",
        [STMT_RECOVERY_COUNT] = "SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at = 0",
        [STMT_SESSION_INSERT] = "INSERT INTO sessions (hash, id, user_id, org_id, kind, created_at, last_seen, "
                                "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        [STMT_SESSION_LOOKUP] = "SELECT id, user_id, org_id, kind, created_at, last_seen, expires_at, revoked_at "
                                "FROM sessions WHERE hash = ?1",
        [STMT_SESSION_TOUCH] = "UPDATE sessions SET last_seen = ?2 WHERE id = ?1 AND last_seen < ?2",
        [STMT_SESSION_REVOKE] = "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at = 0",
        [STMT_SESSION_REVOKE_USER] = "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at = 0",
        [STMT_SESSION_DELETE_USER] = "DELETE FROM sessions WHERE user_id = ?1",
        [STMT_SETTING_GET] = "SELECT value FROM settings WHERE key = ?1",
        [STMT_SETTING_SET] = "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [STMT_AUDIT_REF_ADD] = "INSERT INTO audit_refs (object_id, log_index) VALUES (?1, ?2) "
                               "ON CONFLICT (object_id, log_index) DO NOTHING",
        [STMT_AUDIT_REF_LIST] = "SELECT log_index FROM audit_refs WHERE object_id = ?1 ORDER BY log_index",
        [STMT_AUDIT_REF_MAX] = "SELECT max(log_index) FROM audit_refs",
        [STMT_SEAL_INSERT] = "INSERT INTO seals (document_id, level, signing_time, timestamp_time, sealed) "
                             "VALUES (?1, ?2, ?3, ?4, ?5)",
        [STMT_SEAL_UPGRADE] = "UPDATE seals SET level = ?2, signing_time = ?3, timestamp_time = ?4, sealed = ?5 "
                              "WHERE document_id = ?1 AND level = 'B-B'",
        [STMT_SEAL_LIST_LEVEL] = "SELECT s.document_id, d.org_id FROM seals s JOIN documents d ON d.id = s.document_id "
                                 "WHERE s.level = ?1 ORDER BY s.document_id LIMIT ?2",
        [STMT_SEAL_GET] = "SELECT level, signing_time, timestamp_time, sealed FROM seals WHERE document_id = ?1",
        [STMT_BEGIN] = "BEGIN IMMEDIATE",
        [STMT_COMMIT] = "COMMIT",
        [STMT_ROLLBACK] = "ROLLBACK",
};

/* Migration i brings the schema from version i to i + 1. Never edit one that has shipped: add. */
static const char *const migrations[SQLITE_SCHEMA_VERSION] = {
        "CREATE TABLE schema_migrations ("
        "  version INTEGER PRIMARY KEY,"
        "  applied_at INTEGER NOT NULL);"
        "CREATE TABLE orgs ("
        "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"
        "  name TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL);"
        "CREATE TABLE documents ("
        "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"
        "  org_id TEXT NOT NULL REFERENCES orgs (id),"
        "  name TEXT NOT NULL,"
        "  class TEXT NOT NULL,"
        "  size INTEGER NOT NULL CHECK (size >= 0),"
        "  sha256 BLOB NOT NULL CHECK (length(sha256) = 32),"
        "  created_at INTEGER NOT NULL,"
        "  created_by TEXT NOT NULL);"
        "CREATE INDEX documents_by_org_time ON documents (org_id, created_at DESC, id DESC);"
        "CREATE INDEX documents_by_org_class_time ON documents (org_id, class, created_at DESC, id DESC);"
        "CREATE TABLE tokens ("
        "  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
        "  id TEXT NOT NULL UNIQUE,"
        "  org_id TEXT NOT NULL REFERENCES orgs (id),"
        "  role TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX tokens_by_org ON tokens (org_id);"
        "CREATE TABLE settings ("
        "  key TEXT PRIMARY KEY NOT NULL,"
        "  value TEXT NOT NULL) WITHOUT ROWID;",
        /* 2: audit references (object id -> audit log index); the second index answers "where
         * does the re-index of the log tail resume" without a scan. */
        "CREATE TABLE audit_refs ("
        "  object_id TEXT NOT NULL CHECK (length(object_id) BETWEEN 1 AND 1024),"
        "  log_index INTEGER NOT NULL CHECK (log_index >= 0),"
        "  PRIMARY KEY (object_id, log_index)) WITHOUT ROWID;"
        "CREATE INDEX audit_refs_by_index ON audit_refs (log_index);",
        /* 3: accounts. Users' personal fields are field ciphertexts (BLOB) and the e-mail's
         * instance-wide blind index, which login looks up; sessions and tokens are found by the
         * SHA-256 of their bearer. Tokens made before this version are coffre init's. */
        "ALTER TABLE orgs ADD COLUMN status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended'));"
        "ALTER TABLE orgs ADD COLUMN require_2fa INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE orgs ADD COLUMN default_class TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE orgs ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';"
        "CREATE TABLE users ("
        "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"
        "  org_id TEXT NOT NULL REFERENCES orgs (id),"
        "  role TEXT NOT NULL,"
        "  status TEXT NOT NULL DEFAULT 'active',"
        "  email_index BLOB NOT NULL UNIQUE CHECK (length(email_index) = 32),"
        "  email BLOB NOT NULL,"
        "  display_name BLOB,"
        "  phone BLOB,"
        "  password_hash TEXT NOT NULL,"
        "  totp_secret BLOB,"
        "  totp_enabled INTEGER NOT NULL DEFAULT 0,"
        "  totp_last_step INTEGER NOT NULL DEFAULT 0,"
        "  logged_in INTEGER NOT NULL DEFAULT 0,"
        "  created_at INTEGER NOT NULL);"
        "CREATE INDEX users_by_org ON users (org_id, created_at, id);"
        "CREATE TABLE recovery_codes ("
        "  user_id TEXT NOT NULL REFERENCES users (id),"
        "  hash BLOB NOT NULL CHECK (length(hash) = 32),"
        "  used_at INTEGER NOT NULL DEFAULT 0,"
        "  PRIMARY KEY (user_id, hash)) WITHOUT ROWID;"
        "CREATE TABLE sessions ("
        "  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
        "  id TEXT NOT NULL UNIQUE,"
        "  user_id TEXT NOT NULL REFERENCES users (id),"
        "  org_id TEXT NOT NULL REFERENCES orgs (id),"
        "  kind TEXT NOT NULL CHECK (kind IN ('full', 'enrol')),"
        "  created_at INTEGER NOT NULL,"
        "  last_seen INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL,"
        "  revoked_at INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
        "CREATE INDEX sessions_by_user ON sessions (user_id);"
        "ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'bootstrap';"
        "ALTER TABLE tokens ADD COLUMN user_id TEXT REFERENCES users (id);"
        "ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE tokens ADD COLUMN scopes INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE tokens ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE tokens ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX tokens_by_user ON tokens (user_id);",
        /* 4: sealed document names. name holds a field ciphertext (core/ seals it; a BLOB) and
         * name_bi its blind index, which exact-name lookups use. The rows of an older vault keep
         * their clear name (TEXT) and a NULL name_bi until core/ seals them at the first open with
         * keys (core/fields.c, from vault_open), which then compacts the file so that no clear
         * name is left in it. */
        "CREATE TABLE documents_v3 ("
        "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"
        "  org_id TEXT NOT NULL REFERENCES orgs (id),"
        "  name BLOB NOT NULL,"
        "  name_bi BLOB CHECK (name_bi IS NULL OR (typeof(name_bi) = 'blob' AND length(name_bi) = 32)),"
        "  class TEXT NOT NULL,"
        "  size INTEGER NOT NULL CHECK (size >= 0),"
        "  sha256 BLOB NOT NULL CHECK (length(sha256) = 32),"
        "  created_at INTEGER NOT NULL,"
        "  created_by TEXT NOT NULL,"
        "  CHECK ((name_bi IS NULL) = (typeof(name) = 'text')));"
        "INSERT INTO documents_v3 (id, org_id, name, name_bi, class, size, sha256, created_at, created_by) "
        "  SELECT id, org_id, name, NULL, class, size, sha256, created_at, created_by FROM documents;"
        "DROP TABLE documents;"
        "ALTER TABLE documents_v3 RENAME TO documents;"
        "CREATE INDEX documents_by_org_time ON documents (org_id, created_at DESC, id DESC);"
        "CREATE INDEX documents_by_org_class_time ON documents (org_id, class, created_at DESC, id DESC);"
        "CREATE INDEX documents_by_org_name ON documents (org_id, name_bi, created_at DESC, id DESC);",
        /* 5: document seals (CAdES), encrypted; gone with their document */
        "CREATE TABLE seals ("
        "  document_id TEXT PRIMARY KEY NOT NULL REFERENCES documents (id) ON DELETE CASCADE,"
        "  level TEXT NOT NULL CHECK (level IN ('B-B', 'B-T')),"
        "  signing_time INTEGER NOT NULL,"
        "  timestamp_time INTEGER NOT NULL,"
        "  sealed BLOB NOT NULL CHECK (length(sealed) BETWEEN 1 AND 65536)) WITHOUT ROWID;",
        /* 6: retention, legal holds and tombstones. The rows of an older vault had no retention:
         * they are kept ten years from their ingest (the longest default), under a governance
         * lock so that an owner can still delete one early with a reason. Hold reasons and cases
         * are field ciphertexts. */
        "ALTER TABLE documents ADD COLUMN retain_until INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE documents ADD COLUMN lock TEXT NOT NULL DEFAULT 'governance' "
        "  CHECK (lock IN ('compliance', 'governance'));"
        "ALTER TABLE documents ADD COLUMN document_date TEXT NOT NULL DEFAULT '';"
        "UPDATE documents SET retain_until = created_at + 315569520000;"
        "CREATE INDEX documents_by_retention ON documents (retain_until, id);"
        "CREATE TABLE tombstones ("
        "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"
        "  org_id TEXT NOT NULL REFERENCES orgs (id),"
        "  class TEXT NOT NULL,"
        "  sha256 BLOB NOT NULL CHECK (length(sha256) = 32),"
        "  created_at INTEGER NOT NULL,"
        "  retain_until INTEGER NOT NULL,"
        "  erased_at INTEGER NOT NULL,"
        "  why TEXT NOT NULL);"
        "CREATE TABLE holds ("
        "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"
        "  org_id TEXT NOT NULL REFERENCES orgs (id),"
        "  document_id TEXT NOT NULL CHECK (length(document_id) = 32),"
        "  reason BLOB NOT NULL,"
        "  case_ref BLOB NOT NULL,"
        "  created_at INTEGER NOT NULL,"
        "  created_by TEXT NOT NULL,"
        "  released_at INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX holds_by_document ON holds (document_id, released_at);"
        "CREATE INDEX holds_by_org ON holds (org_id, released_at, created_at);",
};

int sqlite_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_IOERR:
                return rc == SQLITE_IOERR_NOMEM ? -ENOMEM : -EIO;
        case SQLITE_CONSTRAINT:
                /* A missing organisation is "not found", not "already exists". */
                return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? -ENOENT : -EEXIST;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_MISUSE:
        case SQLITE_RANGE:
                return -EINVAL;
        default:
                return -EIO;
        }
}

static int exec(sqlite3 *db, const char *sql) {
        return sqlite_errno(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* Runs a pragma that answers one row and returns its first column as text in buf. */
static int pragma_text(sqlite3 *db, const char *sql, char *buf, size_t size) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_errno(rc);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const char *t = (const char *) sqlite3_column_text(st, 0);
                snprintf(buf, size, "%s", t ? t : "");
                rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE)
                rc = SQLITE_CORRUPT; /* a pragma that answers nothing: not the database we expect */
        sqlite3_finalize(st);
        return sqlite_errno(rc);
}

void sqlite_conn_close(struct sqlite_conn *c) {
        if (!c)
                return;
        for (size_t i = 0; i < _STMT_MAX; i++)
                sqlite3_finalize(c->stmt[i]);
        sqlite3_close_v2(c->db);
        free(c);
}

int sqlite_conn_open(const char *path, bool writer, struct sqlite_conn **ret) {
        struct sqlite_conn *c = calloc(1, sizeof *c);
        char mode[16];
        int r;

        if (!c)
                return -ENOMEM;
        /* Each connection is used by one thread at a time (we lock around it): no SQLite mutexes. */
        int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                                 NULL);
        if (rc != SQLITE_OK) {
                r = sqlite_errno(rc);
                goto fail;
        }
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
        r = exec(c->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA trusted_schema = OFF; "
                        "PRAGMA secure_delete = ON;");
        if (r < 0)
                goto fail;
        if (writer) {
                r = pragma_text(c->db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
                if (r < 0)
                        goto fail;
                if (strcmp(mode, "wal") != 0) {
                        r = -EOPNOTSUPP;
                        goto fail;
                }
        } else {
                r = exec(c->db, "PRAGMA query_only = ON;");
                if (r < 0)
                        goto fail;
        }
        *ret = c;
        return 0;
fail:
        sqlite_conn_close(c);
        return r;
}

const char *sqlite_stmt_sql(enum sqlite_stmt_id id) {
        return id < _STMT_MAX ? stmt_sql[id] : NULL;
}

int sqlite_conn_stmt(struct sqlite_conn *c, enum sqlite_stmt_id id, sqlite3_stmt **ret) {
        if (!c->stmt[id]) {
                int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id], NULL);
                if (rc != SQLITE_OK)
                        return sqlite_errno(rc);
        }
        *ret = c->stmt[id];
        return 0;
}

static int user_version(sqlite3 *db, int *ret) {
        char buf[32];
        int r = pragma_text(db, "PRAGMA user_version", buf, sizeof buf);
        if (r < 0)
                return r;
        char *end = NULL;
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (errno || end == buf || *end || v < 0 || v > INT_MAX)
                return -EBADMSG; /* not a schema version this program wrote */
        *ret = (int) v;
        return 0;
}

int sqlite_schema_migrate(struct sqlite_conn *c, bool create) {
        char sql[160];
        int v, r;

        /* IMMEDIATE: two processes opening a new vault at once cannot both migrate. */
        r = exec(c->db, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = user_version(c->db, &v);
        if (r < 0)
                goto rollback;
        if (v > SQLITE_SCHEMA_VERSION || v < 0) {
                r = -EPROTONOSUPPORT; /* written by a newer coffre */
                goto rollback;
        }
        if (v == 0 && !create) {
                r = -ENOENT; /* an empty file, not a vault */
                goto rollback;
        }
        for (; v < SQLITE_SCHEMA_VERSION; v++) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                r = exec(c->db, migrations[v]);
                if (r < 0)
                        goto rollback;
                snprintf(sql, sizeof sql,
                         "INSERT INTO schema_migrations (version, applied_at) VALUES (%d, %lld); "
                         "PRAGMA user_version = %d;",
                         v + 1, (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000, v + 1);
                r = exec(c->db, sql);
                if (r < 0)
                        goto rollback;
        }
        r = exec(c->db, "COMMIT");
        if (r < 0)
                goto rollback;
        return 0;
rollback:
        if (!sqlite3_get_autocommit(c->db))
                (void) exec(c->db, "ROLLBACK");
        return r;
}
