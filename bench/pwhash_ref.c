/* pwhash_ref.c: the reference for the login benchmark. Times libsodium's own Argon2id
 * (crypto_pwhash_str_alg, one thread) at a given cost, then the same hashes run through a
 * password pool of N slots from N threads, and prints both as key=value lines.
 *
 * usage: pwhash-ref MEMLIMIT_BYTES OPSLIMIT SLOTS [ROUNDS] */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/password.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

struct worker {
        struct password_pool *pool;
        unsigned rounds;
        int result;
};

static void *worker_main(void *arg) {
        struct worker *w = arg;
        char out[PASSWORD_HASH_MAX];
        for (unsigned i = 0; i < w->rounds && w->result == 0; i++)
                w->result = password_hash(w->pool, "correct horse battery staple", 28, out);
        return NULL;
}

int main(int argc, char **argv) {
        if (argc < 4 || argc > 5) {
                fprintf(stderr, "usage: pwhash-ref MEMLIMIT_BYTES OPSLIMIT SLOTS [ROUNDS]\n");
                return 2;
        }
        struct password_cost cost = { .memlimit = strtoull(argv[1], NULL, 10),
                                      .opslimit = strtoull(argv[2], NULL, 10) };
        unsigned slots = (unsigned) strtoul(argv[3], NULL, 10);
        unsigned rounds = argc > 4 ? (unsigned) strtoul(argv[4], NULL, 10) : 10;
        if (slots < 1 || slots > 64 || rounds < 1 || rounds > 1000 || sodium_init() < 0) {
                fprintf(stderr, "pwhash-ref: bad arguments\n");
                return 2;
        }

        double *t = calloc(rounds, sizeof *t);
        char out[crypto_pwhash_STRBYTES];
        if (!t)
                return 1;
        for (unsigned i = 0; i < rounds; i++) {
                double t0 = now_s();
                if (crypto_pwhash_str_alg(out, "correct horse battery staple", 28, cost.opslimit, cost.memlimit,
                                          crypto_pwhash_ALG_ARGON2ID13) != 0) {
                        fprintf(stderr, "pwhash-ref: crypto_pwhash_str_alg failed\n");
                        return 1;
                }
                t[i] = now_s() - t0;
        }
        qsort(t, rounds, sizeof *t, cmp_double);
        printf("one_hash_median_s=%.6f\n", t[rounds / 2]);
        free(t);

        struct password_pool *pool = NULL;
        int r = password_pool_new(slots, 600000, &cost, &pool);
        if (r < 0) {
                fprintf(stderr, "pwhash-ref: password_pool_new: %s\n", strerror(-r));
                return 1;
        }
        pthread_t th[64];
        struct worker w[64];
        double t0 = now_s();
        for (unsigned i = 0; i < slots; i++) {
                w[i] = (struct worker){ .pool = pool, .rounds = rounds };
                if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
                        return 1;
        }
        for (unsigned i = 0; i < slots; i++) {
                pthread_join(th[i], NULL);
                if (w[i].result < 0) {
                        fprintf(stderr, "pwhash-ref: password_hash: %s\n", strerror(-w[i].result));
                        return 1;
                }
        }
        double el = now_s() - t0;
        printf("pool_hashes_per_s=%.3f\n", (double) slots * rounds / el);
        password_pool_free(pool);
        return 0;
}
