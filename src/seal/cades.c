/* cades.c: making (signer side) and completing and reading (server side) the CAdES seal of a
 * document. OpenSSL 3.0 has no "sign this digest" call for CMS: the SignerInfo is made with
 * CMS_PARTIAL, the message-digest attribute added by hand and the SignerInfo signed alone. */
#include "seal/cades.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ts.h>

#include "buf.h"

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

static TS_REQ *make_query(const uint8_t *data, size_t len, bool cert_req, const uint8_t *given_nonce) {
        uint8_t md[32], raw[8];
        TS_REQ *req = TS_REQ_new();
        TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
        X509_ALGOR *alg = X509_ALGOR_new();
        ASN1_INTEGER *nonce = NULL;
        BIGNUM *bn = NULL;
        bool ok = false;

        if (given_nonce)
                memcpy(raw, given_nonce, sizeof raw);
        if (!req || !mi || !alg || EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1 ||
            (!given_nonce && RAND_bytes(raw, sizeof raw) != 1))
                goto out;
        raw[0] &= 0x7f;
        bn = BN_bin2bn(raw, sizeof raw, NULL);
        nonce = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
        ok = nonce && X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) == 1 &&
             TS_MSG_IMPRINT_set_algo(mi, alg) == 1 && TS_MSG_IMPRINT_set_msg(mi, md, sizeof md) == 1 &&
             TS_REQ_set_version(req, 1) == 1 && TS_REQ_set_msg_imprint(req, mi) == 1 &&
             TS_REQ_set_nonce(req, nonce) == 1 && TS_REQ_set_cert_req(req, cert_req) == 1;
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

/* Asks tsa for a token over data (SHA-256, a nonce, certReq) and checks the reply: granted,
 * signature valid, chains to trust, imprint and nonce ours. */
static int timestamp_checked(const uint8_t *data, size_t len, bool cert_req, cades_tsa_fn tsa, void *ud,
                             X509_STORE *trust, TS_RESP **ret, uint8_t **ret_der, size_t *ret_der_len) {
        TS_REQ *req = make_query(data, len, cert_req, NULL);
        TS_RESP *resp = NULL;
        TS_VERIFY_CTX *vctx = NULL;
        unsigned char *qder = NULL;
        uint8_t *answer = NULL;
        size_t answer_len = 0;
        int n, r = -ENOMEM;

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
        /* version, imprint and nonce always; the signature and chain when given a trust store */
        vctx = TS_REQ_to_TS_VERIFY_CTX(req, NULL);
        if (!vctx || (trust && !X509_STORE_up_ref(trust)))
                goto out;
        if (trust) {
                TS_VERIFY_CTX_add_flags(vctx, TS_VFY_SIGNATURE);
                TS_VERIFY_CTX_set_store(vctx, trust);
        }
        if (TS_RESP_verify_response(vctx, resp) != 1)
                goto out;
        *ret = TAKE_PTR(resp);
        if (ret_der) {
                *ret_der = TAKE_PTR(answer);
                *ret_der_len = answer_len;
        }
        r = 0;
out:
        ERR_clear_error();
        OPENSSL_free(qder);
        OPENSSL_free(answer);
        TS_VERIFY_CTX_free(vctx);
        TS_RESP_free(resp);
        TS_REQ_free(req);
        return r;
}

int cades_ts_query_der(const uint8_t *data, size_t len, const uint8_t nonce[8], uint8_t **ret, size_t *ret_len) {
        TS_REQ *req = make_query(data, len, false, nonce);
        unsigned char *der = NULL;
        int n = req ? i2d_TS_REQ(req, &der) : -1;

        TS_REQ_free(req);
        ERR_clear_error();
        if (n <= 0)
                return -ENOMEM;
        *ret = der;
        *ret_len = (size_t) n;
        return 0;
}

