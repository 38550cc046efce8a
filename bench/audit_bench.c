/* audit_bench.c: audit log figures: durable appends per second with 1, 8 and 64 writer threads,
 * each beside the disk's own limit measured just before in the same directory (writers divided
 * by the median latency of an append-sized write + fdatasync, what writers that each waited for
 * a sync of their own would reach), inclusion and consistency proof latency on a
 * 10-million-entry log, full verification speed.
 *
 * usage: audit-bench [--entries N] [--dir DIR] [--keep]
 * The big log is built once in DIR (default $TMPDIR or /tmp) and removed unless --keep. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/log.h"
#include "fileio.h"
#include "timeutil.h"

#define ENTRY_TEMPLATE                                                                                   \
        "{\"action\":\"document.create\",\"actor\":\"usr_01HZX4Q2\",\"object\":\"doc_%012llu\","          \
        "\"object_sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","       \
        "\"org\":\"org_01HZX3\",\"request_id\":\"req_%016llx\",\"time\":\"2026-11-27T11:22:33.123Z\"}"

static size_t make_entry(uint64_t i, char *out, size_t cap) {
        return (size_t) snprintf(out, cap, ENTRY_TEMPLATE, (unsigned long long) i,
                                 (unsigned long long) (i * 0x9e3779b97f4a7c15ULL));
}

static double secs(uint64_t ns) {
        return (double) ns / 1e9;
}

struct writer {
        struct audit_log *log;
        uint64_t first, count;
        int err;
};

static void *writer_main(void *p) {
        struct writer *w = p;
        char e[512];
        for (uint64_t i = 0; i < w->count; i++) {
                size_t n = make_entry(w->first + i, e, sizeof e);
                int r = audit_log_append(w->log, e, n, NULL);
                if (r < 0) {
                        w->err = r;
                        break;
                }
        }
        return NULL;
}

struct groups {
        uint64_t n;
};
static void count_group(void *ud, uint64_t size, const merkle_hash *root) {
        (void) size, (void) root;
        ((struct groups *) ud)->n++;
}

static int cmp_u64(const void *a, const void *b);

/* Median latency of an append of one record the size of an audit record + fdatasync, in ns. */
static int disk_append_sync_ns(const char *base, uint64_t *ret) {
        enum { ROUNDS = 200 };
        static uint64_t ns[ROUNDS];
        char rec[512];
        size_t n = make_entry(0, rec, sizeof rec) + 4 + 32; /* header + entry + leaf hash */
        _cleanup_free_ char *path = path_join(base, "disk-probe");
        if (!path)
                return -ENOMEM;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        memset(rec, 'x', sizeof rec);
        int r = 0;
        for (int i = 0; i < ROUNDS && r == 0; i++) {
                uint64_t t0 = mono_ns();
                if (write(fd, rec, n) != (ssize_t) n || fdatasync(fd) < 0)
                        r = -EIO;
                ns[i] = mono_ns() - t0;
        }
        close(fd);
        unlink(path);
        if (r < 0)
                return r;
        qsort(ns, ROUNDS, sizeof ns[0], cmp_u64);
        *ret = ns[ROUNDS / 2];
        return 0;
}

