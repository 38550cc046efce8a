/* tsr_check.c: RFC 3161 reply and token verification with OpenSSL's TS_VERIFY_CTX. */
#include "tsr_check.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

static void say(FILE *out, bool ok, const char *fmt, ...) _printf_(3, 4);
static void say(FILE *out, bool ok, const char *fmt, ...) {
        va_list ap;
        if (!out)
                return;
        fputs(ok ? "ok   " : "FAIL ", out);
        va_start(ap, fmt);
        vfprintf(out, fmt, ap);
        va_end(ap);
        fputc('\n', out);
}

/* Records the first failure, prints it, returns -EBADMSG. */
static int fail(FILE *out, struct tsr_check_result *res, const char *check, const char *why) {
        size_t n = strlen(check);
        if (n > sizeof res->reason - 3)
                n = sizeof res->reason - 3;
        memcpy(res->reason, check, n);
        memcpy(res->reason + n, ": ", 2);
        size_t w = strnlen(why, sizeof res->reason - n - 3);
        memcpy(res->reason + n + 2, why, w);
        res->reason[n + 2 + w] = 0;
        say(out, false, "%s: %s", check, why);
        return -EBADMSG;
}

/* The OpenSSL error queue as one line (its deepest reason and data), then cleared. */
static void openssl_reason(char *buf, size_t size) {
        const char *data = NULL;
        int flags = 0;
        unsigned long e, last = 0;
        const char *last_data = NULL;
        while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
                if (!last || (data && *data && (flags & ERR_TXT_STRING))) {
                        last = e;
                        last_data = data && *data && (flags & ERR_TXT_STRING) ? data : NULL;
                }
        }
        if (!last) {
                snprintf(buf, size, "rejected");
                return;
        }
        const char *reason = ERR_reason_error_string(last);
        snprintf(buf, size, "%s%s%s", reason ? reason : "rejected", last_data ? ": " : "", last_data ? last_data : "");
        ERR_clear_error();
}

static int64_t asn1_seconds(const ASN1_GENERALIZEDTIME *t) {
        struct tm tm;
        if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
                return -1;
        return (int64_t) timegm(&tm);
}

static void print_time(char *buf, size_t size, int64_t t) {
        time_t tt = (time_t) t;
        struct tm tm;
        if (t < 0 || !gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "(unreadable)");
}

