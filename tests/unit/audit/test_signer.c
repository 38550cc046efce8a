/* test_signer.c: the signer process: key creation, signing, and its refusals (rollback, fork,
 * wrong origin, bad consistency proof, unexpected extension lines, loose key permissions), its
 * own state file across restarts, its restart after a kill, its seccomp allow-list, and that it
 * survives garbage on its channel. */
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
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
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

/* A real tree: leaf i of "tree t" is the hash of "t:i", so two values of t give two
 * histories that share no leaf. */
#define MAX_LEAVES 1100
static merkle_hash leaves[2][MAX_LEAVES];

static void make_leaves(void) {
        for (int t = 0; t < 2; t++)
                for (int i = 0; i < MAX_LEAVES; i++) {
                        char e[32];
                        int n = snprintf(e, sizeof e, "%d:%d", t, i);
                        merkle_leaf_hash(e, (size_t) n, &leaves[t][i]);
                }
}

static int subtree(void *ud, unsigned level, uint64_t index, merkle_hash *ret) {
        const merkle_hash *l = ud;
        merkle_root_from_leaves(l + (index << level), (uint64_t) 1 << level, ret);
        return 0;
}

static void root_of(int t, uint64_t n, merkle_hash *ret) {
        merkle_root_from_leaves(leaves[t], n, ret);
}

static void proof_of(int t, uint64_t m, uint64_t n, merkle_hash *proof, size_t *len) {
        assert_int_equal(merkle_consistency_proof(subtree, leaves[t], m, n, proof, len), 0);
}

static char *checkpoint_root(const char *origin, uint64_t size, const merkle_hash *root) {
        char *body = NULL;
        assert_int_equal(checkpoint_format(origin, size, root, NULL, 0, &body), 0);
        return body;
}

/* Asks to sign tree t at size n, with the proof from m (m 0: no proof). */
static int sign_tree(struct signer *s, int t, uint64_t m, uint64_t n, char **ret_note) {
        merkle_hash root, proof[MERKLE_MAX_PROOF];
        size_t len = 0;
        root_of(t, n, &root);
        if (m > 0 && m < n)
                proof_of(t, m, n, proof, &len);
        _cleanup_free_ char *body = checkpoint_root(ORIGIN, n, &root);
        return signer_sign_checkpoint(s, body, strlen(body), proof, len, ret_note);
}

static void expect_signed_by(struct signer *s, struct note_verifier *v, int t, uint64_t m, uint64_t n) {
        _cleanup_free_ char *note = NULL, *body = NULL;
        struct note_verifier *vs[1] = { v };
        uint64_t got_size = 0;
        merkle_hash got, want;
        assert_int_equal(sign_tree(s, t, m, n, &note), 0);
        /* what a client sees: a note that opens with the published vkey */
        assert_int_equal(note_open(note, strlen(note), vs, 1, &body, NULL), 0);
        assert_int_equal(checkpoint_parse(body, strlen(body), NULL, &got_size, &got), 0);
        assert_int_equal(got_size, n);
        root_of(t, n, &want);
        assert_memory_equal(got.b, want.b, MERKLE_HASH_SIZE);
}

static void expect_signed(struct fixture *f, int t, uint64_t m, uint64_t n) {
        expect_signed_by(f->s, f->v, t, m, n);
}

