/* test_store.c: the SQLite metadata store: schema, every operation, group commit under many
 * threads, batch neighbours of a failed row, keyset pagination, cursors, and crash durability. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fileio.h"
#include "store/sqlite_internal.h"
#include "store/store.h"
#include "test_store_util.h"

/* --- schema and open --- */

static void test_open_schema(void **state) {
        struct fixture *f = *state;
        struct stat st;
        sqlite3 *db;
        sqlite3_stmt *q;

        assert_int_equal(stat(f->db_path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), SQLITE_SCHEMA_VERSION);
        sqlite3_finalize(q);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *) sqlite3_column_text(q, 0), "wal");
        sqlite3_finalize(q);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_migrations", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), SQLITE_SCHEMA_VERSION);
        sqlite3_finalize(q);
        sqlite3_close(db);

        /* Reopening an existing vault without create works and keeps the data. */
        struct store_document d = make_doc(1, ORG_A, 5, "accounting-10y"), got;
        assert_int_equal(f->s->ops->document_insert(f->s, &d), 0);
        store_close(f->s);
        f->s = NULL;
        assert_int_equal(store_sqlite_open(f->db_path, false, &f->s), 0);
        assert_int_equal(f->s->ops->document_get(f->s, d.org_id, d.id, &got), 0);
        assert_doc_equal(&d, &got);
        assert_string_equal(f->s->ops->name, "sqlite");

        /* No vault there: no file is created. */
        struct store *none = NULL;
        _cleanup_free_ char *missing = path_join(f->dir, "missing.db");
        assert_int_equal(store_sqlite_open(missing, false, &none), -ENOENT);
        assert_null(none);
        assert_int_equal(access(missing, F_OK), -1);
}

static void test_open_newer_schema(void **state) {
        struct fixture *f = *state;
        sqlite3 *db;

        store_close(f->s);
        f->s = NULL;
        assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_sqlite_open(f->db_path, false, &f->s), -EPROTONOSUPPORT);
        assert_null(f->s);
}

static void test_errno_mapping(void **state) {
        (void) state;
        assert_int_equal(sqlite_errno(SQLITE_OK), 0);
        assert_int_equal(sqlite_errno(SQLITE_DONE), 0);
        assert_int_equal(sqlite_errno(SQLITE_FULL), -ENOSPC);
        assert_int_equal(sqlite_errno(SQLITE_IOERR), -EIO);
        assert_int_equal(sqlite_errno(SQLITE_IOERR_FSYNC), -EIO);
        assert_int_equal(sqlite_errno(SQLITE_IOERR_WRITE), -EIO);
        assert_int_equal(sqlite_errno(SQLITE_CONSTRAINT), -EEXIST);
        assert_int_equal(sqlite_errno(SQLITE_CONSTRAINT_PRIMARYKEY), -EEXIST);
        assert_int_equal(sqlite_errno(SQLITE_CONSTRAINT_UNIQUE), -EEXIST);
        assert_int_equal(sqlite_errno(SQLITE_CONSTRAINT_FOREIGNKEY), -ENOENT);
        assert_int_equal(sqlite_errno(SQLITE_BUSY), -EBUSY);
        assert_int_equal(sqlite_errno(SQLITE_CORRUPT), -EBADMSG);
        assert_int_equal(sqlite_errno(SQLITE_NOMEM), -ENOMEM);
}

/* --- organisations, tokens, settings --- */

static int count_org(const struct store_org *o, void *ud) {
        (void) o;
        (*(int *) ud)++;
        return 0;
}

static int stop_org(const struct store_org *o, void *ud) {
        (void) o;
        (*(int *) ud)++;
        return -ECANCELED;
}

static void test_orgs(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        struct store_org o = { .created_at = 42 }, got;
        int n = 0;

        make_id(o.id, 0xc0c0c0c0u, 0);
        snprintf(o.name, sizeof o.name, "Boulangerie Dupont SARL");
        assert_int_equal(s->ops->org_get(s, o.id, &got), -ENOENT);
        assert_int_equal(s->ops->org_insert(s, &o), 0);
        assert_int_equal(s->ops->org_insert(s, &o), -EEXIST);
        assert_int_equal(s->ops->org_get(s, o.id, &got), 0);
        assert_string_equal(got.id, o.id);
        assert_string_equal(got.name, o.name);
        assert_int_equal(got.created_at, 42);
        assert_int_equal(s->ops->org_foreach(s, count_org, &n), 0);
        assert_int_equal(n, 3);
        n = 0;
        assert_int_equal(s->ops->org_foreach(s, stop_org, &n), -ECANCELED);
        assert_int_equal(n, 1);

        assert_int_equal(s->ops->org_get(s, "../../etc/passwd", &got), -EINVAL);
        snprintf(o.id, sizeof o.id, "C0C0C0C0000000000000000000000001"); /* upper case */
        assert_int_equal(s->ops->org_insert(s, &o), -EINVAL);
        make_id(o.id, 0xc0c0c0c0u, 1);
        o.name[0] = 0;
        assert_int_equal(s->ops->org_insert(s, &o), -EINVAL);
}

