/* test_password.c: the password policy (length, UTF-8, the shipped common list in any case),
 * Argon2id hash and verify, the rehash flag when the cost rises, malformed hashes, and the
 * hashing pool: a caller beyond the slots waits and then gets -EBUSY, counted in the stats. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto/password.h"

#define MIB ((size_t) 1 << 20)

static const struct password_cost cost_min = { .opslimit = 2, .memlimit = 19 * MIB };

static int check(const char *pw, const char **reason) {
        *reason = NULL;
        return password_check_policy(pw, strlen(pw), reason);
}

static void test_policy_length(void **state) {
        const char *reason;
        char buf[PASSWORD_MAX_BYTES + 2];

        assert_int_equal(check("", &reason), -EINVAL);
        assert_non_null(reason);
        assert_int_equal(check("elevenchars", &reason), -EINVAL);
        assert_non_null(strstr(reason, "short"));
        assert_int_equal(check("twelve chars", &reason), 0);
        assert_null(reason);

        memset(buf, 'x', sizeof buf);
        buf[PASSWORD_MAX_BYTES] = 0;
        assert_int_equal(password_check_policy(buf, PASSWORD_MAX_BYTES, &reason), 0);
        assert_int_equal(password_check_policy(buf, PASSWORD_MAX_BYTES + 1, &reason), -EINVAL);
        assert_non_null(strstr(reason, "long"));
}

static void test_policy_common(void **state) {
        const char *reason;

        /* Entries of data/common-passwords/10k-most-common.txt of 12 bytes or more. */
        assert_int_equal(check("masterbating", &reason), -EINVAL);
        assert_non_null(strstr(reason, "common"));
        assert_int_equal(check("unbelievable", &reason), -EINVAL);
        assert_int_equal(check("UnBelievABLE", &reason), -EINVAL);
        assert_int_equal(check("SCANDINAVIAN", &reason), -EINVAL);
        assert_int_equal(check("films+pic+galeries", &reason), -EINVAL);
        /* Near misses are fine: no composition rules, only the list. */
        assert_int_equal(check("unbelievable1", &reason), 0);
        assert_int_equal(check(" unbelievable", &reason), 0);
        /* The shorter entries are refused as too short before the list is looked at. */
        assert_int_equal(check("password", &reason), -EINVAL);
}

