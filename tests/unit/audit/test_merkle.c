/* test_merkle.c: RFC 9162 Merkle hashing and proofs against the vectors in tests/data/merkle
 * (RFC 6962 8-leaf reference, transparency-dev golden probes) and against a naive recursive
 * recomputation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "fileio.h"
#include "hex.h"
#include "audit/merkle.h"

/* ---- an in-memory store of complete subtrees, fed by the frontier ---- */

struct store {
        merkle_hash *levels[64];
        uint64_t counts[64];
        uint64_t caps[64];
        uint64_t lookups;
};

static int store_put(void *ud, unsigned level, uint64_t index, const merkle_hash *h) {
        struct store *s = ud;

        assert_true(level < 64);
        assert_int_equal(index, s->counts[level]); /* subtrees complete left to right */
        if (s->counts[level] == s->caps[level]) {
                uint64_t cap = s->caps[level] ? 2 * s->caps[level] : 16;
                merkle_hash *p = realloc(s->levels[level], cap * sizeof *p);
                assert_non_null(p);
                s->levels[level] = p;
                s->caps[level] = cap;
        }
        s->levels[level][s->counts[level]++] = *h;
        return 0;
}

static int store_get(void *ud, unsigned level, uint64_t index, merkle_hash *ret) {
        struct store *s = ud;

        s->lookups++;
        if (level >= 64 || index >= s->counts[level])
                return -ENOENT;
        *ret = s->levels[level][index];
        return 0;
}

static void store_free(struct store *s) {
        for (unsigned i = 0; i < 64; i++)
                free(s->levels[i]);
}

/* ---- naive RFC 9162 2.1 definitions, straight from the text ---- */

static uint64_t naive_k(uint64_t n) {
        uint64_t k = 1;
        while (2 * k < n)
                k *= 2;
        return k;
}

static void naive_mth(const merkle_hash *d, uint64_t n, merkle_hash *ret) {
        merkle_hash l, r;
        if (n == 0) {
                merkle_empty_root(ret);
                return;
        }
        if (n == 1) {
                *ret = d[0];
                return;
        }
        uint64_t k = naive_k(n);
        naive_mth(d, k, &l);
        naive_mth(d + k, n - k, &r);
        merkle_node_hash(&l, &r, ret);
}

static void naive_path(uint64_t m, const merkle_hash *d, uint64_t n, merkle_hash *out, size_t *len) {
        if (n == 1)
                return;
        uint64_t k = naive_k(n);
        if (m < k) {
                naive_path(m, d, k, out, len);
                naive_mth(d + k, n - k, &out[(*len)++]);
        } else {
                naive_path(m - k, d + k, n - k, out, len);
                naive_mth(d, k, &out[(*len)++]);
        }
}

static void naive_subproof(uint64_t m, const merkle_hash *d, uint64_t n, bool b, merkle_hash *out, size_t *len) {
        if (m == n) {
                if (!b)
                        naive_mth(d, n, &out[(*len)++]);
                return;
        }
        uint64_t k = naive_k(n);
        if (m <= k) {
                naive_subproof(m, d, k, b, out, len);
                naive_mth(d + k, n - k, &out[(*len)++]);
        } else {
                naive_subproof(m - k, d + k, n - k, false, out, len);
                naive_mth(d, k, &out[(*len)++]);
        }
}

/* ---- helpers ---- */

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint64_t rng(void) {
        /* xorshift64*, fixed seed: failures are reproducible */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}

static void leaf_for(uint64_t i, merkle_hash *ret) {
        uint8_t b[8];
        for (unsigned j = 0; j < 8; j++)
                b[j] = (uint8_t) (i >> (8 * j));
        merkle_leaf_hash(b, sizeof b, ret);
}

static void hex_hash(const char *s, merkle_hash *ret) {
        assert_int_equal(hex_decode(s, ret->b, MERKLE_HASH_SIZE), 0);
}

/* tests/data of the repository, set by tests/unit/meson.build. */
static const char *data_dir(void) {
        const char *d = getenv("COFFRE_TEST_DATA");
        assert_non_null(d);
        return d;
}

/* ---- RFC 6962 8-leaf reference ---- */

static void build_store(struct store *s, const merkle_hash *leaves, uint64_t n, struct merkle_frontier *f) {
        merkle_frontier_init(f);
        for (uint64_t i = 0; i < n; i++)
                assert_int_equal(merkle_frontier_append(f, &leaves[i], store_put, s), 0);
}

