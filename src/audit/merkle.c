/* merkle.c: RFC 9162 section 2.1 Merkle tree hashing, proofs built from stored complete-subtree
 * hashes, proof verification, and the incremental frontier used when appending. */
#include "merkle.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

/* libsodium's SHA-256 works on a caller-provided state and cannot fail, which lets these
 * helpers return void as the header promises. */
void merkle_leaf_hash(const void *entry, size_t n, merkle_hash *ret) {
        crypto_hash_sha256_state c;
        const uint8_t prefix = 0x00;

        crypto_hash_sha256_init(&c);
        crypto_hash_sha256_update(&c, &prefix, 1);
        if (n > 0)
                crypto_hash_sha256_update(&c, entry, n);
        crypto_hash_sha256_final(&c, ret->b);
}

void merkle_node_hash(const merkle_hash *left, const merkle_hash *right, merkle_hash *ret) {
        uint8_t in[1 + 2 * MERKLE_HASH_SIZE];

        in[0] = 0x01;
        memcpy(in + 1, left->b, MERKLE_HASH_SIZE);
        memcpy(in + 1 + MERKLE_HASH_SIZE, right->b, MERKLE_HASH_SIZE);
        crypto_hash_sha256(ret->b, in, sizeof in);
}

void merkle_empty_root(merkle_hash *ret) {
        crypto_hash_sha256(ret->b, (const uint8_t *) "", 0);
}

/* Largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n) {
        uint64_t k = 1;

        while (k < n - k)
                k <<= 1;
        return k;
}

static void root_from_leaves_rec(const merkle_hash *leaves, uint64_t n, merkle_hash *ret) {
        merkle_hash l, r;
        uint64_t k;

        if (n == 1) {
                *ret = leaves[0];
                return;
        }
        k = split_point(n);
        root_from_leaves_rec(leaves, k, &l);
        root_from_leaves_rec(leaves + k, n - k, &r);
        merkle_node_hash(&l, &r, ret);
}

void merkle_root_from_leaves(const merkle_hash *leaves, uint64_t n, merkle_hash *ret) {
        if (n == 0) {
                merkle_empty_root(ret);
                return;
        }
        root_from_leaves_rec(leaves, n, ret);
}

/* MTH(D[lo:hi]) for a range that appears in the RFC recursion: lo is a multiple of a power of two
 * at least as large as the range, so the range splits into complete subtrees by the bits of its
 * length, biggest first. These are folded right to left, which is exactly the RFC split. */
static int range_hash(merkle_subtree_fn get, void *ud, uint64_t lo, uint64_t hi, merkle_hash *ret) {
        merkle_hash parts[64], acc;
        size_t n_parts = 0;
        uint64_t len = hi - lo, pos = lo;
        int r;

        if (hi <= lo)
                return -EINVAL;
        for (int level = 63; level >= 0; level--) {
                uint64_t size = UINT64_C(1) << level;

                if (!(len & size))
                        continue;
                if (pos & (size - 1))
                        return -EINVAL; /* not aligned: not a range of the RFC recursion */
                r = get(ud, (unsigned) level, pos >> level, &parts[n_parts]);
                if (r < 0)
                        return r;
                n_parts++;
                pos += size;
        }
        acc = parts[n_parts - 1];
        for (size_t i = n_parts - 1; i > 0; i--)
                merkle_node_hash(&parts[i - 1], &acc, &acc);
        *ret = acc;
        return 0;
}

int merkle_root(merkle_subtree_fn get, void *ud, uint64_t n, merkle_hash *ret) {
        merkle_hash h;
        int r;

        if (n == 0) {
                merkle_empty_root(ret);
                return 0;
        }
        r = range_hash(get, ud, 0, n, &h);
        if (r < 0)
                return r;
        *ret = h;
        return 0;
}

struct proof {
        merkle_hash *hashes;
        size_t len;
};