static STACK_OF(X509) * load_certs(const char *path, const char *pem, int *ret_n) {
        BIO *b = path ? BIO_new_file(path, "r") : BIO_new_mem_buf(pem, -1);
        if (!b)
                return NULL;
        STACK_OF(X509) *sk = sk_X509_new_null();
        X509 *x;
        while (sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
                if (!sk_X509_push(sk, x)) {
                        X509_free(x);
                        break;
                }
        BIO_free(b);
        ERR_clear_error();
        *ret_n = sk ? sk_X509_num(sk) : 0;
        return sk;
}

static int check_token(PKCS7 *tok, BIO *data, const struct tsr_check_options *o, FILE *out,
                       struct tsr_check_result *res) {
        char why[256], when[32], subject[256];
        int r = 0;
        TS_TST_INFO *tst = PKCS7_to_TS_TST_INFO(tok);
        if (!tst) {
                ERR_clear_error();
                BIO_free(data);
                return fail(out, res, "token", "not a time-stamp token (no TSTInfo inside)");
        }
        res->gen_time = asn1_seconds(TS_TST_INFO_get_time(tst));
        print_time(when, sizeof when, res->gen_time);
        const TS_MSG_IMPRINT *mi = TS_TST_INFO_get_msg_imprint(tst);
        const X509_ALGOR *alg = TS_MSG_IMPRINT_get_algo((TS_MSG_IMPRINT *) mi);
        const ASN1_OBJECT *aobj = NULL;
        X509_ALGOR_get0(&aobj, NULL, NULL, alg);
        char algname[64] = "?", policy[128] = "?";
        OBJ_obj2txt(algname, sizeof algname, aobj, 0);
        OBJ_obj2txt(policy, sizeof policy, TS_TST_INFO_get_policy_id(tst), 1);
        BIGNUM *sn = ASN1_INTEGER_to_BN(TS_TST_INFO_get_serial(tst), NULL);
        char *snhex = sn ? BN_bn2hex(sn) : NULL;
        say(out, true, "token: TSTInfo genTime %s, serial %s, policy %s, imprint %s", when, snhex ? snhex : "?", policy,
            algname);
        OPENSSL_free(snhex);
        BN_free(sn);
        if (res->gen_time < 0) {
                TS_TST_INFO_free(tst);
                BIO_free(data);
                return fail(out, res, "token", "unreadable genTime");
        }

        /* 1. the CMS signature, the ESS signing-certificate binding and the chain */
        X509_STORE *store = X509_STORE_new();
        int n_ca = 0, n_untrusted = 0;
        STACK_OF(X509) *cas = o->ca_file || o->ca_pem ? load_certs(o->ca_file, o->ca_pem, &n_ca) : NULL;
        for (int i = 0; store && i < n_ca; i++)
                X509_STORE_add_cert(store, sk_X509_value(cas, i));
        sk_X509_pop_free(cas, X509_free);
        if (!store || n_ca == 0) {
                X509_STORE_free(store);
                TS_TST_INFO_free(tst);
                BIO_free(data);
                snprintf(res->reason, sizeof res->reason, "no certificate in %s",
                         o->ca_file ? o->ca_file : "the given chain");
                return -EINVAL;
        }
        X509_VERIFY_PARAM *vp = X509_STORE_get0_param(store);
        /* a trusted intermediate (a CA file holding it) is an anchor, as the user said */
        X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_PARTIAL_CHAIN);
        if (!o->at_now)
                X509_VERIFY_PARAM_set_time(vp, (time_t) res->gen_time);
        STACK_OF(X509) *untrusted = o->untrusted_file || o->untrusted_pem
                                            ? load_certs(o->untrusted_file, o->untrusted_pem, &n_untrusted)
                                            : NULL;
        TS_VERIFY_CTX *ctx = TS_VERIFY_CTX_new();
        if (!ctx) {
                X509_STORE_free(store);
                sk_X509_pop_free(untrusted, X509_free);
                TS_TST_INFO_free(tst);
                BIO_free(data);
                return -ENOMEM;
        }
        TS_VERIFY_CTX_set_flags(ctx, TS_VFY_VERSION | TS_VFY_SIGNATURE);
        TS_VERIFY_CTX_set_store(ctx, store); /* the context owns it now */
        if (untrusted)
                TS_VERIFY_CTX_set_certs(ctx, untrusted);
        ERR_clear_error();
        int ok = TS_RESP_verify_token(ctx, tok) == 1;
        if (!ok)
                openssl_reason(why, sizeof why);
        STACK_OF(X509) *embedded = PKCS7_get0_signers(tok, untrusted, 0);
        ERR_clear_error();
        X509 *signer = embedded && sk_X509_num(embedded) == 1 ? sk_X509_value(embedded, 0) : NULL;
        if (signer)
                X509_NAME_oneline(X509_get_subject_name(signer), subject, sizeof subject);
        else
                snprintf(subject, sizeof subject, "(not found)");
        sk_X509_free(embedded);
        TS_VERIFY_CTX_free(ctx);
        if (!ok) {
                TS_TST_INFO_free(tst);
                BIO_free(data);
                return fail(out, res, "signature and TSA certificate chain", why);
        }
        say(out, true, "signature and TSA certificate chain (signer %s, checked at %s, trusted: %s)", subject,
            o->at_now ? "the current time" : "genTime", o->ca_file ? o->ca_file : "the given chain");

        /* 2. the imprint: the hash of the data */
        ctx = TS_VERIFY_CTX_new();
        if (!ctx) {
                TS_TST_INFO_free(tst);
                BIO_free(data);
                return -ENOMEM;
        }
        if (data) {
                TS_VERIFY_CTX_set_flags(ctx, TS_VFY_DATA);
                TS_VERIFY_CTX_set_data(ctx, data); /* owned by the context */
        } else {
                unsigned char *d = OPENSSL_memdup(o->digest, o->digest_len);
                if (!d) {
                        TS_VERIFY_CTX_free(ctx);
                        TS_TST_INFO_free(tst);
                        return -ENOMEM;
                }
                TS_VERIFY_CTX_set_flags(ctx, TS_VFY_IMPRINT);
                TS_VERIFY_CTX_set_imprint(ctx, d, (long) o->digest_len); /* owned by the context */
        }
        ERR_clear_error();
        ok = TS_RESP_verify_token(ctx, tok) == 1;
        if (!ok)
                openssl_reason(why, sizeof why);
        TS_VERIFY_CTX_free(ctx);
        TS_TST_INFO_free(tst);
        if (!ok)
                return fail(out, res, "message imprint",
                            strcmp(why, "message imprint mismatch") == 0 ? "the hash is not the one time-stamped"
                                                                         : why);
        say(out, true, "message imprint: the %s %s is the one time-stamped", algname, data ? "of the data" : "given");
        return r;
}

