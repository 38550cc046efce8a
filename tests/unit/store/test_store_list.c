/* test_store_list.c: document listing: newest first, keyset pagination that walks every row
 * exactly once under each filter, stability while rows come and go, and malformed input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "store/sqlite_internal.h"
#include "test_store_util.h"

#define N_A 600
#define N_B 100

static const char *const classes[] = { "accounting-10y", "payroll-50y", "contract" };

static struct store_document doc_a(unsigned i) {
        /* Five documents share each millisecond, so ties are broken by id. */
        return make_doc(i, ORG_A, 1000 + i / 5, classes[i % 3]);
}

static struct store_document doc_b(unsigned i) {
        return make_doc(N_A + i, ORG_B, 1000 + i, classes[0]);
}

static void insert_all(struct store *s, struct store_document *docs, size_t n) {
        for (size_t i = 0; i < n; i += 100) {
                const struct store_document *batch[100];
                int results[100];
                size_t k = MIN((size_t) 100, n - i);
                for (size_t j = 0; j < k; j++)
                        batch[j] = &docs[i + j];
                assert_int_equal(sqlite_store_insert_batch(s, batch, results, k), 0);
                for (size_t j = 0; j < k; j++)
                        assert_int_equal(results[j], 0);
        }
}

static int newest_first(const void *a, const void *b) {
        const struct store_document *x = a, *y = b;
        if (x->created_at != y->created_at)
                return x->created_at > y->created_at ? -1 : 1;
        return -strcmp(x->id, y->id);
}

static bool matches(const struct store_document *d, const struct store_document_filter *f) {
        return strcmp(d->org_id, f->org_id) == 0 && (!f->class_ || strcmp(d->class_, f->class_) == 0) &&
               d->created_at >= f->created_after && d->created_at < f->created_before;
}

/* Walks every page of f and checks the concatenation is exactly the expected rows, in order. */
static void check_walk(struct store *s, const struct store_document *all, size_t n_all,
                       struct store_document_filter f, size_t *ret_pages) {
        struct store_document *want = calloc(n_all + 1, sizeof *want);
        size_t n_want = 0, seen = 0, pages = 0;
        char *cursor = NULL;

        for (size_t i = 0; i < n_all; i++)
                if (matches(&all[i], &f))
                        want[n_want++] = all[i];
        qsort(want, n_want, sizeof *want, newest_first);
        for (;;) {
                struct store_document *rows = NULL;
                size_t n = 0;
                char *next = NULL;
                f.cursor = cursor;
                assert_int_equal(s->ops->document_list(s, &f, &rows, &n, &next), 0);
                pages++;
                assert_true(n <= f.limit);
                assert_true(seen + n <= n_want);
                for (size_t i = 0; i < n; i++)
                        assert_doc_equal(&rows[i], &want[seen + i]);
                seen += n;
                free(rows);
                free(cursor);
                cursor = next;
                if (!cursor) {
                        break;
                }
                /* A cursor means more rows: never a trailing empty page. */
                assert_int_equal(n, f.limit);
                assert_true(seen < n_want);
        }
        assert_int_equal(seen, n_want);
        free(want);
        if (ret_pages)
                *ret_pages = pages;
}

static struct store_document_filter filter(unsigned org, size_t limit) {
        static char org_ids[2][STORE_ID_LEN + 1];
        char *id = org_ids[org == ORG_B];
        make_id(id, org, 0);
        return (struct store_document_filter) {
                .org_id = id, .created_after = INT64_MIN, .created_before = INT64_MAX, .limit = limit
        };
}

