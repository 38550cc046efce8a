/* reseal_tool.c: makes CAdES-B-T seals with chosen certificates, for test_evidence.py's
 * refusals: a seal certificate that had expired when it was time-stamped. Usage:
 *   reseal_tool expired CA.key CA.pem TSA.key TSA.pem DOC OUT.p7s
 * A fresh P-256 seal key gets a certificate from the CA valid from two years ago to one year ago;
 * the document's SHA-256 is sealed with it (seal/cades.c) and time-stamped now by the TSA
 * (seal/tsa.c), as the signer does. Exit 0, or 1 with the reason on stderr. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "fileio.h"
#include "seal/cades.h"
#include "seal/tsa.h"

static int fail(const char *what) {
        fprintf(stderr, "reseal_tool: %s\n", what);
        ERR_print_errors_fp(stderr);
        return 1;
}

static EVP_PKEY *read_key(const char *p) {
        FILE *f = fopen(p, "re");
        EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        return k;
}

static X509 *read_cert(const char *p) {
        FILE *f = fopen(p, "re");
        X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        return x;
}

static int tsa_cb(void *ud, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
        return tsa_respond(ud, req, len, ret, ret_len);
}

int main(int argc, char **argv) {
        if (argc != 8 || strcmp(argv[1], "expired") != 0) {
                fprintf(stderr, "usage: reseal_tool expired CA.key CA.pem TSA.key TSA.pem DOC OUT.p7s\n");
                return 2;
        }
        EVP_PKEY *ca_key = read_key(argv[2]), *tsa_key = read_key(argv[4]);
        X509 *ca = read_cert(argv[3]), *tsa_cert = read_cert(argv[5]);
        if (!ca_key || !ca || !tsa_key || !tsa_cert)
                return fail("cannot read the CA or TSA pair");
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        X509 *x = X509_new();
        X509_NAME *n = X509_NAME_new();
        X509V3_CTX v3;
        X509_EXTENSION *ku = NULL;
        int ok =
                key && x && n && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 4242) &&
                X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *) "Expired seal", -1, -1, 0) &&
                X509_set_subject_name(x, n) && X509_set_issuer_name(x, X509_get_subject_name(ca)) &&
                X509_gmtime_adj(X509_getm_notBefore(x), -2L * 365 * 86400) &&
                X509_gmtime_adj(X509_getm_notAfter(x), -365L * 86400) && X509_set_pubkey(x, key);
        if (ok) {
                X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
                ku = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,digitalSignature,nonRepudiation");
                ok = ku && X509_add_ext(x, ku, -1) && X509_sign(x, ca_key, EVP_sha256()) > 0;
        }
        X509_EXTENSION_free(ku);
        X509_NAME_free(n);
        if (!ok)
                return fail("cannot make the expired certificate");
        struct buf doc;
        uint8_t digest[32];
        if (read_file(argv[6], 1 << 30, &doc) < 0)
                return fail("cannot read the document");
        EVP_Digest(doc.data, doc.len, digest, NULL, EVP_sha256(), NULL);
        buf_free(&doc);
        struct tsa *t = NULL;
        uint8_t *bb = NULL, *bt = NULL;
        size_t bbl = 0, btl = 0;
        X509_STORE *trust = X509_STORE_new();
        if (!trust || X509_STORE_add_cert(trust, ca) != 1)
                return fail("trust store");
        if (tsa_new(tsa_key, tsa_cert, ca,
                    &(struct tsa_options){ .policy_oid = TSA_DEFAULT_POLICY, .accuracy_ms = 1000 }, &t) < 0)
                return fail("cannot start the TSA");
        if (cades_sign(key, x, ca, digest, (int64_t) time(NULL), &bb, &bbl) < 0)
                return fail("cannot seal");
        if (cades_add_timestamp(bb, bbl, tsa_cb, t, NULL, &bt, &btl, NULL) < 0)
                return fail("cannot time-stamp the seal");
        int r = write_file_atomic(argv[7], bt, btl, 0644, 0);
        OPENSSL_free(bb);
        OPENSSL_free(bt);
        tsa_free(t);
        X509_STORE_free(trust);
        X509_free(x);
        EVP_PKEY_free(key);
        X509_free(ca);
        X509_free(tsa_cert);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(tsa_key);
        return r < 0 ? fail("cannot write") : 0;
}
