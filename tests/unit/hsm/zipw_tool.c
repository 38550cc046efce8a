/* zipw_tool.c: writes a ZIP with basic/zipw.c, for test_evidence.py: every FILE but the last as a
 * memory entry, the last as the stream entry (read from its file as the archive is written).
 *   zipw_tool [--zip64] OUT NAME=FILE...
 * Exit 0, or 1 with the reason on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "zipw.h"

static ssize_t read_fd(void *ud, uint64_t off, uint8_t *buf, size_t max) {
        ssize_t n = pread(*(int *) ud, buf, max, (off_t) off);
        return n < 0 ? -errno : n;
}

int main(int argc, char **argv) {
        int i = 1;
        int zip64 = argc > 1 && strcmp(argv[1], "--zip64") == 0;
        i += zip64;
        if (argc - i < 2) {
                fprintf(stderr, "usage: zipw_tool [--zip64] OUT NAME=FILE...\n");
                return 2;
        }
        const char *out = argv[i++];
        struct zipw *z = NULL;
        int fd = -1;
        if (zipw_new(&z) < 0)
                return 1;
        for (; i < argc; i++) {
                char *eq = strchr(argv[i], '=');
                if (!eq)
                        return 2;
                *eq = 0;
                int r;
                if (i == argc - 1) {
                        struct stat st;
                        fd = open(eq + 1, O_RDONLY | O_CLOEXEC);
                        if (fd < 0 || fstat(fd, &st) < 0)
                                return 1;
                        r = zipw_add_stream(z, argv[i], (uint64_t) st.st_size, read_fd, &fd);
                } else {
                        struct buf b;
                        r = read_file(eq + 1, 1 << 24, &b);
                        if (r >= 0)
                                r = zipw_add_mem(z, argv[i], b.data, b.len);
                        buf_free(&b);
                }
                if (r < 0) {
                        fprintf(stderr, "zipw_tool: %s: %s\n", argv[i], strerror(-r));
                        return 1;
                }
        }
        if (zip64)
                zipw_force_zip64(z);
        uint64_t size = zipw_size(z), total = 0;
        FILE *f = fopen(out, "we");
        uint8_t buf[7000]; /* odd-sized reads, as a server's would be */
        ssize_t n;
        while (f && (n = zipw_read(z, buf, sizeof buf)) > 0) {
                fwrite(buf, 1, (size_t) n, f);
                total += (uint64_t) n;
        }
        if (!f || fclose(f) != 0 || total != size) {
                fprintf(stderr, "zipw_tool: wrote %llu bytes, announced %llu\n", (unsigned long long) total,
                        (unsigned long long) size);
                return 1;
        }
        zipw_free(z);
        return 0;
}
