/* test_keyring.c: master key file, KEK/DEK life cycle, wrong master key, moved wrapped keys,
 * rotation (whole, interrupted in-process, killed with SIGKILL) and group commit from 16 threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "crypto/keyring.h"
#include "fileio.h"

struct env {
        char dir[64];
        char *key_path;
        char *db_path;
};

static int setup(void **state) {
        struct env *e = calloc(1, sizeof *e);
        assert_non_null(e);
        snprintf(e->dir, sizeof e->dir, "/var/tmp/coffre-keyring-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        e->key_path = path_join(e->dir, "master.key");
        e->db_path = path_join(e->dir, "keyring.db");
        assert_int_equal(master_key_create_file(e->key_path), 0);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        struct env *e = *state;
        rm_rf(e->dir);
        free(e->key_path);
        free(e->db_path);
        free(e);
        return 0;
}

static struct keyring *open_ring(struct env *e) {
        struct master_key *m = NULL;
        struct keyring *k = NULL;
        assert_int_equal(master_key_load_file(e->key_path, &m), 0);
        assert_int_equal(keyring_open(e->db_path, true, m, &k), 0);
        return k;
}

static void make_id(uint8_t id[16], uint8_t tag, uint32_t n) {
        memset(id, 0, 16);
        id[0] = tag;
        id[12] = (uint8_t) (n >> 24);
        id[13] = (uint8_t) (n >> 16);
        id[14] = (uint8_t) (n >> 8);
        id[15] = (uint8_t) n;
}

static const uint8_t ORG1[16] = { 'o', 'r', 'g', '1' };
static const uint8_t ORG2[16] = { 'o', 'r', 'g', '2' };

/* Runs one SQL statement on keyring.db behind the keyring's back (the attacker's or the disk's view). */
static void sql(struct env *e, const char *q) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(e->db_path, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        char *err = NULL;
        int rc = sqlite3_exec(db, q, NULL, NULL, &err);
        if (rc != SQLITE_OK)
                fail_msg("%s: %s", q, err);
        sqlite3_close(db);
}

