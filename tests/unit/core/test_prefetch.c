/* test_prefetch.c: the read-ahead ring: order, bounds, non-sequential access and errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "core/prefetch.h"

struct src {
        uint64_t fail_at; /* UINT64_MAX: never */
};

static int fill(void *ud, uint64_t seg, uint8_t *buf, size_t *ret_len) {
        struct src *s = ud;
        if (seg == s->fail_at)
                return -EBADMSG;
        memset(buf, (int) (seg & 0xff), 100);
        *ret_len = 100 + (size_t) seg;
        return 0;
}

static void test_sequential(void **state) {
        (void) state;
        struct src s = { .fail_at = UINT64_MAX };
        struct prefetch *p = NULL;
        assert_int_equal(prefetch_new(3, 40, fill, &s, &p), 0);
        for (uint64_t seg = 3; seg < 40; seg++) {
                const uint8_t *d;
                size_t n;
                assert_int_equal(prefetch_get(p, seg, &d, &n), 0);
                assert_int_equal(n, 100 + seg);
                assert_int_equal(d[0], seg & 0xff);
                assert_int_equal(d[99], seg & 0xff);
                /* asking the same segment again is fine */
                assert_int_equal(prefetch_get(p, seg, &d, &n), 0);
                assert_int_equal(n, 100 + seg);
        }
        const uint8_t *d;
        size_t n;
        assert_int_equal(prefetch_get(p, 40, &d, &n), -ESPIPE);
        prefetch_free(p);
}

static void test_not_sequential(void **state) {
        (void) state;
        struct src s = { .fail_at = UINT64_MAX };
        struct prefetch *p = NULL;
        const uint8_t *d;
        size_t n;
        assert_int_equal(prefetch_new(0, 10, fill, &s, &p), 0);
        assert_int_equal(prefetch_get(p, 1, &d, &n), -ESPIPE); /* must start at the first */
        assert_int_equal(prefetch_get(p, 0, &d, &n), 0);
        assert_int_equal(prefetch_get(p, 2, &d, &n), -ESPIPE); /* no skipping */
        assert_int_equal(prefetch_get(p, 1, &d, &n), 0);
        assert_int_equal(prefetch_get(p, 0, &d, &n), -ESPIPE); /* no going back */
        prefetch_free(p);
}

static void test_error_passed_on(void **state) {
        (void) state;
        struct src s = { .fail_at = 5 };
        struct prefetch *p = NULL;
        const uint8_t *d;
        size_t n;
        assert_int_equal(prefetch_new(0, 10, fill, &s, &p), 0);
        for (uint64_t seg = 0; seg < 5; seg++)
                assert_int_equal(prefetch_get(p, seg, &d, &n), 0);
        assert_int_equal(prefetch_get(p, 5, &d, &n), -EBADMSG);
        prefetch_free(p);
}

static void test_free_while_running(void **state) {
        (void) state;
        struct src s = { .fail_at = UINT64_MAX };
        struct prefetch *p = NULL;
        assert_int_equal(prefetch_new(0, 1000000, fill, &s, &p), 0);
        prefetch_free(p); /* must not hang: the producer waits on a full ring */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sequential),
                cmocka_unit_test(test_not_sequential),
                cmocka_unit_test(test_error_passed_on),
                cmocka_unit_test(test_free_while_running),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
