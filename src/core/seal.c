/* seal.c: the vault's seals. Each document is sealed at ingest (CAdES-B-B made by the signer,
 * raised to B-T by a token of the built-in TSA over its signature value) and the seal is stored
 * beside the document's row, encrypted under a key derived from the document's own DEK, so that
 * destroying the DEK (erasure) makes the seal unreadable too. Also the TSA for the API, the
 * certificate chains, and their expiry for /metrics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "fileio.h"
#include "crypto/aead.h"
#include "crypto/keyring.h"
#include "hex.h"
#include "ledger.h"
#include "log.h"
#include "seal/cades.h"
#include "seal/pki.h"
#include "seal/signer.h"
#include "seal/tsa_client.h"
#include "timeutil.h"
#include "vault_internal.h"

#define SEAL_FORMAT_VERSION 1
#define SEAL_NONCE_SIZE 12
static const char seal_label[] = "coffre seal v1";

struct vault_seals {
        X509_STORE *trust; /* the vault's CA: what the TSA's tokens must chain to */
        char *tsa_chain;   /* PEM: TSA certificate, CA */
        struct vault_cert_expiry expiry;
        struct tsa_client *ext; /* [tsa] url: the external TSA the seals' timestamps come from */
};

/* ---- encryption of a stored seal ---- */

static int seal_key(const uint8_t dek[KEYRING_KEY_SIZE], uint8_t key[AEAD_KEY_SIZE]) {
        return crypto_auth_hmacsha256(key, (const uint8_t *) seal_label, sizeof seal_label - 1, dek) == 0 ? 0 : -EIO;
}

static void seal_aad(const char *doc_id, uint8_t aad[sizeof seal_label - 1 + STORE_ID_LEN]) {
        memcpy(aad, seal_label, sizeof seal_label - 1);
        memcpy(aad + sizeof seal_label - 1, doc_id, STORE_ID_LEN);
}

int vault_seal_encrypt(const uint8_t dek[KEYRING_KEY_SIZE], const char *doc_id, const uint8_t *p, size_t n,
                       uint8_t **ret, size_t *ret_len) {
        uint8_t key[AEAD_KEY_SIZE], aad[sizeof seal_label - 1 + STORE_ID_LEN];
        size_t total = 1 + SEAL_NONCE_SIZE + n + AEAD_TAG_SIZE;
        EVP_CIPHER_CTX *ctx;
        uint8_t *out;
        int r;

        if (n == 0 || total > STORE_SEAL_MAX || strlen(doc_id) != STORE_ID_LEN)
                return -EINVAL;
        out = malloc(total);
        if (!out)
                return -ENOMEM;
        r = seal_key(dek, key);
        ctx = r < 0 ? NULL : aead_ctx_new(key, true);
        sodium_memzero(key, sizeof key);
        if (!ctx) {
                free(out);
                return -ENOMEM;
        }
        out[0] = SEAL_FORMAT_VERSION;
        randombytes_buf(out + 1, SEAL_NONCE_SIZE);
        seal_aad(doc_id, aad);
        r = aead_seal(ctx, out + 1, SEAL_NONCE_SIZE, aad, sizeof aad, p, n, out + 1 + SEAL_NONCE_SIZE,
                      out + 1 + SEAL_NONCE_SIZE + n);
        EVP_CIPHER_CTX_free(ctx);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        *ret_len = total;
        return 0;
}

int vault_seal_decrypt(const uint8_t dek[KEYRING_KEY_SIZE], const char *doc_id, const uint8_t *p, size_t n,
                       uint8_t **ret, size_t *ret_len) {
        uint8_t key[AEAD_KEY_SIZE], aad[sizeof seal_label - 1 + STORE_ID_LEN];
        EVP_CIPHER_CTX *ctx;
        uint8_t *out;
        size_t len;
        int r;

        if (n <= 1 + SEAL_NONCE_SIZE + AEAD_TAG_SIZE || p[0] != SEAL_FORMAT_VERSION || strlen(doc_id) != STORE_ID_LEN)
                return -EBADMSG;
        len = n - 1 - SEAL_NONCE_SIZE - AEAD_TAG_SIZE;
        out = malloc(len);
        if (!out)
                return -ENOMEM;
        r = seal_key(dek, key);
        ctx = r < 0 ? NULL : aead_ctx_new(key, false);
        sodium_memzero(key, sizeof key);
        if (!ctx) {
                free(out);
                return -ENOMEM;
        }
        seal_aad(doc_id, aad);
        r = aead_open(ctx, p + 1, SEAL_NONCE_SIZE, aad, sizeof aad, p + 1 + SEAL_NONCE_SIZE, len, out,
                      p + 1 + SEAL_NONCE_SIZE + len);
        EVP_CIPHER_CTX_free(ctx);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        *ret_len = len;
        return 0;
}