/* The SignerInfo's signing time and the token's genTime. */
static int info_of(CMS_SignerInfo *si, TS_RESP *resp, struct cades_info *ret) {
        struct cades_info info = { .level = "B-T" };
        int i = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
        X509_ATTRIBUTE *a = i >= 0 ? CMS_signed_get_attr(si, i) : NULL;
        ASN1_TYPE *t = a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
        if (!t || (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME) ||
            cades_asn1_time_ms((const ASN1_TIME *) t->value.asn1_string, &info.signing_time) < 0 ||
            cades_asn1_time_ms(TS_TST_INFO_get_time(TS_RESP_get_tst_info(resp)), &info.timestamp_time) < 0)
                return -EBADMSG;
        *ret = info;
        return 0;
}

int cades_attach_reply(const uint8_t *p, size_t len, const uint8_t digest[32], const uint8_t *reply, size_t reply_len,
                       const uint8_t nonce[8], uint8_t **ret, size_t *ret_len, struct cades_info *ret_info) {
        static const int expected[] = { NID_pkcs9_contentType, NID_pkcs9_messageDigest, NID_pkcs9_signingTime,
                                        NID_id_smime_aa_signingCertificateV2 };
        CMS_ContentInfo *cms = parse(p, len);
        CMS_SignerInfo *si = cms ? only_signer(cms) : NULL;
        ASN1_OCTET_STRING *sig = si ? CMS_SignerInfo_get0_signature(si) : NULL;
        TS_REQ *req = NULL;
        TS_RESP *resp = NULL;
        TS_VERIFY_CTX *vctx = NULL;
        unsigned char *tok = NULL, *der = NULL;
        int n, r = -EBADMSG;

        /* the seal: as cades_check(), on the one parse */
        if (!sig || !digest || !reply || !nonce || !ret || !ret_len ||
            CMS_signed_get_attr_count(si) != (int) ELEMENTSOF(expected))
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
        /* the token: granted, for the query over this signature value with our nonce */
        {
                const unsigned char *q = reply;
                resp = reply_len <= CADES_MAX ? d2i_TS_RESP(NULL, &q, (long) reply_len) : NULL;
                if (!resp || q != reply + reply_len)
                        goto out;
        }
        if (ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp))) != TS_STATUS_GRANTED) {
                r = -EPROTO;
                goto out;
        }
        req = make_query(ASN1_STRING_get0_data(sig), (size_t) ASN1_STRING_length(sig), false, nonce);
        vctx = req ? TS_REQ_to_TS_VERIFY_CTX(req, NULL) : NULL;
        if (!vctx || TS_RESP_verify_response(vctx, resp) != 1)
                goto out;
        if (ret_info && info_of(si, resp, ret_info) < 0)
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
        TS_VERIFY_CTX_free(vctx);
        TS_REQ_free(req);
        TS_RESP_free(resp);
        CMS_ContentInfo_free(cms);
        return r;
}

int cades_timestamp_data(const uint8_t *data, size_t len, cades_tsa_fn tsa, void *ud, X509_STORE *trust, uint8_t **ret,
                         size_t *ret_len) {
        TS_RESP *resp = NULL;
        int r;

        if (!data || !tsa || !ret || !ret_len)
                return -EINVAL;
        r = timestamp_checked(data, len, true, tsa, ud, trust, &resp, ret, ret_len);
        TS_RESP_free(resp);
        return r;
}

