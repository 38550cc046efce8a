/* ledger.c: the vault's audit service: records entries in the Merkle log, has the signer process
 * sign a checkpoint at least every second while entries arrive, and keeps witnesses'
 * cosignatures beside the checkpoints they sign.
 *
 * Checkpoints are only signed for a tree that extends the last signed one: before signing size
 * n, the root the log now computes for the last checkpoint's size must equal the signed root. */
#include "ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "audit/log.h"
#include "audit/note.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"
#include "checkpoint_ts.h"
#include "seal/cades.h"
#include "seal/signer.h"
#include "timeutil.h"

#define CHECKPOINT_MIN_SPACING_MS 500  /* at most two checkpoints a second */
#define COSIG_PER_CHECKPOINT 32        /* cosignature lines kept for one checkpoint */
#define STALL_TIMEOUT_DEFAULT_MS 10000 /* [audit] stall_timeout */
#define COSIG_CHECKPOINTS 1024         /* most checkpoints (the newest) whose cosignatures are kept */
#define COSIG_LINE_MAX 512             /* longest signature line accepted in the file */
#define TIMESTAMPS_KEPT 1024           /* newest checkpoint timestamps kept in memory to serve */

struct cosig {
        uint64_t size;
        char *line; /* one signature line, newline included */
};

struct ledger {
        char *audit_dir;
        char *origin;
        char *vkey;
        struct audit_log *log;
        struct signer *signer;
        struct note_verifier *log_verifier;
        struct note_verifier **witnesses;
        size_t n_witnesses;

        pthread_mutex_t lock; /* checkpoints and cosignatures */
        /* written under lock, read by the checkpointer under wake_lock: atomic */
        _Atomic uint64_t signed_size;
        merkle_hash signed_root;
        int last_sign_error; /* of the last attempt, 0 when it was signed */
        struct cosig *cosigs;
        size_t n_cosigs;
        size_t cosig_checkpoints; /* 1 to COSIG_CHECKPOINTS, see ledger_set_cosigned_checkpoints() */

        /* Record MACs (docs/audit.md): the key, derived from the master key; tail_pending while
         * entries past the last checkpoint, left by a crash, have not been checked. */
        uint8_t *record_key;
        bool tail_pending;

        pthread_mutex_t wake_lock;
        pthread_cond_t wake;
        uint64_t committed_size;
        bool stop;
        bool thread_running;
        bool opened; /* ledger_open() succeeded: closing signs a last checkpoint */
        pthread_t thread;

        /* under wake_lock: since when (monotonic ms) entries wait for a checkpoint, 0 when none */
        int64_t uncovered_since_ms;
        int64_t stall_timeout_ms;

        /* checkpoint timestamps (under lock): the newest TIMESTAMPS_KEPT, oldest first */
        X509_STORE *ts_trust;
        int64_t ts_interval_ms, ts_last_ms;
        int ts_last_error;
        struct checkpoint_ts *ts;
        size_t n_ts;
};

static char *audit_dir_of(const char *data_dir) {
        return path_join(data_dir, "audit");
}

int ledger_init(const char *data_dir, const char *origin) {
        _cleanup_free_ char *dir = audit_dir_of(data_dir);
        _cleanup_free_ char *keys = path_join(data_dir, "keys");
        struct audit_log *log = NULL;
        int r;

        if (!dir || !keys)
                return -ENOMEM;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "cannot create %s: %m", dir);
        r = audit_log_open(dir, true, &log);
        if (r < 0)
                return log_error_errno(r, "cannot create the audit log: %s", strerror(-r));
        audit_log_close(log);
        r = signer_init_keys(keys, origin);
        if (r < 0)
                return log_error_errno(r, "cannot create the log signing key: %s", strerror(-r));
        return 0;
}

/* ---- cosignatures, kept in DATA/audit/cosignatures: "<size> <signature line>" per line ---- */

/* The file holds cosignatures for at most COSIG_CHECKPOINTS checkpoints, the newest: a new one
 * past the bound evicts the oldest checkpoint's lines (rewriting the file atomically), so the
 * file stays within COSIG_CHECKPOINTS * COSIG_PER_CHECKPOINT lines. Every line is verified
 * again at load; one that does not verify is moved to audit/cosignatures.rejected, never served. */

static size_t cosig_n_sizes_locked(struct ledger *l, uint64_t *ret_min) {
        size_t n = 0;
        uint64_t min = UINT64_MAX;
        for (size_t i = 0; i < l->n_cosigs; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = l->cosigs[j].size == l->cosigs[i].size;
                if (!seen)
                        n++;
                if (l->cosigs[i].size < min)
                        min = l->cosigs[i].size;
        }
        *ret_min = min;
        return n;
}

/* 1 when the line is new for that checkpoint, 0 when known, -E2BIG when the checkpoint has its
 * share already or is older than every kept one while the set is full. *ret_evict: the size whose
 * lines must go to make room (0: none). */
static int cosig_check_locked(struct ledger *l, uint64_t size, const char *line, size_t len, uint64_t *ret_evict) {
        size_t same_size = 0;
        *ret_evict = 0;
        for (size_t i = 0; i < l->n_cosigs; i++) {
                if (l->cosigs[i].size != size)
                        continue;
                if (strlen(l->cosigs[i].line) == len && memcmp(l->cosigs[i].line, line, len) == 0)
                        return 0;
                same_size++;
        }
        if (same_size >= COSIG_PER_CHECKPOINT)
                return -E2BIG;
        if (same_size == 0) {
                uint64_t min;
                if (cosig_n_sizes_locked(l, &min) >= l->cosig_checkpoints) {
                        if (size < min)
                                return -E2BIG;
                        *ret_evict = min;
                }
        }
        return 1;
}

static void cosig_evict_locked(struct ledger *l, uint64_t size) {
        size_t k = 0;
        for (size_t i = 0; i < l->n_cosigs; i++) {
                if (l->cosigs[i].size == size) {
                        free(l->cosigs[i].line);
                        continue;
                }
                l->cosigs[k++] = l->cosigs[i];
        }
        l->n_cosigs = k;
}

