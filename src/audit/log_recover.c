/* log_recover.c: crash recovery when the audit log opens (the derived files rebuilt from the
 * entries past the durable state, a torn tail cut and kept in torn/, damage refused) and audit_log_verify_all(),
 * which recomputes the whole tree from the entries and compares everything stored with it. Both
 * read the files front to back through a small buffered reader. */
#include "log_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "basic/log.h"
#include "fileio.h"
#include "timeutil.h"

#define RECOVER_CHUNK 65536u

/* ---- sequential reads, for recovery and verification ---- */

struct seqread {
        int fd;
        uint64_t off; /* file offset of buf[len] */
        uint8_t *buf;
        size_t pos, len, cap;
};

static int seq_init(struct seqread *s, int fd, uint64_t off, size_t cap) {
        *s = (struct seqread){ .fd = fd, .off = off, .cap = cap };
        s->buf = malloc(cap);
        return s->buf ? 0 : -ENOMEM;
}

static void seq_done(struct seqread *s) {
        free(s->buf);
        s->buf = NULL;
}

/* Copies the next n bytes to p; -ENODATA when the file ends first. */
static int seq_get(struct seqread *s, void *p, size_t n) {
        uint8_t *q = p;
        while (n > 0) {
                if (s->pos == s->len) {
                        if (s->fd < 0)
                                return -ENODATA;
                        ssize_t k = pread(s->fd, s->buf, s->cap, (off_t) s->off);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                return negative_errno();
                        if (k == 0)
                                return -ENODATA;
                        s->pos = 0, s->len = (size_t) k, s->off += (uint64_t) k;
                }
                size_t c = MIN(n, s->len - s->pos);
                memcpy(q, s->buf + s->pos, c);
                s->pos += c, q += c, n -= c;
        }
        return 0;
}

/* Reads one record: 0 and the entry in ent (of AUDIT_LOG_ENTRY_MAX bytes) with its length and
 * leaf hash, -EBADMSG when the bytes are no valid record, -ENODATA at the end of the file. */
static int seq_record(struct seqread *s, EVP_MD_CTX *hc, uint8_t *ent, size_t *ret_len, merkle_hash *ret_leaf) {
        uint8_t hdr[REC_HDR];
        merkle_hash stored;
        int r = seq_get(s, hdr, REC_HDR);
        if (r < 0)
                return r;
        uint32_t n = get_le32(hdr);
        if (n > AUDIT_LOG_ENTRY_MAX)
                return -EBADMSG;
        r = seq_get(s, ent, n);
        if (r >= 0)
                r = seq_get(s, stored.b, MERKLE_HASH_SIZE);
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        audit_log_hasher_leaf(hc, ent, n, ret_leaf);
        if (!hash_eq(ret_leaf, &stored))
                return -EBADMSG;
        *ret_len = n;
        return 0;
}

/* ---- crash recovery at open ---- */

/* Copies [from, to) of fd, whole, to a new file in DIR/torn/, durably. Never caps: what recovery
 * moves aside is evidence. */
int audit_log_keep_torn(struct audit_log *log, int fd, const char *what, uint64_t from, uint64_t to) {
        char name[96];
        _cleanup_free_ uint8_t *p = malloc(RECOVER_CHUNK);
        _cleanup_free_ char *dir = path_join(log->dir, "torn");
        int r;

        log_warn("audit log: moving %llu bytes of torn or foreign data from %s at offset %llu to torn/",
                 (unsigned long long) (to - from), what, (unsigned long long) from);
        if (!p || !dir)
                return -ENOMEM;
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return r;
        snprintf(name, sizeof name, "torn/%s-%llu-%lld", what, (unsigned long long) from, (long long) now_ms());
        _cleanup_free_ char *path = path_join(log->dir, name);
        if (!path)
                return -ENOMEM;
        _cleanup_close_ int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0)
                return negative_errno();
        for (uint64_t off = from; off < to;) {
                size_t n = (size_t) MIN(to - off, (uint64_t) RECOVER_CHUNK);
                r = pread_exact(fd, p, n, off);
                if (r >= 0)
                        r = write_all(out, p, n);
                if (r < 0)
                        return r;
                off += n;
        }
        if (fsync(out) < 0)
                return negative_errno();
        return fsync_dir(dir);
}

static int read_state(struct audit_log *log, uint64_t *ret) {
        _cleanup_buf_ struct buf b = {};
        _cleanup_free_ char *p = path_join(log->dir, "state");
        buf_init(&b, 64);
        if (!p)
                return -ENOMEM;
        int r = read_file(p, 64, &b);
        if (r == -ENOENT) {
                *ret = 0;
                return 0;
        }
        if (r < 0)
                return r;
        if (b.len != 16 || memcmp(b.data, STATE_MAGIC, 8) != 0)
                return -EBADMSG;
        *ret = get_le64(b.data + 8);
        return 0;
}

