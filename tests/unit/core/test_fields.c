/* test_fields.c: document names in a real vault (coffre init's own files, the signer, SQLite and
 * the keyring): sealed in meta.db, found by exact name within one organisation only, refused
 * when a sealed name is moved to another row, and the per-organisation key cache. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/fields.h"
#include "core/vault.h"
#include "core/vault_internal.h"
#include "crypto/keyring.h"
#include "fileio.h"
#include "hex.h"

static const char NAME[] = "Facture Dupont Émilie 2026-03.pdf";
static const char OTHER[] = "Relevé BNP janvier.pdf";

struct env {
        char base[64];
        char *dir, *meta;
        struct vault *v;
        struct vault_actor a, b; /* two organisations */
        struct store_document a1, a2, a3, b1;
};

static int org_cb(const struct store_org *o, void *ud) {
        snprintf(ud, STORE_ID_LEN + 1, "%s", o->id);
        return 0;
}

static void upload(struct env *e, const struct vault_actor *a, const char *name, struct store_document *ret) {
        struct vault_upload *u = NULL;
        assert_int_equal(vault_upload_begin(e->v, a, name, "accounting-10y", NULL, &u), 0);
        assert_int_equal(vault_upload_write(u, name, strlen(name)), 0);
        assert_int_equal(vault_upload_finish(u, NULL, ret), 0);
        assert_string_equal(ret->name, name);
}

static int setup(void **state) {
        struct env *e = calloc(1, sizeof *e);
        struct vault_init_options o = { 0 };
        char *token = NULL;
        uint8_t raw[16];

        assert_non_null(e);
        snprintf(e->base, sizeof e->base, "/var/tmp/coffre-fields-XXXXXX");
        assert_non_null(mkdtemp(e->base));
        e->dir = path_join(e->base, "vault");
        e->meta = path_join(e->dir, "meta.db");
        assert_int_equal(vault_init(e->dir, &o, &token), 0);
        sodium_memzero(token, strlen(token));
        free(token);
        assert_int_equal(vault_open(e->dir, &e->v), 0);

        /* the organisation coffre init made, and a second one with its own KEK */
        assert_int_equal(e->v->store->ops->org_foreach(e->v->store, org_cb, e->a.org_id), 0);
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, e->b.org_id);
        assert_int_equal(keyring_kek_create(e->v->keyring, raw), 0);
        struct store_org org = { .created_at = 1 };
        snprintf(org.id, sizeof org.id, "%s", e->b.org_id);
        snprintf(org.name, sizeof org.name, "Other SARL");
        assert_int_equal(e->v->store->ops->org_insert(e->v->store, &org), 0);
        snprintf(e->a.actor_id, sizeof e->a.actor_id, "%032x", 1);
        snprintf(e->b.actor_id, sizeof e->b.actor_id, "%032x", 2);
        snprintf(e->a.role, sizeof e->a.role, "admin");
        snprintf(e->b.role, sizeof e->b.role, "admin");

        upload(e, &e->a, NAME, &e->a1);
        upload(e, &e->a, OTHER, &e->a2);
        upload(e, &e->a, NAME, &e->a3);
        upload(e, &e->b, NAME, &e->b1);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        struct env *e = *state;
        vault_close(e->v);
        rm_rf(e->base);
        free(e->dir);
        free(e->meta);
        free(e);
        return 0;
}

static void list(struct env *e, const struct vault_actor *a, const char *name, struct store_document **ret,
                 size_t *ret_n) {
        struct store_document_filter f = {
                .created_after = INT64_MIN,
                .created_before = INT64_MAX,
                .limit = 1000,
        };
        char *cursor = NULL;
        assert_int_equal(vault_document_list(e->v, a, &f, name, ret, ret_n, &cursor), 0);
        assert_null(cursor);
}

static bool has(const struct store_document *d, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(d[i].id, id) == 0)
                        return true;
        return false;
}

