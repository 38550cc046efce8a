/* test_blob.c: the filesystem object store: round trips, commit atomicity, refusal to overwrite,
 * removal, clean-up of interrupted uploads, the walk, id checks, concurrency and kill -9. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_blob_util.h"

#define MiB ((uint64_t) 1024 * 1024)

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof *f);
        const char *base = getenv("TMPDIR");
        char tmpl[512];
        snprintf(tmpl, sizeof tmpl, "%s/coffre-blob-XXXXXX", base && *base ? base : "/tmp");
        assert_non_null(mkdtemp(tmpl));
        f->root = path_join(tmpl, "data"); /* not there yet: create makes it */
        assert_int_equal(blob_fs_open(f->root, true, &f->b), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        blob_close(f->b);
        char *slash = strrchr(f->root, '/');
        *slash = 0;
        rm_rf(f->root);
        free(f->root);
        free(f);
        return 0;
}

static char *object_path(const char *root, const char *id) {
        char rel[64];
        snprintf(rel, sizeof rel, "objects/%.2s/%.2s/%s", id, id + 2, id);
        return path_join(root, rel);
}

static void test_open(void **state) {
        struct fixture *f = *state;
        struct stat st;
        struct blob *none = NULL;

        assert_string_equal(f->b->ops->name, "fs");
        _cleanup_free_ char *objects = path_join(f->root, "objects");
        _cleanup_free_ char *tmp = path_join(f->root, "tmp");
        assert_int_equal(stat(objects, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0700);
        assert_int_equal(stat(tmp, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);

        /* Reopening works; a directory that is not a store is refused without being created. */
        assert_int_equal(blob_fs_open(f->root, false, &none), 0);
        blob_close(none);
        none = NULL;
        _cleanup_free_ char *missing = path_join(f->root, "nope");
        assert_int_equal(blob_fs_open(missing, false, &none), -ENOENT);
        assert_null(none);
        assert_int_equal(access(missing, F_OK), -1);
}

static void test_round_trip(void **state) {
        struct fixture *f = *state;
        const uint64_t sizes[] = { 0, 1, 65536, MiB - 1, MiB, MiB + 1, 3 * MiB + 17 };
        const size_t chunks[] = { 1, 4093, 65536, 2 * MiB };
        unsigned n = 0;

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                for (size_t j = 0; j < ELEMENTSOF(chunks); j++) {
                        char id[33];
                        if (sizes[i] > 2 * MiB && chunks[j] == 1)
                                continue; /* slow and says nothing new */
                        make_id(id, 0xabcd0000u, n);
                        assert_int_equal(put_object(f->b, id, n, sizes[i], chunks[j]), 0);
                        check_object(f->b, id, n, sizes[i]);
                        n++;
                }

        /* Where it lives and how it is protected. */
        char id[33];
        struct stat st;
        make_id(id, 0xabcd0000u, 0);
        _cleanup_free_ char *p = object_path(f->root, id);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(count_entries(f->root, "tmp"), 0);

        /* Partial reads anywhere; past the end is a short object. */
        struct blob_reader *rd;
        uint64_t size;
        uint8_t buf[100], want[100];
        make_id(id, 0xabcd0000u, n - 1);
        assert_int_equal(f->b->ops->reader_open(f->b, id, &rd, &size), 0);
        assert_int_equal(size, 3 * MiB + 17);
        assert_int_equal(f->b->ops->reader_pread(rd, buf, 100, MiB - 50), 0);
        fill(want, 100, n - 1, MiB - 50);
        assert_memory_equal(buf, want, 100);
        assert_int_equal(f->b->ops->reader_pread(rd, buf, 17, size - 17), 0);
        assert_int_equal(f->b->ops->reader_pread(rd, buf, 0, size), 0);
        assert_int_equal(f->b->ops->reader_pread(rd, buf, 18, size - 17), -EBADMSG);
        assert_int_equal(f->b->ops->reader_pread(rd, buf, 1, size), -EBADMSG);
        assert_int_equal(f->b->ops->reader_pread(rd, buf, 1, UINT64_MAX), -EBADMSG);
        f->b->ops->reader_close(rd);

        /* Truncated on disk behind the store's back: still -EBADMSG, never garbage. */
        _cleanup_free_ char *lp = object_path(f->root, id);
        assert_int_equal(f->b->ops->reader_open(f->b, id, &rd, &size), 0);
        assert_int_equal(truncate(lp, 1000), 0);
        assert_int_equal(f->b->ops->reader_pread(rd, buf, 100, 950), -EBADMSG);
        f->b->ops->reader_close(rd);
}

static void test_commit_atomicity(void **state) {
        struct fixture *f = *state;
        struct blob_writer *w;
        struct blob_reader *rd = NULL;
        uint64_t size;
        char id[33];
        uint8_t *buf = malloc(2 * MiB + 5);

        make_id(id, 0x12345678u, 1);
        fill(buf, 2 * MiB + 5, 7, 0);
        assert_int_equal(f->b->ops->writer_open(f->b, id, &w), 0);
        assert_int_equal(f->b->ops->writer_write(w, buf, 5), 0);
        assert_int_equal(f->b->ops->writer_write(w, buf + 5, 2 * MiB), 0); /* reaches the disk */
        /* Before commit: nothing under the id, only a temporary file. */
        assert_int_equal(f->b->ops->reader_open(f->b, id, &rd, &size), -ENOENT);
        assert_null(rd);
        _cleanup_free_ char *p = object_path(f->root, id);
        assert_int_equal(access(p, F_OK), -1);
        assert_int_equal(count_entries(f->root, "tmp"), 1);
        assert_int_equal(f->b->ops->writer_commit(w), 0);
        check_object(f->b, id, 7, 2 * MiB + 5);
        assert_int_equal(count_entries(f->root, "tmp"), 0);

        /* Abort leaves nothing, and the id stays free. */
        make_id(id, 0x12345678u, 2);
        assert_int_equal(f->b->ops->writer_open(f->b, id, &w), 0);
        assert_int_equal(f->b->ops->writer_write(w, buf, 2 * MiB + 5), 0);
        f->b->ops->writer_abort(w);
        f->b->ops->writer_abort(NULL);
        assert_int_equal(f->b->ops->reader_open(f->b, id, &rd, &size), -ENOENT);
        assert_int_equal(count_entries(f->root, "tmp"), 0);
        assert_int_equal(put_object(f->b, id, 8, 1000, 100), 0);
        check_object(f->b, id, 8, 1000);
        free(buf);
}

static void test_no_overwrite(void **state) {
        struct fixture *f = *state;
        struct blob_writer *w1, *w2, *w3 = NULL;
        char id[33];
        uint8_t a[4096], b[4096];

        make_id(id, 0x0badcafeu, 1);
        fill(a, sizeof a, 1, 0);
        fill(b, sizeof b, 2, 0);
        /* Two uploads of one id at once: the first commit wins, the second gets -EEXIST. */
        assert_int_equal(f->b->ops->writer_open(f->b, id, &w1), 0);
        assert_int_equal(f->b->ops->writer_open(f->b, id, &w2), 0);
        assert_int_equal(f->b->ops->writer_write(w1, a, sizeof a), 0);
        assert_int_equal(f->b->ops->writer_write(w2, b, sizeof b), 0);
        assert_int_equal(f->b->ops->writer_commit(w1), 0);
        assert_int_equal(f->b->ops->writer_commit(w2), -EEXIST);
        check_object(f->b, id, 1, sizeof a);
        assert_int_equal(count_entries(f->root, "tmp"), 0);
        /* Once it exists, a new upload is refused at once. */
        assert_int_equal(f->b->ops->writer_open(f->b, id, &w3), -EEXIST);
        assert_null(w3);
}

static void test_remove(void **state) {
        struct fixture *f = *state;
        struct blob_reader *rd;
        uint64_t size;
        char id[33], never[33];

        make_id(id, 0x5eed0000u, 1);
        make_id(never, 0xffff0000u, 1);
        assert_int_equal(put_object(f->b, id, 3, 5000, 1000), 0);
        assert_int_equal(f->b->ops->remove(f->b, id), 0);
        assert_int_equal(f->b->ops->reader_open(f->b, id, &rd, &size), -ENOENT);
        assert_int_equal(f->b->ops->remove(f->b, id), -ENOENT);
        assert_int_equal(f->b->ops->remove(f->b, never), -ENOENT);
        /* The id can be used again. */
        assert_int_equal(put_object(f->b, id, 4, 10, 10), 0);
        check_object(f->b, id, 4, 10);
}

static void test_cleanup_tmp(void **state) {
        struct fixture *f = *state;
        struct blob_writer *w;
        char id[33];
        uint8_t data[1000];

        /* Leftovers of a crash: files, and a directory with something in it. */
        const char *names[] = { "tmp/0123.abcd.tmp", "tmp/junk", "tmp/.hidden" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *p = path_join(f->root, names[i]);
                assert_int_equal(write_file_atomic(p, "x", 1, 0600, 0), 0);
        }
        _cleanup_free_ char *d = path_join(f->root, "tmp/dir/sub");
        assert_int_equal(mkdir_p(d, 0700), 0);
        _cleanup_free_ char *df = path_join(d, "file");
        assert_int_equal(write_file_atomic(df, "y", 1, 0600, 0), 0);

        /* An upload in progress is not a leftover. */
        make_id(id, 0xc1ea0000u, 1);
        fill(data, sizeof data, 9, 0);
        assert_int_equal(f->b->ops->writer_open(f->b, id, &w), 0);
        assert_int_equal(f->b->ops->writer_write(w, data, sizeof data), 0);
        assert_int_equal(f->b->ops->cleanup_tmp(f->b), 4);
        assert_int_equal(count_entries(f->root, "tmp"), 1);
        assert_int_equal(f->b->ops->writer_commit(w), 0);
        check_object(f->b, id, 9, sizeof data);
        assert_int_equal(f->b->ops->cleanup_tmp(f->b), 0);
        assert_int_equal(count_entries(f->root, "tmp"), 0);
}

static void test_invalid_ids(void **state) {
        struct fixture *f = *state;
        const char *bad[] = {
                "../etc/passwd",
                "../../../../../../../../etc/passwd",
                "",
                "0123456789abcdef0123456789abcde",   /* 31 */
                "0123456789abcdef0123456789abcdef0", /* 33 */
                "0123456789ABCDEF0123456789ABCDEF",
                "0123456789abcdef0123456789abcde/",
                "01/23456789abcdef0123456789abcde",
                "0123456789abcdef0123456789abcdeg",
                "0123456789abcdef\0" "123456789abcdef",
                NULL,
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct blob_writer *w = NULL;
                struct blob_reader *rd = NULL;
                uint64_t size = 77;
                assert_int_equal(f->b->ops->writer_open(f->b, bad[i], &w), -EINVAL);
                assert_null(w);
                assert_int_equal(f->b->ops->reader_open(f->b, bad[i], &rd, &size), -EINVAL);
                assert_null(rd);
                assert_int_equal(size, 77);
                assert_int_equal(f->b->ops->remove(f->b, bad[i]), -EINVAL);
        }
        assert_int_equal(count_entries(f->root, "tmp"), 0);
        assert_int_equal(count_entries(f->root, "objects"), 0);
}

struct collect {
        char ids[64][33];
        int n;
        int stop_after;
};

static int collect_cb(const char *id, void *ud) {
        struct collect *c = ud;
        if (c->stop_after && c->n == c->stop_after)
                return -ECANCELED;
        assert_true(c->n < 64);
        snprintf(c->ids[c->n++], 33, "%s", id);
        return 0;
}

static int cmp_id(const void *a, const void *b) {
        return strcmp(a, b);
}

static void test_foreach(void **state) {
        struct fixture *f = *state;
        struct collect c = {};
        char want[50][33];

        for (unsigned i = 0; i < 50; i++) {
                /* Spread over a few directories, several per directory. */
                snprintf(want[i], 33, "%04x%028x", (i % 5) * 0x1111, i);
                assert_int_equal(put_object(f->b, want[i], i, i, 7), 0);
        }
        /* Things that are not objects: wrong names, wrong places, a directory, a symlink. */
        const char *dirs[] = { "objects/zz", "objects/ab/cd", ("objects/00/00/" "0000000000000000000000000000000d") };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *p = path_join(f->root, dirs[i]);
                assert_int_equal(mkdir_p(p, 0700), 0);
        }
        const char *files[] = { "objects/README", "objects/ab/notadir", "objects/ab/cd/notanid",
                                "objects/ab/cd/00000000000000000000000000000001", /* wrong directory */
                                "objects/ab/cd/ABCD0000000000000000000000000001", "objects/zz/zz" };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *p = path_join(f->root, files[i]);
                assert_int_equal(write_file_atomic(p, "z", 1, 0600, 0), 0);
        }
        _cleanup_free_ char *link = path_join(f->root, "objects/ab/cd/abcd0000000000000000000000000002");
        assert_int_equal(symlink("/etc/passwd", link), 0);

        assert_int_equal(f->b->ops->foreach(f->b, collect_cb, &c), 0);
        assert_int_equal(c.n, 50);
        qsort(c.ids, (size_t) c.n, 33, cmp_id);
        qsort(want, 50, 33, cmp_id);
        for (int i = 0; i < 50; i++)
                assert_string_equal(c.ids[i], want[i]);

        /* A negative return stops the walk and comes back. */
        struct collect stop = { .stop_after = 3 };
        assert_int_equal(f->b->ops->foreach(f->b, collect_cb, &stop), -ECANCELED);
        assert_int_equal(stop.n, 3);
        /* A symlink under an id is not an object to read either. */
        struct blob_reader *rd = NULL;
        uint64_t size;
        assert_true(f->b->ops->reader_open(f->b, "abcd0000000000000000000000000002", &rd, &size) < 0);
        assert_null(rd);
}