/* ---- set-up ---- */

static struct signer *signer_of(struct vault *v) {
        return ledger_signer(v->ledger);
}

/* The certificates of a PEM chain, in order. */
static STACK_OF(X509) * pem_chain(const char *pem) {
        STACK_OF(X509) *sk = sk_X509_new_null();
        BIO *bio = BIO_new_mem_buf(pem, -1);
        X509 *x;

        if (!sk || !bio) {
                BIO_free(bio);
                sk_X509_free(sk);
                return NULL;
        }
        while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
                if (!sk_X509_push(sk, x)) {
                        X509_free(x);
                        break;
                }
        ERR_clear_error();
        BIO_free(bio);
        return sk;
}

static void note_expiry(const char *what, X509 *x, int64_t *slot) {
        int64_t t;
        if (!x || pki_cert_not_after(x, &t) < 0)
                return;
        if (*slot == 0 || t < *slot)
                *slot = t;
        if (t - now_ms() / 1000 < PKI_EXPIRY_WARN_SECONDS) {
                char when[RFC3339_MAX];
                rfc3339_format(t * 1000, when);
                log_warn("the %s certificate expires at %s, within 30 days (or has expired): renew it (coffre key import)",
                         what, when);
        }
}

struct org_walk {
        struct vault *v;
        int error;
};

static int ensure_org(const struct store_org *o, void *ud) {
        struct org_walk *w = ud;
        _cleanup_free_ char *pem = NULL;
        int r = signer_seal_chain(signer_of(w->v), o->id, *o->name ? o->name : o->id, &pem);
        STACK_OF(X509) * sk;

        if (r < 0) {
                log_error("organisation %s: no seal certificate: %s", o->id, strerror(-r));
                w->error = r;
                return 0;
        }
        sk = pem_chain(pem);
        if (sk && sk_X509_num(sk) > 0)
                note_expiry("seal", sk_X509_value(sk, 0), &w->v->seals->expiry.seal);
        sk_X509_pop_free(sk, X509_free);
        return 0;
}

/* A path of the configuration: absolute, or relative to the data directory. */
static char *config_path(const struct vault *v, const char *p) {
        return p[0] == '/' ? strdup(p) : path_join(vault_dir(v), p);
}

static int open_external_tsa(struct vault *v, struct vault_seals *s) {
        const struct vault_config *c = &v->config;
        _cleanup_free_ char *ca = NULL, *pwf = NULL;
        struct buf pw = { 0 };
        int r;

        if (!c->tsa_url[0])
                return 0;
        ca = config_path(v, c->tsa_ca_file);
        if (!ca)
                return -ENOMEM;
        if (c->tsa_username[0]) {
                pwf = config_path(v, c->tsa_password_file);
                if (!pwf)
                        return -ENOMEM;
                r = read_file_secret(pwf, 4096, &pw);
                if (r < 0)
                        return log_error_errno(r, "[tsa] password_file cannot be read: %s", strerror(-r));
                /* the first line, NUL-terminated in place */
                size_t n = 0;
                while (n < pw.len && pw.data[n] != '\n' && pw.data[n] != '\r')
                        n++;
                if (n == pw.len) {
                        buf_free_secure(&pw);
                        return log_error_errno(-EINVAL, "[tsa] password_file must end with a new line");
                }
                pw.data[n] = 0;
        }
        struct tsa_client_options o = {
                .url = c->tsa_url,
                .username = c->tsa_username,
                .password = pw.data ? (const char *) pw.data : NULL,
                .ca_file = ca,
                .timeout_ms = c->tsa_timeout * 1000u,
        };
        r = tsa_client_new(&o, &s->ext);
        buf_free_secure(&pw);
        if (r < 0)
                return log_error_errno(r, "[tsa] external TSA cannot be set up (url, ca_file): %s", strerror(-r));
        log_info("seal timestamps from the external TSA of [tsa] url");
        return vault_seal_upgrader_new(v);
}