static int proof_add(struct proof *p, merkle_subtree_fn get, void *ud, uint64_t lo, uint64_t hi) {
        if (p->len >= MERKLE_MAX_PROOF)
                return -E2BIG;
        int r = range_hash(get, ud, lo, hi, &p->hashes[p->len]);
        if (r < 0)
                return r;
        p->len++;
        return 0;
}

/* RFC 9162 2.1.3.1 PATH(m, D[lo:hi]), deepest sibling first. */
static int inclusion_rec(struct proof *p, merkle_subtree_fn get, void *ud, uint64_t m, uint64_t lo, uint64_t hi) {
        uint64_t k;
        int r;

        if (hi - lo == 1)
                return 0;
        k = split_point(hi - lo);
        if (m < lo + k) {
                r = inclusion_rec(p, get, ud, m, lo, lo + k);
                if (r < 0)
                        return r;
                return proof_add(p, get, ud, lo + k, hi);
        }
        r = inclusion_rec(p, get, ud, m, lo + k, hi);
        if (r < 0)
                return r;
        return proof_add(p, get, ud, lo, lo + k);
}

int merkle_inclusion_proof(merkle_subtree_fn get, void *ud, uint64_t index, uint64_t n, merkle_hash *ret_proof,
                           size_t *ret_len) {
        merkle_hash tmp[MERKLE_MAX_PROOF];
        struct proof p = { .hashes = tmp };
        int r;

        if (n == 0 || index >= n)
                return -EINVAL;
        r = inclusion_rec(&p, get, ud, index, 0, n);
        if (r < 0)
                return r;
        memcpy(ret_proof, tmp, p.len * sizeof(merkle_hash));
        *ret_len = p.len;
        return 0;
}

/* RFC 9162 2.1.4.1 SUBPROOF(m, D[lo:hi], b), where m counts leaves from lo. */
static int subproof_rec(struct proof *p, merkle_subtree_fn get, void *ud, uint64_t m, uint64_t lo, uint64_t hi,
                        bool b) {
        uint64_t n = hi - lo, k;
        int r;

        if (m == n)
                return b ? 0 : proof_add(p, get, ud, lo, hi);
        k = split_point(n);
        if (m <= k) {
                r = subproof_rec(p, get, ud, m, lo, lo + k, b);
                if (r < 0)
                        return r;
                return proof_add(p, get, ud, lo + k, hi);
        }
        r = subproof_rec(p, get, ud, m - k, lo + k, hi, false);
        if (r < 0)
                return r;
        return proof_add(p, get, ud, lo, lo + k);
}

int merkle_consistency_proof(merkle_subtree_fn get, void *ud, uint64_t m, uint64_t n, merkle_hash *ret_proof,
                             size_t *ret_len) {
        merkle_hash tmp[MERKLE_MAX_PROOF];
        struct proof p = { .hashes = tmp };
        int r;

        /* The RFC defines proofs for 0 < m <= n; every tree is consistent with the empty one. */
        if (m == 0 || m > n)
                return -EINVAL;
        r = subproof_rec(&p, get, ud, m, 0, n, true);
        if (r < 0)
                return r;
        memcpy(ret_proof, tmp, p.len * sizeof(merkle_hash));
        *ret_len = p.len;
        return 0;
}

static bool hash_eq(const merkle_hash *a, const merkle_hash *b) {
        return CRYPTO_memcmp(a->b, b->b, MERKLE_HASH_SIZE) == 0;
}

int merkle_verify_inclusion(const merkle_hash *leaf, uint64_t index, uint64_t n, const merkle_hash *proof,
                            size_t proof_len, const merkle_hash *root) {
        uint64_t fn, sn;
        merkle_hash r;

        if (n == 0 || index >= n)
                return -EINVAL;
        if (proof_len > MERKLE_MAX_PROOF || (proof_len > 0 && !proof))
                return -EBADMSG;

        fn = index;
        sn = n - 1;
        r = *leaf;
        for (size_t i = 0; i < proof_len; i++) {
                if (sn == 0)
                        return -EBADMSG; /* proof longer than the path */
                if ((fn & 1) || fn == sn) {
                        merkle_node_hash(&proof[i], &r, &r);
                        if (!(fn & 1))
                                while (fn != 0 && !(fn & 1)) {
                                        fn >>= 1;
                                        sn >>= 1;
                                }
                } else
                        merkle_node_hash(&r, &proof[i], &r);
                fn >>= 1;
                sn >>= 1;
        }
        if (sn != 0 || !hash_eq(&r, root))
                return -EBADMSG;
        return 0;
}