/* Whether the derived files hold everything for the first w entries. */
static bool derived_cover(struct audit_log *log, uint64_t w) {
        if (file_size(log->offsets_fd) / 8 < w)
                return false;
        for (unsigned l = 0; l < LEVELS && (w >> l) > 0; l++)
                if (log->level_fd[l] < 0 || file_size(log->level_fd[l]) / MERKLE_HASH_SIZE < (w >> l))
                        return false;
        return true;
}

/* Whether the bytes of the entries file from pos (where no whole record reads back) to its end,
 * esize, can be what a torn append leaves. An append writes whole records, length first, at the
 * end of the file, and neither kill -9 nor a power cut (only fdatasync makes bytes durable) leaves
 * anything but a prefix of what it wrote. So a torn record is the last thing in the file, and it
 * is short: fewer than REC_HDR bytes, or a length of at most AUDIT_LOG_ENTRY_MAX (what every
 * writer writes) whose record reaches past the end. Anything else is damage, not a crash: a
 * length no writer writes, a record of full length that does not hash to its leaf (a flipped
 * bit), or a whole record somewhere after it (a flipped bit in a length, which makes the record
 * seem to reach past the end: every offset past its header is tried, at most one record's worth
 * of bytes). One more tail counts as torn: zero bytes only, which a filesystem may leave when the
 * file grew before the data reached the disk; zeros hold no record. */
static int tail_is_torn(struct audit_log *log, uint64_t pos, uint64_t esize, bool *ret) {
        _cleanup_hasher_ EVP_MD_CTX *hc = audit_log_hasher_new();
        uint64_t rem = esize - pos;
        uint8_t hdr[REC_HDR];
        int r;

        if (rem < REC_HDR) {
                *ret = true;
                return 0;
        }
        r = pread_exact(log->entries_fd, hdr, REC_HDR, pos);
        if (r < 0)
                return r;
        uint32_t n = get_le32(hdr);
        if (n <= AUDIT_LOG_ENTRY_MAX && rem < REC_OVERHEAD + (uint64_t) n) {
                /* short: torn, unless a whole record follows inside it */
                _cleanup_free_ uint8_t *p = malloc(rem);
                if (!p)
                        return -ENOMEM;
                r = pread_exact(log->entries_fd, p, rem, pos);
                if (r < 0)
                        return r;
                for (uint64_t o = REC_OVERHEAD; o + REC_OVERHEAD <= rem; o++) {
                        uint32_t k = get_le32(p + o);
                        merkle_hash leaf;
                        if (k > AUDIT_LOG_ENTRY_MAX || o + REC_OVERHEAD + k > rem)
                                continue;
                        audit_log_hasher_leaf(hc, p + o + REC_HDR, k, &leaf);
                        if (memcmp(leaf.b, p + o + REC_HDR + k, MERKLE_HASH_SIZE) == 0) {
                                *ret = false;
                                return 0;
                        }
                }
                *ret = true;
                return 0;
        }
        /* zeros only? */
        _cleanup_free_ uint8_t *p = malloc(RECOVER_CHUNK);
        if (!p)
                return -ENOMEM;
        for (uint64_t off = pos; off < esize;) {
                size_t c = (size_t) MIN(esize - off, (uint64_t) RECOVER_CHUNK);
                r = pread_exact(log->entries_fd, p, c, off);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < c; i++)
                        if (p[i] != 0) {
                                *ret = false;
                                return 0;
                        }
                off += c;
        }
        *ret = true;
        return 0;
}

/* First pass, changing nothing: how many whole records follow offset start and where they end. */
static int scan_records(struct audit_log *log, uint64_t start, uint64_t *ret_n, uint64_t *ret_end) {
        _cleanup_hasher_ EVP_MD_CTX *hc = audit_log_hasher_new();
        _cleanup_free_ uint8_t *ent = malloc(AUDIT_LOG_ENTRY_MAX);
        struct seqread s;
        uint64_t n = 0, pos = start;
        merkle_hash leaf;
        size_t len;
        int r = ent ? seq_init(&s, log->entries_fd, start, 1u << 20) : -ENOMEM;

        while (r >= 0) {
                r = seq_record(&s, hc, ent, &len, &leaf);
                if (r == -EBADMSG || r == -ENODATA) {
                        r = 0;
                        break;
                }
                if (r < 0)
                        break;
                pos += REC_OVERHEAD + len;
                n++;
        }
        if (ent)
                seq_done(&s);
        if (r < 0)
                return r;
        *ret_n = n;
        *ret_end = pos;
        return 0;
}

