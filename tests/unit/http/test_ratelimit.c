/* test_ratelimit.c: token bucket refill and burst, the failure delay (free failures, doubling,
 * cap, reset by a success), failures forgotten after the window, the table bound (least recently
 * used key evicted) and many threads on one table. Time is injected: nothing here sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "http/ratelimit.h"

static struct ratelimit *make(double rate, double burst, size_t max_keys) {
        const struct ratelimit_options o = {
                .rate = rate,
                .burst = burst,
                .fail_free = 3,
                .fail_delay_ms = 1000,
                .fail_delay_max_ms = 60000,
                .fail_window_ms = 900000,
                .max_keys = max_keys,
        };
        struct ratelimit *rl = NULL;
        assert_int_equal(ratelimit_new(&o, &rl), 0);
        return rl;
}

static void test_burst_then_refill(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = make(0.5, 5, 100); /* one token per 2 s */
        uint64_t t = 1000000;

        for (int i = 0; i < 5; i++)
                assert_int_equal(ratelimit_take(rl, "198.51.100.7", t), 0);
        /* Empty: the wait is the time until one whole token is back. */
        assert_int_equal(ratelimit_take(rl, "198.51.100.7", t), 2000);
        assert_int_equal(ratelimit_take(rl, "198.51.100.7", t + 500), 1500);
        assert_int_equal(ratelimit_take(rl, "198.51.100.7", t + 1999), 1);
        assert_int_equal(ratelimit_take(rl, "198.51.100.7", t + 2000), 0);
        assert_int_equal(ratelimit_take(rl, "198.51.100.7", t + 2000), 2000);
        /* Other keys have buckets of their own. */
        assert_int_equal(ratelimit_take(rl, "198.51.100.8", t + 2000), 0);
        /* A long pause refills to the burst and no further. */
        t += 3600 * 1000;
        for (int i = 0; i < 5; i++)
                assert_int_equal(ratelimit_take(rl, "198.51.100.7", t), 0);
        assert_true(ratelimit_take(rl, "198.51.100.7", t) > 0);
}

static void test_clock_going_back(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = make(1, 1, 100);

        assert_int_equal(ratelimit_take(rl, "k", 50000), 0);
        /* Time going back gives no tokens (nor an underflowed wait). */
        assert_int_equal(ratelimit_take(rl, "k", 10000), 1000);
        assert_int_equal(ratelimit_take(rl, "k", 51000), 0);
}

static void test_failure_delay_grows_and_resets(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = make(1000, 1000, 100); /* the bucket never runs dry */
        uint64_t t = 5000;
        const uint32_t expect[] = { 0, 0, 0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000 };

        for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
                assert_int_equal(ratelimit_take(rl, "account", t), 0);
                ratelimit_failure(rl, "account", t);
                /* The delay after failure i+1: free for the first three, then doubling, capped. */
                assert_int_equal(ratelimit_take(rl, "account", t), expect[i]);
                if (expect[i]) {
                        assert_int_equal(ratelimit_take(rl, "account", t + expect[i] - 1), 1);
                        t += expect[i];
                }
        }
        /* Another key is not slowed by this one's failures. */
        assert_int_equal(ratelimit_take(rl, "other", t), 0);
        /* A success clears the failures: the next failures are free again. */
        assert_int_equal(ratelimit_take(rl, "account", t), 0);
        ratelimit_success(rl, "account");
        for (int i = 0; i < 3; i++) {
                ratelimit_failure(rl, "account", t);
                assert_int_equal(ratelimit_take(rl, "account", t), 0);
        }
        ratelimit_failure(rl, "account", t);
        assert_int_equal(ratelimit_take(rl, "account", t), 1000);
}

static void test_failures_forgotten_after_window(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = make(1000, 1000, 100);
        uint64_t t = 0;

        for (int i = 0; i < 20; i++)
                ratelimit_failure(rl, "victim", t);
        assert_int_equal(ratelimit_take(rl, "victim", t), 60000);
        /* The delay is over but the failures still count: one more gives the full delay again. */
        t += 60000;
        assert_int_equal(ratelimit_take(rl, "victim", t), 0);
        ratelimit_failure(rl, "victim", t);
        assert_int_equal(ratelimit_take(rl, "victim", t), 60000);
        /* Waiting out the longest delay (or even the window after the failure) forgets nothing:
         * the window counts from the end of the last delay. */
        t += 60000 + 900000 - 1;
        assert_int_equal(ratelimit_take(rl, "victim", t), 0);
        ratelimit_failure(rl, "victim", t);
        assert_int_equal(ratelimit_take(rl, "victim", t), 60000);
        /* 15 minutes after the last delay ended they are forgotten: three free failures again. */
        t += 60000 + 900000;
        assert_int_equal(ratelimit_take(rl, "victim", t), 0);
        ratelimit_failure(rl, "victim", t);
        ratelimit_failure(rl, "victim", t);
        ratelimit_failure(rl, "victim", t);
        assert_int_equal(ratelimit_take(rl, "victim", t), 0);
        ratelimit_failure(rl, "victim", t);
        assert_int_equal(ratelimit_take(rl, "victim", t), 1000);
}

