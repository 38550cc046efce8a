/* test_tmpfs.h: a small tmpfs, private to the test process, for full-disk tests. */
#pragma once

#include <stddef.h>

/* Moves the process into a mount namespace of its own (a user namespace too when not root, or
 * when root lacks CAP_SYS_ADMIN, as in many containers) and
 * mounts a tmpfs of size_bytes on a new temporary directory. Call before starting any thread.
 * Returns 0 and the directory (malloc'd), or a negative errno: the caller then skips (exit 77). */
int test_tmpfs_mount(size_t size_bytes, char **ret_dir);
/* Unmounts and removes the directory, and frees dir. */
void test_tmpfs_unmount(char *dir);
