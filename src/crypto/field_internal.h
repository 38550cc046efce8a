/* field_internal.h: the field cipher's pieces that tests reach for and nothing else should: the
 * encryption with a caller-chosen nonce (for the fixed test vector of docs/formats.md) and the AAD
 * encoding. Production code uses field.h, which always draws a fresh random nonce. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define FIELD_VERSION 1u
#define FIELD_NONCE_SIZE 12u
#define FIELD_TAG_SIZE 16u
/* Longest table, column or row id name accepted in an AAD or index (bytes). */
#define FIELD_NAME_MAX 255u
/* Longest value (bytes): a field is a short string, never a document. */
#define FIELD_VALUE_MAX (1u << 20)

int field_encrypt_with_nonce(const uint8_t key[32], const char *table, const char *column, const char *row_id,
                             const void *p, size_t n, const uint8_t nonce[FIELD_NONCE_SIZE], uint8_t *out)
        _warn_unused_;
