/* format.c: backup key derivation, blob ids and the sealing of blobs and metadata records. */
#include "backup/format.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <zstd.h>

#include "crypto/aead.h"
#include "hex.h"

#define ZSTD_LEVEL 3

static void derive(const uint8_t key[BACKUP_KEY_SIZE], const char *label, uint8_t out[BACKUP_KEY_SIZE]) {
        crypto_generichash(out, BACKUP_KEY_SIZE, (const uint8_t *) label, strlen(label), key, BACKUP_KEY_SIZE);
}

int backup_keys_new(const uint8_t backup_key[BACKUP_KEY_SIZE], struct backup_keys **ret) {
        struct backup_keys *k = sodium_malloc(sizeof *k);

        if (!k)
                return -ENOMEM;
        derive(backup_key, "coffre-backup-id", k->id);
        derive(backup_key, "coffre-backup-blob", k->blob);
        derive(backup_key, "coffre-backup-meta", k->meta);
        derive(backup_key, "coffre-backup-cdc", k->chunker);
        derive(backup_key, "coffre-backup-config", k->config);
        *ret = k;
        return 0;
}

void backup_keys_free(struct backup_keys *k) {
        sodium_free(k); /* wipes */
}

void backup_blob_id(const struct backup_keys *k, const uint8_t *p, size_t n, backup_id *ret) {
        crypto_auth_hmacsha256_state st;
        unsigned len = 0;

        /* OpenSSL's SHA-256 uses the CPU's SHA extensions where there are some (several times
         * libsodium's portable code, which was most of a backup run's time); should it fail, the
         * same HMAC-SHA-256 comes from libsodium, so an id never depends on which one ran. */
        if (HMAC(EVP_sha256(), k->id, BACKUP_KEY_SIZE, p, n, ret->b, &len) && len == BACKUP_ID_SIZE)
                return;
        crypto_auth_hmacsha256_init(&st, k->id, BACKUP_KEY_SIZE);
        crypto_auth_hmacsha256_update(&st, p, n);
        crypto_auth_hmacsha256_final(&st, ret->b);
        sodium_memzero(&st, sizeof st);
}

void backup_content_id(const uint8_t *p, size_t n, backup_id *ret) {
        SHA256(p, n, ret->b);
}

void backup_id_hex(const backup_id *id, char out[BACKUP_ID_HEX + 1]) {
        hex_encode(id->b, BACKUP_ID_SIZE, out);
}

