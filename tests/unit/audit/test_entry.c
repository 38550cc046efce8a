/* test_entry.c: canonical JSON audit entries: serialisation, strict parsing, sealed details. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit/entry.h"
#include "buf.h"

static const uint8_t key1[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t key2[32] = { 99 };

static char *json_string(const char *s, size_t n, int *ret) {
        struct buf b;
        buf_init(&b, 0);
        *ret = audit_json_append_string(&b, s, n);
        return buf_steal(&b);
}

static void check_string(const char *in, const char *want) {
        int r;
        char *got = json_string(in, strlen(in), &r);
        assert_int_equal(r, 0);
        assert_string_equal(got, want);
        free(got);
}

static void test_string_escapes(void **state) {
        (void) state;
        /* RFC 8785 3.2.2.2 example string, after JSON decoding */
        check_string("\xe2\x82\xac$\x0f\nA'B\"\\\\\"/", "\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"");
        check_string("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
        check_string("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
        check_string("a/b", "\"a/b\"");
        /* non-ASCII stays as UTF-8, including U+2028 and astral characters */
        check_string("caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80\"");
        check_string("", "\"\"");

        const char *bad[] = { "\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80", "\xff", "\x80" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                int r;
                free(json_string(bad[i], strlen(bad[i]), &r));
                assert_int_equal(r, -EINVAL);
        }
        int r;
        free(json_string("a\0b", 3, &r));
        assert_int_equal(r, -EINVAL);
}

static struct audit_entry sample(void) {
        return (struct audit_entry){
                .time = "2026-11-27T11:22:33.123Z",
                .org = "org_01",
                .actor = "usr_7",
                .action = "document.create",
                .object = "doc_42",
                .object_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                .request_id = "req-\"x\"\n",
        };
}

static const char sample_json[] =
        "{\"action\":\"document.create\",\"actor\":\"usr_7\",\"object\":\"doc_42\","
        "\"object_sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
        "\"org\":\"org_01\",\"request_id\":\"req-\\\"x\\\"\\n\",\"time\":\"2026-11-27T11:22:33.123Z\"}";

static void test_build_canonical(void **state) {
        (void) state;
        struct audit_entry e = sample();
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), 0);
        assert_string_equal(buf_str(&b), sample_json);

        /* optional fields left out entirely */
        e.object = NULL;
        e.object_sha256 = NULL;
        buf_clear(&b);
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), 0);
        assert_string_equal(buf_str(&b), "{\"action\":\"document.create\",\"actor\":\"usr_7\",\"org\":\"org_01\","
                                         "\"request_id\":\"req-\\\"x\\\"\\n\",\"time\":\"2026-11-27T11:22:33.123Z\"}");

        char t[32];
        audit_entry_format_time(INT64_C(1795778553123), t);
        assert_string_equal(t, "2026-11-27T11:22:33.123Z");
}

static void test_build_rejects(void **state) {
        (void) state;
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        struct audit_entry e;

        e = sample(), e.actor = NULL;
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        e = sample(), e.org = "";
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        const char *times[] = { "2026-11-27T11:22:33Z", "2026-11-27T11:22:33.123+01:00", "2026-11-27",
                                "2026-13-01T00:00:00.000Z", "2026-11-27 11:22:33.123Z", "yesterday" };
        for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
                e = sample(), e.time = (char *) times[i];
                assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        }
        e = sample(), e.object_sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        e = sample(), e.action = "Document Create";
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        e = sample(), e.org = "\xc3";
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        e = sample(), e.details = "not base64!";
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        e = sample();
        assert_int_equal(audit_entry_build(&e, key1, NULL, &b), -EINVAL);
        char *big = malloc(AUDIT_ENTRY_FIELD_MAX + 2);
        assert_non_null(big);
        memset(big, 'a', AUDIT_ENTRY_FIELD_MAX + 1);
        big[AUDIT_ENTRY_FIELD_MAX + 1] = 0;
        e = sample(), e.actor = big;
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -E2BIG);
        free(big);
        assert_int_equal(b.len, 0); /* nothing appended on failure */
}

static void test_parse_roundtrip(void **state) {
        (void) state;
        struct audit_entry p = {};
        assert_int_equal(audit_entry_parse(sample_json, strlen(sample_json), &p), 0);
        assert_string_equal(p.time, "2026-11-27T11:22:33.123Z");
        assert_string_equal(p.org, "org_01");
        assert_string_equal(p.action, "document.create");
        assert_string_equal(p.request_id, "req-\"x\"\n");
        assert_null(p.details);
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        assert_int_equal(audit_entry_build(&p, NULL, NULL, &b), 0);
        assert_string_equal(buf_str(&b), sample_json);
        audit_entry_clear(&p);
        assert_null(p.org);
}

