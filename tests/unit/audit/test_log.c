/* test_log.c: the durable audit log: reads and proofs against a naive recomputation and the
 * RFC 6962 reference vector, tiles, checkpoints, concurrent appends, crash recovery (cut and
 * garbage tails, kill -9 of an appending child) and tamper detection by full verification. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/log.h"
#include "audit/merkle.h"
#include "buf.h"
#include "fileio.h"
#include "hex.h"

/* ---- helpers ---- */

static char *tmpdir(void) {
        const char *base = getenv("TMPDIR");
        char *t = path_join(base && *base ? base : "/tmp", "coffre-auditlog-XXXXXX");
        assert_non_null(t);
        assert_non_null(mkdtemp(t));
        return t;
}

static char *sub(const char *dir, const char *name) {
        char *p = path_join(dir, name);
        assert_non_null(p);
        return p;
}

/* Entry i of the test logs: varied lengths, including 0. */
static size_t make_entry(uint64_t i, char *out, size_t cap) {
        int n = snprintf(out, cap, "{\"i\":%llu,\"pad\":\"%.*s\"}", (unsigned long long) i, (int) (i * 7 % 97),
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        return i % 50 == 49 ? 0 : (size_t) n;
}

static void append_range(struct audit_log *log, uint64_t from, uint64_t to) {
        char e[256];
        for (uint64_t i = from; i < to; i++) {
                uint64_t idx;
                size_t n = make_entry(i, e, sizeof e);
                assert_int_equal(audit_log_append(log, e, n, &idx), 0);
                assert_int_equal(idx, i);
        }
}

static int hash_eq(const merkle_hash *a, const merkle_hash *b) {
        return memcmp(a->b, b->b, MERKLE_HASH_SIZE) == 0;
}

/* Naive RFC 9162 2.1.1 MTH over leaf hashes. */
static void naive_root(const merkle_hash *l, uint64_t n, merkle_hash *ret) {
        if (n == 0) {
                merkle_empty_root(ret);
                return;
        }
        if (n == 1) {
                *ret = l[0];
                return;
        }
        uint64_t k = 1;
        while (k * 2 < n)
                k *= 2;
        merkle_hash a, b;
        naive_root(l, k, &a);
        naive_root(l + k, n - k, &b);
        merkle_node_hash(&a, &b, ret);
}

/* RFC 9162 2.1.3.1 PATH(m, D[n]). */
static void naive_path(const merkle_hash *l, uint64_t m, uint64_t n, merkle_hash *p, size_t *len) {
        if (n <= 1)
                return;
        uint64_t k = 1;
        while (k * 2 < n)
                k *= 2;
        if (m < k) {
                naive_path(l, m, k, p, len);
                naive_root(l + k, n - k, &p[(*len)++]);
        } else {
                naive_path(l + k, m - k, n - k, p, len);
                naive_root(l, k, &p[(*len)++]);
        }
}

/* RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b). */
static void naive_subproof(const merkle_hash *l, uint64_t m, uint64_t n, int b, merkle_hash *p, size_t *len) {
        if (m == n) {
                if (!b)
                        naive_root(l, n, &p[(*len)++]);
                return;
        }
        uint64_t k = 1;
        while (k * 2 < n)
                k *= 2;
        if (m <= k) {
                naive_subproof(l, m, k, b, p, len);
                naive_root(l + k, n - k, &p[(*len)++]);
        } else {
                naive_subproof(l + k, m - k, n - k, 0, p, len);
                naive_root(l, k, &p[(*len)++]);
        }
}

static void check_proofs(struct audit_log *log, const merkle_hash *leaves, uint64_t n, uint64_t i, uint64_t m) {
        merkle_hash got[MERKLE_MAX_PROOF], want[MERKLE_MAX_PROOF], root, root_m;
        size_t glen = 0, wlen = 0;

        assert_int_equal(audit_log_root(log, n, &root), 0);
        assert_int_equal(audit_log_inclusion_proof(log, i, n, got, &glen), 0);
        naive_path(leaves, i, n, want, &wlen);
        assert_int_equal(glen, wlen);
        assert_memory_equal(got, want, glen * sizeof *got);
        assert_int_equal(merkle_verify_inclusion(&leaves[i], i, n, got, glen, &root), 0);

        glen = wlen = 0;
        if (m == 0) { /* RFC 9162 defines consistency proofs for 0 < m <= n only */
                assert_int_equal(audit_log_consistency_proof(log, m, n, got, &glen), -EINVAL);
                return;
        }
        assert_int_equal(audit_log_consistency_proof(log, m, n, got, &glen), 0);
        if (m < n)
                naive_subproof(leaves, m, n, 1, want, &wlen);
        assert_int_equal(glen, wlen);
        assert_memory_equal(got, want, glen * sizeof *got);
        assert_int_equal(audit_log_root(log, m, &root_m), 0);
        assert_int_equal(merkle_verify_consistency(m, n, &root_m, &root, got, glen), 0);
}

/* ---- reads, proofs, tiles ---- */

static void test_against_naive(void **state) {
        (void) state;
        _cleanup_free_ char *dir = tmpdir();
        struct audit_log *log = NULL;
        const uint64_t N = 1000;
        merkle_hash *leaves = calloc(N, sizeof *leaves);
        char e[256];

        assert_non_null(leaves);
        assert_int_equal(audit_log_open(dir, false, &log), -ENOENT);
        assert_int_equal(audit_log_open(dir, true, &log), 0);
        assert_int_equal(audit_log_size(log), 0);
        merkle_hash r0, empty;
        merkle_empty_root(&empty);
        assert_int_equal(audit_log_root(log, 0, &r0), 0);
        assert_true(hash_eq(&r0, &empty));

        srandom(7);
        for (uint64_t n = 1; n <= N; n++) {
                size_t len = make_entry(n - 1, e, sizeof e);
                uint64_t idx;
                assert_int_equal(audit_log_append(log, e, len, &idx), 0);
                assert_int_equal(idx, n - 1);
                merkle_leaf_hash(e, len, &leaves[n - 1]);
                assert_int_equal(audit_log_size(log), n);

                merkle_hash root, want;
                assert_int_equal(audit_log_root(log, n, &root), 0);
                naive_root(leaves, n, &want);
                assert_true(hash_eq(&root, &want));
                check_proofs(log, leaves, n, n - 1, n - 1);
                check_proofs(log, leaves, n, 0, n);
                check_proofs(log, leaves, n, (uint64_t) random() % n, (uint64_t) random() % (n + 1));
        }
        /* every entry reads back; every earlier root is still there after reopening */
        audit_log_close(log);
        assert_int_equal(audit_log_open(dir, false, &log), 0);
        assert_int_equal(audit_log_size(log), N);
        for (uint64_t i = 0; i < N; i++) {
                _cleanup_buf_ struct buf b;
                buf_init(&b, 0);
                size_t len = make_entry(i, e, sizeof e);
                assert_int_equal(audit_log_entry(log, i, &b), 0);
                assert_int_equal(b.len, len);
                assert_memory_equal(b.data, e, len);
                merkle_hash lh;
                assert_int_equal(audit_log_leaf_hash(log, i, &lh), 0);
                assert_true(hash_eq(&lh, &leaves[i]));
                merkle_hash root, want;
                assert_int_equal(audit_log_root(log, i + 1, &root), 0);
                naive_root(leaves, i + 1, &want);
                assert_true(hash_eq(&root, &want));
        }
        for (int k = 0; k < 300; k++) {
                uint64_t n = 1 + (uint64_t) random() % N;
                check_proofs(log, leaves, n, (uint64_t) random() % n, (uint64_t) random() % (n + 1));
        }

        /* bad arguments */
        merkle_hash p[MERKLE_MAX_PROOF], h;
        size_t plen;
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        assert_int_equal(audit_log_entry(log, N, &b), -ENOENT);
        assert_int_equal(audit_log_root(log, N + 1, &h), -EINVAL);
        assert_int_equal(audit_log_inclusion_proof(log, 5, 5, p, &plen), -EINVAL);
        assert_int_equal(audit_log_inclusion_proof(log, 0, N + 1, p, &plen), -EINVAL);
        assert_int_equal(audit_log_consistency_proof(log, 6, 5, p, &plen), -EINVAL);
        assert_int_equal(audit_log_append(log, e, AUDIT_LOG_ENTRY_MAX + 1, NULL), -EINVAL);

        /* C2SP tiles: level 0 = leaf hashes, level 1 = hashes of 256-leaf subtrees */
        assert_int_equal(audit_log_tile(log, 0, 1, 256, &b), 0);
        assert_int_equal(b.len, 256 * MERKLE_HASH_SIZE);
        assert_memory_equal(b.data, leaves + 256, b.len);
        buf_clear(&b);
        assert_int_equal(audit_log_tile(log, 0, 3, 232, &b), 0); /* partial tile: 1000 - 768 */
        assert_memory_equal(b.data, leaves + 768, 232 * MERKLE_HASH_SIZE);
        assert_int_equal(audit_log_tile(log, 0, 3, 233, &b), -ENOENT);
        buf_clear(&b);
        assert_int_equal(audit_log_tile(log, 1, 0, 3, &b), 0);
        for (int t = 0; t < 3; t++) {
                naive_root(leaves + 256 * t, 256, &h);
                assert_memory_equal(b.data + t * MERKLE_HASH_SIZE, h.b, MERKLE_HASH_SIZE);
        }
        assert_int_equal(audit_log_tile(log, 1, 0, 4, &b), -ENOENT);
        assert_int_equal(audit_log_tile(log, 0, 0, 0, &b), -EINVAL);
        assert_int_equal(audit_log_tile(log, 0, 0, 257, &b), -EINVAL);
        buf_clear(&b);
        assert_int_equal(audit_log_entry_bundle(log, 3, 2, &b), 0);
        size_t l0 = make_entry(768, e, sizeof e);
        assert_int_equal(b.data[0] << 8 | b.data[1], l0);
        assert_memory_equal(b.data + 2, e, l0);
        size_t l1 = make_entry(769, e, sizeof e);
        assert_int_equal(b.len, 2 + l0 + 2 + l1);
        assert_int_equal(audit_log_entry_bundle(log, 3, 233, &b), -ENOENT);

        uint64_t bad = 77;
        assert_int_equal(audit_log_verify_all(log, &bad), 0);
        audit_log_close(log);
        free(leaves);
        rm_rf(dir);
}

static void hex_to_hash(const char *s, merkle_hash *h) {
        assert_int_equal(hex_decode(s, h->b, MERKLE_HASH_SIZE), 0);
}

/* The RFC 6962 8-leaf reference vector from tests/data/merkle. */
static void test_rfc6962_vector(void **state) {
        (void) state;
        const char *data = getenv("COFFRE_TEST_DATA");
        assert_non_null(data);
        _cleanup_free_ char *path = path_join(data, "merkle/rfc6962_8leaf_reference.json");
        json_error_t err;
        json_t *v = json_load_file(path, 0, &err);
        assert_non_null(v);
        _cleanup_free_ char *dir = tmpdir();
        struct audit_log *log = NULL;
        assert_int_equal(audit_log_open(dir, true, &log), 0);

        json_t *leaves = json_object_get(v, "leaves_hex");
        for (size_t i = 0; i < json_array_size(leaves); i++) {
                const char *hx = json_string_value(json_array_get(leaves, i));
                uint8_t raw[64];
                size_t n = strlen(hx) / 2;
                assert_int_equal(hex_decode(hx, raw, n), 0);
                uint64_t idx;
                assert_int_equal(audit_log_append(log, raw, n, &idx), 0);
                assert_int_equal(idx, i);
        }
        json_t *roots = json_object_get(v, "roots");
        for (size_t i = 0; i < json_array_size(roots); i++) {
                json_t *o = json_array_get(roots, i);
                merkle_hash want, got;
                hex_to_hash(json_string_value(json_object_get(o, "root")), &want);
                assert_int_equal(audit_log_root(log, (uint64_t) json_integer_value(json_object_get(o, "tree_size")), &got), 0);
                assert_true(hash_eq(&got, &want));
        }
        const char *kinds[] = { "inclusion_proofs", "consistency_proofs" };
        for (int k = 0; k < 2; k++) {
                json_t *arr = json_object_get(v, kinds[k]);
                assert_true(json_array_size(arr) > 0);
                for (size_t i = 0; i < json_array_size(arr); i++) {
                        json_t *o = json_array_get(arr, i);
                        merkle_hash got[MERKLE_MAX_PROOF], want;
                        size_t len = 0;
                        if (k == 0)
                                assert_int_equal(audit_log_inclusion_proof(log,
                                        (uint64_t) json_integer_value(json_object_get(o, "leaf_index")),
                                        (uint64_t) json_integer_value(json_object_get(o, "tree_size")), got, &len), 0);
                        else
                                assert_int_equal(audit_log_consistency_proof(log,
                                        (uint64_t) json_integer_value(json_object_get(o, "size1")),
                                        (uint64_t) json_integer_value(json_object_get(o, "size2")), got, &len), 0);
                        json_t *proof = json_object_get(o, "proof");
                        assert_int_equal(len, json_array_size(proof));
                        for (size_t j = 0; j < len; j++) {
                                hex_to_hash(json_string_value(json_array_get(proof, j)), &want);
                                assert_true(hash_eq(&got[j], &want));
                        }
                }
        }
        json_decref(v);
        audit_log_close(log);
        rm_rf(dir);
}

/* ---- checkpoints and the commit hook ---- */

struct hook {
        uint64_t calls, last_size, first_size;
        merkle_hash last_root;
        int ordered;
};

static void on_commit(void *ud, uint64_t size, const merkle_hash *root) {
        struct hook *h = ud;
        if (size <= h->last_size && h->calls > 0)
                h->ordered = 0;
        if (h->calls++ == 0)
                h->first_size = size;
        h->last_size = size;
        h->last_root = *root;
}

static void test_checkpoints(void **state) {
        (void) state;
        _cleanup_free_ char *dir = tmpdir();
        struct audit_log *log = NULL;
        struct hook hk = { .ordered = 1 };
        struct audit_checkpoint c = {};
        merkle_hash root;

        assert_int_equal(audit_log_open(dir, true, &log), 0);
        audit_log_set_on_commit(log, on_commit, &hk);
        assert_int_equal(audit_log_checkpoint_latest(log, &c), -ENOENT);
        append_range(log, 0, 10);
        assert_int_equal(hk.calls, 10);
        assert_int_equal(hk.last_size, 10);
        assert_int_equal(audit_log_root(log, 10, &root), 0);
        assert_true(hash_eq(&root, &hk.last_root));

        assert_int_equal(audit_log_checkpoint_store(log, 5, "coffre.example/log\n5\nAAA=\n\n— sig\n"), 0);
        assert_int_equal(audit_log_checkpoint_store(log, 10, "note at 10 (first)\n"), 0);
        assert_int_equal(audit_log_checkpoint_store(log, 10, "note at 10 (second)\n"), 0);
        assert_int_equal(audit_log_checkpoint_store(log, 4, "going back\n"), -EINVAL);
        assert_int_equal(audit_log_checkpoint_store(log, 11, "ahead of the log\n"), -EINVAL);
        assert_int_equal(audit_log_checkpoint_store(log, 10, ""), -EINVAL);
        audit_log_close(log);

        assert_int_equal(audit_log_open(dir, false, &log), 0);
        assert_int_equal(audit_log_checkpoint_count(log), 3);
        assert_int_equal(audit_log_checkpoint_latest(log, &c), 0);
        assert_int_equal(c.size, 10);
        assert_string_equal(c.note, "note at 10 (second)\n");
        assert_true(hash_eq(&c.root, &root));
        audit_checkpoint_clear(&c);
        assert_int_equal(audit_log_checkpoint_at(log, 5, &c), 0);
        assert_string_equal(c.note, "coffre.example/log\n5\nAAA=\n\n— sig\n");
        assert_int_equal(audit_log_root(log, 5, &root), 0);
        assert_true(hash_eq(&c.root, &root));
        audit_checkpoint_clear(&c);
        assert_int_equal(audit_log_checkpoint_at(log, 7, &c), -ENOENT);
        assert_int_equal(audit_log_checkpoint_nth(log, 1, &c), 0);
        assert_string_equal(c.note, "note at 10 (first)\n");
        audit_checkpoint_clear(&c);
        uint64_t bad;
        assert_int_equal(audit_log_verify_all(log, &bad), 0);
        audit_log_close(log);

        /* a torn last checkpoint record is cut on open, the others stay */
        _cleanup_free_ char *cp = sub(dir, "checkpoints");
        struct stat st;
        assert_int_equal(stat(cp, &st), 0);
        assert_int_equal(truncate(cp, st.st_size - 3), 0);
        assert_int_equal(audit_log_open(dir, false, &log), 0);
        assert_int_equal(audit_log_checkpoint_count(log), 2);
        assert_int_equal(audit_log_checkpoint_latest(log, &c), 0);
        assert_string_equal(c.note, "note at 10 (first)\n");
        audit_checkpoint_clear(&c);
        /* the exclusive lock keeps a second writer out */
        struct audit_log *other = NULL;
        assert_int_equal(audit_log_open(dir, false, &other), -EBUSY);
        audit_log_close(log);
        rm_rf(dir);
}

/* ---- concurrency ---- */

#define THREADS 64
#define PER_THREAD 100

struct writer {
        struct audit_log *log;
        int id;
        uint64_t idx[PER_THREAD];
        int err;
};

static void *writer_main(void *p) {
        struct writer *w = p;
        char e[64];
        for (int i = 0; i < PER_THREAD; i++) {
                int n = snprintf(e, sizeof e, "thread %d entry %d", w->id, i);
                int r = audit_log_append(w->log, e, (size_t) n, &w->idx[i]);
                if (r < 0 && !w->err)
                        w->err = r;
        }
        return NULL;
}

struct syncer {
        struct audit_log *log;
        int rounds, err;
};

static void *syncer_main(void *p) {
        struct syncer *s = p;
        for (int i = 0; i < s->rounds; i++) {
                int r = audit_log_sync(s->log);
                if (r < 0 && !s->err)
                        s->err = r;
        }
        return NULL;
}

static void test_concurrent(void **state) {
        (void) state;
        _cleanup_free_ char *dir = tmpdir();
        struct audit_log *log = NULL;
        struct hook hk = { .ordered = 1 };
        static struct writer w[THREADS];
        pthread_t t[THREADS];
        const uint64_t total = THREADS * PER_THREAD;

        assert_int_equal(audit_log_open(dir, true, &log), 0);
        audit_log_set_on_commit(log, on_commit, &hk);
        /* the first group waits for one append of every writer: batching without hoping */
        audit_log_hold_group(log, THREADS);
        for (int i = 0; i < THREADS; i++) {
                w[i] = (struct writer){ .log = log, .id = i };
                assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
        }
        /* explicit syncs of the hash files interleave with the groups */
        struct syncer sy = { log, 50, 0 };
        pthread_t ts;
        assert_int_equal(pthread_create(&ts, NULL, syncer_main, &sy), 0);
        for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        pthread_join(ts, NULL);
        assert_int_equal(sy.err, 0);
        assert_int_equal(audit_log_size(log), total);
        uint8_t *seen = calloc(total, 1);
        assert_non_null(seen);
        for (int i = 0; i < THREADS; i++) {
                assert_int_equal(w[i].err, 0);
                for (int k = 0; k < PER_THREAD; k++) {
                        assert_true(w[i].idx[k] < total);
                        assert_int_equal(seen[w[i].idx[k]], 0);
                        seen[w[i].idx[k]] = 1;
                        if (k > 0) /* one thread's appends keep their order */
                                assert_true(w[i].idx[k] > w[i].idx[k - 1]);
                        _cleanup_buf_ struct buf b;
                        buf_init(&b, 0);
                        char e[64];
                        int n = snprintf(e, sizeof e, "thread %d entry %d", i, k);
                        assert_int_equal(audit_log_entry(log, w[i].idx[k], &b), 0);
                        assert_int_equal(b.len, n);
                        assert_memory_equal(b.data, e, b.len);
                }
        }
        free(seen);
        assert_true(hk.ordered);
        assert_int_equal(hk.last_size, total);
        /* the held first group carried one append of each writer, in one sync */
        assert_int_equal(hk.first_size, THREADS);
        assert_true(hk.calls < total); /* group commit shared syncs */
        print_message("64 writers: %llu appends in %llu groups\n", (unsigned long long) total,
                      (unsigned long long) hk.calls);
        uint64_t bad;
        assert_int_equal(audit_log_verify_all(log, &bad), 0);
        audit_log_close(log);
        rm_rf(dir);
}


/* ---- crash recovery ---- */

/* Replaces directory to by a copy of from. */
static void copy_dir(const char *from, const char *to) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
        assert_int_equal(system(cmd), 0);
}

