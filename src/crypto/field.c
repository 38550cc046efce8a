/* field.c: field-level encryption of personal data in the metadata store (docs/formats.md §4).
 *
 * A field ciphertext is version (1) ‖ nonce (12, random) ‖ AES-256-GCM ciphertext ‖ tag (16). The
 * AAD is a label and the length-prefixed table, column and row id, so no two distinct triples share
 * an encoding and a value copied to another row, column or table fails to authenticate. The blind
 * index is HMAC-SHA-256 under a separate key over a label and the length-prefixed table, column and
 * value: equal values of one column of one organisation have equal indexes, nothing more.
 *
 * Encryption goes through OpenSSL EVP (aead.c); decryption, which a listing does a thousand times
 * at once, through a field_ctx keyed once (libsodium's AES-NI code where the CPU has it). */
#include "field.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "crypto/aead.h"
#include "crypto/field_internal.h"

_Static_assert(FIELD_OVERHEAD == 1 + FIELD_NONCE_SIZE + FIELD_TAG_SIZE, "field layout");

static const char AAD_LABEL[] = "coffre field v1"; /* written with its NUL */
static const char INDEX_LABEL[] = "coffre field index v1";

/* Longest AAD: label + three length-prefixed names. */
#define AAD_MAX (sizeof AAD_LABEL + 3 * (4 + FIELD_NAME_MAX))

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static int name_ok(const char *s, size_t *ret_len) {
        if (!s)
                return -EINVAL;
        size_t l = strnlen(s, FIELD_NAME_MAX + 1);
        if (l == 0 || l > FIELD_NAME_MAX)
                return -EINVAL;
        *ret_len = l;
        return 0;
}

/* aad = label ‖ 00 ‖ len(table) ‖ table ‖ len(column) ‖ column ‖ len(row) ‖ row (lengths 4 bytes BE). */
static int field_aad(const char *table, const char *column, const char *row_id, uint8_t aad[AAD_MAX], size_t *ret_len) {
        const char *parts[3] = { table, column, row_id };
        size_t off = sizeof AAD_LABEL;
        memcpy(aad, AAD_LABEL, sizeof AAD_LABEL);
        for (size_t i = 0; i < 3; i++) {
                size_t l;
                int r = name_ok(parts[i], &l);
                if (r < 0)
                        return r;
                put_be32(aad + off, (uint32_t) l);
                memcpy(aad + off + 4, parts[i], l);
                off += 4 + l;
        }
        *ret_len = off;
        return 0;
}

int field_encrypt_with_nonce(const uint8_t key[32], const char *table, const char *column, const char *row_id,
                             const void *p, size_t n, const uint8_t nonce[FIELD_NONCE_SIZE], uint8_t *out) {
        uint8_t aad[AAD_MAX];
        size_t aad_len;
        if (!key || !out || !nonce || (!p && n > 0) || n > FIELD_VALUE_MAX)
                return -EINVAL;
        int r = field_aad(table, column, row_id, aad, &aad_len);
        if (r < 0)
                return r;
        EVP_CIPHER_CTX *ctx = aead_ctx_new(key, true);
        if (!ctx)
                return -ENOMEM;
        out[0] = FIELD_VERSION;
        memcpy(out + 1, nonce, FIELD_NONCE_SIZE);
        r = aead_seal(ctx, out + 1, FIELD_NONCE_SIZE, aad, aad_len, p, n, out + 1 + FIELD_NONCE_SIZE,
                      out + 1 + FIELD_NONCE_SIZE + n);
        EVP_CIPHER_CTX_free(ctx);
        if (r < 0)
                OPENSSL_cleanse(out, n + FIELD_OVERHEAD);
        return r;
}