int vault_seals_open(struct vault *v) {
        struct vault_seals *s = calloc(1, sizeof *s);
        STACK_OF(X509) *sk = NULL;
        struct org_walk w = { .v = v };
        int r;

        if (!s)
                return -ENOMEM;
        v->seals = s;
        r = signer_tsa_chain(signer_of(v), &s->tsa_chain);
        if (r < 0)
                return log_error_errno(r, "cannot read the TSA certificate from the signer: %s", strerror(-r));
        sk = pem_chain(s->tsa_chain);
        s->trust = X509_STORE_new();
        if (!sk || sk_X509_num(sk) < 2 || !s->trust ||
            X509_STORE_add_cert(s->trust, sk_X509_value(sk, sk_X509_num(sk) - 1)) != 1) {
                sk_X509_pop_free(sk, X509_free);
                ERR_clear_error();
                return log_error_errno(-EBADMSG, "the signer's TSA chain is not a certificate and its CA");
        }
        r = ledger_set_checkpoint_timestamps(v->ledger, s->trust, (int64_t) v->config.checkpoint_ts_interval * 1000);
        if (r < 0) {
                sk_X509_pop_free(sk, X509_free);
                return r;
        }
        note_expiry("TSA", sk_X509_value(sk, 0), &s->expiry.tsa);
        note_expiry("CA", sk_X509_value(sk, sk_X509_num(sk) - 1), &s->expiry.ca);
        sk_X509_pop_free(sk, X509_free);
        r = open_external_tsa(v, s);
        if (r < 0)
                return r;
        /* every organisation gets its seal key now (a vault made before seals existed too) */
        r = v->store->ops->org_foreach(v->store, ensure_org, &w);
        if (r < 0)
                return log_error_errno(r, "cannot list the organisations: %s", strerror(-r));
        return w.error;
}

void vault_seals_close(struct vault *v) {
        if (!v->seals)
                return;
        vault_seal_upgrader_free(v);
        tsa_client_free(v->seals->ext);
        X509_STORE_free(v->seals->trust);
        free(v->seals->tsa_chain);
        free(v->seals);
        v->seals = NULL;
}

void vault_cert_expiry(struct vault *v, struct vault_cert_expiry *ret) {
        *ret = v->seals ? v->seals->expiry : (struct vault_cert_expiry){ 0 };
}

const char *vault_tsa_chain(struct vault *v) {
        return v->seals ? v->seals->tsa_chain : NULL;
}

int vault_tsa_respond(struct vault *v, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
        return signer_timestamp(signer_of(v), req, len, ret, ret_len);
}

/* ---- sealing ---- */

/* A copy in malloc'd memory of what OpenSSL allocated. */
static int take_openssl(uint8_t *p, size_t n, uint8_t **ret, size_t *ret_len) {
        uint8_t *out = malloc(n);
        if (!out) {
                OPENSSL_free(p);
                return -ENOMEM;
        }
        memcpy(out, p, n);
        OPENSSL_free(p);
        *ret = out;
        *ret_len = n;
        return 0;
}

static int signer_seal_any_org(struct vault *v, const char *org_id, const uint8_t sha256[32], uint8_t **ret,
                               size_t *ret_len) {
        struct signer *sg = signer_of(v);
        int r = signer_seal(sg, org_id, sha256, now_ms(), ret, ret_len);
        if (r == -ENOKEY) {
                /* an organisation made while the server runs: its seal key now */
                struct store_org o;
                _cleanup_free_ char *pem = NULL;
                r = v->store->ops->org_get(v->store, org_id, &o);
                if (r >= 0)
                        r = signer_seal_chain(sg, org_id, *o.name ? o.name : org_id, &pem);
                if (r >= 0)
                        r = signer_seal(sg, org_id, sha256, now_ms(), ret, ret_len);
        }
        return r;
}

int vault_seal_timestamp_external(struct vault *v, const uint8_t *cms, size_t len, uint8_t **ret, size_t *ret_len,
                                  struct cades_info *ret_info) {
        struct vault_seals *s = v->seals;
        uint8_t *bt = NULL;
        size_t bt_len = 0;
        if (!s || !s->ext)
                return -ENODEV;
        int r = cades_add_timestamp(cms, len, tsa_client_post, s->ext, tsa_client_trust(s->ext), &bt, &bt_len,
                                    ret_info);
        if (r < 0)
                return r;
        return take_openssl(bt, bt_len, ret, ret_len);
}