static void test_reference_8leaf(void **state) {
        (void) state;
        _cleanup_free_ char *path = path_join(data_dir(), "merkle/rfc6962_8leaf_reference.json");
        json_error_t err;
        json_t *j = json_load_file(path, 0, &err);
        assert_non_null(j);

        json_t *leaves_hex = json_object_get(j, "leaves_hex"), *leaf_hashes = json_object_get(j, "leaf_hashes");
        merkle_hash leaves[8];
        assert_int_equal(json_array_size(leaves_hex), 8);
        for (size_t i = 0; i < 8; i++) {
                const char *hx = json_string_value(json_array_get(leaves_hex, i));
                size_t len = strlen(hx) / 2;
                uint8_t raw[64];
                assert_true(len <= sizeof raw);
                if (len > 0)
                        assert_int_equal(hex_decode(hx, raw, len), 0);
                merkle_leaf_hash(raw, len, &leaves[i]);
                merkle_hash want;
                hex_hash(json_string_value(json_array_get(leaf_hashes, i)), &want);
                assert_memory_equal(leaves[i].b, want.b, MERKLE_HASH_SIZE);
        }

        struct store s = { 0 };
        struct merkle_frontier f;
        build_store(&s, leaves, 8, &f);

        json_t *roots = json_object_get(j, "roots"), *e;
        size_t idx;
        json_array_foreach(roots, idx, e) {
                uint64_t n = (uint64_t) json_integer_value(json_object_get(e, "tree_size"));
                merkle_hash want, got;
                hex_hash(json_string_value(json_object_get(e, "root")), &want);
                assert_int_equal(merkle_root(store_get, &s, n, &got), 0);
                assert_memory_equal(got.b, want.b, MERKLE_HASH_SIZE);
                merkle_root_from_leaves(leaves, n, &got);
                assert_memory_equal(got.b, want.b, MERKLE_HASH_SIZE);
        }
        merkle_hash fr, want8;
        merkle_frontier_root(&f, &fr);
        hex_hash("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328", &want8);
        assert_memory_equal(fr.b, want8.b, MERKLE_HASH_SIZE);

        json_t *incl = json_object_get(j, "inclusion_proofs");
        assert_true(json_array_size(incl) > 0);
        json_array_foreach(incl, idx, e) {
                uint64_t i = (uint64_t) json_integer_value(json_object_get(e, "leaf_index"));
                uint64_t n = (uint64_t) json_integer_value(json_object_get(e, "tree_size"));
                json_t *pj = json_object_get(e, "proof");
                merkle_hash proof[MERKLE_MAX_PROOF], want[MERKLE_MAX_PROOF], leaf, root;
                size_t len = 0;
                hex_hash(json_string_value(json_object_get(e, "leaf_hash")), &leaf);
                hex_hash(json_string_value(json_object_get(e, "root")), &root);
                for (size_t k = 0; k < json_array_size(pj); k++)
                        hex_hash(json_string_value(json_array_get(pj, k)), &want[k]);
                assert_int_equal(merkle_inclusion_proof(store_get, &s, i, n, proof, &len), 0);
                assert_int_equal(len, json_array_size(pj));
                assert_memory_equal(proof, want, len * sizeof(merkle_hash));
                assert_int_equal(merkle_verify_inclusion(&leaf, i, n, want, len, &root), 0);
        }

        json_t *cons = json_object_get(j, "consistency_proofs");
        assert_true(json_array_size(cons) > 0);
        json_array_foreach(cons, idx, e) {
                uint64_t m = (uint64_t) json_integer_value(json_object_get(e, "size1"));
                uint64_t n = (uint64_t) json_integer_value(json_object_get(e, "size2"));
                json_t *pj = json_object_get(e, "proof");
                merkle_hash proof[MERKLE_MAX_PROOF], want[MERKLE_MAX_PROOF], r1, r2;
                size_t len = 0;
                hex_hash(json_string_value(json_object_get(e, "root1")), &r1);
                hex_hash(json_string_value(json_object_get(e, "root2")), &r2);
                for (size_t k = 0; k < json_array_size(pj); k++)
                        hex_hash(json_string_value(json_array_get(pj, k)), &want[k]);
                assert_int_equal(merkle_consistency_proof(store_get, &s, m, n, proof, &len), 0);
                assert_int_equal(len, json_array_size(pj));
                assert_memory_equal(proof, want, len * sizeof(merkle_hash));
                assert_int_equal(merkle_verify_consistency(m, n, &r1, &r2, want, len), 0);
        }
        store_free(&s);
        json_decref(j);
}

