/* test_field.c: field encryption and blind indexes: round trips, a value moved to another row,
 * column or table or under another key fails, every byte of damage fails, and the fixed vector of
 * docs/formats.md (tests/data/field-v1, made by an independent Python implementation). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto/field.h"
#include "crypto/field_internal.h"
#include "fileio.h"
#include "hex.h"

static const uint8_t KEY[32] = { 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t KEY2[32] = { 99 };
static const char NAME[] = "Bulletin de paie Martin 2026-01.pdf";
static const char ROW[] = "6c1f0a9e2b3d4c5e6f708192a3b4c5d6";

static void seal(const char *table, const char *column, const char *row, const char *v, uint8_t *out) {
        assert_int_equal(field_encrypt(KEY, table, column, row, v, strlen(v), out), 0);
}

static int open_(const uint8_t key[32], const char *table, const char *column, const char *row, const uint8_t *c,
                 size_t n, char *out) {
        size_t pn = 12345;
        int r = field_decrypt(key, table, column, row, c, n, (uint8_t *) out, &pn);
        if (r == 0) {
                assert_int_equal(pn, n - FIELD_OVERHEAD);
                out[pn] = 0;
        } else
                assert_int_equal(pn, 12345); /* ret_n untouched on failure */
        return r;
}

static void test_round_trip(void **state) {
        (void) state;
        size_t n = strlen(NAME);
        uint8_t c[sizeof NAME + FIELD_OVERHEAD], c2[sizeof NAME + FIELD_OVERHEAD];
        char back[sizeof NAME + 1];
        seal("documents", "name", ROW, NAME, c);
        seal("documents", "name", ROW, NAME, c2);
        assert_int_equal(c[0], 1);
        /* A fresh nonce each time: equal values do not give equal ciphertexts. */
        assert_memory_not_equal(c, c2, n + FIELD_OVERHEAD);
        assert_null(memmem(c, n + FIELD_OVERHEAD, "Martin", 6));
        assert_int_equal(open_(KEY, "documents", "name", ROW, c, n + FIELD_OVERHEAD, back), 0);
        assert_string_equal(back, NAME);
        assert_int_equal(open_(KEY, "documents", "name", ROW, c2, n + FIELD_OVERHEAD, back), 0);
        assert_string_equal(back, NAME);

        /* The empty value too. */
        uint8_t e[FIELD_OVERHEAD];
        assert_int_equal(field_encrypt(KEY, "users", "phone", "u1", "", 0, e), 0);
        assert_int_equal(open_(KEY, "users", "phone", "u1", e, sizeof e, back), 0);
        assert_string_equal(back, "");
}

static void test_moved_fails(void **state) {
        (void) state;
        size_t n = strlen(NAME) + FIELD_OVERHEAD;
        uint8_t c[sizeof NAME + FIELD_OVERHEAD];
        char back[sizeof NAME + 1];
        seal("documents", "name", ROW, NAME, c);
        assert_int_equal(open_(KEY, "documents", "name", "6c1f0a9e2b3d4c5e6f708192a3b4c5d7", c, n, back), -EBADMSG);
        assert_int_equal(open_(KEY, "documents", "title", ROW, c, n, back), -EBADMSG);
        assert_int_equal(open_(KEY, "users", "name", ROW, c, n, back), -EBADMSG);
        assert_int_equal(open_(KEY2, "documents", "name", ROW, c, n, back), -EBADMSG);
        /* The encoding is length-prefixed: shifting a boundary between the parts changes the AAD. */
        uint8_t d[8 + FIELD_OVERHEAD];
        assert_int_equal(field_encrypt(KEY, "ab", "c", "r", "x", 1, d), 0);
        assert_int_equal(open_(KEY, "a", "bc", "r", d, 1 + FIELD_OVERHEAD, back), -EBADMSG);
        assert_int_equal(open_(KEY, "ab", "cr", "", d, 1 + FIELD_OVERHEAD, back), -EINVAL); /* empty row id */
        assert_int_equal(open_(KEY, "ab", "c", "r", d, 1 + FIELD_OVERHEAD, back), 0);
        assert_string_equal(back, "x");
}

