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
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/log.h"
#include "audit/note.h"
#include "fileio.h"
#include "log.h"
#include "seal/signer.h"
#include "timeutil.h"

#define CHECKPOINT_MIN_SPACING_MS 500  /* at most two checkpoints a second */
#define COSIG_PER_CHECKPOINT 32        /* cosignature lines kept for one checkpoint */
#define STALL_TIMEOUT_DEFAULT_MS 10000 /* [audit] stall_timeout */

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
        uint64_t signed_size;
        merkle_hash signed_root;
        int last_sign_error; /* of the last attempt, 0 when it was signed */
        struct cosig *cosigs;
        size_t n_cosigs;

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

/* 1 when the line is new for that checkpoint, 0 when known, -E2BIG when the checkpoint has its
 * share already. */
static int cosig_check_locked(struct ledger *l, uint64_t size, const char *line, size_t len) {
        size_t same_size = 0;
        for (size_t i = 0; i < l->n_cosigs; i++) {
                if (l->cosigs[i].size != size)
                        continue;
                if (strlen(l->cosigs[i].line) == len && memcmp(l->cosigs[i].line, line, len) == 0)
                        return 0;
                same_size++;
        }
        return same_size >= COSIG_PER_CHECKPOINT ? -E2BIG : 1;
}

static int cosig_add_locked(struct ledger *l, uint64_t size, const char *line, size_t len) {
        int r = cosig_check_locked(l, size, line, len);
        if (r <= 0)
                return r;
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

static int cosig_load(struct ledger *l) {
        _cleanup_free_ char *path = path_join(l->audit_dir, "cosignatures");
        struct buf b;
        if (!path)
                return -ENOMEM;
        int r = read_file(path, 16 << 20, &b);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        char *p = (char *) b.data, *end = p + b.len;
        while (p < end) {
                char *nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl)
                        break; /* a torn last line: ignore it */
                char *sp = memchr(p, ' ', (size_t) (nl - p));
                if (sp) {
                        *sp = 0;
                        uint64_t size = strtoull(p, NULL, 10);
                        r = cosig_add_locked(l, size, sp + 1, (size_t) (nl + 1 - (sp + 1)));
                        if (r < 0)
                                break;
                }
                p = nl + 1;
        }
        buf_free(&b);
        return r < 0 ? r : 0;
}

static int cosig_persist(struct ledger *l, uint64_t size, const char *line, size_t len) {
        _cleanup_free_ char *path = path_join(l->audit_dir, "cosignatures");
        if (!path)
                return -ENOMEM;
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        char head[32];
        int n = snprintf(head, sizeof head, "%llu ", (unsigned long long) size);
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        int r = buf_append(&b, head, (size_t) n);
        if (r >= 0)
                r = buf_append(&b, line, len);
        if (r >= 0)
                r = write_all(fd, b.data, b.len);
        if (r >= 0 && fdatasync(fd) < 0)
                r = negative_errno();
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

static int checkpoint_locked(struct ledger *l) {
        uint64_t size = audit_log_size(l->log);
        merkle_hash root, old_root, proof[MERKLE_MAX_PROOF];
        size_t proof_len = 0;
        int r;

        if (size == 0 || size <= l->signed_size)
                return 0;
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
        return 0;
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

static int load_last_checkpoint(struct ledger *l) {
        struct audit_checkpoint c = { 0 };
        _cleanup_free_ char *body = NULL;

        int r = audit_log_checkpoint_latest(l->log, &c);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = note_open(c.note, strlen(c.note), &l->log_verifier, 1, &body, NULL);
        if (r < 0)
                log_error("audit log: the latest stored checkpoint does not verify under the log key");
        /* the signer keeps its own memory of what it signed (keys/log.state): nothing to
         * restore here, and it refuses any tree that does not extend that one */
        if (r >= 0) {
                l->signed_size = c.size;
                l->signed_root = c.root;
        }
        audit_checkpoint_clear(&c);
        return r;
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
        r = audit_log_open(l->audit_dir, false, &l->log);
        if (r == -EBUSY)
                return log_error_errno(r, "the audit log in %s is in use by another coffre process", l->audit_dir);
        if (r < 0)
                return log_error_errno(r, "cannot open the audit log in %s: %s", l->audit_dir, strerror(-r));
        r = load_last_checkpoint(l);
        if (r < 0)
                return r;
        r = cosig_load(l);
        if (r < 0)
                return log_error_errno(r, "cannot read the stored cosignatures: %s", strerror(-r));
        l->committed_size = audit_log_size(l->log);
        if (l->committed_size > l->signed_size) {
                /* Entries acknowledged after the last checkpoint of a run that did not stop
                 * cleanly (kill -9, power loss): sign them now, and say so. */
                log_warn("audit log: entries %llu to %llu were not covered by a checkpoint; signing them now",
                         (unsigned long long) l->signed_size, (unsigned long long) l->committed_size - 1);
                r = ledger_checkpoint_now(l);
                if (r < 0)
                        return r;
        }
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
        if (l->opened) {
                int r = ledger_checkpoint_now(l);
                if (r < 0)
                        log_error("audit log: no final checkpoint: %s", strerror(-r));
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

/* ---- entries ---- */

int ledger_record(struct ledger *l, const struct audit_entry *e, const uint8_t *details_key, const char *details_plain,
                  uint64_t *ret_index) {
        _cleanup_buf_ struct buf b;
        uint64_t index;

        buf_init(&b, AUDIT_ENTRY_MAX);
        int r = audit_entry_build(e, details_key, details_plain, &b);
        if (r < 0)
                return log_error_errno(r, "audit entry for %s not built: %s", e->action, strerror(-r));
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
        _cleanup_buf_ struct buf b;
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
                _cleanup_buf_ struct buf one;
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
                        int k = cosig_check_locked(l, size, p, line_len);
                        if (k > 0)
                                k = cosig_persist(l, size, p, line_len);
                        if (k >= 0)
                                k = cosig_add_locked(l, size, p, line_len);
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
