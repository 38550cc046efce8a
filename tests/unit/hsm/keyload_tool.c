/* keyload_tool.c: drives seal/keyload.c for test_hsm_keys.py, which checks every output with
 * openssl. Usage:
 *   keyload_tool sig  SPEC IN OUT.sig         ECDSA/RSA SHA-256 signature of IN (DER)
 *   keyload_tool cert SPEC CN OUT.pem         a self-signed certificate for the key
 *   keyload_tool cms  SPEC CERT.pem IN OUT.p7s  detached CMS SignedData over IN (DER)
 * Exit 0, or 1 with the library's message on stderr. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "seal/keyload.h"

static int fail(const char *what) {
        fprintf(stderr, "keyload_tool: %s\n", what);
        ERR_print_errors_fp(stderr);
        return 1;
}

static int do_sig(EVP_PKEY *k, const char *in, const char *out) {
        struct buf b;
        if (read_file(in, 1 << 24, &b) < 0)
                return fail("cannot read the input");
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        size_t sl = 0;
        unsigned char sig[1024];
        int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
                 EVP_DigestSign(md, NULL, &sl, b.data, b.len) == 1 && sl <= sizeof sig &&
                 EVP_DigestSign(md, sig, &sl, b.data, b.len) == 1;
        EVP_MD_CTX_free(md);
        buf_free(&b);
        if (!ok)
                return fail("signing failed");
        return write_file_atomic(out, sig, sl, 0644, 0) < 0 ? fail("cannot write") : 0;
}

static int do_cert(EVP_PKEY *k, const char *cn, const char *out) {
        X509 *x = X509_new();
        X509_NAME *n = X509_NAME_new();
        int ok = x && n && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
                 X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) &&
                 X509_set_subject_name(x, n) && X509_set_issuer_name(x, n) &&
                 X509_gmtime_adj(X509_getm_notBefore(x), 0) && X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30) &&
                 X509_set_pubkey(x, k) && X509_sign(x, k, EVP_sha256()) > 0;
        FILE *f = ok ? fopen(out, "we") : NULL;
        ok = f && PEM_write_X509(f, x);
        if (f)
                fclose(f);
        X509_NAME_free(n);
        X509_free(x);
        return ok ? 0 : fail("cannot make the certificate");
}

static int do_cms(EVP_PKEY *k, const char *cert, const char *in, const char *out) {
        FILE *f = fopen(cert, "re");
        X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        BIO *data = BIO_new_file(in, "rb");
        BIO *o = BIO_new_file(out, "wb");
        CMS_ContentInfo *cms = x && data && o ? CMS_sign(x, k, NULL, data, CMS_BINARY | CMS_DETACHED) : NULL;
        int ok = cms && i2d_CMS_bio(o, cms) == 1;
        CMS_ContentInfo_free(cms);
        BIO_free(o);
        BIO_free(data);
        X509_free(x);
        return ok ? 0 : fail("CMS signing failed");
}

int main(int argc, char **argv) {
        if (argc < 5 || (strcmp(argv[1], "cms") == 0 && argc < 6)) {
                fprintf(stderr, "usage: keyload_tool sig|cert|cms SPEC ...\n");
                return 2;
        }
        struct loaded_key *lk = NULL;
        int r = keyload_open(argv[2], NULL, &lk);
        if (r < 0) {
                fprintf(stderr, "keyload_tool: cannot load the key: %s\n", strerror(-r));
                return 1;
        }
        EVP_PKEY *k = keyload_pkey(lk);
        int rc;
        if (strcmp(argv[1], "sig") == 0)
                rc = do_sig(k, argv[3], argv[4]);
        else if (strcmp(argv[1], "cert") == 0)
                rc = do_cert(k, argv[3], argv[4]);
        else if (strcmp(argv[1], "cms") == 0)
                rc = do_cms(k, argv[3], argv[4], argv[5]);
        else
                rc = 2;
        printf("%s\n", keyload_is_token(lk) ? "token" : "file");
        keyload_free(lk);
        return rc;
}