static void test_policy_utf8(void **state) {
        const char *reason;

        /* 12 bytes, 6 characters: the length is counted in bytes. */
        assert_int_equal(check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", &reason), 0);
        assert_int_equal(check("mot de passe \xe2\x82\xac \xf0\x9f\x94\x91", &reason), 0);
        /* Lone continuation byte, overlong '/', surrogate, cut sequence, past U+10FFFF. */
        assert_int_equal(check("abcdefghijk\x80", &reason), -EINVAL);
        assert_non_null(strstr(reason, "UTF-8"));
        assert_int_equal(check("abcdefghij\xc0\xaf", &reason), -EINVAL);
        assert_int_equal(check("abcdefghi\xed\xa0\x80", &reason), -EINVAL);
        assert_int_equal(check("abcdefghijkl\xe2\x82", &reason), -EINVAL);
        assert_int_equal(check("abcdefgh\xf4\x90\x80\x80", &reason), -EINVAL);
        /* An embedded NUL. */
        assert_int_equal(password_check_policy("abcdef\0ghijkl", 13, &reason), -EINVAL);
        assert_non_null(strstr(reason, "NUL"));
}

static void test_hash_verify(void **state) {
        _cleanup_(password_pool_freep) struct password_pool *p = NULL;
        char h1[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX];
        const char *pw = "correct horse battery staple";
        bool rehash = true;

        assert_int_equal(password_pool_new(2, 1000, &cost_min, &p), 0);
        assert_int_equal(password_hash(p, pw, strlen(pw), h1), 0);
        assert_int_equal(password_hash(p, pw, strlen(pw), h2), 0);
        /* Argon2id with its parameters in the string, and a fresh salt each time. */
        assert_memory_equal(h1, "$argon2id$v=19$m=19456,t=2,p=1$", 31);
        assert_string_not_equal(h1, h2);

        assert_int_equal(password_verify(p, h1, pw, strlen(pw), &rehash), 0);
        assert_false(rehash);
        assert_int_equal(password_verify(p, h2, pw, strlen(pw), NULL), 0);
        assert_int_equal(password_verify(p, h1, "correct horse battery stapl", 27, NULL), -EACCES);
        assert_int_equal(password_verify(p, h1, "Correct horse battery staple", 28, NULL), -EACCES);
        /* Length is part of the password: a prefix of the right bytes fails. */
        assert_int_equal(password_verify(p, h1, pw, strlen(pw) - 1, NULL), -EACCES);
        assert_int_equal(password_verify_dummy(p, pw, strlen(pw)), -EACCES);
}

static void test_malformed_hash(void **state) {
        _cleanup_(password_pool_freep) struct password_pool *p = NULL;
        char h[PASSWORD_HASH_MAX], big[PASSWORD_HASH_MAX + 8];
        const char *pw = "correct horse battery staple";

        assert_int_equal(password_pool_new(1, 1000, &cost_min, &p), 0);
        assert_int_equal(password_hash(p, pw, strlen(pw), h), 0);
        assert_int_equal(password_verify(p, "", pw, strlen(pw), NULL), -EINVAL);
        assert_int_equal(password_verify(p, "plain text", pw, strlen(pw), NULL), -EINVAL);
        /* An Argon2i hash (not id) and a cut one. */
        char other[PASSWORD_HASH_MAX];
        memcpy(other, h, sizeof other);
        memmove(other + 8, other + 9, strlen(other + 9) + 1); /* "$argon2id$" -> "$argon2i$" */
        assert_int_equal(password_verify(p, other, pw, strlen(pw), NULL), -EINVAL);
        memcpy(other, h, sizeof other);
        other[40] = 0;
        assert_int_equal(password_verify(p, other, pw, strlen(pw), NULL), -EINVAL);
        /* Not NUL-terminated within PASSWORD_HASH_MAX. */
        memset(big, 'a', sizeof big);
        memcpy(big, h, strlen(h));
        big[sizeof big - 1] = 0;
        assert_int_equal(password_verify(p, big, pw, strlen(pw), NULL), -EINVAL);
        /* A hash that needs more memory than a slot has is refused, not run. */
        char huge[PASSWORD_HASH_MAX];
        const char *salt = h + 31; /* salt$hash after "$argon2id$v=19$m=19456,t=2,p=1$" */
        assert_true((size_t) snprintf(huge, sizeof huge, "$argon2id$v=19$m=1048576,t=2,p=1$%s", salt) < sizeof huge);
        assert_int_equal(password_verify(p, huge, pw, strlen(pw), NULL), -EINVAL);
}

static void test_rehash_when_cost_rises(void **state) {
        _cleanup_(password_pool_freep) struct password_pool *old = NULL, *passes = NULL, *memory = NULL;
        char h[PASSWORD_HASH_MAX], h3[PASSWORD_HASH_MAX];
        const struct password_cost more_passes = { .opslimit = 3, .memlimit = 19 * MIB };
        const struct password_cost more_memory = { .opslimit = 2, .memlimit = 32 * MIB };
        const char *pw = "correct horse battery staple";
        bool rehash = false;

        assert_int_equal(password_pool_new(1, 1000, &cost_min, &old), 0);
        assert_int_equal(password_pool_new(1, 1000, &more_passes, &passes), 0);
        assert_int_equal(password_pool_new(1, 1000, &more_memory, &memory), 0);
        assert_int_equal(password_hash(old, pw, strlen(pw), h), 0);

        assert_int_equal(password_verify(passes, h, pw, strlen(pw), &rehash), 0);
        assert_true(rehash);
        rehash = false;
        assert_int_equal(password_verify(memory, h, pw, strlen(pw), &rehash), 0);
        assert_true(rehash);
        /* A wrong password does not say anything about rehashing. */
        rehash = false;
        assert_int_equal(password_verify(memory, h, "wrong horse battery staple", 26, &rehash), -EACCES);
        assert_false(rehash);
        /* The new hash carries the new cost and needs no rehash at it, but is too dear for the old pool
         * on memory, and fine for it on passes. */
        assert_int_equal(password_hash(passes, pw, strlen(pw), h3), 0);
        assert_memory_equal(h3, "$argon2id$v=19$m=19456,t=3,p=1$", 31);
        rehash = true;
        assert_int_equal(password_verify(passes, h3, pw, strlen(pw), &rehash), 0);
        assert_false(rehash);
        rehash = true;
        assert_int_equal(password_verify(old, h3, pw, strlen(pw), &rehash), 0);
        assert_false(rehash);
}

static void test_pool_refuses_bad_parameters(void **state) {
        struct password_pool *p = NULL;
        const struct password_cost low_mem = { .opslimit = 2, .memlimit = 19 * MIB - 1 };
        const struct password_cost low_ops = { .opslimit = 1, .memlimit = 19 * MIB };

        assert_int_equal(password_pool_new(0, 1000, &cost_min, &p), -EINVAL);
        assert_int_equal(password_pool_new(1, 1000, &low_mem, &p), -EINVAL);
        assert_int_equal(password_pool_new(1, 1000, &low_ops, &p), -EINVAL);
        assert_null(p);
}

/* A caller that holds the only slot until the test lets it go. */
struct holder {
        struct password_pool *pool;
        pthread_barrier_t in_slot, release;
        int result;
        char hash[PASSWORD_HASH_MAX];
};

static void hold_slot(void *userdata) {
        struct holder *h = userdata;
        pthread_barrier_wait(&h->in_slot);
        pthread_barrier_wait(&h->release);
}

static void *holder_main(void *arg) {
        struct holder *h = arg;
        h->result = password_hash(h->pool, "correct horse battery staple", 28, h->hash);
        return NULL;
}

struct waiter {
        struct password_pool *pool;
        int result;
};

static void *waiter_main(void *arg) {
        struct waiter *w = arg;
        w->result = password_verify_dummy(w->pool, "correct horse battery staple", 28);
        return NULL;
}

static void test_pool_busy(void **state) {
        _cleanup_(password_pool_freep) struct password_pool *p = NULL;
        struct password_pool_stats s;
        struct holder h = {};
        pthread_t t;
        char out[PASSWORD_HASH_MAX], other[PASSWORD_HASH_MAX];

        assert_int_equal(password_pool_new(1, 50, &cost_min, &p), 0);
        assert_int_equal(password_hash(p, "another long password", 21, other), 0);
        h.pool = p;
        pthread_barrier_init(&h.in_slot, NULL, 2);
        pthread_barrier_init(&h.release, NULL, 2);
        password_pool_set_slot_hook(p, hold_slot, &h);
        assert_int_equal(pthread_create(&t, NULL, holder_main, &h), 0);
        pthread_barrier_wait(&h.in_slot);
        password_pool_set_slot_hook(p, NULL, NULL);

        password_pool_stats(p, &s);
        assert_int_equal(s.slots, 1);
        assert_int_equal(s.busy, 1);
        assert_int_equal(s.memory_budget, 19 * MIB);
        assert_int_equal(s.hashes, 2);
        assert_int_equal(s.waits, 0);

        /* The one slot stays taken: every other caller waits 50 ms and is refused. */
        assert_int_equal(password_hash(p, "another long password", 21, out), -EBUSY);
        assert_int_equal(password_verify(p, other, "another long password", 21, NULL), -EBUSY);
        assert_int_equal(password_verify_dummy(p, "x", 1), -EBUSY);
        password_pool_stats(p, &s);
        assert_int_equal(s.busy, 1);
        assert_int_equal(s.hashes, 2);
        assert_int_equal(s.waits, 3);
        assert_int_equal(s.refused, 3);

        pthread_barrier_wait(&h.release);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(h.result, 0);
        assert_int_equal(password_verify(p, h.hash, "correct horse battery staple", 28, NULL), 0);
        password_pool_stats(p, &s);
        assert_int_equal(s.busy, 0);
        assert_int_equal(s.hashes, 3);
        assert_int_equal(s.refused, 3);
        pthread_barrier_destroy(&h.in_slot);
        pthread_barrier_destroy(&h.release);
}

static void test_pool_waiter_gets_freed_slot(void **state) {
        _cleanup_(password_pool_freep) struct password_pool *p = NULL;
        struct password_pool_stats s;
        struct holder h = {};
        struct waiter w = { .result = 1 };
        pthread_t th, tw;

        /* A wait long enough that only a lost wake-up makes the waiter time out (-EBUSY). */
        assert_int_equal(password_pool_new(1, 30000, &cost_min, &p), 0);
        h.pool = w.pool = p;
        pthread_barrier_init(&h.in_slot, NULL, 2);
        pthread_barrier_init(&h.release, NULL, 2);
        password_pool_set_slot_hook(p, hold_slot, &h);
        assert_int_equal(pthread_create(&th, NULL, holder_main, &h), 0);
        pthread_barrier_wait(&h.in_slot);
        password_pool_set_slot_hook(p, NULL, NULL);

        assert_int_equal(pthread_create(&tw, NULL, waiter_main, &w), 0);
        do { /* until the waiter is counted as waiting (it cannot get the slot before release) */
                sched_yield();
                password_pool_stats(p, &s);
        } while (s.waits == 0);
        assert_int_equal(s.busy, 1);

        pthread_barrier_wait(&h.release);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(pthread_join(tw, NULL), 0);
        assert_int_equal(h.result, 0);
        assert_int_equal(w.result, -EACCES); /* it ran, and a dummy verify always fails */
        password_pool_stats(p, &s);
        assert_int_equal(s.busy, 0);
        assert_int_equal(s.hashes, 2);
        assert_int_equal(s.waits, 1);
        assert_int_equal(s.refused, 0);
        pthread_barrier_destroy(&h.in_slot);
        pthread_barrier_destroy(&h.release);
}

static void test_metrics(void **state) {
        _cleanup_(password_pool_freep) struct password_pool *p = NULL;
        _cleanup_buf_ struct buf b = {};
        char h[PASSWORD_HASH_MAX];

        buf_init(&b, 0);
        assert_int_equal(password_pool_new(3, 1000, &cost_min, &p), 0);
        assert_int_equal(password_hash(p, "correct horse battery staple", 28, h), 0);
        assert_int_equal(password_metrics_append(p, &b), 0);
        const char *s = buf_str(&b);
        assert_non_null(strstr(s, "\ncoffre_password_hash_slots 3\n"));
        assert_non_null(strstr(s, "\ncoffre_password_hash_slots_busy 0\n"));
        assert_non_null(strstr(s, "\ncoffre_password_hash_memory_budget_bytes 59768832\n"));
        assert_non_null(strstr(s, "\ncoffre_password_hashes_total 1\n"));
        assert_non_null(strstr(s, "\ncoffre_password_hash_waits_total 0\n"));
        assert_non_null(strstr(s, "\ncoffre_password_hash_refused_total 0\n"));
        assert_non_null(strstr(s, "# TYPE coffre_password_hashes_total counter\n"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_policy_length),
                cmocka_unit_test(test_policy_common),
                cmocka_unit_test(test_policy_utf8),
                cmocka_unit_test(test_hash_verify),
                cmocka_unit_test(test_malformed_hash),
                cmocka_unit_test(test_rehash_when_cost_rises),
                cmocka_unit_test(test_pool_refuses_bad_parameters),
                cmocka_unit_test(test_pool_busy),
                cmocka_unit_test(test_pool_waiter_gets_freed_slot),
                cmocka_unit_test(test_metrics),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