/* A checkpoint of origin with a made-up root and no proof. */
static int sign(struct fixture *f, const char *origin, uint64_t size, uint8_t fill, char **ret_note) {
        merkle_hash root;
        memset(root.b, fill, sizeof root.b);
        _cleanup_free_ char *body = checkpoint_root(origin, size, &root);
        return signer_sign_checkpoint(f->s, body, strlen(body), NULL, 0, ret_note);
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

        expect_signed(f, 0, 0, 5); /* the first one: trust on first use */
        expect_signed(f, 0, 0, 5); /* same size, same root: fine */
        assert_int_equal(sign_tree(f->s, 0, 0, 4, &note), -EPERM); /* rollback */
        assert_int_equal(sign_tree(f->s, 1, 0, 5, &note), -EPERM); /* fork: another root for 5 */
        assert_int_equal(sign(f, "other.example/log", 9, 0x11, &note), -EPERM);
        expect_signed(f, 0, 5, 6);
        assert_int_equal(sign_tree(f->s, 0, 0, 5, &note), -EPERM); /* rollback below the new maximum */
        expect_signed(f, 0, 6, 1000);
        assert_null(note);

        /* bodies that are not checkpoints */
        const char *bad[] = { "hello\n", ORIGIN "\n01\nAAAA\n", ORIGIN "\n7\n" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(signer_sign_checkpoint(f->s, bad[i], strlen(bad[i]), NULL, 0, &note), -EBADMSG);
        /* still serving, with its memory of size 1000 intact */
        assert_int_equal(sign_tree(f->s, 0, 0, 999, &note), -EPERM);
        expect_signed(f, 0, 0, 1000);
        assert_null(note);
}

static void test_consistency_proof(void **state) {
        struct fixture *f = *state;
        merkle_hash proof[MERKLE_MAX_PROOF], root;
        size_t len = 0;
        char *note = NULL;

        expect_signed(f, 0, 0, 6);
        /* a larger tree with no proof, with the proof of another history, with a proof of
         * another size, with one bit of the proof flipped: all refused */
        assert_int_equal(sign_tree(f->s, 0, 0, 9, &note), -EPERM);
        assert_int_equal(sign_tree(f->s, 1, 6, 9, &note), -EPERM);
        root_of(0, 9, &root);
        proof_of(0, 5, 9, proof, &len);
        _cleanup_free_ char *body = checkpoint_root(ORIGIN, 9, &root);
        assert_int_equal(signer_sign_checkpoint(f->s, body, strlen(body), proof, len, &note), -EPERM);
        proof_of(0, 6, 9, proof, &len);
        assert_true(len > 0);
        proof[0].b[3] ^= 0x10;
        assert_int_equal(signer_sign_checkpoint(f->s, body, strlen(body), proof, len, &note), -EPERM);
        proof[0].b[3] ^= 0x10;
        /* a proof for the same tree again: refused too (nothing to prove) */
        _cleanup_free_ char *again = NULL;
        root_of(0, 6, &root);
        _cleanup_free_ char *body6 = checkpoint_root(ORIGIN, 6, &root);
        assert_int_equal(signer_sign_checkpoint(f->s, body6, strlen(body6), proof, len, &note), -EPERM);
        /* the right proof works, and nothing refused moved the floor */
        assert_int_equal(signer_sign_checkpoint(f->s, body, strlen(body), proof, len, &again), 0);
        bool have = false;
        uint64_t size = 0;
        assert_int_equal(signer_state(f->s, &have, &size, &root), 0);
        assert_true(have);
        assert_int_equal(size, 9);
        assert_null(note);
}

static void test_extension_lines(void **state) {
        struct fixture *f = *state;
        merkle_hash root;
        char *note = NULL, *body = NULL;
        const char *one[] = { "tsa 1234" }, *two[] = { "tsa 1", "tsa 2" }, *other[] = { "time 5" };

        root_of(0, 3, &root);
        /* not configured for any: refused */
        assert_int_equal(checkpoint_format(ORIGIN, 3, &root, one, 1, &body), 0);
        assert_int_equal(signer_sign_checkpoint(f->s, body, strlen(body), NULL, 0, &note), -EPERM);
        free(body);
        assert_null(note);

        /* a signer configured for "tsa ": one such line, not two, not another */
        struct signer *s = NULL;
        char *const allowed[] = { (char *) "tsa " };
        signer_stop(TAKE_PTR(f->s));
        assert_int_equal(signer_start_ext(f->keys, ORIGIN, allowed, 1, &s), 0);
        f->s = s;
        assert_int_equal(checkpoint_format(ORIGIN, 3, &root, two, 2, &body), 0);
        assert_int_equal(signer_sign_checkpoint(s, body, strlen(body), NULL, 0, &note), -EPERM);
        free(body);
        assert_int_equal(checkpoint_format(ORIGIN, 3, &root, other, 1, &body), 0);
        assert_int_equal(signer_sign_checkpoint(s, body, strlen(body), NULL, 0, &note), -EPERM);
        free(body);
        assert_null(note);
        assert_int_equal(checkpoint_format(ORIGIN, 3, &root, one, 1, &body), 0);
        assert_int_equal(signer_sign_checkpoint(s, body, strlen(body), NULL, 0, &note), 0);
        free(body);
        assert_non_null(note);
        free(note);
}

static void test_memory_across_restarts(void **state) {
        struct fixture *f = *state;
        merkle_hash root, want;
        bool have = true;
        uint64_t size = 1;
        char *note = NULL;

        assert_int_equal(signer_state(f->s, &have, &size, &root), 0);
        assert_false(have);
        expect_signed(f, 0, 0, 6);
        expect_signed(f, 0, 6, 7);
        /* a new signer process: it reads its own file, not what the server says */
        signer_stop(TAKE_PTR(f->s));
        assert_int_equal(signer_start(f->keys, ORIGIN, &f->s), 0);
        assert_int_equal(signer_state(f->s, &have, &size, &root), 0);
        assert_true(have);
        assert_int_equal(size, 7);
        root_of(0, 7, &want);
        assert_memory_equal(root.b, want.b, MERKLE_HASH_SIZE);
        assert_int_equal(sign_tree(f->s, 0, 0, 6, &note), -EPERM); /* rollback */
        assert_int_equal(sign_tree(f->s, 1, 0, 7, &note), -EPERM); /* fork */
        assert_int_equal(sign_tree(f->s, 0, 0, 8, &note), -EPERM); /* larger, no proof */
        assert_null(note);
        /* again and again: the two slots take turns */
        for (uint64_t n = 8; n < 12; n++) {
                expect_signed(f, 0, n - 1, n);
                signer_stop(TAKE_PTR(f->s));
                assert_int_equal(signer_start(f->keys, ORIGIN, &f->s), 0);
                assert_int_equal(sign_tree(f->s, 1, 0, n, &note), -EPERM);
        }
        expect_signed(f, 0, 11, 12);
}

static void write_state(struct fixture *f, const void *p, size_t n) {
        _cleanup_free_ char *path = path_join(f->keys, "log.state");
        int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, p, n), (ssize_t) n);
        close(fd);
}