int field_encrypt(const uint8_t key[32], const char *table, const char *column, const char *row_id, const void *p,
                  size_t n, uint8_t *out) {
        uint8_t nonce[FIELD_NONCE_SIZE];
        if (RAND_bytes(nonce, sizeof nonce) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        return field_encrypt_with_nonce(key, table, column, row_id, p, n, nonce, out);
}

/* A ready key: libsodium's AES-256-GCM with its precomputed state where the CPU has AES-NI and
 * PCLMUL (under half the cost of an EVP call on a short value), OpenSSL EVP elsewhere. Both
 * are the same algorithm; the tests check each against the fixed vector. */
struct field_ctx {
        crypto_aead_aes256gcm_state st; /* first: its 16-byte alignment is the allocation's */
        EVP_CIPHER_CTX *evp;            /* NULL when st is used */
};

static bool field_use_openssl = false;

void field_force_openssl(bool on) {
        field_use_openssl = on;
}

int field_ctx_new(const uint8_t key[32], struct field_ctx **ret) {
        if (!key || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        /* rounded up to a multiple of the alignment, as aligned_alloc wants */
        size_t size = (sizeof(struct field_ctx) + 15) & ~(size_t) 15;
        struct field_ctx *c = aligned_alloc(16, size);
        if (!c)
                return -ENOMEM;
        memset(c, 0, size);
        if (!field_use_openssl && crypto_aead_aes256gcm_is_available()) {
                if (crypto_aead_aes256gcm_beforenm(&c->st, key) != 0) {
                        sodium_memzero(c, size);
                        free(c);
                        return -EIO;
                }
        } else {
                c->evp = aead_ctx_new(key, false);
                if (!c->evp) {
                        free(c);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

void field_ctx_free(struct field_ctx *c) {
        if (!c)
                return;
        EVP_CIPHER_CTX_free(c->evp); /* wipes its key schedule */
        sodium_memzero(&c->st, sizeof c->st);
        free(c);
}

int field_ctx_decrypt(struct field_ctx *ctx, const char *table, const char *column, const char *row_id,
                      const uint8_t *c, size_t n, uint8_t *out, size_t *ret_n) {
        uint8_t aad[AAD_MAX];
        size_t aad_len;
        if (!ctx || !c || !ret_n || (!out && n > FIELD_OVERHEAD))
                return -EINVAL;
        int r = field_aad(table, column, row_id, aad, &aad_len);
        if (r < 0)
                return r;
        /* A short, over-long or unknown-version value is damage, like a failed tag. */
        if (n < FIELD_OVERHEAD || n - FIELD_OVERHEAD > FIELD_VALUE_MAX || c[0] != FIELD_VERSION)
                return -EBADMSG;
        size_t pn = n - FIELD_OVERHEAD;
        const uint8_t *nonce = c + 1, *ct = c + 1 + FIELD_NONCE_SIZE, *tag = ct + pn;
        uint8_t dummy;
        if (ctx->evp)
                r = aead_open(ctx->evp, nonce, FIELD_NONCE_SIZE, aad, aad_len, ct, pn, pn ? out : &dummy, tag);
        else if (crypto_aead_aes256gcm_decrypt_detached_afternm(pn ? out : &dummy, NULL, ct, pn, tag, aad, aad_len,
                                                                nonce, &ctx->st) != 0) {
                if (pn)
                        sodium_memzero(out, pn);
                r = -EBADMSG;
        }
        if (r < 0)
                return r;
        *ret_n = pn;
        return 0;
}

int field_decrypt(const uint8_t key[32], const char *table, const char *column, const char *row_id, const uint8_t *c,
                  size_t n, uint8_t *out, size_t *ret_n) {
        _cleanup_(field_ctx_freep) struct field_ctx *ctx = NULL;
        if (!key)
                return -EINVAL;
        int r = field_ctx_new(key, &ctx);
        if (r < 0)
                return r;
        return field_ctx_decrypt(ctx, table, column, row_id, c, n, out, ret_n);
}

static int hmac_part(crypto_auth_hmacsha256_state *st, const void *p, size_t n) {
        uint8_t len[4];
        put_be32(len, (uint32_t) n);
        if (crypto_auth_hmacsha256_update(st, len, sizeof len) != 0)
                return -EIO;
        if (n > 0 && crypto_auth_hmacsha256_update(st, p, n) != 0)
                return -EIO;
        return 0;
}

int field_blind_index(const uint8_t key[32], const char *table, const char *column, const void *p, size_t n,
                      uint8_t out[FIELD_INDEX_SIZE]) {
        size_t tl, cl;
        if (!key || !out || (!p && n > 0) || n > FIELD_VALUE_MAX)
                return -EINVAL;
        if (name_ok(table, &tl) < 0 || name_ok(column, &cl) < 0)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        crypto_auth_hmacsha256_state st;
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        int r = 0;
        if (crypto_auth_hmacsha256_init(&st, key, 32) != 0 ||
            crypto_auth_hmacsha256_update(&st, (const uint8_t *) INDEX_LABEL, sizeof INDEX_LABEL) != 0)
                r = -EIO;
        if (r == 0)
                r = hmac_part(&st, table, tl);
        if (r == 0)
                r = hmac_part(&st, column, cl);
        if (r == 0)
                r = hmac_part(&st, p, n);
        if (r == 0 && crypto_auth_hmacsha256_final(&st, mac) != 0)
                r = -EIO;
        sodium_memzero(&st, sizeof st);
        if (r == 0)
                memcpy(out, mac, FIELD_INDEX_SIZE);
        sodium_memzero(mac, sizeof mac);
        return r;
}