static void read_ends(const char *dir, uint64_t *ends, size_t n) {
        _cleanup_free_ char *p = sub(dir, "offsets");
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        assert_int_equal(read_file(p, 1 << 20, &b), 0);
        assert_true(b.len >= n * 8);
        for (size_t i = 0; i < n; i++) {
                ends[i] = 0;
                for (int k = 7; k >= 0; k--)
                        ends[i] = ends[i] << 8 | b.data[i * 8 + (size_t) k];
        }
}

static void file_append(const char *dir, const char *name, const void *p, size_t n) {
        _cleanup_free_ char *path = sub(dir, name);
        int fd = open(path, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, p, n), 0);
        close(fd);
}

static void file_cut(const char *dir, const char *name, uint64_t size) {
        _cleanup_free_ char *path = sub(dir, name);
        assert_int_equal(truncate(path, (off_t) size), 0);
}

/* Opens dir and checks it holds exactly entries 0..n-1 of make_entry, verifies and still appends. */
static void check_recovered(const char *dir, uint64_t n) {
        struct audit_log *log = NULL;
        merkle_hash *leaves = calloc(n + 1, sizeof *leaves);
        char e[256];
        assert_non_null(leaves);
        assert_int_equal(audit_log_open(dir, false, &log), 0);
        assert_int_equal(audit_log_size(log), n);
        for (uint64_t i = 0; i < n; i++) {
                _cleanup_buf_ struct buf b;
                buf_init(&b, 0);
                size_t len = make_entry(i, e, sizeof e);
                merkle_leaf_hash(e, len, &leaves[i]);
                assert_int_equal(audit_log_entry(log, i, &b), 0);
                assert_int_equal(b.len, len);
                assert_memory_equal(b.data, e, len);
        }
        merkle_hash root, want;
        naive_root(leaves, n, &want);
        assert_int_equal(audit_log_root(log, n, &root), 0);
        assert_true(hash_eq(&root, &want));
        uint64_t bad = 0;
        assert_int_equal(audit_log_verify_all(log, &bad), 0);
        append_range(log, n, n + 1);
        assert_int_equal(audit_log_verify_all(log, &bad), 0);
        audit_log_close(log);
        free(leaves);
}

