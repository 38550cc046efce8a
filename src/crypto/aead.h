/* aead.h: the one AES-256-GCM path of the crypto module (OpenSSL EVP). A context is keyed once and
 * reused for many messages, so a stream of segments costs no allocation per segment. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "macro.h"

#define AEAD_KEY_SIZE 32u
#define AEAD_TAG_SIZE 16u

/* NULL on allocation or library failure. Free with EVP_CIPHER_CTX_free (it wipes the key schedule). */
EVP_CIPHER_CTX *aead_ctx_new(const uint8_t key[AEAD_KEY_SIZE], bool encrypt);
/* Encrypts n bytes (n < 2^31) of in into out (in may equal out) and writes the tag. */
int aead_seal(EVP_CIPHER_CTX *ctx, const uint8_t *iv, size_t iv_len, const uint8_t *aad, size_t aad_len,
              const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[AEAD_TAG_SIZE]) _warn_unused_;
/* Decrypts and checks the tag; -EBADMSG (and out wiped) when it does not authenticate. */
int aead_open(EVP_CIPHER_CTX *ctx, const uint8_t *iv, size_t iv_len, const uint8_t *aad, size_t aad_len,
              const uint8_t *in, size_t n, uint8_t *out, const uint8_t tag[AEAD_TAG_SIZE]) _warn_unused_;
