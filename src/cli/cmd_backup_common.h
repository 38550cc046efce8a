/* cmd_backup_common.h: what `coffre backup` (cmd_backup.c) and `coffre restore` and `coffre
 * backup drill` (cmd_restore.c) share: the [backup] settings, opening destinations and
 * repositories with the master key or a passphrase, and reporting problems. */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "backup/engine.h"
#include "backup/prune.h"
#include "core/config.h"
#include "crypto/keyring.h"
#include "macro.h"

#define BACKUP_CLI_MAX_DESTS 8
#define BACKUP_CLI_MAX_FROM 8

/* [backup] of coffre.conf */
struct backup_cli_conf {
        struct backup_policy policy;
        char *dest[BACKUP_CLI_MAX_DESTS];
        size_t n_dest;
        char *keyring_dest[BACKUP_CLI_MAX_DESTS];
        size_t n_keyring;
        struct backup_dest_conf dconf; /* s3_* and object_lock* settings (backup/dest.h) */
};

void backup_cli_conf_clear(struct backup_cli_conf *c);
/* Loads coffre.conf (the vault's settings and [backup]); prints why it cannot. */
int backup_cli_load_conf(const char *data, struct vault_config *vc, struct backup_cli_conf *bc) _warn_unused_;
/* Adds "key = value" to [backup] of coffre.conf (made when missing), atomically. */
int backup_cli_conf_add(const char *data, const char *key, const char *value) _warn_unused_;
/* Reads a one-line passphrase file into secure memory (free with backup_cli_free_secret). */
int backup_cli_read_passphrase(const char *file, char **ret) _warn_unused_;
void backup_cli_free_secret(char **p);
int backup_cli_open_master(const char *data, const struct vault_config *vc, struct master_key **ret) _warn_unused_;
/* What a destination or repository error means, for people. */
const char *backup_cli_dest_error(int r);
const char *backup_cli_repo_error(int r);
int backup_cli_open_dest(const char *url, bool create, const struct backup_dest_conf *conf, struct backup_dest **ret)
        _warn_unused_;
/* The last destination's own account of a failure (an S3 server's answer) when there is one,
 * else what backup_cli_repo_error() says, into buf. */
const char *backup_cli_repo_error_of(int r, char *buf, size_t n);

/* --data, --from (repeatable), --master-key, --passphrase-file */
struct backup_cli_open_opts {
        const char *data;
        const char *from[BACKUP_CLI_MAX_FROM];
        size_t n_from;
        const char *master_file;
        const char *pass_file;
        const char *s3_settings; /* without data: a data directory whose [backup] s3_* settings to use */
};

/* The repositories named by --from, or else the configured destinations; repos[i] NULL (and a
 * message) for one that cannot be opened. */
int backup_cli_open_repos(const struct backup_cli_open_opts *o, struct backup_repo **repos, const char **names,
                          size_t *ret_n) _warn_unused_;
/* Takes one of those options: 1 taken, 0 not one of them, -1 too many --from. */
int backup_cli_open_opt(int c, struct backup_cli_open_opts *o);
#define BACKUP_CLI_OPEN_OPTIONS                                                                                      \
        { "data", required_argument, NULL, 'd' }, { "from", required_argument, NULL, 'f' },                          \
                { "master-key", required_argument, NULL, 'm' }, { "passphrase-file", required_argument, NULL, 'p' }, \
                { "json", no_argument, NULL, 'j' }, {                                                                \
                "help", no_argument, NULL, 'h'                                                                       \
        }

const char *backup_cli_series_name(enum backup_series s);
void backup_cli_fmt_time(int64_t t, char *out, size_t n);

/* Problems reported by verify, list, restore: printed, or collected for --json. */
struct backup_cli_collect {
        json_t *problems;
        const char *dest;
        bool json;
        unsigned count;
};

void backup_cli_collect_problem(const char *object, const char *what, void *ud);

/* coffre backup drill (cmd_restore.c) */
int backup_cli_drill(int argc, char **argv);