static void test_cut_and_garbage(void **state) {
        (void) state;
        _cleanup_free_ char *tmpl = tmpdir(), *work = tmpdir(), *clean = tmpdir();
        _cleanup_free_ char *state_path = sub(tmpl, "state");
        _cleanup_buf_ struct buf st;
        struct audit_log *log = NULL;
        uint64_t ends[100];

        /* A crash image: hash files durable for 40 entries (state), 100 entries in the files. */
        buf_init(&st, 0);
        assert_int_equal(audit_log_open(tmpl, true, &log), 0);
        append_range(log, 0, 40);
        assert_int_equal(audit_log_sync(log), 0);
        assert_int_equal(read_file(state_path, 64, &st), 0);
        append_range(log, 40, 100);
        audit_log_close(log);
        copy_dir(tmpl, clean); /* clean = the image after a clean close */
        assert_int_equal(write_file_atomic(state_path, st.data, st.len, 0600, 0), 0);
        read_ends(tmpl, ends, 100);

        srandom(11);
        for (int round = 0; round < 60; round++) {
                uint64_t lo = ends[39], hi = ends[99];
                uint64_t cut = round < 3 ? (round == 0 ? lo : round == 1 ? hi : ends[70])
                                         : lo + (uint64_t) random() % (hi - lo + 1);
                copy_dir(tmpl, work);
                file_cut(work, "entries", cut);
                /* the unsynced derived files may be cut or hold garbage too */
                file_cut(work, "offsets", 40 * 8 + (uint64_t) random() % (60 * 8));
                file_cut(work, "hashes/00", 40 * 32 + (uint64_t) random() % (60 * 32));
                file_append(work, "hashes/01", "garbage!", 8);
                uint64_t n = 0;
                while (n < 100 && ends[n] <= cut)
                        n++;
                check_recovered(work, n);
        }

        /* tails after a clean close. What a write cut short can leave (a short record, zeros) is
         * cut and kept; anything else (random bytes, a whole record that does not hash to its
         * leaf) is damage: refused, nothing changed */
        uint8_t junk[4096];
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t) random();
        uint8_t fake[4 + 10 + 32] = { 10, 0, 0, 0, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x' };
        memset(fake + 14, 0xab, 32);
        uint8_t zeros[4096] = { 0 };
        const struct {
                const void *p;
                size_t n;
                bool torn;
        } tails[] = {
                { junk, 61, false }, { junk, sizeof junk, false }, { fake, sizeof fake, false }, { fake, 9, true },
                { fake, 3, true },   { zeros, sizeof zeros, true }
        };
        for (size_t t = 0; t < ELEMENTSOF(tails); t++) {
                _cleanup_free_ char *torn = sub(work, "torn"), *ent = sub(work, "entries");
                struct stat sb, before;
                copy_dir(clean, work);
                file_append(work, "entries", tails[t].p, tails[t].n);
                if (tails[t].torn) {
                        check_recovered(work, 100);
                        assert_int_equal(stat(torn, &sb), 0); /* the cut bytes are kept */
                        continue;
                }
                assert_int_equal(stat(ent, &before), 0);
                assert_int_equal(audit_log_open(work, false, &log), -EBADMSG);
                assert_int_equal(stat(ent, &sb), 0);
                assert_int_equal(sb.st_size, before.st_size);
                assert_int_equal(stat(torn, &sb), -1);
                assert_int_equal(audit_log_open_readonly(work, &log), 0);
                assert_int_equal(audit_log_size(log), 100);
                assert_true(audit_log_tail_damaged(log));
                audit_log_close(log);
        }

        /* hash files damaged below the state: everything is rebuilt from the entries */
        copy_dir(clean, work);
        file_cut(work, "offsets", 37 * 8 + 3);
        file_cut(work, "hashes/00", 55 * 32 + 1);
        check_recovered(work, 100);

        /* the hash files and the state lost altogether */
        copy_dir(clean, work);
        _cleanup_free_ char *hashes = sub(work, "hashes"), *stp = sub(work, "state");
        assert_int_equal(rm_rf(hashes), 0);
        assert_int_equal(unlink(stp), 0);
        check_recovered(work, 100);

        rm_rf(work);
        rm_rf(tmpl);
        rm_rf(clean);
}

