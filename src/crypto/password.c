/* password.c: Argon2id password hashes through libsodium, the password policy with the shipped
 * list of common passwords, and the fixed pool of hashing slots that bounds the memory logins
 * take (slots x memlimit: libsodium allocates memlimit for each hash it computes). */
#include "password.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "utf8.h"

/* Generated at build time from data/common-passwords/ (scripts/gen-common-passwords.py):
 * lower-cased, sorted by byte value. */
extern const size_t password_common_count;
extern const size_t password_common_max_len;
extern const char *const password_common[];

#define MIN_MEMLIMIT ((size_t) 19 << 20)
#define MIN_OPSLIMIT 2u
#define MAX_SLOTS 1024u
#define MAX_WAIT_MS 600000u

struct password_pool {
        pthread_mutex_t lock;
        pthread_cond_t freed;
        unsigned slots, busy;
        unsigned wait_ms;
        struct password_cost cost;
        uint64_t hashes, waits, refused;
        void (*hook)(void *userdata);
        void *hook_userdata;
        /* A hash of a random secret nobody knows, for password_verify_dummy. */
        char dummy_hash[PASSWORD_HASH_MAX];
};

static int cmp_common(const void *key, const void *elem) {
        return strcmp(key, *(const char *const *) elem);
}

static bool is_common(const char *pw, size_t len) {
        char lower[PASSWORD_MAX_BYTES + 1];
        bool found;

        if (len > password_common_max_len || len > PASSWORD_MAX_BYTES)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = pw[i];
                lower[i] = c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c;
        }
        lower[len] = 0;
        found = bsearch(lower, password_common, password_common_count, sizeof password_common[0], cmp_common) != NULL;
        sodium_memzero(lower, len);
        return found;
}

int password_check_policy(const char *pw, size_t len, const char **ret_reason) {
        const char *reason = NULL;

        if (!pw)
                reason = "a password is required";
        else if (len < PASSWORD_MIN_BYTES)
                reason = "too short: at least 12 bytes";
        else if (len > PASSWORD_MAX_BYTES)
                reason = "too long: at most 1024 bytes";
        else {
                for (size_t i = 0; i < len && !reason;) {
                        uint32_t cp;
                        size_t n = utf8_next((const uint8_t *) pw + i, len - i, &cp);
                        if (n == 0)
                                reason = "not valid UTF-8";
                        else if (cp == 0)
                                reason = "contains a NUL character";
                        i += n;
                }
                if (!reason && is_common(pw, len))
                        reason = "one of the most common passwords";
        }
        if (reason) {
                if (ret_reason)
                        *ret_reason = reason;
                return -EINVAL;
        }
        return 0;
}

static int slot_acquire(struct password_pool *p) {
        int r = 0;

        pthread_mutex_lock(&p->lock);
        if (p->busy >= p->slots) {
                struct timespec deadline;
                clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_sec += p->wait_ms / 1000;
                deadline.tv_nsec += (long) (p->wait_ms % 1000) * 1000000L;
                if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                }
                p->waits++;
                while (p->busy >= p->slots) {
                        int e = pthread_cond_timedwait(&p->freed, &p->lock, &deadline);
                        if (e == ETIMEDOUT && p->busy >= p->slots) {
                                p->refused++;
                                r = -EBUSY;
                                break;
                        }
                }
        }
        if (r == 0) {
                p->busy++;
                p->hashes++;
        }
        void (*hook)(void *) = p->hook;
        void *ud = p->hook_userdata;
        pthread_mutex_unlock(&p->lock);
        if (r == 0 && hook)
                hook(ud);
        return r;
}

static void slot_release(struct password_pool *p) {
        pthread_mutex_lock(&p->lock);
        p->busy--;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->lock);
}

