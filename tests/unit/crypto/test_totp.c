/* test_totp.c: the second factor. RFC 4226 appendix D and RFC 6238 appendix B known answers (read
 * from tests/data/totp), codes made by oathtool accepted, the +-1 step window, replay refusal,
 * base32 (RFC 4648 section 10), otpauth:// URIs, QR codes read back by zbarimg (PNG, and the
 * terminal drawing turned back into an image), recovery codes and their hashes. Time is always
 * passed in. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <png.h>
#include <sodium.h>

#include "buf.h"
#include "crypto/totp.h"
#include "fileio.h"
#include "hex.h"

static const uint8_t RFC_KEY[] = "12345678901234567890"; /* the 20-byte seed of both RFCs */

/* Reads tests/data/totp/<name> into rows of tab-separated fields; skips '#' lines and the header. */
struct tsv {
        struct buf raw;
        char *row[32][12];
        size_t nrows, nfields[32];
};

static void tsv_load(const char *name, struct tsv *t) {
        const char *d = getenv("COFFRE_TEST_DATA");
        _cleanup_free_ char *dir = NULL, *path = NULL;
        char *line, *next;
        bool header = true;

        assert_non_null(d);
        dir = path_join(d, "totp");
        path = path_join(dir, name);
        memset(t, 0, sizeof *t);
        buf_init(&t->raw, 0);
        assert_int_equal(read_file(path, 1 << 20, &t->raw), 0);
        for (line = buf_str(&t->raw); line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (line[0] == '#' || line[0] == 0)
                        continue;
                if (header) { /* the column names */
                        header = false;
                        continue;
                }
                assert_true(t->nrows < 32);
                size_t n = 0;
                for (char *f = line; f; n++) {
                        assert_true(n < 12);
                        t->row[t->nrows][n] = f;
                        f = strchr(f, '\t');
                        if (f)
                                *f++ = 0;
                }
                t->nfields[t->nrows++] = n;
        }
}

static void key_from_hex(const char *h, uint8_t *key, size_t max, size_t *n) {
        *n = strlen(h) / 2;
        assert_true(*n <= max);
        assert_int_equal(hex_decode(h, key, *n), 0);
}

static void code_of(const uint8_t *key, size_t n, uint64_t step, char out[7]) {
        uint32_t v;
        assert_int_equal(totp_hotp(key, n, step, 6, &v), 0);
        snprintf(out, 7, "%06u", (unsigned) v);
}

static void test_hotp_rfc4226(void **state) {
        struct tsv t;
        tsv_load("rfc4226_appendix_d.tsv", &t);
        assert_int_equal(t.nrows, 10);
        for (size_t i = 0; i < t.nrows; i++) {
                uint8_t key[64];
                size_t n;
                uint32_t v;
                assert_int_equal(t.nfields[i], 7);
                assert_string_equal(t.row[i][3], "SHA1");
                key_from_hex(t.row[i][0], key, sizeof key, &n);
                assert_int_equal(totp_hotp(key, n, strtoull(t.row[i][1], NULL, 10), 6, &v), 0);
                assert_int_equal(v, strtoul(t.row[i][6], NULL, 10));
                /* the truncated value modulo 10^8 as well: the digits are not a fixed 6 */
                assert_int_equal(totp_hotp(key, n, strtoull(t.row[i][1], NULL, 10), 8, &v), 0);
                assert_int_equal(v, strtoul(t.row[i][5], NULL, 10) % 100000000u);
        }
        buf_free(&t.raw);
}

static void test_totp_rfc6238(void **state) {
        struct tsv t;
        size_t sha1 = 0;
        tsv_load("rfc6238_appendix_b.tsv", &t);
        for (size_t i = 0; i < t.nrows; i++) {
                uint8_t key[64];
                size_t n;
                uint32_t v;
                uint64_t step;
                int64_t now;
                char code[7];

                assert_int_equal(t.nfields[i], 9);
                if (strcmp(t.row[i][7], "SHA1") != 0)
                        continue; /* coffre's TOTP is HMAC-SHA-1 only */
                sha1++;
                key_from_hex(t.row[i][0], key, sizeof key, &n);
                now = strtoll(t.row[i][1], NULL, 10);
                assert_int_equal((uint64_t) now / TOTP_STEP_SECONDS, strtoull(t.row[i][5], NULL, 16));
                assert_int_equal(totp_hotp(key, n, (uint64_t) now / TOTP_STEP_SECONDS, 8, &v), 0);
                assert_int_equal(v, strtoul(t.row[i][8], NULL, 10));
                /* the 6-digit code is the low 6 digits of the 8-digit one; verify takes it at that time */
                snprintf(code, sizeof code, "%06lu", strtoul(t.row[i][8], NULL, 10) % 1000000u);
                assert_int_equal(totp_verify(key, n, code, now, 0, &step), 0);
                assert_int_equal(step, strtoull(t.row[i][5], NULL, 16));
        }
        assert_int_equal(sha1, 6);
        buf_free(&t.raw);
}