#define CT_THREADS 8
#define CT_OBJECTS 20

struct ct_arg {
        struct blob *b;
        unsigned t;
        int failures;
};

static void *ct_thread(void *p) {
        struct ct_arg *a = p;
        for (unsigned i = 0; i < CT_OBJECTS; i++) {
                char id[33];
                /* All threads share the first four characters: they race to create objects/xx/yy. */
                snprintf(id, sizeof id, "beef%04x%024x", a->t, i);
                if (put_object(a->b, id, a->t * 100 + i, 70000 + i, 8192) != 0)
                        a->failures++;
        }
        return NULL;
}

static void test_concurrent_writers(void **state) {
        struct fixture *f = *state;
        pthread_t th[CT_THREADS];
        struct ct_arg args[CT_THREADS];

        for (unsigned t = 0; t < CT_THREADS; t++) {
                args[t] = (struct ct_arg) { .b = f->b, .t = t };
                assert_int_equal(pthread_create(&th[t], NULL, ct_thread, &args[t]), 0);
        }
        for (unsigned t = 0; t < CT_THREADS; t++) {
                assert_int_equal(pthread_join(th[t], NULL), 0);
                assert_int_equal(args[t].failures, 0);
        }
        for (unsigned t = 0; t < CT_THREADS; t++)
                for (unsigned i = 0; i < CT_OBJECTS; i++) {
                        char id[33];
                        snprintf(id, sizeof id, "beef%04x%024x", t, i);
                        check_object(f->b, id, t * 100 + i, 70000 + i);
                }
        assert_int_equal(count_entries(f->root, "objects/be/ef"), CT_THREADS * CT_OBJECTS);
        assert_int_equal(count_entries(f->root, "tmp"), 0);
}

