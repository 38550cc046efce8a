/* test_blob_enospc.c: uploads on a full filesystem fail with -ENOSPC, whether the disk fills
 * while writing or only at commit, and leave nothing behind: no object, no temporary file, the
 * space given back. Runs in a private mount namespace on a small tmpfs; skipped (exit 77) where
 * namespaces or tmpfs mounts are not allowed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "test_blob_util.h"
#include "../store/test_tmpfs.h"

#define MiB ((uint64_t) 1024 * 1024)
#define FS_SIZE (4 * MiB)

static char *tmpfs_dir;

static uint64_t free_bytes(void) {
        struct statvfs sv;
        assert_int_equal(statvfs(tmpfs_dir, &sv), 0);
        return (uint64_t) sv.f_bavail * sv.f_frsize;
}

static void test_full_while_writing(void **state) {
        (void) state;
        struct blob *b;
        struct blob_writer *w;
        struct blob_reader *rd = NULL;
        uint64_t size;
        char id[33];
        uint8_t chunk[65536];
        int r = 0;

        assert_int_equal(blob_fs_open(tmpfs_dir, true, &b), 0);
        uint64_t before = free_bytes();
        make_id(id, 0xf011f011u, 1);
        fill(chunk, sizeof chunk, 1, 0);
        assert_int_equal(b->ops->writer_open(b, id, &w), 0);
        for (uint64_t off = 0; off < 2 * FS_SIZE; off += sizeof chunk) {
                r = b->ops->writer_write(w, chunk, sizeof chunk);
                if (r < 0)
                        break;
        }
        assert_int_equal(r, -ENOSPC);
        /* The temporary file is gone at once, and the writer stays failed. */
        assert_int_equal(count_entries(tmpfs_dir, "tmp"), 0);
        assert_int_equal(b->ops->writer_write(w, chunk, 10), -ENOSPC);
        assert_int_equal(b->ops->writer_commit(w), -ENOSPC);
        assert_int_equal(b->ops->reader_open(b, id, &rd, &size), -ENOENT);
        assert_int_equal(count_entries(tmpfs_dir, "tmp"), 0);
        assert_true(free_bytes() >= before);
        /* The disk has room again: the same id can be stored. */
        assert_int_equal(put_object(b, id, 2, 100000, 4096), 0);
        check_object(b, id, 2, 100000);
        assert_int_equal(b->ops->remove(b, id), 0);
        blob_close(b);
}

static void test_full_at_commit(void **state) {
        (void) state;
        struct blob *b;
        struct blob_writer *w;
        struct blob_reader *rd = NULL;
        uint64_t size;
        char id[33];
        uint8_t *data = malloc(900 * 1024);

        assert_int_equal(blob_fs_open(tmpfs_dir, true, &b), 0);
        /* Leave 256 KiB free, then buffer 900 KiB: the disk fills only when commit flushes. */
        _cleanup_free_ char *filler = path_join(tmpfs_dir, "filler");
        int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        uint64_t want = free_bytes() - 256 * 1024;
        uint8_t zero[65536] = { 0 };
        for (uint64_t off = 0; off < want; off += sizeof zero)
                assert_int_equal(write_all(fd, zero, (size_t) MIN((uint64_t) sizeof zero, want - off)), 0);
        close(fd);

        make_id(id, 0xf011f011u, 2);
        fill(data, 900 * 1024, 3, 0);
        assert_int_equal(b->ops->writer_open(b, id, &w), 0);
        assert_int_equal(b->ops->writer_write(w, data, 900 * 1024), 0);
        assert_int_equal(b->ops->writer_commit(w), -ENOSPC);
        assert_int_equal(b->ops->reader_open(b, id, &rd, &size), -ENOENT);
        assert_int_equal(count_entries(tmpfs_dir, "tmp"), 0);

        assert_int_equal(unlink(filler), 0);
        assert_int_equal(put_object(b, id, 3, 900 * 1024, 900 * 1024), 0);
        check_object(b, id, 3, 900 * 1024);
        blob_close(b);
        free(data);
}

int main(void) {
        int r = test_tmpfs_mount(FS_SIZE, &tmpfs_dir);
        if (r < 0) {
                fprintf(stderr, "skipped: cannot mount a private tmpfs (%s)\n", strerror(-r));
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_while_writing),
                cmocka_unit_test(test_full_at_commit),
        };
        r = cmocka_run_group_tests(tests, NULL, NULL);
        test_tmpfs_unmount(tmpfs_dir);
        return r;
}