/* Replaces the first occurrence of from with to in sample_json and expects a rejection. */
static void expect_reject_edit(const char *from, const char *to) {
        const char *at = strstr(sample_json, from);
        assert_non_null(at);
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        assert_int_equal(buf_append(&b, sample_json, (size_t) (at - sample_json)), 0);
        assert_int_equal(buf_append_str(&b, to), 0);
        assert_int_equal(buf_append_str(&b, at + strlen(from)), 0);
        struct audit_entry p = {};
        int r = audit_entry_parse((const char *) b.data, b.len, &p);
        if (r != -EBADMSG)
                fail_msg("accepted or wrong error %d for: %s", r, buf_str(&b));
        assert_null(p.org); /* ret untouched */
}

static void test_parse_rejects(void **state) {
        (void) state;
        expect_reject_edit("{", "{ ");                                    /* whitespace */
        expect_reject_edit(",\"org\"", " ,\"org\"");
        expect_reject_edit("\"doc_42\"", "\"doc\\/42\"");                 /* needless escape of / */
        expect_reject_edit("\"usr_7\"", "\"us\\u0072_7\"");                /* needless \u escape */
        expect_reject_edit("\\n\"", "\\u000a\"");                          /* long form of \n */
        expect_reject_edit("\"usr_7\"", "\"usr_\\u001F\"");                 /* upper-case hex */
        expect_reject_edit("\"action\":\"document.create\",\"actor\":\"usr_7\"",
                           "\"actor\":\"usr_7\",\"action\":\"document.create\""); /* key order */
        expect_reject_edit("\"org\":\"org_01\",", "\"org\":\"org_01\",\"org\":\"org_01\","); /* duplicate */
        expect_reject_edit("\"org\":\"org_01\",", "\"org\":\"org_01\",\"owner\":\"x\",");    /* unknown */
        expect_reject_edit("\"actor\":\"usr_7\",", "");                     /* missing required */
        expect_reject_edit("\"doc_42\"", "42");                             /* number value */
        expect_reject_edit("\"doc_42\"", "\"\"");                           /* empty value */
        expect_reject_edit(".123Z", "Z");                                   /* time without ms */
        expect_reject_edit("}", "}x");                                      /* trailing bytes */
        expect_reject_edit("}", "");                                        /* truncated */
        expect_reject_edit("\"usr_7\"", "\"usr\xc3\xa9\x80\"");                  /* bad UTF-8 */
        expect_reject_edit("\"usr_7\"", "\"usr\\u0000\"");                   /* NUL */
        expect_reject_edit("\"usr_7\"", "\"usr\\ud800\"");                   /* lone surrogate */
        expect_reject_edit("\"usr_7\"", "\"usr\t\"");                        /* raw control char */
        expect_reject_edit("\"org\":", "\"details\":\"AAAA\",\"org\":");     /* details too short */

        struct audit_entry p = {};
        assert_int_equal(audit_entry_parse("{}", 2, &p), -EBADMSG);
        assert_int_equal(audit_entry_parse("", 0, &p), -EBADMSG);
        assert_int_equal(audit_entry_parse("[]", 2, &p), -EBADMSG);

        /* the smallest valid entry is accepted */
        const char *ok = "{\"action\":\"key.rotate\",\"actor\":\"sys\",\"org\":\"o\",\"request_id\":\"r\","
                         "\"time\":\"2026-01-01T00:00:00.000Z\"}";
        assert_int_equal(audit_entry_parse(ok, strlen(ok), &p), 0);
        assert_null(p.object);
        audit_entry_clear(&p);
        /* non-ASCII and \u escapes of control characters are canonical and accepted */
        const char *ok2 = "{\"action\":\"document.read\",\"actor\":\"\xc3\xa9\\u0001\",\"org\":\"o\",\"request_id\":\"r\","
                          "\"time\":\"2026-01-01T00:00:00.000Z\"}";
        assert_int_equal(audit_entry_parse(ok2, strlen(ok2), &p), 0);
        assert_string_equal(p.actor, "\xc3\xa9\x01");
        audit_entry_clear(&p);
}

