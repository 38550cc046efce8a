/* keyload.c: private keys for the signer from a PEM file or a PKCS#11 token (libp11). */
#include "keyload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libp11.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "crypto/p11_uri.h"
#include "fileio.h"
#include "log.h"

#define KEYLOAD_FILE_MAX (64u * 1024u)

struct loaded_key {
        EVP_PKEY *pkey;
        PKCS11_CTX *ctx; /* token keys: the module stays loaded while the key is used */
        PKCS11_SLOT *slots;
        unsigned n_slots;
};

void keyload_free(struct loaded_key *lk) {
        if (!lk)
                return;
        EVP_PKEY_free(lk->pkey);
        if (lk->ctx) {
                if (lk->slots)
                        PKCS11_release_all_slots(lk->ctx, lk->slots, lk->n_slots);
                PKCS11_CTX_unload(lk->ctx);
                PKCS11_CTX_free(lk->ctx);
        }
        free(lk);
}

EVP_PKEY *keyload_pkey(const struct loaded_key *lk) {
        return lk ? lk->pkey : NULL;
}

int keyload_is_token(const struct loaded_key *lk) {
        return lk && lk->ctx != NULL;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u) {
        (void) buf, (void) size, (void) rwflag, (void) u;
        return 0; /* an encrypted key is refused, never prompted for */
}

static int load_file(const char *path, EVP_PKEY **ret) {
        struct stat st;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                int r = negative_errno();
                return log_error_errno(r, "cannot open the key %s: %s", path, strerror(-r));
        }
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t) st.st_size > KEYLOAD_FILE_MAX)
                return log_error_errno(-EINVAL, "the key %s is not a regular file of a key's size", path);
        if ((st.st_mode & 077) != 0 || st.st_uid != geteuid())
                return log_error_errno(-EPERM, "the key %s may be read by others or is not ours (it must be 0600)",
                                       path);
        if (sodium_init() < 0)
                return -EIO;
        size_t size = (size_t) st.st_size;
        char *text = sodium_malloc(size);
        if (!text)
                return -ENOMEM;
        ssize_t n = read_full(fd, text, size);
        EVP_PKEY *k = NULL;
        if (n == (ssize_t) size) {
                BIO *b = BIO_new_mem_buf(text, (int) size);
                if (b)
                        k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
                BIO_free(b);
        }
        sodium_free(text); /* wipes */
        ERR_clear_error();
        if (!k)
                return log_error_errno(-EINVAL, "%s is not an unencrypted PEM private key", path);
        *ret = k;
        return 0;
}

static bool key_matches(const PKCS11_KEY *k, const struct p11_uri *u) {
        if (!k->isPrivate)
                return false;
        if (u->object[0] && (!k->label || strcmp(k->label, u->object) != 0))
                return false;
        if (u->id_len && (k->id_len != u->id_len || memcmp(k->id, u->id, u->id_len) != 0))
                return false;
        return true;
}

