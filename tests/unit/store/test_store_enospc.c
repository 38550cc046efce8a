/* test_store_enospc.c: the store on a full filesystem: inserts fail with -ENOSPC, and every
 * insert that was acknowledged before is still there, with its content, after reopening. Runs in a private mount
 * namespace on a small tmpfs; skipped (exit 77) where namespaces or tmpfs mounts are not allowed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "store/store.h"
#include "test_store_util.h"
#include "test_tmpfs.h"

static char *tmpfs_dir;

static void test_full_disk(void **state) {
        (void) state;
        _cleanup_free_ char *path = path_join(tmpfs_dir, "meta.db");
        struct store *s = NULL;
        unsigned acked = 0;
        int r = 0;
        uint64_t count, bytes;

        assert_int_equal(store_sqlite_open(path, true, &s), 0);
        add_org(s, ORG_A);
        for (unsigned n = 0; n < 100000; n++) {
                struct store_document d = make_doc(n, ORG_A, n, "accounting-10y");
                memset(d.name_sealed, 'n', sizeof d.name_sealed); /* big rows fill the disk sooner */
                d.name_sealed_len = sizeof d.name_sealed;
                r = s->ops->document_insert(s, &d);
                if (r < 0)
                        break;
                acked++;
        }
        assert_int_equal(r, -ENOSPC);
        assert_true(acked > 0);
        /* The failure changed nothing that was acknowledged; reads still work. */
        assert_int_equal(s->ops->document_stats(s, &count, &bytes), 0);
        assert_int_equal(count, acked);
        store_close(s);

        assert_int_equal(store_sqlite_open(path, false, &s), 0);
        assert_int_equal(s->ops->document_stats(s, &count, &bytes), 0);
        assert_int_equal(count, acked);
        /* every acknowledged row comes back as it was written, not only as a row that exists */
        for (unsigned n = 0; n < acked; n++) {
                struct store_document d = make_doc(n, ORG_A, n, "accounting-10y"), got;
                memset(d.name_sealed, 'n', sizeof d.name_sealed);
                d.name_sealed_len = sizeof d.name_sealed;
                memset(&got, 0, sizeof got);
                assert_int_equal(s->ops->document_get(s, d.org_id, d.id, &got), 0);
                assert_doc_equal(&got, &d);
        }
        print_message("full disk after %u acknowledged inserts\n", acked);
        store_close(s);
}

int main(void) {
        int r = test_tmpfs_mount(1024 * 1024, &tmpfs_dir);
        if (r < 0) {
                fprintf(stderr, "skipped: cannot mount a private tmpfs (%s)\n", strerror(-r));
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_disk),
        };
        r = cmocka_run_group_tests(tests, NULL, NULL);
        test_tmpfs_unmount(tmpfs_dir);
        return r;
}