static void test_details(void **state) {
        (void) state;
        const char *plain = "{\"email\":\"jean.dupont@example.fr\",\"ip\":\"192.0.2.7\"}";
        struct audit_entry e = sample();
        _cleanup_buf_ struct buf b, out;
        buf_init(&b, 0);
        buf_init(&out, 0);
        assert_int_equal(audit_entry_build(&e, key1, plain, &b), 0);
        assert_null(strstr(buf_str(&b), "dupont"));
        assert_non_null(strstr(buf_str(&b), "\"details\":\""));

        struct audit_entry p = {};
        assert_int_equal(audit_entry_parse((const char *) b.data, b.len, &p), 0);
        assert_non_null(p.details);
        assert_int_equal(audit_entry_open_details(&p, key1, &out), 0);
        assert_int_equal(out.len, strlen(plain));
        assert_memory_equal(out.data, plain, out.len);

        buf_clear(&out);
        assert_int_equal(audit_entry_open_details(&p, key2, &out), -EBADMSG);
        assert_int_equal(out.len, 0);

        /* the details are bound to the rest of the entry */
        char *saved = p.actor;
        p.actor = "usr_8";
        assert_int_equal(audit_entry_open_details(&p, key1, &out), -EBADMSG);
        p.actor = saved;
        /* a flipped ciphertext byte fails */
        p.details[20] = p.details[20] == 'A' ? 'B' : 'A';
        assert_int_equal(audit_entry_open_details(&p, key1, &out), -EBADMSG);
        audit_entry_clear(&p);

        /* two seals of the same details differ (random nonce) */
        _cleanup_buf_ struct buf b2;
        buf_init(&b2, 0);
        assert_int_equal(audit_entry_build(&e, key1, plain, &b2), 0);
        assert_true(b.len == b2.len && memcmp(b.data, b2.data, b.len) != 0);

        e = sample();
        assert_int_equal(audit_entry_open_details(&e, key1, &out), -ENOENT);
        /* an empty details text still seals and opens */
        buf_clear(&b);
        assert_int_equal(audit_entry_build(&e, key1, "", &b), 0);
        assert_int_equal(audit_entry_parse((const char *) b.data, b.len, &p), 0);
        assert_int_equal(audit_entry_open_details(&p, key1, &out), 0);
        assert_int_equal(out.len, 0);
        audit_entry_clear(&p);
        buf_free_secure(&out);
}

/* The record MAC field: parsed and re-serialised in its sorted place, outside the details' AAD
 * and outside its own input. */
static void test_mac_field(void **state) {
        (void) state;
        const char *mac = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        struct audit_entry e = sample(), p = {};
        _cleanup_buf_ struct buf b, with, in, in2, out;
        buf_init(&b, 0);
        buf_init(&with, 0);
        buf_init(&in, 0);
        buf_init(&in2, 0);
        buf_init(&out, 0);
        assert_int_equal(audit_entry_build(&e, key1, "{\"name\":\"x\"}", &b), 0);
        assert_int_equal(audit_entry_parse((const char *) b.data, b.len, &p), 0);
        assert_int_equal(audit_entry_mac_input(&p, &in), 0);
        assert_int_equal(in.len, b.len); /* without a mac the input is the entry itself */
        assert_memory_equal(in.data, b.data, b.len);
        p.mac = strdup(mac);
        assert_int_equal(audit_entry_build(&p, NULL, NULL, &with), 0);
        assert_non_null(strstr(buf_str(&with), "\",\"mac\":\"0011"));
        assert_true(strstr(buf_str(&with), "\"details\"") < strstr(buf_str(&with), "\"mac\"") &&
                    strstr(buf_str(&with), "\"mac\"") < strstr(buf_str(&with), "\"object\""));
        audit_entry_clear(&p);
        assert_int_equal(audit_entry_parse((const char *) with.data, with.len, &p), 0);
        assert_string_equal(p.mac, mac);
        assert_int_equal(audit_entry_mac_input(&p, &in2), 0);
        assert_int_equal(in2.len, in.len); /* the mac is not part of its own input */
        assert_memory_equal(in2.data, in.data, in.len);
        assert_int_equal(audit_entry_open_details(&p, key1, &out), 0); /* nor of the AAD */
        audit_entry_clear(&p);
        /* a malformed mac is refused */
        e = sample(), e.mac = "00112233";
        buf_clear(&b);
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        e.mac = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
        assert_int_equal(audit_entry_build(&e, NULL, NULL, &b), -EINVAL);
        buf_free_secure(&out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mac_field),
                cmocka_unit_test(test_string_escapes), cmocka_unit_test(test_build_canonical),
                cmocka_unit_test(test_build_rejects),  cmocka_unit_test(test_parse_roundtrip),
                cmocka_unit_test(test_parse_rejects),  cmocka_unit_test(test_details),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