static int load_token(const char *spec, struct loaded_key *lk) {
        struct p11_uri u;
        const char *why = NULL;
        int r = p11_uri_parse(spec, &u, &why);
        if (r < 0)
                return log_error_errno(r, "bad key URI: %s", why);
        if (u.type[0] && strcmp(u.type, "private") != 0)
                return log_error_errno(-EINVAL, "the key URI names a %s object, not a private key", u.type);

        lk->ctx = PKCS11_CTX_new();
        if (!lk->ctx)
                return -ENOMEM;
        if (PKCS11_CTX_load(lk->ctx, p11_uri_module(&u)) < 0) {
                PKCS11_CTX_free(lk->ctx);
                lk->ctx = NULL;
                ERR_clear_error();
                return log_error_errno(-ENOENT, "cannot load the PKCS#11 module %s", p11_uri_module(&u));
        }
        if (PKCS11_enumerate_slots(lk->ctx, &lk->slots, &lk->n_slots) < 0) {
                ERR_clear_error();
                return log_error_errno(-EIO, "the PKCS#11 module lists no slots");
        }
        PKCS11_SLOT *slot = NULL;
        for (unsigned i = 0; i < lk->n_slots && !slot; i++) {
                PKCS11_SLOT *s = &lk->slots[i];
                if (s->token && s->token->initialized && (!u.token[0] || strcmp(s->token->label, u.token) == 0))
                        slot = s;
        }
        if (!slot)
                return log_error_errno(-ENOENT, "no PKCS#11 token labelled \"%s\"", u.token);

        char *pin = NULL;
        r = p11_uri_read_pin(&u, &pin);
        if (r == -ENOENT && !u.pin_source[0])
                pin = NULL;
        else if (r < 0)
                return log_error_errno(r, "cannot read the PIN file %s: %s", u.pin_source,
                                       r == -EPERM     ? "group or others may read it, or it is not ours"
                                       : r == -EBADMSG ? "empty or too long"
                                                       : strerror(-r));
        if (pin) {
                int lr = PKCS11_login(slot, 0, pin);
                sodium_free(pin); /* wipes */
                if (lr != 0) {
                        ERR_clear_error();
                        return log_error_errno(-EACCES, "the PKCS#11 token \"%s\" refused the PIN", slot->token->label);
                }
        }
        PKCS11_KEY *keys = NULL;
        unsigned n_keys = 0;
        if (PKCS11_enumerate_keys(slot->token, &keys, &n_keys) < 0) {
                ERR_clear_error();
                return log_error_errno(-EIO, "cannot list the keys of the PKCS#11 token");
        }
        PKCS11_KEY *found = NULL;
        for (unsigned i = 0; i < n_keys; i++) {
                if (!key_matches(&keys[i], &u))
                        continue;
                if (found)
                        return log_error_errno(-EINVAL, "the key URI matches more than one private key");
                found = &keys[i];
        }
        if (!found)
                return log_error_errno(-ENOENT, "no private key \"%s\" on the PKCS#11 token%s", u.object,
                                       pin ? "" : " (no pin-source: a private key needs a login)");
        lk->pkey = PKCS11_get_private_key(found);
        ERR_clear_error();
        if (!lk->pkey)
                return log_error_errno(-EIO, "the PKCS#11 token did not give the private key");
        return 0;
}

int keyload_from_text(const char *text, size_t len, const char *name, bool allow_token, struct loaded_key **ret) {
        if (!text || !ret)
                return -EINVAL;
        _cleanup_(keyload_freep) struct loaded_key *lk = calloc(1, sizeof *lk);
        if (!lk)
                return -ENOMEM;
        if (len > 7 && p11_uri_is(text)) {
                if (!allow_token)
                        return log_error_errno(-EOPNOTSUPP,
                                               "%s names a key on a PKCS#11 token, which cannot be used here", name);
                char uri[P11_URI_MAX + 1];
                size_t n = strcspn(text, "\r\n");
                if (n > P11_URI_MAX || n > len)
                        return log_error_errno(-EINVAL, "%s: the PKCS#11 URI is too long", name);
                memcpy(uri, text, n);
                uri[n] = 0;
                int r = load_token(uri, lk);
                if (r < 0)
                        return r;
        } else {
                BIO *b = BIO_new_mem_buf(text, (int) len);
                if (b)
                        lk->pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
                BIO_free(b);
                ERR_clear_error();
                if (!lk->pkey)
                        return log_error_errno(-EINVAL, "%s is not an unencrypted PEM private key", name);
        }
        *ret = TAKE_PTR(lk);
        return 0;
}

EVP_PKEY *keyload_take(struct loaded_key *lk) {
        if (!lk)
                return NULL;
        EVP_PKEY *k = TAKE_PTR(lk->pkey);
        if (lk->ctx)
                return k; /* the module and its session stay for the process's life */
        keyload_free(lk);
        return k;
}

int keyload_open(const char *spec, const char *base_dir, struct loaded_key **ret) {
        if (!spec || !*spec || !ret)
                return -EINVAL;
        _cleanup_(keyload_freep) struct loaded_key *lk = calloc(1, sizeof *lk);
        if (!lk)
                return -ENOMEM;
        int r;
        if (p11_uri_is(spec))
                r = load_token(spec, lk);
        else {
                _cleanup_free_ char *path = base_dir && spec[0] != '/' ? path_join(base_dir, spec) : strdup(spec);
                if (!path)
                        return -ENOMEM;
                r = load_file(path, &lk->pkey);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(lk);
        return 0;
}
