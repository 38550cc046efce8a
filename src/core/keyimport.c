/* keyimport.c: `coffre key import --seal|--tsa CERT [--chain CHAIN] --key FILE [--org ID]`:
 * installs a seal or TSA certificate issued elsewhere (a qualified seal certificate, say) with
 * its key, after checking that the key is the certificate's (a signature made with the key
 * verifies under the certificate), that the chain is complete up to a self-signed root and
 * verifies, that the certificate is valid now and fit for its use (TSA: a critical extended key
 * usage timeStamping; seal: key usage digitalSignature or nonRepudiation) and that the key is
 * ECDSA P-256/P-384 or RSA of 3072 bits or more. The pair replaces keys/tsa.{key,pem} or
 * keys/seal-ORG.{key,pem} (the old pair kept as .old), the certificate file holding the chain
 * after the certificate. A key on a PKCS#11 token (pkcs11: URI) is checked the same way, and its
 * key file then holds the URI (the signer loads it at start; [keys] pkcs11_path must be set).
 * The server must be stopped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "crypto/p11_uri.h"
#include "fileio.h"
#include "log.h"
#include "seal/keyload.h"
#include "vault.h"

#define IMPORT_MAX_CERTS 10

static int read_certs(const char *path, STACK_OF(X509) * sk) {
        BIO *b = BIO_new_file(path, "r");
        if (!b)
                return log_error_errno(-ENOENT, "cannot read %s", path);
        X509 *x;
        int n = 0;
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
                if (sk_X509_num(sk) >= IMPORT_MAX_CERTS || !sk_X509_push(sk, x)) {
                        X509_free(x);
                        BIO_free(b);
                        return log_error_errno(-E2BIG, "%s: more than %d certificates", path, IMPORT_MAX_CERTS);
                }
                n++;
        }
        BIO_free(b);
        ERR_clear_error();
        if (n == 0)
                return log_error_errno(-EINVAL, "%s holds no PEM certificate", path);
        return 0;
}

/* The chain: each certificate issued by the next, the last self-signed, and OpenSSL's
 * verification (signatures, validity now, CA constraints, purpose) up to it. */
static int check_chain(STACK_OF(X509) * all, bool tsa) {
        int n = sk_X509_num(all);
        for (int i = 0; i + 1 < n; i++)
                if (X509_check_issued(sk_X509_value(all, i + 1), sk_X509_value(all, i)) != X509_V_OK)
                        return log_error_errno(-EINVAL,
                                               "the chain is out of order or incomplete: certificate %d is not "
                                               "issued by certificate %d",
                                               i + 1, i + 2);
        X509 *root = sk_X509_value(all, n - 1);
        if (X509_check_issued(root, root) != X509_V_OK)
                return log_error_errno(-EINVAL, "the chain is incomplete: it does not end with a self-signed root "
                                                "(add the missing certificates with --chain)");
        X509_STORE *store = X509_STORE_new();
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        STACK_OF(X509) *untrusted = sk_X509_new_null();
        for (int i = 1; untrusted && i + 1 < n; i++)
                sk_X509_push(untrusted, sk_X509_value(all, i));
        int ok = store && ctx && untrusted && X509_STORE_add_cert(store, root) == 1 &&
                 X509_STORE_CTX_init(ctx, store, sk_X509_value(all, 0), untrusted) == 1;
        if (ok) {
                X509_STORE_CTX_set_purpose(ctx, tsa ? X509_PURPOSE_TIMESTAMP_SIGN : X509_PURPOSE_ANY);
                ok = X509_verify_cert(ctx) == 1;
        }
        int err = ctx ? X509_STORE_CTX_get_error(ctx) : 0;
        sk_X509_free(untrusted);
        X509_STORE_CTX_free(ctx);
        X509_STORE_free(store);
        ERR_clear_error();
        if (!ok)
                return log_error_errno(-EINVAL, "the certificate chain does not verify: %s",
                                       X509_verify_cert_error_string(err));
        return 0;
}

static int check_use(X509 *leaf, bool tsa) {
        if (tsa) {
                int i = X509_get_ext_by_NID(leaf, NID_ext_key_usage, -1);
                X509_EXTENSION *e = i >= 0 ? X509_get_ext(leaf, i) : NULL;
                if (!e || !X509_EXTENSION_get_critical(e) || !(X509_get_extended_key_usage(leaf) & XKU_TIMESTAMP))
                        return log_error_errno(-EINVAL, "a TSA certificate needs a critical extended key usage "
                                                        "timeStamping (RFC 3161 2.3)");
                return 0;
        }
        uint32_t ku = X509_get_key_usage(leaf);
        if (ku == UINT32_MAX || !(ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)))
                return log_error_errno(-EINVAL,
                                       "a seal certificate needs key usage digitalSignature or nonRepudiation");
        return 0;
}