/* Every object acknowledged before kill -9 is there, whole, afterwards. */
static void test_kill9(void **state) {
        struct fixture *f = *state;
        int fds[2];
        unsigned acked = 0, n;

        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(fds[0]);
                for (n = 0;; n++) {
                        char id[33];
                        make_id(id, 0x4b494c4cu, n);
                        if (put_object(f->b, id, n, 200000 + n, 65536) != 0)
                                _exit(2);
                        if (write(fds[1], &n, sizeof n) != sizeof n)
                                _exit(3);
                }
        }
        close(fds[1]);
        while (acked < 40 && read(fds[0], &n, sizeof n) == sizeof n)
                acked++;
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        while (read(fds[0], &n, sizeof n) == sizeof n)
                acked++;
        close(fds[0]);
        assert_true(acked >= 40);

        struct blob *b2;
        assert_int_equal(blob_fs_open(f->root, false, &b2), 0);
        for (unsigned i = 0; i < acked; i++) {
                char id[33];
                make_id(id, 0x4b494c4cu, i);
                check_object(b2, id, i, 200000 + i);
        }
        /* The upload that was cut short is a leftover, never an object. */
        int left = b2->ops->cleanup_tmp(b2);
        assert_true(left >= 0 && left <= 1);
        assert_int_equal(count_entries(f->root, "tmp"), 0);
        blob_close(b2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open, setup, teardown),
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_commit_atomicity, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_overwrite, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cleanup_tmp, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_ids, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
