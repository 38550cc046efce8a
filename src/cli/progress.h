/* progress.h: what the client shows people: error lines, escaped server text, the progress bar. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

/* Prints "coffre: MESSAGE\n" on stderr. Callers escape untrusted parts with cli_escape(). */
void cli_error(const char *fmt, ...) _printf_(1, 2);

/* Appends s to b with everything a terminal could act on made visible: C0 and C1 controls, DEL,
 * bidirectional overrides and invalid UTF-8 become \n, \t, \xNN or \u{NNNN}; a backslash is
 * doubled so the result is unambiguous. Valid printable UTF-8 passes through unchanged. */
int cli_escape_append(struct buf *b, const char *s) _warn_unused_;
/* The same into a new string; NULL on allocation failure. */
char *cli_escape(const char *s);

struct progress;

/* A progress bar on stderr for a transfer of total bytes (0 when unknown). When enabled is false
 * or stderr is not a terminal, *ret is NULL and every progress_* call does nothing. */
int progress_new(const char *label, uint64_t total, bool enabled, struct progress **ret) _warn_unused_;
/* Records done bytes; redraws at most ten times a second. */
void progress_update(struct progress *p, uint64_t done);
/* Erases the bar (the caller prints the result line). */
void progress_finish(struct progress *p);
void progress_free(struct progress *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct progress *, progress_free);

/* Formats one bar line into out (NUL-terminated, at most width columns when width >= 40):
 * label, bar, percent, bytes, rate and ETA. Exposed for tests. */
void progress_format(char *out, size_t out_size, const char *label, uint64_t done, uint64_t total,
                     double elapsed_s, unsigned width);
/* "1.5 MiB"-style size for display. */
void progress_format_bytes(char *out, size_t out_size, double bytes);