static void test_state_file_checked(void **state) {
        struct fixture *f = *state;
        _cleanup_free_ char *path = path_join(f->keys, "log.state");
        _cleanup_buf_ struct buf saved;
        struct signer *s = NULL;
        uint8_t junk[256];

        expect_signed(f, 0, 0, 6);
        expect_signed(f, 0, 6, 7);
        signer_stop(TAKE_PTR(f->s));
        buf_init(&saved, 4096);
        assert_int_equal(read_file(path, 4096, &saved), 0);
        assert_int_equal(saved.len, 256);

        /* both slots damaged: refuse to start rather than forget */
        memset(junk, 0x5a, sizeof junk);
        write_state(f, junk, sizeof junk);
        assert_int_equal(signer_start(f->keys, ORIGIN, &s), -EBADMSG);
        /* one slot damaged: the other still holds a floor (the first record fills both
         * slots, the second, size 7, went to slot 0) */
        memcpy(junk, saved.data, 256);
        junk[40] ^= 1;
        write_state(f, junk, 256);
        assert_int_equal(signer_start(f->keys, ORIGIN, &s), 0);
        bool have = false;
        uint64_t size = 0;
        merkle_hash root;
        assert_int_equal(signer_state(s, &have, &size, &root), 0);
        assert_true(have);
        assert_int_equal(size, 6);
        signer_stop(TAKE_PTR(s));
        /* loose permissions, a missing file */
        write_state(f, saved.data, saved.len);
        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(signer_start(f->keys, ORIGIN, &s), -EPERM);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(signer_start(f->keys, ORIGIN, &s), -ENOENT);
        assert_null(s);
        /* a file cut to its first slot keeps that record */
        write_state(f, saved.data, 128);
        assert_int_equal(signer_start(f->keys, ORIGIN, &s), 0); /* slot 0 is valid: size 7 */
        assert_int_equal(signer_state(s, &have, &size, &root), 0);
        assert_int_equal(size, 7);
        signer_stop(TAKE_PTR(s));
        /* a torn first write (a file shorter than one slot): nothing was ever answered from it */
        write_state(f, junk, 50);
        assert_int_equal(signer_start(f->keys, ORIGIN, &f->s), 0);
        assert_int_equal(signer_state(f->s, &have, &size, &root), 0);
        assert_false(have);
}

