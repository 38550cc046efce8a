/* cmd_backup.c: `coffre backup init | run | list | verify | prune`: encrypted, deduplicated
 * backups of a data directory (which may be served meanwhile) to every destination named in
 * coffre.conf's [backup] section, listing and checking them, and retention. Restore and drills
 * are in cmd_restore.c. What goes where: docs/operations.md ("Backups"). */
#include "cmd_backup.h"
#include "cmd_backup_common.h"

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
#include "fileio.h"
#include "hex.h"
#include "log.h"
#include "progress.h"
#include "seal/signer.h"
#include "seal/signer_backup.h"

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
        _cleanup_(backup_cli_free_secret) char *pass = NULL;
        _cleanup_(master_key_freep) struct master_key *m = NULL;
        _cleanup_(backup_repo_freep) struct backup_repo *repo = NULL;
        struct backup_dest *dest = NULL;
        struct vault_config vc;
        struct backup_cli_conf bc = {};
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
        r = backup_cli_load_conf(data, &vc, &bc);
        if (r < 0)
                return CLI_EXIT_FAILURE;
        for (size_t i = 0; i < bc.n_dest; i++)
                if (strcmp(bc.dest[i], to) == 0 && !keyring) {
                        backup_cli_conf_clear(&bc);
                        fprintf(stderr, "coffre backup init: %s is already a destination\n", to);
                        return CLI_EXIT_FAILURE;
                }
        if ((keyring ? bc.n_keyring : bc.n_dest) >= BACKUP_CLI_MAX_DESTS) {
                backup_cli_conf_clear(&bc);
                fprintf(stderr, "coffre backup init: at most %d destinations\n", BACKUP_CLI_MAX_DESTS);
                return CLI_EXIT_FAILURE;
        }
        r = backup_cli_open_dest(to, true, &bc.dconf, &dest);
        backup_cli_conf_clear(&bc);
        if (r < 0)
                return r == -EINVAL || r == -EPROTONOSUPPORT ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
        if (pfile && backup_cli_read_passphrase(pfile, &pass) < 0) {
                backup_dest_free(dest);
                return CLI_EXIT_FAILURE;
        }
        if (backup_cli_open_master(data, &vc, &m) < 0) {
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
        r = backup_cli_conf_add(data, keyring ? "keyring_destination" : "destination", to);
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
        struct backup_cli_conf bc = {};
        _cleanup_(master_key_freep) struct master_key *m = NULL;
        _cleanup_(signer_stopp) struct signer *sg = NULL;
        _cleanup_(backup_stage_freep) struct backup_stage *stage = NULL;
        const char *all[2 * BACKUP_CLI_MAX_DESTS];
        unsigned series[2 * BACKUP_CLI_MAX_DESTS];
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
        if (backup_cli_load_conf(data, &vc, &bc) < 0)
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
                backup_cli_conf_clear(&bc);
                cli_error("no backup destination in %s/coffre.conf: add one with coffre backup init --to DEST", data);
                return CLI_EXIT_FAILURE;
        }
        if (backup_cli_open_master(data, &vc, &m) < 0) {
                backup_cli_conf_clear(&bc);
                return CLI_EXIT_FAILURE;
        }
        _cleanup_free_ char *keys = path_join(data, "keys");
        r = keys ? signer_start(keys, vc.audit_origin, &sg) : -ENOMEM;
        if (r < 0) {
                backup_cli_conf_clear(&bc);
                cli_error("cannot start the signer for %s/keys: %s", data, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        const char *tmp = getenv("TMPDIR");
        r = backup_stage_take(data, tmp && tmp[0] == '/' ? tmp : "/var/tmp", &stage);
        if (r < 0) {
                backup_cli_conf_clear(&bc);
                cli_error("cannot take a consistent snapshot of %s: %s", data, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        randombytes_buf(run_id, sizeof run_id);
        struct backup_status_entry st[2 * BACKUP_CLI_MAX_DESTS] = {};
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

                clock_gettime(CLOCK_MONOTONIC, &t0);
                backup_dest_error_clear();
                r = backup_dest_open_conf(all[i], false, &bc.dconf, &dest);
                if (r < 0)
                        why = backup_cli_dest_error(r);
                if (r == 0) {
                        r = backup_repo_open(dest, m, NULL, &repo);
                        if (r < 0)
                                why = backup_cli_repo_error_of(r, whybuf, sizeof whybuf);
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
        backup_cli_conf_clear(&bc);
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

/* ---- coffre backup list ---- */

static int backup_list(int argc, char **argv) {
        static const struct option opts[] = { BACKUP_CLI_OPEN_OPTIONS, {} };
        struct backup_cli_open_opts o = {};
        struct backup_repo *repos[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS] = { NULL };
        const char *names[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS];
        size_t n = 0;
        bool json = false;
        int c, rc = CLI_EXIT_OK;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                int k = backup_cli_open_opt(c, &o);
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
        if (backup_cli_open_repos(&o, repos, names, &n) < 0)
                return CLI_EXIT_FAILURE;
        json_t *out = json_array();
        int64_t now = (int64_t) time(NULL);
        for (size_t i = 0; i < n; i++) {
                struct backup_snapshot *s = NULL;
                size_t ns = 0;
                struct backup_cli_collect col = { .problems = json_array(), .dest = names[i], .json = json };
                json_t *list = json_array();

                if (!repos[i]) {
                        rc = CLI_EXIT_FAILURE;
                        json_decref(col.problems);
                        json_decref(list);
                        continue;
                }
                if (backup_snapshots(repos[i], backup_cli_collect_problem, &col, &s, &ns) < 0) {
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
                        backup_cli_fmt_time(s[j].time, t, sizeof t);
                        if (json)
                                json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s?}", "id", id,
                                                                      "series", backup_cli_series_name(s[j].series),
                                                                      "time", t, "unix_time", (json_int_t) s[j].time,
                                                                      "audit_size", (json_int_t) s[j].audit_size,
                                                                      "files", (json_int_t) json_array_size(files),
                                                                      "date_problem", dp));
                        else
                                printf("  %s  %-7s  %s  audit size %llu  %zu files%s%s\n", id,
                                       backup_cli_series_name(s[j].series), t, (unsigned long long) s[j].audit_size,
                                       json_array_size(files), dp ? "  FLAGGED: " : "", dp ? dp : "");
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
        static const struct option opts[] = { BACKUP_CLI_OPEN_OPTIONS, { "read-data", no_argument, NULL, 'r' }, {} };
        struct backup_cli_open_opts o = {};
        struct backup_repo *repos[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS] = { NULL };
        const char *names[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS];
        size_t n = 0;
        bool json = false, read_data = false;
        unsigned problems = 0, unusable = 0;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                int k = backup_cli_open_opt(c, &o);
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
        if (backup_cli_open_repos(&o, repos, names, &n) < 0)
                return CLI_EXIT_FAILURE;
        json_t *out = json_array();
        for (size_t i = 0; i < n; i++) {
                struct backup_cli_collect col = { .problems = json_array(), .dest = names[i], .json = json };
                struct backup_verify_result res = {};
                int r;

                if (!repos[i]) {
                        unusable++;
                        json_decref(col.problems);
                        continue;
                }
                r = backup_verify(repos[i], read_data, backup_cli_collect_problem, &col, &res);
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
        static const struct option opts[] = { BACKUP_CLI_OPEN_OPTIONS,
                                              { "dry-run", no_argument, NULL, 'n' },
                                              { "now", required_argument, NULL, 'N' },
                                              {} };
        struct backup_cli_open_opts o = {};
        struct backup_repo *repos[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS] = { NULL };
        const char *names[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS];
        struct backup_cli_conf bc = {};
        struct vault_config vc;
        size_t n = 0;
        bool json = false, dry = false, now_given = false;
        int64_t now = (int64_t) time(NULL);
        unsigned failed = 0;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                int k = backup_cli_open_opt(c, &o);
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
                if (backup_cli_load_conf(o.data, &vc, &bc) < 0)
                        return CLI_EXIT_FAILURE;
                backup_cli_conf_clear(&bc);
        }
        if (backup_cli_open_repos(&o, repos, names, &n) < 0)
                return CLI_EXIT_FAILURE;
        json_t *out = json_array();
        for (size_t i = 0; i < n; i++) {
                struct backup_prune_plan plan = {};
                struct backup_prune_result res = {};
                struct backup_cli_collect col = { .problems = json_array(), .dest = names[i], .json = json };
                json_t *items = json_array();
                const char *why = NULL;
                int r;

                if (!repos[i]) {
                        failed++;
                        json_decref(col.problems);
                        json_decref(items);
                        continue;
                }
                r = backup_prune_plan(repos[i], &bc.policy, now, backup_cli_collect_problem, &col, &plan);
                if (r < 0)
                        why = strerror(-r);
                for (size_t j = 0; r == 0 && j < plan.n; j++) {
                        char id[BACKUP_ID_HEX + 1], t[32];
                        backup_id_hex(&plan.items[j].id, id);
                        backup_cli_fmt_time(plan.items[j].time, t, sizeof t);
                        if (json)
                                json_array_append_new(items,
                                                      json_pack("{s:s,s:s,s:s,s:b,s:s}", "id", id, "series",
                                                                backup_cli_series_name(plan.items[j].series), "time", t,
                                                                "keep", plan.items[j].keep, "why", plan.items[j].why));
                        else
                                printf("%s: %s %.16s %-7s %s: %s\n", names[i], plan.items[j].keep ? "keep" : "drop", id,
                                       backup_cli_series_name(plan.items[j].series), t, plan.items[j].why);
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
                fprintf(f, "Usage: coffre backup init|run|list|verify|prune|drill ... (coffre backup SUB --help)\n"
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
        if (strcmp(argv[1], "drill") == 0)
                return backup_cli_drill(argc - 1, argv + 1);
        fprintf(stderr, "coffre backup: unknown subcommand '%s'\n", argv[1]);
        return CLI_EXIT_USAGE;
}
