/* blob.h: the object storage interface. One file per backend (fs.c now, s3.c later). Objects are
 * opaque encrypted bytes named by a 32-hex-character id. Knows nothing about keys or HTTP. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

struct blob;
struct blob_writer;
struct blob_reader;

struct blob_ops {
        const char *name;
        void (*close)(struct blob *b);

        /* Starts a new object; nothing is visible under id until commit. */
        int (*writer_open)(struct blob *b, const char *id, struct blob_writer **ret);
        int (*writer_write)(struct blob_writer *w, const void *p, size_t n);
        /* Makes the object durable and visible (fs: fsync, rename, fsync dir), frees w. -EEXIST if id exists. */
        int (*writer_commit)(struct blob_writer *w);
        /* Discards everything written, frees w. NULL-safe. */
        void (*writer_abort)(struct blob_writer *w);

        int (*reader_open)(struct blob *b, const char *id, struct blob_reader **ret, uint64_t *ret_size);
        /* Reads exactly n bytes at off, or fails (-EIO/-EBADMSG on a short object). */
        int (*reader_pread)(struct blob_reader *r, void *p, size_t n, uint64_t off);
        void (*reader_close)(struct blob_reader *r);

        /* Durable removal; -ENOENT when absent. */
        int (*remove)(struct blob *b, const char *id);
        /* Removes leftovers of interrupted writes; returns how many were removed. */
        int (*cleanup_tmp)(struct blob *b);
        /* Calls cb for each committed object id. */
        int (*foreach)(struct blob *b, int (*cb)(const char *id, void *ud), void *ud);
        /* Optional (NULL when there is nothing to do): readies the store for a server's writes.
         * fs: makes every first-level directory and syncs each directory once, so that commits
         * sync no parent directory they did not create themselves. */
        int (*prepare_writes)(struct blob *b);
};

struct blob {
        const struct blob_ops *ops;
};

/* root = DATA: objects under root/objects/xx/yy/ID, uploads in root/tmp/. */
int blob_fs_open(const char *root, bool create, struct blob **ret) _warn_unused_;

static inline void blob_close(struct blob *b) {
        if (b)
                b->ops->close(b);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct blob *, blob_close);