static int cosig_add_locked(struct ledger *l, uint64_t size, const char *line, size_t len) {
        uint64_t evict;
        int r = cosig_check_locked(l, size, line, len, &evict);
        if (r <= 0)
                return r;
        if (evict)
                cosig_evict_locked(l, evict);
        struct cosig *n = reallocarray(l->cosigs, l->n_cosigs + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        l->cosigs = n;
        char *copy = strndup(line, len);
        if (!copy)
                return -ENOMEM;
        l->cosigs[l->n_cosigs++] = (struct cosig){ .size = size, .line = copy };
        return 1;
}

/* 0 when line is the cosignature of a configured witness on the stored checkpoint of that size. */
static int cosig_verify_stored(struct ledger *l, uint64_t size, const char *line, size_t len) {
        struct audit_checkpoint c = { 0 };
        int r = audit_log_checkpoint_at(l->log, size, &c);
        if (r < 0)
                return r;
        const char *sep = strstr(c.note, "\n\n");
        _cleanup_buf_ struct buf one = {};
        buf_init(&one, NOTE_MAX_SIZE);
        r = sep ? 0 : -EBADMSG;
        if (r >= 0 && (buf_append(&one, c.note, (size_t) (sep + 2 - c.note)) < 0 || buf_append(&one, line, len) < 0))
                r = -ENOMEM;
        audit_checkpoint_clear(&c);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n_witnesses; i++) {
                uint64_t ts;
                if (cosignature_verify(l->witnesses[i], (const char *) one.data, one.len, &ts) == 0)
                        return 0;
        }
        return -EBADMSG;
}

static int cosig_rewrite_locked(struct ledger *l) {
        _cleanup_free_ char *path = path_join(l->audit_dir, "cosignatures");
        _cleanup_buf_ struct buf b = {};
        int r = 0;
        if (!path)
                return -ENOMEM;
        buf_init(&b, (size_t) COSIG_CHECKPOINTS * COSIG_PER_CHECKPOINT * (COSIG_LINE_MAX + 24));
        for (size_t i = 0; r >= 0 && i < l->n_cosigs; i++)
                r = buf_printf(&b, "%llu %s", (unsigned long long) l->cosigs[i].size, l->cosigs[i].line);
        if (r < 0)
                return r;
        return write_file_atomic(path, b.data ? (const void *) b.data : "", b.len, 0600, 0);
}

static int append_synced(const char *path, const char *p, size_t n) {
        bool existed = access(path, F_OK) == 0;
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        int r = write_all(fd, p, n);
        if (r >= 0 && fdatasync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && !existed)
                r = fsync_parent(path);
        return r;
}

int ledger_set_cosigned_checkpoints(struct ledger *l, size_t n) {
        uint64_t min;
        int r = 0;
        if (n < 1 || n > COSIG_CHECKPOINTS)
                return -EINVAL;
        pthread_mutex_lock(&l->lock);
        l->cosig_checkpoints = n;
        bool evicted = false;
        while (cosig_n_sizes_locked(l, &min) > n) {
                cosig_evict_locked(l, min);
                evicted = true;
        }
        if (evicted)
                r = cosig_rewrite_locked(l);
        pthread_mutex_unlock(&l->lock);
        return r;
}

static int cosig_load(struct ledger *l) {
        _cleanup_free_ char *path = path_join(l->audit_dir, "cosignatures");
        _cleanup_free_ char *rejected = path_join(l->audit_dir, "cosignatures.rejected");
        _cleanup_buf_ struct buf bad = {};
        struct buf b;
        unsigned n_bad = 0, lineno = 0;
        size_t n_lines = 0;
        if (!path || !rejected)
                return -ENOMEM;
        /* the bound on lines keeps the file far below this */
        int r = read_file(path, 64 << 20, &b);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        buf_init(&bad, 0);
        char *p = (char *) b.data, *end = p + b.len;
        while (p < end && r >= 0) {
                char *nl = memchr(p, '\n', (size_t) (end - p));
                char *stop = nl ? nl + 1 : end;
                const char *why = NULL;
                lineno++;
                char *sp = memchr(p, ' ', (size_t) (stop - p));
                char *num_end = NULL;
                uint64_t size = 0;
                if (!nl)
                        why = "torn (no end of line)";
                else if (!sp || sp == p || (size_t) (nl + 1 - (sp + 1)) > COSIG_LINE_MAX)
                        why = "malformed";
                else {
                        errno = 0;
                        size = strtoull(p, &num_end, 10);
                        if (errno || num_end != sp || *p < '0' || *p > '9')
                                why = "malformed size";
                }
                if (!why) {
                        int k = cosig_verify_stored(l, size, sp + 1, (size_t) (nl + 1 - (sp + 1)));
                        if (k == -ENOMEM) {
                                r = k;
                                break;
                        }
                        if (k < 0)
                                why = k == -ENOENT ? "no such checkpoint"
                                                   : "does not verify under a configured witness key";
                }
                if (!why) {
                        int k = cosig_add_locked(l, size, sp + 1, (size_t) (nl + 1 - (sp + 1)));
                        if (k < 0 && k != -E2BIG) {
                                r = k;
                                break;
                        }
                        n_lines++;
                } else {
                        log_warn("audit/cosignatures line %u: %s; moved to audit/cosignatures.rejected, not served",
                                 lineno, why);
                        n_bad++;
                        if ((r = buf_append(&bad, p, (size_t) (stop - p))) >= 0 && !nl)
                                r = buf_append_str(&bad, "\n");
                }
                p = stop;
        }
        buf_free(&b);
        if (r < 0)
                return r;
        /* what was dropped is kept aside, then the file holds only what verifies */
        if (n_bad && (r = append_synced(rejected, (const char *) bad.data, bad.len)) < 0)
                return r;
        if (n_bad || n_lines != l->n_cosigs)
                r = cosig_rewrite_locked(l);
        return r;
}

