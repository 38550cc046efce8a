/* field.h: field-level encryption of personal data in the metadata store. AES-256-GCM under an
 * organisation's field key (keyring_org_key purpose "field"), the AAD binding each ciphertext to
 * its table, column and row so that a value moved to another row fails; and an HMAC-SHA-256 blind
 * index under a separate key (purpose "field-index") for exact lookups, which reveals equality. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define FIELD_OVERHEAD 29u /* bytes added to a value: version 1 + nonce 12 + tag 16 */
#define FIELD_INDEX_SIZE 32u

/* out must hold n + FIELD_OVERHEAD bytes. */
int field_encrypt(const uint8_t key[32], const char *table, const char *column, const char *row_id,
                  const void *p, size_t n, uint8_t *out) _warn_unused_;
/* out must hold n - FIELD_OVERHEAD bytes; *ret_n is the plaintext length. -EBADMSG on any
 * mismatch (other key, table, column or row, damage). */
int field_decrypt(const uint8_t key[32], const char *table, const char *column, const char *row_id,
                  const uint8_t *c, size_t n, uint8_t *out, size_t *ret_n) _warn_unused_;
/* A key made ready once (its AES key schedule) for the decryption of many values, such as the
 * names of a listing: field_ctx_decrypt is field_decrypt without the per-call setup. One thread
 * at a time per context; field_ctx_free wipes it. */
struct field_ctx;
int field_ctx_new(const uint8_t key[32], struct field_ctx **ret) _warn_unused_;
int field_ctx_decrypt(struct field_ctx *ctx, const char *table, const char *column, const char *row_id,
                      const uint8_t *c, size_t n, uint8_t *out, size_t *ret_n) _warn_unused_;
void field_ctx_free(struct field_ctx *ctx);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct field_ctx *, field_ctx_free);
/* Blind index of a value already normalised by the caller (e-mail: lower case), bound to its
 * table and column. */
int field_blind_index(const uint8_t key[32], const char *table, const char *column, const void *p, size_t n,
                      uint8_t out[FIELD_INDEX_SIZE]) _warn_unused_;