static void test_lookup_by_name(void **state) {
        struct env *e = *state;
        struct store_document *d = NULL;
        size_t n = 0;

        list(e, &e->a, NAME, &d, &n);
        assert_int_equal(n, 2); /* a1 and a3, not b1 of the other organisation */
        assert_true(has(d, n, e->a1.id) && has(d, n, e->a3.id));
        for (size_t i = 0; i < n; i++)
                assert_string_equal(d[i].name, NAME);
        vault_document_list_free(d, n);

        list(e, &e->b, NAME, &d, &n);
        assert_int_equal(n, 1);
        assert_string_equal(d[0].id, e->b1.id);
        vault_document_list_free(d, n);

        list(e, &e->a, OTHER, &d, &n);
        assert_int_equal(n, 1);
        assert_string_equal(d[0].id, e->a2.id);
        assert_string_equal(d[0].name, OTHER);
        vault_document_list_free(d, n);
        list(e, &e->b, OTHER, &d, &n);
        assert_int_equal(n, 0);
        vault_document_list_free(d, n);

        /* exact: not a prefix, not another case */
        list(e, &e->a, "Facture Dupont", &d, &n);
        assert_int_equal(n, 0);
        vault_document_list_free(d, n);
        list(e, &e->a, "facture dupont émilie 2026-03.pdf", &d, &n);
        assert_int_equal(n, 0);
        vault_document_list_free(d, n);

        /* everything, each name decrypted */
        list(e, &e->a, NULL, &d, &n);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(d[i].name, strcmp(d[i].id, e->a2.id) == 0 ? OTHER : NAME);
        vault_document_list_free(d, n);

        struct store_document g;
        assert_int_equal(vault_document_get(e->v, &e->a, e->a2.id, &g), 0);
        assert_string_equal(g.name, OTHER);
        assert_int_equal(vault_document_get(e->v, &e->b, e->a2.id, &g), -ENOENT);
}