static int cosig_persist(struct ledger *l, uint64_t size, const char *line, size_t len) {
        _cleanup_free_ char *path = path_join(l->audit_dir, "cosignatures");
        if (!path)
                return -ENOMEM;
        char head[32];
        int n = snprintf(head, sizeof head, "%llu ", (unsigned long long) size);
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, 0);
        int r = buf_append(&b, head, (size_t) n);
        if (r >= 0)
                r = buf_append(&b, line, len);
        if (r >= 0)
                r = append_synced(path, (const char *) b.data, b.len);
        return r;
}

/* ---- checkpoints ---- */

static void mark_covered(struct ledger *l, uint64_t size) {
        pthread_mutex_lock(&l->wake_lock);
        /* what arrived meanwhile waits from now on */
        l->uncovered_since_ms = l->committed_size > size ? (int64_t) (mono_ns() / 1000000) : 0;
        pthread_mutex_unlock(&l->wake_lock);
}

/* The consistency proof the signer wants: from the tree it last signed (its own memory) to
 * size. -ESTALE when it signed a tree this log does not hold. */
static int proof_for_signer(struct ledger *l, uint64_t size, merkle_hash *proof, size_t *ret_len) {
        merkle_hash sroot, here;
        uint64_t ssize;
        bool have;
        int r = signer_state(l->signer, &have, &ssize, &sroot);

        *ret_len = 0;
        if (r < 0)
                return r;
        if (!have || ssize == 0 || ssize == size)
                return 0;
        if (ssize > size) {
                log_error("audit log: the signer has signed a tree of %llu entries but the log holds %llu: refusing to sign",
                          (unsigned long long) ssize, (unsigned long long) size);
                return -ESTALE;
        }
        r = audit_log_root(l->log, ssize, &here);
        if (r < 0)
                return r;
        if (sodium_memcmp(here.b, sroot.b, MERKLE_HASH_SIZE) != 0) {
                log_error("audit log: the tree no longer extends the one the signer signed at size %llu: refusing to sign",
                          (unsigned long long) ssize);
                return -ESTALE;
        }
        return audit_log_consistency_proof(l->log, ssize, size, proof, ret_len);
}

static int tsa_cb(void *ud, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
        uint8_t *p = NULL;
        size_t n = 0;
        int r = signer_timestamp(ud, req, len, &p, &n);
        if (r < 0)
                return r;
        *ret = OPENSSL_memdup(p, n); /* cades frees with OPENSSL_free */
        free(p);
        if (!*ret)
                return -ENOMEM;
        *ret_len = n;
        return 0;
}

