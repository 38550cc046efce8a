/* cmd_restore.c: `coffre restore` (a data directory rebuilt from one or more destinations, each
 * file taken intact from the first that has it) and `coffre backup drill` (each destination
 * restored alone into a scratch directory and checked). See docs/operations.md ("Backups"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backup/drill.h"
#include "cmd_backup.h"
#include "cmd_backup_common.h"
#include "commands.h"
#include "core/selfsigned.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"
#include "progress.h"
#include "seal/signer.h"

/* ---- coffre backup drill ---- */

/* Runs this binary with args; its stdout into out (when not NULL), stderr passed through. The
 * exit status, or -1 when it could not run. */
static int run_self(char *const *args, struct buf *out) {
        int pfd[2] = { -1, -1 };
        pid_t pid;
        int status = 0;

        if (out && pipe2(pfd, O_CLOEXEC) < 0)
                return -1;
        pid = fork();
        if (pid < 0) {
                if (out) {
                        close(pfd[0]);
                        close(pfd[1]);
                }
                return -1;
        }
        if (pid == 0) {
                int fd = out ? pfd[1] : open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (fd >= 0)
                        (void) dup2(fd, STDOUT_FILENO);
                execv("/proc/self/exe", args);
                _exit(127);
        }
        if (out) {
                uint8_t tmp[4096];
                ssize_t n;
                close(pfd[1]);
                while ((n = read(pfd[0], tmp, sizeof tmp)) > 0 || (n < 0 && errno == EINTR))
                        if (n > 0 && buf_append(out, tmp, (size_t) n) < 0)
                                break;
                close(pfd[0]);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct drill_report {
        const char *dest;
        bool json;
        json_t *bad;
};

static void drill_bad(const char *id, const char *what, void *ud) {
        struct drill_report *d = ud;
        if (d->json)
                json_array_append_new(d->bad, json_pack("{s:s,s:s}", "document", id, "problem", what));
        else
                fprintf(stderr, "coffre: drill of %s: document %s: %s\n", d->dest, id, what);
}

int backup_cli_drill(int argc, char **argv) {
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
        unsigned failed = 0, damaged = 0;
        int c;

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
                        printf("Usage: coffre backup drill --data DIR [--json]\n\n"
                               "For each data destination of DIR alone: restores its latest snapshot into a\n"
                               "scratch directory (with the keyring series from the keyring destinations, if any),\n"
                               "runs coffre audit verify on it, decrypts every document and checks its size and\n"
                               "SHA-256, then removes the scratch directory. Prints the recovery point (the age of\n"
                               "the snapshot) and the recovery time (restore and checks) of each. Exit 3 when a\n"
                               "check fails, 1 when a destination cannot be restored at all.\n");
                        return 0;
                default:
                        fprintf(stderr, "coffre backup drill: bad option\nTry 'coffre backup drill --help'.\n");
                        return CLI_EXIT_USAGE;
                }
        if (!data || optind != argc) {
                fprintf(stderr, "coffre backup drill: --data DIR is required\n");
                return CLI_EXIT_USAGE;
        }
        if (backup_cli_load_conf(data, &vc, &bc) < 0)
                return CLI_EXIT_FAILURE;
        if (bc.n_dest == 0) {
                backup_cli_conf_clear(&bc);
                cli_error("no backup destination in %s/coffre.conf", data);
                return CLI_EXIT_FAILURE;
        }
        _cleanup_free_ char *master = vc.master_key[0] == '/' ? strdup(vc.master_key) : path_join(data, vc.master_key);
        const char *tmp = getenv("TMPDIR");
        json_t *out = json_array();
        for (size_t i = 0; master && i < bc.n_dest; i++) {
                _cleanup_free_ char *scratch =
                        path_join(tmp && tmp[0] == '/' ? tmp : "/var/tmp", "coffre-drill.XXXXXX");
                _cleanup_free_ char *target = NULL;
                _cleanup_buf_ struct buf rout = {};
                struct drill_report dr = { .dest = bc.dest[i], .json = json, .bad = json_array() };
                struct backup_drill_result res = {};
                struct timespec t0, t1;
                const char *why = NULL;
                json_t *info = NULL;
                int rr = -1, ar = -1, r = 0;

                clock_gettime(CLOCK_MONOTONIC, &t0);
                if (!scratch || !mkdtemp(scratch) || !(target = path_join(scratch, "vault"))) {
                        cli_error("cannot make a scratch directory: %m");
                        failed++;
                        json_decref(dr.bad);
                        continue;
                }
                char *rargs[12 + 2 * BACKUP_CLI_MAX_DESTS + 1];
                size_t na = 0;
                rargs[na++] = (char *) "coffre";
                rargs[na++] = (char *) "restore";
                rargs[na++] = (char *) "--from";
                rargs[na++] = bc.dest[i];
                for (size_t k = 0; k < bc.n_keyring; k++) {
                        rargs[na++] = (char *) "--keyring-from";
                        rargs[na++] = bc.keyring_dest[k];
                }
                rargs[na++] = (char *) "--data";
                rargs[na++] = target;
                rargs[na++] = (char *) "--master-key";
                rargs[na++] = master;
                rargs[na++] = (char *) "--json";
                rargs[na++] = (char *) "--s3-settings"; /* the destinations' S3 settings */
                rargs[na++] = (char *) data;
                rargs[na] = NULL;
                buf_init(&rout, 1 << 20);
                rr = run_self(rargs, &rout);
                if (rr == 0 && buf_str(&rout))
                        info = json_loads((const char *) rout.data, 0, NULL);
                if (rr != 0 || !info)
                        why = rr == CLI_EXIT_VERIFY ? "the snapshot does not restore intact (see above)"
                                                    : "restore failed (see above)";
                if (!why) {
                        char *vargs[] = { (char *) "coffre", (char *) "audit", (char *) "verify",
                                          (char *) "--data", target,           NULL };
                        ar = run_self(vargs, NULL);
                        if (ar != 0)
                                why = "coffre audit verify fails on the restored vault (see above)";
                }
                if (!why) {
                        r = backup_drill_check(target, master, drill_bad, &dr, &res);
                        if (r < 0)
                                why = r == -EKEYREJECTED ? "the master key does not open the restored keyring"
                                                         : strerror(-r);
                        else if (res.bad)
                                why = "documents fail their check";
                }
                clock_gettime(CLOCK_MONOTONIC, &t1);
                (void) rm_rf(scratch);
                double rto = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
                json_int_t snap_time = info ? json_integer_value(json_object_get(info, "unix_time")) : 0;
                int64_t rpo = snap_time ? (int64_t) time(NULL) - (int64_t) snap_time : -1;
                const char *sid = info ? json_string_value(json_object_get(info, "snapshot")) : NULL;
                if (why) {
                        if (rr == CLI_EXIT_VERIFY || (rr == 0 && (ar != 0 || res.bad || r < 0)))
                                damaged++; /* something did not check, as opposed to could not run */
                        else
                                failed++;
                }
                if (json)
                        json_array_append_new(out, json_pack("{s:s,s:b,s:s?,s:s?,s:I,s:I,s:I,s:I,s:f,s:o}",
                                                             "destination", bc.dest[i], "ok", why == NULL, "error", why,
                                                             "snapshot", sid, "documents", (json_int_t) res.documents,
                                                             "bytes", (json_int_t) res.bytes, "bad",
                                                             (json_int_t) res.bad, "rpo_seconds", (json_int_t) rpo,
                                                             "rto_seconds", rto, "problems", dr.bad));
                else {
                        json_decref(dr.bad);
                        if (why)
                                fprintf(stderr, "coffre: drill of %s failed: %s\n", bc.dest[i], why);
                        else
                                printf("%s: ok: snapshot %.16s, %llu documents decrypted and checked (%llu bytes), "
                                       "audit log verified; RPO %lld s, RTO %.1f s\n",
                                       bc.dest[i], sid ? sid : "?", (unsigned long long) res.documents,
                                       (unsigned long long) res.bytes, (long long) rpo, rto);
                }
                json_decref(info);
        }
        backup_cli_conf_clear(&bc);
        if (json) {
                json_dumpf(out, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
        }
        json_decref(out);
        if (fflush(stdout) != 0)
                return CLI_EXIT_FAILURE;
        return damaged ? CLI_EXIT_VERIFY : failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
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
                BACKUP_CLI_OPEN_OPTIONS,
                { "snapshot", required_argument, NULL, 's' },
                { "keyring-from", required_argument, NULL, 'K' },
                { "s3-settings", required_argument, NULL, 'S' },
                {},
        };
        struct backup_cli_open_opts o = {}, ko = {};
        struct backup_repo *repos[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS] = { NULL },
                                                            *krepos[BACKUP_CLI_MAX_FROM] = { NULL };
        const char *names[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS], *knames[BACKUP_CLI_MAX_FROM];
        struct restore_src src[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS] = {}, ksrc[BACKUP_CLI_MAX_FROM] = {};
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
                int k = backup_cli_open_opt(c, &o);
                if (k > 0)
                        continue;
                if (k < 0) {
                        fprintf(stderr, "coffre restore: at most %d --from\n", BACKUP_CLI_MAX_FROM);
                        return CLI_EXIT_USAGE;
                }
                if (c == 'j')
                        json = true;
                else if (c == 's')
                        snapshot = optarg;
                else if (c == 'K' && ko.n_from < BACKUP_CLI_MAX_FROM)
                        ko.from[ko.n_from++] = optarg;
                else if (c == 'S')
                        o.s3_settings = ko.s3_settings = optarg;
                else if (c == 'h') {
                        printf("Usage: coffre restore --from DEST [--from DEST2]... --data NEWDIR\n"
                               "                      (--master-key FILE | --passphrase-file FILE)\n"
                               "                      [--snapshot ID] [--keyring-from DEST]... [--json]\n"
                               "                      [--s3-settings DIR]\n\n"
                               "Rebuilds a data directory in NEWDIR (absent or empty) from the latest data\n"
                               "snapshot of the first DEST (or snapshot ID) and the latest keyring snapshot\n"
                               "(of --keyring-from, else of the same destinations). A file that cannot be read\n"
                               "intact from the first destination is taken from the snapshot of the same run in\n"
                               "the next. The master key file opens the repository and is copied into\n"
                               "NEWDIR/keys; with a passphrase only, put the master key in place before\n"
                               "coffre serve. A new self-signed TLS certificate is made. S3 destinations take\n"
                               "the AWS_* environment, or the s3_* settings of DIR/coffre.conf with --s3-settings.\n");
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
        if (backup_cli_open_repos(&o, repos, names, &n) < 0)
                return CLI_EXIT_FAILURE;
        ko.master_file = o.master_file;
        ko.pass_file = o.pass_file;
        if (ko.n_from && backup_cli_open_repos(&ko, krepos, knames, &kn) < 0)
                goto out;
        for (size_t i = 0; i < n; i++) {
                src[i] = (struct restore_src){ .repo = repos[i], .name = names[i] };
                struct backup_cli_collect col = { .problems = json_array(), .dest = names[i], .json = false };
                if (repos[i] &&
                    ((r = backup_repo_load_index(repos[i], backup_cli_collect_problem, &col)) < 0 ||
                     (r = backup_snapshots(repos[i], backup_cli_collect_problem, &col, &src[i].snaps, &src[i].n)) < 0))
                        src[i].repo = NULL;
                json_decref(col.problems);
        }
        for (size_t i = 0; i < kn; i++) {
                ksrc[i] = (struct restore_src){ .repo = krepos[i], .name = knames[i] };
                struct backup_cli_collect col = { .problems = json_array(), .dest = knames[i], .json = false };
                if (krepos[i] && ((r = backup_repo_load_index(krepos[i], backup_cli_collect_problem, &col)) < 0 ||
                                  (r = backup_snapshots(krepos[i], backup_cli_collect_problem, &col, &ksrc[i].snaps,
                                                        &ksrc[i].n)) < 0))
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
        backup_cli_fmt_time(chosen->time, t, sizeof t);
        if (r < 0) {
                json_decref(fallbacks);
                cli_error("restore into %s failed; what was written there is incomplete: remove it", target);
                rc = r == -EBADMSG ? CLI_EXIT_VERIFY : CLI_EXIT_FAILURE;
                goto out;
        }
        if (json) {
                json_t *jo = json_pack("{s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:o}", "snapshot", id, "keyring_snapshot", kid,
                                       "time", t, "unix_time", (json_int_t) chosen->time, "data", target, "audit_size",
                                       (json_int_t) chosen->audit_size, "files", (json_int_t) files, "bytes",
                                       (json_int_t) bytes, "fallbacks", fallbacks);
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
