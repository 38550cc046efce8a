/* test_log_enospc.c: a full disk fails the appends that do not fit, and only those: once there
 * is room again the log takes appends, and everything acknowledged is there and verifies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/log.h"
#include "fileio.h"
#include "../store/test_tmpfs.h"

static char *dir;

static void test_full_then_room(void **state) {
        (void) state;
        _cleanup_free_ char *logdir = path_join(dir, "audit");
        _cleanup_free_ char *filler = path_join(dir, "filler");
        struct audit_log *log = NULL;
        uint8_t entry[2000];
        uint64_t index, ok = 0;
        int r;

        assert_int_equal(mkdir_p(logdir, 0700), 0);
        assert_int_equal(audit_log_open(logdir, true, &log), 0);
        memset(entry, 'a', sizeof entry);
        /* take nearly all the room with a filler file, then append until the disk is full */
        int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        static uint8_t block[65536];
        while (write(fd, block, sizeof block) == (ssize_t) sizeof block)
                ;
        for (int i = 0; i < 100000; i++) {
                r = audit_log_append(log, entry, sizeof entry, &index);
                if (r < 0)
                        break;
                assert_int_equal(index, ok);
                ok++;
        }
        assert_int_equal(r, -ENOSPC);
        assert_int_equal(audit_log_append(log, entry, sizeof entry, &index), -ENOSPC);
        /* room again: appends work without reopening, and the indexes go on where they were */
        assert_int_equal(ftruncate(fd, 0), 0);
        close(fd);
        assert_int_equal(audit_log_append(log, entry, sizeof entry, &index), 0);
        assert_int_equal(index, ok);
        ok++;
        assert_int_equal(audit_log_size(log), ok);
        uint64_t bad = 0;
        assert_int_equal(audit_log_verify_all(log, &bad), 0);
        audit_log_close(log);
        assert_int_equal(audit_log_open(logdir, false, &log), 0);
        assert_int_equal(audit_log_size(log), ok);
        assert_int_equal(audit_log_verify_all(log, &bad), 0);
        audit_log_close(log);
}

int main(void) {
        int r = test_tmpfs_mount(4 << 20, &dir);
        if (r < 0) {
                fprintf(stderr, "no private tmpfs (%s): skipped\n", strerror(-r));
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_then_room),
        };
        r = cmocka_run_group_tests(tests, NULL, NULL);
        test_tmpfs_unmount(dir);
        return r;
}