static int64_t sql_int(struct env *e, const char *q) {
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_open(e->db_path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        int64_t v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
        return v;
}

static void test_master_key_file(void **state) {
        struct env *e = *state;
        struct stat st;
        struct master_key *m = NULL;
        assert_int_equal(stat(e->key_path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(st.st_size, 32);
        assert_int_equal(master_key_create_file(e->key_path), -EEXIST);

        assert_int_equal(chmod(e->key_path, 0644), 0);
        assert_int_equal(master_key_load_file(e->key_path, &m), -EPERM);
        assert_int_equal(chmod(e->key_path, 0600), 0);

        _cleanup_free_ char *bad = path_join(e->dir, "short.key");
        assert_int_equal(write_file_atomic(bad, "0123456789", 10, 0600, 1), 0);
        assert_int_equal(master_key_load_file(bad, &m), -EBADMSG);
        _cleanup_free_ char *none = path_join(e->dir, "none.key");
        assert_int_equal(master_key_load_file(none, &m), -ENOENT);
        assert_null(m);

        /* a keyring that does not exist is not made unless asked */
        assert_int_equal(master_key_load_file(e->key_path, &m), 0);
        struct keyring *k = NULL;
        assert_int_equal(keyring_open(e->db_path, false, m, &k), -ENOENT);
        assert_null(k);
}

static void test_dek_life_cycle(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        uint8_t oid[16], dek[32], again[32], other[32];
        uint32_t v;

        struct stat st;
        assert_int_equal(stat(e->db_path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        assert_int_equal(keyring_kek_current_version(k, ORG1, &v), -ENOENT);
        assert_int_equal(keyring_kek_create(k, ORG1), 0);
        assert_int_equal(keyring_kek_create(k, ORG1), -EEXIST);
        assert_int_equal(keyring_kek_current_version(k, ORG1, &v), 0);
        assert_int_equal(v, 1);

        make_id(oid, 'd', 1);
        assert_int_equal(keyring_dek_new(k, ORG1, oid, dek), 0);
        assert_int_equal(keyring_dek_get(k, oid, again), 0);
        assert_memory_equal(dek, again, 32);
        memset(other, 0x55, 32);
        assert_int_equal(keyring_dek_new(k, ORG1, oid, other), -EEXIST);
        assert_memory_equal(other, (uint8_t[32]){ [0 ... 31] = 0x55 }, 32); /* untouched on failure */
        uint8_t oid2[16];
        make_id(oid2, 'd', 2);
        assert_int_equal(keyring_dek_new(k, ORG2, oid2, other), -ENOENT); /* no such KEK */
        assert_int_equal(keyring_dek_get(k, oid2, other), -ENOENT);

        /* durable: a fresh open sees it */
        keyring_free(k);
        k = open_ring(e);
        assert_int_equal(keyring_dek_get(k, oid, again), 0);
        assert_memory_equal(dek, again, 32);

        /* destroy: gone, and its wrapped bytes are no longer in keyring.db or its WAL */
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;
        uint8_t wrapped[61];
        assert_int_equal(sqlite3_open(e->db_path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT wrapped FROM dek", -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_int_equal(sqlite3_column_bytes(s, 0), 61);
        memcpy(wrapped, sqlite3_column_blob(s, 0), 61);
        sqlite3_finalize(s);
        sqlite3_close(db);

        assert_int_equal(keyring_dek_destroy(k, oid), 0);
        assert_int_equal(keyring_dek_get(k, oid, again), -ENOENT);
        assert_int_equal(keyring_dek_destroy(k, oid), -ENOENT);
        const char *suffixes[] = { "", "-wal" };
        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ char *p = NULL;
                assert_true(asprintf(&p, "%s%s", e->db_path, suffixes[i]) > 0);
                _cleanup_buf_ struct buf f;
                if (read_file(p, 64 << 20, &f) < 0)
                        continue;
                assert_null(memmem(f.data, f.len, wrapped, sizeof wrapped));
        }
        keyring_free(k);
}

static int collect(const uint8_t id[16], void *ud) {
        size_t *n = ud;
        (*n)++;
        return 0;
}

static void test_foreach(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        uint8_t oid[16], dek[32];
        assert_int_equal(keyring_kek_create(k, ORG1), 0);
        for (uint32_t i = 0; i < 600; i++) { /* more than two pages */
                make_id(oid, 'f', i);
                assert_int_equal(keyring_dek_new(k, ORG1, oid, dek), 0);
        }
        size_t n = 0;
        assert_int_equal(keyring_dek_foreach(k, collect, &n), 0);
        assert_int_equal(n, 600);
        keyring_free(k);
}

static void test_wrong_master_key(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        assert_int_equal(keyring_kek_create(k, ORG1), 0);
        keyring_free(k);
        k = NULL;

        _cleanup_free_ char *other = path_join(e->dir, "other.key");
        struct master_key *m = NULL;
        assert_int_equal(master_key_create_file(other), 0);
        assert_int_equal(master_key_load_file(other, &m), 0);
        assert_int_equal(keyring_open(e->db_path, true, m, &k), -EBADMSG);
        assert_null(k);

        /* without the recorded master key id, the wrong key is still refused */
        sql(e, "DELETE FROM meta WHERE name = 'master_key_id'");
        assert_int_equal(master_key_load_file(other, &m), 0);
        assert_int_equal(keyring_open(e->db_path, true, m, &k), -EBADMSG);
        assert_null(k);

        /* the right key on a keyring whose recorded id was lost still works */
        k = open_ring(e);
        uint8_t oid[16], dek[32];
        make_id(oid, 'w', 1);
        assert_int_equal(keyring_dek_new(k, ORG1, oid, dek), 0);
        keyring_free(k);
        /* a damaged wrapped KEK does not authenticate */
        sql(e, "UPDATE kek SET wrapped = CAST(substr(wrapped, 1, 20) || "
               "CASE WHEN substr(wrapped, 21, 1) = x'00' THEN x'01' ELSE x'00' END || substr(wrapped, 22) AS BLOB)");
        k = open_ring(e);
        assert_int_equal(keyring_dek_get(k, oid, dek), -EBADMSG);
        keyring_free(k);
}

static void test_moved_wrapped_key(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        uint8_t x[16], y[16], z[16], dek[32];
        make_id(x, 'm', 1);
        make_id(y, 'm', 2);
        make_id(z, 'm', 3);
        assert_int_equal(keyring_kek_create(k, ORG1), 0);
        assert_int_equal(keyring_kek_create(k, ORG2), 0);
        assert_int_equal(keyring_dek_new(k, ORG1, x, dek), 0);
        assert_int_equal(keyring_dek_new(k, ORG1, y, dek), 0);
        assert_int_equal(keyring_dek_new(k, ORG1, z, dek), 0);

        /* y's wrapped DEK copied into x's row */
        sql(e,
            "UPDATE dek SET wrapped = (SELECT wrapped FROM dek WHERE object_id = x'6d000000000000000000000000000002') "
            "WHERE object_id = x'6d000000000000000000000000000001'");
        assert_int_equal(keyring_dek_get(k, x, dek), -EBADMSG);
        assert_int_equal(keyring_dek_get(k, y, dek), 0);
        /* z's row moved to the other organisation's KEK */
        sql(e,
            "UPDATE dek SET kek_id = x'6f726732000000000000000000000000' WHERE object_id = x'6d000000000000000000000000000003'");
        assert_int_equal(keyring_dek_get(k, z, dek), -EBADMSG);
        /* a KEK's wrapped key copied to another organisation's row */
        sql(e, "UPDATE kek SET wrapped = (SELECT wrapped FROM kek WHERE kek_id = x'6f726731000000000000000000000000') "
               "WHERE kek_id = x'6f726732000000000000000000000000'");
        uint8_t w[16];
        make_id(w, 'm', 4);
        assert_int_equal(keyring_dek_new(k, ORG2, w, dek), -EBADMSG);
        keyring_free(k);
}

#define ROT_N 250

static void make_deks(struct keyring *k, uint8_t deks[ROT_N][32]) {
        uint8_t oid[16];
        assert_int_equal(keyring_kek_create(k, ORG1), 0);
        for (uint32_t i = 0; i < ROT_N; i++) {
                make_id(oid, 'r', i);
                assert_int_equal(keyring_dek_new(k, ORG1, oid, deks[i]), 0);
        }
}

static void check_deks(struct keyring *k, uint8_t deks[ROT_N][32]) {
        uint8_t oid[16], dek[32];
        for (uint32_t i = 0; i < ROT_N; i++) {
                make_id(oid, 'r', i);
                assert_int_equal(keyring_dek_get(k, oid, dek), 0);
                assert_memory_equal(dek, deks[i], 32);
        }
}

static void test_rotate(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        static uint8_t deks[ROT_N][32];
        uint8_t audit[32], audit2[32];
        uint32_t v;

        make_deks(k, deks);
        assert_int_equal(keyring_org_key(k, ORG1, "audit-details", audit), 0);
        keyring_set_rotate_hook(k, 40, NULL, NULL);
        assert_int_equal(keyring_rotate(k, ORG1, &v), 0);
        assert_int_equal(v, 2);
        check_deks(k, deks);
        assert_int_equal(keyring_org_key(k, ORG1, "audit-details", audit2), 0);
        assert_memory_equal(audit, audit2, 32);
        /* the old version is destroyed; every key is under the new one */
        assert_int_equal(sql_int(e, "SELECT count(*) FROM kek"), 1);
        assert_int_equal(sql_int(e, "SELECT min(version) FROM kek"), 2);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM dek WHERE kek_version = 2"), ROT_N);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM org_key WHERE kek_version = 2"), 1);

        assert_int_equal(keyring_rotate(k, ORG1, &v), 0);
        assert_int_equal(v, 3);
        check_deks(k, deks);
        assert_int_equal(keyring_rotate(k, ORG2, &v), -ENOENT);
        keyring_free(k);
}

/* The field keys are organisation keys: a rotation rewraps them, and after it (and a fresh open,
 * which has no cache) they are the same keys, so every encrypted field stays readable. */
static void test_rotate_field_keys(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        uint8_t f1[32], i1[32], f2[32], i2[32];
        uint32_t v;

        assert_int_equal(keyring_kek_create(k, ORG1), 0);
        assert_int_equal(keyring_org_key(k, ORG1, "field", f1), 0);
        assert_int_equal(keyring_org_key(k, ORG1, "field-index", i1), 0);
        assert_memory_not_equal(f1, i1, 32);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM org_key WHERE kek_version = 1"), 2);
        assert_int_equal(keyring_rotate(k, ORG1, &v), 0);
        assert_int_equal(v, 2);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM org_key WHERE kek_version = 2"), 2);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM kek"), 1);
        keyring_free(k);

        k = open_ring(e);
        assert_int_equal(keyring_org_key(k, ORG1, "field", f2), 0);
        assert_int_equal(keyring_org_key(k, ORG1, "field-index", i2), 0);
        assert_memory_equal(f1, f2, 32);
        assert_memory_equal(i1, i2, 32);
        keyring_free(k);
}

static int stop_after_first(unsigned batches_done, void *ud) {
        return batches_done == 1 ? -EINTR : 0;
}

static void test_rotate_interrupted(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        static uint8_t deks[ROT_N][32];
        uint32_t v;

        make_deks(k, deks);
        keyring_set_rotate_hook(k, 40, stop_after_first, NULL);
        assert_int_equal(keyring_rotate(k, ORG1, &v), -EINTR);
        /* half-way: both versions exist, one batch moved, every DEK still readable */
        assert_int_equal(sql_int(e, "SELECT count(*) FROM kek"), 2);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM dek WHERE kek_version = 2"), 40);
        check_deks(k, deks);
        assert_int_equal(keyring_kek_current_version(k, ORG1, &v), 0);
        assert_int_equal(v, 2);
        /* uploads go on meanwhile, under the new version */
        uint8_t oid[16], extra[32], got[32];
        make_id(oid, 'x', 1);
        assert_int_equal(keyring_dek_new(k, ORG1, oid, extra), 0);
        keyring_free(k);

        /* rerun (as after a restart): finishes the same rotation, does not start another */
        k = open_ring(e);
        keyring_set_rotate_hook(k, 40, NULL, NULL);
        assert_int_equal(keyring_rotate(k, ORG1, &v), 0);
        assert_int_equal(v, 2);
        check_deks(k, deks);
        assert_int_equal(keyring_dek_get(k, oid, got), 0);
        assert_memory_equal(got, extra, 32);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM kek"), 1);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM dek WHERE kek_version = 2"), ROT_N + 1);
        keyring_free(k);
}

