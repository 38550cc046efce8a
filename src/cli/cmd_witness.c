/* cmd_witness.c: `coffre witness`, an independent witness of a vault's audit log. Each round it
 * fetches the latest checkpoint, checks the log key's signature, refuses a rollback or a fork
 * (against the last checkpoint it saw, with a consistency proof), records the checkpoint in its
 * state file, and only then cosigns it (c2sp.org/tlog-cosignature) and posts the cosignature.
 * Also the state file both this command and `coffre audit verify --state` keep, and reading a
 * log key file or a text answer, which `coffre audit` uses too. */
#include "audit_commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "cmd_common.h"
#include "commands.h"
#include "fileio.h"
#include "hex.h"
#include "progress.h"

#define STATE_MAGIC "coffre-witness-state 1"
#define STATE_MAX ((size_t) 16 * 1024)
#define DEFAULT_INTERVAL 60u

enum {
        OPT_STATE = CMD_OPT_FIRST_PRIVATE,
        OPT_LOG_KEY,
        OPT_ONCE,
        OPT_INTERVAL,
        OPT_PRINT_KEY,
        OPT_NAME,
};

/* ---- the state file ---- */

void witness_state_clear(struct witness_state *s) {
        if (!s)
                return;
        note_text_free_secret(s->skey);
        free(s->log_vkey);
        *s = (struct witness_state){};
}

