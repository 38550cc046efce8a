/* test_seal.c: the signer's seal and TSA requests, through the real (sandboxed) signer process:
 * the CA and TSA pairs it makes at its first start, an organisation's seal key made on request
 * from inside its sandbox and loaded again after a restart, its refusals (a signing time out of
 * accuracy, malformed requests of each new type), the TSA's rejections and the server-side
 * checks of a reply (cades_add_timestamp). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/ts.h>

#include "buf.h"
#include "fileio.h"
#include "seal/cades.h"
#include "seal/pki.h"
#include "seal/signer.h"
#include "seal/tsa.h"
#include "timeutil.h"

#define ORIGIN "vault.example/log"
#define ORG "0123456789abcdef0123456789abcdef"

struct fixture {
        char dir[64];
        char *keys;
        struct signer *s;
        X509_STORE *trust;
};

static X509_STORE *trust_of(struct signer *s) {
        _cleanup_free_ char *pem = NULL;
        X509_STORE *st = X509_STORE_new();
        X509 *x, *last = NULL;
        assert_int_equal(signer_tsa_chain(s, &pem), 0);
        BIO *bio = BIO_new_mem_buf(pem, -1);
        int n = 0;
        while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
                X509_free(last);
                last = x;
                n++;
        }
        assert_int_equal(n, 2); /* TSA certificate, CA */
        assert_int_equal(X509_STORE_add_cert(st, last), 1);
        X509_free(last);
        BIO_free(bio);
        return st;
}

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        memcpy(f->dir, "/tmp/coffre-seal-XXXXXX", 24);
        assert_non_null(mkdtemp(f->dir));
        f->keys = path_join(f->dir, "keys");
        assert_int_equal(signer_init_keys(f->keys, ORIGIN), 0);
        assert_int_equal(signer_start(f->keys, ORIGIN, &f->s), 0);
        f->trust = trust_of(f->s);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        signer_stop(f->s);
        X509_STORE_free(f->trust);
        rm_rf(f->dir);
        free(f->keys);
        free(f);
        return 0;
}

static mode_t mode_of(const char *dir, const char *name) {
        _cleanup_free_ char *p = path_join(dir, name);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        return st.st_mode & 0777;
}

static void test_first_start_makes_ca_and_tsa(void **state) {
        struct fixture *f = *state;
        assert_int_equal(mode_of(f->keys, PKI_CA_KEY), 0600);
        assert_int_equal(mode_of(f->keys, PKI_TSA_KEY), 0600);
        assert_int_equal(mode_of(f->keys, PKI_CA_CERT), 0644);
        _cleanup_free_ char *p = path_join(f->keys, PKI_TSA_CERT);
        FILE *fp = fopen(p, "re");
        assert_non_null(fp);
        X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
        fclose(fp);
        assert_non_null(x);
        /* critical extended key usage timeStamping, and nothing else */
        int crit = -1;
        EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
        assert_non_null(eku);
        assert_int_equal(crit, 1);
        assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
        assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_time_stamp);
        EXTENDED_KEY_USAGE_free(eku);
        X509_free(x);
}

static void test_seal_key_made_on_request(void **state) {
        struct fixture *f = *state;
        uint8_t digest[32], *der = NULL;
        size_t len = 0;
        _cleanup_free_ char *pem = NULL;

        memset(digest, 0x5a, sizeof digest);
        assert_int_equal(signer_seal(f->s, ORG, digest, now_ms(), &der, &len), -ENOKEY);
        /* made inside the sandbox: key 0600 and certificate in keys/ */
        assert_int_equal(signer_seal_chain(f->s, ORG, "Boulangerie Dupont SARL", &pem), 0);
        assert_non_null(strstr(pem, "BEGIN CERTIFICATE"));
        assert_int_equal(mode_of(f->keys, "seal-" ORG ".key"), 0600);
        assert_int_equal(signer_seal(f->s, ORG, digest, now_ms(), &der, &len), 0);
        assert_int_equal(cades_check(der, len, digest), 0);
        digest[0] ^= 1;
        assert_int_equal(cades_check(der, len, digest), -EBADMSG);
        free(der);

        /* a new signer loads it from its file, from inside its sandbox too */
        _cleanup_free_ char *pem2 = NULL;
        signer_stop(f->s);
        assert_int_equal(signer_start(f->keys, ORIGIN, &f->s), 0);
        assert_int_equal(signer_seal(f->s, ORG, digest, now_ms(), &der, &len), 0);
        free(der);
        assert_int_equal(signer_seal_chain(f->s, ORG, "another name", &pem2), 0);
        assert_string_equal(pem, pem2); /* the same certificate, not a new one */
}

