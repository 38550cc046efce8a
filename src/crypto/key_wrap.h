/* key_wrap.h: wrapping one 32-byte key under another (AES-256-GCM, random nonce) with an AAD that
 * names the wrapped key, so a wrapped key only opens in the row it was made for. Byte layout in
 * docs/formats.md ("Keyring"). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define KEY_WRAP_KEY_SIZE 32u
#define KEY_WRAP_ID_SIZE 16u
/* format byte (1) || nonce (12) || ciphertext (32) || tag (16) */
#define KEY_WRAP_SIZE 61u
#define KEY_WRAP_PURPOSE_MAX 64u
#define KEY_WRAP_AAD_MAX 160u

/* AADs (written into aad, KEY_WRAP_AAD_MAX bytes; return the length used). */
size_t key_wrap_aad_kek(const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t version, uint8_t *aad);
size_t key_wrap_aad_dek(const uint8_t object_id[KEY_WRAP_ID_SIZE], const uint8_t kek_id[KEY_WRAP_ID_SIZE],
                        uint32_t kek_version, uint8_t *aad);
/* purpose: 1..KEY_WRAP_PURPOSE_MAX characters, checked by the caller. */
size_t key_wrap_aad_org(const uint8_t kek_id[KEY_WRAP_ID_SIZE], uint32_t kek_version, const char *purpose, uint8_t *aad);

int key_wrap(const uint8_t wrapping_key[KEY_WRAP_KEY_SIZE], const uint8_t *aad, size_t aad_len,
             const uint8_t key[KEY_WRAP_KEY_SIZE], uint8_t out[KEY_WRAP_SIZE]) _warn_unused_;
/* -EBADMSG when the wrapped key does not authenticate (wrong key, other row, altered bytes). */
int key_unwrap(const uint8_t wrapping_key[KEY_WRAP_KEY_SIZE], const uint8_t *aad, size_t aad_len, const uint8_t *wrapped,
               size_t wrapped_len, uint8_t out[KEY_WRAP_KEY_SIZE]) _warn_unused_;
