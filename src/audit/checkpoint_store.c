/* checkpoint_store.c: the audit log's checkpoints file: signed checkpoint notes stored durably
 * beside the log's root at their size, sizes never decreasing, indexed in memory at open (a torn
 * or out-of-order tail is cut and kept in torn/) and read back by position or by size. */
#include "log_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "basic/log.h"

struct ckpt_ref {
        uint64_t size, off;
};

/* Checkpoint record: u32 note length | u64 size | root | note | SHA-256 of everything before. */
#define CKPT_HDR (4u + 8u + MERKLE_HASH_SIZE)

static int ckpt_read(struct audit_log *log, uint64_t off, uint64_t limit, struct audit_checkpoint *ret,
                     uint64_t *ret_end) {
        uint8_t hdr[CKPT_HDR], sum[32], want[32];
        int r = pread_exact(log->ckpt_fd, hdr, CKPT_HDR, off);
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        uint32_t n = get_le32(hdr);
        if (n == 0 || n > AUDIT_LOG_CHECKPOINT_MAX || off + CKPT_HDR + n + 32 > limit)
                return -EBADMSG;
        _cleanup_free_ char *note = malloc(n + 1);
        if (!note)
                return -ENOMEM;
        r = pread_exact(log->ckpt_fd, note, n, off + CKPT_HDR);
        if (r >= 0)
                r = pread_exact(log->ckpt_fd, want, 32, off + CKPT_HDR + n);
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        crypto_hash_sha256_state st;
        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, hdr, CKPT_HDR);
        crypto_hash_sha256_update(&st, (const uint8_t *) note, n);
        crypto_hash_sha256_final(&st, sum);
        if (memcmp(sum, want, 32) != 0 || memchr(note, 0, n))
                return -EBADMSG;
        note[n] = 0;
        if (ret) {
                ret->size = get_le64(hdr + 4);
                memcpy(ret->root.b, hdr + 12, MERKLE_HASH_SIZE);
                ret->note = TAKE_PTR(note);
        }
        *ret_end = off + CKPT_HDR + n + 32;
        return 0;
}

static int ckpt_index_add(struct audit_log *log, uint64_t size, uint64_t off) {
        if (log->n_ckpts == log->ckpts_cap) {
                size_t cap = log->ckpts_cap ? 2 * log->ckpts_cap : 64;
                struct ckpt_ref *c = realloc(log->ckpts, cap * sizeof *c);
                if (!c)
                        return -ENOMEM;
                log->ckpts = c, log->ckpts_cap = cap;
        }
        log->ckpts[log->n_ckpts++] = (struct ckpt_ref){ size, off };
        return 0;
}

int audit_log_checkpoints_load(struct audit_log *log) {
        uint64_t off = 0, end, limit = file_size(log->ckpt_fd);
        struct audit_checkpoint c = {};
        int r;
        while (off < limit) {
                r = ckpt_read(log, off, limit, &c, &end);
                if (r == -EBADMSG)
                        break;
                if (r < 0)
                        return r;
                uint64_t size = c.size;
                audit_checkpoint_clear(&c);
                if (log->n_ckpts > 0 && size < log->ckpts[log->n_ckpts - 1].size)
                        break;
                r = ckpt_index_add(log, size, off);
                if (r < 0)
                        return r;
                off = end;
        }
        if (off < limit && log->readonly)
                log_warn("audit log: %llu bytes of audit/checkpoints past offset %llu are no whole checkpoint",
                         (unsigned long long) (limit - off), (unsigned long long) off);
        else if (off < limit) {
                r = audit_log_keep_torn(log, log->ckpt_fd, "checkpoints", off, limit);
                if (r < 0)
                        return log_error_errno(r, "audit log: cannot keep the torn tail of audit/checkpoints (%s): "
                                                  "refusing to cut it",
                                               strerror(-r));
                if (ftruncate(log->ckpt_fd, (off_t) off) < 0 || fdatasync(log->ckpt_fd) < 0)
                        return negative_errno();
        }
        log->ckpt_end = off;
        return 0;
}

