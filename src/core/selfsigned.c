/* selfsigned.c: the self-signed ECDSA P-256 TLS certificate of a vault tried out on one machine
 * (made, renewed, and its expiry read) with OpenSSL 3. */
#include "selfsigned.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

static int bio_to_file(BIO *b, const char *path, mode_t mode, bool exclusive) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        if (n <= 0)
                return -EINVAL;
        int r = write_file_atomic(path, p, (size_t) n, mode, exclusive);
        if (r < 0)
                log_error("cannot write %s: %s", path, strerror(-r));
        return r;
}

/* Issues the certificate for pkey and writes it (and the key, when write_key): as new files
 * when exclusive, else in place of the old ones. */
static int issue(EVP_PKEY *pkey, const char *cert_path, const char *key_path, bool write_key, bool exclusive,
                 int days) {
        X509 *x = NULL;
        BIO *kb = NULL, *cb = NULL;
        unsigned char serial[16];
        int r = -EINVAL;

        x = X509_new();
        kb = BIO_new(BIO_s_mem());
        cb = BIO_new(BIO_s_mem());
        if (!x || !kb || !cb)
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
        /* notAfter - notBefore stays within the CA/Browser Forum's 398 days, one hour back included */
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), (long) days * 86400 - 3600);
        X509_set_pubkey(x, pkey);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *) SELFSIGNED_ORG, -1, -1, 0);
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
        if ((write_key && !PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL)) || !PEM_write_bio_X509(cb, x))
                goto ossl;
        /* the key first: a cut between the two leaves a pair that 'coffre tls renew' mends */
        r = write_key ? bio_to_file(kb, key_path, 0600, exclusive) : 0;
        if (r >= 0)
                r = bio_to_file(cb, cert_path, 0644, exclusive);
        goto out;
ossl:
        r = log_openssl_errors(-EINVAL, "creating the TLS certificate");
out:
        if (kb) {
                char *p = NULL;
                long n = BIO_get_mem_data(kb, &p);
                if (n > 0)
                        OPENSSL_cleanse(p, (size_t) n);
        }
        BIO_free(kb);
        BIO_free(cb);
        X509_free(x);
        return r;
}

int selfsigned_tls_create(const char *cert_path, const char *key_path, int days) {
        if (days < 1 || days > SELFSIGNED_MAX_DAYS)
                return -EINVAL;
        EVP_PKEY *pkey = EVP_EC_gen("P-256");
        if (!pkey)
                return log_openssl_errors(-ENOMEM, "creating the TLS key");
        int r = issue(pkey, cert_path, key_path, true, true, days);
        EVP_PKEY_free(pkey);
        return r;
}

static X509 *read_cert(const char *path, int *ret_err) {
        struct buf b;
        int r = read_file(path, 1 << 20, &b);
        if (r < 0) {
                *ret_err = r;
                return NULL;
        }
        BIO *bio = BIO_new_mem_buf(b.data, (int) b.len);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        buf_free(&b);
        ERR_clear_error();
        *ret_err = x ? 0 : -EBADMSG;
        return x;
}

int selfsigned_cert_not_after(const char *pem, size_t len, int64_t *ret) {
        BIO *bio = BIO_new_mem_buf(pem, (int) len);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        struct tm tm;
        int ok = x && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
        X509_free(x);
        ERR_clear_error();
        if (!ok)
                return -EBADMSG;
        *ret = (int64_t) timegm(&tm);
        return 0;
}

/* A certificate coffre made: self-signed by its own key, with the subject coffre gives it. */
static bool made_by_coffre(X509 *x) {
        X509_NAME *n = X509_get_subject_name(x);
        char org[64];
        if (X509_NAME_cmp(n, X509_get_issuer_name(x)) != 0)
                return false;
        if (X509_NAME_get_text_by_NID(n, NID_organizationName, org, sizeof org) < 0 || strcmp(org, SELFSIGNED_ORG) != 0)
                return false;
        EVP_PKEY *pub = X509_get0_pubkey(x);
        bool ok = pub && X509_verify(x, pub) == 1;
        ERR_clear_error();
        return ok;
}

int selfsigned_tls_renew(const char *cert_path, const char *key_path, const struct selfsigned_renew_options *o) {
        int days = o->days ? o->days : SELFSIGNED_MAX_DAYS;
        int r;

        if (days < 1 || days > SELFSIGNED_MAX_DAYS)
                return log_error_errno(-EINVAL, "--days must be between 1 and %d", SELFSIGNED_MAX_DAYS);
        X509 *x = read_cert(cert_path, &r);
        if (!x && r != -ENOENT && !o->force)
                return log_error_errno(r, "cannot read %s (%s): renew with --force to replace it", cert_path,
                                       r == -EBADMSG ? "not a PEM certificate" : strerror(-r));
        if (x && !made_by_coffre(x) && !o->force) {
                X509_free(x);
                return log_error_errno(-EEXIST,
                                       "%s was not made by coffre (an operator's certificate?): it is left alone; "
                                       "use --force to replace it with a self-signed one",
                                       cert_path);
        }
        X509_free(x);

        EVP_PKEY *pkey = NULL;
        bool new_key = o->rotate_key;
        if (!new_key) {
                struct buf kb;
                r = read_file_secret(key_path, 1 << 20, &kb);
                if (r < 0)
                        return log_error_errno(r, "cannot read the TLS key %s: %s (use --rotate-key for a new one)",
                                               key_path, strerror(-r));
                BIO *bio = BIO_new_mem_buf(kb.data, (int) kb.len);
                pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
                BIO_free(bio);
                buf_free_secure(&kb);
                if (!pkey)
                        return log_openssl_errors(-EBADMSG, "reading the TLS key (use --rotate-key for a new one)");
        } else {
                pkey = EVP_EC_gen("P-256");
                if (!pkey)
                        return log_openssl_errors(-ENOMEM, "creating the TLS key");
        }
        r = issue(pkey, cert_path, key_path, new_key, false, days);
        EVP_PKEY_free(pkey);
        return r;
}
