/* bench_store.c: document inserts per second through the group commit, with T threads.
 * Usage: bench-store DIR THREADS ROWS. Not a test: prints one line. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fileio.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

struct arg {
        struct store *s;
        unsigned first, n;
        int failed;
};

static void make_id(char out[STORE_ID_LEN + 1], unsigned tag, unsigned n) {
        snprintf(out, STORE_ID_LEN + 1, "%08x%024x", tag, n);
}

static void *run(void *p) {
        struct arg *a = p;
        for (unsigned i = 0; i < a->n; i++) {
                struct store_document d = { .size = 12345, .created_at = 1700000000000 + a->first + i };
                make_id(d.id, 0xd0c0d0c0u, a->first + i);
                make_id(d.org_id, 0xa0a0a0a0u, 0);
                d.name_sealed_len =
                        (size_t) snprintf((char *) d.name_sealed, sizeof d.name_sealed, "invoice-%u.pdf", a->first + i);
                snprintf(d.class_, sizeof d.class_, "accounting-10y");
                if (a->s->ops->document_insert(a->s, &d) < 0)
                        a->failed++;
        }
        return NULL;
}

int main(int argc, char **argv) {
        if (argc != 4) {
                fprintf(stderr, "usage: %s DIR THREADS ROWS\n", argv[0]);
                return 2;
        }
        unsigned threads = (unsigned) atoi(argv[2]), rows = (unsigned) atoi(argv[3]);
        if (threads < 1 || threads > 256 || rows < threads)
                return 2;
        _cleanup_free_ char *path = path_join(argv[1], "bench-meta.db");
        char wal[4096], shm[4096];
        snprintf(wal, sizeof wal, "%s-wal", path);
        snprintf(shm, sizeof shm, "%s-shm", path);
        unlink(path);
        unlink(wal);
        unlink(shm);
        struct store *s;
        int r = store_sqlite_open(path, true, &s);
        if (r < 0) {
                fprintf(stderr, "open: %s\n", strerror(-r));
                return 1;
        }
        struct store_org o = { .created_at = 1 };
        make_id(o.id, 0xa0a0a0a0u, 0);
        snprintf(o.name, sizeof o.name, "bench");
        if (s->ops->org_insert(s, &o) < 0)
                return 1;

        pthread_t th[256];
        struct arg args[256];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (unsigned t = 0; t < threads; t++) {
                args[t] = (struct arg) { .s = s, .first = t * (rows / threads), .n = rows / threads };
                pthread_create(&th[t], NULL, run, &args[t]);
        }
        int failed = 0;
        for (unsigned t = 0; t < threads; t++) {
                pthread_join(th[t], NULL);
                failed += args[t].failed;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        unsigned done = (rows / threads) * threads;
        uint64_t commits, carried;
        sqlite_store_commit_stats(s, &commits, &carried);
        printf("threads=%u rows=%u failed=%d seconds=%.3f inserts_per_s=%.0f commits=%llu rows_per_commit=%.1f\n",
               threads, done, failed, secs, done / secs, (unsigned long long) commits,
               commits ? (double) carried / (double) commits : 0.0);
        store_close(s);
        unlink(path);
        unlink(wal);
        unlink(shm);
        return failed ? 1 : 0;
}
