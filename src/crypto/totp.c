/* totp.c: the second factor's arithmetic. HOTP (RFC 4226) with HMAC-SHA-1 from OpenSSL, TOTP
 * (RFC 6238) over it with the time passed in, base32 (RFC 4648), otpauth:// URIs (Google
 * Authenticator's Key Uri Format) and one-time recovery codes. The QR codes are in totp_qr.c.
 *
 * Every buffer that held a key, an HMAC or a code is wiped before it goes out of scope. */
#include "totp.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "log.h"
#include "utf8.h"

#define TOTP_KEY_MAX 1024u      /* HMAC hashes longer keys anyway; a bound keeps callers honest */
#define TOTP_URI_FIELD_MAX 256u /* bytes of issuer or account name */
/* "xxxx-xxxx-xxxx-xxxx": 4 groups of 4 base32 letters, 80 bits. The hash is an unsalted SHA-256
 * (the header gives no room for a salt), so the bits must outlast an offline search against every
 * stored code at once: 2^80 / 10^5 codes is still 2^63 hashes. */
#define TOTP_RECOVERY_GROUPS 4u
#define TOTP_RECOVERY_GROUP_LEN 4u
#define TOTP_RECOVERY_CHARS (TOTP_RECOVERY_GROUPS * TOTP_RECOVERY_GROUP_LEN)

/* Undoes what a failed call appended to out (it may have been part of a secret). */
static void buf_rollback(struct buf *out, size_t len) {
        if (out->data && out->len > len)
                sodium_memzero(out->data + len, out->len - len);
        out->len = len;
}

static const char base32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static const uint32_t totp_pow10[] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000 };

int totp_hotp(const uint8_t *key, size_t key_len, uint64_t counter, unsigned digits, uint32_t *ret) {
        uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
        size_t mac_len = 0;
        uint32_t bin;
        unsigned off;

        if (!key || key_len == 0 || key_len > TOTP_KEY_MAX || digits < 6 || digits > 8 || !ret)
                return -EINVAL;
        for (unsigned i = 0; i < 8; i++)
                msg[i] = (uint8_t) (counter >> (56 - 8 * i));
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA1", NULL, key, key_len, msg, sizeof msg, mac, sizeof mac, &mac_len) ||
            mac_len != 20) {
                OPENSSL_cleanse(mac, sizeof mac);
                return log_openssl_errors(-EIO, "HMAC-SHA-1");
        }
        /* dynamic truncation, RFC 4226 section 5.3 */
        off = mac[19] & 0x0f;
        bin = ((uint32_t) (mac[off] & 0x7f) << 24) | ((uint32_t) mac[off + 1] << 16) | ((uint32_t) mac[off + 2] << 8) |
              (uint32_t) mac[off + 3];
        *ret = bin % totp_pow10[digits];
        OPENSSL_cleanse(mac, sizeof mac);
        OPENSSL_cleanse(&bin, sizeof bin);
        return 0;
}

/* The code of counter as TOTP_DIGITS decimal characters (leading zeros kept), NUL-terminated. */
static int totp_code_text(const uint8_t *key, size_t key_len, uint64_t counter, char out[TOTP_DIGITS + 1]) {
        uint32_t v;
        int r = totp_hotp(key, key_len, counter, TOTP_DIGITS, &v);
        if (r < 0)
                return r;
        for (unsigned i = TOTP_DIGITS; i > 0; i--) {
                out[i - 1] = (char) ('0' + v % 10);
                v /= 10;
        }
        out[TOTP_DIGITS] = 0;
        OPENSSL_cleanse(&v, sizeof v);
        return 0;
}

int totp_verify(const uint8_t *key, size_t key_len, const char *code, int64_t now, uint64_t last_step,
                uint64_t *ret_step) {
        char want[TOTP_DIGITS + 1], got[TOTP_DIGITS + 1];
        uint64_t step, found = 0;
        bool well_formed = true;
        int r = 0;

        if (!key || key_len == 0 || key_len > TOTP_KEY_MAX || !code || now < 0 || !ret_step)
                return -EINVAL;
        /* a malformed code is a wrong code: the caller answers both the same way */
        memset(got, 0, sizeof got);
        for (size_t i = 0; i <= TOTP_DIGITS; i++) {
                if (i == TOTP_DIGITS) {
                        well_formed = well_formed && code[i] == 0;
                        break;
                }
                if (code[i] < '0' || code[i] > '9') {
                        well_formed = false;
                        break;
                }
                got[i] = code[i];
        }
        step = (uint64_t) now / TOTP_STEP_SECONDS;
        /* all three steps are computed and compared whatever matches, lowest first, so that the
         * time taken says nothing about which one matched */
        for (uint64_t s = step == 0 ? 0 : step - 1; s <= step + 1; s++) {
                r = totp_code_text(key, key_len, s, want);
                if (r < 0)
                        break;
                if (CRYPTO_memcmp(want, got, TOTP_DIGITS) == 0 && s > last_step && found == 0)
                        found = s;
        }
        OPENSSL_cleanse(want, sizeof want);
        OPENSSL_cleanse(got, sizeof got);
        if (r < 0)
                return r;
        if (!well_formed || found == 0)
                return -EACCES;
        *ret_step = found;
        return 0;
}

