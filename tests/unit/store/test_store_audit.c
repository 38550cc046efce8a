/* test_store_audit.c: the store's audit references (object id -> audit log index): idempotent
 * adds, ascending lists per object, the resume point of a re-index, bad arguments, durability
 * across a reopen and the upgrade of a version 1 database. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/sqlite_internal.h"
#include "store/store.h"
#include "test_store_util.h"

static void doc_id(char out[STORE_ID_LEN + 1], unsigned n) {
        make_id(out, DOC_TAG, n);
}

/* Lists the references of object_id and compares them with want[0..n). */
static void assert_refs(struct store *s, const char *object_id, const uint64_t *want, size_t n) {
        uint64_t *got = NULL;
        size_t got_n = 12345;
        assert_int_equal(s->ops->audit_ref_list(s, object_id, &got, &got_n), 0);
        assert_int_equal(got_n, n);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(got[i], want[i]);
        free(got);
}

static void test_empty(void **state) {
        struct fixture *f = *state;
        char id[STORE_ID_LEN + 1];
        uint64_t next = 99;

        assert_int_equal(f->s->ops->audit_ref_max(f->s, &next), 0);
        assert_int_equal(next, 0);
        doc_id(id, 1);
        assert_refs(f->s, id, NULL, 0);
}

static void test_add_list_max(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];
        uint64_t next;

        doc_id(a, 1);
        doc_id(b, 2);
        /* Out of order, with repeats: the list is ascending and has each index once. */
        const uint64_t adds_a[] = { 40, 3, 17, 3, 0, 40, 1000000007 };
        for (size_t i = 0; i < ELEMENTSOF(adds_a); i++)
                assert_int_equal(s->ops->audit_ref_add(s, a, adds_a[i]), 0);
        assert_int_equal(s->ops->audit_ref_add(s, b, 5), 0);
        assert_int_equal(s->ops->audit_ref_add(s, b, 41), 0);

        const uint64_t want_a[] = { 0, 3, 17, 40, 1000000007 };
        const uint64_t want_b[] = { 5, 41 };
        assert_refs(s, a, want_a, ELEMENTSOF(want_a));
        assert_refs(s, b, want_b, ELEMENTSOF(want_b));

        assert_int_equal(s->ops->audit_ref_max(s, &next), 0);
        assert_int_equal(next, 1000000008);

        /* Any string id works (keys, users, organisations are objects too), compared exactly. */
        assert_int_equal(s->ops->audit_ref_add(s, "org:ÉtéSARL/1", 2), 0);
        const uint64_t want_o[] = { 2 };
        assert_refs(s, "org:ÉtéSARL/1", want_o, 1);
        assert_refs(s, "org:étésarl/1", NULL, 0);
}

static void test_many(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        char a[STORE_ID_LEN + 1];
        uint64_t *got = NULL, next;
        size_t n;

        /* More than the list's first allocation, so it has to grow. */
        doc_id(a, 7);
        for (uint64_t i = 0; i < 300; i++)
                assert_int_equal(s->ops->audit_ref_add(s, a, 3 * (299 - i)), 0);
        assert_int_equal(s->ops->audit_ref_list(s, a, &got, &n), 0);
        assert_int_equal(n, 300);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(got[i], 3 * i);
        free(got);
        assert_int_equal(s->ops->audit_ref_max(s, &next), 0);
        assert_int_equal(next, 3 * 299 + 1);
}

