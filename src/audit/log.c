/* log.c: durable storage of the audit log: opening and closing, group-committed appends, reads,
 * proofs and tiles. The entries file is the only authority: one fdatasync of it makes a group of
 * appends durable. Offsets and per-level subtree hashes are derived from it, written at once but
 * synced lazily; a state file records how far they are durable, and opening the log rebuilds
 * everything past that point from the entries, cutting a torn tail (log_recover.c). Checkpoints
 * are kept by checkpoint_store.c. */
#include "log_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>

#include <openssl/evp.h>

#include "basic/log.h"
#include "fileio.h"
#include "timeutil.h"

#define SYNC_EVERY_NS UINT64_C(1000000000)
#define SYNC_EVERY_ENTRIES UINT64_C(65536)

struct waiter {
        const struct iovec *iov;
        size_t n;
        uint64_t first;
        int result;
        bool done;
        bool taken;   /* in a group in flight */
        uint64_t seq; /* the group it belongs to (once taken) or would join */
        struct waiter *next;
};

/* Leaf hashes are most of the hashing work (appends, recovery, verification): computed here
 * with OpenSSL's SHA-256, which uses the CPU's SHA extensions, with a context reused per caller.
 * Same value as merkle_leaf_hash(), which remains the fallback; the tests compare the two. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) {
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

EVP_MD_CTX *audit_log_hasher_new(void) {
        pthread_once(&sha256_once, sha256_fetch);
        return sha256_md ? EVP_MD_CTX_new() : NULL;
}

void audit_log_hasher_leaf(EVP_MD_CTX *ctx, const void *p, size_t n, merkle_hash *ret) {
        static const uint8_t prefix = 0x00;
        unsigned len;
        if (ctx && EVP_DigestInit_ex2(ctx, sha256_md, NULL) == 1 && EVP_DigestUpdate(ctx, &prefix, 1) == 1 &&
            (n == 0 || EVP_DigestUpdate(ctx, p, n) == 1) && EVP_DigestFinal_ex(ctx, ret->b, &len) == 1)
                return;
        merkle_leaf_hash(p, n, ret);
}

void audit_log_hasher_freep(EVP_MD_CTX **c) {
        EVP_MD_CTX_free(*c);
}

static int open_in(const struct audit_log *log, const char *name, int flags) {
        _cleanup_free_ char *p = path_join(log->dir, name);
        if (!p)
                return -ENOMEM;
        int fd = open(p, flags | O_CLOEXEC, 0600);
        return fd < 0 ? negative_errno() : fd;
}

/* A read-only log works on private copies of its derived files, so that recovery can rebuild
 * them in memory: copies fd (-1: none) into a new memory file and closes it. */