static void test_damage_fails(void **state) {
        (void) state;
        size_t n = strlen(NAME) + FIELD_OVERHEAD;
        uint8_t c[sizeof NAME + FIELD_OVERHEAD];
        char back[sizeof NAME + 1];
        seal("documents", "name", ROW, NAME, c);
        for (size_t i = 0; i < n; i++)
                for (unsigned bit = 0; bit < 8; bit++) {
                        c[i] ^= (uint8_t) (1u << bit);
                        assert_int_equal(open_(KEY, "documents", "name", ROW, c, n, back), -EBADMSG);
                        c[i] ^= (uint8_t) (1u << bit);
                }
        /* Truncated at every length, and an extra byte. */
        for (size_t l = 0; l < n; l++)
                assert_int_equal(open_(KEY, "documents", "name", ROW, c, l, back), -EBADMSG);
        assert_int_equal(open_(KEY, "documents", "name", ROW, c, n, back), 0);
}

/* One context for many values (a listing): a value that fails leaves it usable for the next. */
static void test_ctx(void **state) {
        (void) state;
        struct field_ctx *ctx = NULL;
        uint8_t c[3][sizeof NAME + FIELD_OVERHEAD];
        const char *rows[3] = { "r1", "r2", "r3" };
        size_t n = strlen(NAME), pn;
        char back[sizeof NAME + 1];

        for (size_t i = 0; i < 3; i++)
                seal("documents", "name", rows[i], NAME, c[i]);
        c[1][20] ^= 0x40;
        assert_int_equal(field_ctx_new(KEY, &ctx), 0);
        for (int round = 0; round < 2; round++)
                for (size_t i = 0; i < 3; i++) {
                        int r = field_ctx_decrypt(ctx, "documents", "name", rows[i], c[i], n + FIELD_OVERHEAD,
                                                  (uint8_t *) back, &pn);
                        assert_int_equal(r, i == 1 ? -EBADMSG : 0);
                        if (r == 0) {
                                assert_int_equal(pn, n);
                                assert_memory_equal(back, NAME, n);
                        }
                }
        /* a row id that is not the value's fails under the context too */
        assert_int_equal(
                field_ctx_decrypt(ctx, "documents", "name", "r2", c[0], n + FIELD_OVERHEAD, (uint8_t *) back, &pn),
                -EBADMSG);
        field_ctx_free(ctx);
        field_ctx_free(NULL);

        struct field_ctx *other = NULL;
        assert_int_equal(field_ctx_new(KEY2, &other), 0);
        assert_int_equal(
                field_ctx_decrypt(other, "documents", "name", "r1", c[0], n + FIELD_OVERHEAD, (uint8_t *) back, &pn),
                -EBADMSG);
        field_ctx_free(other);
}

static void test_bad_args(void **state) {
        (void) state;
        uint8_t out[64];
        char long_name[300];
        memset(long_name, 'a', sizeof long_name - 1);
        long_name[sizeof long_name - 1] = 0;
        assert_int_equal(field_encrypt(KEY, "", "name", ROW, "x", 1, out), -EINVAL);
        assert_int_equal(field_encrypt(KEY, NULL, "name", ROW, "x", 1, out), -EINVAL);
        assert_int_equal(field_encrypt(KEY, "documents", long_name, ROW, "x", 1, out), -EINVAL);
        assert_int_equal(field_encrypt(KEY, "documents", "name", ROW, NULL, 1, out), -EINVAL);
        uint8_t idx[FIELD_INDEX_SIZE];
        assert_int_equal(field_blind_index(KEY, "documents", "", "x", 1, idx), -EINVAL);
}