static int hash_at(const struct password_cost *cost, const char *pw, size_t len, char out[PASSWORD_HASH_MAX]) {
        if (crypto_pwhash_str_alg(out, pw, len, cost->opslimit, cost->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
                return -ENOMEM; /* the only way it fails with checked parameters */
        return 0;
}

int password_pool_new(unsigned slots, unsigned wait_ms, const struct password_cost *cost, struct password_pool **ret) {
        pthread_condattr_t attr;
        uint8_t secret[32];

        if (!cost || !ret || slots < 1 || slots > MAX_SLOTS || wait_ms > MAX_WAIT_MS)
                return -EINVAL;
        if (cost->opslimit < MIN_OPSLIMIT || cost->opslimit > crypto_pwhash_argon2id_OPSLIMIT_MAX ||
            cost->memlimit < MIN_MEMLIMIT || cost->memlimit > crypto_pwhash_argon2id_MEMLIMIT_MAX ||
            (uint64_t) cost->memlimit > UINT64_MAX / slots)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;

        struct password_pool *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->slots = slots;
        p->wait_ms = wait_ms;
        p->cost = *cost;
        pthread_mutex_init(&p->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&p->freed, &attr);
        pthread_condattr_destroy(&attr);

        randombytes_buf(secret, sizeof secret);
        int r = hash_at(&p->cost, (const char *) secret, sizeof secret, p->dummy_hash);
        sodium_memzero(secret, sizeof secret);
        if (r < 0) {
                password_pool_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

void password_pool_free(struct password_pool *p) {
        if (!p)
                return;
        pthread_cond_destroy(&p->freed);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

void password_pool_set_slot_hook(struct password_pool *p, void (*hook)(void *userdata), void *userdata) {
        pthread_mutex_lock(&p->lock);
        p->hook = hook;
        p->hook_userdata = userdata;
        pthread_mutex_unlock(&p->lock);
}

int password_hash(struct password_pool *p, const char *pw, size_t len, char out[PASSWORD_HASH_MAX]) {
        char tmp[PASSWORD_HASH_MAX];

        if (!p || !pw || !out || len > PASSWORD_MAX_BYTES)
                return -EINVAL;
        int r = slot_acquire(p);
        if (r < 0)
                return r;
        r = hash_at(&p->cost, pw, len, tmp);
        slot_release(p);
        if (r < 0)
                return r;
        memcpy(out, tmp, sizeof tmp);
        return 0;
}

/* Checks that hash is an Argon2id string libsodium can read and that its memory cost fits the
 * pool's budget; tells whether it is cheaper than the pool's cost. */
static int hash_inspect(const struct password_pool *p, const char *hash, bool *ret_cheaper) {
        unsigned long long m, t, par;
        int n = 0;

        if (strnlen(hash, PASSWORD_HASH_MAX) >= PASSWORD_HASH_MAX ||
            strncmp(hash, crypto_pwhash_argon2id_STRPREFIX, strlen(crypto_pwhash_argon2id_STRPREFIX)) != 0)
                return -EINVAL;
        if (crypto_pwhash_str_needs_rehash(hash, p->cost.opslimit, p->cost.memlimit) < 0)
                return -EINVAL;
        if (sscanf(hash, "$argon2id$v=19$m=%llu,t=%llu,p=%llu$%n", &m, &t, &par, &n) != 3 || n == 0)
                return -EINVAL;
        /* A stored hash must not take more memory than a slot has: the budget is a promise. */
        if (m > (unsigned long long) (p->cost.memlimit / 1024)) {
                log_warn("password: a stored hash needs %llu KiB, more than [auth] argon2_memory allows", m);
                return -EINVAL;
        }
        *ret_cheaper = m < p->cost.memlimit / 1024 || t < p->cost.opslimit;
        return 0;
}

int password_verify(struct password_pool *p, const char *hash, const char *pw, size_t len, bool *ret_rehash) {
        bool cheaper = false;

        if (!p || !hash || !pw)
                return -EINVAL;
        int r = hash_inspect(p, hash, &cheaper);
        if (r < 0)
                return r;
        /* Over-long passwords are verified all the same (they fail): an early answer would tell
         * a known account from an unknown one, whose dummy verify spends the time. */
        r = slot_acquire(p);
        if (r < 0)
                return r;
        r = crypto_pwhash_str_verify(hash, pw, len) == 0 ? 0 : -EACCES;
        slot_release(p);
        if (r == 0 && ret_rehash)
                *ret_rehash = cheaper;
        return r;
}

int password_verify_dummy(struct password_pool *p, const char *pw, size_t len) {
        if (!p || !pw)
                return -EACCES;
        int r = slot_acquire(p);
        if (r < 0)
                return r;
        /* Nobody knows the secret behind dummy_hash, so this fails; the answer is -EACCES anyway. */
        _unused_ int ignored = crypto_pwhash_str_verify(p->dummy_hash, pw, len);
        slot_release(p);
        return -EACCES;
}

void password_pool_stats(struct password_pool *p, struct password_pool_stats *ret) {
        pthread_mutex_lock(&p->lock);
        *ret = (struct password_pool_stats){
                .slots = p->slots,
                .busy = p->busy,
                .memory_budget = (uint64_t) p->slots * p->cost.memlimit,
                .hashes = p->hashes,
                .waits = p->waits,
                .refused = p->refused,
        };
        pthread_mutex_unlock(&p->lock);
}

int password_metrics_append(struct password_pool *p, struct buf *b) {
        struct password_pool_stats s;

        password_pool_stats(p, &s);
        return buf_printf(
                b,
                "# HELP coffre_password_hash_slots Argon2id hashes that may run at once.\n"
                "# TYPE coffre_password_hash_slots gauge\n"
                "coffre_password_hash_slots %u\n"
                "# HELP coffre_password_hash_slots_busy Argon2id hashes running now.\n"
                "# TYPE coffre_password_hash_slots_busy gauge\n"
                "coffre_password_hash_slots_busy %u\n"
                "# HELP coffre_password_hash_memory_budget_bytes Memory the running hashes may take at most.\n"
                "# TYPE coffre_password_hash_memory_budget_bytes gauge\n"
                "coffre_password_hash_memory_budget_bytes %llu\n"
                "# HELP coffre_password_hashes_total Argon2id hashes computed (hash, verify, dummy verify).\n"
                "# TYPE coffre_password_hashes_total counter\n"
                "coffre_password_hashes_total %llu\n"
                "# HELP coffre_password_hash_waits_total Requests that found every slot busy and waited.\n"
                "# TYPE coffre_password_hash_waits_total counter\n"
                "coffre_password_hash_waits_total %llu\n"
                "# HELP coffre_password_hash_refused_total Requests refused after waiting (503).\n"
                "# TYPE coffre_password_hash_refused_total counter\n"
                "coffre_password_hash_refused_total %llu\n",
                s.slots, s.busy, (unsigned long long) s.memory_budget, (unsigned long long) s.hashes,
                (unsigned long long) s.waits, (unsigned long long) s.refused);
}