static int kill_at(unsigned batches_done, void *ud) {
        if (batches_done == *(unsigned *) ud)
                raise(SIGKILL);
        return 0;
}

/* kill -9 of a process in the middle of a rotation, at several points, then a rerun. */
static void test_rotate_killed(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        static uint8_t deks[ROT_N][32];
        uint32_t v;

        make_deks(k, deks);
        keyring_free(k);
        unsigned points[] = { 0, 1, 3 };
        for (size_t i = 0; i < ELEMENTSOF(points); i++) {
                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        struct keyring *c = open_ring(e);
                        keyring_set_rotate_hook(c, 40, kill_at, &points[i]);
                        int r = keyring_rotate(c, ORG1, &v);
                        _exit(r < 0 ? 2 : 0); /* not reached: the hook kills us first */
                }
                int status;
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFSIGNALED(status));
                assert_int_equal(WTERMSIG(status), SIGKILL);
                k = open_ring(e);
                check_deks(k, deks);
                keyring_free(k);
        }
        /* every kill came during the first rotation: rerunning finishes it at version 2 */
        k = open_ring(e);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM kek"), 2);
        assert_int_equal(keyring_rotate(k, ORG1, &v), 0);
        assert_int_equal(v, 2);
        check_deks(k, deks);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM kek"), 1);
        keyring_free(k);
}

