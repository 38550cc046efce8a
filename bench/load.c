/* load.c: coffre-load, fills a vault with many documents fast, for the growth benchmarks.
 *
 * Usage: coffre-load DATA COUNT [SIZE [THREADS]]
 * With the server stopped, opens the vault in DATA like `coffre serve` does and stores COUNT
 * documents of SIZE bytes (default 4096) from THREADS threads (default 64) through the vault's
 * own ingest path, without HTTP or TLS: every document gets its key in keyring.db, its encrypted
 * object, its audit entry and its metadata row, each durable, so the result is a vault like any
 * other (`coffre audit verify --data DATA` accepts it). Bodies are pseudo-random and distinct.
 * Prints progress every 10 % and one line `result docs=N seconds=S docs_per_s=R`. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/vault.h"
#include "fileio.h"
#include "log.h"

struct job {
        struct vault *v;
        struct vault_actor actor;
        uint64_t count, size;
        _Atomic uint64_t next, done;
        _Atomic int error;
};

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void *worker(void *arg) {
        struct job *j = arg;
        uint8_t *body = malloc(j->size ? j->size : 1);
        if (!body) {
                atomic_store(&j->error, -ENOMEM);
                return NULL;
        }
        randombytes_buf(body, j->size);
        for (;;) {
                uint64_t i = atomic_fetch_add(&j->next, 1);
                if (i >= j->count || atomic_load(&j->error) < 0)
                        break;
                char name[64];
                snprintf(name, sizeof name, "load-%llu.bin", (unsigned long long) i);
                if (j->size >= sizeof i)
                        memcpy(body, &i, sizeof i); /* distinct bodies */
                struct vault_upload *u;
                struct store_document d;
                int r = vault_upload_begin(j->v, &j->actor, name, "temporary-90d", NULL, &u);
                if (r >= 0) {
                        r = vault_upload_write(u, body, j->size);
                        if (r < 0)
                                vault_upload_abort(u);
                        else
                                r = vault_upload_finish(u, NULL, &d);
                }
                if (r < 0) {
                        fprintf(stderr, "coffre-load: document %llu: %s\n", (unsigned long long) i, strerror(-r));
                        atomic_store(&j->error, r);
                        break;
                }
                uint64_t n = atomic_fetch_add(&j->done, 1) + 1;
                if (j->count >= 10 && n % (j->count / 10) == 0)
                        fprintf(stderr, "coffre-load: %llu / %llu\n", (unsigned long long) n,
                                (unsigned long long) j->count);
        }
        free(body);
        return NULL;
}

int main(int argc, char **argv) {
        if (argc < 3 || argc > 5) {
                fprintf(stderr, "usage: coffre-load DATA COUNT [SIZE [THREADS]]\n");
                return 2;
        }
        struct job j = { .count = strtoull(argv[2], NULL, 10), .size = argc > 3 ? strtoull(argv[3], NULL, 10) : 4096 };
        unsigned threads = argc > 4 ? (unsigned) strtoul(argv[4], NULL, 10) : 64;
        if (threads == 0 || threads > 1024 || j.size > ((uint64_t) 64 << 20)) {
                fprintf(stderr, "coffre-load: THREADS must be 1..1024 and SIZE at most 64 MiB\n");
                return 2;
        }
        if (sodium_init() < 0)
                return 1;
        log_set_level(LOG_LEVEL_WARN);

        _cleanup_free_ char *tok_path = path_join(argv[1], "bootstrap-token");
        char token[256] = "";
        FILE *f = tok_path ? fopen(tok_path, "re") : NULL;
        if (!f || !fgets(token, sizeof token, f)) {
                fprintf(stderr, "coffre-load: cannot read %s/bootstrap-token\n", argv[1]);
                if (f)
                        fclose(f);
                return 1;
        }
        fclose(f);
        token[strcspn(token, "\n")] = 0;

        int r = vault_open(argv[1], &j.v);
        if (r < 0) {
                fprintf(stderr, "coffre-load: cannot open the vault: %s\n", strerror(-r));
                return 1;
        }
        r = vault_prepare_writes(j.v);
        if (r >= 0)
                r = vault_authenticate(j.v, token, &j.actor);
        sodium_memzero(token, sizeof token);
        if (r < 0) {
                fprintf(stderr, "coffre-load: the bootstrap token is not accepted: %s\n", strerror(-r));
                vault_close(j.v);
                return 1;
        }

        pthread_t *t = calloc(threads, sizeof *t);
        if (!t)
                return 1;
        double t0 = now_s();
        unsigned started = 0;
        for (; started < threads; started++)
                if (pthread_create(&t[started], NULL, worker, &j) != 0)
                        break;
        for (unsigned i = 0; i < started; i++)
                pthread_join(t[i], NULL);
        double secs = now_s() - t0;
        free(t);
        vault_close(j.v);
        uint64_t done = atomic_load(&j.done);
        printf("result docs=%llu seconds=%.3f docs_per_s=%.1f\n", (unsigned long long) done, secs,
               secs > 0 ? (double) done / secs : 0.0);
        return atomic_load(&j.error) < 0 || started == 0 ? 1 : 0;
}
