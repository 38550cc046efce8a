/* totp_qr.c: QR codes of otpauth:// URIs (libqrencode), as a PNG in memory (libpng) for the API
 * and as Unicode half blocks for a terminal. Both keep the 4-module quiet zone that scanners
 * need; the text holds a secret, so every copy of it or of its modules is wiped. */
#include "totp.h"

#include <errno.h>
#include <setjmp.h>
#include <string.h>

#include <png.h>
#include <qrencode.h>
#include <sodium.h>

#include "log.h"

#define QR_QUIET 4        /* modules of margin, ISO/IEC 18004 */
#define QR_PNG_SCALE 8    /* pixels per module: 41 modules (version 4) give 392 px */
#define QR_TEXT_MAX 2048u /* far above any otpauth URI; the QR code holds at most 2953 bytes */

static void qrcode_wipe_free(QRcode *q) {
        if (!q)
                return;
        sodium_memzero(q->data, (size_t) q->width * (size_t) q->width);
        QRcode_free(q);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(QRcode *, qrcode_wipe_free);

static int qr_encode(const char *text, QRcode **ret) {
        QRcode *q;
        if (!text || !ret)
                return -EINVAL;
        if (strnlen(text, QR_TEXT_MAX + 1) > QR_TEXT_MAX)
                return -E2BIG;
        /* level M: 15 % of the modules may be lost, the usual choice for authenticator codes */
        errno = 0;
        q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
        if (!q)
                return errno == ERANGE ? -E2BIG : errno == ENOMEM ? -ENOMEM : -EINVAL;
        *ret = q;
        return 0;
}

/* Module (x, y) of the code with its quiet zone around it: true when dark. */
static bool qr_dark(const QRcode *q, int x, int y) {
        x -= QR_QUIET;
        y -= QR_QUIET;
        if (x < 0 || y < 0 || x >= q->width || y >= q->width)
                return false;
        return q->data[(size_t) y * (size_t) q->width + (size_t) x] & 1;
}

struct png_out {
        struct buf b;
        int err;
};

static void png_out_write(png_structp png, png_bytep data, size_t n) {
        struct png_out *o = png_get_io_ptr(png);
        int r = buf_append(&o->b, data, n);
        if (r < 0) {
                o->err = r;
                png_error(png, "out of memory");
        }
}

static void png_out_flush(png_structp png) {
}

static void png_on_error(png_structp png, png_const_charp msg) {
        png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
}

/* Writes the image; the row and every libpng object are the caller's, so the longjmp of a libpng
 * error leaves nothing to free here. */
static int qr_png_write(png_structp png, png_infop info, const QRcode *q, png_bytep row, size_t row_bytes) {
        const int side = (q->width + 2 * QR_QUIET) * QR_PNG_SCALE;

        if (setjmp(png_jmpbuf(png)))
                return -EIO;
        png_set_IHDR(png, info, (png_uint_32) side, (png_uint_32) side, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int y = 0; y < side; y++) {
                /* 1-bit grey: 1 is white */
                memset(row, 0xff, row_bytes);
                for (int x = 0; x < side; x++)
                        if (qr_dark(q, x / QR_PNG_SCALE, y / QR_PNG_SCALE))
                                row[x / 8] &= (png_byte) ~(0x80u >> (x % 8));
                png_write_row(png, row);
        }
        png_write_end(png, NULL);
        return 0;
}

int totp_qr_png(const char *text, uint8_t **ret, size_t *ret_n) {
        _cleanup_(qrcode_wipe_freep) QRcode *q = NULL;
        struct png_out o = { .err = 0 };
        png_structp png = NULL;
        png_infop info = NULL;
        png_bytep row = NULL;
        size_t row_bytes;
        int r;

        if (!ret || !ret_n)
                return -EINVAL;
        r = qr_encode(text, &q);
        if (r < 0)
                return r;
        row_bytes = ((size_t) (q->width + 2 * QR_QUIET) * QR_PNG_SCALE + 7) / 8;
        buf_init(&o.b, 0);
        row = malloc(row_bytes);
        png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_error, png_on_warning);
        if (png)
                info = png_create_info_struct(png);
        if (!row || !png || !info) {
                r = -ENOMEM;
                goto out;
        }
        png_set_write_fn(png, &o, png_out_write, png_out_flush);
        r = qr_png_write(png, info, q, row, row_bytes);
        if (r < 0 && o.err < 0)
                r = o.err;
        if (r < 0)
                log_error("QR code: PNG writing failed");
out:
        png_destroy_write_struct(&png, &info);
        if (row)
                sodium_memzero(row, row_bytes);
        free(row);
        if (r < 0) {
                buf_free_secure(&o.b);
                return r;
        }
        *ret_n = o.b.len;
        *ret = (uint8_t *) buf_steal(&o.b);
        return 0;
}

int totp_qr_terminal(const char *text, struct buf *out) {
        _cleanup_(qrcode_wipe_freep) QRcode *q = NULL;
        /* light modules drawn, dark ones left blank, as `qrencode -t UTF8` does: on the usual
         * light-on-dark terminal the code then shows dark on light, as scanners expect */
        static const char *const cell[4] = {
                "\u2588", /* both light: full block */
                "\u2580", /* top light, bottom dark: upper half block */
                "\u2584", /* top dark, bottom light: lower half block */
                " ",      /* both dark */
        };
        size_t start;
        int side, r;

        if (!out)
                return -EINVAL;
        start = out->len;
        r = qr_encode(text, &q);
        if (r < 0)
                return r;
        side = q->width + 2 * QR_QUIET;
        /* two rows of modules per line of text; the odd last row pairs with quiet zone */
        for (int y = 0; y < side; y += 2) {
                for (int x = 0; x < side && r >= 0; x++) {
                        unsigned k = (qr_dark(q, x, y) ? 2u : 0u) | (qr_dark(q, x, y + 1) ? 1u : 0u);
                        r = buf_append_str(out, cell[k]);
                }
                if (r >= 0)
                        r = buf_append_str(out, "\n");
                if (r < 0) {
                        /* a part of the drawing is a part of the secret */
                        if (out->data)
                                sodium_memzero(out->data + start, out->len - start);
                        out->len = start;
                        return r;
                }
        }
        return 0;
}
