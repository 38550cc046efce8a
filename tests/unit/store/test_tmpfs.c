/* test_tmpfs.c: mounts a size-limited tmpfs in a private mount namespace, so full-disk tests need
 * neither a real full disk nor a mount that outlives the test (the namespace dies with it). */
#include "test_tmpfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static int write_proc(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, text, strlen(text));
        int r = n == (ssize_t) strlen(text) ? 0 : -EIO;
        close(fd);
        return r;
}

/* A user namespace with our own ids mapped, plus a mount namespace it owns: gives the right to
 * mount a tmpfs without any privilege outside. */
static int enter_user_namespace(void) {
        char map[64];
        uid_t uid = geteuid();
        gid_t gid = getegid();

        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
                return -errno;
        (void) write_proc("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "%u %u 1", (unsigned) uid, (unsigned) uid);
        if (write_proc("/proc/self/uid_map", map) < 0)
                return -EPERM;
        snprintf(map, sizeof map, "%u %u 1", (unsigned) gid, (unsigned) gid);
        if (write_proc("/proc/self/gid_map", map) < 0)
                return -EPERM;
        return 0;
}

int test_tmpfs_mount(size_t size_bytes, char **ret_dir) {
        char opts[64];
        int r = -EPERM;

        /* root in a container often lacks CAP_SYS_ADMIN: then the user namespace way, as for
         * anyone else. */
        if (geteuid() == 0 && unshare(CLONE_NEWNS) == 0)
                r = 0;
        if (r < 0) {
                r = enter_user_namespace();
                if (r < 0)
                        return r;
        }
        /* Keep our mounts out of the parent namespace. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        const char *base = getenv("TMPDIR");
        char tmpl[512];
        snprintf(tmpl, sizeof tmpl, "%s/coffre-tmpfs-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpl))
                return -errno;
        snprintf(opts, sizeof opts, "size=%zu,mode=0700", size_bytes);
        if (mount("tmpfs", tmpl, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
                r = -errno;
                rmdir(tmpl);
                return r;
        }
        char *dir = strdup(tmpl);
        if (!dir)
                return -ENOMEM;
        *ret_dir = dir;
        return 0;
}

void test_tmpfs_unmount(char *dir) {
        if (!dir)
                return;
        (void) umount2(dir, MNT_DETACH);
        (void) rmdir(dir);
        free(dir);
}