static int parse_u64(const char *s, uint64_t *ret) {
        uint64_t v = 0;
        if (!*s || strlen(s) > 20)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                unsigned d = (unsigned) (*s - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* One "name value" line into s; -EINVAL when unknown, repeated or malformed. */
static int state_line(char *line, struct witness_state *s) {
        char *sp = strchr(line, ' ');
        if (!sp)
                return -EINVAL;
        *sp = 0;
        const char *v = sp + 1;
        if (strcmp(line, "key") == 0) {
                if (s->skey)
                        return -EINVAL;
                return (s->skey = strdup(v)) ? 0 : -ENOMEM; /* wiped by note_text_free_secret() */
        }
        if (strcmp(line, "log-key") == 0) {
                struct note_verifier *nv = NULL;
                if (s->log_vkey || note_verifier_from_vkey(v, &nv) < 0)
                        return -EINVAL;
                note_verifier_free(nv);
                return (s->log_vkey = strdup(v)) ? 0 : -ENOMEM;
        }
        if (strcmp(line, "checkpoint") == 0) {
                _cleanup_free_ char *size = strdup(v);
                _cleanup_free_ uint8_t *raw = NULL;
                size_t n = 0;
                if (!size)
                        return -ENOMEM;
                char *sp2 = strchr(size, ' ');
                if (s->have_checkpoint || !sp2)
                        return -EINVAL;
                *sp2 = 0;
                if (parse_u64(size, &s->size) < 0 || base64_decode(sp2 + 1, strlen(sp2 + 1), &raw, &n) < 0 ||
                    n != MERKLE_HASH_SIZE)
                        return -EINVAL;
                memcpy(s->root.b, raw, MERKLE_HASH_SIZE);
                s->have_checkpoint = true;
                return 0;
        }
        return -EINVAL;
}

static int state_parse(char *text, struct witness_state *ret) {
        _cleanup_(witness_state_clear) struct witness_state s = {};
        char *line = text, *nl;
        int r;

        nl = strchr(line, '\n');
        if (!nl)
                return -EINVAL;
        *nl = 0;
        if (strcmp(line, STATE_MAGIC) != 0)
                return -EINVAL;
        for (line = nl + 1; *line; line = nl + 1) {
                nl = strchr(line, '\n');
                if (!nl)
                        return -EINVAL; /* every line ends with a newline: a cut file is not a state */
                *nl = 0;
                r = state_line(line, &s);
                if (r < 0)
                        return r;
        }
        *ret = s;
        s = (struct witness_state){};
        return 0;
}

int witness_state_load(const char *path, struct witness_state *ret) {
        _cleanup_free_ char *show = cli_escape(path);
        struct stat st;
        int r;

        if (!show)
                return -ENOMEM;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                if (r == -ENOENT)
                        return r;
                cli_error("cannot open the state file %s: %s", show,
                          r == -ELOOP ? "it is a symbolic link" : strerror(-r));
                return r == -ELOOP ? -EPERM : r;
        }
        if (fstat(fd, &st) < 0) {
                r = negative_errno();
                cli_error("cannot read the state file %s: %s", show, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
                cli_error("the state file %s must be a regular file owned by you", show);
                return -EPERM;
        }
        if (st.st_mode & 077) {
                cli_error("the state file %s is accessible by others (mode %03o): it holds a private key; "
                          "run chmod 600 on it",
                          show, (unsigned) (st.st_mode & 0777));
                return -EPERM;
        }
        char *text = sodium_malloc(STATE_MAX + 1);
        if (!text)
                return -ENOMEM;
        ssize_t n = read_full(fd, text, STATE_MAX + 1);
        if (n < 0 || (size_t) n > STATE_MAX) {
                sodium_free(text);
                cli_error("cannot read the state file %s: %s", show, n < 0 ? strerror((int) -n) : "too large");
                return n < 0 ? (int) n : -EFBIG;
        }
        text[n] = 0;
        r = memchr(text, 0, (size_t) n) ? -EINVAL : state_parse(text, ret);
        sodium_free(text); /* wipes it */
        if (r == -EINVAL)
                cli_error("the state file %s is not a coffre witness state", show);
        return r;
}

int witness_state_save(const char *path, const struct witness_state *s) {
        _cleanup_free_ char *show = cli_escape(path);
        struct buf b;
        char root[45];
        int r;

        buf_init(&b, STATE_MAX);
        r = buf_reserve(&b, 4096); /* one allocation: the key is never left behind by a realloc */
        if (r >= 0)
                r = buf_append_str(&b, STATE_MAGIC "\n");
        if (r >= 0 && s->skey)
                r = buf_printf(&b, "key %s\n", s->skey);
        if (r >= 0 && s->log_vkey)
                r = buf_printf(&b, "log-key %s\n", s->log_vkey);
        if (r >= 0 && s->have_checkpoint) {
                audit_cli_hash_b64(&s->root, root);
                r = buf_printf(&b, "checkpoint %" PRIu64 " %s\n", s->size, root);
        }
        if (r >= 0)
                r = write_file_atomic(path, b.data, b.len, 0600, 0);
        buf_free_secure(&b);
        if (r < 0)
                cli_error("cannot write the state file %s: %s", show ? show : "?", strerror(-r));
        return r;
}

/* ---- fetching texts (shared with cmd_audit.c) ---- */

#define VKEY_FILE_MAX 4096u

int audit_cli_load_vkey_file(const char *path, char **ret_vkey) {
        _cleanup_free_ char *show = cli_escape(path);
        struct buf b;
        int r = read_file(path, VKEY_FILE_MAX, &b);
        if (r < 0) {
                cli_error("cannot read the log key %s: %s", show ? show : "?", strerror(-r));
                return r;
        }
        while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' '))
                b.len--;
        char *s = buf_steal(&b);
        if (!s)
                return -ENOMEM;
        struct note_verifier *v = NULL;
        if (strlen(s) == 0 || note_verifier_from_vkey(s, &v) < 0) {
                cli_error("%s does not hold a log verifier key (C2SP vkey)", show ? show : "?");
                free(s);
                return -EINVAL;
        }
        note_verifier_free(v);
        *ret_vkey = s;
        return 0;
}

struct text_sink {
        struct buf b;
};

static int text_sink(const void *data, size_t n, void *userdata) {
        struct text_sink *s = userdata;
        int r = buf_append(&s->b, data, n);
        if (r < 0)
                cli_error("the server's answer is too large");
        return r;
}

