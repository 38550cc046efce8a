/* timeutil.h: wall-clock milliseconds and RFC 3339 (UTC, "Z") formatting and parsing. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define RFC3339_MAX 32

int64_t now_ms(void);
/* monotonic clock in nanoseconds, for durations */
uint64_t mono_ns(void);
/* "2026-11-27T11:22:33.123Z"; out must hold RFC3339_MAX bytes. */
void rfc3339_format(int64_t ms, char out[RFC3339_MAX]);
/* Accepts "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm|-hh:mm)". -EINVAL otherwise. */
int rfc3339_parse(const char *s, int64_t *ret_ms) _warn_unused_;
