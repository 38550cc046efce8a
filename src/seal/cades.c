/* cades.c: making (signer side) and completing and reading (server side) the CAdES seal of a
 * document. OpenSSL 3.0 has no "sign this digest" call for CMS: the SignerInfo is made with
 * CMS_PARTIAL, the message-digest attribute added by hand and the SignerInfo signed alone. */
#include "seal/cades.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ts.h>

int cades_sign(EVP_PKEY *key, X509 *cert, X509 *ca, const uint8_t digest[32], int64_t signing_time, uint8_t **ret,
               size_t *ret_len) {
        const unsigned flags = CMS_PARTIAL | CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP | CMS_CADES;
        CMS_ContentInfo *cms = NULL;
        CMS_SignerInfo *si;
        ASN1_TIME *st = NULL;
        unsigned char *der = NULL;
        int n, r = -EINVAL;

        if (!key || !cert || !digest || !ret || !ret_len)
                return -EINVAL;
        cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
        if (!cms)
                goto out;
        si = CMS_add1_signer(cms, cert, key, EVP_sha256(), flags);
        if (!si || (ca && CMS_add1_cert(cms, ca) != 1) || CMS_set_detached(cms, 1) != 1)
                goto out;
        st = ASN1_TIME_adj(NULL, (time_t) signing_time, 0, 0);
        if (!st ||
            CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType, V_ASN1_OBJECT, OBJ_nid2obj(NID_pkcs7_data), -1) !=
                    1 ||
            CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING, digest, 32) != 1 ||
            CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, st->type, st, -1) != 1)
                goto out;
        if (CMS_SignerInfo_sign(si) != 1)
                goto out;
        n = i2d_CMS_ContentInfo(cms, &der);
        if (n <= 0)
                goto out;
        *ret = der;
        *ret_len = (size_t) n;
        r = 0;
out:
        ERR_clear_error();
        ASN1_TIME_free(st);
        CMS_ContentInfo_free(cms);
        return r;
}

static CMS_ContentInfo *parse(const uint8_t *p, size_t len) {
        const unsigned char *q = p;
        CMS_ContentInfo *cms;

        if (!p || len == 0 || len > CADES_MAX)
                return NULL;
        cms = d2i_CMS_ContentInfo(NULL, &q, (long) len);
        if (cms && q != p + len) {
                CMS_ContentInfo_free(cms);
                return NULL;
        }
        return cms;
}

static CMS_SignerInfo *only_signer(CMS_ContentInfo *cms) {
        STACK_OF(CMS_SignerInfo) * sis;

        if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
                return NULL;
        sis = CMS_get0_SignerInfos(cms);
        return sk_CMS_SignerInfo_num(sis) == 1 ? sk_CMS_SignerInfo_value(sis, 0) : NULL;
}

int cades_check(const uint8_t *p, size_t len, const uint8_t digest[32]) {
        CMS_ContentInfo *cms = parse(p, len);
        CMS_SignerInfo *si = cms ? only_signer(cms) : NULL;
        static const int expected[] = { NID_pkcs9_contentType, NID_pkcs9_messageDigest, NID_pkcs9_signingTime,
                                        NID_id_smime_aa_signingCertificateV2 };
        int r = -EBADMSG;

        if (!si || CMS_signed_get_attr_count(si) != (int) ELEMENTSOF(expected))
                goto out;
        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                if (CMS_signed_get_attr_by_NID(si, expected[i], -1) < 0)
                        goto out;
        {
                X509_ATTRIBUTE *a =
                        CMS_signed_get_attr(si, CMS_signed_get_attr_by_NID(si, NID_pkcs9_messageDigest, -1));
                ASN1_TYPE *t = a && X509_ATTRIBUTE_count(a) == 1 ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
                if (!t || t->type != V_ASN1_OCTET_STRING || ASN1_STRING_length(t->value.octet_string) != 32 ||
                    CRYPTO_memcmp(ASN1_STRING_get0_data(t->value.octet_string), digest, 32) != 0)
                        goto out;
        }
        if (CMS_set1_signers_certs(cms, NULL, 0) < 1 || CMS_SignerInfo_verify(si) != 1)
                goto out;
        r = 0;
out:
        ERR_clear_error();
        CMS_ContentInfo_free(cms);
        return r;
}

static TS_REQ *make_query(const uint8_t *data, size_t len) {
        uint8_t md[32], raw[8];
        TS_REQ *req = TS_REQ_new();
        TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
        X509_ALGOR *alg = X509_ALGOR_new();
        ASN1_INTEGER *nonce = NULL;
        BIGNUM *bn = NULL;
        bool ok = false;

        if (!req || !mi || !alg || EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1 ||
            RAND_bytes(raw, sizeof raw) != 1)
                goto out;
        raw[0] &= 0x7f;
        bn = BN_bin2bn(raw, sizeof raw, NULL);
        nonce = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
        ok = nonce && X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) == 1 &&
             TS_MSG_IMPRINT_set_algo(mi, alg) == 1 && TS_MSG_IMPRINT_set_msg(mi, md, sizeof md) == 1 &&
             TS_REQ_set_version(req, 1) == 1 && TS_REQ_set_msg_imprint(req, mi) == 1 &&
             TS_REQ_set_nonce(req, nonce) == 1 && TS_REQ_set_cert_req(req, 1) == 1;
out:
        BN_free(bn);
        ASN1_INTEGER_free(nonce);
        X509_ALGOR_free(alg);
        TS_MSG_IMPRINT_free(mi);
        if (!ok) {
                TS_REQ_free(req);
                return NULL;
        }
        return req;
}