/* oathtool, an independent implementation, makes the codes coffre must accept. */
static void test_oathtool_codes_accepted(void **state) {
        static const int64_t times[] = { 59, 1111111109, 1700000000, 1764800000, 2000000000, 4102444800 };
        assert_int_equal(access("/usr/bin/oathtool", X_OK), 0); /* installed by scripts/install-deps */
        for (int round = 0; round < 3; round++) {
                uint8_t key[TOTP_SECRET_BYTES];
                _cleanup_buf_ struct buf b32;
                buf_init(&b32, 0);
                randombytes_buf(key, sizeof key);
                assert_int_equal(totp_base32_encode(key, sizeof key, &b32), 0);
                for (size_t i = 0; i < ELEMENTSOF(times); i++) {
                        char cmd[256], out[32] = { 0 };
                        uint64_t step;
                        FILE *p;

                        snprintf(cmd, sizeof cmd, "oathtool --totp -b %s --now=@%lld", buf_str(&b32),
                                 (long long) times[i]);
                        p = popen(cmd, "r");
                        assert_non_null(p);
                        assert_non_null(fgets(out, sizeof out, p));
                        assert_int_equal(pclose(p), 0);
                        out[strcspn(out, "\n")] = 0;
                        assert_int_equal(strlen(out), 6);
                        assert_int_equal(totp_verify(key, sizeof key, out, times[i], 0, &step), 0);
                        assert_int_equal(step, (uint64_t) times[i] / 30);
                }
        }
}

static void test_window_and_replay(void **state) {
        const int64_t now = 1764800000 + 7; /* inside step 58826666 */
        const uint64_t s = (uint64_t) now / 30;
        char c[5][7]; /* steps s-2 .. s+2 */
        uint64_t step;

        for (int k = 0; k < 5; k++)
                code_of(RFC_KEY, 20, s - 2 + (uint64_t) k, c[k]);
        for (int a = 0; a < 5; a++) /* the test means nothing if two of these codes collide */
                for (int b = a + 1; b < 5; b++)
                        assert_string_not_equal(c[a], c[b]);

        /* +-1 accepted, and the step returned is the one the code belongs to */
        assert_int_equal(totp_verify(RFC_KEY, 20, c[1], now, 0, &step), 0);
        assert_int_equal(step, s - 1);
        assert_int_equal(totp_verify(RFC_KEY, 20, c[2], now, 0, &step), 0);
        assert_int_equal(step, s);
        assert_int_equal(totp_verify(RFC_KEY, 20, c[3], now, 0, &step), 0);
        assert_int_equal(step, s + 1);
        /* +-2 refused */
        step = 12345;
        assert_int_equal(totp_verify(RFC_KEY, 20, c[0], now, 0, &step), -EACCES);
        assert_int_equal(totp_verify(RFC_KEY, 20, c[4], now, 0, &step), -EACCES);
        assert_int_equal(step, 12345); /* untouched on failure */
        /* the window follows the time given: 60 s later, the code of s+1 is two steps old */
        assert_int_equal(totp_verify(RFC_KEY, 20, c[3], now + 60, 0, &step), 0);
        assert_int_equal(totp_verify(RFC_KEY, 20, c[2], now + 60, 0, &step), -EACCES);

        /* replay: the accepted step becomes last_step; the same code, or an older one, is refused */
        assert_int_equal(totp_verify(RFC_KEY, 20, c[2], now, 0, &step), 0);
        assert_int_equal(totp_verify(RFC_KEY, 20, c[2], now, step, &step), -EACCES);
        assert_int_equal(totp_verify(RFC_KEY, 20, c[2], now + 29, s, &step), -EACCES);
        assert_int_equal(totp_verify(RFC_KEY, 20, c[1], now, s, &step), -EACCES);
        /* ... but the next step's code still works */
        assert_int_equal(totp_verify(RFC_KEY, 20, c[3], now, s, &step), 0);
        assert_int_equal(step, s + 1);
        assert_int_equal(totp_verify(RFC_KEY, 20, c[3], now, s + 1, &step), -EACCES);
}

