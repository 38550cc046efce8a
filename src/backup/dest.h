/* dest.h: where a backup repository lives. A destination stores named, write-once objects
 * ("config", "packs/xx/ID", "index/ID", "snapshots/ID") and knows nothing of their content.
 * One file per kind: dest_dir.c (a local or mounted directory); an S3 destination plugs in
 * the same way. */
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
};

struct backup_dest {
        const struct backup_dest_ops *ops;
        char *url; /* as configured */
        void *priv;
};

/* Opens a destination by URL: an absolute path (or file:///path) is a directory, which must
 * exist unless create. -EPROTONOSUPPORT for a scheme this build does not support (s3:// until
 * the S3 client exists), -EINVAL for anything else. */
int backup_dest_open(const char *url, bool create, struct backup_dest **ret) _warn_unused_;
void backup_dest_free(struct backup_dest *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_dest *, backup_dest_free);

int backup_dest_dir_open(const char *path, bool create, struct backup_dest **ret) _warn_unused_;
