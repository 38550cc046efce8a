/* pki.c: the vault's private CA, seal and TSA certificates: making them, storing them in
 * DATA/keys/ and loading them back, for the signer process only. */
#include "seal/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "fileio.h"
#include "seal/keyload.h"
#include "utf8.h"

static int no_passphrase(char *buf, int size, int rwflag, void *u) {
        (void) buf, (void) size, (void) rwflag, (void) u;
        return 0;
}

/* Reads a whole small file of dirfd into a secure buffer (NUL-terminated). */
static int read_at(int dirfd, const char *name, bool secret, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        struct stat st;
        char *text;
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if (secret && ((st.st_mode & 077) != 0 || st.st_uid != geteuid()))
                return -EPERM; /* readable by others, or not ours: refuse to use it */
        if (st.st_size <= 0 || (uint64_t) st.st_size > PKI_FILE_MAX)
                return -EINVAL;
        text = sodium_malloc(PKI_FILE_MAX + 1);
        if (!text)
                return -ENOMEM;
        n = read_full(fd, text, PKI_FILE_MAX);
        if (n < 0) {
                sodium_free(text);
                return (int) n;
        }
        text[n] = 0;
        *ret = text;
        *ret_len = (size_t) n;
        return 0;
}

int pki_load_pair(int dirfd, const char *key_name, const char *cert_name, EVP_PKEY **ret_key, X509 **ret_cert) {
        bool token;
        return pki_load_pair_ex(dirfd, key_name, cert_name, false, ret_key, ret_cert, &token);
}

int pki_load_pair_ex(int dirfd, const char *key_name, const char *cert_name, bool allow_token, EVP_PKEY **ret_key,
                     X509 **ret_cert, bool *ret_token) {
        char *text = NULL;
        size_t len = 0;
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        BIO *bio;
        int r;

        r = read_at(dirfd, key_name, true, &text, &len);
        if (r < 0)
                return r;
        /* the one key loader (keyload.c); PKCS#11 keys cannot work inside the signer's filter yet */
        struct loaded_key *lk = NULL;
        r = keyload_from_text(text, len, key_name, allow_token, &lk);
        sodium_free(text); /* wipes */
        if (r < 0)
                return r == -EOPNOTSUPP || r == -EACCES ? r : -EINVAL;
        bool token = keyload_is_token(lk);
        key = keyload_take(lk);
        r = read_at(dirfd, cert_name, false, &text, &len);
        if (r < 0) {
                EVP_PKEY_free(key);
                return r == -ENOENT ? -EINVAL : r; /* a key without its certificate */
        }
        bio = BIO_new_mem_buf(text, (int) len);
        if (bio)
                cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        BIO_free(bio);
        sodium_free(text);
        if (!cert || X509_check_private_key(cert, key) != 1) {
                ERR_clear_error();
                X509_free(cert);
                EVP_PKEY_free(key);
                return -EINVAL;
        }
        *ret_key = key;
        *ret_cert = cert;
        *ret_token = token;
        return 0;
}

int pki_load_issuers(int dirfd, const char *cert_name, STACK_OF(X509) * *ret) {
        char *text = NULL;
        size_t len = 0;
        int r = read_at(dirfd, cert_name, false, &text, &len);
        if (r < 0)
                return r;
        BIO *bio = BIO_new_mem_buf(text, (int) len);
        STACK_OF(X509) *sk = sk_X509_new_null();
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL; /* the leaf */
        r = x && sk ? 0 : -EINVAL;
        X509_free(x);
        while (r >= 0 && (x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)))
                if (!sk_X509_push(sk, x)) {
                        X509_free(x);
                        r = -ENOMEM;
                }
        ERR_clear_error();
        BIO_free(bio);
        sodium_free(text);
        if (r < 0) {
                sk_X509_pop_free(sk, X509_free);
                return r;
        }
        *ret = sk;
        return 0;
}