static int ts_keep_locked(struct ledger *l, uint64_t size, uint8_t *reply, size_t len) {
        if (l->n_ts == TIMESTAMPS_KEPT) {
                free(l->ts[0].reply);
                memmove(l->ts, l->ts + 1, (l->n_ts - 1) * sizeof *l->ts);
                l->n_ts--;
        }
        struct checkpoint_ts *v = realloc(l->ts, (l->n_ts + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        l->ts = v;
        v[l->n_ts++] = (struct checkpoint_ts){ .size = size, .reply = reply, .len = len };
        return 0;
}

/* A TSA token over the note just signed, when the last one is older than the interval; a
 * failure is logged and retried with the next checkpoint. */
static void timestamp_locked(struct ledger *l, uint64_t size, const char *note) {
        uint8_t *der = NULL, *copy;
        size_t len = 0;
        int64_t now = mono_ns() / 1000000;
        int r;

        if (!l->ts_trust || (l->ts_last_ms && now - l->ts_last_ms < l->ts_interval_ms))
                return;
        r = cades_timestamp_data((const uint8_t *) note, strlen(note), tsa_cb, l->signer, l->ts_trust, &der, &len);
        if (r >= 0)
                r = checkpoint_ts_append(l->audit_dir, size, der, len);
        copy = r >= 0 ? malloc(len) : NULL;
        if (copy) {
                memcpy(copy, der, len);
                if (ts_keep_locked(l, size, copy, len) < 0)
                        free(copy);
        }
        OPENSSL_free(der);
        if (r < 0) {
                if (r != l->ts_last_error)
                        log_error("audit log: checkpoint %llu not timestamped: %s", (unsigned long long) size,
                                  strerror(-r));
                l->ts_last_error = r;
                return;
        }
        l->ts_last_error = 0;
        l->ts_last_ms = now;
}

static int checkpoint_locked(struct ledger *l) {
        uint64_t size = audit_log_size(l->log);
        merkle_hash root, old_root, proof[MERKLE_MAX_PROOF];
        size_t proof_len = 0;
        int r;

        if (size == 0 || size <= l->signed_size)
                return 0;
        if (l->tail_pending) {
                log_error("audit log: entries past the last checkpoint are not checked yet: refusing to sign");
                return -EPERM;
        }
        if (l->signed_size > 0) {
                r = audit_log_root(l->log, l->signed_size, &old_root);
                if (r < 0)
                        return r;
                if (sodium_memcmp(old_root.b, l->signed_root.b, MERKLE_HASH_SIZE) != 0) {
                        log_error("audit log: the tree no longer extends the checkpoint of size %llu: refusing to sign",
                                  (unsigned long long) l->signed_size);
                        return -EBADMSG;
                }
        }
        r = audit_log_root(l->log, size, &root);
        if (r < 0)
                return r;
        _cleanup_free_ char *body = NULL;
        r = checkpoint_format(l->origin, size, &root, NULL, 0, &body);
        if (r < 0)
                return r;
        r = proof_for_signer(l, size, proof, &proof_len);
        _cleanup_free_ char *note = NULL;
        if (r >= 0)
                r = signer_sign_checkpoint(l->signer, body, strlen(body), proof, proof_len, &note);
        if (r < 0) {
                /* the checkpointer retries every second: say it once per kind of failure */
                if (r != l->last_sign_error && r != -ESTALE)
                        log_error("audit log: no checkpoint %llu: %s%s", (unsigned long long) size, strerror(-r),
                                  r == -EPIPE ? " (the signer is down)" : "");
                l->last_sign_error = r;
                return r;
        }
        if (l->last_sign_error != 0)
                log_info("audit log: checkpoints resume at %llu", (unsigned long long) size);
        l->last_sign_error = 0;
        r = audit_log_checkpoint_store(l->log, size, note);
        if (r < 0)
                return log_error_errno(r, "audit log: cannot store checkpoint %llu: %s", (unsigned long long) size,
                                       strerror(-r));
        l->signed_size = size;
        l->signed_root = root;
        mark_covered(l, size);
        timestamp_locked(l, size, note);
        return 0;
}

int ledger_set_checkpoint_timestamps(struct ledger *l, X509_STORE *trust, int64_t interval_ms) {
        struct checkpoint_ts *v = NULL;
        size_t n = 0;
        int r;

        if (!trust || interval_ms < 0)
                return -EINVAL;
        r = checkpoint_ts_load(l->audit_dir, &v, &n);
        if (r < 0)
                return log_error_errno(r, "audit/%s is unreadable: %s", CHECKPOINT_TS_FILE, strerror(-r));
        pthread_mutex_lock(&l->lock);
        size_t skip = n > TIMESTAMPS_KEPT ? n - TIMESTAMPS_KEPT : 0;
        for (size_t i = 0; i < skip; i++)
                free(v[i].reply);
        if (skip > 0) /* v is NULL when there are none */
                memmove(v, v + skip, (n - skip) * sizeof *v);
        checkpoint_ts_free(l->ts, l->n_ts);
        l->ts = v;
        l->n_ts = n - skip;
        if (l->ts_trust)
                X509_STORE_free(l->ts_trust);
        X509_STORE_up_ref(trust);
        l->ts_trust = trust;
        l->ts_interval_ms = interval_ms;
        pthread_mutex_unlock(&l->lock);
        return 0;
}

int ledger_checkpoint_timestamp(struct ledger *l, uint64_t size, uint8_t **ret, size_t *ret_len) {
        int r = -ENOENT;

        pthread_mutex_lock(&l->lock);
        for (size_t i = l->n_ts; i-- > 0;)
                if (size == 0 || l->ts[i].size == size) {
                        uint8_t *p = malloc(l->ts[i].len);
                        r = p ? 0 : -ENOMEM;
                        if (p) {
                                memcpy(p, l->ts[i].reply, l->ts[i].len);
                                *ret = p;
                                *ret_len = l->ts[i].len;
                        }
                        break;
                }
        pthread_mutex_unlock(&l->lock);
        return r;
}

int ledger_checkpoint_now(struct ledger *l) {
        pthread_mutex_lock(&l->lock);
        int r = checkpoint_locked(l);
        pthread_mutex_unlock(&l->lock);
        return r;
}

static void on_commit(void *ud, uint64_t size, const merkle_hash *root) {
        struct ledger *l = ud;
        (void) root;
        pthread_mutex_lock(&l->wake_lock);
        l->committed_size = size;
        if (l->uncovered_since_ms == 0)
                l->uncovered_since_ms = (int64_t) (mono_ns() / 1000000);
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->wake_lock);
}

static void *checkpointer(void *ud) {
        struct ledger *l = ud;
        int64_t last = 0;

        for (;;) {
                pthread_mutex_lock(&l->wake_lock);
                while (!l->stop && l->committed_size <= l->signed_size)
                        pthread_cond_wait(&l->wake, &l->wake_lock);
                bool stop = l->stop;
                pthread_mutex_unlock(&l->wake_lock);
                if (stop)
                        break;
                int64_t wait = last + CHECKPOINT_MIN_SPACING_MS - now_ms();
                if (wait > 0) {
                        struct timespec ts = { wait / 1000, (wait % 1000) * 1000000 };
                        nanosleep(&ts, NULL);
                }
                int r = ledger_checkpoint_now(l);
                last = now_ms();
                if (r < 0) {
                        /* try again later rather than spin */
                        struct timespec ts = { 1, 0 };
                        nanosleep(&ts, NULL);
                }
        }
        return NULL;
}

int ledger_start(struct ledger *l) {
        int r = pthread_create(&l->thread, NULL, checkpointer, l);
        if (r != 0)
                return -r;
        l->thread_running = true;
        return 0;
}

/* ---- opening and closing ---- */

/* The signed state comes from the signed note itself, checked against the log: the size and root
 * stored beside it are not authenticated. */
static int load_last_checkpoint(struct ledger *l) {
        struct audit_checkpoint c = { 0 };
        _cleanup_free_ char *body = NULL, *origin = NULL;
        merkle_hash root, here;
        uint64_t size = 0;

        int r = audit_log_checkpoint_latest(l->log, &c);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = note_open(c.note, strlen(c.note), &l->log_verifier, 1, &body, NULL);
        if (r < 0)
                log_error("audit log: the latest stored checkpoint does not verify under the log key");
        if (r >= 0) {
                r = checkpoint_parse(body, strlen(body), &origin, &size, &root);
                if (r < 0 || strcmp(origin, l->origin) != 0 || size != c.size) {
                        log_error("audit log: the latest signed checkpoint is not this log's, or not stored at the "
                                  "size it signs (%llu)",
                                  (unsigned long long) c.size);
                        r = -EBADMSG;
                }
        }
        if (r >= 0 && size > audit_log_size(l->log)) {
                log_error("audit log: the latest signed checkpoint covers %llu entries, the log holds %llu: refusing "
                          "to open it",
                          (unsigned long long) size, (unsigned long long) audit_log_size(l->log));
                r = -EBADMSG;
        }
        if (r >= 0)
                r = audit_log_root(l->log, size, &here);
        if (r >= 0 && sodium_memcmp(here.b, root.b, MERKLE_HASH_SIZE) != 0) {
                log_error("audit log: the log's tree at size %llu is not the one the latest checkpoint signs: refusing "
                          "to open it (coffre audit verify --data tells where)",
                          (unsigned long long) size);
                r = -EBADMSG;
        }
        /* the signer keeps its own memory of what it signed (keys/log.state): nothing to
         * restore here, and it refuses any tree that does not extend that one */
        if (r >= 0) {
                l->signed_size = size;
                l->signed_root = root;
        }
        audit_checkpoint_clear(&c);
        return r;
}

/* The log must hold the tree the signer last signed (keys/log.state, its own memory): a log
 * that is shorter, or another tree at that size, was rolled back or rewritten (audit/ restored
 * from an older copy, edited). Nothing may be cut, swept or appended then. */
static int check_signer_tree(struct audit_log *log, uint64_t ssize, const merkle_hash *sroot) {
        uint64_t size = audit_log_size(log);
        merkle_hash here;
        char a[2 * MERKLE_HASH_SIZE + 1], b[2 * MERKLE_HASH_SIZE + 1];

        if (size < ssize) {
                log_error("audit log: the log holds %llu entries but the signer has signed a tree of %llu entries "
                          "(keys/log.state): audit/ was rolled back or cut; refusing to start. Nothing was changed "
                          "(coffre audit verify --data tells more)",
                          (unsigned long long) size, (unsigned long long) ssize);
                return -EBADMSG;
        }
        int r = audit_log_root(log, ssize, &here);
        if (r < 0)
                return log_error_errno(r, "audit log: cannot compute the root at size %llu: %s",
                                       (unsigned long long) ssize, strerror(-r));
        if (sodium_memcmp(here.b, sroot->b, MERKLE_HASH_SIZE) != 0) {
                hex_encode(here.b, MERKLE_HASH_SIZE, a);
                hex_encode(sroot->b, MERKLE_HASH_SIZE, b);
                log_error("audit log: the log's root at size %llu is %s but the signer signed root %s at that size "
                          "(keys/log.state): audit/ was rolled back or rewritten; refusing to start. Nothing was "
                          "changed (coffre audit verify --data tells where)",
                          (unsigned long long) ssize, a, b);
                return -EBADMSG;
        }
        return 0;
}

/* Before the log is opened for writing (which cuts a torn tail and rebuilds hashes): a read-only
 * look, so that a log the signer's memory refuses is left exactly as found. An error opening it
 * read-only is left to the real open to report. */
static int precheck_signer_tree(const char *audit_dir, uint64_t ssize, const merkle_hash *sroot) {
        _cleanup_(audit_log_closep) struct audit_log *ro = NULL;

        if (audit_log_open_floor(audit_dir, true, ssize, &ro) < 0)
                return 0;
        return check_signer_tree(ro, ssize, sroot);
}

/* ---- the stop marker: DATA/audit/stopped holds "size N" after a clean stop ---- */

static char *stop_marker_path(const struct ledger *l) {
        return path_join(l->audit_dir, "stopped");
}

/* 1 and the size when present, 0 when absent. */
static int stop_marker_read(const struct ledger *l, uint64_t *ret) {
        _cleanup_free_ char *p = stop_marker_path(l);
        struct buf b;
        if (!p)
                return -ENOMEM;
        int r = read_file(p, 64, &b);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        unsigned long long size;
        char nl;
        const char *text = buf_str(&b);
        r = text && b.len < 64 && sscanf(text, "size %llu%c", &size, &nl) == 2 && nl == '\n' ? 1 : -EBADMSG;
        buf_free(&b);
        if (r > 0)
                *ret = size;
        return r;
}

static int stop_marker_remove(const struct ledger *l) {
        _cleanup_free_ char *p = stop_marker_path(l);
        if (!p)
                return -ENOMEM;
        if (unlink(p) < 0 && errno != ENOENT)
                return negative_errno();
        return fsync_dir(l->audit_dir);
}

static int stop_marker_write(const struct ledger *l, uint64_t size) {
        _cleanup_free_ char *p = stop_marker_path(l);
        char text[40];
        if (!p)
                return -ENOMEM;
        int n = snprintf(text, sizeof text, "size %llu\n", (unsigned long long) size);
        return write_file_atomic(p, text, (size_t) n, 0600, 0);
}

/* ---- record MACs ---- */

static int record_mac(const uint8_t *key, const struct audit_entry *e, char hex[65]) {
        _cleanup_buf_ struct buf in = {};
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        buf_init(&in, AUDIT_ENTRY_MAX);
        int r = audit_entry_mac_input(e, &in);
        if (r < 0)
                return r;
        crypto_auth_hmacsha256(mac, in.data, in.len, key);
        hex_encode(mac, sizeof mac, hex);
        return 0;
}

int ledger_set_record_key(struct ledger *l, const uint8_t key[32]) {
        if (!l->record_key) {
                l->record_key = sodium_malloc(32);
                if (!l->record_key)
                        return -ENOMEM;
        }
        memcpy(l->record_key, key, 32);
        return 0;
}

struct leaf_at {
        merkle_hash h;
        uint64_t index;
};

static int leaf_cmp(const void *a, const void *b) {
        return memcmp(((const struct leaf_at *) a)->h.b, ((const struct leaf_at *) b)->h.b, MERKLE_HASH_SIZE);
}

/* A record copied from elsewhere in the log carries a valid MAC: refuse any tail record whose
 * bytes (leaf hash) appear twice. */
static int tail_check_replays(struct ledger *l, uint64_t from, uint64_t to) {
        size_t n = (size_t) (to - from);
        _cleanup_free_ struct leaf_at *t = calloc(n, sizeof *t);
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                t[i].index = from + i;
                int r = audit_log_leaf_hash(l->log, from + i, &t[i].h);
                if (r < 0)
                        return r;
        }
        qsort(t, n, sizeof *t, leaf_cmp);
        for (size_t i = 1; i < n; i++)
                if (leaf_cmp(&t[i - 1], &t[i]) == 0)
                        return log_error_errno(-EBADMSG, "audit log: entries %llu and %llu are the same record: a copy, "
                                               "refusing to sign it",
                                               (unsigned long long) t[i - 1].index, (unsigned long long) t[i].index);
        _cleanup_buf_ struct buf tile = {};
        buf_init(&tile, 0);
        for (uint64_t base = 0; base < from; base += AUDIT_LOG_TILE_WIDTH) {
                unsigned w = (unsigned) MIN((uint64_t) AUDIT_LOG_TILE_WIDTH, from - base);
                buf_clear(&tile);
                int r = audit_log_tile(l->log, 0, base / AUDIT_LOG_TILE_WIDTH, w, &tile);
                if (r < 0)
                        return r;
                for (unsigned j = 0; j < w; j++) {
                        struct leaf_at k;
                        memcpy(k.h.b, tile.data + (size_t) j * MERKLE_HASH_SIZE, MERKLE_HASH_SIZE);
                        const struct leaf_at *f = bsearch(&k, t, n, sizeof *t, leaf_cmp);
                        if (f)
                                return log_error_errno(-EBADMSG, "audit log: entry %llu is a copy of entry %llu: "
                                                       "refusing to sign it",
                                                       (unsigned long long) f->index, (unsigned long long) (base + j));
                }
        }
        return 0;
}

