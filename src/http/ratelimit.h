/* ratelimit.h: token buckets keyed by a string (an account's blind index, a source address), in
 * a bounded table (least recently used keys evicted, never one whose failure delay is running), plus a failure count per key that grows the
 * delay before the next attempt. Thread-safe. Time is passed in (milliseconds), never read here. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct ratelimit_options {
        double rate;                /* tokens per second refilled */
        double burst;               /* bucket size */
        unsigned fail_free;         /* failures before any delay */
        uint32_t fail_delay_ms;     /* first delay after fail_free failures, doubled per failure... */
        uint32_t fail_delay_max_ms; /* ...up to this */
        uint32_t fail_window_ms;    /* failures are forgotten this long after the last one's delay ended */
        size_t max_keys;            /* table bound */
};

struct ratelimit;
int ratelimit_new(const struct ratelimit_options *o, struct ratelimit **ret) _warn_unused_;
void ratelimit_free(struct ratelimit *rl);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ratelimit *, ratelimit_free);

/* Takes one token for key at now_ms: 0 when allowed, else the milliseconds to wait (> 0), for a
 * Retry-After, either because the bucket is empty or because of the failure delay. */
uint32_t ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_ms);
/* Records the outcome of an attempt that was allowed: a failure grows the key's delay, a
 * success clears its failures. */
void ratelimit_failure(struct ratelimit *rl, const char *key, uint64_t now_ms);
void ratelimit_success(struct ratelimit *rl, const char *key);
