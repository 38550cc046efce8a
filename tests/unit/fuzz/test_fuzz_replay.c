/* test_fuzz_replay.c: tests of the corpus replay itself (fuzz/replay_main.c, linked here with the
 * time target) and of the corpora's shape: the replay must fail on a mislabelled seed, an empty or
 * missing corpus, and every corpus must hold a small set of labelled seeds.
 * argv[1] is the fuzz/ source directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "fuzz.h"

/* replay_main.c's main, renamed by the build */
int fuzz_replay_main(int argc, char **argv);

static const char *fuzz_dir;

static int replay(const char *dir) {
        char *argv[] = { (char *) "fuzz-time", (char *) dir, NULL };
        return fuzz_replay_main(2, argv);
}

static char *make_corpus(const char *name, const char *content) {
        char tmpl[] = "/tmp/coffre-fuzz-replay-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        if (name) {
                _cleanup_free_ char *p = path_join(tmpl, name);
                assert_non_null(p);
                assert_int_equal(write_file_atomic(p, content, strlen(content), 0600, 1), 0);
        }
        return strdup(tmpl);
}

static void test_real_corpus_passes(void **state) {
        (void) state;
        _cleanup_free_ char *d = path_join(fuzz_dir, "corpus/time");
        assert_int_equal(replay(d), 0);
}

static void test_labels_are_enforced(void **state) {
        (void) state;
        static const struct {
                const char *name, *content;
                int want;
        } cases[] = {
                { "ok-date", "2026-11-27", 0 },
                { "bad-date", "2026-11-27", 1 },         /* accepted, labelled bad: the replay fails */
                { "ok-garbage", "27/11/2026", 1 },       /* refused, labelled ok */
                { "bad-garbage", "27/11/2026", 0 },
                { "seed-garbage", "27/11/2026", 0 },     /* no label, no expectation */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *d = make_corpus(cases[i].name, cases[i].content);
                int r = replay(d);
                rm_rf(d);
                if (r != cases[i].want)
                        fail_msg("%s: replay gave %d, want %d", cases[i].name, r, cases[i].want);
        }
}

static void test_empty_or_missing_corpus_fails(void **state) {
        (void) state;
        _cleanup_free_ char *d = make_corpus(NULL, NULL);
        assert_int_equal(replay(d), 1);
        rm_rf(d);
        assert_int_equal(replay("/nonexistent/coffre/corpus"), 1);
}

/* Every target's corpus: 10-30 seeds (the older note corpus at least 5), none over the input cap,
 * and both accepted and refused examples so the replay checks both ways. */
static void test_corpora_shape(void **state) {
        (void) state;
        static const char *const targets[] = { "entry", "time", "base64", "base32", "object", "config", "merkle_proof", "note" };
        for (size_t t = 0; t < ELEMENTSOF(targets); t++) {
                _cleanup_free_ char *d = path_join(fuzz_dir, "corpus");
                _cleanup_free_ char *cd = path_join(d, targets[t]);
                unsigned n = 0, ok = 0, bad = 0;
                DIR *dir = opendir(cd);
                struct dirent *de;
                if (!dir)
                        fail_msg("no corpus for %s", targets[t]);
                while ((de = readdir(dir))) {
                        struct stat st;
                        if (de->d_name[0] == '.')
                                continue;
                        _cleanup_free_ char *p = path_join(cd, de->d_name);
                        assert_int_equal(stat(p, &st), 0);
                        if (!S_ISREG(st.st_mode) || (size_t) st.st_size > FUZZ_MAX_INPUT)
                                fail_msg("%s: not a regular file under the cap", p);
                        n++;
                        ok += strncmp(de->d_name, "ok-", 3) == 0;
                        bad += strncmp(de->d_name, "bad-", 4) == 0;
                }
                closedir(dir);
                if (strcmp(targets[t], "note") == 0) {
                        assert_true(n >= 5);
                        continue;
                }
                if (n < 10 || n > 30 || ok == 0 || bad == 0)
                        fail_msg("%s: %u seeds (%u ok, %u bad)", targets[t], n, ok, bad);
        }
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_real_corpus_passes),
                cmocka_unit_test(test_labels_are_enforced),
                cmocka_unit_test(test_empty_or_missing_corpus_fails),
                cmocka_unit_test(test_corpora_shape),
        };
        if (argc < 2) {
                fprintf(stderr, "usage: %s FUZZ_SOURCE_DIR\n", argv[0]);
                return 2;
        }
        fuzz_dir = argv[1];
        return cmocka_run_group_tests(tests, NULL, NULL);
}
