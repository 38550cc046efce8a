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

/* A vault made before audit references (schema version 1) is upgraded on open and keeps its rows. */
static void test_upgrade_from_v1(void **state) {
        struct fixture *f = *state;
        struct store_document d = make_doc(1, ORG_A, 5, "accounting-10y"), got;
        sqlite3 *db;
        sqlite3_stmt *q;
        uint64_t next = 5;

        assert_int_equal(f->s->ops->document_insert(f->s, &d), 0);
        store_close(f->s);
        f->s = NULL;

        /* Turn the file back into what version 1 wrote. */
        assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "DROP TABLE seals; DROP TABLE audit_refs; DELETE FROM schema_migrations WHERE version > 1; "
                                      "PRAGMA user_version = 1;",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);

        assert_int_equal(store_sqlite_open(f->db_path, false, &f->s), 0);
        assert_int_equal(f->s->ops->document_get(f->s, d.org_id, d.id, &got), 0);
        assert_doc_equal(&d, &got);
        assert_int_equal(f->s->ops->audit_ref_max(f->s, &next), 0);
        assert_int_equal(next, 0);
        assert_int_equal(f->s->ops->audit_ref_add(f->s, d.id, 12), 0);
        const uint64_t want[] = { 12 };
        assert_refs(f->s, d.id, want, 1);

        assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_migrations", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), 3); /* every migration ran */
        sqlite3_finalize(q);
        sqlite3_close(db);
}

/* The two queries that run on every document's history and at every start use an index. */
static void test_query_plans(void **state) {
        struct fixture *f = *state;
        const enum sqlite_stmt_id ids[] = { STMT_AUDIT_REF_LIST, STMT_AUDIT_REF_MAX };
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