/* B-B by the signer, then B-T through the external TSA; B-B alone when the TSA fails. */
static int seal_make_external(struct vault *v, const char *org_id, const uint8_t sha256[32], uint8_t **ret,
                              size_t *ret_len, struct cades_info *ret_info) {
        _cleanup_free_ uint8_t *bb = NULL;
        size_t bb_len = 0;
        int r = signer_seal_any_org(v, org_id, sha256, &bb, &bb_len);
        if (r < 0)
                return r;
        r = cades_check(bb, bb_len, sha256);
        if (r < 0)
                return r;
        r = vault_seal_timestamp_external(v, bb, bb_len, ret, ret_len, ret_info);
        if (r >= 0) {
                vault_seal_upgrader_kick(v); /* the TSA answers: pending upgrades now */
                return 0;
        }
        log_warn("external TSA: no timestamp (%s); the document is sealed B-B and queued for B-T", strerror(-r));
        vault_seal_upgrader_note_failure(v);
        if (ret_info) {
                r = cades_info(bb, bb_len, ret_info);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(bb);
        *ret_len = bb_len;
        return 0;
}

int vault_seal_make(struct vault *v, const char *org_id, const uint8_t sha256[32], uint8_t **ret, size_t *ret_len,
                    struct cades_info *ret_info) {
        struct signer *sg = signer_of(v);
        _cleanup_free_ uint8_t *bb = NULL, *reply = NULL;
        uint8_t *bt = NULL, *out, nonce[8];
        size_t bb_len = 0, reply_len = 0, bt_len = 0;
        int r;

        if (!v->seals)
                return -EPIPE;
        if (v->seals->ext)
                return seal_make_external(v, org_id, sha256, ret, ret_len, ret_info);
        randombytes_buf(nonce, sizeof nonce);
        nonce[0] &= 0x7f;
        /* the seal and its timestamp in one round trip, shared with concurrent uploads */
        r = signer_seal_timestamped(sg, org_id, sha256, now_ms(), nonce, &bb, &bb_len, &reply, &reply_len);
        if (r == -ENOKEY) {
                /* an organisation made while the server runs: its seal key now */
                struct store_org o;
                _cleanup_free_ char *pem = NULL;
                r = v->store->ops->org_get(v->store, org_id, &o);
                if (r >= 0)
                        r = signer_seal_chain(sg, org_id, *o.name ? o.name : org_id, &pem);
                if (r >= 0)
                        r = signer_seal_timestamped(sg, org_id, sha256, now_ms(), nonce, &bb, &bb_len, &reply,
                                                    &reply_len);
        }
        if (r < 0)
                return r;
        /* checked here, in the uploading thread: the seal as cades_check() does, the token's
         * status, imprint (over this seal's signature value) and nonce */
        r = cades_attach_reply(bb, bb_len, sha256, reply, reply_len, nonce, &bt, &bt_len, ret_info);
        if (r < 0)
                return r;
        out = malloc(bt_len);
        if (!out) {
                OPENSSL_free(bt);
                return -ENOMEM;
        }
        memcpy(out, bt, bt_len);
        OPENSSL_free(bt);
        *ret = out;
        *ret_len = bt_len;
        return 0;
}

int vault_seal_get(struct vault *v, const struct vault_actor *a, const char *id, struct store_seal *ret) {
        struct store_document d;
        int r = vault_document_get(v, a, id, &d);
        sodium_memzero(&d, sizeof d); /* only its existence in the caller's organisation is needed */
        if (r < 0)
                return r;
        return v->store->ops->seal_get(v->store, id, ret);
}

int vault_document_seal(struct vault *v, const struct vault_actor *a, const char *id, uint8_t **ret, size_t *ret_len) {
        struct store_seal s = { 0 };
        uint8_t raw[16], dek[KEYRING_KEY_SIZE];
        int r = vault_seal_get(v, a, id, &s);

        if (r < 0)
                return r;
        r = hex_decode(id, raw, sizeof raw);
        if (r >= 0)
                r = keyring_dek_get(v->keyring, raw, dek);
        if (r >= 0)
                r = vault_seal_decrypt(dek, id, s.sealed, s.sealed_len, ret, ret_len);
        sodium_memzero(dek, sizeof dek);
        free(s.sealed);
        return r;
}