static int64_t sql_int(struct env *e, const char *sql) {
        sqlite3 *db;
        sqlite3_stmt *q;
        assert_int_equal(sqlite3_open_v2(e->meta, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        int64_t v = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        sqlite3_close(db);
        return v;
}

static void sql_exec(struct env *e, const char *sql) {
        sqlite3 *db;
        assert_int_equal(sqlite3_open_v2(e->meta, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

static void test_stored_sealed(void **state) {
        struct env *e = *state;
        char sql[512];
        assert_int_equal(sql_int(e, "SELECT count(*) FROM documents"), 4);
        assert_int_equal(
                sql_int(e, "SELECT count(*) FROM documents WHERE typeof(name) = 'blob' AND name_bi IS NOT NULL"), 4);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM documents WHERE instr(name, CAST('Dupont' AS BLOB)) > 0 "
                                    "OR instr(name, CAST('BNP' AS BLOB)) > 0"),
                         0);
        /* each sealed name is 29 bytes longer than its name */
        snprintf(sql, sizeof sql, "SELECT length(name) FROM documents WHERE id = '%s'", e->a2.id);
        assert_int_equal(sql_int(e, sql), (int64_t) strlen(OTHER) + 29);
        /* one index for one name in one organisation; another organisation's differs */
        snprintf(
                sql, sizeof sql,
                "SELECT (SELECT name_bi FROM documents WHERE id = '%s') = (SELECT name_bi FROM documents WHERE id = '%s')",
                e->a1.id, e->a3.id);
        assert_int_equal(sql_int(e, sql), 1);
        snprintf(
                sql, sizeof sql,
                "SELECT (SELECT name_bi FROM documents WHERE id = '%s') = (SELECT name_bi FROM documents WHERE id = '%s')",
                e->a1.id, e->b1.id);
        assert_int_equal(sql_int(e, sql), 0);
        /* and equal names do not have equal ciphertexts */
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT name FROM documents WHERE id = '%s') = (SELECT name FROM documents WHERE id = '%s')",
                 e->a1.id, e->a3.id);
        assert_int_equal(sql_int(e, sql), 0);
}

/* Runs last: it damages rows. */
static void test_moved_name_refused(void **state) {
        struct env *e = *state;
        struct store_document g, *d = NULL;
        char sql[512];
        size_t n = 0;
        struct store_document_filter f = { .created_after = INT64_MIN, .created_before = INT64_MAX, .limit = 10 };
        char *cursor = NULL;

        /* a2's row given a1's sealed name (and index): same organisation, other row */
        snprintf(sql, sizeof sql,
                 "UPDATE documents SET (name, name_bi) = (SELECT name, name_bi FROM documents WHERE id = '%s') "
                 "WHERE id = '%s'",
                 e->a1.id, e->a2.id);
        sql_exec(e, sql);
        assert_int_equal(vault_document_get(e->v, &e->a, e->a2.id, &g), -EBADMSG);
        assert_int_equal(vault_document_get(e->v, &e->a, e->a1.id, &g), 0);
        assert_int_equal(vault_document_list(e->v, &e->a, &f, NULL, &d, &n, &cursor), -EBADMSG);

        /* b1 given a sealed name of the other organisation's */
        snprintf(sql, sizeof sql,
                 "UPDATE documents SET (name, name_bi) = (SELECT name, name_bi FROM documents WHERE id = '%s') "
                 "WHERE id = '%s'",
                 e->a3.id, e->b1.id);
        sql_exec(e, sql);
        assert_int_equal(vault_document_get(e->v, &e->b, e->b1.id, &g), -EBADMSG);

        /* one byte changed */
        snprintf(sql, sizeof sql,
                 "UPDATE documents SET name = CAST(substr(name, 1, 20) || CASE WHEN substr(name, 21, 1) = x'41' "
                 "THEN x'42' ELSE x'41' END || substr(name, 22) AS BLOB) WHERE id = '%s'",
                 e->a1.id);
        sql_exec(e, sql);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM documents WHERE typeof(name) = 'blob'"), 4);
        assert_int_equal(vault_document_get(e->v, &e->a, e->a1.id, &g), -EBADMSG);
}

static void test_key_cache(void **state) {
        struct env *e = *state;
        const uint8_t *ea, *ia, *ea2, *ia2, *eb, *ib;

        assert_int_equal(vault_field_keys(e->v, e->a.org_id, &ea, &ia), 0);
        assert_int_equal(vault_field_keys(e->v, e->a.org_id, &ea2, &ia2), 0);
        assert_ptr_equal(ea, ea2); /* cached: the same guarded memory */
        assert_ptr_equal(ia, ia2);
        assert_int_equal(vault_field_keys(e->v, e->b.org_id, &eb, &ib), 0);
        assert_memory_not_equal(ea, eb, 32);
        assert_memory_not_equal(ea, ia, 32);
        assert_memory_not_equal(ia, ib, 32);
        /* the very keys of the keyring */
        uint8_t raw[16], k[32];
        assert_int_equal(hex_decode(e->a.org_id, raw, sizeof raw), 0);
        assert_int_equal(keyring_org_key(e->v->keyring, raw, "field", k), 0);
        assert_memory_equal(k, ea, 32);
        assert_int_equal(keyring_org_key(e->v->keyring, raw, "field-index", k), 0);
        assert_memory_equal(k, ia, 32);
        sodium_memzero(k, sizeof k);

        assert_int_equal(vault_field_keys(e->v, "not-an-organisation", &ea, &ia), -EINVAL);
        assert_int_equal(vault_field_keys(e->v, "0123456789abcdef0123456789abcdef", &ea, &ia), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup_by_name),
                cmocka_unit_test(test_stored_sealed),
                cmocka_unit_test(test_key_cache),
                cmocka_unit_test(test_moved_name_refused),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
