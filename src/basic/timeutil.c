/* timeutil.c: wall-clock milliseconds and RFC 3339 formatting and parsing. */
#include "timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

void rfc3339_format(int64_t ms, char out[RFC3339_MAX]) {
        time_t sec = (time_t) (ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        int frac = (int) (ms - (int64_t) sec * 1000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        size_t n = strftime(out, RFC3339_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out + n, RFC3339_MAX - n, ".%03dZ", frac);
}

static int digits(const char **p, int n, int *ret) {
        int v = 0;
        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char) (*p)[i]))
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

static int expect(const char **p, char c) {
        if (**p != c)
                return -EINVAL;
        (*p)++;
        return 0;
}

int rfc3339_parse(const char *s, int64_t *ret_ms) {
        const char *p = s;
        int y, mo, d, h = 0, mi = 0, se = 0, ms = 0, off = 0;
        struct tm tm = { 0 };

        if (digits(&p, 4, &y) < 0 || expect(&p, '-') < 0 || digits(&p, 2, &mo) < 0 || expect(&p, '-') < 0 ||
            digits(&p, 2, &d) < 0)
                return -EINVAL;
        if (*p == 'T' || *p == 't') {
                p++;
                if (digits(&p, 2, &h) < 0 || expect(&p, ':') < 0 || digits(&p, 2, &mi) < 0 || expect(&p, ':') < 0 ||
                    digits(&p, 2, &se) < 0)
                        return -EINVAL;
                if (*p == '.') {
                        p++;
                        int n = 0;
                        while (isdigit((unsigned char) *p)) {
                                if (n < 3)
                                        ms = ms * 10 + (*p - '0');
                                n++;
                                p++;
                        }
                        if (n == 0 || n > 9)
                                return -EINVAL;
                        for (; n < 3; n++)
                                ms *= 10;
                }
                if (*p == 'Z' || *p == 'z')
                        p++;
                else if (*p == '+' || *p == '-') {
                        int sign = *p == '-' ? -1 : 1, oh, om;
                        p++;
                        if (digits(&p, 2, &oh) < 0 || expect(&p, ':') < 0 || digits(&p, 2, &om) < 0 || oh > 23 ||
                            om > 59)
                                return -EINVAL;
                        off = sign * (oh * 60 + om);
                } else
                        return -EINVAL;
        }
        if (*p != 0)
                return -EINVAL;
        if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
                return -EINVAL;
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = se;
        time_t t = timegm(&tm);
        if (t == (time_t) -1)
                return -EINVAL;
        /* timegm normalises 31 February into March: refuse dates that do not exist */
        struct tm back;
        gmtime_r(&t, &back);
        if (back.tm_mday != d || back.tm_mon != mo - 1)
                return -EINVAL;
        /* the offset may carry a time out of the years the format can write back */
        int64_t v = ((int64_t) t - (int64_t) off * 60) * 1000 + ms;
        if (v < 0 || v > INT64_C(253402300799999))
                return -EINVAL;
        *ret_ms = v;
        return 0;
}
