/* test_s3_parts.c: the parts of the S3 client and of the S3 backup destination that need no
 * server: SigV4 URI encoding, S3 times, the client's refusal of bad settings, the answers'
 * readers (an Error, a listing, a DTD refused), and the [backup] s3_* settings with their
 * per-bucket overrides and s3:// URLs. The protocol itself is tested against a real S3 server
 * (tests/integration/test_s3.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backup/dest.h"
#include "s3/s3_internal.h"

static void test_uri_encode(void **state) {
        struct buf b;
        buf_init(&b, 1024);
        assert_int_equal(s3_uri_encode(&b, "packs/ab/K ey+é~._-", true), 0);
        assert_string_equal(buf_str(&b), "packs/ab/K%20ey%2B%C3%A9~._-");
        b.len = 0;
        assert_int_equal(s3_uri_encode(&b, "a/b=c&d", false), 0);
        assert_string_equal(buf_str(&b), "a%2Fb%3Dc%26d");
        buf_free(&b);
}

static void test_parse_time(void **state) {
        int64_t t;
        assert_int_equal(s3_parse_time("2026-12-04T19:07:19.000Z", &t), 0);
        assert_int_equal(t, 1796411239);
        assert_int_equal(s3_parse_time("1970-01-01T00:00:00Z", &t), 0);
        assert_int_equal(t, 0);
        assert_int_equal(s3_parse_time("2026-12-04T19:07:19", &t), -EINVAL);
        assert_int_equal(s3_parse_time("2026-12-04T19:07:19+01:00", &t), -EINVAL);
        assert_int_equal(s3_parse_time("2026-12-04T19:07:19.Z", &t), -EINVAL);
        assert_int_equal(s3_parse_time("2026-13-04T19:07:19Z", &t), -EINVAL);
        assert_int_equal(s3_parse_time("1969-12-31T23:59:59Z", &t), -EINVAL);
}

static void test_client_refuses_bad_settings(void **state) {
        struct s3_client *c = NULL;
        struct s3_config ok = {
                .endpoint = "http://127.0.0.1:9",
                .bucket = "bkt",
                .access_key = "AK",
                .secret_key = "SK",
                .path_style = true,
        };
        struct s3_config x;

        assert_int_equal(s3_client_new(&ok, &c), 0);
        assert_non_null(c);
        assert_string_equal(s3_client_error(c), "no error");
        s3_client_free(c);
        c = NULL;
        x = ok;
        x.endpoint = "ftp://h";
        assert_int_equal(s3_client_new(&x, &c), -EINVAL);
        x = ok;
        x.bucket = "Upper";
        assert_int_equal(s3_client_new(&x, &c), -EINVAL);
        x = ok;
        x.bucket = "with.dot";
        x.path_style = false; /* no dots in virtual-host style: TLS names */
        assert_int_equal(s3_client_new(&x, &c), -EINVAL);
        x = ok;
        x.access_key = "A:K"; /* would split the user:password pair */
        assert_int_equal(s3_client_new(&x, &c), -EINVAL);
        x = ok;
        x.secret_key = NULL;
        assert_int_equal(s3_client_new(&x, &c), -EINVAL);
        x = ok;
        x.endpoint = "http://user@host";
        assert_int_equal(s3_client_new(&x, &c), -EINVAL);
        assert_null(c);
}

static int count_keys(const char *key, const struct s3_object_info *info, void *ud) {
        if (strcmp(key, "a&b") == 0) {
                assert_int_equal(info->size, 12);
                assert_int_equal(info->last_modified, 1796411239);
                assert_string_equal(info->etag, "abc");
        }
        (*(int *) ud)++;
        return 0;
}

