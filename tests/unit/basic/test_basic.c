/* test_basic.c: buffers, hex/base64 and file helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fileio.h"
#include "hex.h"
#include "utf8.h"

static void test_buf_cap(void **state) {
        (void) state;
        struct buf b;
        buf_init(&b, 10);
        assert_int_equal(buf_append_str(&b, "hello"), 0);
        assert_int_equal(buf_printf(&b, "%d", 1234), 0);
        assert_string_equal(buf_str(&b), "hello1234");
        assert_int_equal(buf_append_str(&b, "xy"), -E2BIG);
        assert_int_equal(b.len, 9);
        buf_free(&b);
}

static void test_buf_long_printf(void **state) {
        (void) state;
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        char big[1000];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_int_equal(buf_printf(&b, "<%s>", big), 0);
        assert_int_equal(b.len, 1001);
        assert_int_equal(b.data[0], '<');
        assert_int_equal(b.data[1000], '>');
}

static void test_hex_base64(void **state) {
        (void) state;
        uint8_t in[] = { 0x00, 0xff, 0x10 }, out[3];
        char h[7];
        hex_encode(in, 3, h);
        assert_string_equal(h, "00ff10");
        assert_int_equal(hex_decode("00ff10", out, 3), 0);
        assert_memory_equal(in, out, 3);
        assert_int_equal(hex_decode("00ff1", out, 3), -EINVAL);
        assert_int_equal(hex_decode("00fg10", out, 3), -EINVAL);
        _cleanup_free_ char *b = base64_encode((const uint8_t *) "foob", 4);
        assert_string_equal(b, "Zm9vYg==");
        uint8_t *d = NULL;
        size_t dl = 0;
        assert_int_equal(base64_decode(b, strlen(b), &d, &dl), 0);
        assert_int_equal(dl, 4);
        assert_memory_equal(d, "foob", 4);
        free(d);
        assert_int_equal(base64_decode("Zm9v!", 5, &d, &dl), -EINVAL);
}

static void test_file_atomic(void **state) {
        (void) state;
        char dir[] = "/tmp/coffre-test-XXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *p = path_join(dir, "a/b");
        _cleanup_free_ char *f = path_join(p, "file");
        assert_int_equal(mkdir_p(p, 0700), 0);
        assert_int_equal(write_file_atomic(f, "abc", 3, 0600, 1), 0);
        assert_int_equal(write_file_atomic(f, "abc", 3, 0600, 1), -EEXIST);
        struct buf b;
        assert_int_equal(read_file(f, 100, &b), 0);
        assert_int_equal(b.len, 3);
        buf_free(&b);
        assert_int_equal(read_file(f, 2, &b), -EFBIG);
        assert_int_equal(rm_rf(dir), 0);
}

static void test_utf8(void **state) {
        (void) state;
        uint32_t cp = 0;
        assert_int_equal(utf8_next((const uint8_t *) "a", 1, &cp), 1);
        assert_int_equal(cp, 'a');
        assert_int_equal(utf8_next((const uint8_t *) "\xc3\xa9", 2, &cp), 2);
        assert_int_equal(cp, 0xe9);
        assert_int_equal(utf8_next((const uint8_t *) "\xe2\x80\x94", 3, &cp), 3); /* em dash */
        assert_int_equal(cp, 0x2014);
        assert_int_equal(utf8_next((const uint8_t *) "\xf0\x9f\x98\x80", 4, &cp), 4);
        assert_int_equal(cp, 0x1f600);
        assert_int_equal(utf8_next((const uint8_t *) "\xc0\xaf", 2, &cp), 0);         /* overlong '/' */
        assert_int_equal(utf8_next((const uint8_t *) "\xe0\x80\xaf", 3, &cp), 0);     /* overlong */
        assert_int_equal(utf8_next((const uint8_t *) "\xed\xa0\x80", 3, &cp), 0);     /* surrogate */
        assert_int_equal(utf8_next((const uint8_t *) "\xf4\x90\x80\x80", 4, &cp), 0); /* > U+10FFFF */
        assert_int_equal(utf8_next((const uint8_t *) "\xe2\x80\x94", 2, &cp), 0);     /* cut short */
        assert_int_equal(utf8_next((const uint8_t *) "\xc3\x28", 2, &cp), 0);         /* bad continuation */
        assert_int_equal(utf8_next((const uint8_t *) "\x80", 1, &cp), 0);             /* lone continuation */
        assert_int_equal(utf8_next((const uint8_t *) "\xff", 1, &cp), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_buf_cap),
                cmocka_unit_test(test_buf_long_printf),
                cmocka_unit_test(test_hex_base64),
                cmocka_unit_test(test_file_atomic),
                cmocka_unit_test(test_utf8),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