static void test_org_key(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        uint8_t a[32], b[32], c[32], oid[16], dek[32];
        assert_int_equal(keyring_org_key(k, ORG1, "audit-details", a), -ENOENT);
        assert_int_equal(keyring_kek_create(k, ORG1), 0);
        assert_int_equal(keyring_org_key(k, ORG1, "audit-details", a), 0);
        assert_int_equal(keyring_org_key(k, ORG1, "audit-details", b), 0);
        assert_memory_equal(a, b, 32);
        assert_int_equal(keyring_org_key(k, ORG1, "field", c), 0);
        assert_memory_not_equal(a, c, 32);
        assert_int_equal(keyring_org_key(k, ORG1, "Bad Purpose", c), -EINVAL);
        assert_int_equal(keyring_org_key(k, ORG1, "", c), -EINVAL);
        keyring_free(k);
        k = open_ring(e);
        assert_int_equal(keyring_org_key(k, ORG1, "audit-details", b), 0);
        assert_memory_equal(a, b, 32);

        /* crypto-shredding the organisation */
        make_id(oid, 'o', 1);
        assert_int_equal(keyring_dek_new(k, ORG1, oid, dek), 0);
        assert_int_equal(keyring_kek_destroy(k, ORG1), 0);
        assert_int_equal(keyring_org_key(k, ORG1, "audit-details", b), -ENOENT);
        assert_int_equal(keyring_dek_get(k, oid, dek), -ENOENT);
        assert_int_equal(keyring_kek_destroy(k, ORG1), -ENOENT);
        keyring_free(k);
}