static void test_verify_malformed(void **state) {
        const int64_t now = 1234567890;
        char good[7], longer[9], spaced[8];
        uint64_t step;
        code_of(RFC_KEY, 20, (uint64_t) now / 30, good);
        snprintf(longer, sizeof longer, "%s0", good);
        snprintf(spaced, sizeof spaced, " %s", good);

        assert_int_equal(totp_verify(RFC_KEY, 20, good, now, 0, &step), 0);
        assert_int_equal(totp_verify(RFC_KEY, 20, longer, now, 0, &step), -EACCES);
        assert_int_equal(totp_verify(RFC_KEY, 20, spaced, now, 0, &step), -EACCES);
        assert_int_equal(totp_verify(RFC_KEY, 20, good + 1, now, 0, &step), -EACCES);
        assert_int_equal(totp_verify(RFC_KEY, 20, "", now, 0, &step), -EACCES);
        assert_int_equal(totp_verify(RFC_KEY, 20, "12a456", now, 0, &step), -EACCES);
        /* the wrong key */
        assert_int_equal(totp_verify((const uint8_t *) "12345678901234567891", 20, good, now, 0, &step), -EACCES);
        assert_int_equal(totp_verify(RFC_KEY, 0, good, now, 0, &step), -EINVAL);
        assert_int_equal(totp_verify(RFC_KEY, 20, good, -1, 0, &step), -EINVAL);
        assert_int_equal(totp_verify(RFC_KEY, 20, NULL, now, 0, &step), -EINVAL);
        {
                uint32_t v;
                assert_int_equal(totp_hotp(RFC_KEY, 20, 0, 5, &v), -EINVAL);
                assert_int_equal(totp_hotp(RFC_KEY, 20, 0, 9, &v), -EINVAL);
        }
}

/* RFC 4648 section 10, with the padding the RFC shows and without. */
static void test_base32_rfc4648(void **state) {
        static const char *const vec[][3] = {
                { "", "", "" },
                { "f", "MY", "MY======" },
                { "fo", "MZXQ", "MZXQ====" },
                { "foo", "MZXW6", "MZXW6===" },
                { "foob", "MZXW6YQ", "MZXW6YQ=" },
                { "fooba", "MZXW6YTB", "MZXW6YTB" },
                { "foobar", "MZXW6YTBOI", "MZXW6YTBOI======" },
        };
        for (size_t i = 0; i < ELEMENTSOF(vec); i++) {
                _cleanup_buf_ struct buf b;
                uint8_t out[16];
                size_t n = 99;
                buf_init(&b, 0);
                assert_int_equal(totp_base32_encode((const uint8_t *) vec[i][0], strlen(vec[i][0]), &b), 0);
                assert_string_equal(buf_str(&b) ? buf_str(&b) : "", vec[i][1]);
                for (int k = 1; k <= 2; k++) {
                        assert_int_equal(totp_base32_decode(vec[i][k], out, sizeof out, &n), 0);
                        assert_int_equal(n, strlen(vec[i][0]));
                        assert_memory_equal(out, vec[i][0], n);
                }
        }
}

