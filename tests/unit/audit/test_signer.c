/* test_signer.c: the signer process: key creation, signing, and its refusals (rollback, fork,
 * wrong origin, loose key permissions), and that it survives garbage on its channel. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/note.h"
#include "buf.h"
#include "fileio.h"
#include "seal/signer.h"

#define ORIGIN "vault.example/log"

struct fixture {
        char dir[64];
        char *keys;
        struct signer *s;
        struct note_verifier *v;
};

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof *f);
        _cleanup_buf_ struct buf vk;
        assert_non_null(f);
        memcpy(f->dir, "/tmp/coffre-signer-XXXXXX", 26);
        assert_non_null(mkdtemp(f->dir));
        f->keys = path_join(f->dir, "keys");
        assert_int_equal(signer_init_keys(f->keys, ORIGIN), 0);
        assert_int_equal(signer_start(f->keys, ORIGIN, &f->s), 0);
        _cleanup_free_ char *vpath = path_join(f->keys, "log.vkey");
        buf_init(&vk, 4096);
        assert_int_equal(read_file(vpath, 4096, &vk), 0);
        assert_true(vk.len > 1 && vk.data[vk.len - 1] == '\n');
        vk.data[--vk.len] = 0;
        assert_int_equal(note_verifier_from_vkey((char *) vk.data, &f->v), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        signer_stop(f->s);
        note_verifier_free(f->v);
        rm_rf(f->dir);
        free(f->keys);
        free(f);
        return 0;
}

static char *checkpoint(const char *origin, uint64_t size, uint8_t fill) {
        merkle_hash root;
        char *body = NULL;
        memset(root.b, fill, sizeof root.b);
        assert_int_equal(checkpoint_format(origin, size, &root, NULL, 0, &body), 0);
        return body;
}

static int sign(struct fixture *f, const char *origin, uint64_t size, uint8_t fill, char **ret_note) {
        _cleanup_free_ char *body = checkpoint(origin, size, fill);
        return signer_sign_checkpoint(f->s, body, strlen(body), ret_note);
}

static void expect_signed(struct fixture *f, uint64_t size, uint8_t fill) {
        _cleanup_free_ char *note = NULL, *body = NULL;
        struct note_verifier *vs[1] = { f->v };
        uint64_t got_size = 0;
        assert_int_equal(sign(f, ORIGIN, size, fill, &note), 0);
        /* what a client sees: a note that opens with the published vkey */
        assert_int_equal(note_open(note, strlen(note), vs, 1, &body, NULL), 0);
        assert_int_equal(checkpoint_parse(body, strlen(body), NULL, &got_size, NULL), 0);
        assert_int_equal(got_size, size);
}