static int memfd_copy(int fd) {
        int m = memfd_create("coffre-audit", MFD_CLOEXEC);
        if (m < 0) {
                int r = negative_errno();
                if (fd >= 0)
                        close(fd);
                return r;
        }
        if (fd < 0)
                return m;
        uint8_t buf[65536];
        int r = 0;
        for (;;) {
                ssize_t k = read(fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        r = negative_errno();
                if (k <= 0)
                        break;
                r = write_all(m, buf, (size_t) k);
                if (r < 0)
                        break;
        }
        close(fd);
        if (r < 0) {
                close(m);
                return r;
        }
        return m;
}

/* Opens a derived file: read-write, or as a private copy for a read-only log. */
static int open_derived(struct audit_log *log, const char *name, bool create) {
        if (!log->readonly)
                return open_in(log, name, O_RDWR | (create ? O_CREAT : 0));
        int fd = open_in(log, name, O_RDONLY);
        if (fd == -ENOENT && create)
                fd = -1;
        else if (fd < 0)
                return fd;
        return memfd_copy(fd);
}

static int level_open(struct audit_log *log, unsigned level, bool create) {
        char name[16];
        if (log->level_fd[level] >= 0)
                return 0;
        snprintf(name, sizeof name, "hashes/%02u", level);
        int fd = open_derived(log, name, create);
        if (fd < 0)
                return fd;
        log->level_fd[level] = fd;
        log->new_level_file |= create;
        return 0;
}

/* ---- reading stored hashes ---- */

int audit_log_get_hash(void *ud, unsigned level, uint64_t index, merkle_hash *ret) {
        const struct snap *s = ud;
        if (level >= LEVELS || index >= (s->size >> level) || s->log->level_fd[level] < 0)
                return -EINVAL;
        int r = pread_exact(s->log->level_fd[level], ret->b, MERKLE_HASH_SIZE, index * MERKLE_HASH_SIZE);
        return r == -ENODATA ? -EBADMSG : r;
}

struct snap audit_log_snapshot(struct audit_log *log, merkle_hash *ret_root) {
        pthread_mutex_lock(&log->mu);
        struct snap s = { log, log->size };
        if (ret_root)
                *ret_root = log->root;
        pthread_mutex_unlock(&log->mu);
        return s;
}

void audit_log_group_stats(struct audit_log *log, uint64_t *ret_groups, uint64_t *ret_entries) {
        pthread_mutex_lock(&log->mu);
        *ret_groups = log->groups_synced;
        *ret_entries = log->entries_synced;
        pthread_mutex_unlock(&log->mu);
}

uint64_t audit_log_size(struct audit_log *log) {
        return audit_log_snapshot(log, NULL).size;
}

int audit_log_root(struct audit_log *log, uint64_t size, merkle_hash *ret) {
        merkle_hash cur;
        struct snap s = audit_log_snapshot(log, &cur);
        if (size > s.size)
                return -EINVAL;
        if (size == s.size) {
                *ret = cur;
                return 0;
        }
        if (size == 0) {
                merkle_empty_root(ret);
                return 0;
        }
        return merkle_root(audit_log_get_hash, &s, size, ret);
}

int audit_log_leaf_hash(struct audit_log *log, uint64_t index, merkle_hash *ret) {
        struct snap s = audit_log_snapshot(log, NULL);
        if (index >= s.size)
                return -ENOENT;
        return audit_log_get_hash(&s, 0, index, ret);
}

int audit_log_inclusion_proof(struct audit_log *log, uint64_t index, uint64_t size, merkle_hash *proof,
                              size_t *ret_len) {
        struct snap s = audit_log_snapshot(log, NULL);
        if (size > s.size || index >= size)
                return -EINVAL;
        return merkle_inclusion_proof(audit_log_get_hash, &s, index, size, proof, ret_len);
}

int audit_log_consistency_proof(struct audit_log *log, uint64_t m, uint64_t n, merkle_hash *proof, size_t *ret_len) {
        struct snap s = audit_log_snapshot(log, NULL);
        if (n > s.size || m > n)
                return -EINVAL;
        return merkle_consistency_proof(audit_log_get_hash, &s, m, n, proof, ret_len);
}

/* Start and end offsets of record index in the entries file. */
static int record_span(struct audit_log *log, uint64_t index, uint64_t *ret_start, uint64_t *ret_end) {
        uint8_t b[16];
        int r;
        if (index == 0) {
                r = pread_exact(log->offsets_fd, b + 8, 8, 0);
                put_le64(b, 0);
        } else
                r = pread_exact(log->offsets_fd, b, 16, (index - 1) * 8);
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        *ret_start = get_le64(b);
        *ret_end = get_le64(b + 8);
        return 0;
}

int audit_log_entry(struct audit_log *log, uint64_t index, struct buf *ret) {
        struct snap s = audit_log_snapshot(log, NULL);
        uint8_t rec[REC_OVERHEAD + AUDIT_LOG_ENTRY_MAX];
        uint64_t start, end;
        merkle_hash h;
        int r;

        if (index >= s.size)
                return -ENOENT;
        r = record_span(log, index, &start, &end);
        if (r < 0)
                return r;
        if (end < start || end - start < REC_OVERHEAD || end - start > sizeof rec)
                return -EBADMSG;
        size_t n = (size_t) (end - start);
        r = pread_exact(log->entries_fd, rec, n, start);
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        if (get_le32(rec) != n - REC_OVERHEAD)
                return -EBADMSG;
        _cleanup_hasher_ EVP_MD_CTX *hc = audit_log_hasher_new();
        audit_log_hasher_leaf(hc, rec + REC_HDR, n - REC_OVERHEAD, &h);
        if (memcmp(h.b, rec + n - MERKLE_HASH_SIZE, MERKLE_HASH_SIZE) != 0)
                return -EBADMSG;
        return buf_append(ret, rec + REC_HDR, n - REC_OVERHEAD);
}

int audit_log_tile(struct audit_log *log, unsigned level, uint64_t index, unsigned width, struct buf *ret) {
        struct snap s = audit_log_snapshot(log, NULL);
        uint8_t tile[AUDIT_LOG_TILE_WIDTH * MERKLE_HASH_SIZE];
        if (level >= LEVELS / 8 || width == 0 || width > AUDIT_LOG_TILE_WIDTH || index > UINT64_MAX / 512)
                return -EINVAL;
        if (index * AUDIT_LOG_TILE_WIDTH + width > (s.size >> (8 * level)))
                return -ENOENT;
        int r = pread_exact(log->level_fd[8 * level], tile, (size_t) width * MERKLE_HASH_SIZE,
                            index * AUDIT_LOG_TILE_WIDTH * MERKLE_HASH_SIZE);
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        return buf_append(ret, tile, (size_t) width * MERKLE_HASH_SIZE);
}

int audit_log_entry_bundle(struct audit_log *log, uint64_t index, unsigned width, struct buf *ret) {
        struct snap s = audit_log_snapshot(log, NULL);
        _cleanup_buf_ struct buf out = {};
        int r = 0;

        buf_init(&out, 0);
        if (width == 0 || width > AUDIT_LOG_TILE_WIDTH || index > UINT64_MAX / 512)
                return -EINVAL;
        if (index * AUDIT_LOG_TILE_WIDTH + width > s.size)
                return -ENOENT;
        for (unsigned i = 0; r >= 0 && i < width; i++) {
                size_t at = out.len;
                uint8_t be[2] = { 0, 0 };
                r = buf_append(&out, be, 2);
                if (r >= 0)
                        r = audit_log_entry(log, index * AUDIT_LOG_TILE_WIDTH + i, &out);
                if (r >= 0) {
                        size_t n = out.len - at - 2;
                        out.data[at] = (uint8_t) (n >> 8);
                        out.data[at + 1] = (uint8_t) n;
                }
        }
        return r < 0 ? r : buf_append(ret, out.data, out.len);
}

/* ---- appending: the leader writes a group, syncs once, then writes the derived files ---- */

static int collect_level(void *ud, unsigned level, uint64_t index, const merkle_hash *h) {
        struct audit_log *log = ud;
        (void) index; /* the frontier emits each level's indexes in order, from old_size >> level */
        return buf_append(&log->lvl[level], h->b, MERKLE_HASH_SIZE);
}

/* Writes offsets and subtree hashes for n new records (leaf hashes and record end offsets). */
int audit_log_derived_append(struct audit_log *log, const merkle_hash *leaves, const uint64_t *ends, size_t n) {
        uint64_t old = log->frontier.size;
        uint8_t ob[8 * 512];
        int r;

        for (size_t i = 0; i < n; i += 512) {
                size_t k = MIN(n - i, (size_t) 512);
                for (size_t j = 0; j < k; j++)
                        put_le64(ob + 8 * j, ends[i + j]);
                r = pwrite_all(log->offsets_fd, ob, 8 * k, (old + i) * 8);
                if (r < 0)
                        return r;
        }
        for (unsigned l = 0; l < LEVELS; l++)
                buf_clear(&log->lvl[l]);
        for (size_t i = 0; i < n; i++) {
                r = merkle_frontier_append(&log->frontier, &leaves[i], collect_level, log);
                if (r < 0)
                        return r;
        }
        for (unsigned l = 0; l < LEVELS && log->lvl[l].len > 0; l++) {
                r = level_open(log, l, true);
                if (r < 0)
                        return r;
                r = pwrite_all(log->level_fd[l], log->lvl[l].data, log->lvl[l].len, (old >> l) * MERKLE_HASH_SIZE);
                if (r < 0)
                        return r;
                log->dirty[l] = true;
        }
        return 0;
}

/* Makes the derived files durable up to the frontier's size and records it in the state file. */
int audit_log_sync_derived(struct audit_log *log) {
        uint8_t st[16];
        int r;

        if (fdatasync(log->offsets_fd) < 0)
                return negative_errno();
        for (unsigned l = 0; l < LEVELS; l++)
                if (log->dirty[l]) {
                        if (fdatasync(log->level_fd[l]) < 0)
                                return negative_errno();
                        log->dirty[l] = false;
                }
        if (log->new_level_file) {
                _cleanup_free_ char *h = path_join(log->dir, "hashes");
                if (!h)
                        return -ENOMEM;
                r = fsync_dir(h);
                if (r < 0)
                        return r;
                log->new_level_file = false;
        }
        memcpy(st, STATE_MAGIC, 8);
        put_le64(st + 8, log->frontier.size);
        _cleanup_free_ char *p = path_join(log->dir, "state");
        if (!p)
                return -ENOMEM;
        r = write_file_atomic(p, st, sizeof st, 0600, 0);
        if (r < 0)
                return r;
        log->synced_size = log->frontier.size;
        log->last_sync_ns = mono_ns();
        return 0;
}

int audit_log_batch_reserve(struct audit_log *log, size_t n) {
        if (n <= log->batch_cap)
                return 0;
        merkle_hash *l = realloc(log->leaves, n * sizeof *l);
        if (!l)
                return -ENOMEM;
        log->leaves = l;
        uint64_t *e = realloc(log->ends, n * sizeof *e);
        if (!e)
                return -ENOMEM;
        log->ends = e;
        log->batch_cap = n;
        return 0;
}

/* One group of appends on its way to disk. Up to PIPELINE groups are in flight: each is
 * written in turn by one thread at a time (its leader), synced concurrently with the others
 * (fdatasyncs of one file overlap well), and published strictly in order. */
struct batch {
        struct waiter *waiters;
        uint64_t seq, pos;
        size_t n;
        struct buf rec;
        merkle_hash *leaves;
        uint64_t *ends;
        bool soft_fail; /* failed without leaving anything behind: the log stays usable */
};

/* Stage 1 (one group at a time): records built and written at the end of the entries file. */
static int batch_write(struct audit_log *log, struct batch *b) {
        int r;

        for (struct waiter *w = b->waiters; w; w = w->next)
                b->n += w->n;
        buf_init(&b->rec, 0);
        b->leaves = malloc(b->n * sizeof *b->leaves);
        b->ends = malloc(b->n * sizeof *b->ends);
        if (!b->leaves || !b->ends)
                return -ENOMEM;
        b->pos = log->entries_end;
        _cleanup_hasher_ EVP_MD_CTX *hc = audit_log_hasher_new();
        size_t k = 0;
        r = 0;
        for (struct waiter *w = b->waiters; r >= 0 && w; w = w->next)
                for (size_t i = 0; r >= 0 && i < w->n; i++, k++) {
                        uint8_t hdr[REC_HDR];
                        put_le32(hdr, (uint32_t) w->iov[i].iov_len);
                        audit_log_hasher_leaf(hc, w->iov[i].iov_base, w->iov[i].iov_len, &b->leaves[k]);
                        r = buf_append(&b->rec, hdr, REC_HDR);
                        if (r >= 0)
                                r = buf_append(&b->rec, w->iov[i].iov_base, w->iov[i].iov_len);
                        if (r >= 0)
                                r = buf_append(&b->rec, b->leaves[k].b, MERKLE_HASH_SIZE);
                        b->ends[k] = b->pos + b->rec.len;
                }
        if (r < 0)
                return r;
        r = pwrite_all(log->entries_fd, b->rec.data, b->rec.len, b->pos);
        if (r == -ENOSPC || r == -EDQUOT) {
                /* A full disk: give back what was written past the end and fail only this group,
                 * so the log works again once there is room. */
                if (ftruncate(log->entries_fd, (off_t) b->pos) == 0) {
                        b->soft_fail = true;
                        return -ENOSPC;
                }
        }
        if (r < 0)
                return r; /* unknown bytes past the end: the caller breaks the log */
        log->entries_end = b->pos + b->rec.len;
        return 0;
}

/* Stage 3 (in order): derived files, then the group becomes visible and its waiters return. */
static void batch_publish(struct audit_log *log, struct batch *b, int r) {
        uint64_t old = log->frontier.size;
        merkle_hash root;

        pthread_mutex_lock(&log->mu);
        if (r < 0 && !b->soft_fail && log->broken >= 0)
                log->broken = r; /* an earlier group may be torn: nothing after it may be acknowledged */
        if (log->broken < 0)
                r = log->broken;
        pthread_mutex_unlock(&log->mu);
        if (r >= 0) {
                r = audit_log_derived_append(log, b->leaves, b->ends, b->n);
                if (r < 0)
                        log_error_errno(r, "audit log: writing the hash files failed, refusing appends until reopened");
        }
        merkle_frontier_root(&log->frontier, &root);

        pthread_mutex_lock(&log->mu);
        if (r < 0 && !b->soft_fail && log->broken >= 0)
                log->broken = r;
        if (r >= 0) {
                log->size = log->frontier.size;
                log->root = root;
                log->groups_synced++;
                log->entries_synced += b->n;
        }
        uint64_t next = old;
        for (struct waiter *w = b->waiters; w; w = w->next) {
                w->result = r < 0 ? r : 0;
                w->first = next;
                next += w->n;
                w->done = true;
        }
        pthread_cond_broadcast(&log->gcond[b->seq % (PIPELINE + 1)]);
        pthread_mutex_unlock(&log->mu);
}

/* After a published group, in order: the periodic sync of the derived files and the hook. */
static void post_commit(struct audit_log *log) {
        pthread_mutex_lock(&log->mu);
        audit_log_commit_fn fn = log->on_commit;
        void *ud = log->on_commit_ud;
        uint64_t size = log->size;
        merkle_hash root = log->root;
        int broken = log->broken;
        pthread_mutex_unlock(&log->mu);

        if (broken < 0)
                return;
        if (size - log->synced_size >= SYNC_EVERY_ENTRIES || mono_ns() - log->last_sync_ns >= SYNC_EVERY_NS) {
                int r = audit_log_sync_derived(log);
                if (r < 0)
                        log_error_errno(r, "audit log: syncing the hash files failed, recovery will rebuild them");
        }
        if (fn)
                fn(ud, size, &root);
}

static bool may_lead(const struct audit_log *log) {
        return !log->forming && !log->exclusive && log->want_exclusive == 0 && log->in_flight < PIPELINE &&
               log->queued >= log->hold;
}

/* Under mu: wakes one queued append to lead the next group, when one may start. */
static void wake_leader(struct audit_log *log) {
        if (log->head && may_lead(log))
                pthread_cond_signal(&log->gcond[log->next_seq % (PIPELINE + 1)]);
        if (log->in_flight == 0 && !log->forming)
                pthread_cond_broadcast(&log->cond);
}

/* Called with mu held by an append whose entries are queued; leads the queue through the three
 * stages and returns with mu held again. */
static void lead_group(struct audit_log *log) {
        struct batch b = { .waiters = log->head, .seq = log->next_seq++ };
        for (struct waiter *w = log->head; w; w = w->next)
                w->taken = true;
        log->head = NULL;
        log->tail = &log->head;
        log->queued = log->hold = 0;
        log->forming = true;
        log->in_flight++;
        int r = log->broken;
        pthread_mutex_unlock(&log->mu);

        if (r >= 0)
                r = batch_write(log, &b);
        pthread_mutex_lock(&log->mu);
        log->forming = false;
        if (r < 0 && !b.soft_fail && log->broken >= 0)
                log->broken = r;
        wake_leader(log); /* the next group is written while this one syncs */
        pthread_mutex_unlock(&log->mu);

        if (r >= 0 && fdatasync(log->entries_fd) < 0)
                r = negative_errno(); /* the page cache state is unknown after this: break */

        pthread_mutex_lock(&log->mu);
        while (log->pub_seq != b.seq)
                pthread_cond_wait(&log->pub_cond, &log->mu);
        pthread_mutex_unlock(&log->mu);
        batch_publish(log, &b, r);
        post_commit(log);
        buf_free(&b.rec);
        free(b.leaves);
        free(b.ends);

        pthread_mutex_lock(&log->mu);
        log->pub_seq++;
        log->in_flight--;
        pthread_cond_broadcast(&log->pub_cond);
        wake_leader(log);
}

int audit_log_append_batch(struct audit_log *log, const struct iovec *entries, size_t n, uint64_t *ret_first) {
        struct waiter w = { .iov = entries, .n = n };

        if (!log || (!entries && n) || n == 0 || n > SIZE_MAX / sizeof(merkle_hash))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (entries[i].iov_len > AUDIT_LOG_ENTRY_MAX || (!entries[i].iov_base && entries[i].iov_len))
                        return -EINVAL;

        pthread_mutex_lock(&log->mu);
        if (log->broken < 0) {
                int r = log->broken;
                pthread_mutex_unlock(&log->mu);
                return r;
        }
        w.seq = log->next_seq;
        *log->tail = &w;
        log->tail = &w.next;
        log->queued++;
        while (!w.done) {
                if (!w.taken && may_lead(log)) {
                        lead_group(log);
                        continue;
                }
                /* queued appends all belong to group next_seq; in-flight groups hold the
                 * PIPELINE sequence numbers before it, so each group has a condition of its own */
                pthread_cond_wait(&log->gcond[w.seq % (PIPELINE + 1)], &log->mu);
        }
        pthread_mutex_unlock(&log->mu);
        if (w.result < 0)
                return w.result;
        if (ret_first)
                *ret_first = w.first;
        return 0;
}

int audit_log_append(struct audit_log *log, const void *entry, size_t len, uint64_t *ret_index) {
        struct iovec iov = { .iov_base = (void *) entry, .iov_len = len };
        return audit_log_append_batch(log, &iov, 1, ret_index);
}

/* Exclusive use of the writer state (sync, close): no group in flight, none may start. */
static void leader_acquire(struct audit_log *log) {
        pthread_mutex_lock(&log->mu);
        log->want_exclusive++; /* no new group starts meanwhile */
        while (log->exclusive || log->forming || log->in_flight > 0)
                pthread_cond_wait(&log->cond, &log->mu);
        log->want_exclusive--;
        log->exclusive = true;
        pthread_mutex_unlock(&log->mu);
}

static void leader_release(struct audit_log *log) {
        pthread_mutex_lock(&log->mu);
        log->exclusive = false;
        wake_leader(log);
        pthread_cond_broadcast(&log->cond);
        pthread_mutex_unlock(&log->mu);
}

int audit_log_sync(struct audit_log *log) {
        leader_acquire(log);
        int r = log->broken < 0 ? log->broken : audit_log_sync_derived(log);
        leader_release(log);
        return r;
}

void audit_log_hold_group(struct audit_log *log, unsigned n) {
        pthread_mutex_lock(&log->mu);
        log->hold = n;
        pthread_mutex_unlock(&log->mu);
}

void audit_log_set_on_commit(struct audit_log *log, audit_log_commit_fn fn, void *userdata) {
        pthread_mutex_lock(&log->mu);
        log->on_commit = fn;
        log->on_commit_ud = userdata;
        pthread_mutex_unlock(&log->mu);
}

static void log_free(struct audit_log *log) {
        if (!log)
                return;
        int fds[] = { log->entries_fd, log->offsets_fd, log->ckpt_fd, log->lock_fd };
        for (unsigned l = 0; l < LEVELS; l++)
                if (log->level_fd[l] >= 0)
                        close(log->level_fd[l]);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        for (unsigned l = 0; l < LEVELS; l++)
                buf_free(&log->lvl[l]);
        free(log->leaves);
        free(log->ends);
        free(log->ckpts);
        free(log->dir);
        pthread_mutex_destroy(&log->mu);
        pthread_mutex_destroy(&log->ckpt_mu);
        pthread_cond_destroy(&log->cond);
        for (unsigned i = 0; i <= PIPELINE; i++)
                pthread_cond_destroy(&log->gcond[i]);
        pthread_cond_destroy(&log->pub_cond);
        free(log);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct audit_log *, log_free);

static int log_open(const char *dir, bool create, bool readonly, uint64_t floor, struct audit_log **ret) {
        _cleanup_(log_freep) struct audit_log *log = NULL;
        int r;

        if (!dir || !ret || (create && readonly))
                return -EINVAL;
        log = calloc(1, sizeof *log);
        if (!log)
                return -ENOMEM;
        log->lock_fd = log->entries_fd = log->offsets_fd = log->ckpt_fd = -1;
        log->signed_floor = floor;
        for (unsigned l = 0; l < LEVELS; l++) {
                log->level_fd[l] = -1;
                buf_init(&log->lvl[l], 0);
        }
        pthread_mutex_init(&log->mu, NULL);
        pthread_mutex_init(&log->ckpt_mu, NULL);
        pthread_cond_init(&log->cond, NULL);
        for (unsigned i = 0; i <= PIPELINE; i++)
                pthread_cond_init(&log->gcond[i], NULL);
        pthread_cond_init(&log->pub_cond, NULL);
        log->tail = &log->head;
        log->readonly = readonly;
        log->dir = strdup(dir);
        if (!log->dir)
                return -ENOMEM;
        if (create) {
                r = mkdir_p(dir, 0700);
                if (r < 0)
                        return r;
        }
        r = open_in(log, "entries", readonly ? O_RDONLY : O_RDWR | (create ? O_CREAT : 0));
        if (r < 0)
                return r;
        log->entries_fd = r;
        if (!readonly) {
                _cleanup_free_ char *h = path_join(dir, "hashes");
                if (!h)
                        return -ENOMEM;
                r = mkdir_p(h, 0700); /* also when missing from an existing log: it is rebuilt */
                if (r < 0)
                        return r;
        }
        /* a reader shares the lock (so a running server, which holds it exclusively, is seen) */
        r = open_in(log, "lock", readonly ? O_RDONLY : O_RDWR | O_CREAT);
        if (r < 0 && !(readonly && r == -ENOENT))
                return r;
        log->lock_fd = r < 0 ? -1 : r;
        if (log->lock_fd >= 0 && flock(log->lock_fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : negative_errno();
        r = open_derived(log, "offsets", true);
        if (r < 0)
                return r;
        log->offsets_fd = r;
        r = readonly ? open_in(log, "checkpoints", O_RDONLY) : open_in(log, "checkpoints", O_RDWR | O_CREAT);
        if (r == -ENOENT && readonly)
                r = memfd_copy(-1);
        if (r < 0)
                return r;
        log->ckpt_fd = r;
        for (unsigned l = 0; l < LEVELS; l++) {
                r = level_open(log, l, false);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        /* checkpoints first: recovery never cuts below the last one */
        r = audit_log_checkpoints_load(log);
        if (r < 0)
                return r;
        r = audit_log_recover(log);
        if (r < 0)
                return r;
        if (readonly && log->broken >= 0)
                log->broken = -EROFS;
        if (create) {
                r = fsync_dir(dir);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(log);
        return 0;
}

int audit_log_open(const char *dir, bool create, struct audit_log **ret) {
        return log_open(dir, create, false, 0, ret);
}

int audit_log_open_floor(const char *dir, bool readonly, uint64_t floor, struct audit_log **ret) {
        return log_open(dir, false, readonly, floor, ret);
}

int audit_log_open_readonly(const char *dir, struct audit_log **ret) {
        return log_open(dir, false, true, 0, ret);
}

uint64_t audit_log_trailing_bytes(struct audit_log *log) {
        return log->trailing_bytes;
}

bool audit_log_tail_damaged(struct audit_log *log) {
        return log->tail_damaged;
}

void audit_log_close(struct audit_log *log) {
        if (!log)
                return;
        leader_acquire(log);
        if (!log->readonly && log->broken >= 0 && log->synced_size != log->frontier.size) {
                int r = audit_log_sync_derived(log);
                if (r < 0)
                        log_error_errno(r, "audit log: final sync of the hash files failed");
        }
        log_free(log);
}