static void test_restarted_after_kill(void **state) {
        struct fixture *f = *state;
        char *note = NULL;
        int r;

        expect_signed(f, 0, 0, 6);
        pid_t old = signer_pid(f->s);
        assert_int_equal(kill(old, SIGKILL), 0);
        /* the next request finds the channel closed */
        assert_int_equal(sign_tree(f->s, 0, 6, 7, &note), -EPIPE);
        /* the supervisor starts another one; wait for it (up to 30 s) */
        for (int i = 0; i < 3000; i++) {
                r = sign_tree(f->s, 0, 6, 7, &note);
                if (r != -EPIPE)
                        break;
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        assert_int_equal(r, 0);
        free(TAKE_PTR(note));
        assert_true(signer_pid(f->s) != old);
        /* with its memory */
        assert_int_equal(sign_tree(f->s, 0, 0, 6, &note), -EPERM);
        assert_int_equal(sign_tree(f->s, 1, 0, 7, &note), -EPERM);
        assert_null(note);
}

/* Runs fn in a forked child after installing the filter with fd 3 open on a scratch file;
 * returns the child's wait status. */
static int in_filtered_child(const char *dir, int (*fn)(const char *dir)) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                _cleanup_free_ char *scratch = path_join(dir, "scratch");
                int fd = open(scratch, O_RDWR | O_CREAT, 0600);
                if (fd < 0 || (fd != 3 && dup2(fd, 3) < 0))
                        _exit(100);
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || signer_seccomp_install() < 0)
                        _exit(101);
                _exit(fn(dir));
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static int do_truncate(const char *dir) {
        char p[128];
        snprintf(p, sizeof p, "%s/victim", dir);
        return truncate(p, 0) == 0 ? 0 : 1;
}

static int do_unlink(const char *dir) {
        char p[128];
        snprintf(p, sizeof p, "%s/victim", dir);
        return unlink(p) == 0 ? 0 : 1;
}

static int do_rename(const char *dir) {
        char p[128], q[128];
        snprintf(p, sizeof p, "%s/victim", dir);
        snprintf(q, sizeof q, "%s/moved", dir);
        return rename(p, q) == 0 ? 0 : 1;
}

static int do_open(const char *dir) {
        char p[128];
        snprintf(p, sizeof p, "%s/victim", dir);
        return syscall(SYS_openat, AT_FDCWD, p, O_RDONLY) >= 0 ? 0 : 1;
}

static int do_allowed(const char *dir) {
        (void) dir;
        /* what a signer does: memory, the state file, the clock, stderr */
        void *p = malloc(1 << 20);
        struct timespec ts;
        if (!p || clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
                return 2;
        memset(p, 1, 1 << 20);
        free(p);
        if (pwrite(3, "state", 5, 0) != 5 || fdatasync(3) < 0)
                return 3;
        return write(STDERR_FILENO, "", 0) == 0 ? 0 : 4;
}

static void test_seccomp_allow_list(void **state) {
        (void) state;
        char dir[] = "/tmp/coffre-seccomp-XXXXXX";
        _cleanup_buf_ struct buf b;
        int (*denied[])(const char *) = { do_truncate, do_unlink, do_rename, do_open };

        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *victim = path_join(dir, "victim");
        assert_int_equal(write_file_atomic(victim, "evidence", 8, 0600, 0), 0);
        for (size_t i = 0; i < ELEMENTSOF(denied); i++) {
                int st = in_filtered_child(dir, denied[i]);
                assert_true(WIFSIGNALED(st));
                assert_int_equal(WTERMSIG(st), SIGSYS);
        }
        /* the file is untouched */
        buf_init(&b, 64);
        assert_int_equal(read_file(victim, 64, &b), 0);
        assert_int_equal(b.len, 8);
        assert_memory_equal(b.data, "evidence", 8);
        int st = in_filtered_child(dir, do_allowed);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        rm_rf(dir);
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
        expect_signed(f, 0, 0, 1);
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
        make_leaves();
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_keys_on_disk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_signs_and_refuses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
                cmocka_unit_test_setup_teardown(test_loose_key_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_consistency_proof, setup, teardown),
                cmocka_unit_test_setup_teardown(test_extension_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memory_across_restarts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_file_checked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restarted_after_kill, setup, teardown),
                cmocka_unit_test(test_seccomp_allow_list),
                cmocka_unit_test(test_dies_with_parent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
