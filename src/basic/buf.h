/* buf.h: a growable byte buffer with a hard cap, the only way to build strings of unknown size. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct buf {
        uint8_t *data;
        size_t len;
        size_t cap;
        size_t max; /* hard cap; 0 means BUF_DEFAULT_MAX */
};

#define BUF_DEFAULT_MAX ((size_t) 64 * 1024 * 1024)

void buf_init(struct buf *b, size_t max);
/* Makes room for n more bytes; -E2BIG past the cap, -ENOMEM on allocation failure. */
int buf_reserve(struct buf *b, size_t n) _warn_unused_;
int buf_append(struct buf *b, const void *p, size_t n) _warn_unused_;
int buf_append_str(struct buf *b, const char *s) _warn_unused_;
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3) _warn_unused_;
/* NUL-terminates without counting the NUL in len; returns the data as a string or NULL. */
char *buf_str(struct buf *b);
/* Hands the data over (NUL-terminated) and resets the buffer. */
char *buf_steal(struct buf *b);
void buf_clear(struct buf *b);
void buf_free(struct buf *b);
/* Wipes the content before freeing, for buffers that held secrets. */
void buf_free_secure(struct buf *b);

static inline void buf_freep(struct buf *b) {
        buf_free(b);
}
#define _cleanup_buf_ _cleanup_(buf_freep)