static void test_blind_index(void **state) {
        (void) state;
        uint8_t a[FIELD_INDEX_SIZE], b[FIELD_INDEX_SIZE], c[FIELD_INDEX_SIZE];
        assert_int_equal(field_blind_index(KEY, "documents", "name", NAME, strlen(NAME), a), 0);
        assert_int_equal(field_blind_index(KEY, "documents", "name", NAME, strlen(NAME), b), 0);
        assert_memory_equal(a, b, sizeof a); /* deterministic: equality is what it is for */
        assert_int_equal(field_blind_index(KEY, "documents", "name", NAME, strlen(NAME) - 1, c), 0);
        assert_memory_not_equal(a, c, sizeof a);
        assert_int_equal(field_blind_index(KEY2, "documents", "name", NAME, strlen(NAME), c), 0);
        assert_memory_not_equal(a, c, sizeof a);
        assert_int_equal(field_blind_index(KEY, "documents", "title", NAME, strlen(NAME), c), 0);
        assert_memory_not_equal(a, c, sizeof a);
        assert_int_equal(field_blind_index(KEY, "users", "name", NAME, strlen(NAME), c), 0);
        assert_memory_not_equal(a, c, sizeof a);
        /* Length prefixes: ("ab","c") and ("a","bc") differ. */
        assert_int_equal(field_blind_index(KEY, "ab", "c", "v", 1, b), 0);
        assert_int_equal(field_blind_index(KEY, "a", "bc", "v", 1, c), 0);
        assert_memory_not_equal(b, c, sizeof b);
}

static char *vec_field(const char *text, const char *name) {
        size_t nl = strlen(name);
        for (const char *line = text; line && *line;) {
                const char *end = strchr(line, '\n');
                size_t len = end ? (size_t) (end - line) : strlen(line);
                if (len > nl && memcmp(line, name, nl) == 0 && line[nl] == '=')
                        return strndup(line + nl + 1, len - nl - 1);
                line = end ? end + 1 : NULL;
        }
        fail_msg("field %s missing", name);
        return NULL;
}

static uint8_t *vec_hex(const char *text, const char *name, size_t *ret_n) {
        _cleanup_free_ char *h = vec_field(text, name);
        size_t n = strlen(h) / 2;
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        assert_int_equal(hex_decode(h, p, n), 0);
        *ret_n = n;
        return p;
}

static void test_vector1(void **state) {
        (void) state;
        const char *dir = getenv("COFFRE_TEST_DATA");
        assert_non_null(dir);
        _cleanup_free_ char *sub = path_join(dir, "field-v1");
        _cleanup_free_ char *path = path_join(sub, "vector1.txt");
        _cleanup_buf_ struct buf file;
        assert_int_equal(read_file(path, 1 << 16, &file), 0);
        const char *t = (const char *) file.data;
        size_t kl, il, nl, vl, fl, xl;
        _cleanup_free_ uint8_t *key = vec_hex(t, "enc_key", &kl), *ikey = vec_hex(t, "index_key", &il),
                               *nonce = vec_hex(t, "nonce", &nl), *value = vec_hex(t, "value", &vl),
                               *want = vec_hex(t, "field", &fl), *windex = vec_hex(t, "index", &xl);
        _cleanup_free_ char *table = vec_field(t, "table"), *column = vec_field(t, "column"),
                            *row = vec_field(t, "row");
        assert_int_equal(kl, 32);
        assert_int_equal(il, 32);
        assert_int_equal(nl, FIELD_NONCE_SIZE);
        assert_int_equal(fl, vl + FIELD_OVERHEAD);
        assert_int_equal(xl, FIELD_INDEX_SIZE);

        _cleanup_free_ uint8_t *got = malloc(fl), *back = malloc(vl);
        assert_int_equal(field_encrypt_with_nonce(key, table, column, row, value, vl, nonce, got), 0);
        assert_memory_equal(got, want, fl);
        size_t bn;
        assert_int_equal(field_decrypt(key, table, column, row, want, fl, back, &bn), 0);
        assert_int_equal(bn, vl);
        assert_memory_equal(back, value, vl);

        uint8_t idx[FIELD_INDEX_SIZE];
        assert_int_equal(field_blind_index(ikey, table, column, value, vl, idx), 0);
        assert_memory_equal(idx, windex, sizeof idx);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_moved_fails),
                cmocka_unit_test(test_damage_fails), cmocka_unit_test(test_ctx),
                cmocka_unit_test(test_bad_args),     cmocka_unit_test(test_blind_index),
                cmocka_unit_test(test_vector1),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