int audit_cli_fetch_text(struct client *c, const char *path, size_t max, char **ret) {
        struct text_sink s;
        buf_init(&s.b, max);
        int r = client_download(c, path, text_sink, &s, NULL, NULL);
        if (r < 0) {
                buf_free(&s.b);
                return r;
        }
        if (memchr(s.b.data, 0, s.b.len)) {
                buf_free(&s.b);
                cli_error("the server's answer to %s is not text", path);
                return -EPROTO;
        }
        char *t = buf_steal(&s.b);
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

/* ---- witness ---- */

/* A key name for this host: "witness-<hostname>", reduced to what key names allow. */
static int default_name(char *out, size_t n) {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) < 0 || !host[0])
                snprintf(host, sizeof host, "localhost");
        for (char *p = host; *p; p++)
                if (*p == '+' || (unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f)
                        *p = '-';
        snprintf(out, n, "witness-%s", host);
        return note_name_is_valid(out) ? 0 : -EINVAL;
}

/* Loads the state, creating it (with a new cosigning key) when missing. */
static int state_open(const char *path, const char *name, struct witness_state *ret) {
        _cleanup_(witness_state_clear) struct witness_state s = {};
        char dname[300];
        int r = witness_state_load(path, &s);
        if (r < 0 && r != -ENOENT)
                return r;
        if (!s.skey) {
                _cleanup_free_ char *vkey = NULL;
                if (!name) {
                        r = default_name(dname, sizeof dname);
                        if (r < 0) {
                                cli_error("cannot make a key name from the host name: use --name NAME");
                                return r;
                        }
                        name = dname;
                }
                r = note_key_generate_alg(name, NOTE_ALG_COSIGNATURE_V1, &s.skey, &vkey);
                if (r < 0) {
                        cli_error("cannot create the witness key: %s", strerror(-r));
                        return r;
                }
                r = witness_state_save(path, &s);
                if (r < 0)
                        return r;
                fprintf(stderr, "coffre witness: created a new witness key in the state file\n");
        }
        *ret = s;
        s = (struct witness_state){};
        return 0;
}

