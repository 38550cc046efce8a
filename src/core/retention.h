/* retention.h: when a document's retention ends: a class's duration added in the calendar of the
 * organisation's time zone (leap years, month ends, fiscal years not ending on 31 December). */
#pragma once

#include <stdint.h>

#include "config.h"
#include "macro.h"

struct retention_date {
        int year;       /* 1970..9999 */
        unsigned month; /* 1..12 */
        unsigned day;   /* 1..days of the month */
};

/* Parses "YYYY-MM-DD" (a date that exists). -EINVAL otherwise. */
int retention_parse_date(const char *s, struct retention_date *ret) _warn_unused_;

/* True when tz is a time zone this machine knows ("UTC" or a file of /usr/share/zoneinfo). */
int retention_check_time_zone(const char *tz) _warn_unused_;

/* The instant (ms) from which a document of class c may be deleted:
 * - start ingest: the ingest instant ingest_ms plus the duration, at the same local time of day;
 * - start document-date: the local midnight that ends the day doc_date + duration;
 * - start fiscal-year-end: as document-date, from the first fiscal year end (fye_month-fye_day,
 *   29 February meaning the last day of February) on or after doc_date.
 * doc_date NULL: the local date of ingest_ms. A day past the end of its month after adding years
 * or months is the month's last day (29 February + 1 year = 28 February). -EINVAL for an unknown
 * time zone or a result past year 9999. */
int retention_until(const struct vault_class *c, const char *tz, unsigned fye_month, unsigned fye_day,
                    int64_t ingest_ms, const struct retention_date *doc_date, int64_t *ret_ms) _warn_unused_;
