/* dest.h: where a backup repository lives. A destination stores named, write-once objects
 * ("config", "packs/xx/ID", "index/ID", "snapshots/ID") and knows nothing of their content.
 * One file per kind: dest_dir.c (a local or mounted directory), dest_s3.c (s3://bucket/prefix
 * on any S3-compatible service, with its settings from coffre.conf's [backup] section). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

#define BACKUP_DEST_WHOLE UINT64_MAX /* get(): to the end */
#define BACKUP_OBJECT_MAX ((size_t) 128 << 20)

struct backup_dest;

/* list() callback: one object, with the destination's own modification time (file mtime, S3
 * Last-Modified), in seconds since the epoch. A negative return stops the listing with it. */
typedef int (*backup_dest_list_fn)(const char *name, uint64_t size, int64_t mtime, void *ud);

struct backup_dest_ops {
        const char *scheme;
        /* Stores name durably; never replaces: -EEXIST when it exists. -ENOSPC when full. */
        int (*put)(struct backup_dest *d, const char *name, const void *p, size_t n);
        /* Appends len bytes from off (BACKUP_DEST_WHOLE: the rest) to out; -ENOENT when absent,
         * -EBADMSG when the object is shorter than asked. */
        int (*get)(struct backup_dest *d, const char *name, uint64_t off, uint64_t len, struct buf *out);
        /* Every object whose name starts with prefix ("packs/", "index/", "snapshots/"). */
        int (*list)(struct backup_dest *d, const char *prefix, backup_dest_list_fn fn, void *ud);
        int (*del)(struct backup_dest *d, const char *name);
        int (*stat)(struct backup_dest *d, const char *name, uint64_t *ret_size, int64_t *ret_mtime);
        void (*free)(struct backup_dest *d);
        /* Optional. put() of an object of one series (enum backup_series), for destinations
         * that lock objects for a time set by series (S3 Object Lock: the keyring series must
         * not be kept past its short retention). */
        int (*put_series)(struct backup_dest *d, const char *name, int series, const void *p, size_t n);
        /* Optional: what the last failed call said (a server's error code and message). */
        const char *(*error)(struct backup_dest *d);
};

struct backup_dest {
        const struct backup_dest_ops *ops;
        char *url; /* as configured */
        void *priv;
};

/* Settings of S3 destinations, from coffre.conf's [backup] section: "s3_KEY = V" for every
 * S3 destination, "s3_KEY[BUCKET] = V" for one bucket (it wins). See docs/operations.md. */
struct backup_s3_settings {
        char *endpoint, *region, *access_key_id, *secret_key_file, *session_token_file, *ca_file;
        int path_style;            /* -1: not set */
        int if_none_match;         /* -1: not set */
        int lock_mode;             /* -1: not set; 0 none, 1 governance, 2 compliance */
        int64_t lock_days;         /* -1: not set; data series */
        int64_t keyring_lock_days; /* -1: not set; keyring series */
        int64_t part_size;         /* -1: not set */
};
#define BACKUP_S3_BUCKETS_MAX 8
struct backup_dest_conf {
        bool set_up;    /* by backup_dest_conf_init(); else taken as empty */
        char *base_dir; /* relative file names are taken from here (the data directory) */
        struct backup_s3_settings all;
        struct {
                char *bucket;
                struct backup_s3_settings s;
        } bucket[BACKUP_S3_BUCKETS_MAX];
        size_t n_bucket;
};
/* One "name = value" of [backup]: 1 when it is a destination setting (taken), 0 when it is
 * not one, -EINVAL for a bad value, -E2BIG past BACKUP_S3_BUCKETS_MAX buckets. */
void backup_dest_conf_init(struct backup_dest_conf *c);
int backup_dest_conf_set(struct backup_dest_conf *c, const char *name, const char *value) _warn_unused_;
void backup_dest_conf_clear(struct backup_dest_conf *c);

/* Opens a destination by URL: an absolute path (or file:///path) is a directory, which must
 * exist unless create; s3://bucket[/prefix] an S3 bucket, with the settings of conf (NULL:
 * the AWS_* environment alone). -EPROTONOSUPPORT for a scheme this build does not support,
 * -EINVAL for anything else. */
int backup_dest_open_conf(const char *url, bool create, const struct backup_dest_conf *conf, struct backup_dest **ret)
        _warn_unused_;
int backup_dest_open(const char *url, bool create, struct backup_dest **ret) _warn_unused_;
/* Stores an object of a series (put_series where the destination has it, else put). */
int backup_dest_put_series(struct backup_dest *d, const char *name, int series, const void *p, size_t n) _warn_unused_;
/* The destination's own account of the last failure when it has one, else strerror(-r). */
const char *backup_dest_strerror(struct backup_dest *d, int r);
/* What the last failing call of any destination of this thread said (NULL: nothing since the
 * last clear), for failures met after a destination was handed on (backup_repo_open() takes
 * and frees it). */
const char *backup_dest_last_error(void);
void backup_dest_error_clear(void);
void backup_dest_free(struct backup_dest *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_dest *, backup_dest_free);

int backup_dest_dir_open(const char *path, bool create, struct backup_dest **ret) _warn_unused_;
/* url: "s3://bucket" or "s3://bucket/prefix". */
int backup_dest_s3_open(const char *url, const struct backup_dest_conf *conf, struct backup_dest **ret) _warn_unused_;