/* A child appends from 4 threads and reports each durable index on a pipe; it is killed with
 * SIGKILL after a random number of reports. Every reported entry must be there after reopening. */
struct report {
        uint64_t index;
        uint32_t round, thread, seq, pad;
};

struct child_writer {
        struct audit_log *log;
        int fd;
        uint32_t round, thread;
};

static size_t report_entry(const struct report *r, char *out, size_t cap) {
        return (size_t) snprintf(out, cap, "{\"round\":%u,\"thread\":%u,\"seq\":%u}", r->round, r->thread, r->seq);
}

static void *child_writer_main(void *p) {
        struct child_writer *cw = p;
        for (uint32_t seq = 0;; seq++) {
                struct report rep = { .round = cw->round, .thread = cw->thread, .seq = seq };
                char e[128];
                size_t n = report_entry(&rep, e, sizeof e);
                if (audit_log_append(cw->log, e, n, &rep.index) < 0)
                        _exit(3);
                if (write(cw->fd, &rep, sizeof rep) != (ssize_t) sizeof rep)
                        _exit(4);
        }
        return NULL;
}

static _noreturn_ void child_main(const char *dir, int fd, uint32_t round) {
        struct audit_log *log = NULL;
        struct child_writer cw[4];
        pthread_t t[4];
        if (audit_log_open(dir, true, &log) < 0)
                _exit(2);
        for (uint32_t i = 0; i < 4; i++) {
                cw[i] = (struct child_writer){ log, fd, round, i };
                if (pthread_create(&t[i], NULL, child_writer_main, &cw[i]) != 0)
                        _exit(5);
        }
        pthread_join(t[0], NULL);
        _exit(6);
}

