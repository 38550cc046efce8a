/* hex.c: hex and base64 encoding, through libsodium's constant-time codecs. */
#include "hex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

void hex_encode(const uint8_t *p, size_t n, char *out) {
        sodium_bin2hex(out, 2 * n + 1, p, n);
}

int hex_decode(const char *s, uint8_t *out, size_t n) {
        size_t got = 0;
        const char *end = NULL;

        if (strlen(s) != 2 * n)
                return -EINVAL;
        if (sodium_hex2bin(out, n, s, 2 * n, NULL, &got, &end) != 0 || got != n || *end != 0)
                return -EINVAL;
        return 0;
}

char *base64_encode(const uint8_t *p, size_t n) {
        size_t l = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
        char *s = malloc(l);
        if (!s)
                return NULL;
        sodium_bin2base64(s, l, p, n, sodium_base64_VARIANT_ORIGINAL);
        return s;
}

int base64_decode(const char *s, size_t slen, uint8_t **ret, size_t *ret_len) {
        size_t max = slen / 4 * 3 + 3, got = 0;
        const char *end = NULL;
        uint8_t *out;

        /* libsodium 1.0.18 maps some bytes >= 0x80 to base64 digits instead of refusing them
         * (found by fuzz/note_fuzz.c): only the alphabet and padding may reach it. */
        for (size_t i = 0; i < slen; i++) {
                char c = s[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                      c == '/' || c == '='))
                        return -EINVAL;
        }
        out = malloc(max ? max : 1);
        if (!out)
                return -ENOMEM;
        if (sodium_base642bin(out, max, s, slen, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            end != s + slen) {
                free(out);
                return -EINVAL;
        }
        *ret = out;
        *ret_len = got;
        return 0;
}
