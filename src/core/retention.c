/* retention.c: the end of a document's retention, computed in its organisation's time zone.
 * glibc converts local time through the process's TZ, so each conversion sets TZ under one lock
 * and puts the old value back. */
#include "retention.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

static bool leap(int y) {
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int y, unsigned m) {
        static const unsigned d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        return m == 2 && leap(y) ? 29 : d[m - 1];
}

int retention_parse_date(const char *s, struct retention_date *ret) {
        if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
                return -EINVAL;
        for (int i = 0; i < 10; i++)
                if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
                        return -EINVAL;
        int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        unsigned m = (unsigned) ((s[5] - '0') * 10 + (s[6] - '0'));
        unsigned d = (unsigned) ((s[8] - '0') * 10 + (s[9] - '0'));
        if (y < 1970 || m < 1 || m > 12 || d < 1 || d > month_days(y, m))
                return -EINVAL;
        *ret = (struct retention_date){ y, m, d };
        return 0;
}

int retention_check_time_zone(const char *tz) {
        if (!tz || !*tz || strlen(tz) > 63 || tz[0] == '/' || strstr(tz, ".."))
                return -EINVAL;
        if (strcmp(tz, "UTC") == 0)
                return 0;
        for (const char *p = tz; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr("/_+-", *p)))
                        return -EINVAL;
        char path[128];
        snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", tz);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -EINVAL;
        /* a TZif file, not a directory such as "Europe" */
        char magic[4];
        bool ok = read(fd, magic, 4) == 4 && memcmp(magic, "TZif", 4) == 0;
        close(fd);
        return ok ? 0 : -EINVAL;
}

/* The date plus years and months (the day clamped to the month's end, from the wanted day),
 * plus days. */
static struct retention_date add(struct retention_date d, unsigned want_day, const struct vault_class *c) {
        long months = (long) d.month - 1 + (long) c->months + 12L * (long) c->years;
        d.year += (int) (months / 12);
        d.month = (unsigned) (months % 12) + 1;
        d.day = want_day > month_days(d.year, d.month) ? month_days(d.year, d.month) : want_day;
        for (unsigned n = c->days; n > 0 && d.year <= 9999; n--)
                if (++d.day > month_days(d.year, d.month)) {
                        d.day = 1;
                        if (++d.month > 12) {
                                d.month = 1;
                                d.year++;
                        }
                }
        return d;
}

static struct retention_date next_day(struct retention_date d) {
        static const struct vault_class one = { .days = 1 };
        return add(d, d.day, &one);
}

/* Local time in tz to an instant, or the local date of an instant: under tz_lock. */
struct tz_saved {
        char *old;
        bool had;
};

static int tz_enter(const char *tz, struct tz_saved *s) {
        if (retention_check_time_zone(tz) < 0)
                return -EINVAL;
        pthread_mutex_lock(&tz_lock);
        const char *o = getenv("TZ");
        s->had = o != NULL;
        s->old = o ? strdup(o) : NULL;
        if ((o && !s->old) || setenv("TZ", tz, 1) < 0) {
                free(s->old);
                pthread_mutex_unlock(&tz_lock);
                return -ENOMEM;
        }
        tzset();
        return 0;
}

static void tz_leave(struct tz_saved *s) {
        if (s->had)
                (void) setenv("TZ", s->old, 1);
        else
                (void) unsetenv("TZ");
        tzset();
        free(s->old);
        pthread_mutex_unlock(&tz_lock);
}

int retention_until(const struct vault_class *c, const char *tz, unsigned fye_month, unsigned fye_day,
                    int64_t ingest_ms, const struct retention_date *doc_date, int64_t *ret_ms) {
        struct tz_saved saved;
        struct tm tm;
        int r = tz_enter(tz, &saved);
        if (r < 0)
                return r;
        time_t t = (time_t) (ingest_ms / 1000);
        if (!localtime_r(&t, &tm)) {
                tz_leave(&saved);
                return -EINVAL;
        }
        int64_t result;
        if (c->start == VAULT_START_INGEST) {
                struct retention_date d = { tm.tm_year + 1900, (unsigned) tm.tm_mon + 1, (unsigned) tm.tm_mday };
                d = add(d, d.day, c);
                tm.tm_year = d.year - 1900;
                tm.tm_mon = (int) d.month - 1;
                tm.tm_mday = (int) d.day;
                tm.tm_isdst = -1;
                time_t e = mktime(&tm);
                result = (int64_t) e * 1000 + ingest_ms % 1000;
                r = e == (time_t) -1 || d.year > 9999 ? -EINVAL : 0;
        } else {
                struct retention_date d =
                        doc_date ? *doc_date
                                 : (struct retention_date){ tm.tm_year + 1900, (unsigned) tm.tm_mon + 1,
                                                            (unsigned) tm.tm_mday };
                unsigned want = d.day;
                if (c->start == VAULT_START_FISCAL_YEAR_END) {
                        struct retention_date f = { d.year, fye_month,
                                                    fye_day > month_days(d.year, fye_month)
                                                            ? month_days(d.year, fye_month)
                                                            : fye_day };
                        if (d.month > f.month || (d.month == f.month && d.day > f.day)) {
                                f.year++;
                                f.day = fye_day > month_days(f.year, fye_month) ? month_days(f.year, fye_month)
                                                                                : fye_day;
                        }
                        d = f;
                        want = fye_day;
                }
                d = next_day(add(d, want, c));
                struct tm m = {
                        .tm_year = d.year - 1900, .tm_mon = (int) d.month - 1, .tm_mday = (int) d.day, .tm_isdst = -1
                };
                time_t e = mktime(&m);
                result = (int64_t) e * 1000;
                r = e == (time_t) -1 || d.year > 9999 ? -EINVAL : 0;
        }
        tz_leave(&saved);
        if (r < 0)
                return r;
        *ret_ms = result;
        return 0;
}