static void test_tokens(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        struct store_token t = { .created_at = 100, .expires_at = 200 }, got;
        uint8_t hash[32], other[32];

        memset(hash, 0x11, sizeof hash);
        memset(other, 0x22, sizeof other);
        make_id(t.id, 0x70707070u, 1);
        make_id(t.org_id, ORG_A, 0);
        snprintf(t.role, sizeof t.role, "admin");
        snprintf(t.kind, sizeof t.kind, STORE_TOKEN_API);
        snprintf(t.name, sizeof t.name, "ci upload");
        t.scopes = 3;
        assert_int_equal(s->ops->token_lookup(s, hash, &got), -ENOENT);
        assert_int_equal(s->ops->token_insert(s, &t, hash), 0);
        assert_int_equal(s->ops->token_insert(s, &t, hash), -EEXIST);
        assert_int_equal(s->ops->token_lookup(s, hash, &got), 0);
        assert_string_equal(got.id, t.id);
        assert_string_equal(got.org_id, t.org_id);
        assert_string_equal(got.role, "admin");
        assert_int_equal(got.created_at, 100);
        assert_int_equal(got.expires_at, 200);
        assert_string_equal(got.kind, STORE_TOKEN_API);
        assert_string_equal(got.name, "ci upload");
        assert_string_equal(got.user_id, "");
        assert_int_equal(got.scopes, 3);
        assert_int_equal(got.revoked_at, 0);
        assert_int_equal(s->ops->token_lookup(s, other, &got), -ENOENT);
        /* revoked once, then not found for revocation again */
        assert_int_equal(s->ops->token_revoke(s, t.org_id, t.id, 300), 0);
        assert_int_equal(s->ops->token_revoke(s, t.org_id, t.id, 301), -ENOENT);
        assert_int_equal(s->ops->token_lookup(s, hash, &got), 0);
        assert_int_equal(got.revoked_at, 300);

        /* A token for an organisation that does not exist. */
        make_id(t.id, 0x70707070u, 2);
        make_id(t.org_id, 0xeeeeeeeeu, 0);
        assert_int_equal(s->ops->token_insert(s, &t, other), -ENOENT);
}

static struct store_user make_user(uint32_t tag, uint32_t org, const char *role) {
        struct store_user u = { .created_at = tag, .email_n = 40 };
        make_id(u.id, 0x55550000u | tag, 0);
        make_id(u.org_id, org, 0);
        snprintf(u.role, sizeof u.role, "%s", role);
        snprintf(u.status, sizeof u.status, "active");
        snprintf(u.password_hash, sizeof u.password_hash, "$argon2id$v=19$placeholder");
        memset(u.email_index, (int) tag, sizeof u.email_index);
        memset(u.email, 0xee, u.email_n);
        return u;
}