static void test_kill9(void **state) {
        (void) state;
        _cleanup_free_ char *dir = tmpdir();
        struct report *seen = NULL;
        size_t nseen = 0, cap = 0;

        srandom(23);
        for (uint32_t round = 0; round < 20; round++) {
                int p[2];
                assert_int_equal(pipe(p), 0);
                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        close(p[0]);
                        child_main(dir, p[1], round);
                }
                close(p[1]);
                size_t target = 1 + (size_t) random() % 3000, got = 0;
                bool killed = false;
                struct report rep;
                ssize_t k;
                while ((k = read_full(p[0], &rep, sizeof rep)) == (ssize_t) sizeof rep) {
                        if (nseen == cap) {
                                cap = cap ? 2 * cap : 4096;
                                seen = realloc(seen, cap * sizeof *seen);
                                assert_non_null(seen);
                        }
                        seen[nseen++] = rep;
                        if (++got == target && !killed) {
                                assert_int_equal(kill(pid, SIGKILL), 0);
                                killed = true;
                        }
                }
                assert_int_equal(k, 0); /* no torn report: the pipe writes are atomic */
                close(p[0]);
                int status;
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

                struct audit_log *log = NULL;
                assert_int_equal(audit_log_open(dir, false, &log), 0);
                uint64_t size = audit_log_size(log);
                for (size_t i = 0; i < nseen; i++) {
                        char e[128];
                        size_t n = report_entry(&seen[i], e, sizeof e);
                        _cleanup_buf_ struct buf b;
                        buf_init(&b, 0);
                        assert_true(seen[i].index < size);
                        assert_int_equal(audit_log_entry(log, seen[i].index, &b), 0);
                        assert_int_equal(b.len, n);
                        assert_memory_equal(b.data, e, n);
                }
                uint64_t bad = 0;
                assert_int_equal(audit_log_verify_all(log, &bad), 0);
                audit_log_close(log);
        }
        print_message("kill -9: 20 rounds, %zu reported appends all present\n", nseen);
        free(seen);
        rm_rf(dir);
}

