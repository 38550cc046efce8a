/* chunker.h: content-defined chunking for backups: a keyed gear hash with FastCDC-style
 * normalised cut masks. The gear table is derived from a secret key, so the positions of the
 * cuts tell nothing about the content to someone without the key. Algorithm and parameters in
 * docs/formats.md ("Backup repository"). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define CHUNKER_KEY_SIZE 32u
#define CHUNKER_MIN_FLOOR 64u                   /* smallest min size accepted */
#define CHUNKER_MAX_CEILING ((size_t) 64 << 20) /* largest max size accepted */

struct chunker_params {
        uint32_t min_size; /* no cut before this many bytes */
        uint32_t avg_size; /* a power of two: the expected chunk size */
        uint32_t max_size; /* a cut at this many bytes at the latest */
};

/* The repository default: 512 KiB / 1 MiB / 8 MiB. */
void chunker_params_default(struct chunker_params *p);
/* 0 when min >= CHUNKER_MIN_FLOOR, min < avg < max <= CHUNKER_MAX_CEILING and avg is a power of two. */
int chunker_params_check(const struct chunker_params *p) _warn_unused_;

struct chunker {
        struct chunker_params p;
        uint64_t mask_small; /* before avg: more bits, cuts less likely */
        uint64_t mask_large; /* after avg: fewer bits, cuts more likely */
        uint64_t gear[256];
};

/* Derives the gear table from key: gear[i] = first 8 bytes (LE) of BLAKE2b-256 keyed with key
 * of the message "coffre-cdc-gear" || i (one byte). -EINVAL for bad parameters. */
int chunker_init(struct chunker *c, const struct chunker_params *p, const uint8_t key[CHUNKER_KEY_SIZE]) _warn_unused_;
/* Wipes the gear table. */
void chunker_wipe(struct chunker *c);
/* Length of the chunk that starts at data[0]: n when n <= min_size, else the first cut in
 * data[min_size .. MIN(n, max_size)], else MIN(n, max_size). The caller passes at least
 * max_size bytes unless the input ends sooner. */
size_t chunker_cut(const struct chunker *c, const uint8_t *data, size_t n);