static void test_bad_args(void **state) {
        struct fixture *f = *state;
        struct store *s = f->s;
        char a[STORE_ID_LEN + 1], longid[STORE_AUDIT_OBJECT_MAX + 2];
        uint64_t *got = (uint64_t *) 0x1, next = 77;
        size_t n = 77;

        doc_id(a, 1);
        assert_int_equal(s->ops->audit_ref_add(s, NULL, 1), -EINVAL);
        assert_int_equal(s->ops->audit_ref_add(s, "", 1), -EINVAL);
        assert_int_equal(s->ops->audit_ref_add(s, a, (uint64_t) INT64_MAX + 1), -EINVAL);
        assert_int_equal(s->ops->audit_ref_add(s, a, UINT64_MAX), -EINVAL);
        memset(longid, 'x', sizeof longid - 1);
        longid[sizeof longid - 1] = 0;
        assert_int_equal(s->ops->audit_ref_add(s, longid, 1), -EINVAL);
        longid[STORE_AUDIT_OBJECT_MAX] = 0; /* exactly the limit is fine */
        assert_int_equal(s->ops->audit_ref_add(s, longid, 1), 0);
        assert_int_equal(s->ops->audit_ref_list(s, "", &got, &n), -EINVAL);
        assert_int_equal(s->ops->audit_ref_list(s, NULL, &got, &n), -EINVAL);
        assert_int_equal(s->ops->audit_ref_max(s, NULL), -EINVAL);
        /* Failures leave out-parameters alone. */
        assert_ptr_equal(got, (uint64_t *) 0x1);
        assert_int_equal(n, 77);
        /* The refused adds recorded nothing. */
        assert_refs(s, a, NULL, 0);
        assert_int_equal(s->ops->audit_ref_max(s, &next), 0);
        assert_int_equal(next, 2);
        /* The largest index SQLite can hold. */
        assert_int_equal(s->ops->audit_ref_add(s, a, (uint64_t) INT64_MAX), 0);
        assert_int_equal(s->ops->audit_ref_max(s, &next), 0);
        assert_int_equal(next, (uint64_t) INT64_MAX + 1);
}

static void test_reopen(void **state) {
        struct fixture *f = *state;
        char a[STORE_ID_LEN + 1];
        uint64_t next;

        doc_id(a, 3);
        assert_int_equal(f->s->ops->audit_ref_add(f->s, a, 9), 0);
        assert_int_equal(f->s->ops->audit_ref_add(f->s, a, 4), 0);
        store_close(f->s);
        f->s = NULL;
        assert_int_equal(store_sqlite_open(f->db_path, false, &f->s), 0);
        const uint64_t want[] = { 4, 9 };
        assert_refs(f->s, a, want, 2);
        assert_int_equal(f->s->ops->audit_ref_max(f->s, &next), 0);
        assert_int_equal(next, 10);
}

/* The documents table as schema versions 1 and 2 had it: the name in clear. */
#define DOCUMENTS_V1                                                                          \
        "CREATE TABLE documents ("                                                            \
        "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"                             \
        "  org_id TEXT NOT NULL REFERENCES orgs (id),"                                        \
        "  name TEXT NOT NULL,"                                                               \
        "  class TEXT NOT NULL,"                                                              \
        "  size INTEGER NOT NULL CHECK (size >= 0),"                                          \
        "  sha256 BLOB NOT NULL CHECK (length(sha256) = 32),"                                 \
        "  created_at INTEGER NOT NULL,"                                                      \
        "  created_by TEXT NOT NULL);"                                                        \
        "CREATE INDEX documents_by_org_time ON documents (org_id, created_at DESC, id DESC);" \
        "CREATE INDEX documents_by_org_class_time ON documents (org_id, class, created_at DESC, id DESC);"

/* A vault made before audit references (schema version 1), with a clear name, is upgraded on
 * open and keeps its rows: the name comes back in clear, marked as not sealed yet, until core/
 * seals it (document_seal_names). */