uint64_t audit_log_checkpoint_floor(struct audit_log *log) {
        pthread_mutex_lock(&log->ckpt_mu);
        uint64_t size = log->n_ckpts ? log->ckpts[log->n_ckpts - 1].size : 0;
        pthread_mutex_unlock(&log->ckpt_mu);
        return size > log->signed_floor ? size : log->signed_floor;
}

void audit_checkpoint_clear(struct audit_checkpoint *c) {
        if (!c)
                return;
        free(c->note);
        *c = (struct audit_checkpoint){};
}

int audit_log_checkpoint_store(struct audit_log *log, uint64_t size, const char *note_text) {
        merkle_hash root;
        int r;

        if (!log || !note_text)
                return -EINVAL;
        size_t n = strlen(note_text);
        if (n == 0 || n > AUDIT_LOG_CHECKPOINT_MAX)
                return -EINVAL;
        r = audit_log_root(log, size, &root);
        if (r < 0)
                return r;
        _cleanup_free_ uint8_t *rec = malloc(CKPT_HDR + n + 32);
        if (!rec)
                return -ENOMEM;
        put_le32(rec, (uint32_t) n);
        put_le64(rec + 4, size);
        memcpy(rec + 12, root.b, MERKLE_HASH_SIZE);
        memcpy(rec + CKPT_HDR, note_text, n);
        crypto_hash_sha256(rec + CKPT_HDR + n, rec, CKPT_HDR + n);

        pthread_mutex_lock(&log->ckpt_mu);
        if (log->n_ckpts > 0 && size < log->ckpts[log->n_ckpts - 1].size)
                r = -EINVAL;
        else {
                r = pwrite_all(log->ckpt_fd, rec, CKPT_HDR + n + 32, log->ckpt_end);
                if (r >= 0 && fdatasync(log->ckpt_fd) < 0)
                        r = negative_errno();
                if (r >= 0)
                        r = ckpt_index_add(log, size, log->ckpt_end);
                if (r >= 0)
                        log->ckpt_end += CKPT_HDR + n + 32;
                else if (ftruncate(log->ckpt_fd, (off_t) log->ckpt_end) < 0)
                        log_error("audit log: could not cut a failed checkpoint write");
        }
        pthread_mutex_unlock(&log->ckpt_mu);
        return r;
}

static int ckpt_get(struct audit_log *log, size_t i, struct audit_checkpoint *ret) {
        uint64_t end;
        if (i >= log->n_ckpts)
                return -ENOENT;
        return ckpt_read(log, log->ckpts[i].off, log->ckpt_end, ret, &end);
}

size_t audit_log_checkpoint_count(struct audit_log *log) {
        pthread_mutex_lock(&log->ckpt_mu);
        size_t n = log->n_ckpts;
        pthread_mutex_unlock(&log->ckpt_mu);
        return n;
}

int audit_log_checkpoint_nth(struct audit_log *log, size_t i, struct audit_checkpoint *ret) {
        pthread_mutex_lock(&log->ckpt_mu);
        int r = ckpt_get(log, i, ret);
        pthread_mutex_unlock(&log->ckpt_mu);
        return r;
}

int audit_log_checkpoint_latest(struct audit_log *log, struct audit_checkpoint *ret) {
        pthread_mutex_lock(&log->ckpt_mu);
        int r = log->n_ckpts ? ckpt_get(log, log->n_ckpts - 1, ret) : -ENOENT;
        pthread_mutex_unlock(&log->ckpt_mu);
        return r;
}

int audit_log_checkpoint_at(struct audit_log *log, uint64_t size, struct audit_checkpoint *ret) {
        pthread_mutex_lock(&log->ckpt_mu);
        /* sizes never decrease: find the last record with this size by binary search */
        size_t lo = 0, hi = log->n_ckpts;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (log->ckpts[mid].size <= size)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        int r = lo > 0 && log->ckpts[lo - 1].size == size ? ckpt_get(log, lo - 1, ret) : -ENOENT;
        pthread_mutex_unlock(&log->ckpt_mu);
        return r;
}