int ledger_recover_tail(struct ledger *l) {
        uint64_t from = l->signed_size, to = audit_log_size(l->log);
        int r;

        if (!l->tail_pending)
                return 0;
        if (!l->record_key)
                return log_error_errno(-ENOKEY, "audit log: entries %llu to %llu are covered by no checkpoint and "
                                       "there is no key to check them",
                                       (unsigned long long) from, (unsigned long long) to - 1);
        for (uint64_t i = from; i < to; i++) {
                _cleanup_buf_ struct buf b = {};
                struct audit_entry e = { 0 };
                char want[65];
                buf_init(&b, AUDIT_ENTRY_MAX + 1);
                r = audit_log_entry(l->log, i, &b);
                if (r >= 0)
                        r = audit_entry_parse((const char *) b.data, b.len, &e);
                if (r >= 0)
                        r = e.mac ? record_mac(l->record_key, &e, want) : -EBADMSG;
                if (r >= 0 && sodium_memcmp(want, e.mac, 64) != 0)
                        r = -EBADMSG;
                audit_entry_clear(&e);
                if (r == -EBADMSG || r == -EINVAL)
                        return log_error_errno(-EBADMSG, "audit log: entry %llu, past the last checkpoint (%llu "
                                               "entries), carries no valid record MAC: it was not written by this "
                                               "server; refusing to sign it or to append after it. Nothing was "
                                               "changed (coffre audit verify --data shows the log)",
                                               (unsigned long long) i, (unsigned long long) from);
                if (r < 0)
                        return r;
        }
        r = tail_check_replays(l, from, to);
        if (r < 0)
                return r;
        /* every record is this server's: a crash cut the run short before its checkpoint */
        log_warn("audit log: entries %llu to %llu, left by a server that did not stop cleanly, carry valid record "
                 "MACs: signing them now",
                 (unsigned long long) from, (unsigned long long) to - 1);
        l->tail_pending = false;
        r = ledger_checkpoint_now(l);
        if (r < 0)
                return r;
        char time[32], rid[17], object[64];
        uint8_t raw[8];
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, rid);
        audit_entry_format_time(now_ms(), time);
        snprintf(object, sizeof object, "entries:%llu-%llu", (unsigned long long) from, (unsigned long long) to - 1);
        struct audit_entry e = {
                .time = time,
                .org = (char *) "system",
                .actor = (char *) "system:recovery",
                .action = (char *) "audit.recover",
                .object = object,
                .request_id = rid,
        };
        return ledger_record(l, &e, NULL, NULL, NULL);
}