/* ---- tampering ---- */

static void load(const char *dir, const char *name, struct buf *b) {
        _cleanup_free_ char *p = sub(dir, name);
        buf_init(b, 0);
        assert_int_equal(read_file(p, 1 << 24, b), 0);
}

static void store(const char *dir, const char *name, const struct buf *b) {
        _cleanup_free_ char *p = sub(dir, name);
        assert_int_equal(write_file_atomic(p, b->data, b->len, 0600, 0), 0);
}

/* Rebuilds dir's entries file from the records of tmpl in the order given by order[] (-1 =
 * the extra record). */
static void reorder(const char *tmpl, const char *dir, const uint64_t *ends, const int *order, size_t n,
                    const struct buf *extra) {
        _cleanup_buf_ struct buf src, out;
        load(tmpl, "entries", &src);
        buf_init(&out, 0);
        for (size_t i = 0; i < n; i++) {
                if (order[i] < 0) {
                        assert_int_equal(buf_append(&out, extra->data, extra->len), 0);
                        continue;
                }
                uint64_t s = order[i] == 0 ? 0 : ends[order[i] - 1];
                assert_int_equal(buf_append(&out, src.data + s, ends[order[i]] - s), 0);
        }
        store(dir, "entries", &out);
}

/* Verification opens read-only: a read-write open may refuse a log damaged below its checkpoint. */
static void expect_bad(const char *dir, uint64_t want) {
        struct audit_log *log = NULL;
        uint64_t bad = UINT64_MAX;
        assert_int_equal(audit_log_open_readonly(dir, &log), 0);
        assert_int_equal(audit_log_verify_all(log, &bad), -EBADMSG);
        assert_int_equal(bad, want);
        audit_log_close(log);
}