/* Users, recovery codes, sessions and API tokens: the rows the account rules stand on. */
static void test_accounts(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        struct store_user a = make_user(1, ORG_A, "owner"), b = make_user(2, ORG_B, "viewer"), got;
        uint64_t n = 0;

        assert_int_equal(s->ops->user_insert(s, &a), 0);
        assert_int_equal(s->ops->user_insert(s, &b), 0);
        /* the e-mail index is unique in the whole store, whatever the organisation */
        struct store_user dup = make_user(3, ORG_B, "viewer");
        memcpy(dup.email_index, a.email_index, sizeof dup.email_index);
        assert_int_equal(s->ops->user_insert(s, &dup), -EEXIST);
        /* another organisation's user is not found */
        assert_int_equal(s->ops->user_get(s, a.org_id, b.id, &got), -ENOENT);
        assert_int_equal(s->ops->user_get(s, b.org_id, b.id, &got), 0);
        assert_int_equal(s->ops->user_get_by_index(s, a.email_index, &got), 0);
        assert_string_equal(got.id, a.id);
        assert_int_equal(got.email_n, 40);
        assert_memory_equal(got.email, a.email, 40);
        assert_int_equal(got.display_name_n, 0);
        assert_int_equal(s->ops->user_count_role(s, a.org_id, "owner", &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(s->ops->user_count_active_role(s, a.org_id, "owner", &n), 0);
        assert_int_equal(n, 1);
        /* a disabled owner is an owner, not an active one */
        struct store_user off = make_user(4, ORG_A, "owner");
        snprintf(off.status, sizeof off.status, "disabled");
        assert_int_equal(s->ops->user_insert(s, &off), 0);
        assert_int_equal(s->ops->user_count_role(s, a.org_id, "owner", &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(s->ops->user_count_active_role(s, a.org_id, "owner", &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(s->ops->user_delete(s, a.org_id, off.id), 0);
        assert_int_equal(s->ops->user_delete(s, a.org_id, b.id), -ENOENT);

        /* a login's update only wins over the step it read */
        a.totp_last_step = 7;
        assert_int_equal(s->ops->user_login_update(s, &a, 0), 0);
        a.totp_last_step = 8;
        assert_int_equal(s->ops->user_login_update(s, &a, 0), -ESTALE);
        assert_int_equal(s->ops->user_get(s, NULL, a.id, &got), 0);
        assert_int_equal(got.totp_last_step, 7);

        /* recovery codes: each once */
        uint8_t h[2][32];
        memset(h[0], 1, 32);
        memset(h[1], 2, 32);
        assert_int_equal(s->ops->recovery_set(s, a.id, (const uint8_t(*)[32]) h, 2), 0);
        assert_int_equal(s->ops->recovery_use(s, a.id, h[1], 100), 0);
        assert_int_equal(s->ops->recovery_use(s, a.id, h[1], 101), -ENOENT);
        assert_int_equal(s->ops->recovery_use(s, b.id, h[0], 101), -ENOENT);
        assert_int_equal(s->ops->recovery_count(s, a.id, &n), 0);
        assert_int_equal(n, 1);

        /* sessions: revoked one by one or all of a user's */
        struct store_session se = { .created_at = 1, .last_seen = 1, .expires_at = 1000 }, sg;
        uint8_t sh[32], sh2[32];
        memset(sh, 0x33, sizeof sh);
        memset(sh2, 0x34, sizeof sh2);
        make_id(se.id, 0x5e5e5e5eu, 1);
        snprintf(se.user_id, sizeof se.user_id, "%s", a.id);
        snprintf(se.org_id, sizeof se.org_id, "%s", a.org_id);
        snprintf(se.kind, sizeof se.kind, STORE_SESSION_FULL);
        assert_int_equal(s->ops->session_insert(s, &se, sh), 0);
        make_id(se.id, 0x5e5e5e5eu, 2);
        assert_int_equal(s->ops->session_insert(s, &se, sh2), 0);
        assert_int_equal(s->ops->session_touch(s, se.id, 50), 0);
        assert_int_equal(s->ops->session_lookup(s, sh2, &sg), 0);
        assert_int_equal(sg.last_seen, 50);
        assert_int_equal(sg.revoked_at, 0);
        assert_int_equal(s->ops->session_revoke_user(s, a.id, 60, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(s->ops->session_lookup(s, sh, &sg), 0);
        assert_int_equal(sg.revoked_at, 60);

        /* an API token of the user, listed, then gone with its user (and the sessions and codes) */
        struct store_token t = { .created_at = 5, .scopes = 1 };
        uint8_t th[32];
        memset(th, 0x44, sizeof th);
        make_id(t.id, 0x70700000u, 9);
        snprintf(t.org_id, sizeof t.org_id, "%s", a.org_id);
        snprintf(t.role, sizeof t.role, "owner");
        snprintf(t.kind, sizeof t.kind, STORE_TOKEN_API);
        snprintf(t.user_id, sizeof t.user_id, "%s", a.id);
        snprintf(t.name, sizeof t.name, "ci");
        assert_int_equal(s->ops->token_insert(s, &t, th), 0);
        struct store_token *v = NULL;
        size_t nv = 0;
        assert_int_equal(s->ops->token_list(s, a.org_id, 100, &v, &nv), 0);
        assert_int_equal(nv, 1);
        assert_string_equal(v[0].user_id, a.id);
        free(v);
        assert_int_equal(s->ops->token_list(s, b.org_id, 100, &v, &nv), 0);
        assert_int_equal(nv, 0);
        free(v);
        assert_int_equal(s->ops->user_delete(s, a.org_id, a.id), 0);
        struct store_token tg;
        assert_int_equal(s->ops->token_lookup(s, th, &tg), -ENOENT);
        assert_int_equal(s->ops->session_lookup(s, sh, &sg), -ENOENT);
        assert_int_equal(s->ops->recovery_count(s, a.id, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(s->ops->user_get(s, NULL, a.id, &got), -ENOENT);
}

static void test_settings(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        char *v = NULL;

        assert_int_equal(s->ops->setting_get(s, "log.origin", &v), -ENOENT);
        assert_null(v);
        assert_int_equal(s->ops->setting_set(s, "log.origin", "coffre.example/log"), 0);
        assert_int_equal(s->ops->setting_get(s, "log.origin", &v), 0);
        assert_string_equal(v, "coffre.example/log");
        free(v);
        assert_int_equal(s->ops->setting_set(s, "log.origin", "other"), 0);
        assert_int_equal(s->ops->setting_get(s, "log.origin", &v), 0);
        assert_string_equal(v, "other");
        free(v);
        assert_int_equal(s->ops->setting_set(s, "", "x"), -EINVAL);
}

/* --- documents --- */

static void test_documents(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        struct store_document d = make_doc(7, ORG_A, 1700000000123, "accounting-10y"), got;
        char org_b[STORE_ID_LEN + 1];
        uint64_t count, bytes;
        bool exists;

        make_id(org_b, ORG_B, 0);
        assert_int_equal(s->ops->document_exists(s, d.id, &exists), 0);
        assert_false(exists);
        assert_int_equal(s->ops->document_insert(s, &d), 0);
        assert_int_equal(s->ops->document_insert(s, &d), -EEXIST);
        assert_int_equal(s->ops->document_get(s, d.org_id, d.id, &got), 0);
        assert_doc_equal(&d, &got);
        /* Another organisation does not see it. */
        assert_int_equal(s->ops->document_get(s, org_b, d.id, &got), -ENOENT);
        assert_int_equal(s->ops->document_delete(s, org_b, d.id), -ENOENT);
        assert_int_equal(s->ops->document_exists(s, d.id, &exists), 0);
        assert_true(exists);

        struct store_document d2 = make_doc(8, ORG_B, 1, "payroll-50y");
        assert_int_equal(s->ops->document_insert(s, &d2), 0);
        assert_int_equal(s->ops->document_stats(s, &count, &bytes), 0);
        assert_int_equal(count, 2);
        assert_int_equal(bytes, d.size + d2.size);

        assert_int_equal(s->ops->document_delete(s, d.org_id, d.id), 0);
        assert_int_equal(s->ops->document_get(s, d.org_id, d.id, &got), -ENOENT);
        assert_int_equal(s->ops->document_delete(s, d.org_id, d.id), -ENOENT);
        assert_int_equal(s->ops->document_exists(s, d.id, &exists), 0);
        assert_false(exists);
        assert_int_equal(s->ops->document_stats(s, &count, &bytes), 0);
        assert_int_equal(count, 1);

        /* Unknown organisation, bad ids, bad fields. */
        struct store_document bad = make_doc(9, 0xeeeeeeeeu, 1, "x");
        assert_int_equal(s->ops->document_insert(s, &bad), -ENOENT);
        bad = make_doc(9, ORG_A, 1, "x");
        snprintf(bad.id, sizeof bad.id, "../../../../etc/passwd");
        assert_int_equal(s->ops->document_insert(s, &bad), -EINVAL);
        assert_int_equal(s->ops->document_get(s, d.org_id, "../../etc/passwd", &got), -EINVAL);
        assert_int_equal(s->ops->document_delete(s, d.org_id, "D0C0D0C0000000000000000000000008"), -EINVAL);
        bad = make_doc(9, ORG_A, 1, "");
        assert_int_equal(s->ops->document_insert(s, &bad), -EINVAL);
        bad = make_doc(9, ORG_A, 1, "x");
        bad.name_sealed_len = 0; /* no name */
        assert_int_equal(s->ops->document_insert(s, &bad), -EINVAL);
        bad.name_sealed_len = sizeof bad.name_sealed + 1;
        assert_int_equal(s->ops->document_insert(s, &bad), -EINVAL);
        bad = make_doc(9, ORG_A, 1, "x");
        bad.size = UINT64_MAX;
        assert_int_equal(s->ops->document_insert(s, &bad), -EINVAL);
}

/* A failing row in a batch fails alone; its neighbours commit, in one transaction. */
static void test_batch_neighbours(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        struct store_document old = make_doc(1, ORG_A, 1, "c"), a = make_doc(2, ORG_A, 2, "c"),
                              b = make_doc(3, ORG_B, 3, "c"), c = make_doc(4, ORG_A, 4, "c"),
                              orphan = make_doc(5, 0xeeeeeeeeu, 5, "c"), got;
        uint64_t commits0, rows0, commits1, rows1, count, bytes;

        assert_int_equal(s->ops->document_insert(s, &old), 0);
        const struct store_document *batch[] = { &a, &old, &b, &a, &c, &orphan };
        int results[ELEMENTSOF(batch)];
        memset(results, 0x55, sizeof results);
        sqlite_store_commit_stats(s, &commits0, &rows0);
        assert_int_equal(sqlite_store_insert_batch(s, batch, results, ELEMENTSOF(batch)), 0);
        sqlite_store_commit_stats(s, &commits1, &rows1);
        assert_int_equal(results[0], 0);
        assert_int_equal(results[1], -EEXIST);
        assert_int_equal(results[2], 0);
        assert_int_equal(results[3], -EEXIST); /* duplicate within the same batch */
        assert_int_equal(results[4], 0);
        assert_int_equal(results[5], -ENOENT); /* no such organisation */
        assert_int_equal(commits1 - commits0, 1);
        assert_int_equal(rows1 - rows0, ELEMENTSOF(batch));

        assert_int_equal(s->ops->document_get(s, a.org_id, a.id, &got), 0);
        assert_doc_equal(&a, &got);
        assert_int_equal(s->ops->document_get(s, b.org_id, b.id, &got), 0);
        assert_int_equal(s->ops->document_get(s, c.org_id, c.id, &got), 0);
        assert_int_equal(s->ops->document_stats(s, &count, &bytes), 0);
        assert_int_equal(count, 4);
}

#define GC_THREADS 16
#define GC_ROWS 2000

struct gc_arg {
        struct store *s;
        unsigned first, n;
        unsigned dup_every; /* 0: no duplicates; else every dup_every-th row reuses a pre-inserted id */
        int results[GC_ROWS];
};

static void *gc_thread(void *p) {
        struct gc_arg *a = p;
        for (unsigned i = 0; i < a->n; i++) {
                unsigned n = a->first + i;
                struct store_document d = make_doc(100000 + n, n % 2 ? ORG_A : ORG_B, 1000 + n, "accounting-10y");
                if (a->dup_every && n % a->dup_every == 0)
                        make_id(d.id, DOC_TAG, n / a->dup_every); /* one of the pre-inserted rows */
                a->results[i] = a->s->ops->document_insert(a->s, &d);
        }
        return NULL;
}

static void run_gc_threads(struct store *s, unsigned dup_every, unsigned *ret_ok, unsigned *ret_dup) {
        pthread_t th[GC_THREADS];
        struct gc_arg *args = calloc(GC_THREADS, sizeof *args);
        unsigned ok = 0, dup = 0;

        for (unsigned t = 0; t < GC_THREADS; t++) {
                args[t] = (struct gc_arg){
                        .s = s, .first = t * (GC_ROWS / GC_THREADS), .n = GC_ROWS / GC_THREADS, .dup_every = dup_every
                };
                assert_int_equal(pthread_create(&th[t], NULL, gc_thread, &args[t]), 0);
        }
        for (unsigned t = 0; t < GC_THREADS; t++) {
                assert_int_equal(pthread_join(th[t], NULL), 0);
                for (unsigned i = 0; i < args[t].n; i++) {
                        unsigned n = args[t].first + i;
                        bool is_dup = dup_every && n % dup_every == 0;
                        assert_int_equal(args[t].results[i], is_dup ? -EEXIST : 0);
                        if (is_dup)
                                dup++;
                        else
                                ok++;
                }
        }
        free(args);
        *ret_ok = ok;
        *ret_dup = dup;
}

static void test_group_commit(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        uint64_t commits, rows, count, bytes;
        unsigned ok, dup;
        struct store_document got;

        /* the first commit waits for one row of every writer: batching without hoping */
        sqlite_store_hold_group(s, GC_THREADS);
        run_gc_threads(s, 0, &ok, &dup);
        assert_int_equal(ok, GC_ROWS);
        assert_int_equal(s->ops->document_stats(s, &count, &bytes), 0);
        assert_int_equal(count, GC_ROWS);
        for (unsigned n = 0; n < GC_ROWS; n++) {
                struct store_document d = make_doc(100000 + n, n % 2 ? ORG_A : ORG_B, 1000 + n, "accounting-10y");
                assert_int_equal(s->ops->document_get(s, d.org_id, d.id, &got), 0);
                assert_doc_equal(&d, &got);
        }
        sqlite_store_commit_stats(s, &commits, &rows);
        assert_int_equal(rows, GC_ROWS);
        /* Sixteen writers share commits: the held first one carried a row of each. */
        assert_true(commits <= rows - GC_THREADS + 1);
        print_message("group commit: %" PRIu64 " rows in %" PRIu64 " commits\n", rows, commits);

        /* Still there after closing and reopening. */
        store_close(f->s);
        f->s = NULL;
        assert_int_equal(store_sqlite_open(f->db_path, false, &f->s), 0);
        assert_int_equal(f->s->ops->document_stats(f->s, &count, &bytes), 0);
        assert_int_equal(count, GC_ROWS);
}

static void test_group_commit_duplicates(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        const unsigned dup_every = 10;
        uint64_t count, bytes;
        unsigned ok, dup;

        for (unsigned n = 0; n < GC_ROWS / dup_every; n++) {
                struct store_document d = make_doc(n, ORG_A, 1, "c");
                assert_int_equal(s->ops->document_insert(s, &d), 0);
        }
        run_gc_threads(s, dup_every, &ok, &dup);
        assert_int_equal(dup, GC_ROWS / dup_every);
        assert_int_equal(ok, GC_ROWS - GC_ROWS / dup_every);
        assert_int_equal(s->ops->document_stats(s, &count, &bytes), 0);
        assert_int_equal(count, GC_ROWS / dup_every + ok);
}

/* Reads answer while another connection holds the write lock. */
static void test_reads_do_not_wait_for_writer(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        struct store_document d = make_doc(1, ORG_A, 1, "c"), got;
        sqlite3 *db;

        assert_int_equal(s->ops->document_insert(s, &d), 0);
        assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE; DELETE FROM settings;", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(s->ops->document_get(s, d.org_id, d.id, &got), 0);
        assert_doc_equal(&d, &got);
        assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

/* An acknowledged insert survives kill -9 of the process that made it. */
static void test_kill9(void **state) {
        struct fixture *f = *state;
        int fds[2];
        unsigned acked = 0;
        struct store_document got;

        store_close(f->s);
        f->s = NULL;
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct store *s;
                close(fds[0]);
                if (store_sqlite_open(f->db_path, false, &s) < 0)
                        _exit(1);
                for (unsigned n = 0;; n++) {
                        struct store_document d = make_doc(n, ORG_A, n, "c");
                        if (s->ops->document_insert(s, &d) < 0)
                                _exit(2);
                        if (write(fds[1], &n, sizeof n) != sizeof n)
                                _exit(3);
                }
        }
        close(fds[1]);
        unsigned n;
        while (acked < 300 && read(fds[0], &n, sizeof n) == sizeof n) {
                assert_int_equal(n, acked);
                acked++;
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        /* Rows acknowledged after we stopped counting may exist too; the counted ones must. */
        while (read(fds[0], &n, sizeof n) == sizeof n)
                acked++;
        close(fds[0]);
        assert_int_equal(store_sqlite_open(f->db_path, false, &f->s), 0);
        for (unsigned i = 0; i < acked; i++) {
                struct store_document d = make_doc(i, ORG_A, i, "c");
                assert_int_equal(f->s->ops->document_get(f->s, d.org_id, d.id, &got), 0);
        }
        assert_true(acked >= 300);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open_schema, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_newer_schema, setup, teardown),
                cmocka_unit_test(test_errno_mapping),
                cmocka_unit_test_setup_teardown(test_orgs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
                cmocka_unit_test_setup_teardown(test_accounts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
                cmocka_unit_test_setup_teardown(test_documents, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch_neighbours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_group_commit_duplicates, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reads_do_not_wait_for_writer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
