/* progress.c: error lines, escaping of untrusted text for display, and the transfer progress bar. */
#include "progress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

void cli_error(const char *fmt, ...) {
        char msg[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fflush(stdout);
        fprintf(stderr, "coffre: %s\n", msg);
}

static bool must_escape(uint32_t cp) {
        return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || /* C0, DEL, C1 */
               cp == 0x061c || cp == 0x200e || cp == 0x200f ||            /* bidi marks */
               (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
               cp == 0x2028 || cp == 0x2029; /* line and paragraph separators */
}

int cli_escape_append(struct buf *b, const char *s) {
        const uint8_t *p = (const uint8_t *) s;
        size_t n = strlen(s);
        int r;

        while (n > 0) {
                uint32_t cp;
                size_t l = utf8_next(p, n, &cp);

                if (l == 0)
                        r = buf_printf(b, "\\x%02x", p[0]), l = 1;
                else if (cp == '\\')
                        r = buf_append_str(b, "\\\\");
                else if (cp == '\n')
                        r = buf_append_str(b, "\\n");
                else if (cp == '\r')
                        r = buf_append_str(b, "\\r");
                else if (cp == '\t')
                        r = buf_append_str(b, "\\t");
                else if (cp < 0x80 && must_escape(cp))
                        r = buf_printf(b, "\\x%02x", (unsigned) cp);
                else if (must_escape(cp))
                        r = buf_printf(b, "\\u{%04x}", (unsigned) cp);
                else
                        r = buf_append(b, p, l);
                if (r < 0)
                        return r;
                p += l;
                n -= l;
        }
        return buf_str(b) ? 0 : -ENOMEM;
}

char *cli_escape(const char *s) {
        struct buf b;

        buf_init(&b, 0);
        if (cli_escape_append(&b, s) < 0) {
                buf_free(&b);
                return NULL;
        }
        return buf_steal(&b);
}

void progress_format_bytes(char *out, size_t out_size, double bytes) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        size_t u = 0;

        while (bytes >= 1024.0 && u + 1 < ELEMENTSOF(units)) {
                bytes /= 1024.0;
                u++;
        }
        if (u == 0)
                snprintf(out, out_size, "%.0f B", bytes);
        else
                snprintf(out, out_size, "%.1f %s", bytes, units[u]);
}

static void format_duration(char *out, size_t out_size, double s) {
        if (s < 0 || s > 99.0 * 3600)
                snprintf(out, out_size, "--:--");
        else {
                unsigned t = (unsigned) (s + 0.5);
                if (t >= 3600)
                        snprintf(out, out_size, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
                else
                        snprintf(out, out_size, "%u:%02u", t / 60, t % 60);
        }
}

/* Number of bytes of s that make up at most max code points. */
static size_t prefix_for_columns(const char *s, size_t max) {
        size_t i = 0, cols = 0;
        while (s[i] && cols < max) {
                i++;
                while (((uint8_t) s[i] & 0xc0) == 0x80)
                        i++;
                cols++;
        }
        return i;
}

static size_t columns(const char *s) {
        size_t cols = 0;
        for (; *s; s++)
                cols += ((uint8_t) *s & 0xc0) != 0x80;
        return cols;
}

void progress_format(char *out, size_t out_size, const char *label, uint64_t done, uint64_t total,
                     double elapsed_s, unsigned width) {
        char d[32], t[32], rate[32], eta[32], right[160];
        double bps = elapsed_s > 0.05 ? (double) done / elapsed_s : 0;

        progress_format_bytes(d, sizeof d, (double) done);
        if (bps > 0)
                progress_format_bytes(rate, sizeof rate, bps);
        else
                snprintf(rate, sizeof rate, "--");
        if (total > 0) {
                unsigned pct = done >= total ? 100 : (unsigned) ((double) done * 100.0 / (double) total);
                progress_format_bytes(t, sizeof t, (double) total);
                format_duration(eta, sizeof eta, bps > 0 ? (double) (total - MIN(done, total)) / bps : -1);
                snprintf(right, sizeof right, "%3u%%  %s / %s  %s/s  ETA %s", pct, d, t, rate, eta);
        } else
                snprintf(right, sizeof right, "%s  %s/s", d, rate);

        if (width < 40)
                width = 40;
        size_t right_cols = strlen(right);
        size_t label_max = MIN((size_t) 24, width > right_cols + 16 ? width - right_cols - 16 : 8);
        size_t label_bytes = prefix_for_columns(label, label_max);
        size_t label_cols = columns(label) > label_max ? label_max : columns(label);
        /* label, two spaces, [bar], two spaces, right part */
        size_t used = label_cols + 2 + 2 + 2 + right_cols;
        size_t bar = width > used + 1 ? width - used - 1 : 0;
        bar = MIN(bar, (size_t) 40);

        struct buf b;
        buf_init(&b, out_size > 0 ? out_size - 1 : 1);
        int r = buf_append(&b, label, label_bytes);
        if (r >= 0 && bar >= 4 && total > 0) {
                size_t fill = done >= total ? bar : (size_t) ((double) bar * (double) done / (double) total);
                r = buf_append_str(&b, "  [");
                for (size_t i = 0; r >= 0 && i < bar; i++)
                        r = buf_append(&b, i < fill ? "#" : "-", 1);
                if (r >= 0)
                        r = buf_append_str(&b, "]");
        }
        if (r >= 0)
                r = buf_printf(&b, "  %s", right);
        if (out_size > 0) {
                size_t n = r >= 0 ? b.len : MIN(b.len, out_size - 1);
                if (n)
                        memcpy(out, b.data, n);
                out[n] = 0;
        }
        buf_free(&b);
}

struct progress {
        char *label;
        uint64_t total;
        uint64_t done;
        struct timespec start;
        struct timespec last_draw;
        bool drawn;
};

static double seconds_between(const struct timespec *a, const struct timespec *b) {
        return (double) (b->tv_sec - a->tv_sec) + (double) (b->tv_nsec - a->tv_nsec) / 1e9;
}

int progress_new(const char *label, uint64_t total, bool enabled, struct progress **ret) {
        if (!enabled || !isatty(STDERR_FILENO)) {
                *ret = NULL;
                return 0;
        }
        struct progress *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->label = cli_escape(label);
        if (!p->label) {
                free(p);
                return -ENOMEM;
        }
        p->total = total;
        clock_gettime(CLOCK_MONOTONIC, &p->start);
        *ret = p;
        return 0;
}

static void draw(struct progress *p, const struct timespec *now) {
        struct winsize ws;
        char line[512];
        unsigned width = 80;

        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
                width = MIN((unsigned) ws.ws_col, (unsigned) sizeof line / 2);
        progress_format(line, sizeof line, p->label, p->done, p->total, seconds_between(&p->start, now),
                        width - 1);
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        p->last_draw = *now;
        p->drawn = true;
}

void progress_update(struct progress *p, uint64_t done) {
        struct timespec now;

        if (!p)
                return;
        p->done = done;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!p->drawn || seconds_between(&p->last_draw, &now) >= 0.1 || (p->total && done >= p->total))
                draw(p, &now);
}

void progress_finish(struct progress *p) {
        if (!p || !p->drawn)
                return;
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        p->drawn = false;
}

void progress_free(struct progress *p) {
        if (!p)
                return;
        progress_finish(p);
        free(p->label);
        free(p);
}
