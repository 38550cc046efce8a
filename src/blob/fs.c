/* fs.c: the local-directory object store behind struct blob_ops.
 *
 * Committed objects live at ROOT/objects/xx/yy/ID (xx, yy = the first four hex characters of the
 * id). An upload is written to a named file in ROOT/tmp/ (same filesystem), through a 1 MiB
 * buffer; commit flushes it, fdatasyncs it, renames it into place without replacing anything and
 * fsyncs the directory, so an object is either absent or whole and durable. Everything is done
 * relative to directory descriptors opened once, and ids are checked on every call, so no path
 * from outside ever reaches the filesystem. */
#include "blob/blob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"

#define BLOB_ID_LEN 32
#define WRITE_BUF_SIZE ((size_t) 1024 * 1024)
#define WRITE_BUF_FIRST ((size_t) 128 * 1024) /* grown up to WRITE_BUF_SIZE as an object grows */
#define WRITEBACK_STEP ((uint64_t) 8 * 1024 * 1024)
#define TMP_NAME_MAX (BLOB_ID_LEN + 1 + 16 + 4 + 1) /* ID.<16 hex>.tmp */

struct fs_writer;

struct fs_blob {
        struct blob base;
        char *root;
        int root_fd, objects_fd, tmp_fd;
        pthread_mutex_t lock;      /* guards the writer list */
        /* directories known to be durably linked into their parent (bit per xx, per xx/yy) */
        _Atomic uint8_t durable_xx[256 / 8];
        _Atomic uint8_t durable_yy[65536 / 8];
        struct fs_writer *writers; /* uploads in progress, which cleanup_tmp leaves alone */
};

struct fs_writer {
        struct fs_blob *b;
        struct fs_writer *prev, *next;
        char id[BLOB_ID_LEN + 1];
        char tmp_name[TMP_NAME_MAX];
        int fd;     /* -1 once the temporary file is gone */
        int error;  /* sticky: after a failure every call returns it */
        uint64_t written, writeback_done;
        uint8_t *buf;
        size_t len, cap;
};

struct fs_reader {
        int fd;
        uint64_t size;
};