int tsr_check_token(const uint8_t *der, size_t len, BIO *data, const struct tsr_check_options *o, FILE *out,
                    struct tsr_check_result *ret) {
        if (!der || !o || !ret || !data == !o->digest) {
                BIO_free(data);
                return -EINVAL;
        }
        *ret = (struct tsr_check_result){ .gen_time = -1 };
        const unsigned char *p = der;
        PKCS7 *tok = len <= TSR_MAX_SIZE ? d2i_PKCS7(NULL, &p, (long) len) : NULL;
        ERR_clear_error();
        if (!tok || p != der + len) {
                PKCS7_free(tok);
                BIO_free(data);
                return fail(out, ret, "token", tok ? "data after the DER token" : "not a DER CMS ContentInfo");
        }
        int r = check_token(tok, data, o, out, ret);
        PKCS7_free(tok);
        return r;
}

static const char *const failure_names[] = {
        [0] = "badAlg",
        [2] = "badRequest",
        [5] = "badDataFormat",
        [14] = "timeNotAvailable",
        [15] = "unacceptedPolicy",
        [16] = "unacceptedExtension",
        [17] = "addInfoNotAvailable",
        [25] = "systemFailure",
};

int tsr_check_reply(const uint8_t *der, size_t len, BIO *data, const struct tsr_check_options *o, FILE *out,
                    struct tsr_check_result *ret) {
        if (!der || !o || !ret || !data == !o->digest) {
                BIO_free(data);
                return -EINVAL;
        }
        *ret = (struct tsr_check_result){ .gen_time = -1 };
        const unsigned char *p = der;
        TS_RESP *resp = len <= TSR_MAX_SIZE ? d2i_TS_RESP(NULL, &p, (long) len) : NULL;
        ERR_clear_error();
        if (!resp) {
                BIO_free(data);
                return fail(out, ret, "reply", "not a DER TimeStampResp (truncated or malformed)");
        }
        if (p != der + len) {
                TS_RESP_free(resp);
                BIO_free(data);
                return fail(out, ret, "reply", "data after the DER TimeStampResp");
        }
        say(out, true, "reply: a DER TimeStampResp of %zu bytes, nothing after it", len);
        TS_STATUS_INFO *si = TS_RESP_get_status_info(resp);
        long status = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(si));
        if (status != 0 && status != 1) {
                char why[200];
                const STACK_OF(ASN1_UTF8STRING) *text = TS_STATUS_INFO_get0_text(si);
                const ASN1_BIT_STRING *fi = TS_STATUS_INFO_get0_failure_info(si);
                const char *fname = NULL;
                for (size_t i = 0; fi && i < ELEMENTSOF(failure_names); i++)
                        if (failure_names[i] && ASN1_BIT_STRING_get_bit(fi, (int) i))
                                fname = failure_names[i];
                const ASN1_UTF8STRING *t =
                        text && sk_ASN1_UTF8STRING_num(text) > 0 ? sk_ASN1_UTF8STRING_value(text, 0) : NULL;
                snprintf(why, sizeof why, "the TSA did not grant it (status %ld%s%s%s%.*s%s)", status,
                         fname ? ", failure " : "", fname ? fname : "", t ? ", \"" : "", t ? ASN1_STRING_length(t) : 0,
                         t ? (const char *) ASN1_STRING_get0_data(t) : "", t ? "\"" : "");
                TS_RESP_free(resp);
                BIO_free(data);
                return fail(out, ret, "status", why);
        }
        PKCS7 *tok = TS_RESP_get_token(resp);
        if (!tok) {
                TS_RESP_free(resp);
                BIO_free(data);
                return fail(out, ret, "status", "granted, but the reply carries no token");
        }
        say(out, true, "status: %s", status == 0 ? "granted" : "granted with modifications");
        int r = check_token(tok, data, o, out, ret);
        TS_RESP_free(resp);
        return r;
}
