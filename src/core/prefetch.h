/* prefetch.h: decrypts the next segments of a sequential download on a thread of its own, so
 * that decryption and TLS sending run on two cores at once. Memory: PREFETCH_SLOTS segments. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define PREFETCH_SLOTS 4u
#define PREFETCH_SEGMENT_MAX 65536u

/* Fills buf (PREFETCH_SEGMENT_MAX bytes) with segment seg; sets *ret_len. Runs on the thread. */
typedef int (*prefetch_fill_fn)(void *ud, uint64_t seg, uint8_t *buf, size_t *ret_len);

struct prefetch;
/* Starts producing segments first .. end-1 in order. */
int prefetch_new(uint64_t first, uint64_t end, prefetch_fill_fn fill, void *ud, struct prefetch **ret) _warn_unused_;
/* The data of segment seg, valid until the next call. Only seg equal to the last one asked, or
 * the one after it, may be asked (-ESPIPE otherwise: the caller falls back to direct reads).
 * Passes on the fill function's error. */
int prefetch_get(struct prefetch *p, uint64_t seg, const uint8_t **ret, size_t *ret_len) _warn_unused_;
/* Stops the thread and wipes the buffers. NULL-safe. */
void prefetch_free(struct prefetch *p);
