/* test_retention.c: the end of retention of each kind of class: leap years, month ends, fiscal
 * years not ending on 31 December, the organisation's time zone (summer and winter time in
 * Europe/Paris), and the duration and date parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/retention.h"

/* ms of a UTC date-time */
static int64_t utc(int y, int mo, int d, int h, int mi) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
        return (int64_t) timegm(&tm) * 1000;
}

static struct vault_class cls(const char *dur, enum vault_class_start start) {
        struct vault_class c = { .start = start };
        assert_int_equal(vault_parse_duration(dur, &c), 0);
        return c;
}

static int64_t until(const struct vault_class *c, const char *tz, unsigned fm, unsigned fd, int64_t ingest,
                     const char *date) {
        struct retention_date d;
        int64_t r = 0;
        if (date)
                assert_int_equal(retention_parse_date(date, &d), 0);
        assert_int_equal(retention_until(c, tz, fm, fd, ingest, date ? &d : NULL, &r), 0);
        return r;
}

static void test_fiscal_year_end(void **state) {
        (void) state;
        struct vault_class c = cls("10y", VAULT_START_FISCAL_YEAR_END);
        int64_t now = utc(2026, 12, 4, 12, 0);
        /* an invoice of 15 March 2025, fiscal year ending 31 December: kept through 31 December 2035;
         * deletable from local midnight, which is 23:00 UTC the day before in Paris winter time */
        assert_int_equal(until(&c, "UTC", 12, 31, now, "2025-03-15"), utc(2036, 1, 1, 0, 0));
        assert_int_equal(until(&c, "Europe/Paris", 12, 31, now, "2025-03-15"), utc(2035, 12, 31, 23, 0));
        /* fiscal year ending 30 June: a document of 30 June belongs to the year ending that day,
         * one of 1 July to the next */
        assert_int_equal(until(&c, "UTC", 6, 30, now, "2025-06-30"), utc(2035, 7, 1, 0, 0));
        assert_int_equal(until(&c, "UTC", 6, 30, now, "2025-07-01"), utc(2036, 7, 1, 0, 0));
        /* Paris summer time: midnight is 22:00 UTC */
        assert_int_equal(until(&c, "Europe/Paris", 6, 30, now, "2025-07-01"), utc(2036, 6, 30, 22, 0));
        /* fiscal year ending on the last day of February (29th in leap years) */
        assert_int_equal(until(&c, "UTC", 2, 29, now, "2027-01-10"), utc(2037, 3, 1, 0, 0)); /* 28 Feb 2037 */
        assert_int_equal(until(&c, "UTC", 2, 29, now, "2027-12-10"),
                         utc(2038, 3, 1, 0, 0)); /* 29 Feb 2028 + 10 years */
        struct vault_class one = cls("1y", VAULT_START_FISCAL_YEAR_END);
        /* the year ending 29 February 2028, plus one: through 28 February 2029 */
        assert_int_equal(until(&one, "UTC", 2, 29, now, "2027-03-01"), utc(2029, 3, 1, 0, 0));
        /* 28 February 2027 ends its fiscal year; one year later the year ends on the 29th */
        assert_int_equal(until(&one, "UTC", 2, 29, now, "2027-02-28"), utc(2028, 3, 1, 0, 0));
        /* no date: the local day of ingest (4 December 2026) */
        assert_int_equal(until(&c, "UTC", 12, 31, now, NULL), utc(2037, 1, 1, 0, 0));
}