int cades_add_timestamp(const uint8_t *p, size_t len, cades_tsa_fn tsa, void *ud, X509_STORE *trust, uint8_t **ret,
                        size_t *ret_len, struct cades_info *ret_info) {
        CMS_ContentInfo *cms = parse(p, len);
        CMS_SignerInfo *si = cms ? only_signer(cms) : NULL;
        ASN1_OCTET_STRING *sig = si ? CMS_SignerInfo_get0_signature(si) : NULL;
        TS_RESP *resp = NULL;
        unsigned char *tok = NULL, *der = NULL;
        int n, r = -EBADMSG;

        if (!sig || !tsa || !ret || !ret_len)
                goto out;
        /* without trust, no certReq: the TSA chain is published (GET /v1/tsa/certificate) and
         * bundled with the evidence, and each upload decodes no certificate out of its token */
        r = timestamp_checked(ASN1_STRING_get0_data(sig), (size_t) ASN1_STRING_length(sig), trust != NULL, tsa, ud,
                              trust, &resp, NULL, NULL);
        if (r < 0)
                goto out;
        r = -EBADMSG;
        if (ret_info && info_of(si, resp, ret_info) < 0)
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
        TS_RESP_free(resp);
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

/* ---- a faster signer: the SignedData assembled by hand around one ECDSA signature ----
 *
 * Everything but the message digest, the signing time and the signature is the same for every
 * seal of one key: the certificate, the signer identifier and the signing-certificate-v2
 * attribute are encoded once (the latter taken from a seal OpenSSL makes at set-up), and each
 * seal is a few hundred bytes of DER around one signature. The server checks every seal with
 * OpenSSL (cades_check()), and the tests with `openssl cms -verify`. */

struct cades_signer {
        EVP_PKEY *key;
        uint8_t *cert, *sid, *scv2; /* DER: certificate, IssuerAndSerialNumber, the attribute */
        size_t cert_len, sid_len, scv2_len;
};

static int der_header(uint8_t *out, uint8_t tag, size_t len) {
        int n = 0;
        out[n++] = tag;
        if (len < 0x80)
                out[n++] = (uint8_t) len;
        else if (len < 0x100) {
                out[n++] = 0x81;
                out[n++] = (uint8_t) len;
        } else {
                out[n++] = 0x82;
                out[n++] = (uint8_t) (len >> 8);
                out[n++] = (uint8_t) len;
        }
        return n;
}

/* Appends tag, length and content to b (content may be NULL: the header only). */
static int der_put(struct buf *b, uint8_t tag, const void *content, size_t len) {
        uint8_t h[4];
        int r;
        if (len > 0xffff)
                return -E2BIG;
        r = buf_append(b, h, (size_t) der_header(h, tag, len));
        if (r >= 0 && content)
                r = buf_append(b, content, len);
        return r;
}

void cades_signer_free(struct cades_signer *cs) {
        if (!cs)
                return;
        EVP_PKEY_free(cs->key);
        OPENSSL_free(cs->cert);
        OPENSSL_free(cs->sid);
        OPENSSL_free(cs->scv2);
        free(cs);
}

int cades_signer_new(EVP_PKEY *key, X509 *cert, struct cades_signer **ret) {
        struct cades_signer *cs = calloc(1, sizeof *cs);
        uint8_t digest[32] = { 0 }, *sample = NULL;
        size_t sample_len = 0;
        CMS_ContentInfo *cms = NULL;
        int n, r = -EINVAL;

        if (!cs)
                return -ENOMEM;
        if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || !EVP_PKEY_up_ref(key))
                goto fail;
        cs->key = key;
        n = i2d_X509(cert, &cs->cert);
        if (n <= 0)
                goto fail;
        cs->cert_len = (size_t) n;
        {
                /* IssuerAndSerialNumber */
                struct buf b;
                unsigned char *name = NULL, *serial = NULL;
                int nn = i2d_X509_NAME(X509_get_issuer_name(cert), &name);
                int ns = i2d_ASN1_INTEGER(X509_get_serialNumber(cert), &serial);
                buf_init(&b, 4096);
                r = nn > 0 && ns > 0 ? der_put(&b, 0x30, NULL, (size_t) (nn + ns)) : -EINVAL;
                if (r >= 0)
                        r = buf_append(&b, name, (size_t) nn);
                if (r >= 0)
                        r = buf_append(&b, serial, (size_t) ns);
                OPENSSL_free(name);
                OPENSSL_free(serial);
                if (r >= 0 && (cs->sid = OPENSSL_memdup(b.data, b.len)))
                        cs->sid_len = b.len;
                buf_free(&b);
                if (!cs->sid) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        /* the signing-certificate-v2 attribute, exactly as OpenSSL encodes it */
        r = cades_sign(key, cert, NULL, digest, 0, &sample, &sample_len);
        if (r < 0)
                goto fail;
        r = -EINVAL;
        cms = parse(sample, sample_len);
        CMS_SignerInfo *si = cms ? only_signer(cms) : NULL;
        int i = si ? CMS_signed_get_attr_by_NID(si, NID_id_smime_aa_signingCertificateV2, -1) : -1;
        X509_ATTRIBUTE *a = i >= 0 ? CMS_signed_get_attr(si, i) : NULL;
        n = a ? i2d_X509_ATTRIBUTE(a, &cs->scv2) : -1;
        if (n <= 0)
                goto fail;
        cs->scv2_len = (size_t) n;
        CMS_ContentInfo_free(cms);
        OPENSSL_free(sample);
        *ret = cs;
        return 0;
fail:
        ERR_clear_error();
        CMS_ContentInfo_free(cms);
        OPENSSL_free(sample);
        cades_signer_free(cs);
        return r;
}

struct der_item {
        const uint8_t *p;
        size_t len;
};

/* DER order of a SET OF: by encoding, the shorter padded with zero octets (X.690 11.6) */
static int der_item_cmp(const void *a, const void *b) {
        const struct der_item *x = a, *y = b;
        size_t n = MIN(x->len, y->len);
        int c = memcmp(x->p, y->p, n);
        if (c)
                return c;
        const struct der_item *longer = x->len > y->len ? x : y;
        for (size_t i = n; i < longer->len; i++)
                if (longer->p[i])
                        return longer == x ? 1 : -1;
        return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

int cades_signer_sign(struct cades_signer *cs, const uint8_t digest[32], int64_t signing_time, uint8_t **ret,
                      size_t *ret_len, uint8_t ret_sig[CADES_SIG_MAX], size_t *ret_sig_len) {
        static const uint8_t attr_content_type[] = { 0x30, 0x18, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                                     0x0d, 0x01, 0x09, 0x03, 0x31, 0x0b, 0x06, 0x09, 0x2a,
                                                     0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01 };
        static const uint8_t md_head[] = { 0x30, 0x2f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                           0x0d, 0x01, 0x09, 0x04, 0x31, 0x22, 0x04, 0x20 };
        static const uint8_t sha256_alg[] = { 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                              0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00 };
        static const uint8_t ecdsa_sha256_alg[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                                    0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
        static const uint8_t oid_signed_data[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };
        static const uint8_t encap_data[] = { 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48,
                                              0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01 };
        static const uint8_t version1[] = { 0x02, 0x01, 0x01 };
        uint8_t md_attr[sizeof md_head + 32], st_attr[32], sig[CADES_SIG_MAX], h[4];
        struct der_item items[4];
        struct buf attrs, si, sd, out;
        size_t attrs_len = 0, sig_len = sizeof sig;
        struct tm tm;
        time_t tt = (time_t) signing_time;
        EVP_MD_CTX *md = NULL;
        int r;

        if (!cs || !digest || !ret || !ret_len || !gmtime_r(&tt, &tm) || tm.tm_year < 50 || tm.tm_year >= 150)
                return -EINVAL; /* UTCTime: 1950 to 2049 */
        memcpy(md_attr, md_head, sizeof md_head);
        memcpy(md_attr + sizeof md_head, digest, 32);
        /* SEQ { signingTime, SET { UTCTime YYMMDDHHMMSSZ } } */
        static const uint8_t st_head[] = { 0x30, 0x1c, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                           0x0d, 0x01, 0x09, 0x05, 0x31, 0x0f, 0x17, 0x0d };
        memcpy(st_attr, st_head, sizeof st_head);
        const int fields[6] = { tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec };
        for (size_t i = 0; i < 6; i++) {
                st_attr[sizeof st_head + 2 * i] = (uint8_t) ('0' + fields[i] / 10 % 10);
                st_attr[sizeof st_head + 2 * i + 1] = (uint8_t) ('0' + fields[i] % 10);
        }
        st_attr[sizeof st_head + 12] = 'Z';
        items[0] = (struct der_item){ attr_content_type, sizeof attr_content_type };
        items[1] = (struct der_item){ md_attr, sizeof md_attr };
        items[2] = (struct der_item){ st_attr, sizeof st_head + 13 };
        items[3] = (struct der_item){ cs->scv2, cs->scv2_len };
        qsort(items, 4, sizeof items[0], der_item_cmp);
        for (size_t i = 0; i < 4; i++)
                attrs_len += items[i].len;

        buf_init(&attrs, 8192);
        buf_init(&si, 8192);
        buf_init(&sd, CADES_MAX);
        buf_init(&out, CADES_MAX);
        /* what is signed: the attributes as a SET (tag 0x31) */
        r = der_put(&attrs, 0x31, NULL, attrs_len);
        for (size_t i = 0; r >= 0 && i < 4; i++)
                r = buf_append(&attrs, items[i].p, items[i].len);
        if (r < 0)
                goto out;
        md = EVP_MD_CTX_new();
        if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, cs->key) != 1 ||
            EVP_DigestSign(md, sig, &sig_len, attrs.data, attrs.len) != 1) {
                r = -EIO;
                goto out;
        }
        /* SignerInfo: version, sid, digest algorithm, [0] attributes, signature algorithm, signature */
        attrs.data[0] = 0xa0;
        size_t si_len = sizeof version1 + cs->sid_len + sizeof sha256_alg + attrs.len + sizeof ecdsa_sha256_alg +
                        (size_t) der_header(h, 0x04, sig_len) + sig_len;
        if ((r = der_put(&si, 0x30, NULL, si_len)) < 0 || (r = buf_append(&si, version1, sizeof version1)) < 0 ||
            (r = buf_append(&si, cs->sid, cs->sid_len)) < 0 ||
            (r = buf_append(&si, sha256_alg, sizeof sha256_alg)) < 0 ||
            (r = buf_append(&si, attrs.data, attrs.len)) < 0 ||
            (r = buf_append(&si, ecdsa_sha256_alg, sizeof ecdsa_sha256_alg)) < 0 ||
            (r = der_put(&si, 0x04, sig, sig_len)) < 0)
                goto out;
        /* SignedData: version, digest algorithms, encapsulated content (detached), [0] certificates, signer infos */
        size_t algs_len = (size_t) der_header(h, 0x31, sizeof sha256_alg) + sizeof sha256_alg;
        size_t certs_len = (size_t) der_header(h, 0xa0, cs->cert_len) + cs->cert_len;
        size_t sis_len = (size_t) der_header(h, 0x31, si.len) + si.len;
        size_t sd_len = sizeof version1 + algs_len + sizeof encap_data + certs_len + sis_len;
        if ((r = der_put(&sd, 0x30, NULL, sd_len)) < 0 || (r = buf_append(&sd, version1, sizeof version1)) < 0 ||
            (r = der_put(&sd, 0x31, sha256_alg, sizeof sha256_alg)) < 0 ||
            (r = buf_append(&sd, encap_data, sizeof encap_data)) < 0 ||
            (r = der_put(&sd, 0xa0, cs->cert, cs->cert_len)) < 0 || (r = der_put(&sd, 0x31, si.data, si.len)) < 0)
                goto out;
        /* ContentInfo */
        size_t ci_len = sizeof oid_signed_data + (size_t) der_header(h, 0xa0, sd.len) + sd.len;
        if ((r = der_put(&out, 0x30, NULL, ci_len)) < 0 ||
            (r = buf_append(&out, oid_signed_data, sizeof oid_signed_data)) < 0 ||
            (r = der_put(&out, 0xa0, sd.data, sd.len)) < 0)
                goto out;
        *ret = OPENSSL_memdup(out.data, out.len);
        *ret_len = out.len;
        r = *ret ? 0 : -ENOMEM;
        if (r == 0 && ret_sig) {
                memcpy(ret_sig, sig, sig_len);
                *ret_sig_len = sig_len;
        }
out:
        ERR_clear_error();
        EVP_MD_CTX_free(md);
        buf_free(&attrs);
        buf_free(&si);
        buf_free(&sd);
        buf_free(&out);
        return r;
}