static void test_list_walk(void **state) {
        struct fixture *fx = *state;
        struct store *s = fx->s;
        struct store_document *all = calloc(N_A + N_B, sizeof *all);
        size_t pages;

        for (unsigned i = 0; i < N_A; i++)
                all[i] = doc_a(i);
        for (unsigned i = 0; i < N_B; i++)
                all[N_A + i] = doc_b(i);
        insert_all(s, all, N_A + N_B);

        const size_t limits[] = { 1, 7, 100, 1000 };
        for (size_t l = 0; l < ELEMENTSOF(limits); l++) {
                struct store_document_filter f = filter(ORG_A, limits[l]);
                check_walk(s, all, N_A + N_B, f, &pages);
                assert_int_equal(pages, (N_A + limits[l] - 1) / limits[l]);

                f.class_ = "payroll-50y";
                check_walk(s, all, N_A + N_B, f, NULL);

                f.class_ = NULL;
                f.created_after = 1030;
                f.created_before = 1090; /* exclusive */
                check_walk(s, all, N_A + N_B, f, NULL);

                f.class_ = "contract";
                check_walk(s, all, N_A + N_B, f, NULL);

                f = filter(ORG_B, limits[l]);
                check_walk(s, all, N_A + N_B, f, NULL);
        }

        /* Exactly one full page: no cursor. */
        struct store_document_filter f = filter(ORG_B, N_B);
        check_walk(s, all, N_A + N_B, f, &pages);
        assert_int_equal(pages, 1);

        /* An empty range and an unknown class give an empty page and no cursor. */
        struct store_document *rows = NULL;
        size_t n = 99;
        char *next = (char *) "x";
        f = filter(ORG_A, 10);
        f.created_after = 2000;
        f.created_before = 2000;
        assert_int_equal(s->ops->document_list(s, &f, &rows, &n, &next), 0);
        assert_int_equal(n, 0);
        assert_null(next);
        free(rows);
        f = filter(ORG_A, 10);
        f.class_ = "nope";
        assert_int_equal(s->ops->document_list(s, &f, &rows, &n, &next), 0);
        assert_int_equal(n, 0);
        assert_null(next);
        free(rows);
        free(all);
}