static void test_document_date(void **state) {
        (void) state;
        struct vault_class c = cls("5y", VAULT_START_DOCUMENT_DATE);
        int64_t now = utc(2026, 12, 4, 12, 0);
        /* 29 February + 5 years = 28 February (no 29th in 2029), kept through that day */
        assert_int_equal(until(&c, "UTC", 12, 31, now, "2024-02-29"), utc(2029, 3, 1, 0, 0));
        /* 31 January + 1 month = 28 February (29 in a leap year) */
        struct vault_class m = cls("1m", VAULT_START_DOCUMENT_DATE);
        assert_int_equal(until(&m, "UTC", 12, 31, now, "2027-01-31"), utc(2027, 3, 1, 0, 0));
        assert_int_equal(until(&m, "UTC", 12, 31, now, "2028-01-31"), utc(2028, 3, 1, 0, 0)); /* 29 Feb */
        assert_int_equal(until(&m, "UTC", 12, 31, now, "2028-01-30"), utc(2028, 3, 1, 0, 0));
        assert_int_equal(until(&m, "UTC", 12, 31, now, "2028-01-28"), utc(2028, 2, 29, 0, 0));
        /* the ingest day in the organisation's zone: 23:30 UTC on 4 December is the 5th in Paris */
        struct vault_class d = cls("1d", VAULT_START_DOCUMENT_DATE);
        assert_int_equal(until(&d, "UTC", 12, 31, utc(2026, 12, 4, 23, 30), NULL), utc(2026, 12, 6, 0, 0));
        assert_int_equal(until(&d, "Europe/Paris", 12, 31, utc(2026, 12, 4, 23, 30), NULL), utc(2026, 12, 6, 23, 0));
}

static void test_ingest(void **state) {
        (void) state;
        struct vault_class c = cls("90d", VAULT_START_INGEST);
        int64_t t = utc(2026, 12, 4, 10, 15) + 123;
        /* 90 calendar days at the same local time, to the millisecond */
        assert_int_equal(until(&c, "UTC", 12, 31, t, NULL), utc(2027, 3, 4, 10, 15) + 123);
        /* across the change to summer time (28 March 2027): same local time, one hour less in UTC */
        assert_int_equal(until(&c, "Europe/Paris", 12, 31, t, NULL), utc(2027, 3, 4, 10, 15) + 123);
        struct vault_class s = cls("30d", VAULT_START_INGEST);
        assert_int_equal(until(&s, "Europe/Paris", 12, 31, utc(2027, 3, 15, 10, 0), NULL), utc(2027, 4, 14, 9, 0));
        struct vault_class zero = cls("0d", VAULT_START_INGEST);
        assert_int_equal(until(&zero, "Europe/Paris", 12, 31, t, NULL), t);
}

static void test_parsers(void **state) {
        (void) state;
        struct vault_class c = { 0 };
        struct retention_date d;
        int64_t r;
        assert_int_equal(vault_parse_duration("1y6m10d", &c), 0);
        assert_int_equal(c.years, 1);
        assert_int_equal(c.months, 6);
        assert_int_equal(c.days, 10);
        static const char *bad_dur[] = { "", "y", "10", "10w", "-1y", "1y ", "99999999d" };
        for (size_t i = 0; i < sizeof bad_dur / sizeof bad_dur[0]; i++)
                assert_int_equal(vault_parse_duration(bad_dur[i], &c), -EINVAL);
        static const char *bad_date[] = { "2025-02-29",           "2025-13-01", "2025-00-10", "2025-1-01", "25-01-01",
                                          "2025-01-01T00:00:00Z", "1969-12-31", "2025/01/01", "" };
        for (size_t i = 0; i < sizeof bad_date / sizeof bad_date[0]; i++)
                assert_int_equal(retention_parse_date(bad_date[i], &d), -EINVAL);
        assert_int_equal(retention_parse_date("2024-02-29", &d), 0);
        static const char *bad_tz[] = { "Mars/Olympus", "../etc/passwd", "/etc/localtime", "Europe", "" };
        for (size_t i = 0; i < sizeof bad_tz / sizeof bad_tz[0]; i++)
                assert_int_equal(retention_check_time_zone(bad_tz[i]), -EINVAL);
        struct vault_class k = cls("1y", VAULT_START_INGEST);
        assert_int_equal(retention_until(&k, "Mars/Olympus", 12, 31, 0, NULL, &r), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fiscal_year_end),
                cmocka_unit_test(test_document_date),
                cmocka_unit_test(test_ingest),
                cmocka_unit_test(test_parsers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
