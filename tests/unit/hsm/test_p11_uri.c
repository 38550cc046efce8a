/* test_p11_uri.c: PKCS#11 URIs as coffre reads them (crypto/p11_uri.c), with the examples of
 * RFC 7512 section 3 that name a key, and the refusals (a PIN in the URI, unknown or repeated
 * attributes, bad percent-encoding, no object), and the PIN file rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "crypto/p11_uri.h"

static void test_rfc7512_examples(void **state) {
        (void) state;
        struct p11_uri u;
        const char *why = NULL;
        /* RFC 7512 section 3, with id and percent-encoded label */
        assert_int_equal(p11_uri_parse("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
                                       "manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;"
                                       "id=%69%95%3E%5C%F4%BD%EC%91;serial=",
                                       &u, &why),
                         -EINVAL); /* manufacturer, model, serial: not attributes coffre takes */
        assert_string_equal(why, "unknown attribute in the PKCS#11 URI");
        assert_int_equal(p11_uri_parse("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;object=my%20key;"
                                       "type=private;id=%69%95%3E%5C%F4%BD%EC%91?pin-source=file:/etc/token_pin"
                                       "&module-path=/usr/lib/softhsm/libsofthsm2.so",
                                       &u, &why),
                         0);
        assert_string_equal(u.token, "The Software PKCS#11 Softtoken");
        assert_string_equal(u.object, "my key");
        assert_string_equal(u.type, "private");
        assert_int_equal(u.id_len, 8);
        assert_memory_equal(u.id, "\x69\x95\x3e\x5c\xf4\xbd\xec\x91", 8);
        assert_string_equal(u.pin_source, "/etc/token_pin");
        assert_string_equal(p11_uri_module(&u), "/usr/lib/softhsm/libsofthsm2.so");
        /* pin-source in the path, as coffre's docs write it; the default module */
        assert_int_equal(p11_uri_parse("pkcs11:token=coffre;object=master;pin-source=file:/run/pin", &u, &why), 0);
        assert_string_equal(u.pin_source, "/run/pin");
        assert_string_equal(p11_uri_module(&u), P11_DEFAULT_MODULE);
        assert_true(p11_uri_is("pkcs11:object=x"));
        assert_false(p11_uri_is("pkcs1:object=x"));
        assert_false(p11_uri_is("/keys/seal.key"));
}

static void test_refusals(void **state) {
        (void) state;
        static const struct {
                const char *uri, *why;
        } cases[] = {
                { "pkcs11:token=t;object=k;pin-value=1234",
                  "a PIN in the PKCS#11 URI is refused: use pin-source=file:PATH" },
                { "pkcs11:token=t;object=k?pin-value=1234",
                  "a PIN in the PKCS#11 URI is refused: use pin-source=file:PATH" },
                { "pkcs11:token=t;token=u;object=k", "a PKCS#11 URI attribute given twice" },
                { "pkcs11:token=t;object=k%2", "bad percent-encoding in the PKCS#11 URI" },
                { "pkcs11:token=t;object=k%zz", "bad percent-encoding in the PKCS#11 URI" },
                { "pkcs11:token=t;object=a%00b", "a NUL byte in the PKCS#11 URI" },
                { "pkcs11:token=t", "the PKCS#11 URI names no object (object= or id=)" },
                { "pkcs11:token=t;object", "a PKCS#11 URI attribute without '='" },
                { "pkcs11:object=k;pin-source=/etc/pin", "pin-source must be file:PATH" },
                { "pkcs11:object=k;pin-source=https://example.com/pin", "pin-source must be file:PATH" },
                { "pkcs11:object=k;slot-id=1", "unknown attribute in the PKCS#11 URI" },
                { "file:/etc/key", "not a PKCS#11 URI" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct p11_uri u;
                const char *why = NULL;
                assert_int_equal(p11_uri_parse(cases[i].uri, &u, &why), -EINVAL);
                assert_string_equal(why, cases[i].why);
        }
        /* too long */
        char big[P11_URI_MAX + 32];
        memset(big, 'a', sizeof big);
        memcpy(big, "pkcs11:object=", 14);
        big[sizeof big - 1] = 0;
        struct p11_uri u;
        const char *why = NULL;
        assert_int_equal(p11_uri_parse(big, &u, &why), -EINVAL);
        assert_string_equal(why, "PKCS#11 URI too long");
}

static void write_pin(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static void test_pin_file(void **state) {
        (void) state;
        char dir[] = "/tmp/coffre-p11uri-XXXXXX", path[64], uri[128];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/pin", dir);
        snprintf(uri, sizeof uri, "pkcs11:object=k;pin-source=file:%s", path);
        struct p11_uri u;
        const char *why;
        char *pin = NULL;
        assert_int_equal(p11_uri_parse(uri, &u, &why), 0);
        assert_int_equal(p11_uri_read_pin(&u, &pin), -ENOENT);
        write_pin(path, "12 34\n", 0600);
        assert_int_equal(p11_uri_read_pin(&u, &pin), 0);
        assert_string_equal(pin, "12 34"); /* one newline dropped, the rest kept */
        sodium_free(pin);
        write_pin(path, "1234", 0400);
        assert_int_equal(p11_uri_read_pin(&u, &pin), 0);
        assert_string_equal(pin, "1234");
        sodium_free(pin);
        write_pin(path, "1234\n", 0640);
        assert_int_equal(p11_uri_read_pin(&u, &pin), -EPERM);
        write_pin(path, "\n", 0600);
        assert_int_equal(p11_uri_read_pin(&u, &pin), -EBADMSG);
        write_pin(path, "12\n34\n", 0600);
        assert_int_equal(p11_uri_read_pin(&u, &pin), -EBADMSG);
        assert_int_equal(p11_uri_parse("pkcs11:object=k", &u, &why), 0);
        assert_int_equal(p11_uri_read_pin(&u, &pin), -ENOENT);
        unlink(path);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc7512_examples),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_pin_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
