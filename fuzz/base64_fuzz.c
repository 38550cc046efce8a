/* base64_fuzz.c: fuzz target for base64_decode and hex_decode (strict decoders).
 * Properties: what decodes encodes back to the very same text (one spelling per value), and
 * encoding then decoding arbitrary bytes gives them back. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hex.h"

int fuzz_verdict;

static void check_base64(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *raw = NULL, *back = NULL;
        _cleanup_free_ char *enc = NULL, *enc2 = NULL;
        size_t n, n2;

        /* the decoder takes a length: no NUL needed, and none may be accepted */
        if (base64_decode((const char *) data, size, &raw, &n) == 0) {
                fuzz_verdict = 1;
                enc = base64_encode(raw, n);
                if (!enc)
                        abort();
                if (strlen(enc) != size || memcmp(enc, data, size) != 0)
                        abort();
        }
        /* any bytes round-trip through the encoder */
        enc2 = base64_encode(data, size);
        if (!enc2)
                abort();
        if (base64_decode(enc2, strlen(enc2), &back, &n2) != 0 || n2 != size || (size && memcmp(back, data, size)))
                abort();
}

static void check_hex(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = malloc(size + 1);
        _cleanup_free_ uint8_t *out = malloc(size / 2 + 1);
        _cleanup_free_ char *enc = malloc(size + 1);

        if (!s || !out || !enc)
                abort();
        if (memchr(data, 0, size))
                return; /* hex_decode takes a C string: a NUL ends it */
        memcpy(s, data, size);
        s[size] = 0;
        if (hex_decode(s, out, size / 2) == 0) {
                fuzz_verdict = 1;
                hex_encode(out, size / 2, enc);
                /* hex_encode writes lower case; the decoder may take upper case, nothing else */
                if (strlen(enc) != size)
                        abort();
                for (size_t i = 0; i < size; i++) {
                        char c = s[i];
                        if (c >= 'A' && c <= 'F')
                                c = (char) (c - 'A' + 'a');
                        if (c != enc[i])
                                abort();
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_verdict = 0;
        if (size == 0)
                return 0;
        /* first byte picks the decoder, so one corpus drives both */
        if (data[0] & 1)
                check_hex(data + 1, size - 1);
        else
                check_base64(data + 1, size - 1);
        return 0;
}
