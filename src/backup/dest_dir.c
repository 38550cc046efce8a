/* dest_dir.c: a backup destination in a local or mounted directory. Objects are written to a
 * temporary name, synced, then linked to their name (link() never replaces an existing file),
 * so a crash leaves either the whole object or none (plus a *.tmp.* file that listing skips). */
#include "backup/dest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "hex.h"

struct dir_priv {
        char *root;
};

static bool name_ok(const char *name) {
        /* relative, no "..", no empty component, no hidden files */
        if (!name || !*name || name[0] == '/' || strlen(name) > 512)
                return false;
        for (const char *p = name; *p; p++) {
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '/' || *p == '-' || *p == '_' ||
                      *p == '.'))
                        return false;
                if ((p == name || p[-1] == '/') && (*p == '.' || *p == '/'))
                        return false;
        }
        return name[strlen(name) - 1] != '/';
}

static char *full_path(struct backup_dest *d, const char *name) {
        struct dir_priv *pv = d->priv;
        return name_ok(name) ? path_join(pv->root, name) : NULL;
}

static int dir_put(struct backup_dest *d, const char *name, const void *p, size_t n) {
        _cleanup_free_ char *path = full_path(d, name), *tmp = NULL, *parent = NULL;
        _cleanup_close_ int fd = -1;
        uint8_t rnd[8];
        char rhex[17];
        char *slash;
        int r;

        if (!path)
                return -EINVAL;
        parent = strdup(path);
        if (!parent)
                return -ENOMEM;
        slash = strrchr(parent, '/');
        *slash = 0;
        r = mkdir_p(parent, 0700);
        if (r < 0)
                return r;
        randombytes_buf(rnd, sizeof rnd);
        hex_encode(rnd, sizeof rnd, rhex);
        size_t tl = strlen(path) + 6 + sizeof rhex;
        tmp = malloc(tl);
        if (!tmp)
                return -ENOMEM;
        snprintf(tmp, tl, "%s.tmp.%s", path, rhex);
        if (access(path, F_OK) == 0)
                return -EEXIST;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        r = write_all(fd, p, n);
        if (r == 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r == 0 && link(tmp, path) < 0)
                r = negative_errno();
        (void) unlink(tmp);
        if (r == 0)
                r = fsync_dir(parent);
        return r;
}

static int dir_get(struct backup_dest *d, const char *name, uint64_t off, uint64_t len, struct buf *out) {
        _cleanup_free_ char *path = full_path(d, name);
        _cleanup_close_ int fd = -1;
        struct stat st;
        ssize_t got;
        int r;

        if (!path)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (off > (uint64_t) st.st_size)
                return -EBADMSG;
        if (len == BACKUP_DEST_WHOLE)
                len = (uint64_t) st.st_size - off;
        if (len > BACKUP_OBJECT_MAX)
                return -EFBIG;
        if (off + len > (uint64_t) st.st_size)
                return -EBADMSG;
        r = buf_reserve(out, (size_t) len + 1);
        if (r < 0)
                return r;
        if (lseek(fd, (off_t) off, SEEK_SET) < 0)
                return negative_errno();
        got = read_full(fd, out->data + out->len, (size_t) len);
        if (got < 0)
                return (int) got;
        if ((uint64_t) got != len)
                return -EBADMSG;
        out->len += (size_t) len;
        return 0;
}

static int list_rec(const char *root, const char *rel, const char *prefix, backup_dest_list_fn fn, void *ud,
                    unsigned depth) {
        _cleanup_free_ char *dir = rel[0] ? path_join(root, rel) : strdup(root);
        DIR *dp;
        struct dirent *de;
        int r = 0;

        if (!dir)
                return -ENOMEM;
        if (depth > 4)
                return 0;
        dp = opendir(dir);
        if (!dp)
                return errno == ENOENT ? 0 : negative_errno();
        while (r >= 0 && (errno = 0, de = readdir(dp))) {
                if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp."))
                        continue;
                _cleanup_free_ char *child = rel[0] ? path_join(rel, de->d_name) : strdup(de->d_name);
                if (!child) {
                        r = -ENOMEM;
                        break;
                }
                size_t cl = strlen(child), pl = strlen(prefix);
                /* descend only where the prefix may still match */
                if (strncmp(child, prefix, MIN(cl, pl)) != 0)
                        continue;
                struct stat st;
                _cleanup_free_ char *full = path_join(root, child);
                if (!full) {
                        r = -ENOMEM;
                        break;
                }
                if (lstat(full, &st) < 0) {
                        r = negative_errno();
                        break;
                }
                if (S_ISDIR(st.st_mode))
                        r = list_rec(root, child, prefix, fn, ud, depth + 1);
                else if (S_ISREG(st.st_mode) && cl >= pl)
                        r = fn(child, (uint64_t) st.st_size, (int64_t) st.st_mtime, ud);
        }
        if (r >= 0 && errno)
                r = negative_errno();
        closedir(dp);
        return r;
}