static int bench_appends(const char *base, unsigned threads, uint64_t total) {
        _cleanup_free_ char *dir = path_join(base, "append");
        struct audit_log *log = NULL;
        struct writer w[64];
        pthread_t t[64];
        struct groups g = { 0 };

        uint64_t sync_ns;
        int r = disk_append_sync_ns(base, &sync_ns);
        if (r < 0)
                return r;
        rm_rf(dir);
        r = audit_log_open(dir, true, &log);
        if (r < 0)
                return r;
        audit_log_set_on_commit(log, count_group, &g);
        uint64_t t0 = mono_ns();
        for (unsigned i = 0; i < threads; i++) {
                w[i] = (struct writer){ log, i * (total / threads), total / threads, 0 };
                if (pthread_create(&t[i], NULL, writer_main, &w[i]) != 0)
                        return -EAGAIN;
        }
        for (unsigned i = 0; i < threads; i++)
                pthread_join(t[i], NULL);
        uint64_t dt = mono_ns() - t0;
        for (unsigned i = 0; i < threads; i++)
                if (w[i].err < 0)
                        return w[i].err;
        double rate = (double) audit_log_size(log) / secs(dt);
        double limit = (double) threads / secs(sync_ns);
        double goal = limit * 0.8 < 100000 ? limit * 0.8 : 100000;
        printf("appends, %2u writers: %9.0f appends/s durable (%llu entries, %.1f per fdatasync); "
               "disk limit %.0f/s (append + fdatasync %.0f us): %.2fx the limit, goal %.0f/s %s\n",
               threads, rate, (unsigned long long) audit_log_size(log),
               (double) audit_log_size(log) / (double) (g.n ? g.n : 1), limit, (double) sync_ns / 1e3,
               rate / limit, goal, rate >= goal ? "met" : "missed");
        audit_log_close(log);
        rm_rf(dir);
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static uint64_t rnd(uint64_t *s) {
        *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
        return *s;
}

static void report(const char *what, uint64_t *ns, size_t n) {
        qsort(ns, n, sizeof *ns, cmp_u64);
        printf("%s: median %.1f us, p99 %.1f us, max %.1f us (%zu samples)\n", what, (double) ns[n / 2] / 1e3,
               (double) ns[n * 99 / 100] / 1e3, (double) ns[n - 1] / 1e3, n);
}

static int bench_big(const char *base, uint64_t entries, int keep) {
        _cleanup_free_ char *dir = path_join(base, "big");
        struct audit_log *log = NULL;
        enum { BATCH = 8192, SAMPLES = 20000 };
        static struct iovec iov[BATCH];
        static char ebuf[BATCH][512];
        static uint64_t lat[SAMPLES];
        uint64_t seed = 88172645463325252ULL;
        int r;

        r = audit_log_open(dir, true, &log);
        if (r < 0)
                return r;
        uint64_t have = audit_log_size(log), t0 = mono_ns();
        if (have > entries)
                entries = have;
        for (uint64_t i = have; i < entries;) {
                size_t n = (size_t) (entries - i < BATCH ? entries - i : BATCH);
                for (size_t k = 0; k < n; k++)
                        iov[k] = (struct iovec){ ebuf[k], make_entry(i + k, ebuf[k], sizeof ebuf[k]) };
                r = audit_log_append_batch(log, iov, n, NULL);
                if (r < 0)
                        return r;
                i += n;
        }
        if (have < entries)
                printf("built a %llu-entry log in %.1f s (batches of %d)\n", (unsigned long long) entries,
                       secs(mono_ns() - t0), BATCH);
        audit_log_close(log);
        t0 = mono_ns();
        r = audit_log_open(dir, false, &log);
        if (r < 0)
                return r;
        printf("reopen after a clean close: %.1f ms\n", (double) (mono_ns() - t0) / 1e6);

        merkle_hash proof[MERKLE_MAX_PROOF], root, leaf;
        size_t len;
        for (size_t s = 0; s < SAMPLES; s++) {
                uint64_t idx = rnd(&seed) % entries;
                uint64_t a = mono_ns();
                r = audit_log_inclusion_proof(log, idx, entries, proof, &len);
                lat[s] = mono_ns() - a;
                if (r < 0)
                        return r;
                if (s == 0) {
                        if (audit_log_root(log, entries, &root) < 0 || audit_log_leaf_hash(log, idx, &leaf) < 0 ||
                            merkle_verify_inclusion(&leaf, idx, entries, proof, len, &root) < 0) {
                                fprintf(stderr, "inclusion proof does not verify\n");
                                return -EBADMSG;
                        }
                }
        }
        report("inclusion proof, 10M-class log (warm cache)", lat, SAMPLES);
        for (size_t s = 0; s < SAMPLES; s++) {
                uint64_t m = 1 + rnd(&seed) % entries;
                uint64_t a = mono_ns();
                r = audit_log_consistency_proof(log, m, entries, proof, &len);
                lat[s] = mono_ns() - a;
                if (r < 0)
                        return r;
        }
        report("consistency proof", lat, SAMPLES);
        for (size_t s = 0; s < SAMPLES; s++) {
                uint64_t n = 1 + rnd(&seed) % entries;
                uint64_t a = mono_ns();
                r = audit_log_root(log, n, &root);
                lat[s] = mono_ns() - a;
                if (r < 0)
                        return r;
        }
        report("root at an older size", lat, SAMPLES);

        uint64_t bad = 0;
        t0 = mono_ns();
        r = audit_log_verify_all(log, &bad);
        uint64_t dt = mono_ns() - t0;
        if (r < 0) {
                fprintf(stderr, "verify_all failed: %s at %llu\n", strerror(-r), (unsigned long long) bad);
                return r;
        }
        printf("full verification: %.0f entries/s (%llu entries in %.2f s)\n", (double) entries / secs(dt),
               (unsigned long long) entries, secs(dt));
        audit_log_close(log);
        if (!keep)
                rm_rf(dir);
        return 0;
}

int main(int argc, char **argv) {
        uint64_t entries = 10000000;
        const char *base = getenv("TMPDIR");
        int keep = 0;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc)
                        entries = strtoull(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
                        base = argv[++i];
                else if (strcmp(argv[i], "--keep") == 0)
                        keep = 1;
                else {
                        fprintf(stderr, "usage: %s [--entries N] [--dir DIR] [--keep]\n", argv[0]);
                        return 2;
                }
        }
        if (entries == 0)
                entries = 1;
        _cleanup_free_ char *root = path_join(base && *base ? base : "/tmp", "coffre-audit-bench");
        if (!root || mkdir_p(root, 0700) < 0) {
                fprintf(stderr, "cannot create the bench directory\n");
                return 1;
        }
        static const struct {
                unsigned threads;
                uint64_t total;
        } runs[] = { { 1, 20000 }, { 8, 100000 }, { 64, 640000 } };
        for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
                int r = bench_appends(root, runs[i].threads, runs[i].total);
                if (r < 0) {
                        fprintf(stderr, "append bench failed: %s\n", strerror(-r));
                        return 1;
                }
        }
        int r = bench_big(root, entries, keep);
        if (r < 0) {
                fprintf(stderr, "big-log bench failed: %s\n", strerror(-r));
                return 1;
        }
        if (!keep)
                rm_rf(root);
        return 0;
}