static void test_keys_on_disk(void **state) {
        struct fixture *f = *state;
        struct stat st;
        _cleanup_free_ char *kpath = path_join(f->keys, "log.key"), *vkey = NULL;
        _cleanup_buf_ struct buf vk;

        assert_int_equal(stat(kpath, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(f->keys, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        assert_int_equal(signer_init_keys(f->keys, ORIGIN), -EEXIST);
        assert_int_equal(signer_log_vkey(f->s, &vkey), 0);
        _cleanup_free_ char *vpath = path_join(f->keys, "log.vkey");
        buf_init(&vk, 4096);
        assert_int_equal(read_file(vpath, 4096, &vk), 0);
        assert_int_equal(vk.len, strlen(vkey) + 1);
        assert_memory_equal(vk.data, vkey, strlen(vkey));
        assert_true(strncmp(vkey, ORIGIN "+", strlen(ORIGIN) + 1) == 0);
}

static void test_signs_and_refuses(void **state) {
        struct fixture *f = *state;
        char *note = NULL;

        expect_signed(f, 5, 0x11);
        expect_signed(f, 5, 0x11); /* same size, same root: fine */
        assert_int_equal(sign(f, ORIGIN, 4, 0x11, &note), -EPERM); /* rollback */
        assert_int_equal(sign(f, ORIGIN, 5, 0x22, &note), -EPERM); /* fork */
        assert_int_equal(sign(f, "other.example/log", 9, 0x11, &note), -EPERM);
        expect_signed(f, 6, 0x33);
        assert_int_equal(sign(f, ORIGIN, 5, 0x11, &note), -EPERM); /* rollback below the new maximum */
        expect_signed(f, 1000, 0x44);
        assert_null(note);

        /* bodies that are not checkpoints */
        const char *bad[] = { "hello\n", ORIGIN "\n01\nAAAA\n", ORIGIN "\n7\n" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(signer_sign_checkpoint(f->s, bad[i], strlen(bad[i]), &note), -EBADMSG);
        /* still serving, with its memory of size 1000 intact */
        assert_int_equal(sign(f, ORIGIN, 999, 0x44, &note), -EPERM);
        expect_signed(f, 1000, 0x44);
}

static void test_garbage(void **state) {
        struct fixture *f = *state;
        int status = 0;
        uint8_t junk[16] = { 0xff, 0xff, 0xff, 0x7f, 1, 2, 3 };
        uint8_t vkey_with_payload[8] = { SIGNER_MSG_GET_LOG_VKEY, 0, 0, 0, 'x' };

        assert_int_equal(signer_send_raw(f->s, junk, 0, &status), 0);
        assert_int_equal(status, -EBADMSG);
        assert_int_equal(signer_send_raw(f->s, junk, 3, &status), 0);
        assert_int_equal(status, -EBADMSG);
        assert_int_equal(signer_send_raw(f->s, junk, sizeof junk, &status), 0);
        assert_int_equal(status, -EOPNOTSUPP);
        assert_int_equal(signer_send_raw(f->s, vkey_with_payload, sizeof vkey_with_payload, &status), 0);
        assert_int_equal(status, -EBADMSG);
        size_t big_len = SIGNER_MAX_MSG + 1000;
        uint8_t *big = calloc(1, big_len);
        assert_non_null(big);
        big[0] = SIGNER_MSG_SIGN_CHECKPOINT;
        assert_int_equal(signer_send_raw(f->s, big, big_len, &status), 0);
        assert_int_equal(status, -EMSGSIZE);
        free(big);
        /* a sign request of NUL bytes and of invalid UTF-8 */
        uint8_t nul[12] = { SIGNER_MSG_SIGN_CHECKPOINT };
        assert_int_equal(signer_send_raw(f->s, nul, sizeof nul, &status), 0);
        assert_int_equal(status, -EBADMSG);
        expect_signed(f, 1, 0x01);
}

static void test_loose_key_refused(void **state) {
        struct fixture *f = *state;
        _cleanup_free_ char *kpath = path_join(f->keys, "log.key");
        struct signer *s = NULL;

        assert_int_equal(chmod(kpath, 0640), 0);
        assert_int_equal(signer_start(f->keys, ORIGIN, &s), -EPERM);
        assert_int_equal(chmod(kpath, 0600), 0);
        /* a key named for another log */
        assert_int_equal(signer_start(f->keys, "another.example/log", &s), -EINVAL);
        assert_int_equal(signer_start("/nonexistent/keys", ORIGIN, &s), -ENOENT);
        assert_int_equal(signer_start(f->keys, "bad origin", &s), -EINVAL);
        assert_null(s);
}

static void test_child_gone(void **state) {
        struct fixture *f = *state;
        char *note = NULL;

        assert_int_equal(kill(signer_pid(f->s), SIGKILL), 0);
        /* the next request finds the channel closed */
        assert_int_equal(sign(f, ORIGIN, 7, 0x07, &note), -EPIPE);
        assert_int_equal(sign(f, ORIGIN, 7, 0x07, &note), -EPIPE);
        assert_null(note);
}

static void test_dies_with_parent(void **state) {
        (void) state;
        char dir[] = "/tmp/coffre-signer-XXXXXX";
        int p[2];
        pid_t mid, child = 0;

        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *keys = path_join(dir, "keys");
        assert_int_equal(signer_init_keys(keys, ORIGIN), 0);
        assert_int_equal(pipe(p), 0);
        mid = fork();
        assert_true(mid >= 0);
        if (mid == 0) {
                struct signer *s = NULL;
                pid_t c;
                if (signer_start(keys, ORIGIN, &s) < 0)
                        _exit(1);
                c = signer_pid(s);
                if (write(p[1], &c, sizeof c) != sizeof c)
                        _exit(1);
                _exit(0); /* dies without signer_stop */
        }
        close(p[1]);
        assert_int_equal(read(p[0], &child, sizeof child), sizeof child);
        close(p[0]);
        assert_int_equal(waitpid(mid, NULL, 0), mid);
        /* PR_SET_PDEATHSIG: the orphaned signer gets SIGKILL. A pidfd becomes readable when the
         * process has exited; ESRCH means it is already gone and reaped. */
        int pfd = (int) syscall(SYS_pidfd_open, child, 0);
        if (pfd >= 0) {
                struct pollfd pf = { .fd = pfd, .events = POLLIN };
                assert_int_equal(poll(&pf, 1, 10000), 1);
                close(pfd);
        } else
                assert_int_equal(errno, ESRCH);
        rm_rf(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_keys_on_disk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_signs_and_refuses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
                cmocka_unit_test_setup_teardown(test_loose_key_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_child_gone, setup, teardown),
                cmocka_unit_test(test_dies_with_parent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
