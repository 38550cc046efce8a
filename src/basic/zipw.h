/* zipw.h: a streaming writer of ZIP archives with stored (uncompressed) entries, for containers
 * such as ASiC: small entries given in memory, then at most one large entry read from a callback
 * as the archive is read out, with its CRC-32 in a data descriptor (ZIP64 when it is 4 GiB or
 * more). The archive's size is known before the first byte; memory use does not depend on the
 * large entry's size. Entries are written in the order added; names are UTF-8 (flag bit 11). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

#define ZIPW_MAX_ENTRIES 64u
#define ZIPW_NAME_MAX 255u

/* Reads up to max bytes of the large entry at off into buf; returns the count (> 0) or a
 * negative errno. */
typedef ssize_t (*zipw_read_fn)(void *ud, uint64_t off, uint8_t *buf, size_t max);

struct zipw;

int zipw_new(struct zipw **ret) _warn_unused_;
void zipw_free(struct zipw *z);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct zipw *, zipw_free);
/* A stored entry with a copy of p. -EINVAL for a bad name (empty, too long, NUL), -E2BIG past
 * ZIPW_MAX_ENTRIES, -EBUSY once the stream entry is added. */
int zipw_add_mem(struct zipw *z, const char *name, const void *p, size_t n) _warn_unused_;
/* The last entry: size bytes read through fn as the archive is read. */
int zipw_add_stream(struct zipw *z, const char *name, uint64_t size, zipw_read_fn fn, void *ud) _warn_unused_;
/* Writes the ZIP64 records even for a small stream entry (they are needed from 4 GiB - 16 MiB):
 * lets tests check that layout without writing 4 GiB. Call before reading. */
void zipw_force_zip64(struct zipw *z);
/* The archive's total size (once every entry is added). */
uint64_t zipw_size(const struct zipw *z);
/* The next bytes of the archive, read in order from the start: returns the count (0 at the end)
 * or a negative errno (-EIO when the stream entry gives fewer bytes than announced). */
ssize_t zipw_read(struct zipw *z, uint8_t *buf, size_t max);
/* CRC-32 (ISO 3309, as ZIP uses it) of n bytes, continuing from crc (0 to start). */
uint32_t zipw_crc32(uint32_t crc, const void *p, size_t n);