static EVP_PKEY *new_p256(void) {
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* A random positive serial of 127 bits. */
static int set_serial(X509 *x) {
        uint8_t raw[16];
        BIGNUM *bn;
        int ok;

        if (RAND_bytes(raw, sizeof raw) != 1)
                return -EIO;
        raw[0] &= 0x7f;
        raw[0] |= 0x40; /* never shorter than 16 bytes */
        bn = BN_bin2bn(raw, sizeof raw, NULL);
        ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
        BN_free(bn);
        return ok ? 0 : -ENOMEM;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
        int ok = e && X509_add_ext(x, e, -1) == 1;
        X509_EXTENSION_free(e);
        return ok ? 0 : -EINVAL;
}

static X509_NAME *make_name(const char *cn, const char *org) {
        X509_NAME *n = X509_NAME_new();
        if (!n)
                return NULL;
        if ((org && X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *) org, -1, -1, 0) != 1) ||
            X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) != 1) {
                X509_NAME_free(n);
                return NULL;
        }
        return n;
}

/* A certificate for key, subject (cn, org), signed by issuer_key (self-signed when issuer is NULL). */
static int make_cert(EVP_PKEY *key, const char *cn, const char *org, EVP_PKEY *issuer_key, X509 *issuer, int days,
                     const char *const *exts, const int *ext_nids, size_t n_exts, X509 **ret) {
        X509 *x = X509_new();
        X509_NAME *name = make_name(cn, org);
        X509V3_CTX ctx;
        int r = -ENOMEM;

        if (!x || !name)
                goto out;
        if (X509_set_version(x, X509_VERSION_3) != 1 || (r = set_serial(x)) < 0)
                goto out;
        r = -EINVAL;
        if (!X509_gmtime_adj(X509_getm_notBefore(x), -300) || !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) ||
            X509_set_subject_name(x, name) != 1 ||
            X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1 || X509_set_pubkey(x, key) != 1)
                goto out;
        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
        for (size_t i = 0; i < n_exts; i++)
                if ((r = add_ext(x, &ctx, ext_nids[i], exts[i])) < 0)
                        goto out;
        r = -EINVAL;
        if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
                goto out;
        *ret = TAKE_PTR(x);
        r = 0;
out:
        ERR_clear_error();
        X509_NAME_free(name);
        X509_free(x);
        return r;
}

int pki_make_ca(const char *common_name, EVP_PKEY **ret_key, X509 **ret_cert) {
        static const int nids[] = { NID_basic_constraints, NID_key_usage, NID_subject_key_identifier };
        static const char *const vals[] = { "critical,CA:TRUE", "critical,keyCertSign,cRLSign", "hash" };
        EVP_PKEY *key = new_p256();
        int r;

        if (!key)
                return -ENOMEM;
        r = make_cert(key, common_name, NULL, NULL, NULL, PKI_CA_DAYS, vals, nids, ELEMENTSOF(nids), ret_cert);
        if (r < 0) {
                EVP_PKEY_free(key);
                return r;
        }
        *ret_key = key;
        return 0;
}

int pki_make_leaf(enum pki_leaf_kind kind, const char *common_name, const char *organisation, EVP_PKEY *ca_key,
                  X509 *ca_cert, int days, EVP_PKEY **ret_key, X509 **ret_cert) {
        static const int seal_nids[] = { NID_basic_constraints, NID_key_usage, NID_subject_key_identifier,
                                         NID_authority_key_identifier };
        static const char *const seal_vals[] = { "critical,CA:FALSE", "critical,digitalSignature,nonRepudiation",
                                                 "hash", "keyid:always" };
        static const int tsa_nids[] = { NID_basic_constraints, NID_key_usage, NID_ext_key_usage,
                                        NID_subject_key_identifier, NID_authority_key_identifier };
        static const char *const tsa_vals[] = { "critical,CA:FALSE", "critical,digitalSignature,nonRepudiation",
                                                "critical,timeStamping", "hash", "keyid:always" };
        EVP_PKEY *key;
        int r;

        if (!common_name || !ca_key || !ca_cert || days <= 0)
                return -EINVAL;
        key = new_p256();
        if (!key)
                return -ENOMEM;
        if (kind == PKI_LEAF_SEAL)
                r = make_cert(key, common_name, organisation, ca_key, ca_cert, days, seal_vals, seal_nids,
                              ELEMENTSOF(seal_nids), ret_cert);
        else
                r = make_cert(key, common_name, organisation, ca_key, ca_cert, days, tsa_vals, tsa_nids,
                              ELEMENTSOF(tsa_nids), ret_cert);
        if (r < 0) {
                EVP_PKEY_free(key);
                return r;
        }
        *ret_key = key;
        return 0;
}

