/* log.h: the durable audit log under DATA/audit/: entries, stored subtree hashes (for O(log n)
 * proofs and C2SP tlog-tiles), group-committed appends, crash recovery, full verification and
 * the store of signed checkpoints. The on-disk layout is described in docs/audit.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "buf.h"
#include "macro.h"
#include "merkle.h"

#define AUDIT_LOG_ENTRY_MAX 65535u      /* bytes per entry (C2SP entry bundles use a 16-bit length) */
#define AUDIT_LOG_CHECKPOINT_MAX 65536u /* bytes per stored checkpoint note */
#define AUDIT_LOG_TILE_WIDTH 256u       /* C2SP tlog-tiles: full tiles hold 256 hashes, height 8 */

struct audit_log;

/* Called once per durable group, in order of size, with the new size and root. It runs on the
 * appending thread that led the group, before the next group starts: keep it short (queue work). */
typedef void (*audit_log_commit_fn)(void *userdata, uint64_t size, const merkle_hash *root);

struct audit_checkpoint {
        uint64_t size;
        merkle_hash root; /* the root of the log at size, as stored beside the note */
        char *note;       /* the note text, as given to audit_log_checkpoint_store() */
};
void audit_checkpoint_clear(struct audit_checkpoint *c);

/* Opens (create: creates when missing) the log in dir, takes an exclusive lock on it (-EBUSY if
 * another process holds it) and recovers from a crash: a torn tail above the last stored
 * checkpoint is moved whole to torn/ and cut off, and the stored hashes of the tail are rebuilt
 * from the entries. -EBADMSG (nothing changed) when the log holds fewer whole records than its
 * last checkpoint covers, is shorter than its durable index, or holds past its last whole record
 * more than a torn write leaves (a damaged record that is not a short last one). */
int audit_log_open(const char *dir, bool create, struct audit_log **ret) _warn_unused_;
/* Opens the log for verification, changing nothing on disk (shared lock: -EBUSY while a server
 * holds it). Recovery runs on private copies of the derived files; nothing is cut. Appends fail
 * with -EROFS, or -EBADMSG when the log is damaged below its last checkpoint. */
int audit_log_open_readonly(const char *dir, struct audit_log **ret) _warn_unused_;
/* Opens an existing log as audit_log_open() (readonly: audit_log_open_readonly()), with floor as
 * if a checkpoint of that size were stored: a size signed elsewhere (the signer's memory), which
 * holds when audit/checkpoints is gone. Never cut below; fewer whole records: -EBADMSG, nothing
 * changed (readonly: the log opens, appends fail with -EBADMSG). */
int audit_log_open_floor(const char *dir, bool readonly, uint64_t floor, struct audit_log **ret) _warn_unused_;
/* Bytes of the entries file past the last whole record (torn write or foreign data), as found at
 * open (a read-write open has moved them to torn/ and cut them). */
uint64_t audit_log_trailing_bytes(struct audit_log *log);
/* Whether those bytes are damage rather than a torn write: more than a short last record (the
 * only thing a write cut short leaves). A read-write open refuses such a log (-EBADMSG). */
bool audit_log_tail_damaged(struct audit_log *log);
/* Makes everything durable and frees the log. NULL-safe. No appends may be running. */
void audit_log_close(struct audit_log *log);
static inline void audit_log_closep(struct audit_log **l) {
        audit_log_close(*l);
}

/* Appends one entry (0..AUDIT_LOG_ENTRY_MAX bytes); returns once it is durable (fdatasync),
 * sharing that sync with every append waiting at the same moment. Thread-safe. -EIO after a
 * failed sync: the log then refuses appends until reopened (the entry may or may not survive). */
int audit_log_append(struct audit_log *log, const void *entry, size_t len, uint64_t *ret_index) _warn_unused_;
/* Appends n entries as consecutive indexes (for imports and restores); *ret_first = the first. */
int audit_log_append_batch(struct audit_log *log, const struct iovec *entries, size_t n,
                           uint64_t *ret_first) _warn_unused_;
