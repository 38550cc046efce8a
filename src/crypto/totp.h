/* totp.h: second factor. TOTP (RFC 6238 over RFC 4226 HOTP): HMAC-SHA-1, 6 digits, 30 s steps,
 * +-1 step, a step already used refused; base32 secrets (RFC 4648) and otpauth:// URIs that
 * Google/Microsoft Authenticator and Duo read; QR codes (libqrencode) as PNG or terminal blocks;
 * one-time recovery codes, stored only as hashes. Time is passed in, never read here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

#define TOTP_SECRET_BYTES 20u   /* 160 bits, as RFC 4226 recommends */
#define TOTP_STEP_SECONDS 30u
#define TOTP_DIGITS 6u
#define TOTP_RECOVERY_CODES 10u
#define TOTP_RECOVERY_CODE_MAX 32u /* characters of one code, with its NUL */

/* HOTP value of counter (RFC 4226 section 5.3), digits 6..8. */
int totp_hotp(const uint8_t *key, size_t key_len, uint64_t counter, unsigned digits, uint32_t *ret) _warn_unused_;
/* Checks code (exactly TOTP_DIGITS decimal digits) at now (Unix seconds) for steps now-1..now+1,
 * refusing any step <= last_step (the last step accepted for this user; 0 = none). On success
 * *ret_step is the matched step, to store as the new last_step. -EACCES otherwise (a malformed
 * code too); -EINVAL for an empty or over-long key or a negative time. */
int totp_verify(const uint8_t *key, size_t key_len, const char *code, int64_t now, uint64_t last_step,
                uint64_t *ret_step) _warn_unused_;

/* RFC 4648 base32, no padding. The decoder takes lower case, spaces anywhere and correct '='
 * padding; anything else, or non-zero unused bits, is -EINVAL; more than max bytes -E2BIG. */
int totp_base32_encode(const uint8_t *p, size_t n, struct buf *out) _warn_unused_;
int totp_base32_decode(const char *s, uint8_t *out, size_t max, size_t *ret_n) _warn_unused_;
/* otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30,
 * issuer and account percent-encoded (1..256 bytes of UTF-8 each, no colon, no control
 * character, else -EINVAL). Appends to out. */
int totp_otpauth_uri(const char *issuer, const char *account, const uint8_t *key, size_t key_len,
                     struct buf *out) _warn_unused_;

/* QR code of text as a PNG (malloc'd) / as lines of Unicode half blocks for a terminal. */
int totp_qr_png(const char *text, uint8_t **ret, size_t *ret_n) _warn_unused_;
int totp_qr_terminal(const char *text, struct buf *out) _warn_unused_;

/* TOTP_RECOVERY_CODES random codes ("xxxx-xxxx-xxxx-xxxx", 80 bits as lower-case base32 letters)
 * into codes[], and the hash of each (SHA-256 of the normalised code) into hashes[]. */
int totp_recovery_codes_new(char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX],
                            uint8_t hashes[TOTP_RECOVERY_CODES][32]) _warn_unused_;
/* Hash of a code as a user typed it (case, spaces and dashes ignored): SHA-256 of its 16 letters
 * in upper case. -EINVAL when malformed (another length, a character outside base32). */
int totp_recovery_code_hash(const char *code, uint8_t out[32]) _warn_unused_;