/* ---- transparency-dev golden probes ---- */

/* jansson refuses integers above INT64_MAX (one probe has leafIdx 2^64-1): quote bare numbers
 * so they arrive as strings and parse them as uint64 here. */
static json_t *load_quoted(const char *path) {
        _cleanup_buf_ struct buf in, out;
        buf_init(&in, 1 << 20);
        buf_init(&out, 1 << 20);
        assert_int_equal(read_file(path, 1 << 20, &in), 0);
        for (size_t i = 0; i < in.len; i++) {
                bool starts = in.data[i] >= '0' && in.data[i] <= '9' && i >= 2 && in.data[i - 1] == ' ' &&
                              in.data[i - 2] == ':';
                if (starts) {
                        assert_int_equal(buf_append(&out, "\"", 1), 0);
                        while (i < in.len && in.data[i] >= '0' && in.data[i] <= '9')
                                assert_int_equal(buf_append(&out, &in.data[i++], 1), 0);
                        assert_int_equal(buf_append(&out, "\"", 1), 0);
                        i--;
                        continue;
                }
                assert_int_equal(buf_append(&out, &in.data[i], 1), 0);
        }
        json_error_t err;
        json_t *j = json_loadb((const char *) out.data, out.len, 0, &err);
        if (!j)
                fail_msg("%s: %s", path, err.text);
        return j;
}

static uint64_t get_u64(json_t *j, const char *key) {
        const char *s = json_string_value(json_object_get(j, key));
        assert_non_null(s);
        errno = 0;
        char *end = NULL;
        unsigned long long v = strtoull(s, &end, 10);
        assert_int_equal(errno, 0);
        assert_true(*end == 0);
        return v;
}

/* Decodes a base64 hash; false when it is not exactly 32 bytes (such an input cannot be a valid
 * proof element or root, so it makes the probe fail). */
static bool get_hash(json_t *v, merkle_hash *ret) {
        const char *s = json_string_value(v);
        uint8_t *d = NULL;
        size_t l = 0;
        bool ok;
        if (!s || base64_decode(s, strlen(s), &d, &l) < 0)
                return false;
        ok = l == MERKLE_HASH_SIZE;
        if (ok)
                memcpy(ret->b, d, MERKLE_HASH_SIZE);
        free(d);
        return ok;
}

static bool get_proof(json_t *pj, merkle_hash *proof, size_t *len) {
        *len = 0;
        if (json_is_null(pj) || !pj)
                return true;
        if (json_array_size(pj) > MERKLE_MAX_PROOF)
                return false;
        for (size_t k = 0; k < json_array_size(pj); k++)
                if (!get_hash(json_array_get(pj, k), &proof[(*len)++]))
                        return false;
        return true;
}

static int run_probe(const char *path, bool inclusion) {
        json_t *j = load_quoted(path);
        bool want_err = json_is_true(json_object_get(j, "wantErr"));
        merkle_hash proof[MERKLE_MAX_PROOF], a, b;
        size_t len = 0;
        int r;

        if (inclusion) {
                uint64_t i = get_u64(j, "leafIdx"), n = get_u64(j, "treeSize");
                if (!get_hash(json_object_get(j, "leafHash"), &a) || !get_hash(json_object_get(j, "root"), &b) ||
                    !get_proof(json_object_get(j, "proof"), proof, &len))
                        r = -EBADMSG;
                else
                        r = merkle_verify_inclusion(&a, i, n, proof, len, &b);
        } else {
                uint64_t m = get_u64(j, "size1"), n = get_u64(j, "size2");
                if (!get_hash(json_object_get(j, "root1"), &a) || !get_hash(json_object_get(j, "root2"), &b) ||
                    !get_proof(json_object_get(j, "proof"), proof, &len))
                        r = -EBADMSG;
                else
                        r = merkle_verify_consistency(m, n, &a, &b, proof, len);
        }
        if ((r != 0) != want_err)
                fail_msg("%s: got %d, wantErr %d", path, r, want_err);
        if (r != 0)
                assert_true(r == -EBADMSG || r == -EINVAL);
        json_decref(j);
        return want_err;
}

static void walk_probes(const char *dir, bool inclusion, unsigned *n_ok, unsigned *n_err) {
        DIR *d = opendir(dir);
        struct dirent *de;
        assert_non_null(d);
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *p = path_join(dir, de->d_name);
                size_t l = strlen(de->d_name);
                if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0) {
                        if (run_probe(p, inclusion))
                                (*n_err)++;
                        else
                                (*n_ok)++;
                } else
                        walk_probes(p, inclusion, n_ok, n_err);
        }
        closedir(d);
}

