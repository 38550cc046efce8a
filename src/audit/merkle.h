/* merkle.h: RFC 9162 Merkle tree hashing and proofs (pure functions, no storage).
 * leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define MERKLE_HASH_SIZE 32u
#define MERKLE_MAX_PROOF 64u /* tree sizes below 2^64 need at most 64 hashes */

typedef struct {
        uint8_t b[MERKLE_HASH_SIZE];
} merkle_hash;

void merkle_leaf_hash(const void *entry, size_t n, merkle_hash *ret);
void merkle_node_hash(const merkle_hash *left, const merkle_hash *right, merkle_hash *ret);
/* SHA-256 of the empty string: the root of the empty tree. */
void merkle_empty_root(merkle_hash *ret);

/* Root of leaves[0..n) (leaf hashes given). Reference computation, O(n). */
void merkle_root_from_leaves(const merkle_hash *leaves, uint64_t n, merkle_hash *ret);

/* Access to the hashes of complete subtrees, as stored by the log: the hash of the subtree at
 * level (height) `level` and index `index` (covering leaves [index<<level, (index+1)<<level)). */
typedef int (*merkle_subtree_fn)(void *ud, unsigned level, uint64_t index, merkle_hash *ret);

/* Root of the first n leaves using only complete-subtree hashes: O(log n) lookups. */
int merkle_root(merkle_subtree_fn get, void *ud, uint64_t n, merkle_hash *ret) _warn_unused_;
/* RFC 9162 2.1.3 inclusion proof for leaf index in tree of size n, O(log n) lookups. */
int merkle_inclusion_proof(merkle_subtree_fn get, void *ud, uint64_t index, uint64_t n,
                           merkle_hash *ret_proof, size_t *ret_len) _warn_unused_;
/* RFC 9162 2.1.4 consistency proof between sizes m <= n. */
int merkle_consistency_proof(merkle_subtree_fn get, void *ud, uint64_t m, uint64_t n,
                             merkle_hash *ret_proof, size_t *ret_len) _warn_unused_;

/* Verification (RFC 9162 2.1.3.2 and 2.1.4.2). 0 when valid, -EBADMSG when not, -EINVAL on bad sizes. */
int merkle_verify_inclusion(const merkle_hash *leaf, uint64_t index, uint64_t n, const merkle_hash *proof,
                            size_t proof_len, const merkle_hash *root) _warn_unused_;
int merkle_verify_consistency(uint64_t m, uint64_t n, const merkle_hash *root_m, const merkle_hash *root_n,
                              const merkle_hash *proof, size_t proof_len) _warn_unused_;

/* Incremental builder: append leaf hashes, keeps the O(log n) frontier ("compact range"),
 * reports each completed subtree (for storage) and gives the current root. */
struct merkle_frontier {
        uint64_t size;
        merkle_hash stack[64]; /* stack[i] = hash of the complete subtree of level i, if bit i of size set */
};
void merkle_frontier_init(struct merkle_frontier *f);
/* Appends a leaf hash; calls done(ud, level, index, hash) for every complete subtree created
 * (level 0 = the leaf itself). */
int merkle_frontier_append(struct merkle_frontier *f, const merkle_hash *leaf,
                           int (*done)(void *ud, unsigned level, uint64_t index, const merkle_hash *h), void *ud) _warn_unused_;
void merkle_frontier_root(const struct merkle_frontier *f, merkle_hash *ret);