static int check_key_type(EVP_PKEY *k) {
        int id = EVP_PKEY_get_base_id(k);
        if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) >= 3072)
                return 0;
        if (id == EVP_PKEY_EC) {
                char group[32] = "";
                size_t gl = 0;
                if (EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &gl) == 1 &&
                    (strcmp(group, "prime256v1") == 0 || strcmp(group, "secp384r1") == 0))
                        return 0;
                /* a token key (libp11) may not tell its group: its size then, the certificate's
                 * curve being checked by the signature test */
                if (gl == 0 && (EVP_PKEY_get_bits(k) == 256 || EVP_PKEY_get_bits(k) == 384))
                        return 0;
        }
        ERR_clear_error();
        return log_error_errno(-EINVAL, "the key must be ECDSA P-256 or P-384, or RSA of 3072 bits or more");
}

/* The key is the certificate's: a signature it makes verifies under the certificate's key. */
static int check_key_matches(EVP_PKEY *k, X509 *leaf) {
        uint8_t msg[32], sig[1024];
        size_t sl = sizeof sig;
        RAND_bytes(msg, sizeof msg);
        EVP_MD_CTX *s = EVP_MD_CTX_new(), *v = EVP_MD_CTX_new();
        int ok = s && v && EVP_DigestSignInit(s, NULL, EVP_sha256(), NULL, k) == 1 &&
                 EVP_DigestSign(s, sig, &sl, msg, sizeof msg) == 1 &&
                 EVP_DigestVerifyInit(v, NULL, EVP_sha256(), NULL, X509_get0_pubkey(leaf)) == 1 &&
                 EVP_DigestVerify(v, sig, sl, msg, sizeof msg) == 1;
        EVP_MD_CTX_free(s);
        EVP_MD_CTX_free(v);
        ERR_clear_error();
        if (!ok)
                return log_error_errno(-EINVAL, "the key is not the certificate's (a signature made with it does not "
                                                "verify under the certificate)");
        return 0;
}

