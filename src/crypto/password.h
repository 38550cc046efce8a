/* password.h: passwords of user accounts. Argon2id (libsodium crypto_pwhash_str_alg, its
 * parameters stored in each hash string), the policy (12..1024 bytes, not one of the shipped
 * most common passwords, no composition rules), and a fixed pool of hashing slots so that the
 * memory hashing takes is bounded (slots x memlimit) however many logins arrive at once. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct buf;

#define PASSWORD_MIN_BYTES 12u
#define PASSWORD_MAX_BYTES 1024u
#define PASSWORD_HASH_MAX 128u /* crypto_pwhash_STRBYTES, with its NUL */

struct password_cost {
        uint64_t opslimit; /* passes, >= 2 */
        size_t memlimit;   /* bytes, >= 19 MiB */
};

/* -EINVAL with a reason for the user in *ret_reason (a static string) when pw breaks the policy. */
int password_check_policy(const char *pw, size_t len, const char **ret_reason) _warn_unused_;

struct password_pool;
/* slots hashing at once, each waiting at most wait_ms for a free slot. */
int password_pool_new(unsigned slots, unsigned wait_ms, const struct password_cost *cost,
                      struct password_pool **ret) _warn_unused_;
void password_pool_free(struct password_pool *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct password_pool *, password_pool_free);

/* Hashes at the pool's cost into out (NUL-terminated). -EBUSY when no slot freed within wait_ms. */
int password_hash(struct password_pool *p, const char *pw, size_t len, char out[PASSWORD_HASH_MAX]) _warn_unused_;
/* 0 when pw matches hash, -EACCES when not, -EBUSY as above, -EINVAL for a malformed hash.
 * *ret_rehash (may be NULL) is set when the hash's cost is below the pool's. */
int password_verify(struct password_pool *p, const char *hash, const char *pw, size_t len,
                    bool *ret_rehash) _warn_unused_;
/* Spends the time of one password_verify at the pool's cost and fails: for an unknown account,
 * so that it answers like a wrong password. Returns -EACCES or -EBUSY. */
int password_verify_dummy(struct password_pool *p, const char *pw, size_t len) _warn_unused_;

struct password_pool_stats {
        unsigned slots, busy;
        uint64_t memory_budget; /* slots x memlimit, bytes */
        uint64_t hashes, waits, refused;
};
void password_pool_stats(struct password_pool *p, struct password_pool_stats *ret);
/* Appends the pool's gauges and counters to b in Prometheus text format, for /metrics. */
int password_metrics_append(struct password_pool *p, struct buf *b) _warn_unused_;
/* Calls hook(userdata) inside a slot, before each hash, NULL to stop: lets tests hold a slot. */
void password_pool_set_slot_hook(struct password_pool *p, void (*hook)(void *userdata), void *userdata);