static void test_golden(void **state) {
        (void) state;
        unsigned ok = 0, err = 0;
        _cleanup_free_ char *incl = path_join(data_dir(), "merkle/golden/inclusion");
        _cleanup_free_ char *cons = path_join(data_dir(), "merkle/golden/consistency");
        walk_probes(incl, true, &ok, &err);
        print_message("inclusion probes: %u valid, %u must-fail\n", ok, err);
        assert_true(ok >= 3 && err >= 20);
        ok = err = 0;
        walk_probes(cons, false, &ok, &err);
        print_message("consistency probes: %u valid, %u must-fail\n", ok, err);
        assert_true(ok >= 3 && err >= 20);
}

/* ---- randomised comparison with the naive definitions, sizes 1..1000 ---- */

#define N_MAX 1000

static unsigned ceil_log2(uint64_t n) {
        unsigned l = 0;
        while ((UINT64_C(1) << l) < n)
                l++;
        return l;
}

static void flip_and_expect_failure_incl(const merkle_hash *leaf, uint64_t i, uint64_t n, merkle_hash *proof, size_t len,
                                         const merkle_hash *root) {
        if (len > 0) {
                size_t k = rng() % len;
                proof[k].b[rng() % MERKLE_HASH_SIZE] ^= 0x01;
                assert_int_equal(merkle_verify_inclusion(leaf, i, n, proof, len, root), -EBADMSG);
        }
}

static void test_random(void **state) {
        (void) state;
        merkle_hash *leaves = calloc(N_MAX, sizeof *leaves);
        struct store s = { 0 };
        struct merkle_frontier f;
        assert_non_null(leaves);
        merkle_frontier_init(&f);

        for (uint64_t n = 1; n <= N_MAX; n++) {
                merkle_hash naive, got, fr, lr;
                leaf_for(n - 1, &leaves[n - 1]);
                assert_int_equal(merkle_frontier_append(&f, &leaves[n - 1], store_put, &s), 0);

                naive_mth(leaves, n, &naive);
                s.lookups = 0;
                assert_int_equal(merkle_root(store_get, &s, n, &got), 0);
                assert_true(s.lookups <= 64);
                assert_true(s.lookups == (uint64_t) __builtin_popcountll(n));
                merkle_frontier_root(&f, &fr);
                merkle_root_from_leaves(leaves, n, &lr);
                assert_memory_equal(got.b, naive.b, MERKLE_HASH_SIZE);
                assert_memory_equal(fr.b, naive.b, MERKLE_HASH_SIZE);
                assert_memory_equal(lr.b, naive.b, MERKLE_HASH_SIZE);

                for (int t = 0; t < 4; t++) {
                        uint64_t i = t == 0 ? 0 : t == 1 ? n - 1 : rng() % n;
                        merkle_hash proof[MERKLE_MAX_PROOF], want[MERKLE_MAX_PROOF];
                        size_t len = 0, wlen = 0;
                        naive_path(i, leaves, n, want, &wlen);
                        s.lookups = 0;
                        assert_int_equal(merkle_inclusion_proof(store_get, &s, i, n, proof, &len), 0);
                        assert_true(s.lookups <= 2 * (uint64_t) ceil_log2(n) + 1);
                        assert_int_equal(len, wlen);
                        assert_memory_equal(proof, want, len * sizeof(merkle_hash));
                        assert_int_equal(merkle_verify_inclusion(&leaves[i], i, n, proof, len, &naive), 0);
                        /* wrong index, truncated, extended, wrong leaf: all refused (a different size
                         * may share the path shape, RFC 9162 does not bind it; the golden probes
                         * cover the sizes that must fail) */
                        if (n > 1)
                                assert_int_not_equal(
                                        merkle_verify_inclusion(&leaves[i], (i + 1) % n, n, proof, len, &naive), 0);
                        if (len > 0)
                                assert_int_equal(merkle_verify_inclusion(&leaves[i], i, n, proof, len - 1, &naive),
                                                 -EBADMSG);
                        proof[len] = naive;
                        assert_int_equal(merkle_verify_inclusion(&leaves[i], i, n, proof, len + 1, &naive), -EBADMSG);
                        merkle_hash other;
                        leaf_for(n + 7, &other);
                        assert_int_equal(merkle_verify_inclusion(&other, i, n, proof, len, &naive), -EBADMSG);
                        flip_and_expect_failure_incl(&leaves[i], i, n, proof, len, &naive);
                }

                for (int t = 0; t < 4; t++) {
                        uint64_t m = t == 0 ? n : t == 1 ? 1 : 1 + rng() % n;
                        merkle_hash proof[MERKLE_MAX_PROOF + 1], want[MERKLE_MAX_PROOF + 1], old_root;
                        size_t len = 0, wlen = 0;
                        naive_subproof(m, leaves, n, true, want, &wlen);
                        naive_mth(leaves, m, &old_root);
                        s.lookups = 0;
                        assert_int_equal(merkle_consistency_proof(store_get, &s, m, n, proof, &len), 0);
                        assert_true(s.lookups <= 2 * (uint64_t) ceil_log2(n) + 2);
                        assert_int_equal(len, wlen);
                        assert_memory_equal(proof, want, len * sizeof(merkle_hash));
                        assert_int_equal(merkle_verify_consistency(m, n, &old_root, &naive, proof, len), 0);
                        if (m < n) {
                                assert_int_equal(merkle_verify_consistency(m, n, &naive, &old_root, proof, len),
                                                 -EBADMSG);
                                assert_int_equal(merkle_verify_consistency(m, n, &old_root, &naive, proof, len - 1),
                                                 -EBADMSG);
                                size_t k = rng() % len;
                                proof[k].b[rng() % MERKLE_HASH_SIZE] ^= 0x80;
                                assert_int_equal(merkle_verify_consistency(m, n, &old_root, &naive, proof, len),
                                                 -EBADMSG);
                        }
                }
        }
        print_message("random: sizes 1..%d, 4 inclusion + 4 consistency proofs each\n", N_MAX);
        store_free(&s);
        free(leaves);
}