int totp_base32_encode(const uint8_t *p, size_t n, struct buf *out) {
        char chunk[8];
        size_t start = 0;
        int r = 0;

        if ((!p && n > 0) || !out)
                return -EINVAL;
        start = out->len;
        for (size_t i = 0; i < n; i += 5) {
                uint8_t g[5] = { 0 };
                size_t take = MIN((size_t) 5, n - i);
                /* characters carrying data for 1..5 bytes: 2, 4, 5, 7, 8 */
                static const size_t chars[] = { 0, 2, 4, 5, 7, 8 };
                uint64_t v = 0;

                memcpy(g, p + i, take);
                for (unsigned k = 0; k < 5; k++)
                        v = (v << 8) | g[k];
                for (unsigned k = 0; k < 8; k++)
                        chunk[k] = base32_alphabet[(v >> (35 - 5 * k)) & 31];
                r = buf_append(out, chunk, chars[take]);
                OPENSSL_cleanse(g, sizeof g);
                OPENSSL_cleanse(&v, sizeof v);
                if (r < 0)
                        break;
        }
        OPENSSL_cleanse(chunk, sizeof chunk);
        if (r < 0)
                buf_rollback(out, start);
        return r;
}

static int base32_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a';
        if (c >= '2' && c <= '7')
                return c - '2' + 26;
        return -1;
}

