/* cmd_backup_common.c: the parts of `coffre backup` and `coffre restore` they share (see
 * cmd_backup_common.h). */
#include "cmd_backup_common.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "fileio.h"
#include "progress.h"

void backup_cli_conf_clear(struct backup_cli_conf *c) {
        for (size_t i = 0; i < c->n_dest; i++)
                free(c->dest[i]);
        for (size_t i = 0; i < c->n_keyring; i++)
                free(c->keyring_dest[i]);
        c->n_dest = c->n_keyring = 0;
        backup_dest_conf_clear(&c->dconf);
}

static int conf_handler(void *ud, const char *section, const char *name, const char *value) {
        struct backup_cli_conf *c = ud;

        if (strcmp(section, "backup") != 0)
                return 1;
        if (strcmp(name, "destination") == 0 && c->n_dest < BACKUP_CLI_MAX_DESTS)
                return (c->dest[c->n_dest++] = strdup(value)) != NULL;
        if (strcmp(name, "keyring_destination") == 0 && c->n_keyring < BACKUP_CLI_MAX_DESTS)
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

int backup_cli_load_conf(const char *data, struct vault_config *vc, struct backup_cli_conf *bc) {
        _cleanup_free_ char *path = path_join(data, "coffre.conf");
        int r;

        if (!path)
                return -ENOMEM;
        r = vault_config_load(path, vc);
        if (r < 0) {
                cli_error("%s is not a coffre data directory (cannot read coffre.conf)", data);
                return r;
        }
        *bc = (struct backup_cli_conf){};
        backup_policy_default(&bc->policy);
        backup_dest_conf_init(&bc->dconf);
        bc->dconf.base_dir = strdup(data);
        if (!bc->dconf.base_dir)
                return -ENOMEM;
        r = ini_parse(path, conf_handler, bc);
        if (r != 0) {
                backup_cli_conf_clear(bc);
                cli_error("%s/coffre.conf: bad [backup] setting on line %d (at most %d destinations; durations "
                          "like 36h, 7d, 5w, 5y; S3 settings as in docs/operations.md)",
                          data, r, BACKUP_CLI_MAX_DESTS);
                return -EINVAL;
        }
        return 0;
}

/* Adds "key = value" to the [backup] section of coffre.conf (made when missing), atomically. */
int backup_cli_conf_add(const char *data, const char *key, const char *value) {
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

int backup_cli_read_passphrase(const char *file, char **ret) {
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

void backup_cli_free_secret(char **p) {
        if (*p)
                sodium_free(*p);
}

int backup_cli_open_master(const char *data, const struct vault_config *vc, struct master_key **ret) {
        _cleanup_free_ char *path = vc->master_key[0] == '/' ? strdup(vc->master_key) : path_join(data, vc->master_key);
        int r;

        if (!path)
                return -ENOMEM;
        r = master_key_load_file(path, ret);
        if (r < 0)
                cli_error("cannot load the master key %s: %s", path, strerror(-r));
        return r;
}

const char *backup_cli_dest_error(int r) {
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

int backup_cli_open_dest(const char *url, bool create, const struct backup_dest_conf *conf, struct backup_dest **ret) {
        int r = backup_dest_open_conf(url, create, conf, ret);
        if (r < 0) {
                _cleanup_free_ char *show = cli_escape(url);
                cli_error("destination %s: %s", show ? show : "?", backup_cli_dest_error(r));
        }
        return r;
}

const char *backup_cli_repo_error(int r) {
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

const char *backup_cli_repo_error_of(int r, char *buf, size_t n) {
        const char *e = backup_dest_last_error();
        if (!e)
                return backup_cli_repo_error(r);
        snprintf(buf, n, "%s", e);
        return buf;
}

/* ---- opening repositories for list / verify / restore ---- */

/* The repositories named by --from, or else the configured destinations. */
int backup_cli_open_repos(const struct backup_cli_open_opts *o, struct backup_repo **repos, const char **names,
                          size_t *ret_n) {
        _cleanup_(master_key_freep) struct master_key *m = NULL;
        _cleanup_(backup_cli_free_secret) char *pass = NULL;
        struct backup_cli_conf bc = {};
        struct vault_config vc;
        const char *list[BACKUP_CLI_MAX_FROM + 2 * BACKUP_CLI_MAX_DESTS];
        size_t n = 0;
        int r;

        if (!o->data && o->s3_settings && backup_cli_load_conf(o->s3_settings, &vc, &bc) < 0)
                return -EINVAL;
        if (o->data) {
                if (backup_cli_load_conf(o->data, &vc, &bc) < 0)
                        return -EINVAL;
                if (!o->master_file && !o->pass_file && backup_cli_open_master(o->data, &vc, &m) < 0) {
                        backup_cli_conf_clear(&bc);
                        return -EINVAL;
                }
        }
        if (o->master_file) {
                r = master_key_load_file(o->master_file, &m);
                if (r < 0) {
                        backup_cli_conf_clear(&bc);
                        cli_error("cannot load the master key %s: %s", o->master_file, strerror(-r));
                        return r;
                }
        } else if (o->pass_file && backup_cli_read_passphrase(o->pass_file, &pass) < 0) {
                backup_cli_conf_clear(&bc);
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
                backup_cli_conf_clear(&bc);
                cli_error("no destination: give --from DEST or configure [backup] destination");
                return -ENOENT;
        }
        for (size_t i = 0; i < n; i++) {
                struct backup_dest *d = NULL;
                _cleanup_free_ char *show = cli_escape(list[i]);
                names[i] = o->n_from ? list[i] : NULL;
                char why[600];
                r = backup_dest_open_conf(list[i], false, &bc.dconf, &d);
                if (r < 0) {
                        cli_error("destination %s: %s", show ? show : "?", backup_cli_dest_error(r));
                        repos[i] = NULL;
                        continue;
                }
                backup_dest_error_clear();
                r = backup_repo_open(d, m, pass, &repos[i]);
                if (r < 0) {
                        cli_error("destination %s: %s", show ? show : "?",
                                  backup_cli_repo_error_of(r, why, sizeof why));
                        repos[i] = NULL;
                }
        }
        /* names from the config die with bc: keep copies in the repos (their URL) */
        for (size_t i = 0; i < n; i++)
                if (repos[i])
                        names[i] = repos[i]->dest->url;
                else if (!o->n_from)
                        names[i] = "(configured destination)";
        backup_cli_conf_clear(&bc);
        *ret_n = n;
        return 0;
}

int backup_cli_open_opt(int c, struct backup_cli_open_opts *o) {
        switch (c) {
        case 'd':
                o->data = optarg;
                return 1;
        case 'f':
                if (o->n_from >= BACKUP_CLI_MAX_FROM)
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

const char *backup_cli_series_name(enum backup_series s) {
        return s == BACKUP_SERIES_KEYRING ? "keyring" : "data";
}

void backup_cli_fmt_time(int64_t t, char *out, size_t n) {
        time_t tt = (time_t) t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(out, n, "%lld", (long long) t);
}

void backup_cli_collect_problem(const char *object, const char *what, void *ud) {
        struct backup_cli_collect *c = ud;
        bool note = strncmp(what, "note:", 5) == 0;
        if (!note)
                c->count++;
        if (c->json)
                json_array_append_new(c->problems, json_pack("{s:s,s:s,s:s}", "destination", c->dest, "object", object,
                                                             "problem", what));
        else
                printf("%s: %s: %s\n", c->dest, object, what);
}
