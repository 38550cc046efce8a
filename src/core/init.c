/* init.c: `coffre init`: a new data directory with its keys, stores, TLS pair and bootstrap token. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "blob/blob.h"
#include "crypto/keyring.h"
#include "crypto/p11_uri.h"
#include "fileio.h"
#include "hex.h"
#include "ledger.h"
#include "log.h"
#include "seal/signer.h"
#include "selfsigned.h"
#include "timeutil.h"
#include "vault.h"

static int no_passphrase(char *buf, int size, int rwflag, void *u) {
        (void) buf, (void) size, (void) rwflag, (void) u;
        return 0; /* an encrypted key is refused, never prompted for */
}

/* The pair given to --tls-cert/--tls-key, checked before anything is created: a PEM certificate,
 * an unencrypted PEM private key, and the key is the certificate's. */
static int tls_pair_check(const char *cert_path, const char *key_path) {
        X509 *x = NULL;
        EVP_PKEY *k = NULL;
        FILE *f;
        int r = 0;

        if (!(f = fopen(cert_path, "re"))) {
                r = negative_errno();
                return log_error_errno(r, "cannot read %s: %s", cert_path, strerror(-r));
        }
        x = PEM_read_X509(f, NULL, no_passphrase, NULL);
        fclose(f);
        if (!x) {
                r = log_error_errno(-EINVAL, "%s is not a PEM certificate", cert_path);
                goto out;
        }
        if (!(f = fopen(key_path, "re"))) {
                r = negative_errno();
                log_error("cannot read %s: %s", key_path, strerror(-r));
                goto out;
        }
        setvbuf(f, NULL, _IONBF, 0); /* no copy of the key left in a stdio buffer */
        k = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
        fclose(f);
        if (!k)
                r = log_error_errno(-EINVAL, "%s is not an unencrypted PEM private key", key_path);
        else if (X509_check_private_key(x, k) != 1)
                r = log_error_errno(-EINVAL, "the key in %s is not the key of the certificate in %s", key_path,
                                    cert_path);
out:
        ERR_clear_error();
        EVP_PKEY_free(k);
        X509_free(x);
        return r;
}

static int dir_is_empty_or_missing(const char *dir) {
        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 1 : negative_errno();
        struct dirent *e;
        int empty = 1;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                        empty = 0;
                        break;
                }
        closedir(d);
        return empty;
}

static int copy_file(const char *from, const char *to, mode_t mode) {
        struct buf b;
        int r = read_file(from, 1 << 20, &b);
        if (r < 0)
                return log_error_errno(r, "cannot read %s: %s", from, strerror(-r));
        r = write_file_atomic(to, b.data, b.len, mode, 1);
        buf_free_secure(&b);
        return r;
}

static char *token_new(void) {
        uint8_t raw[32];
        size_t n = sodium_base64_encoded_len(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        char *t = malloc(4 + n);
        if (!t)
                return NULL;
        randombytes_buf(raw, sizeof raw);
        memcpy(t, VAULT_TOKEN_PREFIX, 4);
        sodium_bin2base64(t + 4, n, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof raw);
        return t;
}

/* The log's first entry, and its first signed checkpoint. */
static int record_init(const char *dir, const struct vault_config *c, const char *org_id, const char *org_name,
                       const uint8_t *record_key) {
        char time[32], rid[17];
        uint8_t raw[8];
        _cleanup_(ledger_closep) struct ledger *l = NULL;

        int r = ledger_open(dir, c->audit_origin, NULL, 0, &l);
        if (r < 0)
                return r;
        r = ledger_set_record_key(l, record_key);
        if (r < 0)
                return r;
        /* the signer made the CA and TSA pairs as it started; now the organisation's seal */
        _cleanup_free_ char *chain = NULL;
        r = signer_seal_chain(ledger_signer(l), org_id, org_name, &chain);
        if (r < 0)
                return log_error_errno(r, "cannot make the organisation's seal certificate: %s", strerror(-r));
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, rid);
        audit_entry_format_time(now_ms(), time);
        struct audit_entry e = {
                .time = time,
                .org = (char *) org_id,
                .actor = (char *) "system:cli",
                .action = (char *) "vault.init",
                .request_id = rid,
        };
        return ledger_record(l, &e, NULL, NULL, NULL);
}