int totp_base32_decode(const char *s, uint8_t *out, size_t max, size_t *ret_n) {
        size_t nchars = 0, npad = 0, n = 0;
        uint32_t acc = 0;
        unsigned bits = 0;
        int r = 0;

        if (!s || (!out && max > 0) || !ret_n)
                return -EINVAL;
        /* spaces anywhere (authenticators show secrets in groups); '=' padding only at the end */
        for (const char *c = s; *c; c++) {
                if (*c == ' ')
                        continue;
                if (*c == '=') {
                        npad++;
                        continue;
                }
                if (npad > 0 || base32_value(*c) < 0)
                        return -EINVAL;
                nchars++;
        }
        /* 1, 3 or 6 trailing characters cannot come from whole bytes */
        switch (nchars % 8) {
        case 1:
        case 3:
        case 6:
                return -EINVAL;
        default:
                break;
        }
        if (npad > 0 && (nchars + npad) % 8 != 0)
                return -EINVAL;
        if (npad >= 8)
                return -EINVAL;
        if (nchars / 8 * 5 + (nchars % 8) * 5 / 8 > max)
                return -E2BIG;

        for (const char *c = s; *c; c++) {
                if (*c == ' ' || *c == '=')
                        continue;
                acc = (acc << 5) | (uint32_t) base32_value(*c);
                bits += 5;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (uint8_t) (acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        /* the unused low bits of the last character must be zero: one spelling per value */
        if (acc != 0)
                r = -EINVAL;
        OPENSSL_cleanse(&acc, sizeof acc);
        if (r < 0) {
                OPENSSL_cleanse(out, n);
                return r;
        }
        *ret_n = n;
        return 0;
}

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static int uri_append_escaped(struct buf *out, const char *s) {
        static const char hexd[] = "0123456789ABCDEF";
        for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
                int r;
                if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                    *c == '.' || *c == '_' || *c == '~') {
                        r = buf_append(out, c, 1);
                } else {
                        char e[3] = { '%', hexd[*c >> 4], hexd[*c & 15] };
                        r = buf_append(out, e, 3);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An issuer or account name: 1..TOTP_URI_FIELD_MAX bytes of UTF-8 with no control character and
 * no colon (the Key Uri Format separates issuer and account with one). */
static bool uri_field_ok(const char *s) {
        size_t len, i = 0;
        if (!s)
                return false;
        len = strnlen(s, TOTP_URI_FIELD_MAX + 1);
        if (len == 0 || len > TOTP_URI_FIELD_MAX)
                return false;
        while (i < len) {
                uint32_t cp;
                size_t k = utf8_next((const uint8_t *) s + i, len - i, &cp);
                if (k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == ':')
                        return false;
                i += k;
        }
        return true;
}

int totp_otpauth_uri(const char *issuer, const char *account, const uint8_t *key, size_t key_len, struct buf *out) {
        struct buf secret;
        size_t start = 0;
        int r;

        if (!uri_field_ok(issuer) || !uri_field_ok(account) || !key || key_len == 0 || key_len > TOTP_KEY_MAX || !out)
                return -EINVAL;
        start = out->len;
        buf_init(&secret, 0);
        r = totp_base32_encode(key, key_len, &secret);
        if (r >= 0)
                r = buf_append_str(out, "otpauth://totp/");
        if (r >= 0)
                r = uri_append_escaped(out, issuer);
        if (r >= 0)
                r = buf_append_str(out, ":");
        if (r >= 0)
                r = uri_append_escaped(out, account);
        if (r >= 0)
                r = buf_append_str(out, "?secret=");
        if (r >= 0)
                r = buf_append(out, secret.data, secret.len);
        if (r >= 0)
                r = buf_append_str(out, "&issuer=");
        if (r >= 0)
                r = uri_append_escaped(out, issuer);
        if (r >= 0)
                r = buf_printf(out, "&algorithm=SHA1&digits=%u&period=%u", TOTP_DIGITS, TOTP_STEP_SECONDS);
        buf_free_secure(&secret);
        if (r < 0) {
                buf_rollback(out, start);
                return r;
        }
        return 0;
}

/* The 12 significant characters of a recovery code, upper case, into norm (NUL-terminated). */
static int recovery_normalise(const char *code, char norm[TOTP_RECOVERY_CHARS + 1]) {
        size_t n = 0;
        for (const char *c = code; *c; c++) {
                if (*c == ' ' || *c == '-')
                        continue;
                if (base32_value(*c) < 0 || n == TOTP_RECOVERY_CHARS) {
                        OPENSSL_cleanse(norm, TOTP_RECOVERY_CHARS + 1);
                        return -EINVAL;
                }
                norm[n++] = base32_alphabet[base32_value(*c)];
        }
        norm[n] = 0;
        if (n != TOTP_RECOVERY_CHARS) {
                OPENSSL_cleanse(norm, TOTP_RECOVERY_CHARS + 1);
                return -EINVAL;
        }
        return 0;
}

int totp_recovery_code_hash(const char *code, uint8_t out[32]) {
        char norm[TOTP_RECOVERY_CHARS + 1];
        int r;

        if (!code || !out)
                return -EINVAL;
        if (strnlen(code, TOTP_RECOVERY_CODE_MAX * 4) >= TOTP_RECOVERY_CODE_MAX * 4)
                return -EINVAL;
        r = recovery_normalise(code, norm);
        if (r < 0)
                return r;
        /* the codes carry 80 random bits each: a fast hash is enough (docs/security.md) */
        crypto_hash_sha256(out, (const unsigned char *) norm, TOTP_RECOVERY_CHARS);
        sodium_memzero(norm, sizeof norm);
        return 0;
}

int totp_recovery_codes_new(char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX],
                            uint8_t hashes[TOTP_RECOVERY_CODES][32]) {
        uint8_t rnd[TOTP_RECOVERY_CHARS * 5 / 8];
        int r = 0;

        if (!codes || !hashes)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        for (unsigned i = 0; i < TOTP_RECOVERY_CODES; i++) {
                uint32_t acc = 0;
                unsigned bits = 0;
                size_t n = 0, used = 0;
                bool again = false;

                randombytes_buf(rnd, sizeof rnd);
                for (unsigned k = 0; k < TOTP_RECOVERY_CHARS; k++) {
                        char c;
                        if (k > 0 && k % TOTP_RECOVERY_GROUP_LEN == 0)
                                codes[i][n++] = '-';
                        if (bits < 5) {
                                acc = (acc << 8) | rnd[used++];
                                bits += 8;
                        }
                        bits -= 5;
                        c = base32_alphabet[(acc >> bits) & 31];
                        acc &= (1u << bits) - 1;
                        /* lower case reads better on paper; any case is accepted back */
                        codes[i][n++] = (char) (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
                }
                codes[i][n] = 0;
                sodium_memzero(&acc, sizeof acc);
                r = totp_recovery_code_hash(codes[i], hashes[i]);
                if (r < 0)
                        break;
                /* two equal codes would be one code: draw again (chance 2^-80 per pair) */
                for (unsigned j = 0; j < i; j++)
                        if (sodium_memcmp(hashes[i], hashes[j], 32) == 0)
                                again = true;
                if (again)
                        i--;
        }
        sodium_memzero(rnd, sizeof rnd);
        if (r < 0) {
                sodium_memzero(codes, sizeof(char[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX]));
                sodium_memzero(hashes, sizeof(uint8_t[TOTP_RECOVERY_CODES][32]));
        }
        return r;
}