static void test_tamper(void **state) {
        (void) state;
        _cleanup_free_ char *tmpl = tmpdir(), *work = tmpdir();
        struct audit_log *log = NULL;
        const size_t N = 64;
        uint64_t ends[64];
        int order[65];
        _cleanup_buf_ struct buf b, extra;

        assert_int_equal(audit_log_open(tmpl, true, &log), 0);
        append_range(log, 0, N);
        assert_int_equal(audit_log_checkpoint_store(log, 40, "checkpoint at 40\n"), 0);
        audit_log_close(log);
        read_ends(tmpl, ends, N);

        /* an edited byte inside entry 17 */
        copy_dir(tmpl, work);
        load(work, "entries", &b);
        b.data[ends[16] + 4 + 3] ^= 0x20;
        store(work, "entries", &b);
        buf_free(&b);
        expect_bad(work, 17);

        /* entry 30 deleted; appends are refused on such a log */
        copy_dir(tmpl, work);
        size_t k = 0;
        for (int i = 0; i < (int) N; i++)
                if (i != 30)
                        order[k++] = i;
        reorder(tmpl, work, ends, order, k, NULL);
        expect_bad(work, 30);
        /* below the checkpoint at 40: refused for writing, and nothing is cut */
        _cleanup_buf_ struct buf before, after;
        load(work, "entries", &before);
        assert_int_equal(audit_log_open(work, false, &log), -EBADMSG);
        load(work, "entries", &after);
        assert_int_equal(after.len, before.len);
        assert_memory_equal(after.data, before.data, before.len);

        /* the last entry deleted */
        copy_dir(tmpl, work);
        for (int i = 0; i < (int) N - 1; i++)
                order[i] = i;
        reorder(tmpl, work, ends, order, N - 1, NULL);
        expect_bad(work, N - 1);

        /* entries 10 and 40 swapped */
        copy_dir(tmpl, work);
        for (int i = 0; i < (int) N; i++)
                order[i] = i == 10 ? 40 : i == 40 ? 10 : i;
        reorder(tmpl, work, ends, order, N, NULL);
        expect_bad(work, 10);

        /* a well-formed record inserted before entry 5 */
        copy_dir(tmpl, work);
        buf_init(&extra, 0);
        const char *forged = "{\"i\":\"forged\"}";
        uint8_t hdr[4] = { (uint8_t) strlen(forged), 0, 0, 0 };
        merkle_hash h;
        merkle_leaf_hash(forged, strlen(forged), &h);
        assert_int_equal(buf_append(&extra, hdr, 4), 0);
        assert_int_equal(buf_append_str(&extra, forged), 0);
        assert_int_equal(buf_append(&extra, h.b, 32), 0);
        k = 0;
        for (int i = 0; i < (int) N; i++) {
                if (i == 5)
                        order[k++] = -1;
                order[k++] = i;
        }
        reorder(tmpl, work, ends, order, k, &extra);
        expect_bad(work, 5);

        /* a stored hash changed: level 2, index 3 covers entries 12..15 */
        copy_dir(tmpl, work);
        load(work, "hashes/02", &b);
        b.data[3 * 32 + 7] ^= 1;
        store(work, "hashes/02", &b);
        buf_free(&b);
        expect_bad(work, 12);

        /* an offset changed */
        copy_dir(tmpl, work);
        load(work, "offsets", &b);
        b.data[20 * 8] ^= 1;
        store(work, "offsets", &b);
        buf_free(&b);
        expect_bad(work, 20);

        /* the untouched copy verifies */
        copy_dir(tmpl, work);
        assert_int_equal(audit_log_open(work, false, &log), 0);
        uint64_t bad;
        assert_int_equal(audit_log_verify_all(log, &bad), 0);
        audit_log_close(log);
        rm_rf(work);
        rm_rf(tmpl);
}