static void test_upgrade_from_v1(void **state) {
        struct fixture *f = *state;
        struct store_document d = make_doc(1, ORG_A, 5, "accounting-10y"), got, *clear = NULL;
        sqlite3 *db;
        sqlite3_stmt *q;
        uint64_t next = 5;
        size_t n = 0;

        store_close(f->s);
        f->s = NULL;

        /* Turn the file back into what version 1 wrote, with one row. */
        assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "DROP TABLE seals; "
                                      "DROP TABLE sessions; DROP TABLE recovery_codes; DROP INDEX tokens_by_user; "
                                      "ALTER TABLE tokens DROP COLUMN kind; ALTER TABLE tokens DROP COLUMN user_id; "
                                      "ALTER TABLE tokens DROP COLUMN name; ALTER TABLE tokens DROP COLUMN scopes; "
                                      "ALTER TABLE tokens DROP COLUMN revoked_at; "
                                      "ALTER TABLE tokens DROP COLUMN last_used; DROP TABLE users; "
                                      "ALTER TABLE orgs DROP COLUMN status; ALTER TABLE orgs DROP COLUMN require_2fa; "
                                      "ALTER TABLE orgs DROP COLUMN default_class; "
                                      "ALTER TABLE orgs DROP COLUMN time_zone; "
                                      "DROP TABLE tombstones; DROP TABLE holds; "
                                      "DROP TABLE audit_refs; DROP TABLE documents; " DOCUMENTS_V1
                                      "DELETE FROM schema_migrations WHERE version > 1; PRAGMA user_version = 1;",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(
                sqlite3_prepare_v2(db, "INSERT INTO documents VALUES (?1, ?2, 'facture-1.pdf', ?3, ?4, ?5, ?6, ?7)", -1,
                                   &q, NULL),
                SQLITE_OK);
        sqlite3_bind_text(q, 1, d.id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, d.org_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, d.class_, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, (int64_t) d.size);
        sqlite3_bind_blob(q, 5, d.sha256, 32, SQLITE_STATIC);
        sqlite3_bind_int64(q, 6, d.created_at);
        sqlite3_bind_text(q, 7, d.created_by, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(q), SQLITE_DONE);
        sqlite3_finalize(q);
        sqlite3_close(db);

        assert_int_equal(store_sqlite_open(f->db_path, false, &f->s), 0);
        assert_int_equal(f->s->ops->document_get(f->s, d.org_id, d.id, &got), 0);
        assert_string_equal(got.name, "facture-1.pdf");
        assert_int_equal(got.name_sealed_len, 0);
        assert_int_equal(f->s->ops->audit_ref_max(f->s, &next), 0);
        assert_int_equal(next, 0);
        assert_int_equal(f->s->ops->audit_ref_add(f->s, d.id, 12), 0);
        const uint64_t want[] = { 12 };
        assert_refs(f->s, d.id, want, 1);

        /* The clear names are found, sealed, and then gone. */
        assert_int_equal(f->s->ops->document_clear_names(f->s, 10, &clear, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(clear[0].id, d.id);
        assert_string_equal(clear[0].name, "facture-1.pdf");
        free(clear);
        assert_int_equal(f->s->ops->document_seal_names(f->s, &d, 1), 0);
        assert_int_equal(f->s->ops->document_clear_names(f->s, 10, &clear, &n), 0);
        assert_int_equal(n, 0);
        free(clear);
        assert_int_equal(f->s->ops->document_get(f->s, d.org_id, d.id, &got), 0);
        assert_doc_equal(&d, &got);
        /* and the index finds it */
        struct store_document_filter flt = { .org_id = d.org_id,
                                             .name_index = d.name_index,
                                             .created_after = INT64_MIN,
                                             .created_before = INT64_MAX,
                                             .limit = 10 };
        struct store_document *rows = NULL;
        char *cursor = NULL;
        assert_int_equal(f->s->ops->document_list(f->s, &flt, &rows, &n, &cursor), 0);
        assert_int_equal(n, 1);
        assert_doc_equal(&d, &rows[0]);
        free(rows);
        assert_int_equal(f->s->ops->compact(f->s), 0);

        assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_migrations", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), SQLITE_SCHEMA_VERSION); /* every migration ran */
        assert_int_equal(SQLITE_SCHEMA_VERSION, 6);
        sqlite3_finalize(q);
        sqlite3_close(db);
}

/* The two queries that run on every document's history and at every start, and the lookup by
 * name, use an index. */
static void test_query_plans(void **state) {
        struct fixture *f = *state;
        const enum sqlite_stmt_id ids[] = { STMT_AUDIT_REF_LIST, STMT_AUDIT_REF_MAX, STMT_DOC_LIST_NAME };
        sqlite3 *db;

        assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                char sql[512];
                sqlite3_stmt *q;
                snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", sqlite_stmt_sql(ids[i]));
                assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
                while (sqlite3_step(q) == SQLITE_ROW) {
                        const char *detail = (const char *) sqlite3_column_text(q, 3);
                        assert_non_null(detail);
                        if (strstr(detail, "SCAN"))
                                fail_msg("full scan in %s: %s", sqlite_stmt_sql(ids[i]), detail);
                        assert_null(strstr(detail, "TEMP B-TREE"));
                }
                sqlite3_finalize(q);
        }
        sqlite3_close(db);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_add_list_max, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upgrade_from_v1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