static void test_seal_refusals(void **state) {
        struct fixture *f = *state;
        uint8_t digest[32] = { 0 }, *der = NULL, m[4 + 72];
        size_t len = 0;
        int32_t type;
        int status;
        _cleanup_free_ char *pem = NULL;

        assert_int_equal(signer_seal_chain(f->s, ORG, "Org", &pem), 0);
        /* signing time out of the accuracy (1 s by default) of the signer's own clock */
        assert_int_equal(signer_seal(f->s, ORG, digest, now_ms() - 10000, &der, &len), -ERANGE);
        assert_int_equal(signer_seal(f->s, ORG, digest, now_ms() + 10000, &der, &len), -ERANGE);
        assert_int_equal(signer_seal(f->s, "not-an-org", digest, now_ms(), &der, &len), -EINVAL);
        assert_int_equal(signer_seal_chain(f->s, ORG, "", &pem), -EINVAL);

        /* raw packets: wrong lengths, upper-case or non-hex ids, names with control characters */
        type = SIGNER_MSG_SEAL;
        memcpy(m, &type, 4);
        memcpy(m + 4, ORG, 32);
        memset(m + 36, 0, 40);
        assert_int_equal(signer_send_raw(f->s, m, sizeof m - 1, &status), 0);
        assert_int_equal(status, -EBADMSG);
        m[4] = 'A';
        assert_int_equal(signer_send_raw(f->s, m, sizeof m, &status), 0);
        assert_int_equal(status, -EBADMSG);
        type = SIGNER_MSG_SEAL_CERT;
        uint8_t c[4 + 32 + 5];
        memcpy(c, &type, 4);
        memcpy(c + 4, "fedcba9876543210fedcba9876543210", 32);
        memcpy(c + 36, "a\nb\x01z", 5);
        assert_int_equal(signer_send_raw(f->s, c, sizeof c, &status), 0);
        assert_int_equal(status, -EBADMSG);
        assert_int_equal(signer_send_raw(f->s, c, 4 + 32, &status), 0); /* no name */
        assert_int_equal(status, -EBADMSG);
        type = SIGNER_MSG_TSA_CERT;
        memcpy(c, &type, 4);
        assert_int_equal(signer_send_raw(f->s, c, 5, &status), 0);
        assert_int_equal(status, -EBADMSG);
        /* and it still answers */
        assert_int_equal(signer_seal(f->s, ORG, digest, now_ms(), &der, &len), 0);
        free(der);
}

/* status and failure-info bits of a DER TimeStampResp */
static long reply_status(const uint8_t *p, size_t n, int bit) {
        const unsigned char *q = p;
        TS_RESP *resp = d2i_TS_RESP(NULL, &q, (long) n);
        assert_non_null(resp);
        assert_ptr_equal(q, p + n);
        const TS_STATUS_INFO *si = TS_RESP_get_status_info(resp);
        long status = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(si));
        if (bit >= 0) {
                const ASN1_BIT_STRING *fi = TS_STATUS_INFO_get0_failure_info(si);
                assert_non_null(fi);
                assert_true(ASN1_BIT_STRING_get_bit(fi, bit));
                assert_null(TS_RESP_get_token(resp));
        }
        TS_RESP_free(resp);
        return status;
}

