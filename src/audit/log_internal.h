/* log_internal.h: what the files of the audit log share and nothing else includes: the log
 * object, the on-disk record layout, small I/O helpers and the functions one file of the log
 * calls in another. log.c opens, appends and reads; log_recover.c recovers and verifies;
 * checkpoint_store.c keeps the checkpoints file. */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "log.h"
#include "macro.h"
#include "merkle.h"

#define LEVELS 64u
#define REC_HDR 4u
#define REC_OVERHEAD (REC_HDR + MERKLE_HASH_SIZE) /* u32 length | entry | leaf hash */
#define STATE_MAGIC "CAUDST01"
#define PIPELINE 2u /* groups in flight: their fdatasyncs overlap */

struct waiter;   /* a queued append (log.c) */
struct ckpt_ref; /* where a stored checkpoint is (checkpoint_store.c) */

struct audit_log {
        char *dir;
        int lock_fd, entries_fd, offsets_fd, ckpt_fd;
        int level_fd[LEVELS];

        pthread_mutex_t mu;  /* guards the fields up to on_commit_ud */
        pthread_cond_t cond; /* for leader_acquire() callers (sync, close) */
        /* Appends of group g sleep on gcond[g % (PIPELINE + 1)]: one broadcast wakes a finished
         * group and only it, one signal wakes the leader of the next. */
        pthread_cond_t gcond[PIPELINE + 1];
        pthread_cond_t pub_cond;
        struct waiter *head, **tail; /* queued appends: the next group */
        uint64_t next_seq, pub_seq;  /* next group to form, next group to publish */
        uint64_t groups_synced, entries_synced; /* since open, for /metrics */
        unsigned in_flight;
        bool forming;   /* a leader is writing its group: owns entries_end */
        bool exclusive; /* leader_acquire() holds the writer state */
        unsigned want_exclusive;
        int broken;    /* sticky error: appends refused until reopened */
        uint64_t size; /* durable, visible to readers */
        merkle_hash root;
        audit_log_commit_fn on_commit;
        void *on_commit_ud;
        unsigned queued, hold; /* test seam (audit_log_hold_group): no group until hold are queued */

        /* owned by the group being published (or by leader_acquire()) */
        uint64_t entries_end; /* (owned by the group being formed) */
        struct merkle_frontier frontier;
        uint64_t synced_size, last_sync_ns;
        bool dirty[LEVELS], new_level_file;
        struct buf lvl[LEVELS];
        merkle_hash *leaves;
        uint64_t *ends;
        size_t batch_cap;

        bool readonly;           /* opened for verification: nothing on disk is changed */
        uint64_t trailing_bytes; /* bytes of audit/entries past the last whole record */
        uint64_t signed_floor;   /* a size signed elsewhere (the signer's memory): never cut below */
        bool tail_damaged;       /* ... and they are no torn write (log_recover.c: tail_is_torn) */

        pthread_mutex_t ckpt_mu;
        uint64_t ckpt_end;
        struct ckpt_ref *ckpts;
        size_t n_ckpts, ckpts_cap;
};

/* The log as a reader sees it at one moment: the merkle_subtree_fn context of
 * audit_log_get_hash(). */
struct snap {
        struct audit_log *log;
        uint64_t size;
};

static inline void put_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static inline uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static inline uint64_t get_le64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

static inline int pwrite_all(int fd, const void *p, size_t n, uint64_t off) {
        const uint8_t *q = p;
        while (n > 0) {
                ssize_t k = pwrite(fd, q, n, (off_t) off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                q += k, n -= (size_t) k, off += (uint64_t) k;
        }
        return 0;
}

/* Reads exactly n bytes at off: -ENODATA when the file ends first. */
static inline int pread_exact(int fd, void *p, size_t n, uint64_t off) {
        uint8_t *q = p;
        while (n > 0) {
                ssize_t k = pread(fd, q, n, (off_t) off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -ENODATA;
                q += k, n -= (size_t) k, off += (uint64_t) k;
        }
        return 0;
}

static inline uint64_t file_size(int fd) {
        struct stat st;
        return fstat(fd, &st) < 0 ? 0 : (uint64_t) st.st_size;
}

static inline bool hash_eq(const merkle_hash *a, const merkle_hash *b) {
        return memcmp(a->b, b->b, MERKLE_HASH_SIZE) == 0; /* public data: no constant time needed */
}

/* ---- log.c ---- */

/* A SHA-256 context for audit_log_hasher_leaf(); NULL is fine (the slower fallback is used). */
EVP_MD_CTX *audit_log_hasher_new(void);
void audit_log_hasher_leaf(EVP_MD_CTX *ctx, const void *p, size_t n, merkle_hash *ret);
void audit_log_hasher_freep(EVP_MD_CTX **c);
#define _cleanup_hasher_ _cleanup_(audit_log_hasher_freep)

struct snap audit_log_snapshot(struct audit_log *log, merkle_hash *ret_root);
int audit_log_get_hash(void *ud, unsigned level, uint64_t index, merkle_hash *ret);
/* Writes offsets and subtree hashes for n new records (leaf hashes and record end offsets). */
int audit_log_derived_append(struct audit_log *log, const merkle_hash *leaves, const uint64_t *ends, size_t n);
/* Makes the derived files durable up to the frontier's size and records it in the state file. */
int audit_log_sync_derived(struct audit_log *log);
/* Makes log->leaves and log->ends hold at least n. */
int audit_log_batch_reserve(struct audit_log *log, size_t n);

/* ---- log_recover.c ---- */

/* At open: rebuilds the derived files past the durable state from the entries, cuts a torn tail. */
int audit_log_recover(struct audit_log *log);
/* Copies bytes about to be cut from a file's tail, whole, to DIR/torn/ (durably), so that recovery
 * never destroys evidence; the caller must not cut when this fails. */
int audit_log_keep_torn(struct audit_log *log, int fd, const char *what, uint64_t from, uint64_t to) _warn_unused_;

/* ---- checkpoint_store.c ---- */

/* At open (before audit_log_recover(), which needs the last checkpoint's size): indexes the
 * checkpoints file, moving a torn or out-of-order tail to torn/ (read-only: only reporting it). */
int audit_log_checkpoints_load(struct audit_log *log);
/* The size of the last stored checkpoint, or the floor given at open when larger (0: none): the
 * floor below which the log is never cut. */
uint64_t audit_log_checkpoint_floor(struct audit_log *log);