/* Rows added or removed between pages never make the walk repeat or skip an original row. */
static void test_list_stable_under_inserts(void **state) {
        struct fixture *fx = *state;
        struct store *s = fx->s;
        struct store_document docs[100];
        int seen[100 + 20] = { 0 };
        char *cursor = NULL;
        unsigned pages = 0;

        for (unsigned i = 0; i < 100; i++)
                docs[i] = make_doc(i, ORG_A, 5000 + i / 3, "c");
        insert_all(s, docs, 100);
        for (;;) {
                struct store_document_filter f = filter(ORG_A, 10);
                struct store_document *rows = NULL;
                size_t n = 0;
                char *next = NULL;
                f.cursor = cursor;
                assert_int_equal(s->ops->document_list(s, &f, &rows, &n, &next), 0);
                for (size_t i = 0; i < n; i++) {
                        unsigned k = (unsigned) strtoul(rows[i].id + 8, NULL, 16);
                        assert_true(k < 120);
                        seen[k]++;
                }
                free(rows);
                free(cursor);
                cursor = next;
                if (pages++ == 0) {
                        /* After the first page: 10 newer rows, 10 older rows, one unseen row deleted. */
                        for (unsigned i = 0; i < 10; i++) {
                                struct store_document newer = make_doc(100 + i, ORG_A, 9000 + i, "c");
                                struct store_document older = make_doc(110 + i, ORG_A, 10 + i, "c");
                                assert_int_equal(s->ops->document_insert(s, &newer), 0);
                                assert_int_equal(s->ops->document_insert(s, &older), 0);
                        }
                        assert_int_equal(s->ops->document_delete(s, docs[0].org_id, docs[0].id), 0);
                }
                if (!cursor)
                        break;
        }
        assert_int_equal(seen[0], 0); /* deleted before its page */
        for (unsigned i = 1; i < 100; i++)
                assert_int_equal(seen[i], 1);
        for (unsigned i = 100; i < 110; i++)
                assert_int_equal(seen[i], 0); /* newer than the cursor: on a fresh walk only */
        for (unsigned i = 110; i < 120; i++)
                assert_int_equal(seen[i], 1);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void assert_list_einval(struct store *s, struct store_document_filter f) {
        struct store_document *rows = (struct store_document *) &f; /* must stay untouched */
        size_t n = 12345;
        char *next = (char *) "untouched";
        assert_int_equal(s->ops->document_list(s, &f, &rows, &n, &next), -EINVAL);
        assert_ptr_equal(rows, (struct store_document *) &f);
        assert_int_equal(n, 12345);
        assert_string_equal(next, "untouched");
}

static void test_list_bad_input(void **state) {
        struct fixture *fx = *state;
        struct store *s = fx->s;
        struct store_document docs[5];
        struct store_document *rows = NULL;
        size_t n = 0;
        char *cursor = NULL;

        for (unsigned i = 0; i < 5; i++)
                docs[i] = make_doc(i, ORG_A, 100 + i, "c");
        insert_all(s, docs, 5);
        struct store_document_filter f = filter(ORG_A, 2);
        assert_int_equal(s->ops->document_list(s, &f, &rows, &n, &cursor), 0);
        free(rows);
        assert_non_null(cursor);
        size_t len = strlen(cursor);

        /* The real cursor works. */
        f.cursor = cursor;
        char *next = NULL;
        assert_int_equal(s->ops->document_list(s, &f, &rows, &n, &next), 0);
        assert_int_equal(n, 2);
        assert_string_equal(rows[0].id, docs[2].id);
        free(rows);
        free(next);

        char bad[256];
        const char *fixed[] = { "", "!", "AAAA", "not a cursor", "../../etc/passwd" };
        for (size_t i = 0; i < ELEMENTSOF(fixed); i++) {
                f.cursor = fixed[i];
                assert_list_einval(s, f);
        }
        /* Standard-alphabet characters, padding, extra and missing characters. */
        snprintf(bad, sizeof bad, "%s", cursor);
        bad[3] = '+';
        f.cursor = bad;
        assert_list_einval(s, f);
        snprintf(bad, sizeof bad, "%s=", cursor);
        assert_list_einval(s, f);
        snprintf(bad, sizeof bad, "%sA", cursor);
        assert_list_einval(s, f);
        snprintf(bad, sizeof bad, "%.*s", (int) len - 1, cursor);
        assert_list_einval(s, f);
        /* Stray low bits in the last character decode to the same bytes: still refused. */
        snprintf(bad, sizeof bad, "%s", cursor);
        const char *pos = strchr(b64url, bad[len - 1]);
        assert_non_null(pos);
        bad[len - 1] = b64url[(pos - b64url) ^ 1];
        assert_list_einval(s, f);
        /* A well-formed cursor of an unknown version. */
        uint8_t bin[25] = { 2 };
        sodium_bin2base64(bad, sizeof bad, bin, sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        assert_list_einval(s, f);
        memset(bad, 'A', sizeof bad - 1);
        bad[sizeof bad - 1] = 0;
        assert_list_einval(s, f);

        /* Limits and filter fields. */
        f = filter(ORG_A, 0);
        assert_list_einval(s, f);
        f.limit = 1001;
        assert_list_einval(s, f);
        f.limit = 1000;
        f.org_id = "A0A0A0A0000000000000000000000000";
        assert_list_einval(s, f);
        f = filter(ORG_A, 10);
        memset(bad, 'c', 65);
        bad[65] = 0;
        f.class_ = bad;
        assert_list_einval(s, f);
        f.class_ = NULL;
        f.org_id = NULL;
        assert_list_einval(s, f);
        free(cursor);
}

/* Listing seeks in its index with the keyset bound: no sort, no scan from the top of the list. */
static void test_list_query_plan(void **state) {
        struct fixture *fx = *state;
        sqlite3 *db;
        const struct {
                enum sqlite_stmt_id id;
                const char *index;
        } cases[] = {
                { STMT_DOC_LIST, "documents_by_org_time" },
                { STMT_DOC_LIST_CLASS, "documents_by_org_class_time" },
        };

        assert_int_equal(sqlite3_open_v2(fx->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char sql[1024], plan[1024] = "";
                sqlite3_stmt *q;
                snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", sqlite_stmt_sql(cases[i].id));
                assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
                while (sqlite3_step(q) == SQLITE_ROW) {
                        size_t l = strlen(plan);
                        snprintf(plan + l, sizeof plan - l, "%s;", (const char *) sqlite3_column_text(q, 3));
                }
                sqlite3_finalize(q);
                print_message("%s\n", plan);
                assert_non_null(strstr(plan, cases[i].index));
                assert_non_null(strstr(plan, "(created_at,id)<(?,?)"));
                assert_null(strstr(plan, "TEMP B-TREE"));
        }
        sqlite3_close(db);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_list_walk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_stable_under_inserts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_bad_input, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_query_plan, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