int ledger_open(const char *data_dir, const char *origin, char *const *witness_vkeys, size_t n_witnesses,
                struct ledger **ret) {
        _cleanup_(ledger_closep) struct ledger *l = calloc(1, sizeof *l);
        _cleanup_free_ char *keys = path_join(data_dir, "keys");
        int r;

        if (!l || !keys)
                return -ENOMEM;
        pthread_mutex_init(&l->lock, NULL);
        pthread_mutex_init(&l->wake_lock, NULL);
        pthread_cond_init(&l->wake, NULL);
        l->stall_timeout_ms = STALL_TIMEOUT_DEFAULT_MS;
        l->audit_dir = audit_dir_of(data_dir);
        l->cosig_checkpoints = COSIG_CHECKPOINTS;
        l->origin = strdup(origin);
        if (!l->audit_dir || !l->origin)
                return -ENOMEM;
        /* the signer first: it is forked, and must not inherit other threads' locks */
        r = signer_start(keys, origin, &l->signer);
        if (r == -ENOENT)
                return log_error_errno(r, "cannot start the signer: %s/log.key or %s/log.state is missing (a vault made "
                                       "before log.state existed needs an empty one, mode 0600: its first checkpoint "
                                       "is then trusted as new)", keys, keys);
        if (r < 0)
                return log_error_errno(r, "cannot start the signer: %s", strerror(-r));
        r = signer_log_vkey(l->signer, &l->vkey);
        if (r < 0)
                return r;
        r = note_verifier_from_vkey(l->vkey, &l->log_verifier);
        if (r < 0)
                return r;
        if (n_witnesses) {
                l->witnesses = calloc(n_witnesses, sizeof *l->witnesses);
                if (!l->witnesses)
                        return -ENOMEM;
                for (size_t i = 0; i < n_witnesses; i++) {
                        r = note_verifier_cosignature_from_vkey(witness_vkeys[i], &l->witnesses[i]);
                        if (r < 0)
                                return log_error_errno(r, "coffre.conf: witness key %zu is not a valid vkey", i + 1);
                        l->n_witnesses++;
                }
        }
        /* what the signer last signed is a floor the log is never cut below, and must match */
        bool shave;
        uint64_t ssize;
        merkle_hash sroot;
        r = signer_state(l->signer, &shave, &ssize, &sroot);
        if (r < 0)
                return log_error_errno(r, "cannot ask the signer for its state: %s", strerror(-r));
        if (!shave)
                ssize = 0;
        if (ssize > 0) {
                r = precheck_signer_tree(l->audit_dir, ssize, &sroot);
                if (r < 0)
                        return r;
        }
        r = audit_log_open_floor(l->audit_dir, false, ssize, &l->log);
        if (r == -EBUSY)
                return log_error_errno(r, "the audit log in %s is in use by another coffre process", l->audit_dir);
        if (r < 0)
                return log_error_errno(r, "cannot open the audit log in %s: %s", l->audit_dir, strerror(-r));
        if (ssize > 0) {
                r = check_signer_tree(l->log, ssize, &sroot);
                if (r < 0)
                        return r;
        }
        r = load_last_checkpoint(l);
        if (r < 0)
                return r;
        r = cosig_load(l);
        if (r < 0)
                return log_error_errno(r, "cannot read the stored cosignatures: %s", strerror(-r));
        l->committed_size = audit_log_size(l->log);
        uint64_t stopped_at = 0;
        r = stop_marker_read(l, &stopped_at);
        if (r < 0)
                return log_error_errno(r, "audit log: the stop marker audit/stopped is unreadable: %s", strerror(-r));
        if (l->committed_size > l->signed_size && r > 0) {
                /* The last run stopped cleanly with a checkpoint covering everything: whatever
                 * came after was written by something else. */
                log_error("audit log: entries %llu to %llu were added while the server was stopped (it stopped "
                          "cleanly with a checkpoint at %llu entries): tampering; refusing to sign them or to append "
                          "after them. Nothing was changed",
                          (unsigned long long) l->signed_size, (unsigned long long) l->committed_size - 1,
                          (unsigned long long) stopped_at);
                return -EBADMSG;
        }
        if (r > 0) {
                r = stop_marker_remove(l);
                if (r < 0)
                        return log_error_errno(r, "audit log: cannot remove the stop marker: %s", strerror(-r));
        }
        /* Entries after the last checkpoint of a run that did not stop cleanly (kill -9, power
         * loss): signed by ledger_recover_tail() once their record MACs are checked. */
        l->tail_pending = l->committed_size > l->signed_size;
        audit_log_set_on_commit(l->log, on_commit, l);
        l->opened = true;
        *ret = TAKE_PTR(l);
        return 0;
}