static void test_base32_tolerance_and_refusals(void **state) {
        uint8_t out[32];
        size_t n;

        /* how authenticators and people show secrets: lower case, groups of four */
        assert_int_equal(totp_base32_decode("gezd gnbv gy3t qojq GEZD GNBV GY3T QOJQ", out, sizeof out, &n), 0);
        assert_int_equal(n, 20);
        assert_memory_equal(out, RFC_KEY, 20);
        assert_int_equal(totp_base32_decode("mzxw6ytboi", out, sizeof out, &n), 0);
        assert_int_equal(n, 6);
        assert_memory_equal(out, "foobar", 6);

        static const char *const bad[] = {
                "MZXW6YTB0I", /* 0 is not base32 */
                "MZXW1YTB",   /* nor 1, 8, 9 */
                "MZXW8YTB",
                "MZXW9YTB",
                "MZXW-6YTB", /* dashes are not taken in secrets */
                "MZXW\t6YTB",
                "MZXW\n",
                "MZ=XW6YTB",
                "MZX=W6==",
                "MY=====",          /* padding short */
                "MY=======",        /* padding long */
                "MZXW6YTB========", /* a whole block of padding */
                "M",
                "MZX",
                "MZXW6Y", /* lengths no bytes give */
                "MZ",     /* unused bits not zero */
                "MZXW7",
                "MZXW6YTBOJ",
                "\xc3\xa9",
                "MZXW6\x7f",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                n = 777;
                if (totp_base32_decode(bad[i], out, sizeof out, &n) != -EINVAL)
                        fail_msg("accepted or misreported: \"%s\"", bad[i]);
                assert_int_equal(n, 777);
        }
        /* the output bound */
        assert_int_equal(totp_base32_decode("MZXW6YTBOI", out, 5, &n), -E2BIG);
        assert_int_equal(totp_base32_decode("MZXW6YTBOI", out, 6, &n), 0);
}

static void test_base32_round_trip(void **state) {
        for (size_t len = 0; len <= 41; len++) {
                uint8_t in[41], out[41];
                size_t n;
                _cleanup_buf_ struct buf b;
                buf_init(&b, 0);
                randombytes_buf(in, len);
                assert_int_equal(totp_base32_encode(in, len, &b), 0);
                assert_int_equal(b.len, (len * 8 + 4) / 5);
                assert_int_equal(totp_base32_decode(buf_str(&b) ? buf_str(&b) : "", out, sizeof out, &n), 0);
                assert_int_equal(n, len);
                assert_memory_equal(out, in, len);
        }
}

/* A buffer that cannot take the whole answer: the call fails with -E2BIG and leaves what was
 * there before, and nothing of the secret behind it. */
