/* selfsigned.c: self-signed ECDSA P-256 TLS certificate with OpenSSL 3. */
#include "selfsigned.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>

#include "buf.h"
#include "fileio.h"
#include "log.h"

static int add_ext(X509 *x, int nid, const char *value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!e)
                return -EINVAL;
        int ok = X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
        return ok ? 0 : -EINVAL;
}

static int bio_to_file(BIO *b, const char *path, mode_t mode) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        if (n <= 0)
                return -EINVAL;
        return write_file_atomic(path, p, (size_t) n, mode, 1);
}

int selfsigned_tls_create(const char *cert_path, const char *key_path, int days) {
        EVP_PKEY *pkey = NULL;
        X509 *x = NULL;
        BIO *kb = NULL, *cb = NULL;
        unsigned char serial[16];
        int r = -EINVAL;

        pkey = EVP_EC_gen("P-256");
        x = X509_new();
        kb = BIO_new(BIO_s_mem());
        cb = BIO_new(BIO_s_mem());
        if (!pkey || !x || !kb || !cb)
                goto ossl;
        if (RAND_bytes(serial, sizeof serial) != 1)
                goto ossl;
        serial[0] &= 0x7f;
        BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
                BN_free(bn);
                goto ossl;
        }
        BN_free(bn);
        X509_set_version(x, 2);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), (long) days * 86400);
        X509_set_pubkey(x, pkey);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *) "coffre vault", -1, -1, 0);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "localhost", -1, -1, 0);
        X509_set_issuer_name(x, name);
        if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
            add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
            add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
            add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
            add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") < 0)
                goto ossl;
        if (X509_sign(x, pkey, EVP_sha256()) <= 0)
                goto ossl;
        if (!PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) || !PEM_write_bio_X509(cb, x))
                goto ossl;
        r = bio_to_file(kb, key_path, 0600);
        if (r >= 0)
                r = bio_to_file(cb, cert_path, 0644);
        goto out;
ossl:
        r = log_openssl_errors(-EINVAL, "creating the TLS certificate");
out:
        BIO_free(kb);
        BIO_free(cb);
        X509_free(x);
        EVP_PKEY_free(pkey);
        return r;
}