int audit_log_recover(struct audit_log *log) {
        _cleanup_hasher_ EVP_MD_CTX *hc = audit_log_hasher_new();
        uint64_t w, start = 0, esize = file_size(log->entries_fd), floor = audit_log_checkpoint_floor(log);
        uint64_t n_tail = 0, good_end = 0;
        struct seqread s = {};
        _cleanup_free_ uint8_t *ent = NULL;
        int r = read_state(log, &w);

        if (r < 0 || !derived_cover(log, w)) {
                log_warn("audit log: state missing or ahead of the hash files, rebuilding them all");
                w = 0;
        }
        if (w > 0) {
                uint8_t b[8];
                r = pread_exact(log->offsets_fd, b, 8, (w - 1) * 8);
                if (r < 0)
                        return r;
                start = get_le64(b);
        }
        merkle_frontier_init(&log->frontier);
        log->frontier.size = w;
        for (unsigned l = 0; l < LEVELS; l++)
                if (w & (UINT64_C(1) << l)) {
                        struct snap sn = { log, w };
                        r = audit_log_get_hash(&sn, l, (w >> l) - 1, &log->frontier.stack[l]);
                        if (r < 0)
                                return r;
                }
        if (start > esize) {
                /* Entries that were durable are gone: not a crash. */
                log_error("audit log: audit/entries is %llu bytes but its durable index says %llu records end at "
                          "offset %llu: records were removed; refusing to open it for writing, nothing was changed "
                          "(coffre audit verify --data tells which)",
                          (unsigned long long) esize, (unsigned long long) w, (unsigned long long) start);
                if (!log->readonly)
                        return -EBADMSG;
                log->broken = -EBADMSG;
                log->entries_end = start;
                goto publish;
        }
        r = scan_records(log, start, &n_tail, &good_end);
        if (r < 0)
                return r;
        bool torn = true;
        if (good_end < esize) {
                r = tail_is_torn(log, good_end, esize, &torn);
                if (r < 0)
                        return r;
        }
        if (!torn && w + n_tail >= floor) {
                /* damage above the checkpoint: cutting it would drop acknowledged entries and hand
                 * their indexes to new ones */
                log_error("audit log: record %llu (offset %llu of audit/entries) is damaged, and the %llu bytes from "
                          "there to the end are more than a torn write leaves (a write cut short leaves only a "
                          "short last record): refusing to open the log for writing, nothing was changed "
                          "(coffre audit verify --data tells more)",
                          (unsigned long long) (w + n_tail), (unsigned long long) good_end,
                          (unsigned long long) (esize - good_end));
                if (!log->readonly)
                        return -EBADMSG;
                log->broken = -EBADMSG;
        }
        log->tail_damaged = !torn;
        if (w + n_tail < floor) {
                /* Never cut what a signed checkpoint covers, and never append after it: new entries
                 * would take indexes the signed tree already holds. */
                if (good_end < esize)
                        log_error("audit log: record %llu (offset %llu of audit/entries) is damaged, and the last "
                                  "signed checkpoint covers %llu records: refusing to open the log for writing, "
                                  "nothing was changed",
                                  (unsigned long long) (w + n_tail), (unsigned long long) good_end,
                                  (unsigned long long) floor);
                else
                        log_error("audit log: audit/entries holds %llu records but the last signed checkpoint covers "
                                  "%llu: records were removed; refusing to open the log for writing, nothing was "
                                  "changed",
                                  (unsigned long long) (w + n_tail), (unsigned long long) floor);
                if (!log->readonly)
                        return -EBADMSG;
                log->broken = -EBADMSG;
        }
        if (good_end < esize && torn && !log->readonly) {
                /* a torn tail above the checkpoint: moved aside whole before it is cut */
                r = audit_log_keep_torn(log, log->entries_fd, "entries", good_end, esize);
                if (r < 0)
                        return log_error_errno(r, "audit log: cannot keep the torn tail of audit/entries (%s): "
                                                  "refusing to cut it",
                                               strerror(-r));
        }
        log->trailing_bytes = esize - good_end;

        /* Forget derived data past w, then rebuild it from the entries. */
        if (ftruncate(log->offsets_fd, (off_t) (w * 8)) < 0)
                return negative_errno();
        for (unsigned l = 0; l < LEVELS; l++)
                if (log->level_fd[l] >= 0 && ftruncate(log->level_fd[l], (off_t) ((w >> l) * MERKLE_HASH_SIZE)) < 0)
                        return negative_errno();
        ent = malloc(AUDIT_LOG_ENTRY_MAX);
        r = ent ? audit_log_batch_reserve(log, RECOVER_CHUNK) : -ENOMEM;
        if (r >= 0)
                r = seq_init(&s, log->entries_fd, start, 1u << 20);
        uint64_t pos = start;
        size_t k = 0;
        for (uint64_t i = 0; r >= 0 && i < n_tail; i++) {
                size_t n;
                r = seq_record(&s, hc, ent, &n, &log->leaves[k]);
                if (r == -EBADMSG || r == -ENODATA)
                        r = -EIO; /* the file changed under us */
                if (r < 0)
                        break;
                pos += REC_OVERHEAD + n;
                log->ends[k++] = pos;
                if (k == RECOVER_CHUNK) {
                        r = audit_log_derived_append(log, log->leaves, log->ends, k);
                        k = 0;
                }
        }
        seq_done(&s);
        if (r >= 0 && k > 0)
                r = audit_log_derived_append(log, log->leaves, log->ends, k);
        if (r < 0)
                return r;
        log->entries_end = pos;
        if (!log->readonly) {
                if (pos < esize && ftruncate(log->entries_fd, (off_t) pos) < 0)
                        return negative_errno();
                if (fdatasync(log->entries_fd) < 0)
                        return negative_errno();
                r = audit_log_sync_derived(log);
                if (r < 0)
                        return r;
        }
publish:
        log->size = log->frontier.size;
        merkle_frontier_root(&log->frontier, &log->root);
        return 0;
}

