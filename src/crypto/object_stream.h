/* object_stream.h: the encrypted object format (AES-256-GCM STREAM, 64 KiB segments, authenticated
 * header). Byte layout in docs/formats.md. Pure transformation: no I/O, no key storage. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define OBJ_SEGMENT_SIZE 65536u
#define OBJ_TAG_SIZE 16u
#define OBJ_KEY_SIZE 32u
#define OBJ_ID_SIZE 16u
/* Fixed in format version 1; see docs/formats.md. (4+1+1+2+4+16+16+7 = 51 bytes of fields do not fit
 * in 48, so the header is 56: the fields, then 5 zero bytes.) */
#define OBJ_HEADER_SIZE 56u
#define OBJ_NONCE_PREFIX_SIZE 7u

struct obj_header {
        uint8_t version;            /* 1 */
        uint8_t algorithm;          /* 1 = AES-256-GCM STREAM */
        uint32_t segment_size;      /* 65536 */
        uint8_t object_id[OBJ_ID_SIZE];
        uint8_t kek_id[OBJ_ID_SIZE]; /* organisation KEK id that wraps this object's DEK */
        uint8_t nonce_prefix[7];
};

/* Parses and sanity-checks a header (not authenticated until a segment decrypts). -EBADMSG when malformed. */
int obj_header_parse(const uint8_t *p, size_t n, struct obj_header *ret) _warn_unused_;

/* Ciphertext size for a plaintext size, and back (-EBADMSG when no plaintext size maps to it). */
uint64_t obj_ciphertext_size(uint64_t plaintext_size);
int obj_plaintext_size(uint64_t ciphertext_size, uint64_t *ret) _warn_unused_;

/* Receives ciphertext (writer) or plaintext (reader) as it is produced; p is only valid during the
 * call. Negative return aborts (and a writer stays failed with that error). */
typedef int (*obj_sink_t)(void *userdata, const uint8_t *p, size_t n);

struct obj_writer;
/* Starts an object: picks a random nonce prefix and emits the header to sink on the first call. */
int obj_writer_new(const uint8_t dek[OBJ_KEY_SIZE], const uint8_t object_id[OBJ_ID_SIZE],
                   const uint8_t kek_id[OBJ_ID_SIZE], obj_sink_t sink, void *userdata, struct obj_writer **ret) _warn_unused_;
/* For test vectors only: a fixed nonce prefix. */
int obj_writer_new_with_nonce(const uint8_t dek[OBJ_KEY_SIZE], const uint8_t object_id[OBJ_ID_SIZE],
                              const uint8_t kek_id[OBJ_ID_SIZE], const uint8_t nonce_prefix[7], obj_sink_t sink,
                              void *userdata, struct obj_writer **ret) _warn_unused_;
int obj_writer_update(struct obj_writer *w, const void *p, size_t n) _warn_unused_;
/* Seals the last segment (possibly empty). */
int obj_writer_final(struct obj_writer *w) _warn_unused_;
void obj_writer_free(struct obj_writer *w); /* wipes keys and buffers */
DEFINE_TRIVIAL_CLEANUP_FUNC(struct obj_writer *, obj_writer_free);

/* Random access reading: fetches ciphertext through read_at (like pread), decrypts whole segments,
 * emits plaintext [offset, offset+length) to sink. The object's ciphertext size must be known
 * (it fixes which segment is last). -EBADMSG on any authentication failure, before the failing
 * segment's plaintext is emitted. */
/* read_at returns the bytes read (1..n), 0 at end of data, or a negative errno; a short object is -EBADMSG.
 * obj_reader_new authenticates the header and the last segment (so truncation, a wrong key or another
 * object's header fail at open); obj_reader_read returns -EINVAL for a range past the end. */
typedef int (*obj_read_at_t)(void *userdata, uint8_t *p, size_t n, uint64_t off);

struct obj_reader;
int obj_reader_new(const uint8_t dek[OBJ_KEY_SIZE], uint64_t ciphertext_size, obj_read_at_t read_at,
                   void *read_userdata, struct obj_reader **ret) _warn_unused_;
const struct obj_header *obj_reader_header(const struct obj_reader *r);
uint64_t obj_reader_plaintext_size(const struct obj_reader *r);
int obj_reader_read(struct obj_reader *r, uint64_t offset, uint64_t length, obj_sink_t sink, void *userdata) _warn_unused_;
void obj_reader_free(struct obj_reader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct obj_reader *, obj_reader_free);
