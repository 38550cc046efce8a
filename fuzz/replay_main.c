/* replay_main.c: runs a fuzz target without libFuzzer, over every file of the corpus directories
 * given as arguments, so `meson test` replays each corpus with gcc. A seed named "ok-*" must be
 * accepted and one named "bad-*" refused; every target defines fuzz_verdict (fuzz.h) and sets it on
 * every call, so a target cannot link without it nor silently skip the label checks. A crash or
 * an abort() of a target's property check fails the test, as it would under libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fuzz.h"


static int replay_one(const char *dir, const char *name) {
        _cleanup_free_ char *p = path_join(dir, name);
        _cleanup_buf_ struct buf b;
        int r;

        buf_init(&b, FUZZ_MAX_INPUT + 1);
        if (!p)
                return -ENOMEM;
        r = read_file(p, FUZZ_MAX_INPUT, &b);
        if (r < 0) {
                fprintf(stderr, "%s: cannot read: %s\n", p, strerror(-r));
                return r;
        }
        fuzz_verdict = -1;
        /* a copy of exactly the input's size, so ASan sees reads past the end as libFuzzer would */
        _cleanup_free_ uint8_t *copy = malloc(b.len ? b.len : 1);
        if (!copy)
                return -ENOMEM;
        if (b.len)
                memcpy(copy, b.data, b.len);
        LLVMFuzzerTestOneInput(copy, b.len);
        int want = strncmp(name, "ok-", 3) == 0 ? 1 : strncmp(name, "bad-", 4) == 0 ? 0 : -1;
        if (fuzz_verdict != 0 && fuzz_verdict != 1) {
                fprintf(stderr, "%s: the target set no verdict\n", p);
                return -EPROTO;
        }
        if (want >= 0 && fuzz_verdict != want) {
                fprintf(stderr, "%s: %s, but the file name says it must be %s\n", p,
                        fuzz_verdict ? "accepted" : "refused", want ? "accepted" : "refused");
                return -EPROTO;
        }
        return 0;
}

int main(int argc, char **argv) {
        unsigned n = 0, failed = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                if (!d) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        if (replay_one(argv[i], de->d_name) < 0)
                                failed++;
                        n++;
                }
                closedir(d);
        }
        printf("replayed %u inputs, %u failed\n", n, failed);
        if (n == 0) {
                fprintf(stderr, "empty corpus\n");
                return 1;
        }
        return failed ? 1 : 0;
}
