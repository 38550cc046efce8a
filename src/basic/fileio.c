/* fileio.c: durable file helpers. */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int write_all(int fd, const void *p, size_t n) {
        const uint8_t *q = p;
        while (n > 0) {
                ssize_t w = write(fd, q, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                q += w;
                n -= (size_t) w;
        }
        return 0;
}

ssize_t read_full(int fd, void *p, size_t n) {
        uint8_t *q = p;
        size_t got = 0;
        while (got < n) {
                ssize_t r = read(fd, q + got, n - got);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r == 0)
                        break;
                got += (size_t) r;
        }
        return (ssize_t) got;
}

int fsync_dir(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

int fsync_parent(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        char *slash = strrchr(copy, '/');
        if (!slash)
                return fsync_dir(".");
        if (slash == copy)
                return fsync_dir("/");
        *slash = 0;
        return fsync_dir(copy);
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1;; p++) {
                if (*p == '/' || *p == 0) {
                        char c = *p;
                        *p = 0;
                        if (mkdir(copy, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        *p = c;
                        if (c == 0)
                                break;
                }
        }
        return 0;
}

char *path_join(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 2);
        if (!s)
                return NULL;
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
        return s;
}

int write_file_atomic(const char *path, const void *p, size_t n, mode_t mode, int exclusive) {
        size_t l = strlen(path);
        _cleanup_free_ char *tmp = malloc(l + 16);
        int r;

        if (!tmp)
                return -ENOMEM;
        snprintf(tmp, l + 16, "%s.tmp%06d", path, (int) (getpid() % 1000000));
        if (exclusive && access(path, F_OK) == 0)
                return -EEXIST;
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return negative_errno();
        if (fchmod(fd, mode) < 0)
                goto fail_errno;
        r = write_all(fd, p, n);
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0)
                goto fail_errno;
        if (exclusive) {
                if (link(tmp, path) < 0)
                        goto fail_errno;
                unlink(tmp);
        } else if (rename(tmp, path) < 0)
                goto fail_errno;
        return fsync_parent(path);
fail_errno:
        r = negative_errno();
fail:
        unlink(tmp);
        return r;
}

int read_file(const char *path, size_t max, struct buf *ret) {
        struct buf b;
        uint8_t chunk[8192];

        buf_init(&b, max);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        for (;;) {
                ssize_t n = read_full(fd, chunk, sizeof chunk);
                if (n < 0) {
                        buf_free(&b);
                        return (int) n;
                }
                if (n == 0)
                        break;
                int r = buf_append(&b, chunk, (size_t) n);
                if (r < 0) {
                        buf_free(&b);
                        return r == -E2BIG ? -EFBIG : r;
                }
        }
        if (buf_reserve(&b, 0) < 0) {
                buf_free(&b);
                return -ENOMEM;
        }
        b.data[b.len] = 0;
        *ret = b;
        return 0;
}

int read_file_secret(const char *path, size_t max, struct buf *ret) {
        struct stat st;

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        struct buf b;
        buf_init(&b, max);
        if (buf_reserve(&b, (size_t) st.st_size) < 0)
                return -ENOMEM;
        ssize_t n = read_full(fd, b.data, (size_t) st.st_size);
        uint8_t extra;
        /* a file that changed size while read is refused rather than half-read */
        if (n < 0 || (size_t) n != (size_t) st.st_size || read_full(fd, &extra, 1) != 0) {
                buf_free_secure(&b);
                return n < 0 ? (int) n : -EIO;
        }
        b.len = (size_t) n;
        b.data[b.len] = 0;
        *ret = b;
        return 0;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(p) < 0 ? -1 : 0;
}

int rm_rf(const char *path) {
        if (nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        return 0;
}