#define THREADS 16
#define PER_THREAD 50

struct worker {
        struct keyring *k;
        unsigned no;
        int failures;
        uint8_t deks[PER_THREAD][32];
};

static void *worker_run(void *p) {
        struct worker *w = p;
        uint8_t oid[16];
        for (unsigned i = 0; i < PER_THREAD; i++) {
                make_id(oid, 't', w->no * 1000 + i);
                if (keyring_dek_new(w->k, ORG1, oid, w->deks[i]) != 0)
                        w->failures++;
        }
        return NULL;
}

static void test_concurrent_dek_new(void **state) {
        struct env *e = *state;
        struct keyring *k = open_ring(e);
        static struct worker workers[THREADS];
        pthread_t t[THREADS];
        struct timespec a, b;

        assert_int_equal(keyring_kek_create(k, ORG1), 0);
        uint64_t commits0 = keyring_group_commits(k);
        /* the first commit waits for one request of every thread: batching without hoping */
        keyring_hold_group(k, THREADS);
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (unsigned i = 0; i < THREADS; i++) {
                workers[i] = (struct worker){ .k = k, .no = i };
                assert_int_equal(pthread_create(&t[i], NULL, worker_run, &workers[i]), 0);
        }
        for (unsigned i = 0; i < THREADS; i++)
                assert_int_equal(pthread_join(t[i], NULL), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        uint64_t commits = keyring_group_commits(k) - commits0;
        double s = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
        print_message("%d DEKs from %d threads in %.3f s (%.0f/s), %llu commits\n", THREADS * PER_THREAD, THREADS, s,
                      THREADS * PER_THREAD / s, (unsigned long long) commits);

        for (unsigned i = 0; i < THREADS; i++)
                assert_int_equal(workers[i].failures, 0);
        /* batched: the held first commit carried THREADS requests, so at most this many */
        assert_true(commits <= THREADS * PER_THREAD - THREADS + 1);
        keyring_free(k);
        /* all there after reopening, each with the key its caller got */
        k = open_ring(e);
        assert_int_equal(sql_int(e, "SELECT count(*) FROM dek"), THREADS * PER_THREAD);
        for (unsigned i = 0; i < THREADS; i++)
                for (unsigned j = 0; j < PER_THREAD; j++) {
                        uint8_t oid[16], dek[32];
                        make_id(oid, 't', i * 1000 + j);
                        assert_int_equal(keyring_dek_get(k, oid, dek), 0);
                        assert_memory_equal(dek, workers[i].deks[j], 32);
                }
        keyring_free(k);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_master_key_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dek_life_cycle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_moved_wrapped_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_interrupted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_killed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_org_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_field_keys, setup, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent_dek_new, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
