/* cmd_backup.c: `coffre backup init | run | list | verify` and `coffre restore`: encrypted,
 * deduplicated backups of a data directory (which may be served meanwhile) to every destination
 * named in coffre.conf's [backup] section, and the rebuilding of a data directory from them.
 * What goes where and how to restore: docs/operations.md ("Backups"). */
#include "cmd_backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "backup/engine.h"
#include "backup/prune.h"
#include "backup/status.h"
#include "commands.h"
#include "core/config.h"
#include "core/selfsigned.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"
#include "progress.h"
#include "seal/signer.h"
#include "seal/signer_backup.h"

#define MAX_DESTS 8
#define MAX_FROM 8

struct backup_conf {
        struct backup_policy policy;
        char *dest[MAX_DESTS];
        size_t n_dest;
        char *keyring_dest[MAX_DESTS];
        size_t n_keyring;
        struct backup_dest_conf dconf; /* s3_* and object_lock* settings */
};

static void backup_conf_clear(struct backup_conf *c) {
        for (size_t i = 0; i < c->n_dest; i++)
                free(c->dest[i]);
        for (size_t i = 0; i < c->n_keyring; i++)
                free(c->keyring_dest[i]);
        c->n_dest = c->n_keyring = 0;
        backup_dest_conf_clear(&c->dconf);
}

static int conf_handler(void *ud, const char *section, const char *name, const char *value) {
        struct backup_conf *c = ud;

        if (strcmp(section, "backup") != 0)
                return 1;
        if (strcmp(name, "destination") == 0 && c->n_dest < MAX_DESTS)
                return (c->dest[c->n_dest++] = strdup(value)) != NULL;
        if (strcmp(name, "keyring_destination") == 0 && c->n_keyring < MAX_DESTS)
                return (c->keyring_dest[c->n_keyring++] = strdup(value)) != NULL;
        if (strcmp(name, "destination") == 0 || strcmp(name, "keyring_destination") == 0)
                return 0; /* too many */
        if (strcmp(name, "keep_hourly") == 0)
                return backup_parse_duration(value, &c->policy.hourly) == 0;
        if (strcmp(name, "keep_daily") == 0)
                return backup_parse_duration(value, &c->policy.daily) == 0;
        if (strcmp(name, "keep_weekly") == 0)
                return backup_parse_duration(value, &c->policy.weekly) == 0;
        if (strcmp(name, "keyring_retention") == 0)
                return backup_parse_duration(value, &c->policy.keyring) == 0;
        int k = backup_dest_conf_set(&c->dconf, name, value);
        if (k != 0)
                return k > 0;
        return 1; /* settings of later versions (schedule, retention) */
}

static int load_conf(const char *data, struct vault_config *vc, struct backup_conf *bc) {
        _cleanup_free_ char *path = path_join(data, "coffre.conf");
        int r;

        if (!path)
                return -ENOMEM;
        r = vault_config_load(path, vc);
        if (r < 0) {
                cli_error("%s is not a coffre data directory (cannot read coffre.conf)", data);
                return r;
        }
        *bc = (struct backup_conf){};
        backup_policy_default(&bc->policy);
        backup_dest_conf_init(&bc->dconf);
        bc->dconf.base_dir = strdup(data);
        if (!bc->dconf.base_dir)
                return -ENOMEM;
        r = ini_parse(path, conf_handler, bc);
        if (r != 0) {
                backup_conf_clear(bc);
                cli_error("%s/coffre.conf: bad [backup] setting on line %d (at most %d destinations; durations "
                          "like 36h, 7d, 5w, 5y; S3 settings as in docs/operations.md)",
                          data, r, MAX_DESTS);
                return -EINVAL;
        }
        return 0;
}

/* Adds "key = value" to the [backup] section of coffre.conf (made when missing), atomically. */
static int conf_add(const char *data, const char *key, const char *value) {
        _cleanup_free_ char *path = path_join(data, "coffre.conf");
        _cleanup_buf_ struct buf in = {}, out = {};
        const char *text, *sec, *next;
        int r;

        if (!path)
                return -ENOMEM;
        buf_init(&in, 1 << 20);
        buf_init(&out, 1 << 20);
        r = read_file(path, 1 << 20, &in);
        if (r < 0)
                return r;
        text = buf_str(&in);
        if (!text)
                return -ENOMEM;
        sec = strstr(text, "\n[backup]\n");
        if (!sec)
                r = buf_printf(&out, "%s%s[backup]\n%s = %s\n", text,
                               in.len && text[in.len - 1] == '\n' ? "\n" : "\n\n", key, value);
        else {
                next = strstr(sec + 10, "\n[");
                size_t at = next ? (size_t) (next - text) + 1 : in.len;
                r = buf_append(&out, text, at);
                if (r >= 0 && at > 0 && text[at - 1] != '\n')
                        r = buf_append(&out, "\n", 1);
                if (r >= 0)
                        r = buf_printf(&out, "%s = %s\n%s", key, value, text + at);
        }
        if (r < 0)
                return r;
        return write_file_atomic(path, out.data, out.len, 0600, 0);
}

static int read_passphrase(const char *file, char **ret) {
        struct buf b;
        int r;

        buf_init(&b, BACKUP_PASSPHRASE_MAX + 2);
        r = read_file_secret(file, BACKUP_PASSPHRASE_MAX + 2, &b);
        if (r < 0) {
                cli_error("cannot read the passphrase file %s: %s", file, strerror(-r));
                return r;
        }
        while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
                b.len--;
        if (b.len == 0 || b.len > BACKUP_PASSPHRASE_MAX || memchr(b.data, 0, b.len)) {
                buf_free_secure(&b);
                cli_error("the passphrase in %s must be 1 to %u bytes on one line", file, BACKUP_PASSPHRASE_MAX);
                return -EINVAL;
        }
        char *p = sodium_malloc(b.len + 1);
        if (!p) {
                buf_free_secure(&b);
                return -ENOMEM;
        }
        memcpy(p, b.data, b.len);
        p[b.len] = 0;
        buf_free_secure(&b);
        *ret = p;
        return 0;
}

static void free_secret_str(char **p) {
        if (*p)
                sodium_free(*p);
}

static int open_master(const char *data, const struct vault_config *vc, struct master_key **ret) {
        _cleanup_free_ char *path = vc->master_key[0] == '/' ? strdup(vc->master_key) : path_join(data, vc->master_key);
        int r;

        if (!path)
                return -ENOMEM;
        r = master_key_load_file(path, ret);
        if (r < 0)
                cli_error("cannot load the master key %s: %s", path, strerror(-r));
        return r;
}

static const char *dest_error(int r) {
        switch (r) {
        case -EPROTONOSUPPORT:
                return "this build does not support this kind of destination";
        case -EINVAL:
                return "unknown destination scheme or malformed destination (an absolute directory path, "
                       "file:///path or s3://bucket/prefix with valid S3 settings)";
        case -ENOKEY:
                return "no S3 credentials (s3_access_key_id and s3_secret_key_file in [backup] of coffre.conf, or "
                       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)";
        case -ENOENT:
                return "does not exist";
        case -ENOTDIR:
                return "is not a directory";
        default:
                return strerror(-r);
        }
}