void ledger_close(struct ledger *l) {
        if (!l)
                return;
        if (l->thread_running) {
                pthread_mutex_lock(&l->wake_lock);
                l->stop = true;
                pthread_cond_signal(&l->wake);
                pthread_mutex_unlock(&l->wake_lock);
                pthread_join(l->thread, NULL);
        }
        if (l->opened && !l->tail_pending) {
                int r = ledger_checkpoint_now(l);
                if (r < 0)
                        log_error("audit log: no final checkpoint: %s", strerror(-r));
                /* a clean stop: anything found past this size at the next start is not ours */
                else if (audit_log_size(l->log) == l->signed_size && (r = stop_marker_write(l, l->signed_size)) < 0)
                        log_error("audit log: cannot write the stop marker: %s", strerror(-r));
        }
        audit_log_close(l->log);
        signer_stop(l->signer);
        note_verifier_free(l->log_verifier);
        for (size_t i = 0; i < l->n_witnesses; i++)
                note_verifier_free(l->witnesses[i]);
        free(l->witnesses);
        for (size_t i = 0; i < l->n_cosigs; i++)
                free(l->cosigs[i].line);
        free(l->cosigs);
        sodium_free(l->record_key);
        checkpoint_ts_free(l->ts, l->n_ts);
        X509_STORE_free(l->ts_trust);
        free(l->vkey);
        free(l->origin);
        free(l->audit_dir);
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->wake_lock);
        pthread_mutex_destroy(&l->lock);
        free(l);
}

struct audit_log *ledger_log(struct ledger *l) {
        return l->log;
}

const char *ledger_origin(const struct ledger *l) {
        return l->origin;
}

const char *ledger_vkey(const struct ledger *l) {
        return l->vkey;
}

struct signer *ledger_signer(struct ledger *l) {
        return l->signer;
}

/* ---- entries ---- */

/* An entry as stored: built, details sealed, record MAC added. */
static int build_record(struct ledger *l, const struct audit_entry *e, const uint8_t *details_key,
                        const char *details_plain, struct buf *b) {
        int r = audit_entry_build(e, details_key, details_plain, b);
        if (r >= 0 && l->record_key) {
                /* the record MAC covers the entry as built (details sealed): parse it back, add it */
                struct audit_entry built = { 0 };
                char mac[65];
                r = audit_entry_parse((const char *) b->data, b->len, &built);
                if (r >= 0)
                        r = record_mac(l->record_key, &built, mac);
                if (r >= 0) {
                        built.mac = strdup(mac);
                        buf_clear(b);
                        r = built.mac ? audit_entry_build(&built, NULL, NULL, b) : -ENOMEM;
                }
                audit_entry_clear(&built);
        }
        if (r < 0)
                return log_error_errno(r, "audit entry for %s not built: %s", e->action, strerror(-r));
        return 0;
}

int ledger_record_pair(struct ledger *l, const struct audit_entry *first, const uint8_t *details_key,
                       const char *details_plain, const struct audit_entry *second, uint64_t *ret_first) {
        _cleanup_buf_ struct buf a = {}, b = {};
        uint64_t index;
        int r;

        buf_init(&a, AUDIT_ENTRY_MAX);
        buf_init(&b, AUDIT_ENTRY_MAX);
        if ((r = build_record(l, first, details_key, details_plain, &a)) < 0 ||
            (r = build_record(l, second, NULL, NULL, &b)) < 0)
                return r;
        const struct iovec iov[2] = { { .iov_base = a.data, .iov_len = a.len }, { .iov_base = b.data, .iov_len = b.len } };
        r = audit_log_append_batch(l->log, iov, 2, &index);
        if (r < 0)
                return log_error_errno(r, "audit entries for %s not appended: %s", first->action, strerror(-r));
        if (ret_first)
                *ret_first = index;
        return 0;
}