static int post_cosignature(struct client *c, const char *note, unsigned *ret_added) {
        uint8_t digest[32];
        char hex[65];
        size_t n = strlen(note);
        json_t *o = NULL;
        int r;

        _cleanup_close_ int fd = memfd_create("coffre-cosignature", MFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = write_all(fd, note, n);
        if (r < 0)
                return r;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return negative_errno();
        if (EVP_Digest(note, n, digest, NULL, EVP_sha256(), NULL) != 1)
                return -EIO;
        hex_encode(digest, sizeof digest, hex);
        r = client_upload(c, "/v1/audit/checkpoint/cosignature", fd, n, hex, NULL, &o);
        if (r < 0)
                return r;
        json_t *added = json_object_get(o, "added");
        *ret_added =
                json_is_integer(added) && json_integer_value(added) >= 0 ? (unsigned) json_integer_value(added) : 0;
        json_decref(o);
        return 0;
}

/* One round. -EBADMSG: refused (already printed); other errors: could not check this time. */
static int witness_round(struct client *c, const char *state_path, struct witness_state *st,
                         struct note_verifier *log_key, const struct note_signer *signer, bool json) {
        _cleanup_(audit_cli_checkpoint_clear) struct audit_cli_checkpoint cp = {};
        _cleanup_free_ char *line = NULL;
        struct buf cosigned;
        unsigned added = 0;
        char root[45];
        int r;

        r = audit_cli_fetch_checkpoint(c, log_key, &cp);
        if (r >= 0 && st->have_checkpoint)
                r = audit_cli_check_consistency(c, st->size, &st->root, &cp);
        if (r < 0)
                return r;
        /* Record what is about to be cosigned before the cosignature leaves: after a crash the
         * next round still compares against everything this witness ever signed. */
        if (!st->have_checkpoint || st->size != cp.size) {
                struct witness_state next = *st;
                next.have_checkpoint = true;
                next.size = cp.size;
                next.root = cp.root;
                r = witness_state_save(state_path, &next);
                if (r < 0)
                        return r;
                st->have_checkpoint = true;
                st->size = cp.size;
                st->root = cp.root;
        }
        r = cosignature_sign(signer, cp.body, strlen(cp.body), (uint64_t) time(NULL), &line);
        if (r < 0) {
                cli_error("cannot cosign the checkpoint: %s", strerror(-r));
                return r;
        }
        buf_init(&cosigned, NOTE_MAX_SIZE + NOTE_MAX_SIG_LINE);
        r = buf_append_str(&cosigned, cp.note);
        if (r >= 0)
                r = buf_append_str(&cosigned, line);
        if (r >= 0 && !buf_str(&cosigned))
                r = -ENOMEM;
        if (r >= 0)
                r = post_cosignature(c, buf_str(&cosigned), &added);
        buf_free(&cosigned);
        if (r < 0)
                return r;
        audit_cli_hash_b64(&cp.root, root);
        if (json) {
                json_t *o = json_pack("{s:b,s:I,s:s,s:i}", "cosigned", 1, "size", (json_int_t) cp.size, "root", root,
                                      "added", (int) added);
                r = o ? cmd_print_json_line(o) : -ENOMEM;
                json_decref(o);
                return r;
        }
        printf("cosigned checkpoint size %" PRIu64 " root %s\n", cp.size, root);
        fflush(stdout);
        return 0;
}

static const char witness_help[] =
        "Usage: coffre witness --url URL --state FILE [--log-key FILE] [--once] [--interval SECONDS]\n"
        "       coffre witness --state FILE --print-key [--name NAME]\n"
        "\n"
        "An independent witness of a vault's audit log. Each round it fetches the latest signed\n"
        "checkpoint, checks the log's signature, and refuses a rollback (a smaller tree than seen\n"
        "before) or a fork (another root for a size seen before, or a tree that does not extend\n"
        "the one seen before); otherwise it records the checkpoint in FILE, cosigns it with its own\n"
        "key (c2sp.org/tlog-cosignature) and posts the cosignature to the vault.\n"
        "The state file (created 0600 when missing; refused when others can read it) holds the\n"
        "witness key, the pinned log key and the last checkpoint seen. --print-key prints the\n"
        "witness's verifier key, which the vault's admin adds to coffre.conf as\n"
        "  [audit]\n  witness = <key>\n"
        "\n"
        "Options:\n"
        "      --state FILE      the witness's state file (required)\n"
        "      --log-key FILE    the log's verifier key (DATA/keys/log.vkey of the vault); without\n"
        "                        it, the server's key is trusted the first time and pinned\n"
        "      --once            one round: exit 0 when cosigned, 3 when refused, 1 on errors\n"
        "      --interval SECS   time between rounds (default 60)\n"
        "      --print-key       print the witness's verifier key and exit\n"
        "      --name NAME       key name for a new state (default witness-<hostname>)\n"
        "      --json            one JSON object per round on standard output\n" CMD_COMMON_HELP;

int cmd_witness(int argc, char **argv) {
        static const struct option options[] = {
                { "state", required_argument, NULL, OPT_STATE },
                { "log-key", required_argument, NULL, OPT_LOG_KEY },
                { "once", no_argument, NULL, OPT_ONCE },
                { "interval", required_argument, NULL, OPT_INTERVAL },
                { "print-key", no_argument, NULL, OPT_PRINT_KEY },
                { "name", required_argument, NULL, OPT_NAME },
                { "json", no_argument, NULL, CMD_OPT_JSON },
                CMD_COMMON_OPTIONS,
                {},
        };
        const char *state_path = NULL, *log_key_file = NULL, *name = NULL;
        bool once = false, print_key = false;
        uint64_t interval = DEFAULT_INTERVAL;
        struct cmd_opts o = {};
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(witness_help, stdout);
                        return cmd_finish_stdout();
                } else if (opt == OPT_STATE)
                        state_path = optarg;
                else if (opt == OPT_LOG_KEY)
                        log_key_file = optarg;
                else if (opt == OPT_ONCE)
                        once = true;
                else if (opt == OPT_PRINT_KEY)
                        print_key = true;
                else if (opt == OPT_NAME)
                        name = optarg;
                else if (opt == OPT_INTERVAL) {
                        if (parse_u64(optarg, &interval) < 0 || interval == 0 || interval > 86400)
                                return cmd_usage_error("witness", "--interval wants 1 to 86400 seconds");
                } else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("witness", argv);
        }
        if (optind != argc)
                return cmd_usage_error("witness", "no arguments expected");
        if (!state_path)
                return cmd_usage_error("witness", "--state FILE is required");
        if (name && !note_name_is_valid(name))
                return cmd_usage_error("witness", "--name must be a valid key name (no space, no '+')");

        _cleanup_(witness_state_clear) struct witness_state st = {};
        _cleanup_(note_signer_freep) struct note_signer *signer = NULL;
        r = state_open(state_path, name, &st);
        if (r < 0)
                return cmd_exit_code(r);
        r = note_signer_from_skey(st.skey, &signer);
        if (r < 0) {
                cli_error("the key in the state file is not a valid witness key");
                return CLI_EXIT_FAILURE;
        }
        if (print_key) {
                _cleanup_free_ char *vkey = NULL;
                r = note_signer_vkey(signer, &vkey);
                if (r < 0)
                        return cmd_exit_code(r);
                printf("%s\n", vkey);
                return cmd_finish_stdout();
        }

        _cleanup_(client_freep) struct client *c = NULL;
        _cleanup_(note_verifier_freep) struct note_verifier *log_key = NULL;
        _cleanup_free_ char *vkey = NULL;
        r = cmd_open_client(&o, &c);
        if (r < 0)
                return cmd_exit_code(r);
        if (log_key_file) {
                r = audit_cli_load_vkey_file(log_key_file, &vkey);
                if (r < 0)
                        return cmd_exit_code(r);
                if (st.log_vkey && strcmp(st.log_vkey, vkey) != 0) {
                        cli_error("--log-key differs from the log key pinned in the state file; a witness does "
                                  "not change logs: use another state file");
                        return CLI_EXIT_FAILURE;
                }
        } else if (!st.log_vkey) {
                r = audit_cli_fetch_text(c, "/v1/audit/verifier-key", NOTE_MAX_KEY_TEXT + 2, &vkey);
                if (r < 0)
                        return cmd_exit_code(r);
                vkey[strcspn(vkey, "\r\n")] = 0;
                fprintf(stderr, "coffre witness: warning: trusting the log key the server sent on first use; "
                                "pass --log-key FILE to pin a key you checked\n");
        }
        if (vkey && !st.log_vkey) {
                st.log_vkey = TAKE_PTR(vkey);
                r = witness_state_save(state_path, &st);
                if (r < 0)
                        return cmd_exit_code(r);
        }
        r = note_verifier_from_vkey(st.log_vkey, &log_key);
        if (r < 0) {
                cli_error("the log key is not a valid C2SP verifier key");
                return CLI_EXIT_FAILURE;
        }

        for (;;) {
                r = witness_round(c, state_path, &st, log_key, signer, o.json);
                if (r == -EBADMSG)
                        fprintf(stderr, "coffre witness: refused to cosign: %s\n", audit_cli_take_failure());
                if (once)
                        return r < 0 ? cmd_exit_code(r) : cmd_finish_stdout();
                sleep((unsigned) interval); /* the pace of the rounds, not a synchronisation */
        }
}