static void test_edges(void **state) {
        (void) state;
        merkle_hash h, e, proof[MERKLE_MAX_PROOF];
        size_t len = 0;
        struct store s = { 0 };

        merkle_empty_root(&e);
        uint8_t want[32];
        assert_int_equal(hex_decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, 32), 0);
        assert_memory_equal(e.b, want, 32);
        assert_int_equal(merkle_root(store_get, &s, 0, &h), 0);
        assert_memory_equal(h.b, want, 32);
        assert_int_equal(merkle_inclusion_proof(store_get, &s, 0, 0, proof, &len), -EINVAL);
        assert_int_equal(merkle_inclusion_proof(store_get, &s, 3, 3, proof, &len), -EINVAL);
        assert_int_equal(merkle_consistency_proof(store_get, &s, 0, 3, proof, &len), -EINVAL);
        assert_int_equal(merkle_consistency_proof(store_get, &s, 4, 3, proof, &len), -EINVAL);
        /* a storage error is passed on, not turned into a wrong proof */
        assert_int_equal(merkle_root(store_get, &s, 5, &h), -ENOENT);
        assert_int_equal(merkle_inclusion_proof(store_get, &s, 1, 5, proof, &len), -ENOENT);
        assert_int_equal(merkle_verify_inclusion(&e, 0, 0, NULL, 0, &e), -EINVAL);
        assert_int_equal(merkle_verify_consistency(2, 1, &e, &e, NULL, 0), -EINVAL);
}

static int fail_done(void *ud, unsigned level, uint64_t index, const merkle_hash *h) {
        (void) h;
        (void) index;
        return level == *(unsigned *) ud ? -EIO : 0;
}

static void test_frontier_failure_changes_nothing(void **state) {
        (void) state;
        struct merkle_frontier f;
        merkle_hash l, before, after;
        unsigned never = 99, lvl2 = 2;
        merkle_frontier_init(&f);
        for (uint64_t i = 0; i < 3; i++) {
                leaf_for(i, &l);
                assert_int_equal(merkle_frontier_append(&f, &l, fail_done, &never), 0);
        }
        merkle_frontier_root(&f, &before);
        leaf_for(3, &l);
        /* appending leaf 3 completes subtrees at levels 0, 1, 2: fail at level 2 */
        assert_int_equal(merkle_frontier_append(&f, &l, fail_done, &lvl2), -EIO);
        assert_int_equal(f.size, 3);
        merkle_frontier_root(&f, &after);
        assert_memory_equal(before.b, after.b, MERKLE_HASH_SIZE);
        assert_int_equal(merkle_frontier_append(&f, &l, fail_done, &never), 0);
        assert_int_equal(f.size, 4);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reference_8leaf),
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_random),
                cmocka_unit_test(test_edges),
                cmocka_unit_test(test_frontier_failure_changes_nothing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