/* ---- full verification ---- */

struct verify {
        struct audit_log *log;
        struct seqread lv[LEVELS];
        uint64_t bad;
};

static int verify_node(void *ud, unsigned level, uint64_t index, const merkle_hash *h) {
        struct verify *v = ud;
        merkle_hash stored;
        int r;

        if (!v->lv[level].buf) {
                r = seq_init(&v->lv[level], v->log->level_fd[level], 0, level == 0 ? 1u << 20 : 1u << 14);
                if (r < 0)
                        return r;
        }
        r = seq_get(&v->lv[level], stored.b, MERKLE_HASH_SIZE);
        if (r == -ENODATA || (r >= 0 && !hash_eq(&stored, h))) {
                v->bad = index << level;
                return -EBADMSG;
        }
        return r;
}

int audit_log_verify_all(struct audit_log *log, uint64_t *ret_bad_index) {
        struct snap s = audit_log_snapshot(log, NULL);
        struct verify v = { .log = log };
        struct seqread ents = {}, offs = {};
        struct merkle_frontier f;
        _cleanup_hasher_ EVP_MD_CTX *hc = audit_log_hasher_new();
        _cleanup_free_ uint8_t *ent = malloc(AUDIT_LOG_ENTRY_MAX);
        uint64_t pos = 0, k;
        int r = ent ? 0 : -ENOMEM;

        if (r >= 0)
                r = seq_init(&ents, log->entries_fd, 0, 4u << 20);
        if (r >= 0)
                r = seq_init(&offs, log->offsets_fd, 0, 1u << 18);
        merkle_frontier_init(&f);
        for (k = 0; r >= 0 && k < s.size; k++) {
                merkle_hash leaf;
                uint8_t ob[8];
                size_t n;
                r = seq_record(&ents, hc, ent, &n, &leaf);
                if (r == -ENODATA)
                        r = -EBADMSG;
                if (r < 0)
                        break;
                pos += REC_OVERHEAD + n;
                r = seq_get(&offs, ob, 8);
                if (r == -ENODATA || (r >= 0 && get_le64(ob) != pos))
                        r = -EBADMSG;
                if (r < 0)
                        break;
                v.bad = k;
                r = merkle_frontier_append(&f, &leaf, verify_node, &v);
                if (r == -EBADMSG) {
                        k = v.bad;
                        break;
                }
        }
        seq_done(&ents);
        seq_done(&offs);
        for (unsigned l = 0; l < LEVELS; l++)
                seq_done(&v.lv[l]);
        if (r == -EBADMSG) {
                *ret_bad_index = k;
                return r;
        }
        if (r < 0)
                return r;

        /* The stored hashes now match the entries; check the stored checkpoint roots with them. */
        size_t nc = audit_log_checkpoint_count(log);
        for (size_t i = 0; i < nc; i++) {
                _cleanup_(audit_checkpoint_clear) struct audit_checkpoint c = {};
                merkle_hash root;
                r = audit_log_checkpoint_nth(log, i, &c);
                if (r < 0)
                        return r;
                if (c.size > s.size) {
                        *ret_bad_index = s.size;
                        return -EBADMSG;
                }
                r = c.size == 0 ? (merkle_empty_root(&root), 0) : merkle_root(audit_log_get_hash, &s, c.size, &root);
                if (r < 0)
                        return r;
                if (!hash_eq(&root, &c.root)) {
                        *ret_bad_index = c.size - 1;
                        return -EBADMSG;
                }
        }
        return 0;
}
