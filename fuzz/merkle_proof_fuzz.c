/* merkle_proof_fuzz.c: fuzz target for RFC 9162 proof verification (merkle_verify_inclusion and
 * merkle_verify_consistency) and, for small trees, the proof generators.
 *
 * Input: byte 0 picks the mode. Modes 0/1 take two little-endian 64-bit sizes, two 32-byte hashes
 * and the rest as proof hashes, verify them, and require the verdict of a second, top-down
 * verifier written here from the RFC's PATH and SUBPROOF definitions. Modes 2/3 build a tree of
 * up to 512 leaves from the input, make real proofs, and require that they verify and that a
 * flipped bit makes them fail. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "audit/merkle.h"
#include "fuzz.h"

int fuzz_verdict;

#define GEN_MAX_LEAVES 512u
#define GEN_LEVELS 10u /* 2^9 = 512 */

static uint64_t le64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static uint64_t split_point(uint64_t n) { /* largest power of two smaller than n (n >= 2) */
        uint64_t k = 1;
        while (k < n - k) /* k * 2 < n, without overflow */
                k <<= 1;
        return k;
}

static bool same(const merkle_hash *a, const merkle_hash *b) {
        return memcmp(a->b, b->b, MERKLE_HASH_SIZE) == 0;
}

/* PATH(m, D[n]) read backwards: the last proof hash is the sibling at the top. */
static bool ref_path_root(const merkle_hash *leaf, uint64_t m, uint64_t n, const merkle_hash *proof, size_t len,
                          merkle_hash *ret) {
        merkle_hash sub;
        if (n == 1) {
                if (len != 0)
                        return false;
                *ret = *leaf;
                return true;
        }
        if (len == 0)
                return false;
        uint64_t k = split_point(n);
        if (m < k) {
                if (!ref_path_root(leaf, m, k, proof, len - 1, &sub))
                        return false;
                merkle_node_hash(&sub, &proof[len - 1], ret);
        } else {
                if (!ref_path_root(leaf, m - k, n - k, proof, len - 1, &sub))
                        return false;
                merkle_node_hash(&proof[len - 1], &sub, ret);
        }
        return true;
}

static bool ref_verify_inclusion(const merkle_hash *leaf, uint64_t index, uint64_t n, const merkle_hash *proof,
                                 size_t len, const merkle_hash *root) {
        merkle_hash r;
        return index < n && ref_path_root(leaf, index, n, proof, len, &r) && same(&r, root);
}

/* SUBPROOF(m, D[n], b) read backwards: gives the hash of the first m leaves and of all n. */
static bool ref_subproof(uint64_t m, uint64_t n, bool b, const merkle_hash *root_m, const merkle_hash *proof,
                         size_t len, merkle_hash *ret_old, merkle_hash *ret_new) {
        merkle_hash o, nw;
        if (m == n) {
                if (b) {
                        if (len != 0)
                                return false;
                        *ret_old = *ret_new = *root_m;
                } else {
                        if (len != 1)
                                return false;
                        *ret_old = *ret_new = proof[0];
                }
                return true;
        }
        if (len == 0)
                return false;
        uint64_t k = split_point(n);
        if (m <= k) {
                if (!ref_subproof(m, k, b, root_m, proof, len - 1, &o, &nw))
                        return false;
                *ret_old = o;
                merkle_node_hash(&nw, &proof[len - 1], ret_new);
        } else {
                if (!ref_subproof(m - k, n - k, false, root_m, proof, len - 1, &o, &nw))
                        return false;
                merkle_node_hash(&proof[len - 1], &o, ret_old);
                merkle_node_hash(&proof[len - 1], &nw, ret_new);
        }
        return true;
}

static bool ref_verify_consistency(uint64_t m, uint64_t n, const merkle_hash *root_m, const merkle_hash *root_n,
                                   const merkle_hash *proof, size_t len) {
        merkle_hash o, nw;
        if (m == 0 || m > n)
                return false;
        return ref_subproof(m, n, true, root_m, proof, len, &o, &nw) && same(&o, root_m) && same(&nw, root_n);
}

static void raw_mode(bool consistency, const uint8_t *data, size_t size) {
        merkle_hash h1, h2, proof[MERKLE_MAX_PROOF + 2];
        if (size < 16 + 2 * MERKLE_HASH_SIZE)
                return;
        uint64_t a = le64(data), b = le64(data + 8);
        memcpy(h1.b, data + 16, MERKLE_HASH_SIZE);
        memcpy(h2.b, data + 16 + MERKLE_HASH_SIZE, MERKLE_HASH_SIZE);
        data += 16 + 2 * MERKLE_HASH_SIZE;
        size -= 16 + 2 * MERKLE_HASH_SIZE;
        size_t len = MIN(size / MERKLE_HASH_SIZE, ELEMENTSOF(proof));
        memcpy(proof, data, len * MERKLE_HASH_SIZE);

        int r;
        bool want, bad_sizes;
        if (consistency) {
                r = merkle_verify_consistency(a, b, &h1, &h2, len ? proof : NULL, len);
                want = ref_verify_consistency(a, b, &h1, &h2, proof, len);
                bad_sizes = a == 0 || a > b;
        } else {
                r = merkle_verify_inclusion(&h1, a, b, len ? proof : NULL, len, &h2);
                want = ref_verify_inclusion(&h1, a, b, proof, len, &h2);
                bad_sizes = b == 0 || a >= b;
        }
        if (r != 0 && r != -EBADMSG && r != -EINVAL)
                abort();
        if ((r == -EINVAL) != bad_sizes || (r == 0) != want)
                abort();
        fuzz_verdict = r == 0;
}