static void test_xml_readers(void **state) {
        static const char err[] = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
                                  "<Message>The request\nsignature</Message><StringToSign>x</StringToSign></Error>";
        static const char list[] = "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                                   "<IsTruncated>true</IsTruncated><NextContinuationToken>tok/=</NextContinuationToken>"
                                   "<Contents><Key>a&amp;b</Key><LastModified>2026-12-04T19:07:19.000Z</LastModified>"
                                   "<ETag>&quot;abc&quot;</ETag><Size>12</Size></Contents>"
                                   "<Contents><Key>c</Key><LastModified>2026-12-04T19:07:19Z</LastModified>"
                                   "<Size>0</Size></Contents></ListBucketResult>";
        static const char dtd[] = "<!DOCTYPE Error [<!ENTITY x \"y\">]><Error><Code>&x;</Code></Error>";
        char code[64], msg[256];
        bool truncated = false;
        char *token = NULL;
        int n = 0;

        assert_int_equal(s3_xml_error((const uint8_t *) err, sizeof err - 1, code, msg), 0);
        assert_string_equal(code, "SignatureDoesNotMatch");
        assert_string_equal(msg, "The request signature"); /* one line */
        assert_int_equal(s3_xml_error((const uint8_t *) dtd, sizeof dtd - 1, code, msg), -EBADMSG);
        assert_int_equal(s3_xml_error((const uint8_t *) "<html/>", 7, code, msg), -EBADMSG);
        assert_int_equal(s3_xml_list((const uint8_t *) list, sizeof list - 1, count_keys, &n, &truncated, &token), 0);
        assert_int_equal(n, 2);
        assert_true(truncated);
        assert_string_equal(token, "tok/=");
        free(token);
}

static void test_dest_settings(void **state) {
        struct backup_dest_conf c;
        struct backup_dest *d = NULL;

        backup_dest_conf_init(&c);
        assert_int_equal(backup_dest_conf_set(&c, "destination", "/x"), 0); /* not an S3 setting */
        assert_int_equal(backup_dest_conf_set(&c, "s3_endpoint", "http://127.0.0.1:9"), 1);
        assert_int_equal(backup_dest_conf_set(&c, "s3_endpoint", "ftp://x"), -EINVAL);
        assert_int_equal(backup_dest_conf_set(&c, "s3_path_style", "maybe"), -EINVAL);
        assert_int_equal(backup_dest_conf_set(&c, "s3_path_style", "true"), 1);
        assert_int_equal(backup_dest_conf_set(&c, "s3_part_size_mib", "4"), -EINVAL); /* under 5 MiB */
        assert_int_equal(backup_dest_conf_set(&c, "s3_part_size_mib", "8"), 1);
        assert_int_equal(backup_dest_conf_set(&c, "s3_nonsense", "1"), -EINVAL);
        assert_int_equal(backup_dest_conf_set(&c, "object_lock", "forever"), -EINVAL);
        assert_int_equal(backup_dest_conf_set(&c, "object_lock", "compliance"), 1);
        assert_int_equal(backup_dest_conf_set(&c, "object_lock_days", "0"), -EINVAL);
        assert_int_equal(backup_dest_conf_set(&c, "object_lock_keyring_days", "30"), 1);
        assert_int_equal(backup_dest_conf_set(&c, "s3_region[other-bucket]", "fr-par"), 1);
        assert_int_equal(backup_dest_conf_set(&c, "s3_region[]", "fr-par"), -EINVAL);
        assert_int_equal(backup_dest_conf_set(&c, "s3_region[x", "fr-par"), -EINVAL);
        assert_int_equal(c.all.path_style, 1);
        assert_int_equal(c.all.part_size, 8 << 20);
        assert_int_equal(c.all.lock_mode, 2);
        assert_int_equal(c.all.keyring_lock_days, 30);
        assert_int_equal(c.all.lock_days, -1);
        assert_int_equal(c.n_bucket, 1);
        assert_string_equal(c.bucket[0].bucket, "other-bucket");
        assert_string_equal(c.bucket[0].s.region, "fr-par");
        assert_null(c.all.region);

        /* credentials: half of them from the configuration is refused */
        assert_int_equal(backup_dest_conf_set(&c, "s3_access_key_id", "AK"), 1);
        assert_int_equal(backup_dest_s3_open("s3://bucket/prefix", &c, &d), -ENOKEY);
        assert_int_equal(backup_dest_conf_set(&c, "s3_secret_key_file", "/nonexistent/secret"), 1);
        assert_int_equal(backup_dest_s3_open("s3://bucket/prefix", &c, &d), -ENOKEY);
        /* URLs */
        assert_int_equal(backup_dest_s3_open("s3://ab/prefix", &c, &d), -EINVAL);
        assert_int_equal(backup_dest_s3_open("s3://bucket/../up", &c, &d), -EINVAL);
        assert_int_equal(backup_dest_s3_open("s3://bucket/a//b", &c, &d), -EINVAL);
        assert_int_equal(backup_dest_open_conf("s4://bucket", false, &c, &d), -EINVAL);
        assert_null(d);
        backup_dest_conf_clear(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_uri_encode),
                cmocka_unit_test(test_parse_time),
                cmocka_unit_test(test_client_refuses_bad_settings),
                cmocka_unit_test(test_xml_readers),
                cmocka_unit_test(test_dest_settings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