static void test_table_bound_evicts_least_recently_used(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = make(0.001, 1, 3);
        char key[32];

        assert_int_equal(ratelimit_take(rl, "a", 0), 0);
        assert_int_equal(ratelimit_take(rl, "b", 0), 0);
        assert_int_equal(ratelimit_take(rl, "c", 0), 0);
        /* All three empty; touching a makes b the least recently used. */
        assert_true(ratelimit_take(rl, "a", 1) > 0);
        assert_int_equal(ratelimit_take(rl, "d", 1), 0); /* evicts b */
        assert_true(ratelimit_take(rl, "a", 2) > 0);
        assert_true(ratelimit_take(rl, "c", 2) > 0);
        assert_true(ratelimit_take(rl, "d", 2) > 0);
        /* b was forgotten: it starts again with a full bucket (and evicts a, now the oldest). */
        assert_int_equal(ratelimit_take(rl, "b", 3), 0);
        assert_int_equal(ratelimit_take(rl, "a", 4), 0);
        /* Many more keys than the bound: memory stays bounded and lookups keep working. */
        for (int i = 0; i < 100000; i++) {
                snprintf(key, sizeof key, "k%d", i);
                assert_int_equal(ratelimit_take(rl, key, 5), 0);
        }
        assert_true(ratelimit_take(rl, "k99999", 5) > 0);
        assert_int_equal(ratelimit_take(rl, "k0", 5), 0);
}

static void test_table_bound_keeps_delaying_keys(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = make(1000, 1000, 3);
        char key[32];

        /* "victim" is locked for 60 s, then becomes the least recently used entry */
        for (int i = 0; i < 20; i++)
                ratelimit_failure(rl, "victim", 0);
        assert_int_equal(ratelimit_take(rl, "victim", 0), 60000);
        /* a flood of new keys evicts the others, never the delaying one */
        for (int i = 0; i < 1000; i++) {
                snprintf(key, sizeof key, "flood%d", i);
                assert_int_equal(ratelimit_take(rl, key, 1), 0);
        }
        assert_int_equal(ratelimit_take(rl, "victim", 1), 59999);
        /* a table full of delaying keys refuses new keys as limited, and keeps its entries */
        for (int i = 0; i < 20; i++) {
                ratelimit_failure(rl, "x", 2);
                ratelimit_failure(rl, "y", 2);
        }
        assert_int_equal(ratelimit_take(rl, "new", 3), 1000);
        assert_int_equal(ratelimit_take(rl, "victim", 3), 59997);
        assert_int_equal(ratelimit_take(rl, "x", 3), 59999);
        assert_int_equal(ratelimit_take(rl, "y", 3), 59999);
        /* once the delays end, entries are evictable again */
        assert_int_equal(ratelimit_take(rl, "new", 70000), 0);
}

static void test_bad_options(void **state) {
        struct ratelimit *rl = NULL;
        struct ratelimit_options o = {
                .rate = 1, .burst = 1, .max_keys = 10, .fail_delay_ms = 10, .fail_delay_max_ms = 5
        };

        assert_int_equal(ratelimit_new(&o, &rl), -EINVAL);
        o.fail_delay_max_ms = 10;
        o.rate = 0;
        assert_int_equal(ratelimit_new(&o, &rl), -EINVAL);
        o.rate = 1;
        o.burst = 0.5;
        assert_int_equal(ratelimit_new(&o, &rl), -EINVAL);
        o.burst = 1;
        o.max_keys = 0;
        assert_int_equal(ratelimit_new(&o, &rl), -EINVAL);
        assert_null(rl);
}

/* 8 threads take 20,000 tokens each from one key with a bucket of 80,000 and no refill: exactly
 * 80,000 are granted, whatever the interleaving. Meanwhile they churn a second, small table with
 * keys of their own (each new key evicts one), and record failures in it. */
struct taker {
        struct ratelimit *rl, *churn;
        int id;
        unsigned granted, churn_granted;
};

static void *taker_main(void *arg) {
        struct taker *t = arg;
        char key[32];
        for (int i = 0; i < 20000; i++) {
                if (ratelimit_take(t->rl, "shared", 0) == 0)
                        t->granted++;
                snprintf(key, sizeof key, "%d-%d", t->id, i);
                if (ratelimit_take(t->churn, key, 0) == 0)
                        t->churn_granted++;
                ratelimit_failure(t->churn, key, 0);
                ratelimit_success(t->churn, key);
        }
        return NULL;
}

static void test_threads(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = make(0.000001, 80000, 10);
        _cleanup_(ratelimit_freep) struct ratelimit *churn = make(1, 1, 16);
        struct taker t[8];
        pthread_t th[8];
        unsigned total = 0;

        for (int i = 0; i < 8; i++) {
                t[i] = (struct taker){ .rl = rl, .churn = churn, .id = i };
                assert_int_equal(pthread_create(&th[i], NULL, taker_main, &t[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
                assert_int_equal(pthread_join(th[i], NULL), 0);
                total += t[i].granted;
                assert_int_equal(t[i].churn_granted, 20000); /* every key new, every bucket full */
        }
        assert_int_equal(total, 80000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_then_refill),
                cmocka_unit_test(test_clock_going_back),
                cmocka_unit_test(test_failure_delay_grows_and_resets),
                cmocka_unit_test(test_failures_forgotten_after_window),
                cmocka_unit_test(test_table_bound_evicts_least_recently_used),
                cmocka_unit_test(test_table_bound_keeps_delaying_keys),
                cmocka_unit_test(test_bad_options),
                cmocka_unit_test(test_threads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