static int open_dest(const char *url, bool create, const struct backup_dest_conf *conf, struct backup_dest **ret) {
        int r = backup_dest_open_conf(url, create, conf, ret);
        if (r < 0) {
                _cleanup_free_ char *show = cli_escape(url);
                cli_error("destination %s: %s", show ? show : "?", dest_error(r));
        }
        return r;
}

static const char *repo_error(int r) {
        switch (r) {
        case -ENOENT:
                return "holds no backup repository (run coffre backup init --to it first)";
        case -EKEYREJECTED:
                return "the master key or passphrase does not open this repository";
        case -EBADMSG:
                return "the repository config is damaged or was altered";
        case -EPROTONOSUPPORT:
                return "the repository has a format version this coffre does not know";
        default:
                return strerror(-r);
        }
}

/* ---- coffre backup init ---- */

static int backup_init(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "to", required_argument, NULL, 't' },
                { "passphrase-file", required_argument, NULL, 'p' },
                { "keyring", no_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *data = NULL, *to = NULL, *pfile = NULL;
        _cleanup_(free_secret_str) char *pass = NULL;
        _cleanup_(master_key_freep) struct master_key *m = NULL;
        _cleanup_(backup_repo_freep) struct backup_repo *repo = NULL;
        struct backup_dest *dest = NULL;
        struct vault_config vc;
        struct backup_conf bc = {};
        struct chunker_params cp;
        uint8_t pub[32];
        bool keyring = false;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 't':
                        to = optarg;
                        break;
                case 'p':
                        pfile = optarg;
                        break;
                case 'k':
                        keyring = true;
                        break;
                case 'h':
                        printf("Usage: coffre backup init --data DIR --to DEST [--passphrase-file FILE] [--keyring]\n\n"
                               "Creates a backup repository in DEST (an absolute directory path) and adds it to\n"
                               "[backup] in DIR/coffre.conf (destination = DEST; keyring_destination with\n"
                               "--keyring: that destination then takes the keyring series, kept apart).\n"
                               "Its backup key is wrapped by the vault's master key and, with --passphrase-file,\n"
                               "also by a key derived from the passphrase (Argon2id), so that the repository can\n"
                               "be read without this machine. Creates keys/backup.key, the key the signer\n"
                               "signs snapshot manifests with, on first use.\n");
                        return 0;
                default:
                        fprintf(stderr, "coffre backup init: unknown option\nTry 'coffre backup init --help'.\n");
                        return CLI_EXIT_USAGE;
                }
        if (!data || !to || optind != argc) {
                fprintf(stderr, "coffre backup init: --data DIR and --to DEST are required\n");
                return CLI_EXIT_USAGE;
        }
        if (strpbrk(to, ";#\n")) {
                fprintf(stderr, "coffre backup init: a destination may not contain ';', '#' or a newline\n");
                return CLI_EXIT_USAGE;
        }
        r = load_conf(data, &vc, &bc);
        if (r < 0)
                return CLI_EXIT_FAILURE;
        for (size_t i = 0; i < bc.n_dest; i++)
                if (strcmp(bc.dest[i], to) == 0 && !keyring) {
                        backup_conf_clear(&bc);
                        fprintf(stderr, "coffre backup init: %s is already a destination\n", to);
                        return CLI_EXIT_FAILURE;
                }
        if ((keyring ? bc.n_keyring : bc.n_dest) >= MAX_DESTS) {
                backup_conf_clear(&bc);
                fprintf(stderr, "coffre backup init: at most %d destinations\n", MAX_DESTS);
                return CLI_EXIT_FAILURE;
        }
        r = open_dest(to, true, &bc.dconf, &dest);
        backup_conf_clear(&bc);
        if (r < 0)
                return r == -EINVAL || r == -EPROTONOSUPPORT ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
        if (pfile && read_passphrase(pfile, &pass) < 0) {
                backup_dest_free(dest);
                return CLI_EXIT_FAILURE;
        }
        if (open_master(data, &vc, &m) < 0) {
                backup_dest_free(dest);
                return CLI_EXIT_FAILURE;
        }
        _cleanup_free_ char *keys = path_join(data, "keys");
        r = keys ? signer_backup_key_init(keys) : -ENOMEM;
        if (r < 0 && r != -EEXIST) {
                backup_dest_free(dest);
                cli_error("cannot create %s/keys/backup.key: %s", data, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        r = signer_backup_pub(keys, pub);
        if (r < 0) {
                backup_dest_free(dest);
                cli_error("cannot read %s/keys/backup.pub: %s", data, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        chunker_params_default(&cp);
        backup_dest_error_clear();
        r = backup_repo_create(dest, m, pass, pub, vc.vault_id, vc.audit_origin, &cp, &repo);
        if (r == -EEXIST) {
                cli_error("%s already holds a backup repository: nothing changed", to);
                return CLI_EXIT_FAILURE;
        }
        if (r < 0) {
                cli_error("cannot create the repository in %s: %s", to,
                          backup_dest_last_error() ? backup_dest_last_error() : strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        _cleanup_free_ char *sdir = path_join(data, BACKUP_STATUS_DIR);
        r = sdir ? mkdir_p(sdir, 0700) : -ENOMEM; /* before the server starts: its sandbox lets it read there */
        if (r < 0) {
                cli_error("cannot create %s: %s", sdir ? sdir : data, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        r = conf_add(data, keyring ? "keyring_destination" : "destination", to);
        if (r < 0) {
                cli_error("cannot record the destination in %s/coffre.conf: %s", data, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        printf("Created backup repository %s in %s%s\n", repo->id_hex, to, keyring ? " (keyring series)" : "");
        return CLI_EXIT_OK;
}

/* ---- coffre backup run ---- */

struct progress_ud {
        struct progress *p;
};

static void on_progress(uint64_t done, void *ud) {
        struct progress_ud *u = ud;
        progress_update(u->p, done);
}

struct run_report {
        const char *dest;
        bool json;
        json_t *warnings;
};

static void run_damage(const char *object, const char *what, void *ud) {
        struct run_report *rr = ud;
        if (rr->json)
                json_array_append_new(rr->warnings, json_pack("{s:s,s:s}", "object", object, "problem", what));
        else
                fprintf(stderr, "coffre: warning: %s: %s: %s\n", rr->dest, object, what);
}

static int backup_run_cmd(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *data = NULL;
        bool json = false;
        struct vault_config vc;
        struct backup_conf bc = {};
        _cleanup_(master_key_freep) struct master_key *m = NULL;
        _cleanup_(signer_stopp) struct signer *sg = NULL;
        _cleanup_(backup_stage_freep) struct backup_stage *stage = NULL;
        const char *all[2 * MAX_DESTS];
        unsigned series[2 * MAX_DESTS];
        size_t n_all = 0;
        unsigned failed = 0;
        uint8_t run_id[16];
        json_t *out = NULL;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        printf("Usage: coffre backup run --data DIR [--json]\n\n"
                               "Takes a consistent snapshot of DIR (the server may be running) and writes it to\n"
                               "every destination in [backup] of DIR/coffre.conf: the data series (metadata,\n"
                               "audit log up to a signed checkpoint, objects, configuration) and the keyring\n"
                               "series (to keyring_destination when set, else to the same destinations).\n"
                               "One destination failing does not stop the others. Exit 1 if any failed.\n");
                        return 0;
                default:
                        fprintf(stderr, "coffre backup run: unknown option\nTry 'coffre backup run --help'.\n");
                        return CLI_EXIT_USAGE;
                }
        if (!data || optind != argc) {
                fprintf(stderr, "coffre backup run: --data DIR is required\n");
                return CLI_EXIT_USAGE;
        }
        if (load_conf(data, &vc, &bc) < 0)
                return CLI_EXIT_FAILURE;
        for (size_t i = 0; i < bc.n_dest; i++) {
                all[n_all] = bc.dest[i];
                series[n_all++] = BACKUP_RUN_DATA | (bc.n_keyring ? 0 : BACKUP_RUN_KEYRING);
        }
        for (size_t i = 0; i < bc.n_keyring; i++) {
                size_t j;
                for (j = 0; j < n_all && strcmp(all[j], bc.keyring_dest[i]) != 0; j++)
                        ;
                if (j == n_all) {
                        all[n_all] = bc.keyring_dest[i];
                        series[n_all++] = 0;
                }
                series[j] |= BACKUP_RUN_KEYRING;
        }
        if (bc.n_dest == 0) {
                backup_conf_clear(&bc);
                cli_error("no backup destination in %s/coffre.conf: add one with coffre backup init --to DEST", data);
                return CLI_EXIT_FAILURE;
        }
        if (open_master(data, &vc, &m) < 0) {
                backup_conf_clear(&bc);
                return CLI_EXIT_FAILURE;
        }
        _cleanup_free_ char *keys = path_join(data, "keys");
        r = keys ? signer_start(keys, vc.audit_origin, &sg) : -ENOMEM;
        if (r < 0) {
                backup_conf_clear(&bc);
                cli_error("cannot start the signer for %s/keys: %s", data, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        const char *tmp = getenv("TMPDIR");
        r = backup_stage_take(data, tmp && tmp[0] == '/' ? tmp : "/var/tmp", &stage);
        if (r < 0) {
                backup_conf_clear(&bc);
                cli_error("cannot take a consistent snapshot of %s: %s", data, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        randombytes_buf(run_id, sizeof run_id);
        struct backup_status_entry st[2 * MAX_DESTS] = {};
        out = json_array();
        for (size_t i = 0; i < n_all; i++) {
                _cleanup_(backup_repo_freep) struct backup_repo *repo = NULL;
                _cleanup_(progress_freep) struct progress *p = NULL;
                struct backup_run_result res = {};
                struct backup_dest *dest = NULL;
                struct run_report rr = { .dest = all[i], .json = json, .warnings = json_array() };
                struct progress_ud pu;
                struct timespec t0, t1;
                char sid[BACKUP_ID_HEX + 1] = "", kid[BACKUP_ID_HEX + 1] = "";
                const char *why = NULL;
                char whybuf[600];
                _cleanup_free_ char *show = cli_escape(all[i]);

                backup_dest_error_clear();

                clock_gettime(CLOCK_MONOTONIC, &t0);
                r = backup_dest_open_conf(all[i], false, &bc.dconf, &dest);
                if (r < 0)
                        why = dest_error(r);
                if (r == 0) {
                        r = backup_repo_open(dest, m, NULL, &repo);
                        if (r < 0)
                                why = backup_dest_last_error()
                                        ? snprintf(whybuf, sizeof whybuf, "%s", backup_dest_last_error()),
                                whybuf : repo_error(r);
                }
                if (r == 0 && strcmp(repo->vault_id, vc.vault_id) != 0) {
                        r = -EXDEV;
                        why = "the repository belongs to another vault";
                }
                char lock[64] = "";
                if (r == 0) {
                        r = backup_lock_run(repo, run_id, lock, sizeof lock);
                        if (r < 0) {
                                why = r == -EBUSY ? "a prune is running on this destination (locks/prune)"
                                                  : backup_dest_strerror(dest, r);
                                lock[0] = 0;
                        }
                }
                if (r == 0) {
                        r = backup_repo_load_index(repo, run_damage, &rr);
                        if (r < 0)
                                why = backup_dest_strerror(dest, r);
                }
                if (r == 0) {
                        uint64_t total = 0;
                        for (unsigned k = 1; k < 3; k++)
                                if (series[i] & (1u << k))
                                        total += stage->bytes[k];
                        char label[64];
                        snprintf(label, sizeof label, "backup %zu/%zu", i + 1, n_all);
                        if (progress_new(label, total, !json, &p) < 0)
                                p = NULL;
                        pu.p = p;
                        r = backup_run(repo, stage, sg, series[i], run_id, on_progress, &pu, &res);
                        progress_finish(p);
                        if (r == -ENOSPC)
                                why = "the destination is full (no space left on device); what was written is "
                                      "harmless and the next run reuses it";
                        else if (r < 0)
                                why = backup_dest_strerror(dest, r);
                }
                if (lock[0])
                        backup_unlock(repo, lock);
                clock_gettime(CLOCK_MONOTONIC, &t1);
                double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
                if (r == 0) {
                        if (series[i] & BACKUP_RUN_DATA)
                                backup_id_hex(&res.snapshot, sid);
                        if (series[i] & BACKUP_RUN_KEYRING)
                                backup_id_hex(&res.keyring_snapshot, kid);
                }
                if (json)
                        json_array_append_new(
                                out,
                                r == 0 ? json_pack("{s:s,s:b,s:s,s:s,s:I,s:I,s:I,s:I,s:f,s:o}", "destination", all[i],
                                                   "ok", 1, "snapshot", sid, "keyring_snapshot", kid, "files",
                                                   (json_int_t) res.files, "bytes", (json_int_t) res.bytes,
                                                   "added_bytes", (json_int_t) res.added, "new_blobs",
                                                   (json_int_t) res.blobs_new, "seconds", secs, "warnings", rr.warnings)
                                       : json_pack("{s:s,s:b,s:s,s:o}", "destination", all[i], "ok", 0, "error", why,
                                                   "warnings", rr.warnings));
                else {
                        json_decref(rr.warnings);
                        if (r == 0)
                                printf("%s: ok: snapshot %.16s%s%.16s, %llu files, %llu bytes read, %llu bytes "
                                       "added, %.1f s\n",
                                       show ? show : "?", sid[0] ? sid : "-", kid[0] ? ", keyring " : "", kid,
                                       (unsigned long long) res.files, (unsigned long long) res.bytes,
                                       (unsigned long long) res.added, secs);
                        else
                                fprintf(stderr, "coffre: backup to %s failed: %s\n", show ? show : "?", why);
                }
                if (r < 0) {
                        failed++;
                        log_warn("backup to a destination failed: %s", why);
                }
                st[i] = (struct backup_status_entry){ .destination = all[i],
                                                      .ok = r == 0,
                                                      .time = (int64_t) time(NULL),
                                                      .seconds = secs,
                                                      .bytes = res.bytes,
                                                      .added = res.added };
        }
        r = backup_status_record(data, st, n_all);
        if (r < 0)
                cli_error("cannot record the results in %s/%s: %s", data, BACKUP_STATUS_FILE, strerror(-r));
        backup_conf_clear(&bc);
        if (json) {
                json_t *o = json_pack("{s:o,s:I,s:s}", "destinations", out, "audit_size",
                                      (json_int_t) stage->audit_size, "result", failed ? "failed" : "ok");
                json_dumpf(o, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
                json_decref(o);
        } else
                json_decref(out);
        if (fflush(stdout) != 0)
                return CLI_EXIT_FAILURE;
        return failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

/* ---- opening repositories for list / verify / restore ---- */

struct open_opts {
        const char *data;
        const char *from[MAX_FROM];
        size_t n_from;
        const char *master_file;
        const char *pass_file;
};

/* The repositories named by --from, or else the configured destinations. */
static int open_repos(const struct open_opts *o, struct backup_repo **repos, const char **names, size_t *ret_n) {
        _cleanup_(master_key_freep) struct master_key *m = NULL;
        _cleanup_(free_secret_str) char *pass = NULL;
        struct backup_conf bc = {};
        struct vault_config vc;
        const char *list[MAX_FROM + 2 * MAX_DESTS];
        size_t n = 0;
        int r;

        if (o->data) {
                if (load_conf(o->data, &vc, &bc) < 0)
                        return -EINVAL;
                if (!o->master_file && !o->pass_file && open_master(o->data, &vc, &m) < 0) {
                        backup_conf_clear(&bc);
                        return -EINVAL;
                }
        }
        if (o->master_file) {
                r = master_key_load_file(o->master_file, &m);
                if (r < 0) {
                        backup_conf_clear(&bc);
                        cli_error("cannot load the master key %s: %s", o->master_file, strerror(-r));
                        return r;
                }
        } else if (o->pass_file && read_passphrase(o->pass_file, &pass) < 0) {
                backup_conf_clear(&bc);
                return -EINVAL;
        }
        for (size_t i = 0; i < o->n_from; i++)
                list[n++] = o->from[i];
        if (n == 0) {
                for (size_t i = 0; i < bc.n_dest; i++)
                        list[n++] = bc.dest[i];
                for (size_t i = 0; i < bc.n_keyring; i++)
                        list[n++] = bc.keyring_dest[i];
        }
        if (n == 0) {
                backup_conf_clear(&bc);
                cli_error("no destination: give --from DEST or configure [backup] destination");
                return -ENOENT;
        }
        for (size_t i = 0; i < n; i++) {
                struct backup_dest *d = NULL;
                _cleanup_free_ char *show = cli_escape(list[i]);
                names[i] = o->n_from ? list[i] : NULL;
                r = backup_dest_open_conf(list[i], false, &bc.dconf, &d);
                if (r < 0) {
                        cli_error("destination %s: %s", show ? show : "?", dest_error(r));
                        repos[i] = NULL;
                        continue;
                }
                backup_dest_error_clear();
                r = backup_repo_open(d, m, pass, &repos[i]);
                if (r < 0) {
                        cli_error("destination %s: %s", show ? show : "?",
                                  backup_dest_last_error() ? backup_dest_last_error() : repo_error(r));
                        repos[i] = NULL;
                }
        }
        /* names from the config die with bc: keep copies in the repos (their URL) */
        for (size_t i = 0; i < n; i++)
                if (repos[i])
                        names[i] = repos[i]->dest->url;
                else if (!o->n_from)
                        names[i] = "(configured destination)";
        backup_conf_clear(&bc);
        *ret_n = n;
        return 0;
}

static int parse_open_opt(int c, struct open_opts *o) {
        switch (c) {
        case 'd':
                o->data = optarg;
                return 1;
        case 'f':
                if (o->n_from >= MAX_FROM)
                        return -1;
                o->from[o->n_from++] = optarg;
                return 1;
        case 'm':
                o->master_file = optarg;
                return 1;
        case 'p':
                o->pass_file = optarg;
                return 1;
        }
        return 0;
}

#define OPEN_OPTIONS                                                                                                 \
        { "data", required_argument, NULL, 'd' }, { "from", required_argument, NULL, 'f' },                          \
                { "master-key", required_argument, NULL, 'm' }, { "passphrase-file", required_argument, NULL, 'p' }, \
                { "json", no_argument, NULL, 'j' }, {                                                                \
                "help", no_argument, NULL, 'h'                                                                       \
        }

static const char *series_name(enum backup_series s) {
        return s == BACKUP_SERIES_KEYRING ? "keyring" : "data";
}

static void fmt_time(int64_t t, char *out, size_t n) {
        time_t tt = (time_t) t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(out, n, "%lld", (long long) t);
}

/* ---- coffre backup list ---- */

struct collect {
        json_t *problems;
        const char *dest;
        bool json;
        unsigned count;
};

static void collect_problem(const char *object, const char *what, void *ud) {
        struct collect *c = ud;
        bool note = strncmp(what, "note:", 5) == 0;
        if (!note)
                c->count++;
        if (c->json)
                json_array_append_new(c->problems, json_pack("{s:s,s:s,s:s}", "destination", c->dest, "object", object,
                                                             "problem", what));
        else
                printf("%s: %s: %s\n", c->dest, object, what);
}

static int backup_list(int argc, char **argv) {
        static const struct option opts[] = { OPEN_OPTIONS, {} };
        struct open_opts o = {};
        struct backup_repo *repos[MAX_FROM + 2 * MAX_DESTS] = { NULL };
        const char *names[MAX_FROM + 2 * MAX_DESTS];
        size_t n = 0;
        bool json = false;
        int c, rc = CLI_EXIT_OK;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                int k = parse_open_opt(c, &o);
                if (k > 0)
                        continue;
                if (c == 'j')
                        json = true;
                else if (c == 'h') {
                        printf("Usage: coffre backup list [--data DIR] [--from DEST]... [--master-key FILE | "
                               "--passphrase-file FILE] [--json]\n\n"
                               "Lists the snapshots of each destination (those of DIR's [backup] when no --from),\n"
                               "each checked (signature, body); snapshots that do not check are named as such.\n");
                        return 0;
                } else {
                        fprintf(stderr, "coffre backup list: bad option\nTry 'coffre backup list --help'.\n");
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind != argc || (!o.data && !o.n_from) || (!o.data && !o.master_file && !o.pass_file)) {
                fprintf(stderr, "coffre backup list: --data DIR, or --from DEST with --master-key or "
                                "--passphrase-file, is required\n");
                return CLI_EXIT_USAGE;
        }
        if (open_repos(&o, repos, names, &n) < 0)
                return CLI_EXIT_FAILURE;
        json_t *out = json_array();
        int64_t now = (int64_t) time(NULL);
        for (size_t i = 0; i < n; i++) {
                struct backup_snapshot *s = NULL;
                size_t ns = 0;
                struct collect col = { .problems = json_array(), .dest = names[i], .json = json };
                json_t *list = json_array();

                if (!repos[i]) {
                        rc = CLI_EXIT_FAILURE;
                        json_decref(col.problems);
                        json_decref(list);
                        continue;
                }
                if (backup_snapshots(repos[i], collect_problem, &col, &s, &ns) < 0) {
                        cli_error("%s: cannot list the snapshots", names[i]);
                        rc = CLI_EXIT_FAILURE;
                }
                if (!json)
                        printf("%s: %zu snapshots\n", names[i], ns);
                for (size_t j = 0; j < ns; j++) {
                        char id[BACKUP_ID_HEX + 1], t[32];
                        const char *dp = backup_snapshot_date_problem(&s[j], now);
                        json_t *files = json_object_get(s[j].body, "files");
                        backup_id_hex(&s[j].id, id);
                        fmt_time(s[j].time, t, sizeof t);
                        if (json)
                                json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s?}", "id", id,
                                                                      "series", series_name(s[j].series), "time", t,
                                                                      "unix_time", (json_int_t) s[j].time, "audit_size",
                                                                      (json_int_t) s[j].audit_size, "files",
                                                                      (json_int_t) json_array_size(files),
                                                                      "date_problem", dp));
                        else
                                printf("  %s  %-7s  %s  audit size %llu  %zu files%s%s\n", id, series_name(s[j].series),
                                       t, (unsigned long long) s[j].audit_size, json_array_size(files),
                                       dp ? "  FLAGGED: " : "", dp ? dp : "");
                }
                if (json)
                        json_array_append_new(out, json_pack("{s:s,s:o,s:o}", "destination", names[i], "snapshots",
                                                             list, "problems", col.problems));
                else {
                        json_decref(list);
                        json_decref(col.problems);
                }
                backup_snapshots_free(s, ns);
                backup_repo_free(repos[i]);
        }
        if (json) {
                json_dumpf(out, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
        }
        json_decref(out);
        return fflush(stdout) == 0 ? rc : CLI_EXIT_FAILURE;
}

/* ---- coffre backup verify ---- */

static int backup_verify_cmd(int argc, char **argv) {
        static const struct option opts[] = { OPEN_OPTIONS, { "read-data", no_argument, NULL, 'r' }, {} };
        struct open_opts o = {};
        struct backup_repo *repos[MAX_FROM + 2 * MAX_DESTS] = { NULL };
        const char *names[MAX_FROM + 2 * MAX_DESTS];
        size_t n = 0;
        bool json = false, read_data = false;
        unsigned problems = 0, unusable = 0;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                int k = parse_open_opt(c, &o);
                if (k > 0)
                        continue;
                if (c == 'j')
                        json = true;
                else if (c == 'r')
                        read_data = true;
                else if (c == 'h') {
                        printf("Usage: coffre backup verify [--data DIR] [--from DEST]... [--master-key FILE | "
                               "--passphrase-file FILE] [--read-data] [--json]\n\n"
                               "Checks each destination: its config, every index file, that every pack the\n"
                               "index names is there (--read-data: reads every pack back and opens every blob),\n"
                               "every snapshot's signature, body and date, and that every chunk a snapshot lists\n"
                               "is in an intact pack. Names each problem. Changes nothing.\n"
                               "Exit status: 0 all intact, 3 damage found, 1 a destination could not be read.\n");
                        return 0;
                } else {
                        fprintf(stderr, "coffre backup verify: bad option\nTry 'coffre backup verify --help'.\n");
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind != argc || (!o.data && !o.n_from) || (!o.data && !o.master_file && !o.pass_file)) {
                fprintf(stderr, "coffre backup verify: --data DIR, or --from DEST with --master-key or "
                                "--passphrase-file, is required\n");
                return CLI_EXIT_USAGE;
        }
        if (open_repos(&o, repos, names, &n) < 0)
                return CLI_EXIT_FAILURE;
        json_t *out = json_array();
        for (size_t i = 0; i < n; i++) {
                struct collect col = { .problems = json_array(), .dest = names[i], .json = json };
                struct backup_verify_result res = {};
                int r;

                if (!repos[i]) {
                        unusable++;
                        json_decref(col.problems);
                        continue;
                }
                r = backup_verify(repos[i], read_data, collect_problem, &col, &res);
                if (r < 0) {
                        cli_error("%s: cannot verify: %s", names[i], strerror(-r));
                        unusable++;
                }
                problems += res.problems;
                if (json)
                        json_array_append_new(out,
                                              json_pack("{s:s,s:b,s:i,s:i,s:o}", "destination", names[i], "ok",
                                                        r == 0 && res.problems == 0, "snapshots", (int) res.snapshots,
                                                        "packs", (int) res.packs, "problems", col.problems));
                else {
                        json_decref(col.problems);
                        printf("%s: %s: %u snapshots, %u packs%s, %u problems\n", names[i],
                               r == 0 && res.problems == 0 ? "intact" : "DAMAGED", res.snapshots, res.packs,
                               read_data ? " read back" : "", res.problems);
                }
                backup_repo_free(repos[i]);
        }
        if (json) {
                json_dumpf(out, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
        }
        json_decref(out);
        if (fflush(stdout) != 0)
                return CLI_EXIT_FAILURE;
        return problems ? CLI_EXIT_VERIFY : unusable ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

/* ---- coffre backup prune ---- */

static int backup_prune_cmd(int argc, char **argv) {
        static const struct option opts[] = {
                OPEN_OPTIONS, { "dry-run", no_argument, NULL, 'n' }, { "now", required_argument, NULL, 'N' }, {}
        };
        struct open_opts o = {};
        struct backup_repo *repos[MAX_FROM + 2 * MAX_DESTS] = { NULL };
        const char *names[MAX_FROM + 2 * MAX_DESTS];
        struct backup_conf bc = {};
        struct vault_config vc;
        size_t n = 0;
        bool json = false, dry = false, now_given = false;
        int64_t now = (int64_t) time(NULL);
        unsigned failed = 0;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                int k = parse_open_opt(c, &o);
                if (k > 0)
                        continue;
                if (c == 'j')
                        json = true;
                else if (c == 'n')
                        dry = true;
                else if (c == 'N') {
                        char *end = NULL;
                        errno = 0;
                        long long t = strtoll(optarg, &end, 10);
                        if (errno || !end || *end || t <= 0) {
                                fprintf(stderr, "coffre backup prune: --now takes a Unix time\n");
                                return CLI_EXIT_USAGE;
                        }
                        now = (int64_t) t;
                        now_given = true;
                } else if (c == 'h') {
                        printf("Usage: coffre backup prune (--data DIR | --from DEST... --master-key FILE |\n"
                               "                            --passphrase-file FILE) [--dry-run [--now UNIXTIME]] [--json]\n\n"
                               "Applies the retention of [backup] in DIR/coffre.conf (keep_hourly = 7d,\n"
                               "keep_daily = 35d, keep_weekly = 5y, keyring_retention = 90d by default): of the data\n"
                               "series the newest snapshot of each hour, day and week within those windows is kept,\n"
                               "of the keyring series every snapshot younger than its retention; the newest of each\n"
                               "series always. A snapshot whose date is not trusted (in the future, or disagreeing\n"
                               "with the destination's own time of the file) is kept and counts for nothing.\n"
                               "Then every pack nothing needs is deleted; keyring packs partly needed are rewritten\n"
                               "so that expired keys leave no copy. --dry-run shows what would go and why (--now:\n"
                               "as of another time). Refused while a backup run holds the destination.\n");
                        return 0;
                } else {
                        fprintf(stderr, "coffre backup prune: bad option\nTry 'coffre backup prune --help'.\n");
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind != argc || (!o.data && !o.n_from) || (!o.data && !o.master_file && !o.pass_file)) {
                fprintf(stderr, "coffre backup prune: --data DIR, or --from DEST with --master-key or "
                                "--passphrase-file, is required\n");
                return CLI_EXIT_USAGE;
        }
        if (!dry && now_given) {
                fprintf(stderr, "coffre backup prune: --now only goes with --dry-run\n");
                return CLI_EXIT_USAGE;
        }
        backup_policy_default(&bc.policy);
        if (o.data) {
                if (load_conf(o.data, &vc, &bc) < 0)
                        return CLI_EXIT_FAILURE;
                backup_conf_clear(&bc);
        }
        if (open_repos(&o, repos, names, &n) < 0)
                return CLI_EXIT_FAILURE;
        json_t *out = json_array();
        for (size_t i = 0; i < n; i++) {
                struct backup_prune_plan plan = {};
                struct backup_prune_result res = {};
                struct collect col = { .problems = json_array(), .dest = names[i], .json = json };
                json_t *items = json_array();
                const char *why = NULL;
                int r;

                if (!repos[i]) {
                        failed++;
                        json_decref(col.problems);
                        json_decref(items);
                        continue;
                }
                r = backup_prune_plan(repos[i], &bc.policy, now, collect_problem, &col, &plan);
                if (r < 0)
                        why = strerror(-r);
                for (size_t j = 0; r == 0 && j < plan.n; j++) {
                        char id[BACKUP_ID_HEX + 1], t[32];
                        backup_id_hex(&plan.items[j].id, id);
                        fmt_time(plan.items[j].time, t, sizeof t);
                        if (json)
                                json_array_append_new(items,
                                                      json_pack("{s:s,s:s,s:s,s:b,s:s}", "id", id, "series",
                                                                series_name(plan.items[j].series), "time", t, "keep",
                                                                plan.items[j].keep, "why", plan.items[j].why));
                        else
                                printf("%s: %s %.16s %-7s %s: %s\n", names[i], plan.items[j].keep ? "keep" : "drop", id,
                                       series_name(plan.items[j].series), t, plan.items[j].why);
                }
                if (r == 0 && !dry) {
                        r = backup_prune_apply(repos[i], &plan, now, &res);
                        why = r == -EBUSY      ? "a backup run holds this destination (locks/run-*): try later"
                              : r == -EALREADY ? "another prune holds this destination (or one was killed: remove "
                                                 "locks/prune once none runs)"
                              : r == -EBADMSG  ? "an index file is damaged: nothing deleted (see coffre backup verify)"
                              : r < 0          ? strerror(-r)
                                               : NULL;
                }
                if (r < 0) {
                        failed++;
                        if (!json)
                                fprintf(stderr, "coffre: prune of %s failed: %s\n", names[i], why);
                } else if (!json && !dry)
                        printf("%s: %u snapshots and %u packs deleted (%llu bytes), %u packs rewritten\n", names[i],
                               res.snapshots_deleted, res.packs_deleted, (unsigned long long) res.bytes_freed,
                               res.packs_written);
                if (json)
                        json_array_append_new(
                                out,
                                json_pack("{s:s,s:b,s:s?,s:b,s:o,s:o,s:i,s:i,s:I,s:i}", "destination", names[i], "ok",
                                          r == 0, "error", why, "dry_run", dry, "snapshots", items, "problems",
                                          col.problems, "snapshots_deleted", (int) res.snapshots_deleted,
                                          "packs_deleted", (int) res.packs_deleted, "bytes_freed",
                                          (json_int_t) res.bytes_freed, "packs_written", (int) res.packs_written));
                else {
                        json_decref(items);
                        json_decref(col.problems);
                }
                backup_prune_plan_free(&plan);
                backup_repo_free(repos[i]);
        }
        if (json) {
                json_dumpf(out, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
        }
        json_decref(out);
        if (fflush(stdout) != 0)
                return CLI_EXIT_FAILURE;
        return failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

int cmd_backup(int argc, char **argv) {
        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                FILE *f = argc < 2 ? stderr : stdout;
                fprintf(f, "Usage: coffre backup init|run|list|verify|prune ... (coffre backup SUB --help)\n"
                           "       coffre restore --from DEST --data NEWDIR (coffre restore --help)\n");
                return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        }
        if (strcmp(argv[1], "init") == 0)
                return backup_init(argc - 1, argv + 1);
        if (strcmp(argv[1], "run") == 0)
                return backup_run_cmd(argc - 1, argv + 1);
        if (strcmp(argv[1], "list") == 0)
                return backup_list(argc - 1, argv + 1);
        if (strcmp(argv[1], "verify") == 0)
                return backup_verify_cmd(argc - 1, argv + 1);
        if (strcmp(argv[1], "prune") == 0)
                return backup_prune_cmd(argc - 1, argv + 1);
        fprintf(stderr, "coffre backup: unknown subcommand '%s'\n", argv[1]);
        return CLI_EXIT_USAGE;
}

/* ---- coffre restore ---- */

static bool restore_name_ok(const char *n) {
        if (!n || !*n || n[0] == '/' || strlen(n) > 256)
                return false;
        for (const char *p = n; *p; p++) {
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '/' || *p == '.' || *p == '-' ||
                      *p == '_'))
                        return false;
                if ((p == n || p[-1] == '/') && (*p == '/' || *p == '.'))
                        return false; /* empty component, "..", hidden */
        }
        return true;
}

static bool dir_empty_or_absent(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        bool empty = true;

        if (!d)
                return errno == ENOENT;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                        empty = false;
                        break;
                }
        closedir(d);
        return empty;
}

static struct backup_snapshot *find_run(struct backup_snapshot *s, size_t n, const char *run,
                                        enum backup_series series) {
        for (size_t i = n; i-- > 0;) {
                const char *r = json_string_value(json_object_get(s[i].body, "run"));
                if (s[i].series == series && r && strcmp(r, run) == 0)
                        return &s[i];
        }
        return NULL;
}

static json_t *find_file(struct backup_snapshot *s, const char *name) {
        json_t *files = json_object_get(s->body, "files"), *f;
        size_t i;
        json_array_foreach(files, i, f) {
                const char *n = json_string_value(json_object_get(f, "name"));
                if (n && strcmp(n, name) == 0)
                        return f;
        }
        return NULL;
}

struct restore_src {
        struct backup_repo *repo;
        const char *name;
        struct backup_snapshot *snaps;
        size_t n;
};

/* Restores every file of snapshot chosen (of source 0's series) into target, taking each file
 * from the first source whose snapshot of the same run restores it intact. */
static int restore_series(struct restore_src *src, size_t n_src, struct backup_snapshot *chosen, size_t chosen_src,
                          const char *target, bool json, json_t *fallbacks, uint64_t *ret_files, uint64_t *ret_bytes) {
        json_t *files = json_object_get(chosen->body, "files"), *f;
        const char *run = json_string_value(json_object_get(chosen->body, "run"));
        size_t i;

        json_array_foreach(files, i, f) {
                const char *name = json_string_value(json_object_get(f, "name"));
                json_int_t mode = json_integer_value(json_object_get(f, "mode"));
                const char *what = "not in any destination's snapshot of this run";
                bool done = false;

                if (!restore_name_ok(name)) {
                        cli_error("snapshot entry %zu has an unsafe name: refused", i);
                        return -EBADMSG;
                }
                _cleanup_free_ char *path = path_join(target, name);
                if (!path)
                        return -ENOMEM;
                char *slash = strrchr(path, '/');
                *slash = 0;
                int r = mkdir_p(path, 0700);
                *slash = '/';
                if (r < 0) {
                        cli_error("cannot make the directory of %s: %s", name, strerror(-r));
                        return r;
                }
                for (size_t k = 0; k < n_src && !done; k++) {
                        size_t s = (chosen_src + k) % n_src;
                        struct backup_snapshot *snap = s == chosen_src ? chosen
                                                       : run ? find_run(src[s].snaps, src[s].n, run, chosen->series)
                                                             : NULL;
                        json_t *sf = snap ? find_file(snap, name) : NULL;
                        if (!src[s].repo || !sf)
                                continue;
                        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                                      (mode_t) (mode & 0644) | 0600);
                        if (fd < 0) {
                                cli_error("cannot create %s: %m", path);
                                return negative_errno();
                        }
                        r = backup_restore_file(src[s].repo, sf, fd, &what);
                        if (r == 0 && fsync(fd) < 0)
                                r = negative_errno();
                        close(fd);
                        if (r == -ENOSPC || r == -EIO) {
                                cli_error("cannot write %s: %s", path, strerror(-r));
                                return r;
                        }
                        if (r == 0) {
                                done = true;
                                *ret_bytes += (uint64_t) json_integer_value(json_object_get(sf, "size"));
                                if (s != chosen_src) {
                                        if (json)
                                                json_array_append_new(fallbacks, json_pack("{s:s,s:s}", "file", name,
                                                                                           "from", src[s].name));
                                        else
                                                fprintf(stderr, "coffre: %s: restored from %s instead\n", name,
                                                        src[s].name);
                                }
                        } else
                                fprintf(stderr, "coffre: %s: %s: %s\n", src[s].name, name, what);
                }
                if (!done) {
                        cli_error("%s cannot be restored intact from any destination (%s)", name, what);
                        return -EBADMSG;
                }
                (*ret_files)++;
        }
        return 0;
}

static int restore_fixups(const char *target, const char *master_file, uint64_t audit_size,
                          const uint8_t audit_root[32]) {
        _cleanup_free_ char *conf = path_join(target, "coffre.conf"), *state = path_join(target, "keys/log.state");
        _cleanup_free_ char *tmp = path_join(target, "tmp"), *objects = path_join(target, "objects");
        struct vault_config vc;
        merkle_hash root;
        int r;

        if (!conf || !state || !tmp || !objects)
                return -ENOMEM;
        r = vault_config_load(conf, &vc);
        if (r < 0) {
                cli_error("the restored coffre.conf does not load");
                return r;
        }
        /* the signer's memory: the restored log's checkpoint, so it refuses anything shorter */
        memcpy(root.b, audit_root, 32);
        r = signer_state_file_create(state, vc.audit_origin, audit_size, &root);
        if (r < 0) {
                cli_error("cannot write keys/log.state: %s", strerror(-r));
                return r;
        }
        if ((r = mkdir_p(tmp, 0700)) < 0 || (r = mkdir_p(objects, 0700)) < 0)
                return r;
        /* the TLS private key is not in backups: a new self-signed pair where the config points
         * into the data directory */
        if (vc.tls_key[0] != '/' && vc.tls_cert[0] != '/') {
                _cleanup_free_ char *cert = path_join(target, vc.tls_cert), *key = path_join(target, vc.tls_key);
                _cleanup_free_ char *tlsdir = path_join(target, "tls");
                if (!cert || !key || !tlsdir)
                        return -ENOMEM;
                if (access(key, F_OK) != 0) {
                        (void) unlink(cert);
                        r = mkdir_p(tlsdir, 0755);
                        if (r == 0)
                                r = selfsigned_tls_create(cert, key, 397);
                        if (r < 0) {
                                cli_error("cannot make a TLS certificate: %s", strerror(-r));
                                return r;
                        }
                }
        }
        if (master_file && vc.master_key[0] != '/') {
                _cleanup_free_ char *dst = path_join(target, vc.master_key);
                struct buf b;
                if (!dst)
                        return -ENOMEM;
                buf_init(&b, 64);
                r = read_file_secret(master_file, 64, &b);
                if (r == 0)
                        r = write_file_atomic(dst, b.data, b.len, 0600, 1);
                buf_free_secure(&b);
                if (r < 0) {
                        cli_error("cannot copy the master key into %s: %s", target, strerror(-r));
                        return r;
                }
        }
        return 0;
}

int cmd_restore(int argc, char **argv) {
        static const struct option opts[] = {
                OPEN_OPTIONS,
                { "snapshot", required_argument, NULL, 's' },
                { "keyring-from", required_argument, NULL, 'K' },
                {},
        };
        struct open_opts o = {}, ko = {};
        struct backup_repo *repos[MAX_FROM + 2 * MAX_DESTS] = { NULL }, *krepos[MAX_FROM] = { NULL };
        const char *names[MAX_FROM + 2 * MAX_DESTS], *knames[MAX_FROM];
        struct restore_src src[MAX_FROM + 2 * MAX_DESTS] = {}, ksrc[MAX_FROM] = {};
        size_t n = 0, kn = 0;
        const char *snapshot = NULL, *target = NULL;
        bool json = false;
        int c, r, rc = CLI_EXIT_FAILURE;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                if (c == 'd') {
                        target = optarg;
                        continue;
                }
                int k = parse_open_opt(c, &o);
                if (k > 0)
                        continue;
                if (k < 0) {
                        fprintf(stderr, "coffre restore: at most %d --from\n", MAX_FROM);
                        return CLI_EXIT_USAGE;
                }
                if (c == 'j')
                        json = true;
                else if (c == 's')
                        snapshot = optarg;
                else if (c == 'K' && ko.n_from < MAX_FROM)
                        ko.from[ko.n_from++] = optarg;
                else if (c == 'h') {
                        printf("Usage: coffre restore --from DEST [--from DEST2]... --data NEWDIR\n"
                               "                      (--master-key FILE | --passphrase-file FILE)\n"
                               "                      [--snapshot ID] [--keyring-from DEST]... [--json]\n\n"
                               "Rebuilds a data directory in NEWDIR (absent or empty) from the latest data\n"
                               "snapshot of the first DEST (or snapshot ID) and the latest keyring snapshot\n"
                               "(of --keyring-from, else of the same destinations). A file that cannot be read\n"
                               "intact from the first destination is taken from the snapshot of the same run in\n"
                               "the next. The master key file opens the repository and is copied into\n"
                               "NEWDIR/keys; with a passphrase only, put the master key in place before\n"
                               "coffre serve. A new self-signed TLS certificate is made.\n");
                        return 0;
                } else {
                        fprintf(stderr, "coffre restore: bad option\nTry 'coffre restore --help'.\n");
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind != argc || !target || o.n_from == 0 || (!o.master_file && !o.pass_file)) {
                fprintf(stderr, "coffre restore: --from DEST, --data NEWDIR and --master-key FILE or "
                                "--passphrase-file FILE are required\n");
                return CLI_EXIT_USAGE;
        }
        if (target[0] != '/') {
                fprintf(stderr, "coffre restore: --data must be an absolute path\n");
                return CLI_EXIT_USAGE;
        }
        o.data = NULL;
        if (!dir_empty_or_absent(target)) {
                cli_error("%s is not empty: restore only into a new or empty directory (nothing changed)", target);
                return CLI_EXIT_FAILURE;
        }
        if (open_repos(&o, repos, names, &n) < 0)
                return CLI_EXIT_FAILURE;
        ko.master_file = o.master_file;
        ko.pass_file = o.pass_file;
        if (ko.n_from && open_repos(&ko, krepos, knames, &kn) < 0)
                goto out;
        for (size_t i = 0; i < n; i++) {
                src[i] = (struct restore_src){ .repo = repos[i], .name = names[i] };
                struct collect col = { .problems = json_array(), .dest = names[i], .json = false };
                if (repos[i] && ((r = backup_repo_load_index(repos[i], collect_problem, &col)) < 0 ||
                                 (r = backup_snapshots(repos[i], collect_problem, &col, &src[i].snaps, &src[i].n)) < 0))
                        src[i].repo = NULL;
                json_decref(col.problems);
        }
        for (size_t i = 0; i < kn; i++) {
                ksrc[i] = (struct restore_src){ .repo = krepos[i], .name = knames[i] };
                struct collect col = { .problems = json_array(), .dest = knames[i], .json = false };
                if (krepos[i] &&
                    ((r = backup_repo_load_index(krepos[i], collect_problem, &col)) < 0 ||
                     (r = backup_snapshots(krepos[i], collect_problem, &col, &ksrc[i].snaps, &ksrc[i].n)) < 0))
                        ksrc[i].repo = NULL;
                json_decref(col.problems);
        }
        /* the data snapshot: the one named, else the latest whose date is not flagged */
        struct backup_snapshot *chosen = NULL, *kchosen = NULL;
        size_t chosen_src = 0, kchosen_src = 0;
        int64_t now = (int64_t) time(NULL);
        for (size_t i = 0; i < n && !chosen; i++)
                for (size_t j = src[i].n; src[i].repo && j-- > 0 && !chosen;) {
                        char id[BACKUP_ID_HEX + 1];
                        backup_id_hex(&src[i].snaps[j].id, id);
                        if (src[i].snaps[j].series != BACKUP_SERIES_DATA)
                                continue;
                        if (snapshot ? strncmp(id, snapshot, strlen(snapshot)) == 0 && strlen(snapshot) >= 8
                                     : !backup_snapshot_date_problem(&src[i].snaps[j], now)) {
                                chosen = &src[i].snaps[j];
                                chosen_src = i;
                        }
                }
        if (!chosen) {
                cli_error(snapshot ? "no intact data snapshot %s in the destinations given"
                                   : "no intact data snapshot in the destinations given%s",
                          snapshot ? snapshot : "");
                goto out;
        }
        struct restore_src *ks = kn ? ksrc : src;
        size_t kns = kn ? kn : n;
        for (size_t i = 0; i < kns && !kchosen; i++)
                for (size_t j = ks[i].n; ks[i].repo && j-- > 0 && !kchosen;)
                        if (ks[i].snaps[j].series == BACKUP_SERIES_KEYRING &&
                            !backup_snapshot_date_problem(&ks[i].snaps[j], now)) {
                                kchosen = &ks[i].snaps[j];
                                kchosen_src = i;
                        }
        if (!kchosen) {
                cli_error("no intact keyring snapshot: the documents could not be decrypted (give --keyring-from)");
                goto out;
        }
        r = mkdir_p(target, 0700);
        if (r < 0) {
                cli_error("cannot create %s: %s", target, strerror(-r));
                goto out;
        }
        uint64_t files = 0, bytes = 0;
        json_t *fallbacks = json_array();
        r = restore_series(src, n, chosen, chosen_src, target, json, fallbacks, &files, &bytes);
        if (r == 0)
                r = restore_series(ks, kns, kchosen, kchosen_src, target, json, fallbacks, &files, &bytes);
        if (r == 0)
                r = restore_fixups(target, o.master_file, chosen->audit_size, chosen->audit_root);
        char id[BACKUP_ID_HEX + 1], kid[BACKUP_ID_HEX + 1], t[32];
        backup_id_hex(&chosen->id, id);
        backup_id_hex(&kchosen->id, kid);
        fmt_time(chosen->time, t, sizeof t);
        if (r < 0) {
                json_decref(fallbacks);
                cli_error("restore into %s failed; what was written there is incomplete: remove it", target);
                rc = r == -EBADMSG ? CLI_EXIT_VERIFY : CLI_EXIT_FAILURE;
                goto out;
        }
        if (json) {
                json_t *jo =
                        json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:o}", "snapshot", id, "keyring_snapshot", kid, "time",
                                  t, "data", target, "audit_size", (json_int_t) chosen->audit_size, "files",
                                  (json_int_t) files, "bytes", (json_int_t) bytes, "fallbacks", fallbacks);
                json_dumpf(jo, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
                json_decref(jo);
        } else {
                json_decref(fallbacks);
                printf("Restored snapshot %.16s (%s, audit log of %llu entries) and keyring %.16s into %s: %llu "
                       "files, %llu bytes\n",
                       id, t, (unsigned long long) chosen->audit_size, kid, target, (unsigned long long) files,
                       (unsigned long long) bytes);
                if (!o.master_file)
                        printf("Put the vault's master key at %s/keys/master.key (0600) before coffre serve.\n",
                               target);
        }
        rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
out:
        for (size_t i = 0; i < n; i++) {
                backup_snapshots_free(src[i].snaps, src[i].n);
                backup_repo_free(repos[i]);
        }
        for (size_t i = 0; i < kn; i++) {
                backup_snapshots_free(ksrc[i].snaps, ksrc[i].n);
                backup_repo_free(krepos[i]);
        }
        return rc;
}