static bool id_is_valid(const char *id) {
        if (!id)
                return false;
        for (size_t i = 0; i < BLOB_ID_LEN; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return id[BLOB_ID_LEN] == 0;
}

static bool is_hex2(const char *s) {
        for (size_t i = 0; i < 2; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return s[2] == 0;
}

/* A full disk and a full quota are the same thing to the caller. */
static int space_errno(int r) {
        return r == -EDQUOT ? -ENOSPC : r;
}

/* "xx/yy/ID" for openat() relative to objects/. */
static void object_rel_path(const char *id, char out[3 + 3 + BLOB_ID_LEN + 1]) {
        snprintf(out, 3 + 3 + BLOB_ID_LEN + 1, "%.2s/%.2s/%s", id, id + 2, id);
}

/* Opens (creating) the directory name under dir_fd; fsyncs dir_fd when it created it. Called
 * under b->lock, so a directory another thread made is durable before anyone puts a file in it. */
static bool bit_get(_Atomic uint8_t *bits, unsigned i) {
        return atomic_load(&bits[i / 8]) & (1u << (i % 8));
}

static void bit_set(_Atomic uint8_t *bits, unsigned i) {
        atomic_fetch_or(&bits[i / 8], (uint8_t) (1u << (i % 8)));
}

/* Opens dir_fd/name, creating it if needed. Unless it is already known to be durable, the
 * parent is fsync'ed, also when another thread (or an earlier run) created it: its entry may not
 * be on disk yet. No lock: mkdirat settles races, and a second fsync is harmless. */
static int open_or_make_dir(int dir_fd, const char *name, bool known_durable, int *ret) {
        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT) {
                if (mkdirat(dir_fd, name, 0700) < 0 && errno != EEXIST)
                        return negative_errno();
                known_durable = false;
                fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        }
        if (fd < 0)
                return negative_errno();
        if (!known_durable && fsync(dir_fd) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        *ret = fd;
        return 0;
}

static unsigned hex_byte(const char *p) {
        unsigned v = 0;
        for (int i = 0; i < 2; i++)
                v = v * 16 + (unsigned) (p[i] <= '9' ? p[i] - '0' : p[i] - 'a' + 10);
        return v;
}

static int object_dir(struct fs_blob *b, const char *id, int *ret) {
        char xx[3] = { id[0], id[1], 0 }, yy[3] = { id[2], id[3], 0 };
        unsigned ix = hex_byte(id), iy = ix * 256 + hex_byte(id + 2);
        _cleanup_close_ int xx_fd = -1;
        int yy_fd = -1, r;

        r = open_or_make_dir(b->objects_fd, xx, bit_get(b->durable_xx, ix), &xx_fd);
        if (r < 0)
                return r;
        bit_set(b->durable_xx, ix);
        r = open_or_make_dir(xx_fd, yy, bit_get(b->durable_yy, iy), &yy_fd);
        if (r < 0)
                return r;
        bit_set(b->durable_yy, iy);
        *ret = yy_fd;
        return 0;
}

/* --- writer --- */

static void writer_unlink_tmp(struct fs_writer *w) {
        if (w->fd >= 0) {
                (void) unlinkat(w->b->tmp_fd, w->tmp_name, 0);
                close(w->fd);
                w->fd = -1;
        }
}

/* Removes the temporary file at once (a full disk gets its space back) and poisons the writer. */
static int writer_fail(struct fs_writer *w, int r) {
        writer_unlink_tmp(w);
        w->error = space_errno(r);
        return w->error;
}

static void writer_free(struct fs_writer *w) {
        struct fs_blob *b = w->b;

        writer_unlink_tmp(w);
        pthread_mutex_lock(&b->lock);
        if (w->prev)
                w->prev->next = w->next;
        else
                b->writers = w->next;
        if (w->next)
                w->next->prev = w->prev;
        pthread_mutex_unlock(&b->lock);
        free(w->buf);
        free(w);
}

static int fs_writer_open(struct blob *bb, const char *id, struct blob_writer **ret) {
        struct fs_blob *b = (struct fs_blob *) bb;
        char rel[3 + 3 + BLOB_ID_LEN + 1];
        uint8_t rnd[8];
        char rnd_hex[2 * sizeof rnd + 1];
        struct stat st;

        if (!id_is_valid(id) || !ret)
                return -EINVAL;
        /* Refuse early rather than after a long upload; commit checks again, atomically. */
        object_rel_path(id, rel);
        if (fstatat(b->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return -EEXIST;

        struct fs_writer *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->b = b;
        w->fd = -1;
        w->buf = malloc(WRITE_BUF_FIRST);
        w->cap = WRITE_BUF_FIRST;
        if (!w->buf) {
                free(w);
                return -ENOMEM;
        }
        memcpy(w->id, id, sizeof w->id);
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(rnd_hex, sizeof rnd_hex, rnd, sizeof rnd);
        snprintf(w->tmp_name, sizeof w->tmp_name, "%s.%s.tmp", id, rnd_hex);

        /* Create and register under the lock, so cleanup_tmp never sees an unregistered upload. */
        pthread_mutex_lock(&b->lock);
        w->fd = openat(b->tmp_fd, w->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        int r = w->fd < 0 ? space_errno(negative_errno()) : 0;
        if (r == 0) {
                w->next = b->writers;
                if (b->writers)
                        b->writers->prev = w;
                b->writers = w;
        }
        pthread_mutex_unlock(&b->lock);
        if (r < 0) {
                free(w->buf);
                free(w);
                return r;
        }
        *ret = (struct blob_writer *) w;
        return 0;
}

/* Starts writeback of what was written so far, every WRITEBACK_STEP bytes, so that the fsync at
 * commit finds little left to do on large objects and the page cache does not fill up with
 * dirty pages of one upload. */
static void writer_start_writeback(struct fs_writer *w) {
        if (w->written - w->writeback_done < WRITEBACK_STEP)
                return;
        (void) sync_file_range(w->fd, (off64_t) w->writeback_done, (off64_t) (w->written - w->writeback_done),
                               SYNC_FILE_RANGE_WRITE);
        w->writeback_done = w->written;
}

static int writer_flush(struct fs_writer *w) {
        if (w->len == 0)
                return 0;
        int r = write_all(w->fd, w->buf, w->len);
        if (r < 0)
                return writer_fail(w, r);
        w->written += w->len;
        w->len = 0;
        writer_start_writeback(w);
        return 0;
}

static int fs_writer_write(struct blob_writer *ww, const void *p, size_t n) {
        struct fs_writer *w = (struct fs_writer *) ww;
        int r;

        if (!w || (!p && n > 0))
                return -EINVAL;
        if (w->error)
                return w->error;
        if (n > w->cap - w->len && w->cap < WRITE_BUF_SIZE) {
                /* Small objects fit in a small buffer; a larger one grows it once or twice. */
                size_t cap = w->cap;
                while (cap < WRITE_BUF_SIZE && n > cap - w->len)
                        cap *= 2;
                cap = MIN(cap, WRITE_BUF_SIZE);
                uint8_t *nb = realloc(w->buf, cap);
                if (nb) {
                        w->buf = nb;
                        w->cap = cap;
                }
        }
        if (n <= w->cap - w->len) {
                memcpy(w->buf + w->len, p, n);
                w->len += n;
                return 0;
        }
        r = writer_flush(w);
        if (r < 0)
                return r;
        if (n >= w->cap) {
                /* Large writes skip the copy. */
                r = write_all(w->fd, p, n);
                if (r < 0)
                        return writer_fail(w, r);
                w->written += n;
                writer_start_writeback(w);
                return 0;
        }
        memcpy(w->buf, p, n);
        w->len = n;
        return 0;
}

/* Moves tmp/NAME to objects/xx/yy/ID, refusing to replace an existing object. */
static int publish(struct fs_writer *w, int dir_fd) {
        if (renameat2(w->b->tmp_fd, w->tmp_name, dir_fd, w->id, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
                return negative_errno();
        /* Filesystems without RENAME_NOREPLACE: a hard link also refuses to replace. */
        if (linkat(w->b->tmp_fd, w->tmp_name, dir_fd, w->id, 0) < 0)
                return negative_errno();
        (void) unlinkat(w->b->tmp_fd, w->tmp_name, 0);
        return 0;
}

static int fs_writer_commit(struct blob_writer *ww) {
        struct fs_writer *w = (struct fs_writer *) ww;
        _cleanup_close_ int dir_fd = -1;
        int r;

        if (!w)
                return -EINVAL;
        r = w->error;
        if (r < 0)
                goto out;
        r = writer_flush(w);
        if (r < 0)
                goto out;
        /* Start the data's writeback now, so that it runs while the directory is opened (or
         * made and its parent synced); the fdatasync after waits for what is left. */
        (void) sync_file_range(w->fd, (off64_t) w->writeback_done, 0, SYNC_FILE_RANGE_WRITE);
        r = object_dir(w->b, w->id, &dir_fd);
        if (r < 0) {
                r = writer_fail(w, r);
                goto out;
        }
        if (fdatasync(w->fd) < 0) {
                r = writer_fail(w, negative_errno());
                goto out;
        }
        r = publish(w, dir_fd);
        if (r < 0) {
                r = writer_fail(w, r);
                goto out;
        }
        close(w->fd); /* the name is gone from tmp/: nothing left to unlink */
        w->fd = -1;
        if (fsync(dir_fd) < 0) {
                /* Not durable: take it back rather than report an object that may vanish. */
                r = space_errno(negative_errno());
                (void) unlinkat(dir_fd, w->id, 0);
                goto out;
        }
        r = 0;
out:
        writer_free(w);
        return r;
}

static void fs_writer_abort(struct blob_writer *ww) {
        if (ww)
                writer_free((struct fs_writer *) ww);
}

/* --- reader --- */

static int fs_reader_open(struct blob *bb, const char *id, struct blob_reader **ret, uint64_t *ret_size) {
        struct fs_blob *b = (struct fs_blob *) bb;
        char rel[3 + 3 + BLOB_ID_LEN + 1];
        struct stat st;

        if (!id_is_valid(id) || !ret)
                return -EINVAL;
        object_rel_path(id, rel);
        _cleanup_close_ int fd = openat(b->objects_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ELOOP ? -EBADMSG : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        struct fs_reader *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->fd = TAKE_FD(fd);
        r->size = (uint64_t) st.st_size;
        *ret = (struct blob_reader *) r;
        if (ret_size)
                *ret_size = r->size;
        return 0;
}

static int fs_reader_pread(struct blob_reader *rr, void *p, size_t n, uint64_t off) {
        struct fs_reader *r = (struct fs_reader *) rr;
        uint8_t *q = p;

        if (!r || (!p && n > 0))
                return -EINVAL;
        if (off > r->size || n > r->size - off || off > (uint64_t) INT64_MAX)
                return -EBADMSG; /* past the end of the object: it is shorter than its reader expects */
        while (n > 0) {
                ssize_t k = pread(r->fd, q, n, (off_t) off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EBADMSG; /* truncated since it was opened */
                q += k;
                n -= (size_t) k;
                off += (uint64_t) k;
        }
        return 0;
}

static void fs_reader_close(struct blob_reader *rr) {
        struct fs_reader *r = (struct fs_reader *) rr;
        if (!r)
                return;
        close(r->fd);
        free(r);
}

/* --- remove, cleanup, walk --- */

static int fs_remove(struct blob *bb, const char *id) {
        struct fs_blob *b = (struct fs_blob *) bb;
        char dir[3 + 3];

        if (!id_is_valid(id))
                return -EINVAL;
        snprintf(dir, sizeof dir, "%.2s/%.2s", id, id + 2);
        _cleanup_close_ int dir_fd = openat(b->objects_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dir_fd < 0)
                return negative_errno();
        if (unlinkat(dir_fd, id, 0) < 0)
                return negative_errno();
        if (fsync(dir_fd) < 0)
                return negative_errno();
        return 0;
}

static bool is_active_upload(struct fs_blob *b, const char *name) {
        for (struct fs_writer *w = b->writers; w; w = w->next)
                if (strcmp(w->tmp_name, name) == 0)
                        return true;
        return false;
}

static int fs_cleanup_tmp(struct blob *bb) {
        struct fs_blob *b = (struct fs_blob *) bb;
        int removed = 0, r = 0;

        int fd = openat(b->root_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        DIR *d = fdopendir(fd);
        if (!d) {
                r = negative_errno();
                close(fd);
                return r;
        }
        pthread_mutex_lock(&b->lock);
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                r = negative_errno();
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || is_active_upload(b, de->d_name))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        if (errno != EISDIR && errno != EPERM) {
                                r = negative_errno();
                                break;
                        }
                        /* Not ours, but tmp/ is ours: a directory goes too. */
                        _cleanup_free_ char *tmp = path_join(b->root, "tmp");
                        _cleanup_free_ char *path = tmp ? path_join(tmp, de->d_name) : NULL;
                        if (!path) {
                                r = -ENOMEM;
                                break;
                        }
                        r = rm_rf(path);
                        if (r < 0)
                                break;
                }
                removed++;
        }
        pthread_mutex_unlock(&b->lock);
        if (r >= 0 && removed > 0 && fsync(dirfd(d)) < 0)
                r = negative_errno();
        closedir(d);
        return r < 0 ? r : removed;
}

static bool entry_is(int dir_fd, const struct dirent *de, mode_t type) {
        struct stat st;
        if (de->d_type != DT_UNKNOWN)
                return (type == S_IFDIR && de->d_type == DT_DIR) || (type == S_IFREG && de->d_type == DT_REG);
        return fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == type;
}

/* Lists dir_fd/name; calls visit for each entry. Closes nothing it did not open. */
static int walk_dir(int dir_fd, const char *name, int (*visit)(int fd, const struct dirent *de, void *ctx),
                    void *ctx) {
        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno(); /* removed meanwhile */
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        int r = 0;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                r = negative_errno();
                        break;
                }
                r = visit(dirfd(d), de, ctx);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

struct walk_ctx {
        int (*cb)(const char *id, void *ud);
        void *ud;
        char prefix[5];
};

static int visit_object(int fd, const struct dirent *de, void *c) {
        struct walk_ctx *ctx = c;
        if (!id_is_valid(de->d_name) || memcmp(de->d_name, ctx->prefix, 4) != 0 || !entry_is(fd, de, S_IFREG))
                return 0;
        return ctx->cb(de->d_name, ctx->ud);
}

static int visit_yy(int fd, const struct dirent *de, void *c) {
        struct walk_ctx *ctx = c;
        if (!is_hex2(de->d_name) || !entry_is(fd, de, S_IFDIR))
                return 0;
        memcpy(ctx->prefix + 2, de->d_name, 2);
        return walk_dir(fd, de->d_name, visit_object, ctx);
}

static int visit_xx(int fd, const struct dirent *de, void *c) {
        struct walk_ctx *ctx = c;
        if (!is_hex2(de->d_name) || !entry_is(fd, de, S_IFDIR))
                return 0;
        memcpy(ctx->prefix, de->d_name, 2);
        return walk_dir(fd, de->d_name, visit_yy, ctx);
}

static int fs_foreach(struct blob *bb, int (*cb)(const char *id, void *ud), void *ud) {
        struct fs_blob *b = (struct fs_blob *) bb;
        struct walk_ctx ctx = { .cb = cb, .ud = ud };

        if (!cb)
                return -EINVAL;
        int r = walk_dir(b->objects_fd, ".", visit_xx, &ctx);
        return r < 0 ? r : 0;
}

/* --- open and close --- */

static void fs_close(struct blob *bb) {
        struct fs_blob *b = (struct fs_blob *) bb;
        if (!b)
                return;
        if (b->tmp_fd >= 0)
                close(b->tmp_fd);
        if (b->objects_fd >= 0)
                close(b->objects_fd);
        if (b->root_fd >= 0)
                close(b->root_fd);
        pthread_mutex_destroy(&b->lock);
        free(b->root);
        free(b);
}

/* All 256 objects/xx, one sync of objects/ for their entries, then one sync of each xx for the
 * entries of the yy that exist: from then on only a directory created by a commit needs its
 * parent synced. A few hundred directory syncs once at start instead of one per first use. */
static int fs_prepare_writes(struct blob *bb) {
        struct fs_blob *b = (struct fs_blob *) bb;
        static const char hexd[] = "0123456789abcdef";

        for (unsigned ix = 0; ix < 256; ix++) {
                char xx[3] = { hexd[ix >> 4], hexd[ix & 15], 0 };
                if (mkdirat(b->objects_fd, xx, 0700) < 0 && errno != EEXIST)
                        return space_errno(negative_errno());
        }
        if (fsync(b->objects_fd) < 0)
                return negative_errno();
        for (unsigned ix = 0; ix < 256; ix++) {
                char xx[3] = { hexd[ix >> 4], hexd[ix & 15], 0 };
                bool present[256] = { false };
                bool any = false;
                int fd = openat(b->objects_fd, xx, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        return negative_errno();
                bit_set(b->durable_xx, ix);
                int dfd = dup(fd);
                DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
                if (!d) {
                        int r = negative_errno();
                        if (dfd >= 0)
                                close(dfd);
                        close(fd);
                        return r;
                }
                struct dirent *de;
                while ((de = readdir(d))) {
                        struct stat st;
                        if (!is_hex2(de->d_name))
                                continue;
                        if (de->d_type != DT_DIR &&
                            (de->d_type != DT_UNKNOWN || fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                             !S_ISDIR(st.st_mode)))
                                continue;
                        present[hex_byte(de->d_name)] = true;
                        any = true;
                }
                closedir(d);
                if (any && fsync(fd) < 0) {
                        int r = negative_errno();
                        close(fd);
                        return r;
                }
                close(fd);
                for (unsigned iy = 0; iy < 256; iy++)
                        if (present[iy])
                                bit_set(b->durable_yy, ix * 256 + iy);
        }
        return 0;
}

static const struct blob_ops fs_ops = {
        .name = "fs",
        .close = fs_close,
        .writer_open = fs_writer_open,
        .writer_write = fs_writer_write,
        .writer_commit = fs_writer_commit,
        .writer_abort = fs_writer_abort,
        .reader_open = fs_reader_open,
        .reader_pread = fs_reader_pread,
        .reader_close = fs_reader_close,
        .remove = fs_remove,
        .cleanup_tmp = fs_cleanup_tmp,
        .foreach = fs_foreach,
        .prepare_writes = fs_prepare_writes,
};

static int open_subdir(int root_fd, const char *name, bool create, int *ret) {
        if (create) {
                if (mkdirat(root_fd, name, 0700) == 0) {
                        if (fsync(root_fd) < 0)
                                return negative_errno();
                } else if (errno != EEXIST)
                        return negative_errno();
        }
        int fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        *ret = fd;
        return 0;
}

int blob_fs_open(const char *root, bool create, struct blob **ret) {
        struct stat st_objects, st_tmp;
        int r;

        if (!root || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        if (create) {
                r = mkdir_p(root, 0700);
                if (r < 0)
                        return r;
        }
        struct fs_blob *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->base.ops = &fs_ops;
        b->root_fd = b->objects_fd = b->tmp_fd = -1;
        pthread_mutex_init(&b->lock, NULL);
        b->root = strdup(root);
        if (!b->root) {
                r = -ENOMEM;
                goto fail;
        }
        b->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (b->root_fd < 0) {
                r = negative_errno();
                goto fail;
        }
        if ((r = open_subdir(b->root_fd, "objects", create, &b->objects_fd)) < 0 ||
            (r = open_subdir(b->root_fd, "tmp", create, &b->tmp_fd)) < 0)
                goto fail;
        /* Commit is a rename: uploads and objects must share a filesystem. */
        if (fstat(b->objects_fd, &st_objects) < 0 || fstat(b->tmp_fd, &st_tmp) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (st_objects.st_dev != st_tmp.st_dev) {
                r = -EXDEV;
                goto fail;
        }
        if (create && fsync(b->root_fd) < 0) {
                r = negative_errno();
                goto fail;
        }
        *ret = &b->base;
        return 0;
fail:
        fs_close(&b->base);
        return r;
}