static void wipe_key(uint8_t (*k)[KEYRING_KEY_SIZE]) {
        sodium_memzero(*k, sizeof *k);
}

int vault_init(const char *dir, const struct vault_init_options *o, char **ret_token) {
        _cleanup_(wipe_key) uint8_t record_key[KEYRING_KEY_SIZE];
        struct vault_config c;
        uint8_t raw[16];
        int r;

        r = dir_is_empty_or_missing(dir);
        if (r < 0)
                return log_error_errno(r, "cannot read %s: %s", dir, strerror(-r));
        if (r == 0) {
                log_error("%s exists and is not empty: refusing to create a vault there", dir);
                return -EEXIST;
        }
        if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
                log_error("--tls-cert and --tls-key go together");
                return -EINVAL;
        }
        if (o->tls_cert && (r = tls_pair_check(o->tls_cert, o->tls_key)) < 0)
                return r;
        if (o->master_key) {
                struct p11_uri u;
                const char *why;
                if (p11_uri_parse(o->master_key, &u, &why) < 0) {
                        log_error("--master-key: %s", why);
                        return -EINVAL;
                }
                if (strlen(o->master_key) >= sizeof c.master_key || strchr(o->master_key, '#') ||
                    strstr(o->master_key, " ;") || strstr(o->master_key, "\t;")) {
                        log_error("--master-key: the URI cannot be written to coffre.conf (too long, or '#', or ' ;')");
                        return -EINVAL;
                }
        }
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create %s: %s", dir, strerror(-r));

        vault_config_defaults(&c);
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, c.vault_id);
        snprintf(c.audit_origin, sizeof c.audit_origin, "coffre.localhost/%.16s", c.vault_id);
        if (o->master_key)
                snprintf(c.master_key, sizeof c.master_key, "%s", o->master_key);
        for (size_t i = 0; i < o->n_pkcs11_path && i < VAULT_MAX_PKCS11_PATHS; i++) {
                if (o->pkcs11_path[i][0] != '/' || strlen(o->pkcs11_path[i]) >= sizeof c.pkcs11_path[0] ||
                    strpbrk(o->pkcs11_path[i], ";#")) {
                        log_error("--pkcs11-path must be an absolute path without ';' or '#'");
                        return -EINVAL;
                }
                snprintf(c.pkcs11_path[c.n_pkcs11_path++], sizeof c.pkcs11_path[0], "%s", o->pkcs11_path[i]);
        }

        _cleanup_free_ char *keys = path_join(dir, "keys");
        _cleanup_free_ char *tls = path_join(dir, "tls");
        _cleanup_free_ char *conf = path_join(dir, "coffre.conf");
        _cleanup_free_ char *meta = path_join(dir, "meta.db");
        _cleanup_free_ char *kr = path_join(dir, "keyring.db");
        _cleanup_free_ char *mk = path_join(dir, o->master_key ? "keys/master.key" : c.master_key);
        _cleanup_free_ char *cert = path_join(dir, c.tls_cert);
        _cleanup_free_ char *key = path_join(dir, c.tls_key);
        _cleanup_free_ char *tokfile = path_join(dir, "bootstrap-token");
        if (!keys || !tls || !conf || !meta || !kr || !mk || !cert || !key || !tokfile)
                return -ENOMEM;
        if ((r = mkdir_p(keys, 0700)) < 0 || (r = mkdir_p(tls, 0755)) < 0)
                return log_error_errno(r, "cannot create directories in %s: %s", dir, strerror(-r));

        if (!o->master_key) {
                r = master_key_create_file(mk);
                if (r < 0)
                        return log_error_errno(r, "cannot create the master key: %s", strerror(-r));
        }
        if (o->tls_cert) {
                if ((r = copy_file(o->tls_cert, cert, 0644)) < 0 || (r = copy_file(o->tls_key, key, 0600)) < 0)
                        return log_error_errno(r, "cannot install the TLS pair: %s", strerror(-r));
        } else {
                r = selfsigned_tls_create(cert, key, SELFSIGNED_MAX_DAYS);
                if (r < 0)
                        return r;
        }

        _cleanup_(store_closep) struct store *s = NULL;
        r = store_sqlite_open(meta, true, &s);
        if (r < 0)
                return log_error_errno(r, "cannot create %s: %s", meta, strerror(-r));
        _cleanup_(blob_closep) struct blob *b = NULL;
        r = blob_fs_open(dir, true, &b);
        if (r < 0)
                return log_error_errno(r, "cannot create the object store: %s", strerror(-r));
        struct master_key *m = NULL;
        if (o->master_key)
                r = master_key_load_pkcs11(o->master_key, true, NULL, &m); /* logs why */
        else if ((r = master_key_load_file(mk, &m)) < 0)
                log_error("cannot load the master key: %s", strerror(-r));
        if (r < 0)
                return r;
        r = master_key_derive(m, "audit record mac", record_key);
        if (r < 0) {
                master_key_free(m);
                return log_error_errno(r, "cannot derive the audit record key: %s", strerror(-r));
        }
        _cleanup_(keyring_freep) struct keyring *k = NULL;
        r = keyring_open(kr, true, m, &k);
        if (r < 0)
                return log_error_errno(r, "cannot create %s: %s", kr, strerror(-r));

        struct store_org org = { .created_at = now_ms() };
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, org.id);
        snprintf(org.name, sizeof org.name, "%s", o->org_name ? o->org_name : "default");
        snprintf(org.time_zone, sizeof org.time_zone, "Europe/Paris"); /* retention dates; PATCH changes it */
        r = keyring_kek_create(k, raw);
        if (r < 0)
                return log_error_errno(r, "cannot create the organisation key: %s", strerror(-r));
        /* wipes the master key now: the signer forked below (ledger_init, record_init) must not
         * inherit its pages */
        keyring_free(TAKE_PTR(k));
        r = s->ops->org_insert(s, &org);
        if (r < 0)
                return log_error_errno(r, "cannot create the organisation: %s", strerror(-r));
        r = s->ops->setting_set(s, "vault_id", c.vault_id);
        if (r < 0)
                return r;

        _cleanup_free_ char *token = token_new();
        if (!token)
                return -ENOMEM;
        struct store_token t = { .created_at = now_ms() };
        uint8_t hash[32];
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, t.id);
        snprintf(t.org_id, sizeof t.org_id, "%s", org.id);
        /* may only create the first owner (and the operator): see core/accounts.c */
        snprintf(t.role, sizeof t.role, "bootstrap");
        snprintf(t.kind, sizeof t.kind, STORE_TOKEN_BOOTSTRAP);
        crypto_hash_sha256(hash, (const unsigned char *) token, strlen(token));
        r = s->ops->token_insert(s, &t, hash);
        if (r < 0)
                return log_error_errno(r, "cannot store the bootstrap token: %s", strerror(-r));

        size_t tl = strlen(token);
        char *line = malloc(tl + 2);
        if (!line)
                return -ENOMEM;
        memcpy(line, token, tl);
        line[tl] = '\n';
        r = write_file_atomic(tokfile, line, tl + 1, 0600, 1);
        sodium_memzero(line, tl + 1);
        free(line);
        if (r < 0)
                return log_error_errno(r, "cannot write %s: %s", tokfile, strerror(-r));

        r = ledger_init(dir, c.audit_origin);
        if (r < 0)
                return r;
        r = record_init(dir, &c, org.id, org.name, record_key);
        if (r < 0)
                return r;

        /* The settings file last: its presence marks a complete vault. */
        r = vault_config_write(conf, &c);
        if (r < 0)
                return log_error_errno(r, "cannot write %s: %s", conf, strerror(-r));
        r = fsync_dir(dir);
        if (r < 0)
                return r;
        *ret_token = TAKE_PTR(token);
        return 0;
}