struct tree {
        uint64_t n;
        merkle_hash nodes[GEN_LEVELS][GEN_MAX_LEAVES];
};

static int tree_store(void *ud, unsigned level, uint64_t index, const merkle_hash *h) {
        struct tree *t = ud;
        if (level >= GEN_LEVELS || index >= (GEN_MAX_LEAVES >> level))
                abort();
        t->nodes[level][index] = *h;
        return 0;
}

static int tree_get(void *ud, unsigned level, uint64_t index, merkle_hash *ret) {
        struct tree *t = ud;
        /* the generators may only ask for complete subtrees of the tree */
        if (level >= GEN_LEVELS || (index + 1) << level > t->n)
                abort();
        *ret = t->nodes[level][index];
        return 0;
}

static void generated_mode(bool consistency, const uint8_t *data, size_t size) {
        static struct tree t; /* 160 KiB: not on the stack */
        merkle_hash proof[MERKLE_MAX_PROOF + 1], root_n, root_a, check;
        struct merkle_frontier f;
        size_t len;

        if (size < 5)
                return;
        uint64_t n = 1 + (data[0] | (uint64_t) data[1] << 8) % GEN_MAX_LEAVES;
        uint64_t a = (data[2] | (uint64_t) data[3] << 8) % n; /* leaf index, or old size - 1 */
        unsigned flip = data[4];
        data += 5;
        size -= 5;

        memset(&t, 0, sizeof t);
        t.n = n;
        merkle_frontier_init(&f);
        merkle_hash *leaves = malloc(n * sizeof *leaves);
        if (!leaves)
                abort();
        for (uint64_t i = 0; i < n; i++) {
                uint8_t entry[9];
                entry[0] = size ? data[i % size] : 0;
                for (int k = 0; k < 8; k++)
                        entry[1 + k] = (uint8_t) (i >> (8 * k));
                merkle_leaf_hash(entry, sizeof entry, &leaves[i]);
                if (merkle_frontier_append(&f, &leaves[i], tree_store, &t) < 0)
                        abort();
        }
        merkle_root_from_leaves(leaves, n, &root_n);
        merkle_frontier_root(&f, &check);
        if (!same(&root_n, &check) || merkle_root(tree_get, &t, n, &check) < 0 || !same(&root_n, &check))
                abort();

        fuzz_verdict = 1;
        if (consistency) {
                uint64_t m = a + 1;
                merkle_root_from_leaves(leaves, m, &root_a);
                if (merkle_root(tree_get, &t, m, &check) < 0 || !same(&root_a, &check))
                        abort();
                if (merkle_consistency_proof(tree_get, &t, m, n, proof, &len) < 0 || len > MERKLE_MAX_PROOF + 1)
                        abort();
                if (merkle_verify_consistency(m, n, &root_a, &root_n, proof, len) != 0 ||
                    !ref_verify_consistency(m, n, &root_a, &root_n, proof, len))
                        abort();
                if (len > 0) {
                        proof[(flip >> 3) % len].b[(flip & 7) * 4 % MERKLE_HASH_SIZE] ^= (uint8_t) (1u << (flip & 7));
                        if (merkle_verify_consistency(m, n, &root_a, &root_n, proof, len) != -EBADMSG)
                                abort();
                } else if (m != n)
                        abort();
        } else {
                if (merkle_inclusion_proof(tree_get, &t, a, n, proof, &len) < 0 || len > MERKLE_MAX_PROOF)
                        abort();
                if (merkle_verify_inclusion(&leaves[a], a, n, proof, len, &root_n) != 0 ||
                    !ref_verify_inclusion(&leaves[a], a, n, proof, len, &root_n))
                        abort();
                if (len > 0) {
                        proof[(flip >> 3) % len].b[(flip & 7) * 4 % MERKLE_HASH_SIZE] ^= (uint8_t) (1u << (flip & 7));
                        if (merkle_verify_inclusion(&leaves[a], a, n, proof, len, &root_n) != -EBADMSG)
                                abort();
                } else if (n != 1)
                        abort();
        }
        free(leaves);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_verdict = 0;
        if (size == 0)
                return 0;
        switch (data[0] & 3) {
        case 0: raw_mode(false, data + 1, size - 1); break;
        case 1: raw_mode(true, data + 1, size - 1); break;
        case 2: generated_mode(false, data + 1, size - 1); break;
        default: generated_mode(true, data + 1, size - 1); break;
        }
        return 0;
}
