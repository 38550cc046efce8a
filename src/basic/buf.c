/* buf.c: growable byte buffer with a hard cap. */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

void buf_init(struct buf *b, size_t max) {
        *b = (struct buf){ .max = max ? max : BUF_DEFAULT_MAX };
}

int buf_reserve(struct buf *b, size_t n) {
        size_t max = b->max ? b->max : BUF_DEFAULT_MAX;

        if (n > max || b->len > max - n)
                return -E2BIG;
        size_t need = b->len + n + 1; /* room for a terminating NUL */
        if (need <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if (cap > max + 1)
                cap = max + 1;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        return 0;
}

int buf_append(struct buf *b, const void *p, size_t n) {
        int r = buf_reserve(b, n);
        if (r < 0)
                return r;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

int buf_append_str(struct buf *b, const char *s) {
        return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...) {
        va_list ap;
        char small[256];

        va_start(ap, fmt);
        int n = vsnprintf(small, sizeof small, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n < sizeof small)
                return buf_append(b, small, (size_t) n);
        int r = buf_reserve(b, (size_t) n);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        vsnprintf((char *) b->data + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
        return 0;
}

char *buf_str(struct buf *b) {
        if (buf_reserve(b, 0) < 0)
                return NULL;
        b->data[b->len] = 0;
        return (char *) b->data;
}

char *buf_steal(struct buf *b) {
        char *s = buf_str(b);
        size_t max = b->max;
        if (s)
                *b = (struct buf){ .max = max };
        return s;
}

void buf_clear(struct buf *b) {
        b->len = 0;
        if (b->data)
                b->data[0] = 0;
}

void buf_free(struct buf *b) {
        free(b->data);
        *b = (struct buf){ .max = b->max };
}

void buf_free_secure(struct buf *b) {
        if (b->data)
                sodium_memzero(b->data, b->cap);
        buf_free(b);
}
