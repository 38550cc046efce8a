/* tsa.c: the built-in RFC 3161 responder (OpenSSL's TS_RESP_CTX), with the checks RFC 3161
 * leaves to the TSA: request size, trailing bytes, nonce size. Serial numbers are random
 * 128-bit positive integers (unique across restarts without a counter on disk: a collision is
 * as likely as guessing a 127-bit key). */
#include "seal/tsa.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ts.h>

struct tsa {
        TS_RESP_CTX *ctx;
        STACK_OF(X509) * certs;
        ASN1_OBJECT *policy;
        bool trailing; /* the request being answered has bytes after its DER */
};

void tsa_split_accuracy(uint32_t ms, unsigned *ret_s, unsigned *ret_ms) {
        *ret_s = ms / 1000;
        *ret_ms = ms % 1000;
}

static void reject(TS_RESP_CTX *ctx, int failure, const char *text) {
        (void) TS_RESP_CTX_set_status_info(ctx, TS_STATUS_REJECTION, text);
        (void) TS_RESP_CTX_add_failure_info(ctx, failure);
}

/* Called once the request passed OpenSSL's own checks (version, algorithm, imprint length):
 * the remaining checks, then the serial number. NULL makes a rejection. */
static ASN1_INTEGER *serial_cb(TS_RESP_CTX *ctx, void *ud) {
        struct tsa *t = ud;
        TS_REQ *req = TS_RESP_CTX_get_request(ctx);
        const ASN1_INTEGER *nonce = req ? TS_REQ_get_nonce(req) : NULL;
        ASN1_INTEGER *serial = NULL;
        uint8_t raw[16];

        if (t->trailing) {
                reject(ctx, TS_INFO_BAD_DATA_FORMAT, "Bytes after the request.");
                return NULL;
        }
        if (nonce) {
                BIGNUM *bn = ASN1_INTEGER_to_BN(nonce, NULL);
                bool ok = bn && !BN_is_negative(bn) && BN_num_bits(bn) <= (int) TSA_NONCE_MAX_BITS;
                BN_free(bn);
                if (!ok) {
                        reject(ctx, TS_INFO_BAD_REQUEST, "The nonce is negative or longer than 160 bits.");
                        return NULL;
                }
        }
        if (RAND_bytes(raw, sizeof raw) == 1) {
                BIGNUM *bn;
                raw[0] &= 0x7f;
                bn = BN_bin2bn(raw, sizeof raw, NULL);
                if (bn)
                        serial = BN_to_ASN1_INTEGER(bn, NULL);
                BN_free(bn);
        }
        if (!serial)
                (void) TS_RESP_CTX_set_status_info(ctx, TS_STATUS_REJECTION, "Error during serial number generation.");
        return serial;
}

int tsa_new(EVP_PKEY *key, X509 *cert, X509 *ca, const struct tsa_options *o, struct tsa **ret) {
        struct tsa *t;
        unsigned s, ms;

        if (!key || !cert || !o || !o->policy_oid || o->accuracy_ms == 0 || o->accuracy_ms > 3600000u || !ret)
                return -EINVAL;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->ctx = TS_RESP_CTX_new();
        t->certs = sk_X509_new_null();
        t->policy = OBJ_txt2obj(o->policy_oid, 1);
        if (!t->ctx || !t->certs || !t->policy)
                goto fail;
        if (ca && !sk_X509_push(t->certs, ca))
                goto fail;
        if (ca)
                X509_up_ref(ca);
        tsa_split_accuracy(o->accuracy_ms, &s, &ms);
        if (TS_RESP_CTX_set_signer_cert(t->ctx, cert) != 1 || TS_RESP_CTX_set_signer_key(t->ctx, key) != 1 ||
            TS_RESP_CTX_set_certs(t->ctx, t->certs) != 1 || TS_RESP_CTX_set_def_policy(t->ctx, t->policy) != 1 ||
            TS_RESP_CTX_add_md(t->ctx, EVP_sha256()) != 1 || TS_RESP_CTX_add_md(t->ctx, EVP_sha384()) != 1 ||
            TS_RESP_CTX_add_md(t->ctx, EVP_sha512()) != 1 ||
            TS_RESP_CTX_set_accuracy(t->ctx, (int) s, (int) ms, 0) != 1 ||
            TS_RESP_CTX_set_clock_precision_digits(t->ctx, 3) != 1 ||
            TS_RESP_CTX_set_signer_digest(t->ctx, EVP_sha256()) != 1 ||
            TS_RESP_CTX_set_ess_cert_id_digest(t->ctx, EVP_sha256()) != 1)
                goto fail;
        TS_RESP_CTX_set_serial_cb(t->ctx, serial_cb, t);
        *ret = t;
        return 0;
fail:
        ERR_clear_error();
        tsa_free(t);
        return -EINVAL;
}

void tsa_free(struct tsa *t) {
        if (!t)
                return;
        TS_RESP_CTX_free(t->ctx);
        sk_X509_pop_free(t->certs, X509_free);
        ASN1_OBJECT_free(t->policy);
        free(t);
}

int tsa_respond(struct tsa *t, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
        BIO *bio;
        TS_RESP *resp;
        unsigned char *der = NULL;
        int n;

        if (!t || (!req && len) || !ret || !ret_len)
                return -EINVAL;
        /* too large: answered as undecodable, without parsing it */
        if (len > TSA_REQUEST_MAX)
                len = 0;
        t->trailing = false;
        if (len) {
                const unsigned char *p = req;
                TS_REQ *q = d2i_TS_REQ(NULL, &p, (long) len);
                t->trailing = q && p != req + len;
                TS_REQ_free(q);
        }
        bio = BIO_new_mem_buf(len ? req : (const uint8_t *) "", (int) len);
        if (!bio)
                return -ENOMEM;
        resp = TS_RESP_create_response(t->ctx, bio);
        BIO_free(bio);
        ERR_clear_error();
        if (!resp)
                return -ENOMEM;
        n = i2d_TS_RESP(resp, &der);
        TS_RESP_free(resp);
        if (n <= 0)
                return -ENOMEM;
        *ret = der;
        *ret_len = (size_t) n;
        return 0;
}