/* name, atomically: name.tmp written, synced, renamed; then the directory synced. */
static int write_at(int dirfd, const char *name, const void *p, size_t n, mode_t mode, bool exclusive) {
        char tmp[80];
        int fd, r;

        if ((size_t) snprintf(tmp, sizeof tmp, "%s.tmp", name) >= sizeof tmp)
                return -ENAMETOOLONG;
        if (exclusive && faccessat(dirfd, name, F_OK, AT_EACCESS) == 0)
                return -EEXIST;
        (void) unlinkat(dirfd, tmp, 0); /* a leftover of a write cut short */
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        r = write_all(fd, p, n);
        if (r >= 0 && fdatasync(fd) < 0)
                r = negative_errno();
        if (close(fd) < 0 && r >= 0)
                r = negative_errno();
        if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(dirfd) < 0)
                r = negative_errno();
        if (r < 0)
                (void) unlinkat(dirfd, tmp, 0);
        return r;
}

int pki_store_pair(int dirfd, const char *key_name, const char *cert_name, EVP_PKEY *key, X509 *cert) {
        BIO *bio = BIO_new(BIO_s_secmem());
        struct buf cb;
        char *p;
        long n;
        int r;

        if (!bio)
                return -ENOMEM;
        if (PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
                BIO_free(bio);
                ERR_clear_error();
                return -EINVAL;
        }
        n = BIO_get_mem_data(bio, &p);
        r = write_at(dirfd, key_name, p, (size_t) n, 0600, true);
        BIO_free(bio); /* secure memory: wiped */
        if (r < 0)
                return r;
        buf_init(&cb, PKI_FILE_MAX);
        r = pki_cert_pem(cert, &cb);
        if (r >= 0)
                r = write_at(dirfd, cert_name, cb.data, cb.len, 0644, false);
        buf_free(&cb);
        return r;
}

int pki_cert_pem(X509 *cert, struct buf *b) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *p;
        long n;
        int r;

        if (!bio)
                return -ENOMEM;
        if (PEM_write_bio_X509(bio, cert) != 1) {
                BIO_free(bio);
                ERR_clear_error();
                return -EINVAL;
        }
        n = BIO_get_mem_data(bio, &p);
        r = buf_append(b, p, (size_t) n);
        BIO_free(bio);
        return r;
}

int pki_cert_not_after(const X509 *cert, int64_t *ret) {
        struct tm tm;
        const ASN1_TIME *t = X509_get0_notAfter(cert);

        if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
                return -EINVAL;
        *ret = (int64_t) timegm(&tm);
        return 0;
}

int pki_seal_names(const char *org_id, char key_name[64], char cert_name[64]) {
        size_t n = org_id ? strlen(org_id) : 0;

        if (n == 0 || n > 32)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!((org_id[i] >= '0' && org_id[i] <= '9') || (org_id[i] >= 'a' && org_id[i] <= 'f')))
                        return -EINVAL;
        snprintf(key_name, 64, PKI_SEAL_PREFIX "%s.key", org_id);
        snprintf(cert_name, 64, PKI_SEAL_PREFIX "%s.pem", org_id);
        return 0;
}

bool pki_org_name_is_valid(const char *name, size_t len) {
        const uint8_t *p = (const uint8_t *) name;

        if (!name || len == 0 || len > PKI_ORG_NAME_MAX)
                return false;
        for (size_t i = 0; i < len;) {
                uint32_t cp;
                size_t k = utf8_next(p + i, len - i, &cp);
                if (k == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
                        return false;
                i += k;
        }
        return true;
}