static void test_tsa_rejections(void **state) {
        struct fixture *f = *state;
        /* SEQUENCE { 1, SEQUENCE { sha256, OCTET STRING 32 } } with a nonce slot at the end */
        static const uint8_t head[] = { 0x30, 0x36, 0x02, 0x01, 0x01, 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                        0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
        uint8_t q[sizeof head + 32 + 2 + 21], *out = NULL;
        size_t n = 0, qlen = sizeof head + 32;

        memcpy(q, head, sizeof head);
        memset(q + sizeof head, 7, 32);
        assert_int_equal(signer_timestamp(f->s, q, qlen, &out, &n), 0);
        assert_int_equal(reply_status(out, n, -1), TS_STATUS_GRANTED);
        free(out);
        /* truncated */
        assert_int_equal(signer_timestamp(f->s, q, qlen - 1, &out, &n), 0);
        assert_int_equal(reply_status(out, n, TS_INFO_BAD_DATA_FORMAT), TS_STATUS_REJECTION);
        free(out);
        /* trailing byte */
        q[qlen] = 0;
        assert_int_equal(signer_timestamp(f->s, q, qlen + 1, &out, &n), 0);
        assert_int_equal(reply_status(out, n, TS_INFO_BAD_DATA_FORMAT), TS_STATUS_REJECTION);
        free(out);
        /* a 21-byte nonce (168 bits) */
        q[1] = 0x36 + 23;
        q[qlen] = 0x02;
        q[qlen + 1] = 21;
        memset(q + qlen + 2, 0x11, 21);
        assert_int_equal(signer_timestamp(f->s, q, sizeof q, &out, &n), 0);
        assert_int_equal(reply_status(out, n, TS_INFO_BAD_REQUEST), TS_STATUS_REJECTION);
        free(out);
        /* unknown algorithm: the OID's last byte changed (2.16.840.1.101.3.4.2.99) */
        q[1] = 0x36;
        q[19] = 99;
        assert_int_equal(signer_timestamp(f->s, q, qlen, &out, &n), 0);
        assert_int_equal(reply_status(out, n, TS_INFO_BAD_ALG), TS_STATUS_REJECTION);
        free(out);
        /* too large for the TSA: not even parsed */
        _cleanup_free_ uint8_t *big = calloc(1, TSA_REQUEST_MAX + 1);
        assert_non_null(big);
        assert_int_equal(signer_timestamp(f->s, big, TSA_REQUEST_MAX + 1, &out, &n), 0);
        assert_int_equal(reply_status(out, n, TS_INFO_BAD_DATA_FORMAT), TS_STATUS_REJECTION);
        free(out);
}

struct fake_tsa {
        struct signer *s;
        int mode; /* 0: pass through, 1: answer for another request, 2: corrupt the reply */
};

static int fake_tsa(void *ud, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
        struct fake_tsa *t = ud;
        uint8_t *p = NULL, other[sizeof(uint8_t) * 256];
        size_t n = 0;
        int r;

        if (t->mode == 1) {
                /* the same request with another imprint byte: a valid reply, for something else */
                assert_true(len <= sizeof other);
                memcpy(other, req, len);
                other[len - 20] ^= 0xff;
                r = signer_timestamp(t->s, other, len, &p, &n);
        } else
                r = signer_timestamp(t->s, req, len, &p, &n);
        if (r < 0)
                return r;
        if (t->mode == 2)
                p[n / 2] ^= 0x01;
        *ret = OPENSSL_memdup(p, n);
        *ret_len = n;
        free(p);
        return 0;
}

static void test_add_timestamp_checks_the_reply(void **state) {
        struct fixture *f = *state;
        uint8_t digest[32] = { 1 }, *bb = NULL, *bt = NULL;
        size_t bb_len = 0, bt_len = 0;
        _cleanup_free_ char *pem = NULL;
        struct fake_tsa t = { .s = f->s };
        struct cades_info info;

        assert_int_equal(signer_seal_chain(f->s, ORG, "Org", &pem), 0);
        assert_int_equal(signer_seal(f->s, ORG, digest, now_ms(), &bb, &bb_len), 0);
        assert_int_equal(cades_info(bb, bb_len, &info), 0);
        assert_string_equal(info.level, "B-B");
        assert_int_equal(info.timestamp_time, 0);
        assert_int_equal(cades_add_timestamp(bb, bb_len, fake_tsa, &t, f->trust, &bt, &bt_len, NULL), 0);
        assert_int_equal(cades_info(bt, bt_len, &info), 0);
        assert_string_equal(info.level, "B-T");
        assert_true(info.timestamp_time >= info.signing_time);
        assert_true(info.timestamp_time - info.signing_time < 5000);
        assert_int_equal(cades_check(bt, bt_len, digest), 0); /* the token is unsigned: B-B still holds */
        OPENSSL_free(bt);
        t.mode = 1;
        assert_int_equal(cades_add_timestamp(bb, bb_len, fake_tsa, &t, f->trust, &bt, &bt_len, NULL), -EBADMSG);
        t.mode = 2;
        assert_int_not_equal(cades_add_timestamp(bb, bb_len, fake_tsa, &t, f->trust, &bt, &bt_len, NULL), 0);
        /* a trust store without the vault's CA */
        X509_STORE *empty = X509_STORE_new();
        t.mode = 0;
        assert_int_equal(cades_add_timestamp(bb, bb_len, fake_tsa, &t, empty, &bt, &bt_len, NULL), -EBADMSG);
        X509_STORE_free(empty);
        free(bb);
}

static void test_seal_batch(void **state) {
        struct fixture *f = *state;
        uint8_t digest[32] = { 9 }, nonce[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, other[8] = { 8 };
        uint8_t *bb = NULL, *reply = NULL, *bt = NULL;
        size_t bb_len = 0, reply_len = 0, bt_len = 0;
        _cleanup_free_ char *pem = NULL;
        struct cades_info info;
        int status;

        assert_int_equal(signer_seal_timestamped(f->s, ORG, digest, now_ms(), nonce, &bb, &bb_len, &reply, &reply_len),
                         -ENOKEY);
        assert_int_equal(signer_seal_chain(f->s, ORG, "Org", &pem), 0);
        assert_int_equal(
                signer_seal_timestamped(f->s, ORG, digest, now_ms() - 10000, nonce, &bb, &bb_len, &reply, &reply_len),
                -ERANGE);
        assert_int_equal(signer_seal_timestamped(f->s, ORG, digest, now_ms(), nonce, &bb, &bb_len, &reply, &reply_len),
                         0);
        assert_int_equal(cades_attach_reply(bb, bb_len, digest, reply, reply_len, nonce, &bt, &bt_len, &info), 0);
        assert_string_equal(info.level, "B-T");
        assert_true(info.timestamp_time >= info.signing_time);
        OPENSSL_free(bt);
        /* another nonce, another digest: refused */
        assert_int_equal(cades_attach_reply(bb, bb_len, digest, reply, reply_len, other, &bt, &bt_len, NULL), -EBADMSG);
        digest[1] ^= 1;
        assert_int_equal(cades_attach_reply(bb, bb_len, digest, reply, reply_len, nonce, &bt, &bt_len, NULL), -EBADMSG);
        free(bb);
        free(reply);

        /* raw batches: a count of 0, too many, a length that is not count items */
        uint8_t m[4 + 4 + SIGNER_SEAL_ITEM] = { 0 };
        int32_t type = SIGNER_MSG_SEAL_BATCH;
        uint32_t count = 0;
        memcpy(m, &type, 4);
        memcpy(m + 4, &count, 4);
        assert_int_equal(signer_send_raw(f->s, m, 8, &status), 0);
        assert_int_equal(status, -EBADMSG);
        count = SIGNER_SEAL_BATCH_MAX + 1;
        memcpy(m + 4, &count, 4);
        assert_int_equal(signer_send_raw(f->s, m, sizeof m, &status), 0);
        assert_int_equal(status, -EBADMSG);
        count = 1;
        memcpy(m + 4, &count, 4);
        assert_int_equal(signer_send_raw(f->s, m, sizeof m - 1, &status), 0);
        assert_int_equal(status, -EBADMSG);
        /* one well-framed item with a bad organisation id: the batch answers, the item is refused */
        assert_int_equal(signer_send_raw(f->s, m, sizeof m, &status), 0);
        assert_int_equal(status, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_first_start_makes_ca_and_tsa, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seal_key_made_on_request, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seal_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tsa_rejections, setup, teardown),
                cmocka_unit_test_setup_teardown(test_add_timestamp_checks_the_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seal_batch, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