int cades_add_timestamp(const uint8_t *p, size_t len, cades_tsa_fn tsa, void *ud, X509_STORE *trust, uint8_t **ret,
                        size_t *ret_len) {
        CMS_ContentInfo *cms = parse(p, len);
        CMS_SignerInfo *si = cms ? only_signer(cms) : NULL;
        ASN1_OCTET_STRING *sig = si ? CMS_SignerInfo_get0_signature(si) : NULL;
        TS_REQ *req = NULL;
        TS_RESP *resp = NULL;
        TS_VERIFY_CTX *vctx = NULL;
        unsigned char *qder = NULL, *tok = NULL, *der = NULL;
        uint8_t *answer = NULL;
        size_t answer_len = 0;
        int n, r = -EBADMSG;

        if (!sig || !tsa || !trust || !ret || !ret_len)
                goto out;
        r = -ENOMEM;
        req = make_query(ASN1_STRING_get0_data(sig), (size_t) ASN1_STRING_length(sig));
        n = req ? i2d_TS_REQ(req, &qder) : -1;
        if (n <= 0)
                goto out;
        r = tsa(ud, qder, (size_t) n, &answer, &answer_len);
        if (r < 0)
                goto out;
        r = -EBADMSG;
        {
                const unsigned char *q = answer;
                resp = answer_len <= CADES_MAX ? d2i_TS_RESP(NULL, &q, (long) answer_len) : NULL;
                if (!resp || q != answer + answer_len)
                        goto out;
        }
        if (ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp))) != TS_STATUS_GRANTED) {
                r = -EPROTO;
                goto out;
        }
        vctx = TS_REQ_to_TS_VERIFY_CTX(req, NULL);
        if (!vctx || !X509_STORE_up_ref(trust))
                goto out;
        TS_VERIFY_CTX_add_flags(vctx, TS_VFY_SIGNATURE);
        TS_VERIFY_CTX_set_store(vctx, trust);
        if (TS_RESP_verify_response(vctx, resp) != 1)
                goto out;
        n = i2d_PKCS7(TS_RESP_get_token(resp), &tok);
        if (n <= 0 || CMS_unsigned_add1_attr_by_NID(si, NID_id_smime_aa_timeStampToken, V_ASN1_SEQUENCE, tok, n) != 1)
                goto out;
        n = i2d_CMS_ContentInfo(cms, &der);
        if (n <= 0 || (size_t) n > CADES_MAX)
                goto out;
        *ret = TAKE_PTR(der);
        *ret_len = (size_t) n;
        r = 0;
out:
        ERR_clear_error();
        OPENSSL_free(der);
        OPENSSL_free(tok);
        OPENSSL_free(qder);
        OPENSSL_free(answer);
        TS_VERIFY_CTX_free(vctx);
        TS_RESP_free(resp);
        TS_REQ_free(req);
        CMS_ContentInfo_free(cms);
        return r;
}

static int64_t days_from_civil(int y, unsigned m, unsigned d) {
        y -= m <= 2;
        const int64_t era = (y >= 0 ? y : y - 399) / 400;
        const unsigned yoe = (unsigned) (y - era * 400);
        const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

int cades_asn1_time_ms(const ASN1_TIME *t, int64_t *ret) {
        struct tm tm;
        const char *s;
        int len, ms = 0;

        if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
                return -EINVAL;
        s = (const char *) ASN1_STRING_get0_data(t);
        len = ASN1_STRING_length(t);
        if (t->type == V_ASN1_GENERALIZEDTIME && len > 15 && s[14] == '.') {
                int scale = 100;
                for (int i = 15; i < len && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
                        if (scale > 0)
                                ms += (s[i] - '0') * scale;
        }
        *ret = (days_from_civil(tm.tm_year + 1900, (unsigned) tm.tm_mon + 1, (unsigned) tm.tm_mday) * 86400 +
                tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) *
                       1000 +
               ms;
        return 0;
}

int cades_info(const uint8_t *p, size_t len, struct cades_info *ret) {
        CMS_ContentInfo *cms = parse(p, len);
        CMS_SignerInfo *si = cms ? only_signer(cms) : NULL;
        struct cades_info info = { .level = "B-B" };
        X509_ATTRIBUTE *a;
        ASN1_TYPE *t;
        int i, r = -EBADMSG;

        if (!si)
                goto out;
        i = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
        a = i >= 0 ? CMS_signed_get_attr(si, i) : NULL;
        t = a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
        if (!t || (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME) ||
            cades_asn1_time_ms((const ASN1_TIME *) t->value.asn1_string, &info.signing_time) < 0)
                goto out;
        i = CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1);
        if (i >= 0) {
                a = CMS_unsigned_get_attr(si, i);
                t = a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
                if (!t || t->type != V_ASN1_SEQUENCE)
                        goto out;
                const unsigned char *q = ASN1_STRING_get0_data(t->value.sequence);
                PKCS7 *p7 = d2i_PKCS7(NULL, &q, ASN1_STRING_length(t->value.sequence));
                TS_TST_INFO *tst = p7 ? PKCS7_to_TS_TST_INFO(p7) : NULL;
                int k = tst ? cades_asn1_time_ms(TS_TST_INFO_get_time(tst), &info.timestamp_time) : -EBADMSG;
                TS_TST_INFO_free(tst);
                PKCS7_free(p7);
                if (k < 0)
                        goto out;
                memcpy(info.level, "B-T", 4);
        }
        *ret = info;
        r = 0;
out:
        ERR_clear_error();
        CMS_ContentInfo_free(cms);
        return r;
}