/* ---- the last checkpoint is a floor ---- */

static uint64_t file_len(const char *dir, const char *name) {
        _cleanup_free_ char *p = sub(dir, name);
        struct stat st;
        return stat(p, &st) < 0 ? 0 : (uint64_t) st.st_size;
}

static void test_checkpoint_floor(void **state) {
        (void) state;
        _cleanup_free_ char *tmpl = tmpdir(), *work = tmpdir();
        struct audit_log *log = NULL;
        uint64_t ends[20];

        assert_int_equal(audit_log_open(tmpl, true, &log), 0);
        append_range(log, 0, 20);
        assert_int_equal(audit_log_checkpoint_store(log, 8, "checkpoint at 8\n"), 0);
        audit_log_close(log);
        read_ends(tmpl, ends, 20);

        /* the state lost and one bit flipped in entry 3: refused, not cut to 3 entries */
        copy_dir(tmpl, work);
        _cleanup_free_ char *stp = sub(work, "state");
        assert_int_equal(unlink(stp), 0);
        _cleanup_buf_ struct buf b;
        load(work, "entries", &b);
        b.data[ends[2] + 4 + 1] ^= 0x01;
        store(work, "entries", &b);
        uint64_t len = file_len(work, "entries");
        assert_int_equal(audit_log_open(work, false, &log), -EBADMSG);
        assert_int_equal(file_len(work, "entries"), len);
        _cleanup_free_ char *torn = sub(work, "torn");
        struct stat sb;
        assert_int_equal(stat(torn, &sb), -1); /* nothing moved either */
        /* a reader still opens it and sees the three good entries */
        assert_int_equal(audit_log_open_readonly(work, &log), 0);
        assert_int_equal(audit_log_size(log), 3);
        assert_int_equal(audit_log_append(log, "x", 1, NULL), -EBADMSG);
        audit_log_close(log);
        assert_int_equal(file_len(work, "entries"), len);

        /* cut cleanly at a record boundary below the checkpoint: refused too */
        copy_dir(tmpl, work);
        file_cut(work, "entries", ends[5]);
        assert_int_equal(audit_log_open(work, false, &log), -EBADMSG);
        assert_int_equal(file_len(work, "entries"), ends[5]);

        /* Damaged above the checkpoint, with whole records after it: no torn write (that can
         * only be a short last record) but damage, refused like damage below it. A bit in the
         * entry of record 12; in the length of record 18, making it reach past the end of the
         * file; in the entry of the last record, which is of full length. */
        const struct {
                uint64_t at;
                uint8_t bit;
        } flips[] = { { ends[11] + 4 + 1, 0x01 }, { ends[17] + 1, 0x80 }, { ends[18] + 4 + 1, 0x01 } };
        for (size_t t = 0; t < ELEMENTSOF(flips); t++) {
                copy_dir(tmpl, work);
                buf_free(&b);
                load(work, "entries", &b);
                b.data[flips[t].at] ^= flips[t].bit;
                store(work, "entries", &b);
                _cleanup_free_ char *stp2 = sub(work, "state");
                assert_int_equal(unlink(stp2), 0);
                assert_int_equal(audit_log_open(work, false, &log), -EBADMSG);
                assert_int_equal(file_len(work, "entries"), len);
                assert_int_equal(stat(torn, &sb), -1);
                assert_int_equal(audit_log_open_readonly(work, &log), 0);
                assert_true(audit_log_tail_damaged(log));
                assert_int_equal(audit_log_append(log, "x", 1, NULL), -EBADMSG);
                audit_log_close(log);
        }

        /* a short last record (a write cut short): moved to torn/ whole, then cut */
        copy_dir(tmpl, work);
        buf_free(&b);
        load(work, "entries", &b);
        file_cut(work, "entries", ends[19] - 5);
        _cleanup_free_ char *stp3 = sub(work, "state");
        assert_int_equal(unlink(stp3), 0); /* a crash leaves the state behind the entries */
        assert_int_equal(audit_log_open(work, false, &log), 0);
        assert_int_equal(audit_log_size(log), 19);
        audit_log_close(log);
        assert_int_equal(file_len(work, "entries"), ends[18]);
        _cleanup_free_ char *expected = sub(work, "expected-tail"), *cmd = NULL;
        assert_int_equal(write_file_atomic(expected, b.data + ends[18], ends[19] - 5 - ends[18], 0600, 0), 0);
        assert_true(asprintf(&cmd, "cmp -s '%s' '%s'/torn/entries-*", expected, work) > 0);
        assert_int_equal(system(cmd), 0);

        rm_rf(work);
        rm_rf(tmpl);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_checkpoint_floor),
                cmocka_unit_test(test_against_naive), cmocka_unit_test(test_rfc6962_vector),
                cmocka_unit_test(test_checkpoints),   cmocka_unit_test(test_concurrent),
                cmocka_unit_test(test_cut_and_garbage), cmocka_unit_test(test_kill9),
                cmocka_unit_test(test_tamper),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