static void test_full_buffer_rolls_back(void **state) {
        for (int which = 0; which < 3; which++) {
                _cleanup_buf_ struct buf b;
                int r;
                buf_init(&b, 64);
                assert_int_equal(buf_append_str(&b, "before:"), 0);
                /* the whole capacity allocated now and zeroed, so that any byte found set after a
                 * refused call is one the call wrote and did not wipe (fresh heap memory need not
                 * be zero: sanitizers fill it) */
                assert_int_equal(buf_reserve(&b, 64 - b.len), 0);
                memset(b.data + b.len, 0, b.cap - b.len);
                if (which == 0)
                        r = totp_base32_encode(RFC_KEY, 20, &b); /* 32 characters: 7 + 32 fits */
                else if (which == 1)
                        r = totp_otpauth_uri("Coffre SA", "alice@example.com", RFC_KEY, 20, &b);
                else
                        r = totp_qr_terminal("otpauth://totp/A:b?secret=GEZDGNBV", &b);
                if (which == 0) {
                        assert_int_equal(r, 0);
                        assert_string_equal(buf_str(&b), "before:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
                        /* now the buffer is full: the next 32 characters cannot fit */
                        r = totp_base32_encode(RFC_KEY, 20, &b);
                        assert_int_equal(r, -E2BIG);
                        assert_int_equal(b.len, 39);
                        assert_string_equal(buf_str(&b), "before:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
                        continue;
                }
                if (r != -E2BIG || b.len != 7)
                        fail_msg("call %d: %d, %zu bytes left", which, r, b.len);
                assert_string_equal(buf_str(&b), "before:");
                /* the bytes past the end were wiped, not just cut off */
                for (size_t i = 8; i < b.cap; i++)
                        assert_int_equal(b.data[i], 0);
        }
}

static void test_otpauth_uri(void **state) {
        _cleanup_buf_ struct buf b, u;
        buf_init(&b, 0);
        buf_init(&u, 0);
        assert_int_equal(totp_otpauth_uri("Coffre SA", "alice@example.com", RFC_KEY, 20, &b), 0);
        assert_string_equal(buf_str(&b), "otpauth://totp/Coffre%20SA:alice%40example.com"
                                         "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Coffre%20SA"
                                         "&algorithm=SHA1&digits=6&period=30");
        /* UTF-8 percent-encoded byte by byte; reserved characters escaped */
        assert_int_equal(totp_otpauth_uri("Soci\xc3\xa9t\xc3\xa9 & Co/2", "b.o_b~x+y?z#", RFC_KEY, 20, &u), 0);
        assert_string_equal(buf_str(&u),
                            "otpauth://totp/Soci%C3%A9t%C3%A9%20%26%20Co%2F2:b.o_b~x%2By%3Fz%23"
                            "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Soci%C3%A9t%C3%A9%20%26%20Co%2F2"
                            "&algorithm=SHA1&digits=6&period=30");

        char longname[300];
        memset(longname, 'a', sizeof longname - 1);
        longname[sizeof longname - 1] = 0;
        static const char *const bad[][2] = {
                { "Coffre:SA", "alice" }, { "Coffre", "al:ice" }, { "", "alice" },       { "Coffre", "" },
                { "Coffre", "a\nb" },     { "Co\x01", "alice" },  { "Coffre", "\xc3(" }, { "Coffre", "\xc2\x85" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_buf_ struct buf x;
                buf_init(&x, 0);
                assert_int_equal(totp_otpauth_uri(bad[i][0], bad[i][1], RFC_KEY, 20, &x), -EINVAL);
                assert_int_equal(x.len, 0);
        }
        {
                _cleanup_buf_ struct buf x;
                buf_init(&x, 0);
                assert_int_equal(totp_otpauth_uri("Coffre", longname, RFC_KEY, 20, &x), -EINVAL);
                assert_int_equal(totp_otpauth_uri("Coffre", "alice", RFC_KEY, 0, &x), -EINVAL);
        }
}

/* Runs zbarimg on an image file and returns what it read (the QR code's text), or NULL. */
static char *zbar_read(const char *path) {
        char cmd[256];
        struct buf out;
        char chunk[512];
        size_t n;
        FILE *p;

        assert_int_equal(access("/usr/bin/zbarimg", X_OK), 0); /* zbar-tools, from scripts/install-deps */
        snprintf(cmd, sizeof cmd, "zbarimg --raw -q %s 2>/dev/null", path);
        p = popen(cmd, "r");
        assert_non_null(p);
        buf_init(&out, 0);
        while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
                assert_int_equal(buf_append(&out, chunk, n), 0);
        if (pclose(p) != 0) {
                buf_free(&out);
                return NULL;
        }
        while (out.len > 0 && out.data[out.len - 1] == '\n')
                out.len--;
        return buf_steal(&out);
}

static void write_tmp(const char *suffix, const void *p, size_t n, char path[64]) {
        snprintf(path, 64, "/tmp/coffre-totp-XXXXXX%s", suffix);
        int fd = mkstemps(path, (int) strlen(suffix));
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, p, n), 0);
        close(fd);
}

/* CRC-32 of PNG chunks (ISO 3309), bit by bit: the test's own, not zlib's. */
static uint32_t png_crc(const uint8_t *p, size_t n) {
        uint32_t c = 0xffffffffu;
        for (size_t i = 0; i < n; i++) {
                c ^= p[i];
                for (int k = 0; k < 8; k++)
                        c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
        }
        return c ^ 0xffffffffu;
}

static uint32_t be32(const uint8_t *p) {
        return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static const char *const URI = "otpauth://totp/Coffre%20SA:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                               "&issuer=Coffre%20SA&algorithm=SHA1&digits=6&period=30";

static void test_qr_png(void **state) {
        _cleanup_free_ uint8_t *png = NULL;
        _cleanup_free_ char *text = NULL;
        png_image img;
        char path[64];
        size_t n;

        assert_int_equal(totp_qr_png(URI, &png, &n), 0);
        assert_true(n > 8 + 25);
        /* signature, then IHDR: square, 1-bit greyscale, and its CRC right */
        assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
        assert_int_equal(be32(png + 8), 13);
        assert_memory_equal(png + 12, "IHDR", 4);
        assert_int_equal(be32(png + 16), be32(png + 20));
        assert_int_equal(be32(png + 16) % 8, 0);
        assert_int_equal(png[24], 1); /* bit depth */
        assert_int_equal(png[25], 0); /* colour type grey */
        {
                uint32_t crc = png_crc(png + 12, 17);
                assert_int_equal(crc, be32(png + 29));
        }
        /* libpng reads the whole image back */
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        assert_int_not_equal(png_image_begin_read_from_memory(&img, png, n), 0);
        assert_int_equal(img.width, be32(png + 16));
        img.format = PNG_FORMAT_GRAY;
        {
                size_t side = img.width, dark = 0;
                _cleanup_free_ uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
                assert_non_null(px);
                assert_int_not_equal(png_image_finish_read(&img, NULL, px, 0, NULL), 0);
                for (size_t y = 0; y < side; y++)
                        for (size_t x = 0; x < side; x++) {
                                uint8_t v = px[y * side + x];
                                assert_true(v == 0 || v == 255);
                                dark += v == 0;
                                /* the quiet zone: 4 modules of 8 px, white */
                                if (y < 32 || x < 32 || y >= side - 32 || x >= side - 32)
                                        assert_int_equal(v, 255);
                        }
                /* the top-left finder pattern: a dark 7x7 ring starting at module 4 */
                assert_int_equal(px[32 * side + 32], 0);
                assert_int_equal(px[(32 + 6 * 8) * side + 32 + 6 * 8], 0);
                assert_int_equal(px[(32 + 8) * side + 32 + 8], 255);
                assert_true(dark > 0);
        }
        png_image_free(&img);
        /* and a QR reader finds the URI in it */
        write_tmp(".png", png, n, path);
        text = zbar_read(path);
        unlink(path);
        assert_non_null(text);
        assert_string_equal(text, URI);

        /* too much text for any QR code */
        {
                char big[3000];
                uint8_t *q = NULL;
                memset(big, 'x', sizeof big - 1);
                big[sizeof big - 1] = 0;
                assert_int_equal(totp_qr_png(big, &q, &n), -E2BIG);
                assert_null(q);
        }
}

/* Counts the code points of one line and maps each to two modules (1 = dark). */
static void test_qr_terminal(void **state) {
        _cleanup_buf_ struct buf t;
        _cleanup_free_ uint8_t *png = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_buf_ struct buf pgm;
        size_t lines = 0, cols = 0, side, n;
        uint8_t grid[200][200];
        char path[64];

        buf_init(&t, 0);
        buf_init(&pgm, 0);
        assert_int_equal(totp_qr_terminal(URI, &t), 0);
        assert_int_equal(totp_qr_png(URI, &png, &n), 0);
        side = be32(png + 16) / 8; /* modules across, quiet zone included */
        memset(grid, 0, sizeof grid);
        for (char *l = buf_str(&t), *next; l && *l; l = next) {
                size_t c = 0;
                next = strchr(l, '\n');
                assert_non_null(next); /* every line ends */
                *next++ = 0;
                for (const char *p = l; *p;) {
                        int top = 0, bottom = 0;
                        if (strncmp(p, "\u2588", 3) == 0)
                                top = 0, bottom = 0, p += 3;
                        else if (strncmp(p, "\u2580", 3) == 0)
                                top = 0, bottom = 1, p += 3;
                        else if (strncmp(p, "\u2584", 3) == 0)
                                top = 1, bottom = 0, p += 3;
                        else if (*p == ' ')
                                top = 1, bottom = 1, p += 1;
                        else
                                fail_msg("unexpected character in line %zu", lines);
                        assert_true(c < 200 && 2 * lines + 1 < 200);
                        grid[2 * lines][c] = (uint8_t) top;
                        grid[2 * lines + 1][c] = (uint8_t) bottom;
                        c++;
                }
                if (lines == 0)
                        cols = c;
                assert_int_equal(c, cols); /* a rectangle */
                lines++;
        }
        /* as wide as the PNG has modules, two rows a line, the quiet zone of 4 light modules */
        assert_int_equal(cols, side);
        assert_int_equal(lines, (side + 1) / 2);
        for (size_t y = 0; y < 2 * lines; y++)
                for (size_t x = 0; x < cols; x++)
                        if (y < 4 || x < 4 || y >= side - 4 || x >= side - 4)
                                assert_int_equal(grid[y][x], 0);
        /* drawn back as an image (4 px a module), the terminal code reads as the URI */
        assert_int_equal(buf_printf(&pgm, "P5\n%zu %zu\n255\n", side * 4, side * 4), 0);
        for (size_t y = 0; y < side * 4; y++)
                for (size_t x = 0; x < side * 4; x++) {
                        uint8_t v = grid[y / 4][x / 4] ? 0 : 255;
                        assert_int_equal(buf_append(&pgm, &v, 1), 0);
                }
        write_tmp(".pgm", pgm.data, pgm.len, path);
        text = zbar_read(path);
        unlink(path);
        assert_non_null(text);
        assert_string_equal(text, URI);
}

static bool is_code_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

static void test_recovery_codes(void **state) {
        char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX], again[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX];
        uint8_t hashes[TOTP_RECOVERY_CODES][32], h2[TOTP_RECOVERY_CODES][32];

        assert_int_equal(totp_recovery_codes_new(codes, hashes), 0);
        for (unsigned i = 0; i < TOTP_RECOVERY_CODES; i++) {
                uint8_t h[32], want[32];
                char norm[17];
                size_t k = 0;

                /* xxxx-xxxx-xxxx-xxxx of base32 letters: 80 bits */
                assert_int_equal(strlen(codes[i]), 19);
                for (size_t j = 0; j < 19; j++) {
                        if (j == 4 || j == 9 || j == 14)
                                assert_int_equal(codes[i][j], '-');
                        else {
                                assert_true(is_code_char(codes[i][j]));
                                norm[k++] = (char) (codes[i][j] >= 'a' ? codes[i][j] - 'a' + 'A' : codes[i][j]);
                        }
                }
                norm[k] = 0;
                /* the hash is SHA-256 of the 16 upper-case characters, as docs/security.md says */
                SHA256((const unsigned char *) norm, 16, want);
                assert_memory_equal(hashes[i], want, 32);
                assert_int_equal(totp_recovery_code_hash(codes[i], h), 0);
                assert_memory_equal(h, hashes[i], 32);
                for (unsigned j = 0; j < i; j++) {
                        assert_string_not_equal(codes[i], codes[j]);
                        assert_memory_not_equal(hashes[i], hashes[j], 32);
                }
        }
        /* a second set shares nothing with the first */
        assert_int_equal(totp_recovery_codes_new(again, h2), 0);
        for (unsigned i = 0; i < TOTP_RECOVERY_CODES; i++)
                for (unsigned j = 0; j < TOTP_RECOVERY_CODES; j++)
                        assert_string_not_equal(codes[i], again[j]);
}

static void test_recovery_code_normalisation(void **state) {
        uint8_t ref[32], h[32];
        static const char *const same[] = {
                "abcd-efgh-2345-wxyz",   "ABCD-EFGH-2345-WXYZ",     "abcdefgh2345wxyz",       "ABCD EFGH 2345 WXYZ",
                " aBcD-eFgH 2345 wXyZ ", "ab-cd-ef-gh-23-45-wx-yz", "abcd--efgh--2345--wxyz",
        };
        static const char *const bad[] = {
                "abcd-efgh-2345-wxy",
                "abcd-efgh-2345-wxyza",
                "abcd-efgh-2345-wxy0",
                "abcd-efgh-2345-wxy1",
                "abcd-efgh-2345-wxy=",
                "abcd_efgh_2345_wxyz",
                "abcd.efgh.2345.wxyz",
                "",
                "----",
                "abcd-efgh-2345-wxy\xc3\xa9",
                "abcd-efgh-2345", /* the old 60-bit shape */
        };
        SHA256((const unsigned char *) "ABCDEFGH2345WXYZ", 16, ref);
        for (size_t i = 0; i < ELEMENTSOF(same); i++) {
                assert_int_equal(totp_recovery_code_hash(same[i], h), 0);
                assert_memory_equal(h, ref, 32);
        }
        assert_int_equal(totp_recovery_code_hash("abcd-efgh-2345-wxya", h), 0);
        assert_memory_not_equal(h, ref, 32);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (totp_recovery_code_hash(bad[i], h) != -EINVAL)
                        fail_msg("accepted: \"%s\"", bad[i]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hotp_rfc4226),
                cmocka_unit_test(test_totp_rfc6238),
                cmocka_unit_test(test_oathtool_codes_accepted),
                cmocka_unit_test(test_window_and_replay),
                cmocka_unit_test(test_verify_malformed),
                cmocka_unit_test(test_base32_rfc4648),
                cmocka_unit_test(test_base32_tolerance_and_refusals),
                cmocka_unit_test(test_base32_round_trip),
                cmocka_unit_test(test_otpauth_uri),
                cmocka_unit_test(test_full_buffer_rolls_back),
                cmocka_unit_test(test_qr_png),
                cmocka_unit_test(test_qr_terminal),
                cmocka_unit_test(test_recovery_codes),
                cmocka_unit_test(test_recovery_code_normalisation),
        };
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
