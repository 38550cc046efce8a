/* base32_fuzz.c: fuzz target for totp_base32_decode (TOTP secrets typed or pasted by people) and
 * totp_recovery_code_hash, which shares its alphabet.
 * Properties: what decodes encodes back to the input with spaces and padding dropped and letters
 * upper-cased (one value per spelling, no lost or invented bits); one byte less of room gives
 * -E2BIG, never a short result; arbitrary bytes survive encode then decode; a recovery code that
 * hashes has exactly 16 significant characters and hashes like its normal form. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto/totp.h"
#include "fuzz.h"

int fuzz_verdict;

static void check_decode(const char *s, size_t size) {
        _cleanup_free_ uint8_t *out = malloc(size + 1);
        _cleanup_free_ char *norm = malloc(size + 1);
        _cleanup_buf_ struct buf enc;
        size_t n = 0, k = 0;

        if (!out || !norm)
                abort();
        buf_init(&enc, 0);
        if (totp_base32_decode(s, out, size, &n) != 0)
                return;
        fuzz_verdict = 1;
        for (size_t i = 0; i < size; i++) {
                char c = s[i];
                if (c == ' ' || c == '=')
                        continue;
                norm[k++] = (char) (c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        }
        norm[k] = 0;
        if (totp_base32_encode(out, n, &enc) != 0)
                abort();
        if (enc.len != k || (k && memcmp(enc.data, norm, k) != 0))
                abort();
        if (n > 0) {
                size_t m = 12345;
                if (totp_base32_decode(s, out, n - 1, &m) != -E2BIG || m != 12345)
                        abort();
        }
}

static void check_round_trip(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *back = malloc(size + 1);
        _cleanup_buf_ struct buf enc;
        size_t n = 0;

        if (!back)
                abort();
        buf_init(&enc, 0);
        if (totp_base32_encode(data, size, &enc) != 0 || enc.len != (size * 8 + 4) / 5)
                abort();
        if (totp_base32_decode(buf_str(&enc) ? buf_str(&enc) : "", back, size, &n) != 0 || n != size ||
            (size && memcmp(back, data, size) != 0))
                abort();
}

static void check_recovery(const char *s, size_t size) {
        uint8_t h[32], h2[32];
        char norm[17];
        size_t k = 0;

        if (totp_recovery_code_hash(s, h) != 0)
                return;
        for (size_t i = 0; i < size; i++) {
                char c = s[i];
                if (c == ' ' || c == '-')
                        continue;
                if (k == 16)
                        abort();
                norm[k++] = (char) (c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        }
        norm[k] = 0;
        if (k != 16 || totp_recovery_code_hash(norm, h2) != 0 || memcmp(h, h2, 32) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL;

        fuzz_verdict = 0;
        check_round_trip(data, size);
        if (memchr(data, 0, size))
                return 0; /* the decoder takes a C string: a NUL would end it */
        s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = 0;
        check_decode(s, size);
        check_recovery(s, size);
        return 0;
}
