/* fileio.h: durable file helpers: full reads and writes, fsync of files and directories. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "macro.h"

/* Writes all n bytes, retrying on EINTR and short writes. */
int write_all(int fd, const void *p, size_t n) _warn_unused_;
/* Reads up to n bytes; returns the count read (short only at end of file) or a negative errno. */
ssize_t read_full(int fd, void *p, size_t n);
/* fsyncs the directory that holds path (or the directory itself when is_dir). */
int fsync_dir(const char *dir) _warn_unused_;
int fsync_parent(const char *path) _warn_unused_;
/* mkdir -p with the given mode for created components. */
int mkdir_p(const char *path, mode_t mode) _warn_unused_;
/* Writes path atomically and durably: tmp file beside it, fsync, rename, fsync dir.
 * Fails with -EEXIST when exclusive and path exists. */
int write_file_atomic(const char *path, const void *p, size_t n, mode_t mode, int exclusive) _warn_unused_;
/* Reads a whole file, refusing files larger than max (-EFBIG). */
int read_file(const char *path, size_t max, struct buf *ret) _warn_unused_;
/* Like read_file, for a file that holds a secret: one allocation of the file's size (no
 * realloc leaves unwiped copies behind) and no copy on the stack. Free with buf_free_secure. */
int read_file_secret(const char *path, size_t max, struct buf *ret) _warn_unused_;
/* Removes a directory tree (for tests and clean-up of temp dirs). */
int rm_rf(const char *path);
/* path_join into a malloc'd string; NULL on allocation failure. */
char *path_join(const char *a, const char *b);