int merkle_verify_consistency(uint64_t m, uint64_t n, const merkle_hash *root_m, const merkle_hash *root_n,
                              const merkle_hash *proof, size_t proof_len) {
        merkle_hash fr, sr;
        uint64_t fn, sn;
        size_t start;

        if (m == 0 || m > n)
                return -EINVAL;
        if (proof_len > MERKLE_MAX_PROOF + 1 || (proof_len > 0 && !proof))
                return -EBADMSG;
        if (m == n) {
                if (proof_len != 0 || !hash_eq(root_m, root_n))
                        return -EBADMSG;
                return 0;
        }
        if (proof_len == 0)
                return -EBADMSG;

        /* When m is a power of two the old root is itself the first node of the path. */
        if ((m & (m - 1)) == 0) {
                fr = sr = *root_m;
                start = 0;
        } else {
                fr = sr = proof[0];
                start = 1;
        }
        fn = m - 1;
        sn = n - 1;
        while (fn & 1) {
                fn >>= 1;
                sn >>= 1;
        }
        for (size_t i = start; i < proof_len; i++) {
                if (sn == 0)
                        return -EBADMSG;
                if ((fn & 1) || fn == sn) {
                        merkle_node_hash(&proof[i], &fr, &fr);
                        merkle_node_hash(&proof[i], &sr, &sr);
                        if (!(fn & 1))
                                while (fn != 0 && !(fn & 1)) {
                                        fn >>= 1;
                                        sn >>= 1;
                                }
                } else
                        merkle_node_hash(&sr, &proof[i], &sr);
                fn >>= 1;
                sn >>= 1;
        }
        if (sn != 0 || !hash_eq(&fr, root_m) || !hash_eq(&sr, root_n))
                return -EBADMSG;
        return 0;
}

void merkle_frontier_init(struct merkle_frontier *f) {
        memset(f, 0, sizeof *f);
}

int merkle_frontier_append(struct merkle_frontier *f, const merkle_hash *leaf,
                           int (*done)(void *ud, unsigned level, uint64_t index, const merkle_hash *h), void *ud) {
        merkle_hash h = *leaf;
        uint64_t index = f->size;
        unsigned level = 0;
        int r;

        if (f->size == UINT64_MAX)
                return -EOVERFLOW;
        if (done) {
                r = done(ud, 0, index, &h);
                if (r < 0)
                        return r;
        }
        /* Each set low bit of size is a complete subtree waiting for a right sibling: merge. */
        while (f->size & (UINT64_C(1) << level)) {
                merkle_node_hash(&f->stack[level], &h, &h);
                level++;
                index >>= 1;
                if (done) {
                        r = done(ud, level, index, &h);
                        if (r < 0)
                                return r;
                }
        }
        /* Commit only once every callback succeeded, so a failed append changes nothing. */
        f->stack[level] = h;
        f->size++;
        return 0;
}

void merkle_frontier_root(const struct merkle_frontier *f, merkle_hash *ret) {
        merkle_hash acc;
        bool have = false;

        if (f->size == 0) {
                merkle_empty_root(ret);
                return;
        }
        /* Fold from the smallest subtree (rightmost) to the largest. */
        for (unsigned level = 0; level < 64; level++) {
                if (!(f->size & (UINT64_C(1) << level)))
                        continue;
                if (!have) {
                        acc = f->stack[level];
                        have = true;
                } else
                        merkle_node_hash(&f->stack[level], &acc, &acc);
        }
        *ret = acc;
}