/* Makes the stored hashes and offsets durable now (also done about once a second and at close). */
int audit_log_sync(struct audit_log *log) _warn_unused_;

void audit_log_set_on_commit(struct audit_log *log, audit_log_commit_fn fn, void *userdata);
/* For tests: the next group starts only once n appends are queued (then it takes them all), so a
 * group-commit test does not depend on scheduling. One-shot; n appends must come. */
void audit_log_hold_group(struct audit_log *log, unsigned n);

/* Groups made durable (one fdatasync each) and the entries they held, since the log was opened. */
void audit_log_group_stats(struct audit_log *log, uint64_t *ret_groups, uint64_t *ret_entries);
/* Number of durable entries. */
uint64_t audit_log_size(struct audit_log *log);
/* Root of the tree of the first size entries (size <= audit_log_size()). */
int audit_log_root(struct audit_log *log, uint64_t size, merkle_hash *ret) _warn_unused_;
/* Appends the bytes of entry index to ret (an initialised buf). -ENOENT past the end,
 * -EBADMSG when the stored record is damaged. */
int audit_log_entry(struct audit_log *log, uint64_t index, struct buf *ret) _warn_unused_;
/* The stored leaf hash of entry index. */
int audit_log_leaf_hash(struct audit_log *log, uint64_t index, merkle_hash *ret) _warn_unused_;

/* RFC 9162 proofs; proof must hold MERKLE_MAX_PROOF hashes. */
int audit_log_inclusion_proof(struct audit_log *log, uint64_t index, uint64_t size, merkle_hash *proof,
                              size_t *ret_len) _warn_unused_;
int audit_log_consistency_proof(struct audit_log *log, uint64_t m, uint64_t n, merkle_hash *proof,
                                size_t *ret_len) _warn_unused_;

/* C2SP tlog-tiles: appends to ret the tile at tile level `level`, tile index `index`, holding
 * `width` (1..256) hashes, i.e. the stored hashes of tree level 8*level, indexes
 * index*256 .. index*256+width-1. -ENOENT when the log is too small for that tile. */
int audit_log_tile(struct audit_log *log, unsigned level, uint64_t index, unsigned width,
                   struct buf *ret) _warn_unused_;
/* C2SP tlog-tiles entry bundle: entries index*256 .. index*256+width-1, each as a big-endian
 * uint16 length followed by the entry. */
int audit_log_entry_bundle(struct audit_log *log, uint64_t index, unsigned width, struct buf *ret) _warn_unused_;

/* Recomputes the whole tree from the stored entries and compares every stored hash, every
 * offset and every stored checkpoint root with it. 0 when all agree. -EBADMSG when not, and
 * then (unlike other functions' ret_ parameters) *ret_bad_index is set to the first index that
 * is wrong: an edited, deleted, inserted or moved entry is reported at its own index; a stored
 * hash that disagrees with correct entries at the first index it covers; a checkpoint whose
 * root disagrees with a consistent log at its last index (size - 1). */
int audit_log_verify_all(struct audit_log *log, uint64_t *ret_bad_index) _warn_unused_;

/* Stores a checkpoint note for size (<= the log size, >= the latest stored size) durably, with
 * the log's root at that size. The note is stored as given; its signature is the caller's job. */
int audit_log_checkpoint_store(struct audit_log *log, uint64_t size, const char *note_text) _warn_unused_;
/* The latest stored checkpoint (-ENOENT when none); _at: the latest stored for that size. */
int audit_log_checkpoint_latest(struct audit_log *log, struct audit_checkpoint *ret) _warn_unused_;
int audit_log_checkpoint_at(struct audit_log *log, uint64_t size, struct audit_checkpoint *ret) _warn_unused_;
/* All stored checkpoints, oldest first, for verification. */
size_t audit_log_checkpoint_count(struct audit_log *log);
int audit_log_checkpoint_nth(struct audit_log *log, size_t i, struct audit_checkpoint *ret) _warn_unused_;