int backup_id_parse(const char *hex, backup_id *ret) {
        if (!hex || strlen(hex) != BACKUP_ID_HEX)
                return -EINVAL;
        for (const char *c = hex; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
                        return -EINVAL; /* lower case only: one name per id */
        return hex_decode(hex, ret->b, BACKUP_ID_SIZE);
}

static int seal(const uint8_t key[BACKUP_KEY_SIZE], const uint8_t *aad, size_t aad_len, const uint8_t *p, size_t n,
                struct buf *out) {
        EVP_CIPHER_CTX *ctx;
        uint8_t *dst;
        int r;

        if (n > INT32_MAX)
                return -E2BIG;
        r = buf_reserve(out, n + BACKUP_SEAL_OVERHEAD);
        if (r < 0)
                return r;
        dst = out->data + out->len;
        randombytes_buf(dst, BACKUP_NONCE_SIZE);
        ctx = aead_ctx_new(key, true);
        if (!ctx)
                return -ENOMEM;
        r = aead_seal(ctx, dst, BACKUP_NONCE_SIZE, aad, aad_len, p, n, dst + BACKUP_NONCE_SIZE,
                      dst + BACKUP_NONCE_SIZE + n);
        EVP_CIPHER_CTX_free(ctx);
        if (r < 0)
                return r;
        out->len += n + BACKUP_SEAL_OVERHEAD;
        return 0;
}

static int unseal(const uint8_t key[BACKUP_KEY_SIZE], const uint8_t *aad, size_t aad_len, const uint8_t *sealed,
                  size_t sealed_len, uint8_t *out) {
        EVP_CIPHER_CTX *ctx;
        size_t n;
        int r;

        if (sealed_len < BACKUP_SEAL_OVERHEAD || sealed_len - BACKUP_SEAL_OVERHEAD > INT32_MAX)
                return -EBADMSG;
        n = sealed_len - BACKUP_SEAL_OVERHEAD;
        ctx = aead_ctx_new(key, false);
        if (!ctx)
                return -ENOMEM;
        r = aead_open(ctx, sealed, BACKUP_NONCE_SIZE, aad, aad_len, sealed + BACKUP_NONCE_SIZE, n, out,
                      sealed + BACKUP_NONCE_SIZE + n);
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

static size_t blob_aad(const backup_id *id, uint8_t flags, uint32_t raw_len, uint8_t aad[8 + BACKUP_ID_SIZE + 5]) {
        memcpy(aad, "CFRBLOB1", 8);
        memcpy(aad + 8, id->b, BACKUP_ID_SIZE);
        aad[8 + BACKUP_ID_SIZE] = flags;
        backup_put_u32(aad + 9 + BACKUP_ID_SIZE, raw_len);
        return 8 + BACKUP_ID_SIZE + 5;
}

int backup_blob_seal(const struct backup_keys *k, const backup_id *id, const uint8_t *p, size_t n, struct buf *out,
                     uint8_t *ret_flags) {
        uint8_t aad[8 + BACKUP_ID_SIZE + 5];
        _cleanup_free_ uint8_t *z = NULL;
        size_t bound, zn;
        uint8_t flags = 0;

        if (n > BACKUP_BLOB_MAX)
                return -E2BIG;
        bound = ZSTD_compressBound(n);
        z = malloc(bound ? bound : 1);
        if (!z)
                return -ENOMEM;
        zn = ZSTD_compress(z, bound, p, n, ZSTD_LEVEL);
        if (!ZSTD_isError(zn) && zn < n) {
                flags = BACKUP_BLOB_ZSTD;
                p = z;
                n = zn;
        }
        size_t aad_len = blob_aad(id, flags, (uint32_t) (flags ? (size_t) ZSTD_getFrameContentSize(z, zn) : n), aad);
        int r = seal(k->blob, aad, aad_len, p, n, out);
        if (r < 0)
                return r;
        *ret_flags = flags;
        return 0;
}

int backup_blob_open(const struct backup_keys *k, const backup_id *id, uint8_t flags, uint32_t raw_len,
                     const uint8_t *sealed, size_t sealed_len, struct buf *out) {
        uint8_t aad[8 + BACKUP_ID_SIZE + 5];
        _cleanup_free_ uint8_t *tmp = NULL;
        size_t n;
        backup_id got;
        int r;

        if ((flags & ~BACKUP_BLOB_ZSTD) != 0 || raw_len > BACKUP_BLOB_MAX || sealed_len < BACKUP_SEAL_OVERHEAD)
                return -EBADMSG;
        n = sealed_len - BACKUP_SEAL_OVERHEAD;
        if (!(flags & BACKUP_BLOB_ZSTD) && n != raw_len)
                return -EBADMSG;
        tmp = malloc(n ? n : 1);
        if (!tmp)
                return -ENOMEM;
        r = unseal(k->blob, aad, blob_aad(id, flags, raw_len, aad), sealed, sealed_len, tmp);
        if (r < 0)
                return -EBADMSG;
        out->len = 0;
        r = buf_reserve(out, raw_len ? raw_len : 1);
        if (r < 0)
                return r;
        if (flags & BACKUP_BLOB_ZSTD) {
                size_t d = ZSTD_decompress(out->data, raw_len, tmp, n);
                if (ZSTD_isError(d) || d != raw_len)
                        return -EBADMSG;
        } else
                memcpy(out->data, tmp, n);
        out->len = raw_len;
        backup_blob_id(k, out->data, out->len, &got);
        if (sodium_memcmp(got.b, id->b, BACKUP_ID_SIZE) != 0)
                return -EBADMSG;
        return 0;
}

int backup_meta_seal(const struct backup_keys *k, const uint8_t *aad, size_t aad_len, const uint8_t *p, size_t n,
                     struct buf *out) {
        return seal(k->meta, aad, aad_len, p, n, out);
}

int backup_meta_open(const struct backup_keys *k, const uint8_t *aad, size_t aad_len, const uint8_t *sealed,
                     size_t sealed_len, struct buf *out) {
        int r;

        if (sealed_len < BACKUP_SEAL_OVERHEAD)
                return -EBADMSG;
        out->len = 0;
        r = buf_reserve(out, sealed_len - BACKUP_SEAL_OVERHEAD + 1);
        if (r < 0)
                return r;
        r = unseal(k->meta, aad, aad_len, sealed, sealed_len, out->data);
        if (r < 0)
                return -EBADMSG;
        out->len = sealed_len - BACKUP_SEAL_OVERHEAD;
        return 0;
}
