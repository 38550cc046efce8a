/* cmd_audit.c: `coffre audit verify` and `coffre audit proof`. verify --data recomputes the whole
 * Merkle tree of a stopped vault's log (read-only) and checks every stored checkpoint (signature,
 * origin, root, order) and that no entry lies outside a signed checkpoint; verify --url does the same
 * from a server's API, trusting nothing it sends but what the log key signed; proof checks a
 * document's log entries against the latest signed checkpoint with inclusion proofs. */
#include "audit_commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/entry.h"
#include "audit/log.h"
#include "cmd_common.h"
#include "commands.h"
#include "core/config.h"
#include "fileio.h"
#include "hex.h"
#include "progress.h"
#include "core/checkpoint_ts.h"
#include "seal/signer.h"

#define ENTRIES_PAGE 1000u
#define VKEY_FILE_MAX 4096u

enum {
        OPT_DATA = CMD_OPT_FIRST_PRIVATE,
        OPT_LOG_KEY,
        OPT_STATE,
};

/* The first verification failure: printed once by the command. */
static struct {
        bool set;
        bool has_index;
        uint64_t index;
        char reason[512];
} failure;

static int _printf_(2, 3) fail_at(uint64_t index, const char *fmt, ...) {
        va_list ap;
        if (failure.set)
                return -EBADMSG;
        va_start(ap, fmt);
        vsnprintf(failure.reason, sizeof failure.reason, fmt, ap);
        va_end(ap);
        failure.set = true;
        failure.has_index = index != UINT64_MAX;
        failure.index = index;
        return -EBADMSG;
}
#define fail(...) fail_at(UINT64_MAX, __VA_ARGS__)

/* Prints the failure (stderr, and a JSON object on stdout with --json); returns the exit code. */
static int report_failure(bool json) {
        failure.set = false; /* reported: the next check starts afresh */
        if (failure.has_index)
                cli_error("audit log verification failed at index %" PRIu64 ": %s", failure.index, failure.reason);
        else
                cli_error("audit log verification failed: %s", failure.reason);
        if (json) {
                json_t *o = json_pack("{s:b,s:s}", "ok", 0, "reason", failure.reason);
                if (o && failure.has_index)
                        json_object_set_new(o, "index", json_integer((json_int_t) failure.index));
                if (!o || cmd_print_json_line(o) < 0)
                        cli_error("out of memory");
                json_decref(o);
        }
        return CLI_EXIT_VERIFY;
}

/* ---- helpers shared with cmd_witness.c ---- */

const char *audit_cli_take_failure(void) {
        failure.set = false;
        return failure.reason;
}

void audit_cli_hash_b64(const merkle_hash *h, char out[static 45]) {
        _cleanup_free_ char *s = base64_encode(h->b, MERKLE_HASH_SIZE);
        snprintf(out, 45, "%s", s ? s : "?");
}

void audit_cli_checkpoint_clear(struct audit_cli_checkpoint *c) {
        if (!c)
                return;
        free(c->note);
        free(c->body);
        free(c->origin);
        *c = (struct audit_cli_checkpoint){};
}

static bool hash_eq(const merkle_hash *a, const merkle_hash *b) {
        return memcmp(a->b, b->b, MERKLE_HASH_SIZE) == 0;
}

