/* p11_master.h: the master key on a PKCS#11 token. Two secret keys that never leave it: an
 * AES-256 key (the URI's object label) that wraps the organisation KEKs with AES-256-GCM inside
 * the token, and a generic secret (label + "-hmac") that derives the vault's purpose keys with
 * HMAC-SHA-256 inside the token. Both CKA_SENSITIVE, not CKA_EXTRACTABLE; a key found with other
 * attributes is refused. Thread-safe (one session, under a lock). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define P11_MASTER_HMAC_SUFFIX "-hmac"
#define P11_MASTER_NONCE 12u
#define P11_MASTER_TAG 16u

struct p11_master;

/* Opens the token the URI names and logs in with the URI's PIN file. Without create, both keys
 * must be there (-ENOENT otherwise). With create, a missing AES key is generated on the token, and a
 * missing HMAC key is generated too, or made from hmac_import (32 bytes) when that is not NULL,
 * so that a migrated vault derives the same keys as before; a present HMAC key must then give the
 * same HMAC as hmac_import (-EBADMSG). -EACCES when the token refuses the PIN, -EPERM for a key
 * that may leave the token, -EINVAL (logged) for a bad URI. Logs one line on failure. */
int p11_master_open(const char *uri, bool create, const uint8_t *hmac_import, struct p11_master **ret) _warn_unused_;
void p11_master_free(struct p11_master *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct p11_master *, p11_master_free);

/* AES-256-GCM with the token's AES key: out = ciphertext || tag (len + 16 bytes). */
int p11_master_seal(struct p11_master *m, const uint8_t nonce[P11_MASTER_NONCE], const uint8_t *aad, size_t aad_len,
                    const uint8_t *in, size_t len, uint8_t *out) _warn_unused_;
/* in = ciphertext || tag (len + 16 bytes); out gets len bytes. -EBADMSG when it does not authenticate. */
int p11_master_open_sealed(struct p11_master *m, const uint8_t nonce[P11_MASTER_NONCE], const uint8_t *aad,
                           size_t aad_len, const uint8_t *in, size_t len, uint8_t *out) _warn_unused_;
/* HMAC-SHA-256 with the token's HMAC key over the concatenation of two parts (b may be NULL). */
int p11_master_hmac(struct p11_master *m, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                    uint8_t out[32]) _warn_unused_;
