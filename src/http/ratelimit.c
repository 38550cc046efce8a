/* ratelimit.c: token buckets and failure delays per key, in a hash table of at most max_keys
 * entries kept in least-recently-used order (the oldest not delaying its key is evicted for a
 * new key; with none, the new key is refused as limited). Keys come from
 * clients (addresses, blind indexes of e-mails), so buckets are chosen with keyed SipHash. */
#include "ratelimit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS_LIMIT ((size_t) 1 << 24)
/* Slack for the rounding of refills done in steps: a bucket refilled over [0, 1000] ms in two
 * steps holds as much as one refilled in one. */
#define TOKEN_EPSILON 1e-9
#define KEY_MAX 256 /* longer keys are refused by ratelimit_take as if the bucket were empty */

struct entry {
        struct entry *next_in_bucket;
        struct entry *lru_prev, *lru_next; /* lru_prev: more recently used */
        double tokens;
        uint64_t refilled_ms;
        uint64_t last_failure_ms;
        uint64_t blocked_until_ms;
        unsigned failures;
        char key[];
};

struct ratelimit {
        pthread_mutex_t lock;
        struct ratelimit_options o;
        struct entry **buckets;
        size_t n_buckets; /* a power of two */
        size_t n_keys;
        struct entry *lru_head, *lru_tail; /* head: most recently used */
        uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

static size_t bucket_of(const struct ratelimit *rl, const char *key, size_t len) {
        uint8_t out[crypto_shorthash_BYTES];
        uint64_t h;

        crypto_shorthash(out, (const uint8_t *) key, len, rl->hash_key);
        memcpy(&h, out, sizeof h);
        return (size_t) (h & (rl->n_buckets - 1));
}

int ratelimit_new(const struct ratelimit_options *o, struct ratelimit **ret) {
        if (!o || !ret || !(o->rate > 0) || !isfinite(o->rate) || !(o->burst >= 1) || !isfinite(o->burst) ||
            o->max_keys < 1 || o->max_keys > MAX_KEYS_LIMIT || o->fail_delay_max_ms < o->fail_delay_ms)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        struct ratelimit *rl = calloc(1, sizeof *rl);
        if (!rl)
                return -ENOMEM;
        rl->o = *o;
        rl->n_buckets = 16;
        while (rl->n_buckets < o->max_keys)
                rl->n_buckets <<= 1;
        rl->buckets = calloc(rl->n_buckets, sizeof *rl->buckets);
        if (!rl->buckets) {
                free(rl);
                return -ENOMEM;
        }
        crypto_shorthash_keygen(rl->hash_key);
        pthread_mutex_init(&rl->lock, NULL);
        *ret = rl;
        return 0;
}

void ratelimit_free(struct ratelimit *rl) {
        if (!rl)
                return;
        for (struct entry *e = rl->lru_head, *next; e; e = next) {
                next = e->lru_next;
                free(e);
        }
        free(rl->buckets);
        pthread_mutex_destroy(&rl->lock);
        free(rl);
}

static void lru_unlink(struct ratelimit *rl, struct entry *e) {
        if (e->lru_prev)
                e->lru_prev->lru_next = e->lru_next;
        else
                rl->lru_head = e->lru_next;
        if (e->lru_next)
                e->lru_next->lru_prev = e->lru_prev;
        else
                rl->lru_tail = e->lru_prev;
        e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct ratelimit *rl, struct entry *e) {
        e->lru_prev = NULL;
        e->lru_next = rl->lru_head;
        if (rl->lru_head)
                rl->lru_head->lru_prev = e;
        rl->lru_head = e;
        if (!rl->lru_tail)
                rl->lru_tail = e;
}

static void entry_remove(struct ratelimit *rl, struct entry *e) {
        struct entry **pp = &rl->buckets[bucket_of(rl, e->key, strlen(e->key))];
        while (*pp != e)
                pp = &(*pp)->next_in_bucket;
        *pp = e->next_in_bucket;
        lru_unlink(rl, e);
        rl->n_keys--;
        free(e);
}

static struct entry *entry_find(struct ratelimit *rl, const char *key, size_t len) {
        for (struct entry *e = rl->buckets[bucket_of(rl, key, len)]; e; e = e->next_in_bucket)
                if (strcmp(e->key, key) == 0)
                        return e;
        return NULL;
}

/* The key's entry, made (with a full bucket) when missing, and marked most recently used. A full
 * table makes room by evicting the least recently used entry that is not delaying its key: a
 * flood of new keys must not wipe a locked key's delay. NULL when out of memory, or when the
 * table is full of delaying entries (the caller refuses the new key as limited). */
static struct entry *entry_get(struct ratelimit *rl, const char *key, size_t len, uint64_t now_ms) {
        struct entry *e = entry_find(rl, key, len);
        if (e) {
                lru_unlink(rl, e);
                lru_push_front(rl, e);
                return e;
        }
        if (rl->n_keys >= rl->o.max_keys) {
                struct entry *victim = rl->lru_tail;
                while (victim && now_ms < victim->blocked_until_ms)
                        victim = victim->lru_prev;
                if (!victim)
                        return NULL;
                entry_remove(rl, victim);
        }
        e = calloc(1, sizeof *e + len + 1);
        if (!e)
                return NULL;
        memcpy(e->key, key, len + 1);
        e->tokens = rl->o.burst;
        e->refilled_ms = now_ms;
        size_t b = bucket_of(rl, key, len);
        e->next_in_bucket = rl->buckets[b];
        rl->buckets[b] = e;
        lru_push_front(rl, e);
        rl->n_keys++;
        return e;
}

/* Refills the bucket for the time since the last refill, and forgets the failures once a whole
 * window has passed since the last one's delay ended (so that waiting out the longest delay is
 * not enough to start again with free failures). A clock that went back refills nothing. */
static void entry_advance(const struct ratelimit *rl, struct entry *e, uint64_t now_ms) {
        if (now_ms > e->refilled_ms) {
                double t = e->tokens + (double) (now_ms - e->refilled_ms) * rl->o.rate / 1000.0;
                e->tokens = t < rl->o.burst ? t : rl->o.burst;
                e->refilled_ms = now_ms;
        }
        uint64_t since = MAX(e->last_failure_ms, e->blocked_until_ms);
        if (e->failures && now_ms >= since && now_ms - since >= rl->o.fail_window_ms) {
                e->failures = 0;
                e->blocked_until_ms = 0;
        }
}

static uint32_t clamp_ms(double ms) {
        if (!(ms < (double) UINT32_MAX))
                return UINT32_MAX;
        uint32_t r = (uint32_t) ceil(ms - 1e-6);
        return r ? r : 1;
}

uint32_t ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_ms) {
        size_t len = strnlen(key, KEY_MAX + 1);
        uint32_t wait = 0;

        if (len > KEY_MAX)
                return UINT32_MAX;
        pthread_mutex_lock(&rl->lock);
        struct entry *e = entry_get(rl, key, len, now_ms);
        if (!e)
                wait = 1000; /* out of memory, or a table full of delaying keys: refuse for now
                              * rather than let it through unlimited */
        else {
                entry_advance(rl, e, now_ms);
                if (now_ms < e->blocked_until_ms)
                        wait = clamp_ms((double) (e->blocked_until_ms - now_ms));
                else if (e->tokens >= 1.0 - TOKEN_EPSILON)
                        e->tokens = e->tokens > 1.0 ? e->tokens - 1.0 : 0.0;
                else
                        wait = clamp_ms((1.0 - e->tokens) * 1000.0 / rl->o.rate);
        }
        pthread_mutex_unlock(&rl->lock);
        return wait;
}