static int pem_all(STACK_OF(X509) * all, struct buf *b) {
        for (int i = 0; i < sk_X509_num(all); i++) {
                BIO *m = BIO_new(BIO_s_mem());
                char *d;
                long n;
                int r = m && PEM_write_bio_X509(m, sk_X509_value(all, i)) && (n = BIO_get_mem_data(m, &d)) > 0
                                ? buf_append(b, d, (size_t) n)
                                : -ENOMEM;
                BIO_free(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Writes name.new, moves the current file to name.old, then name.new to name. */
static int install(const char *keys, const char *name, const void *p, size_t n, mode_t mode) {
        char nb[300], ob[300];
        snprintf(nb, sizeof nb, "%s.new", name);
        snprintf(ob, sizeof ob, "%s.old", name);
        _cleanup_free_ char *path = path_join(keys, name), *np = path_join(keys, nb), *op = path_join(keys, ob);
        if (!path || !np || !op)
                return -ENOMEM;
        (void) unlink(np);
        int r = write_file_atomic(np, p, n, mode, 1);
        if (r < 0)
                return r;
        if (rename(path, op) < 0 && errno != ENOENT)
                return negative_errno();
        if (rename(np, path) < 0)
                return negative_errno();
        return fsync_dir(keys);
}

int vault_key_import(const char *dir, bool tsa, const char *org, const char *cert_file, const char *chain_file,
                     const char *key_spec) {
        char key_name[64], cert_name[64];
        struct vault_config c;
        int r;

        if (tsa) {
                snprintf(key_name, sizeof key_name, "tsa.key");
                snprintf(cert_name, sizeof cert_name, "tsa.pem");
        } else {
                size_t l = org ? strlen(org) : 0;
                bool hex = l == 32;
                for (size_t i = 0; hex && i < l; i++)
                        hex = (org[i] >= '0' && org[i] <= '9') || (org[i] >= 'a' && org[i] <= 'f');
                if (!hex)
                        return log_error_errno(-EINVAL, "--seal needs --org ID (the organisation's 32-hex-digit id)");
                snprintf(key_name, sizeof key_name, "seal-%s.key", org);
                snprintf(cert_name, sizeof cert_name, "seal-%s.pem", org);
        }
        _cleanup_free_ char *conf = path_join(dir, "coffre.conf");
        _cleanup_free_ char *keys = path_join(dir, "keys");
        _cleanup_free_ char *lock = path_join(dir, "audit/lock");
        if (!conf || !keys || !lock)
                return -ENOMEM;
        r = vault_config_load(conf, &c);
        if (r == -ENOENT)
                return log_error_errno(r, "%s is not a coffre vault (no coffre.conf)", dir);
        if (r < 0)
                return r;
        bool token = p11_uri_is(key_spec);
        if (token && c.n_pkcs11_path == 0)
                return log_error_errno(-EINVAL, "a PKCS#11 key needs [keys] pkcs11_path in coffre.conf (the directory "
                                                "the module keeps its tokens in), which the signer may then read");
        if (token && strchr(key_spec, '\n'))
                return log_error_errno(-EINVAL, "a newline in the PKCS#11 URI");
        _cleanup_close_ int lfd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (lfd < 0)
                return log_error_errno(negative_errno(), "cannot open %s", lock);
        if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : negative_errno();
        if (!tsa) {
                _cleanup_free_ char *cur = path_join(keys, cert_name);
                if (!cur)
                        return -ENOMEM;
                if (access(cur, F_OK) < 0)
                        return log_error_errno(-ENOENT, "organisation %s has no seal in this vault (keys/%s)", org,
                                               cert_name);
        }

        STACK_OF(X509) *all = sk_X509_new_null();
        if (!all)
                return -ENOMEM;
        r = read_certs(cert_file, all);
        if (r >= 0 && chain_file)
                r = read_certs(chain_file, all);
        X509 *leaf = r >= 0 ? sk_X509_value(all, 0) : NULL;
        if (r >= 0) {
                time_t now = time(NULL);
                if (X509_cmp_time(X509_get0_notAfter(leaf), &now) <= 0)
                        r = log_error_errno(-EINVAL, "the certificate has expired");
                else if (X509_cmp_time(X509_get0_notBefore(leaf), &now) >= 0)
                        r = log_error_errno(-EINVAL, "the certificate is not valid yet");
        }
        if (r >= 0)
                r = check_use(leaf, tsa);
        if (r >= 0)
                r = check_chain(all, tsa);
        struct loaded_key *lk = NULL;
        if (r >= 0)
                r = keyload_open(key_spec, NULL, &lk); /* a 0600 file of ours; logs why */
        EVP_PKEY *k = lk ? keyload_pkey(lk) : NULL;
        if (r >= 0)
                r = check_key_type(k);
        if (r >= 0)
                r = check_key_matches(k, leaf);
        _cleanup_buf_ struct buf kb = {}, cb = {};
        buf_init(&kb, 0);
        buf_init(&cb, 0);
        if (r >= 0 && token) /* the key file names the token key */
                r = buf_printf(&kb, "%s\n", key_spec);
        else if (r >= 0) {
                BIO *m = BIO_new(BIO_s_mem());
                char *d;
                long n;
                r = m && PEM_write_bio_PrivateKey(m, k, NULL, NULL, 0, NULL, NULL) && (n = BIO_get_mem_data(m, &d)) > 0
                            ? buf_append(&kb, d, (size_t) n)
                            : -ENOMEM;
                if (m) {
                        BUF_MEM *bm = NULL;
                        BIO_get_mem_ptr(m, &bm);
                        if (bm && bm->data)
                                OPENSSL_cleanse(bm->data, bm->max);
                }
                BIO_free(m);
        }
        keyload_free(lk);
        if (r >= 0)
                r = pem_all(all, &cb);
        char subject[256] = "";
        if (leaf)
                X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof subject);
        sk_X509_pop_free(all, X509_free);
        /* the key first: until the certificate follows, the signer refuses the mismatched pair */
        if (r >= 0)
                r = install(keys, key_name, kb.data, kb.len, 0600);
        if (kb.data)
                sodium_memzero(kb.data, kb.len);
        if (r >= 0)
                r = install(keys, cert_name, cb.data, cb.len, 0644);
        if (r < 0)
                return r;
        log_info("installed keys/%s and keys/%s (%s); the previous pair is kept as .old", key_name, cert_name, subject);
        return 0;
}