int audit_cli_open_checkpoint(const char *note, size_t len, struct note_verifier *log_key,
                              struct audit_cli_checkpoint *ret) {
        _cleanup_(audit_cli_checkpoint_clear) struct audit_cli_checkpoint c = {};
        int r;

        r = note_open(note, len, &log_key, 1, &c.body, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail("the checkpoint is not signed by the log key %s", note_verifier_name(log_key));
        r = checkpoint_parse(c.body, strlen(c.body), &c.origin, &c.size, &c.root);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail("the signed note is not a checkpoint");
        if (strcmp(c.origin, note_verifier_name(log_key)) != 0) {
                _cleanup_free_ char *o = cli_escape(c.origin);
                return fail("the checkpoint's origin '%s' is not the log's", o ? o : "?");
        }
        c.note = strndup(note, len);
        if (!c.note)
                return -ENOMEM;
        *ret = c;
        c = (struct audit_cli_checkpoint){};
        return 0;
}

int audit_cli_fetch_checkpoint(struct client *c, struct note_verifier *log_key, struct audit_cli_checkpoint *ret) {
        _cleanup_free_ char *note = NULL;
        int r = audit_cli_fetch_text(c, "/v1/audit/checkpoint", NOTE_MAX_SIZE, &note);
        if (r < 0)
                return r;
        return audit_cli_open_checkpoint(note, strlen(note), log_key, ret);
}

static int json_u64(json_t *o, const char *key, uint64_t *ret) {
        json_t *v = json_object_get(o, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return -EPROTO;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

static int b64_hash(const char *s, merkle_hash *ret) {
        _cleanup_free_ uint8_t *raw = NULL;
        size_t n = 0;
        if (!s || base64_decode(s, strlen(s), &raw, &n) < 0 || n != MERKLE_HASH_SIZE)
                return -EPROTO;
        memcpy(ret->b, raw, MERKLE_HASH_SIZE);
        return 0;
}

static int json_hash(json_t *o, const char *key, merkle_hash *ret) {
        return b64_hash(cmd_json_str(o, key, NULL), ret);
}

/* A JSON array of base64 hashes into proof[MERKLE_MAX_PROOF]. */
static int json_proof(json_t *o, merkle_hash *proof, size_t *ret_n) {
        json_t *a = json_object_get(o, "proof"), *v;
        size_t i;
        if (!json_is_array(a) || json_array_size(a) > MERKLE_MAX_PROOF)
                return -EPROTO;
        json_array_foreach(a, i, v) {
                if (!json_is_string(v) || b64_hash(json_string_value(v), &proof[i]) < 0)
                        return -EPROTO;
        }
        *ret_n = json_array_size(a);
        return 0;
}

static int protocol_error(const char *what) {
        cli_error("the server's %s is not in the form coffre expects", what);
        return -EPROTO;
}

int audit_cli_check_consistency(struct client *c, uint64_t old_size, const merkle_hash *old_root,
                                const struct audit_cli_checkpoint *cp) {
        merkle_hash proof[MERKLE_MAX_PROOF], got_old, got_new;
        char path[128], b1[45], b2[45];
        size_t n;
        uint64_t m, nn;
        json_t *o = NULL;
        int r;

        if (cp->size < old_size)
                return fail_at(cp->size,
                               "rollback: the log's checkpoint has size %" PRIu64 ", smaller than the size %" PRIu64
                               " seen before",
                               cp->size, old_size);
        if (cp->size == old_size) {
                if (hash_eq(&cp->root, old_root))
                        return 0;
                audit_cli_hash_b64(old_root, b1);
                audit_cli_hash_b64(&cp->root, b2);
                return fail_at(old_size ? old_size - 1 : 0,
                               "fork: the checkpoint of size %" PRIu64 " has root %s, but root %s was seen before",
                               old_size, b2, b1);
        }
        if (old_size == 0)
                return 0; /* the empty tree is a prefix of every tree */
        snprintf(path, sizeof path, "/v1/audit/proof/consistency?old=%" PRIu64 "&new=%" PRIu64, old_size, cp->size);
        r = client_get_json(c, path, &o);
        if (r < 0)
                return r;
        if (json_u64(o, "old", &m) < 0 || json_u64(o, "new", &nn) < 0 || m != old_size || nn != cp->size ||
            json_hash(o, "old_root", &got_old) < 0 || json_hash(o, "new_root", &got_new) < 0 ||
            json_proof(o, proof, &n) < 0) {
                json_decref(o);
                return protocol_error("consistency proof");
        }
        json_decref(o);
        /* What the server says the roots are does not matter: the proof must link the root we saw
         * before to the root the log key signed. */
        if (merkle_verify_consistency(old_size, cp->size, old_root, &cp->root, proof, n) != 0)
                return fail_at(old_size - 1,
                               "fork: the checkpoint of size %" PRIu64 " does not extend the one of size %" PRIu64
                               " seen before (the consistency proof does not verify)",
                               cp->size, old_size);
        return 0;
}

/* ---- coffre audit verify --data ---- */

static int open_log_key(const char *path, struct note_verifier **ret, char **ret_vkey) {
        _cleanup_free_ char *vkey = NULL;
        int r = audit_cli_load_vkey_file(path, &vkey);
        if (r < 0)
                return r;
        r = note_verifier_from_vkey(vkey, ret);
        if (r < 0)
                return r;
        if (ret_vkey)
                *ret_vkey = TAKE_PTR(vkey);
        return 0;
}

struct summary {
        uint64_t entries;
        size_t checkpoints;
        merkle_hash root;
        size_t timestamps; /* checkpoint timestamps checked (local verify only) */
};

static int print_summary(const struct summary *s, const char *origin, bool json) {
        char root[45];
        audit_cli_hash_b64(&s->root, root);
        if (json) {
                json_t *o = json_pack("{s:b,s:I,s:I,s:s,s:s,s:I}", "ok", 1, "entries", (json_int_t) s->entries,
                                      "checkpoints", (json_int_t) s->checkpoints, "root", root, "origin", origin,
                                      "checkpoint_timestamps", (json_int_t) s->timestamps);
                int r = o ? cmd_print_json_line(o) : -ENOMEM;
                json_decref(o);
                if (r < 0)
                        return cmd_exit_code(r);
        } else {
                _cleanup_free_ char *e = cli_escape(origin);
                printf("audit log OK: %" PRIu64 " entries, %zu checkpoints, root %s (%s), %zu checkpoint timestamps\n",
                       s->entries, s->checkpoints, root, e ? e : "?", s->timestamps);
        }
        return cmd_finish_stdout();
}

/* Checks the stored checkpoints of a log whose entries and hashes audit_log_verify_all() found
 * consistent: signature, origin, size, root, order, and that the last one covers every entry. */
static int verify_checkpoints(struct audit_log *log, struct note_verifier *key, const char *origin,
                              struct summary *ret) {
        uint64_t size = audit_log_size(log), prev_size = 0;
        size_t n = audit_log_checkpoint_count(log);
        merkle_hash prev_root;
        int r;

        for (size_t i = 0; i < n; i++) {
                _cleanup_(audit_checkpoint_clear) struct audit_checkpoint c = {};
                _cleanup_free_ char *body = NULL, *corigin = NULL;
                merkle_hash root, croot;
                uint64_t csize;

                r = audit_log_checkpoint_nth(log, i, &c);
                if (r < 0) {
                        cli_error("cannot read stored checkpoint %zu: %s", i + 1, strerror(-r));
                        return r;
                }
                uint64_t at = c.size ? c.size - 1 : 0;
                r = note_open(c.note, strlen(c.note), &key, 1, &body, NULL);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail_at(at, "checkpoint %zu (size %" PRIu64 ") is not signed by the log key", i + 1,
                                       c.size);
                r = checkpoint_parse(body, strlen(body), &corigin, &csize, &croot);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail_at(at, "checkpoint %zu is not a valid checkpoint", i + 1);
                if (strcmp(corigin, origin) != 0) {
                        _cleanup_free_ char *e = cli_escape(corigin);
                        return fail_at(at, "checkpoint %zu has origin '%s', not the vault's", i + 1, e ? e : "?");
                }
                if (csize != c.size)
                        return fail_at(at, "checkpoint %zu signs size %" PRIu64 " but is stored for size %" PRIu64,
                                       i + 1, csize, c.size);
                if (csize > size)
                        return fail_at(size, "checkpoint %zu covers %" PRIu64 " entries, the log holds %" PRIu64, i + 1,
                                       csize, size);
                r = audit_log_root(log, csize, &root);
                if (r < 0) {
                        cli_error("cannot compute the root at size %" PRIu64 ": %s", csize, strerror(-r));
                        return r;
                }
                if (!hash_eq(&root, &croot))
                        return fail_at(at,
                                       "the root signed in checkpoint %zu (size %" PRIu64
                                       ") differs from the root recomputed from the entries",
                                       i + 1, csize);
                if (i > 0 && csize < prev_size)
                        return fail_at(at,
                                       "checkpoint %zu (size %" PRIu64
                                       ") is older than the one before it (size %" PRIu64 ")",
                                       i + 1, csize, prev_size);
                if (i > 0 && csize == prev_size && !hash_eq(&croot, &prev_root))
                        return fail_at(at, "checkpoints %zu and %zu sign two roots for size %" PRIu64, i, i + 1, csize);
                prev_size = csize;
                prev_root = croot;
        }
        if (prev_size < size)
                return fail_at(prev_size,
                               "entries %" PRIu64 " to %" PRIu64 " are covered by no signed checkpoint (written "
                               "outside a running server, or the server did not stop cleanly)",
                               prev_size, size - 1);
        ret->entries = size;
        ret->checkpoints = n;
        r = audit_log_root(log, size, &ret->root);
        if (r < 0)
                cli_error("cannot compute the root: %s", strerror(-r));
        return r;
}

/* Every stored checkpoint timestamp (audit/checkpoint-timestamps): a valid token of a TSA that
 * chains to the vault's CA (keys/ca.pem), over a checkpoint note the log stores at that size,
 * sizes and times never going back. */
static int verify_checkpoint_timestamps(struct audit_log *log, const char *data, const char *audit_dir,
                                        size_t *ret_n) {
        _cleanup_free_ char *ca = path_join(data, "keys/ca.pem");
        struct checkpoint_ts *v = NULL;
        size_t n = 0;
        int64_t prev_time = 0;
        uint64_t prev_size = 0;
        int r;

        if (!ca)
                return -ENOMEM;
        r = checkpoint_ts_load(audit_dir, &v, &n);
        if (r == -EBADMSG)
                return fail("audit/%s holds a line that is not a timestamp", CHECKPOINT_TS_FILE);
        if (r < 0) {
                cli_error("cannot read audit/%s: %s", CHECKPOINT_TS_FILE, strerror(-r));
                return r;
        }
        *ret_n = n;
        if (n == 0)
                return 0;
        X509_STORE *trust = X509_STORE_new();
        if (!trust || X509_STORE_load_file(trust, ca) != 1) {
                X509_STORE_free(trust);
                checkpoint_ts_free(v, n);
                cli_error("cannot read the vault's CA %s to check the checkpoint timestamps", ca);
                return -ENOENT;
        }
        for (size_t i = 0; r == 0 && i < n; i++) {
                _cleanup_(audit_checkpoint_clear) struct audit_checkpoint c = {};
                int64_t t = 0;
                uint64_t at = v[i].size ? v[i].size - 1 : 0;

                r = audit_log_checkpoint_at(log, v[i].size, &c);
                if (r == -ENOENT) {
                        r = fail_at(at, "checkpoint timestamp %zu is for size %" PRIu64 ", where no checkpoint is stored",
                                    i + 1, v[i].size);
                        break;
                }
                if (r < 0) {
                        cli_error("cannot read the checkpoint of size %" PRIu64 ": %s", v[i].size, strerror(-r));
                        break;
                }
                if (checkpoint_ts_verify(v[i].reply, v[i].len, c.note, trust, &t) < 0) {
                        r = fail_at(at,
                                    "checkpoint timestamp %zu (size %" PRIu64 ") is not a valid token of the vault's "
                                    "TSA over that checkpoint",
                                    i + 1, v[i].size);
                        break;
                }
                if (v[i].size < prev_size || t < prev_time) {
                        r = fail_at(at, "checkpoint timestamp %zu (size %" PRIu64 ") goes back in size or time", i + 1,
                                    v[i].size);
                        break;
                }
                prev_size = v[i].size;
                prev_time = t;
        }
        X509_STORE_free(trust);
        checkpoint_ts_free(v, n);
        return r;
}

/* The signer's memory (DATA/keys/log.state, read only): the log must hold the tree it last
 * signed. Skipped, with a note, when the file is missing or unreadable (an auditor's copy). */
static int verify_signer_state(struct audit_log *log, const char *data, const char *show, const char *origin) {
        _cleanup_free_ char *path = path_join(data, "keys/log.state");
        _cleanup_close_ int fd = -1;
        merkle_hash sroot, here;
        uint64_t ssize, size = audit_log_size(log);
        bool have;
        int r;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno != ENOENT)
                        cli_error("note: cannot read %s/keys/log.state (%s): the log is not compared with the "
                                  "signer's memory",
                                  show, strerror(errno));
                return 0;
        }
        r = signer_state_file_read(fd, origin, &have, &ssize, &sroot);
        if (r == -ENOMEM)
                return r;
        if (r == -EXDEV)
                return fail("keys/log.state is the signer state of another log");
        if (r < 0)
                return fail("keys/log.state is damaged (%s): the signer would not start", strerror(-r));
        if (!have || ssize == 0)
                return 0;
        if (size < ssize)
                return fail_at(size,
                               "the log holds %" PRIu64 " entries but the signer has signed a tree of %" PRIu64
                               " entries (keys/log.state): audit/ was rolled back or cut",
                               size, ssize);
        r = audit_log_root(log, ssize, &here);
        if (r < 0) {
                cli_error("cannot compute the root at size %" PRIu64 ": %s", ssize, strerror(-r));
                return r;
        }
        if (!hash_eq(&here, &sroot)) {
                char a[45], b[45];
                audit_cli_hash_b64(&here, a);
                audit_cli_hash_b64(&sroot, b);
                return fail_at(ssize - 1,
                               "the log's root at size %" PRIu64 " is %s but the signer signed %s (keys/log.state): "
                               "audit/ was rolled back or rewritten",
                               ssize, a, b);
        }
        return 0;
}

static int verify_data(const char *data, const char *log_key_file, bool json) {
        _cleanup_free_ char *conf = path_join(data, "coffre.conf");
        _cleanup_free_ char *audit_dir = path_join(data, "audit");
        _cleanup_free_ char *key_path = log_key_file ? strdup(log_key_file) : path_join(data, "keys/log.vkey");
        _cleanup_free_ char *show = cli_escape(data);
        _cleanup_(note_verifier_freep) struct note_verifier *key = NULL;
        _cleanup_(audit_log_closep) struct audit_log *log = NULL;
        struct vault_config cfg;
        struct summary sum = {};
        struct stat st;
        uint64_t bad = 0;
        int r;

        if (!conf || !audit_dir || !key_path || !show)
                return cmd_exit_code(-ENOMEM);
        vault_config_defaults(&cfg);
        r = vault_config_load(conf, &cfg);
        if (r < 0) {
                cli_error("cannot read the vault's settings %s/coffre.conf: %s", show, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        r = open_log_key(key_path, &key, NULL);
        if (r < 0)
                return cmd_exit_code(r == -EBADMSG ? -EINVAL : r);
        if (stat(audit_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                cli_error("%s holds no audit log (no audit/ directory)", show);
                return CLI_EXIT_FAILURE;
        }
        /* a verifier never changes what it verifies: nothing is recovered, cut or moved */
        r = audit_log_open_readonly(audit_dir, &log);
        if (r == -EBUSY) {
                cli_error("the server holds the log: stop it or use --url");
                return CLI_EXIT_FAILURE;
        }
        if (r < 0) {
                cli_error("cannot open the audit log in %s/audit: %s", show, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        r = audit_log_verify_all(log, &bad);
        if (r == -EBADMSG) {
                fail_at(bad, "the stored log does not match the tree recomputed from its entries (an entry was "
                             "edited, removed, inserted or moved, a stored hash is damaged, or a checkpoint "
                             "does not match)");
                return report_failure(json);
        }
        if (r < 0) {
                cli_error("cannot read the audit log: %s", strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        if (audit_log_trailing_bytes(log) > 0 && audit_log_tail_damaged(log)) {
                fail_at(audit_log_size(log),
                        "record %" PRIu64 " of audit/entries is damaged and %" PRIu64 " bytes from it to the end are "
                        "more than a torn write leaves (a flipped bit, or foreign data): the server refuses to start",
                        audit_log_size(log), audit_log_trailing_bytes(log));
                return report_failure(json);
        }
        r = verify_signer_state(log, data, show, cfg.audit_origin);
        if (r == -EBADMSG)
                return report_failure(json);
        if (r < 0)
                return cmd_exit_code(r);
        if (audit_log_trailing_bytes(log) > 0) {
                fail_at(audit_log_size(log),
                        "%" PRIu64 " bytes of audit/entries after the last whole record are no valid record (a "
                        "torn write of a server that did not stop cleanly, or foreign data)",
                        audit_log_trailing_bytes(log));
                return report_failure(json);
        }
        r = verify_checkpoints(log, key, cfg.audit_origin, &sum);
        if (r == -EBADMSG)
                return report_failure(json);
        if (r < 0)
                return cmd_exit_code(r);
        size_t n_ts = 0;
        r = verify_checkpoint_timestamps(log, data, audit_dir, &n_ts);
        if (r == -EBADMSG)
                return report_failure(json);
        if (r < 0)
                return cmd_exit_code(r);
        sum.timestamps = n_ts;
        return print_summary(&sum, cfg.audit_origin, json);
}

/* ---- coffre audit verify --url ---- */

/* The log key: --log-key FILE, else the one pinned in the state, else the server's (with a
 * warning: trusting the server's own key proves only that the server is self-consistent). */
static int remote_log_key(struct client *c, const char *log_key_file, const char *pinned, char **ret_vkey,
                          struct note_verifier **ret) {
        _cleanup_free_ char *vkey = NULL;
        int r;

        if (log_key_file)
                r = audit_cli_load_vkey_file(log_key_file, &vkey);
        else if (pinned)
                r = (vkey = strdup(pinned)) ? 0 : -ENOMEM;
        else {
                r = audit_cli_fetch_text(c, "/v1/audit/verifier-key", VKEY_FILE_MAX, &vkey);
                if (r >= 0) {
                        size_t n = strlen(vkey);
                        while (n > 0 && (vkey[n - 1] == '\n' || vkey[n - 1] == '\r'))
                                vkey[--n] = 0;
                        fprintf(stderr, "coffre: warning: trusting the log key the server sent; pin it with "
                                        "--log-key FILE (DATA/keys/log.vkey) for an independent check\n");
                }
        }
        if (r < 0)
                return r;
        r = note_verifier_from_vkey(vkey, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                cli_error("the log key is not a valid C2SP verifier key");
                return -EINVAL;
        }
        *ret_vkey = TAKE_PTR(vkey);
        return 0;
}

/* Fetches entries [0, size) in pages and computes their tree root. */
static int remote_root(struct client *c, uint64_t size, merkle_hash *ret) {
        struct merkle_frontier f;
        char path[128];
        int r;

        merkle_frontier_init(&f);
        for (uint64_t start = 0; start < size;) {
                uint64_t end = MIN(size, start + ENTRIES_PAGE);
                json_t *o = NULL, *a, *e;
                size_t i;

                snprintf(path, sizeof path, "/v1/audit/entries?start=%" PRIu64 "&end=%" PRIu64, start, end);
                r = client_get_json(c, path, &o);
                if (r < 0)
                        return r;
                a = json_object_get(o, "entries");
                if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > end - start) {
                        json_decref(o);
                        return json_is_array(a) ? fail_at(start, "the server did not send entry %" PRIu64, start)
                                                : protocol_error("list of entries");
                }
                json_array_foreach(a, i, e) {
                        json_t *text = json_object_get(e, "entry");
                        merkle_hash leaf;
                        uint64_t idx;
                        /* Entries of other organisations come redacted, as their leaf hash only:
                         * the tree can still be rebuilt, and the signed root checks those too. */
                        bool redacted = json_is_null(text) && json_is_true(json_object_get(e, "redacted"));
                        if (json_u64(e, "index", &idx) < 0 ||
                            (redacted ? json_hash(e, "leaf_hash", &leaf) < 0
                                      : !json_is_string(text) || json_string_length(text) > AUDIT_LOG_ENTRY_MAX)) {
                                json_decref(o);
                                return protocol_error("list of entries");
                        }
                        if (idx != start + i) {
                                json_decref(o);
                                return fail_at(start + i,
                                               "the server sent entry %" PRIu64 " in place of entry %" PRIu64, idx,
                                               start + i);
                        }
                        if (!redacted)
                                merkle_leaf_hash(json_string_value(text), json_string_length(text), &leaf);
                        r = merkle_frontier_append(&f, &leaf, NULL, NULL);
                        if (r < 0) {
                                json_decref(o);
                                return r;
                        }
                }
                start += json_array_size(a);
                json_decref(o);
        }
        merkle_frontier_root(&f, ret);
        return 0;
}

static int verify_url(const struct cmd_opts *o, const char *log_key_file, const char *state_path) {
        _cleanup_(client_freep) struct client *c = NULL;
        _cleanup_(note_verifier_freep) struct note_verifier *key = NULL;
        _cleanup_(audit_cli_checkpoint_clear) struct audit_cli_checkpoint cp = {};
        _cleanup_(witness_state_clear) struct witness_state st = {};
        _cleanup_free_ char *vkey = NULL;
        struct summary sum = {};
        merkle_hash root;
        int r;

        if (state_path) {
                r = witness_state_load(state_path, &st);
                if (r < 0 && r != -ENOENT)
                        return cmd_exit_code(r == -EBADMSG ? -EINVAL : r);
        }
        r = cmd_open_client(o, &c);
        if (r >= 0)
                r = remote_log_key(c, log_key_file, st.log_vkey, &vkey, &key);
        if (r >= 0)
                r = audit_cli_fetch_checkpoint(c, key, &cp);
        if (r >= 0 && st.have_checkpoint)
                r = audit_cli_check_consistency(c, st.size, &st.root, &cp);
        if (r >= 0)
                r = remote_root(c, cp.size, &root);
        if (r >= 0 && !hash_eq(&root, &cp.root))
                r = fail_at(cp.size ? cp.size - 1 : 0,
                            "the %" PRIu64 " entries the server sent do not hash to the signed root", cp.size);
        if (r == -EBADMSG)
                return report_failure(o->json);
        if (r < 0)
                return cmd_exit_code(r);
        if (state_path) {
                free(st.log_vkey);
                st.log_vkey = TAKE_PTR(vkey);
                st.have_checkpoint = true;
                st.size = cp.size;
                st.root = cp.root;
                r = witness_state_save(state_path, &st);
                if (r < 0)
                        return cmd_exit_code(r);
        }
        sum.entries = cp.size;
        sum.checkpoints = 1;
        sum.root = cp.root;
        return print_summary(&sum, cp.origin, o->json);
}

/* ---- coffre audit proof ---- */

struct proved {
        uint64_t index;
        const char *entry; /* borrowed from the answer */
        merkle_hash leaf;
        merkle_hash proof[MERKLE_MAX_PROOF];
        size_t proof_len;
};

static int prove_one(struct client *c, const char *doc, json_t *item, const struct audit_cli_checkpoint *cp,
                     struct proved *p, struct audit_entry *ret_entry) {
        json_t *text = json_object_get(item, "entry"), *o = NULL;
        merkle_hash leaf, root;
        uint64_t idx, size;
        char path[128];
        int r;

        if (json_u64(item, "index", &p->index) < 0 || !json_is_string(text) ||
            json_string_length(text) > AUDIT_LOG_ENTRY_MAX)
                return protocol_error("list of the document's entries");
        p->entry = json_string_value(text);
        r = audit_entry_parse(p->entry, json_string_length(text), ret_entry);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail_at(p->index, "the entry is not a valid audit log entry");
        if (!ret_entry->object || strcmp(ret_entry->object, doc) != 0)
                return fail_at(p->index, "the entry is about another object than the document");
        if (p->index >= cp->size) {
                cli_error("entry %" PRIu64 " is newer than the latest checkpoint (size %" PRIu64 "); try again in a "
                          "few seconds",
                          p->index, cp->size);
                return -EAGAIN;
        }
        merkle_leaf_hash(p->entry, json_string_length(text), &p->leaf);
        snprintf(path, sizeof path, "/v1/audit/proof/inclusion?index=%" PRIu64 "&size=%" PRIu64, p->index, cp->size);
        r = client_get_json(c, path, &o);
        if (r < 0)
                return r;
        if (json_u64(o, "index", &idx) < 0 || json_u64(o, "size", &size) < 0 || idx != p->index || size != cp->size ||
            json_hash(o, "leaf_hash", &leaf) < 0 || json_hash(o, "root", &root) < 0 ||
            json_proof(o, p->proof, &p->proof_len) < 0) {
                json_decref(o);
                return protocol_error("inclusion proof");
        }
        json_decref(o);
        if (!hash_eq(&leaf, &p->leaf))
                return fail_at(p->index, "the log holds another entry at this index than the one the server listed");
        if (!hash_eq(&root, &cp->root))
                return fail_at(p->index, "the proof is for another root than the signed checkpoint's");
        if (merkle_verify_inclusion(&p->leaf, p->index, cp->size, p->proof, p->proof_len, &cp->root) != 0)
                return fail_at(p->index, "the inclusion proof does not verify against the signed checkpoint");
        return 0;
}

static json_t *proved_json(const struct proved *p) {
        char b[45];
        json_t *proof = json_array(), *o;
        for (size_t i = 0; proof && i < p->proof_len; i++) {
                audit_cli_hash_b64(&p->proof[i], b);
                if (json_array_append_new(proof, json_string(b)) < 0) {
                        json_decref(proof);
                        return NULL;
                }
        }
        audit_cli_hash_b64(&p->leaf, b);
        o = json_pack("{s:I,s:s,s:s,s:o,s:b}", "index", (json_int_t) p->index, "entry", p->entry, "leaf_hash", b,
                      "proof", proof, "verified", 1);
        return o;
}

/* A page cursor as a query value: the server's cursors are decimal indexes; anything else is
 * refused rather than escaped. */
static char *curl_escape_cursor(const char *cursor) {
        size_t n = strlen(cursor);
        if (n == 0 || n > 20 || strspn(cursor, "0123456789") != n)
                return NULL;
        return strdup(cursor);
}

static int proof_cmd(const struct cmd_opts *o, const char *doc, const char *log_key_file) {
        _cleanup_(client_freep) struct client *c = NULL;
        _cleanup_(note_verifier_freep) struct note_verifier *key = NULL;
        _cleanup_(audit_cli_checkpoint_clear) struct audit_cli_checkpoint cp = {};
        _cleanup_free_ char *vkey = NULL;
        _cleanup_free_ char *cursor = NULL;
        json_t *list = NULL, *out = NULL, *arr, *item;
        char path[CMD_ID_MAX + 80], root[45];
        size_t i, seen = 0;
        int r;

        r = cmd_open_client(o, &c);
        if (r >= 0)
                r = remote_log_key(c, log_key_file, NULL, &vkey, &key);
        if (r >= 0)
                r = audit_cli_fetch_checkpoint(c, key, &cp);
        if (r < 0)
                goto done;
        audit_cli_hash_b64(&cp.root, root);
        if (o->json) {
                out = json_pack("{s:s,s:s,s:s,s:I,s:s,s:[]}", "document", doc, "log_key", vkey, "checkpoint", cp.note,
                                "size", (json_int_t) cp.size, "root", root, "entries");
                if (!out) {
                        r = -ENOMEM;
                        goto done;
                }
        }
        /* the trail comes in pages: follow next_cursor to the end */
        for (;;) {
                _cleanup_free_ char *q = cursor ? curl_escape_cursor(cursor) : NULL;
                if (cursor && !q) {
                        r = -ENOMEM;
                        break;
                }
                snprintf(path, sizeof path, "/v1/documents/%s/audit?limit=1000%s%s", doc, q ? "&cursor=" : "",
                         q ? q : "");
                json_decref(list);
                list = NULL;
                r = client_get_json(c, path, &list);
                if (r < 0)
                        break;
                arr = json_object_get(list, "entries");
                if (!json_is_array(arr)) {
                        r = protocol_error("list of the document's entries");
                        break;
                }
                seen += json_array_size(arr);
                json_array_foreach(arr, i, item) {
                        _cleanup_free_ struct proved *p = calloc(1, sizeof *p);
                        struct audit_entry e = {};
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        r = prove_one(c, doc, item, &cp, p, &e);
                        if (r >= 0 && out) {
                                json_t *j = proved_json(p);
                                if (!j || json_array_append_new(json_object_get(out, "entries"), j) < 0)
                                        r = -ENOMEM;
                        } else if (r >= 0) {
                                _cleanup_free_ char *action = cli_escape(e.action), *time = cli_escape(e.time);
                                if (!action || !time)
                                        r = -ENOMEM;
                                else
                                        printf("%" PRIu64 "  %s  %s  verified\n", p->index, action, time);
                        }
                        audit_entry_clear(&e);
                        if (r < 0)
                                break;
                }
                if (r < 0)
                        break;
                json_t *next = json_object_get(list, "next_cursor");
                if (!json_is_string(next))
                        break;
                free(cursor);
                cursor = strdup(json_string_value(next));
                if (!cursor) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r >= 0 && seen == 0)
                r = fail("the server lists no log entry for the document");
        if (r >= 0 && out)
                r = cmd_print_json_line(out);
        else if (r >= 0) {
                _cleanup_free_ char *origin = cli_escape(cp.origin);
                printf("checkpoint: %s, size %" PRIu64 ", root %s, signed by the log key\n", origin ? origin : "?",
                       cp.size, root);
        }
done:
        json_decref(list);
        json_decref(out);
        if (r == -EBADMSG)
                return report_failure(o->json);
        if (r < 0)
                return cmd_exit_code(r);
        return cmd_finish_stdout();
}

/* ---- dispatch ---- */

static const char audit_help[] =
        "Usage: coffre audit verify --data DIR [--log-key FILE] [--json]\n"
        "       coffre audit verify --url URL [--log-key FILE] [--state FILE] [--json]\n"
        "       coffre audit proof DOC_ID [--log-key FILE] [--json]\n"
        "\n"
        "verify --data recomputes the Merkle tree of a stopped vault's audit log from its entries and\n"
        "checks every stored checkpoint: its signature by the log key (DATA/keys/log.vkey unless\n"
        "--log-key), its origin, its root, and their order; entries after the last signed checkpoint\n"
        "and bytes after the last whole record are reported, and so is a log shorter than, or\n"
        "other than, the tree the signer last signed (DATA/keys/log.state, when readable). It only\n"
        "reads: nothing is recovered, cut or moved. verify --url fetches the latest checkpoint and every entry from a server and\n"
        "checks that they hash to the signed root; with --state FILE it also checks that the log\n"
        "extends the checkpoint seen on the last run (and records the new one).\n"
        "proof fetches the log entries of a document and checks each one's inclusion proof against\n"
        "the latest signed checkpoint; --json prints everything needed to check them again.\n"
        "Failures print \"audit log verification failed at index N: REASON\" and exit with 3.\n"
        "\n"
        "Options:\n"
        "      --data DIR      the vault's data directory (its server must be stopped)\n"
        "      --log-key FILE  the log's verifier key to trust (default: DATA/keys/log.vkey, or\n"
        "                      the server's own key, with a warning)\n"
        "      --state FILE    remember the last verified checkpoint in FILE (created 0600)\n"
        "      --json          one JSON object on standard output\n" CMD_COMMON_HELP;

int cmd_audit(int argc, char **argv) {
        static const struct option options[] = {
                { "data", required_argument, NULL, OPT_DATA },
                { "log-key", required_argument, NULL, OPT_LOG_KEY },
                { "state", required_argument, NULL, OPT_STATE },
                { "json", no_argument, NULL, CMD_OPT_JSON },
                CMD_COMMON_OPTIONS,
                {},
        };
        const char *data = NULL, *log_key = NULL, *state = NULL, *sub;
        struct cmd_opts o = {};
        int opt;

        if (argc < 2)
                return cmd_usage_error("audit", "verify or proof wanted");
        sub = argv[1];
        if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
                fputs(audit_help, stdout);
                return cmd_finish_stdout();
        }
        if (strcmp(sub, "verify") != 0 && strcmp(sub, "proof") != 0)
                return cmd_usage_error("audit", "unknown subcommand (want: verify or proof)");
        argc--;
        argv++;
        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(audit_help, stdout);
                        return cmd_finish_stdout();
                } else if (opt == OPT_DATA)
                        data = optarg;
                else if (opt == OPT_LOG_KEY)
                        log_key = optarg;
                else if (opt == OPT_STATE)
                        state = optarg;
                else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("audit", argv);
        }
        if (strcmp(sub, "verify") == 0) {
                if (optind != argc)
                        return cmd_usage_error("audit", "verify takes no arguments");
                if (data && (o.url || state))
                        return cmd_usage_error("audit", "--data cannot go with --url or --state");
                if (data)
                        return verify_data(data, log_key, o.json);
                return verify_url(&o, log_key, state);
        }
        if (argc - optind != 1)
                return cmd_usage_error("audit", "proof wants one DOC_ID");
        if (data || state)
                return cmd_usage_error("audit", "proof works with a server (--url), not --data or --state");
        if (!cmd_id_is_valid(argv[optind]))
                return cmd_usage_error("audit", "DOC_ID must be letters, digits, '-' or '_'");
        return proof_cmd(&o, argv[optind], log_key);
}