int ledger_record(struct ledger *l, const struct audit_entry *e, const uint8_t *details_key, const char *details_plain,
                  uint64_t *ret_index) {
        _cleanup_buf_ struct buf b = {};
        uint64_t index;

        buf_init(&b, AUDIT_ENTRY_MAX);
        int r = build_record(l, e, details_key, details_plain, &b);
        if (r < 0)
                return r;
        r = audit_log_append(l->log, b.data, b.len, &index);
        if (r < 0)
                return log_error_errno(r, "audit entry for %s not appended: %s", e->action, strerror(-r));
        if (ret_index)
                *ret_index = index;
        return 0;
}

/* ---- serving checkpoints with cosignatures ---- */

int ledger_checkpoint_note(struct ledger *l, uint64_t size, char **ret_note) {
        struct audit_checkpoint c = { 0 };
        int r = size ? audit_log_checkpoint_at(l->log, size, &c) : audit_log_checkpoint_latest(l->log, &c);
        if (r < 0)
                return r;
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, 0);
        r = buf_append_str(&b, c.note);
        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; r >= 0 && i < l->n_cosigs; i++)
                if (l->cosigs[i].size == c.size)
                        r = buf_append_str(&b, l->cosigs[i].line);
        pthread_mutex_unlock(&l->lock);
        audit_checkpoint_clear(&c);
        if (r < 0)
                return r;
        *ret_note = buf_steal(&b);
        return *ret_note ? 0 : -ENOMEM;
}

int ledger_add_cosignatures(struct ledger *l, const char *note, size_t len, unsigned *ret_added) {
        _cleanup_free_ char *body = NULL;
        uint64_t size = 0;
        unsigned added = 0;
        int r;

        if (!note_text_is_valid(note, len))
                return -EINVAL;
        /* the body is everything up to the blank line */
        const char *sep = NULL;
        for (const char *p = note; p + 1 < note + len; p++)
                if (p[0] == '\n' && p[1] == '\n') {
                        sep = p;
                        break;
                }
        if (!sep)
                return -EINVAL;
        size_t body_len = (size_t) (sep + 1 - note);
        body = strndup(note, body_len);
        if (!body)
                return -ENOMEM;
        r = checkpoint_parse(body, body_len, NULL, &size, NULL);
        if (r < 0)
                return -EINVAL;
        struct audit_checkpoint c = { 0 };
        r = audit_log_checkpoint_at(l->log, size, &c);
        if (r < 0)
                return r;
        bool same = strlen(c.note) > body_len && memcmp(c.note, body, body_len) == 0 && c.note[body_len] == '\n';
        audit_checkpoint_clear(&c);
        if (!same)
                return -ENOENT;

        /* keep each signature line that verifies as a cosignature of a known witness */
        const char *p = sep + 2, *end = note + len;
        int result = -EBADMSG;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl)
                        break;
                size_t line_len = (size_t) (nl + 1 - p);
                _cleanup_buf_ struct buf one = {};
                buf_init(&one, NOTE_MAX_SIZE);
                if (buf_append(&one, body, body_len) < 0 || buf_append_str(&one, "\n") < 0 ||
                    buf_append(&one, p, line_len) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < l->n_witnesses; i++) {
                        uint64_t ts = 0;
                        if (cosignature_verify(l->witnesses[i], (const char *) one.data, one.len, &ts) < 0)
                                continue;
                        result = 0;
                        /* on disk first, so that what is served was kept */
                        pthread_mutex_lock(&l->lock);
                        uint64_t evict;
                        int k = line_len <= COSIG_LINE_MAX ? cosig_check_locked(l, size, p, line_len, &evict) : -E2BIG;
                        /* appended first even when the oldest checkpoint's lines are then dropped by
                         * a rewrite: what is served is on disk whatever fails after */
                        if (k > 0) {
                                k = cosig_persist(l, size, p, line_len);
                                if (k >= 0)
                                        k = cosig_add_locked(l, size, p, line_len);
                        }
                        if (k > 0 && evict) {
                                int w = cosig_rewrite_locked(l);
                                if (w < 0)
                                        k = w;
                        }
                        if (k > 0)
                                added++;
                        pthread_mutex_unlock(&l->lock);
                        if (k < 0)
                                return k;
                        break;
                }
                p = nl + 1;
        }
        if (result < 0)
                return result;
        *ret_added = added;
        return 0;
}

/* ---- health ---- */

void ledger_set_stall_timeout(struct ledger *l, int64_t ms) {
        pthread_mutex_lock(&l->wake_lock);
        l->stall_timeout_ms = ms > 0 ? ms : STALL_TIMEOUT_DEFAULT_MS;
        pthread_mutex_unlock(&l->wake_lock);
}

int ledger_health(struct ledger *l, struct ledger_health *ret) {
        bool have;
        uint64_t size;
        merkle_hash root;
        int64_t now = (int64_t) (mono_ns() / 1000000);

        *ret = (struct ledger_health){ 0 };
        ret->signer_up = signer_state(l->signer, &have, &size, &root) == 0;
        pthread_mutex_lock(&l->wake_lock);
        if (l->uncovered_since_ms > 0)
                ret->uncovered_ms = now - l->uncovered_since_ms;
        ret->stalled = l->uncovered_since_ms > 0 && ret->uncovered_ms >= l->stall_timeout_ms;
        pthread_mutex_unlock(&l->wake_lock);
        return 0;
}

bool ledger_stalled(struct ledger *l) {
        int64_t now = (int64_t) (mono_ns() / 1000000);
        pthread_mutex_lock(&l->wake_lock);
        bool stalled = l->uncovered_since_ms > 0 && now - l->uncovered_since_ms >= l->stall_timeout_ms;
        pthread_mutex_unlock(&l->wake_lock);
        return stalled;
}