void ratelimit_failure(struct ratelimit *rl, const char *key, uint64_t now_ms) {
        size_t len = strnlen(key, KEY_MAX + 1);

        if (len > KEY_MAX)
                return;
        pthread_mutex_lock(&rl->lock);
        struct entry *e = entry_get(rl, key, len, now_ms);
        if (e) {
                entry_advance(rl, e, now_ms);
                if (e->failures < UINT32_MAX)
                        e->failures++;
                e->last_failure_ms = now_ms;
                if (e->failures > rl->o.fail_free && rl->o.fail_delay_ms > 0) {
                        unsigned doublings = e->failures - rl->o.fail_free - 1;
                        uint64_t delay = doublings >= 32 ? UINT64_MAX : (uint64_t) rl->o.fail_delay_ms << doublings;
                        if (delay > rl->o.fail_delay_max_ms)
                                delay = rl->o.fail_delay_max_ms;
                        e->blocked_until_ms = now_ms + delay;
                }
        }
        pthread_mutex_unlock(&rl->lock);
}

void ratelimit_success(struct ratelimit *rl, const char *key) {
        size_t len = strnlen(key, KEY_MAX + 1);

        if (len > KEY_MAX)
                return;
        pthread_mutex_lock(&rl->lock);
        struct entry *e = entry_find(rl, key, len);
        if (e) {
                e->failures = 0;
                e->blocked_until_ms = 0;
        }
        pthread_mutex_unlock(&rl->lock);
}
