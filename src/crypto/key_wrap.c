/* key_wrap.c: AES-256-GCM key wrapping with identity-binding AADs (see key_wrap.h). */
#include "key_wrap.h"

#include <stdbool.h>

#include "aead.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define WRAP_FORMAT 1u
#define WRAP_NONCE 12u
#define WRAP_TAG 16u

static size_t put_label(uint8_t *aad, const char *label) {
        size_t n = strlen(label) + 1; /* the NUL ends the label, so no field can extend it */
        memcpy(aad, label, n);
        return n;
}

static size_t put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
        return 4;
}

size_t key_wrap_aad_kek(const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version, uint8_t *aad) {
        size_t n = put_label(aad, "coffre kek v1");
        memcpy(aad + n, kek_id, KEY_WRAP_ID_SIZE);
        n += KEY_WRAP_ID_SIZE;
        return n + put_be32(aad + n, version);
}

size_t key_wrap_aad_dek(const uint8_t object_id[KEY_WRAP_ID_SIZE], const uint8_t kek_id[KEY_WRAP_ID_SIZE],
                        uint32_t kek_version, uint8_t *aad) {
        size_t n = put_label(aad, "coffre dek v1");
        memcpy(aad + n, object_id, KEY_WRAP_ID_SIZE);
        n += KEY_WRAP_ID_SIZE;
        memcpy(aad + n, kek_id, KEY_WRAP_ID_SIZE);
        n += KEY_WRAP_ID_SIZE;
        return n + put_be32(aad + n, kek_version);
}

size_t key_wrap_aad_org(const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t kek_version, const char *purpose, uint8_t *aad) {
        size_t n = put_label(aad, "coffre org key v1");
        memcpy(aad + n, kek_id, KEY_WRAP_ID_SIZE);
        n += KEY_WRAP_ID_SIZE;
        n += put_be32(aad + n, kek_version);
        size_t pl = strnlen(purpose, KEY_WRAP_PURPOSE_MAX);
        memcpy(aad + n, purpose, pl); /* last field: its length is what remains */
        return n + pl;
}

static int gcm(bool enc, const uint8_t key[KEY_WRAP_KEY_SIZE], const uint8_t nonce[WRAP_NONCE], const uint8_t *aad,
               size_t aad_len, const uint8_t *in, uint8_t *out, uint8_t tag[WRAP_TAG]) {
        EVP_CIPHER_CTX *ctx = aead_ctx_new(key, enc);
        if (!ctx)
                return -ENOMEM;
        int r = enc ? aead_seal(ctx, nonce, WRAP_NONCE, aad, aad_len, in, KEY_WRAP_KEY_SIZE, out, tag)
                    : aead_open(ctx, nonce, WRAP_NONCE, aad, aad_len, in, KEY_WRAP_KEY_SIZE, out, tag);
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

int key_wrap(const uint8_t wrapping_key[KEY_WRAP_KEY_SIZE], const uint8_t *aad, size_t aad_len,
             const uint8_t key[KEY_WRAP_KEY_SIZE], uint8_t out[KEY_WRAP_SIZE]) {
        uint8_t *nonce = out + 1, *ct = out + 1 + WRAP_NONCE, *tag = ct + KEY_WRAP_KEY_SIZE;
        out[0] = WRAP_FORMAT;
        /* Random nonces: far fewer than 2^32 keys are ever wrapped under one KEK version. */
        if (RAND_bytes(nonce, WRAP_NONCE) != 1)
                return -EIO;
        return gcm(true, wrapping_key, nonce, aad, aad_len, key, ct, tag);
}

int key_unwrap(const uint8_t wrapping_key[KEY_WRAP_KEY_SIZE], const uint8_t *aad, size_t aad_len, const uint8_t *wrapped,
               size_t wrapped_len, uint8_t out[KEY_WRAP_KEY_SIZE]) {
        uint8_t tmp[KEY_WRAP_KEY_SIZE], tag[WRAP_TAG];
        if (!wrapped || wrapped_len != KEY_WRAP_SIZE || wrapped[0] != WRAP_FORMAT)
                return -EBADMSG;
        memcpy(tag, wrapped + 1 + WRAP_NONCE + KEY_WRAP_KEY_SIZE, WRAP_TAG);
        int r = gcm(false, wrapping_key, wrapped + 1, aad, aad_len, wrapped + 1 + WRAP_NONCE, tmp, tag);
        if (r == 0)
                memcpy(out, tmp, KEY_WRAP_KEY_SIZE);
        OPENSSL_cleanse(tmp, sizeof tmp);
        return r;
}
