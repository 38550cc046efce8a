/* aead.c: AES-256-GCM through OpenSSL EVP, shared by the object stream and key wrapping.
 *
 * The OpenSSL error queue is drained here, at the module edge: an internal failure becomes one
 * log line and -EIO; a failed authentication (-EBADMSG) is the caller's to report, so its queue
 * is only cleared. */
#include "aead.h"

#include <errno.h>
#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "log.h"

#define AEAD_FAILED() log_openssl_errors(-EIO, "AES-256-GCM")

EVP_CIPHER_CTX *aead_ctx_new(const uint8_t key[AEAD_KEY_SIZE], bool encrypt) {
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        if (!ctx) {
                ERR_clear_error();
                return NULL; /* out of memory */
        }
        if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL, encrypt ? 1 : 0) != 1) {
                (void) AEAD_FAILED();
                EVP_CIPHER_CTX_free(ctx);
                return NULL;
        }
        return ctx;
}

/* Sets the IV (and its length, when it changes) and feeds the AAD. */
static int aead_start(EVP_CIPHER_CTX *ctx, const uint8_t *iv, size_t iv_len, const uint8_t *aad, size_t aad_len) {
        int l;
        if (iv_len == 0 || iv_len > INT_MAX || aad_len > INT_MAX)
                return -EINVAL;
        if ((size_t) EVP_CIPHER_CTX_get_iv_length(ctx) != iv_len &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int) iv_len, NULL) != 1)
                return AEAD_FAILED();
        if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) != 1)
                return AEAD_FAILED();
        if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &l, aad, (int) aad_len) != 1)
                return AEAD_FAILED();
        return 0;
}

int aead_seal(EVP_CIPHER_CTX *ctx, const uint8_t *iv, size_t iv_len, const uint8_t *aad, size_t aad_len,
              const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[AEAD_TAG_SIZE]) {
        int l, r;
        if (n > INT_MAX)
                return -EINVAL;
        r = aead_start(ctx, iv, iv_len, aad, aad_len);
        if (r < 0)
                return r;
        if (n > 0 && (EVP_EncryptUpdate(ctx, out, &l, in, (int) n) != 1 || (size_t) l != n))
                return AEAD_FAILED();
        if (EVP_EncryptFinal_ex(ctx, out + n, &l) != 1 || l != 0 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_SIZE, tag) != 1)
                return AEAD_FAILED();
        return 0;
}

int aead_open(EVP_CIPHER_CTX *ctx, const uint8_t *iv, size_t iv_len, const uint8_t *aad, size_t aad_len,
              const uint8_t *in, size_t n, uint8_t *out, const uint8_t tag[AEAD_TAG_SIZE]) {
        int l, r;
        if (n > INT_MAX)
                return -EINVAL;
        r = aead_start(ctx, iv, iv_len, aad, aad_len);
        if (r < 0)
                return r;
        if (n > 0 && (EVP_DecryptUpdate(ctx, out, &l, in, (int) n) != 1 || (size_t) l != n)) {
                OPENSSL_cleanse(out, n);
                return AEAD_FAILED();
        }
        /* The tag is copied by OpenSSL; the cast only satisfies the ctrl prototype. */
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_SIZE, (void *) tag) != 1) {
                OPENSSL_cleanse(out, n);
                return AEAD_FAILED();
        }
        if (EVP_DecryptFinal_ex(ctx, out + n, &l) != 1) {
                OPENSSL_cleanse(out, n);
                ERR_clear_error();
                return -EBADMSG;
        }
        return 0;
}