static int dir_list(struct backup_dest *d, const char *prefix, backup_dest_list_fn fn, void *ud) {
        struct dir_priv *pv = d->priv;
        return list_rec(pv->root, "", prefix, fn, ud, 0);
}

static int dir_del(struct backup_dest *d, const char *name) {
        _cleanup_free_ char *path = full_path(d, name);
        if (!path)
                return -EINVAL;
        if (unlink(path) < 0)
                return negative_errno();
        return fsync_parent(path);
}

static int dir_stat(struct backup_dest *d, const char *name, uint64_t *ret_size, int64_t *ret_mtime) {
        _cleanup_free_ char *path = full_path(d, name);
        struct stat st;
        if (!path)
                return -EINVAL;
        if (lstat(path, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        *ret_size = (uint64_t) st.st_size;
        *ret_mtime = (int64_t) st.st_mtime;
        return 0;
}

static void dir_free(struct backup_dest *d) {
        struct dir_priv *pv = d->priv;
        if (pv)
                free(pv->root);
        free(pv);
}

static const struct backup_dest_ops dir_ops = {
        .scheme = "dir",
        .put = dir_put,
        .get = dir_get,
        .list = dir_list,
        .del = dir_del,
        .stat = dir_stat,
        .free = dir_free,
};

int backup_dest_dir_open(const char *path, bool create, struct backup_dest **ret) {
        struct backup_dest *d;
        struct dir_priv *pv;
        struct stat st;
        int r;

        if (!path || path[0] != '/')
                return -EINVAL;
        if (create) {
                r = mkdir_p(path, 0700);
                if (r < 0)
                        return r;
        }
        if (stat(path, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        d = calloc(1, sizeof *d);
        pv = calloc(1, sizeof *pv);
        if (!d || !pv || !(pv->root = strdup(path)) || !(d->url = strdup(path))) {
                if (pv)
                        free(pv->root);
                free(pv);
                if (d)
                        free(d->url);
                free(d);
                return -ENOMEM;
        }
        d->ops = &dir_ops;
        d->priv = pv;
        *ret = d;
        return 0;
}

int backup_dest_open_conf(const char *url, bool create, const struct backup_dest_conf *conf, struct backup_dest **ret) {
        if (!url)
                return -EINVAL;
        if (strncmp(url, "file://", 7) == 0)
                return backup_dest_dir_open(url + 7, create, ret);
        if (url[0] == '/')
                return backup_dest_dir_open(url, create, ret);
        if (strncmp(url, "s3://", 5) == 0)
                return backup_dest_s3_open(url, conf, ret);
        return -EINVAL;
}

int backup_dest_open(const char *url, bool create, struct backup_dest **ret) {
        return backup_dest_open_conf(url, create, NULL, ret);
}

int backup_dest_put_series(struct backup_dest *d, const char *name, int series, const void *p, size_t n) {
        if (d->ops->put_series)
                return d->ops->put_series(d, name, series, p, n);
        return d->ops->put(d, name, p, n);
}

const char *backup_dest_strerror(struct backup_dest *d, int r) {
        const char *e = d && d->ops && d->ops->error ? d->ops->error(d) : NULL;
        return e && *e ? e : strerror(r < 0 ? -r : r);
}

void backup_dest_free(struct backup_dest *d) {
        if (!d)
                return;
        if (d->ops && d->ops->free)
                d->ops->free(d);
        free(d->url);
        free(d);
}
