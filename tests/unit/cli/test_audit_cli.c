/* test_audit_cli.c: the parts of `coffre audit` and `coffre witness` that need no server: the
 * witness state file (round trip, permissions, malformed files), checking signed checkpoints,
 * rollback and fork detection against the last checkpoint seen, and `audit verify --data` on
 * logs built here with a key generated here. The server-facing paths are covered by
 * tests/integration/test_audit_cli.py and test_witness.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "audit/log.h"
#include "audit/merkle.h"
#include "audit/note.h"
#include "cli/audit_commands.h"
#include "cli/commands.h"
#include "fileio.h"

#define ORIGIN "example.com/log"

static char dir[64];

static char *in_dir(const char *name) {
        char *p = path_join(dir, name);
        assert_non_null(p);
        return p;
}

static int setup(void **state) {
        (void) state;
        snprintf(dir, sizeof dir, "/tmp/coffre-audit-cli-XXXXXX");
        assert_non_null(mkdtemp(dir));
        return 0;
}

static int teardown(void **state) {
        (void) state;
        rm_rf(dir);
        return 0;
}

static void write_text(const char *path, const char *text, mode_t mode) {
        assert_int_equal(write_file_atomic(path, text, strlen(text), mode, 0), 0);
}

/* ---- state file ---- */

static void test_state_round_trip(void **state) {
        (void) state;
        _cleanup_free_ char *path = in_dir("w.state");
        char *skey = NULL, *vkey = NULL, *lskey = NULL, *lvkey = NULL;
        struct witness_state s = {}, t = {};
        struct stat st;

        assert_int_equal(witness_state_load(path, &t), -ENOENT);
        assert_int_equal(note_key_generate_alg("witness-a", NOTE_ALG_COSIGNATURE_V1, &skey, &vkey), 0);
        assert_int_equal(note_key_generate(ORIGIN, &lskey, &lvkey), 0);
        s.skey = skey;
        s.log_vkey = lvkey;
        s.have_checkpoint = true;
        s.size = 12345678901234ull;
        randombytes_buf(s.root.b, sizeof s.root.b);
        assert_int_equal(witness_state_save(path, &s), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        assert_int_equal(witness_state_load(path, &t), 0);
        assert_string_equal(t.skey, skey);
        assert_string_equal(t.log_vkey, lvkey);
        assert_true(t.have_checkpoint);
        assert_true(t.size == s.size);
        assert_memory_equal(t.root.b, s.root.b, MERKLE_HASH_SIZE);
        witness_state_clear(&t);
        assert_null(t.skey);

        /* a state without key or checkpoint (as audit verify --state writes before it has any) */
        struct witness_state empty = { .log_vkey = lvkey };
        assert_int_equal(witness_state_save(path, &empty), 0);
        assert_int_equal(witness_state_load(path, &t), 0);
        assert_null(t.skey);
        assert_false(t.have_checkpoint);
        witness_state_clear(&t);

        witness_state_clear(&s); /* frees skey and lvkey */
        note_text_free_secret(lskey);
        free(vkey);
}

static void test_state_refuses_loose_or_odd_files(void **state) {
        (void) state;
        _cleanup_free_ char *path = in_dir("loose.state");
        _cleanup_free_ char *link = in_dir("link.state");
        _cleanup_free_ char *sub = in_dir("adir");
        struct witness_state t = {};

        write_text(path, "coffre-witness-state 1\n", 0600);
        assert_int_equal(witness_state_load(path, &t), 0);
        witness_state_clear(&t);
        assert_int_equal(chmod(path, 0640), 0);
        assert_int_equal(witness_state_load(path, &t), -EPERM);
        assert_int_equal(chmod(path, 0604), 0);
        assert_int_equal(witness_state_load(path, &t), -EPERM);
        assert_int_equal(chmod(path, 0600), 0);
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(witness_state_load(link, &t), -EPERM);
        assert_int_equal(mkdir(sub, 0700), 0);
        assert_int_not_equal(witness_state_load(sub, &t), 0);
}

static void test_state_refuses_malformed(void **state) {
        (void) state;
        static const char *const bad[] = {
                "",
                "coffre-witness-state 2\n",
                "coffre-witness-state 1",                      /* no newline */
                "coffre-witness-state 1\ncheckpoint 5 AAAA\n", /* root too short */
                "coffre-witness-state 1\ncheckpoint -5 "
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",                                    /* negative size */
                "coffre-witness-state 1\ncheckpoint 5 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", /* cut */
                "coffre-witness-state 1\nsize 5\n",                                                  /* unknown line */
                "coffre-witness-state 1\nlog-key not-a-key\n",
                "coffre-witness-state 1\ncheckpoint 1 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
                "checkpoint 2 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", /* repeated */
        };
        _cleanup_free_ char *path = in_dir("bad.state");
        struct witness_state t = {};

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                write_text(path, bad[i], 0600);
                assert_int_equal(witness_state_load(path, &t), -EINVAL);
                assert_null(t.skey);
        }
        write_text(path, "coffre-witness-state 1\ncheckpoint 5 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", 0600);
        assert_int_equal(witness_state_load(path, &t), 0);
        assert_true(t.have_checkpoint && t.size == 5);
        witness_state_clear(&t);
}

/* ---- checkpoints ---- */

static char *signed_checkpoint(const char *skey, const char *origin, uint64_t size, const merkle_hash *root) {
        struct note_signer *s = NULL;
        char *body = NULL, *note = NULL;
        assert_int_equal(note_signer_from_skey(skey, &s), 0);
        assert_int_equal(checkpoint_format(origin, size, root, NULL, 0, &body), 0);
        assert_int_equal(note_sign(s, body, strlen(body), &note), 0);
        note_signer_free(s);
        free(body);
        return note;
}

static void test_open_checkpoint(void **state) {
        (void) state;
        char *skey = NULL, *vkey = NULL, *oskey = NULL, *ovkey = NULL, *fskey = NULL, *fvkey = NULL;
        struct note_verifier *v = NULL, *other = NULL;
        struct audit_cli_checkpoint c = {};
        merkle_hash root;

        merkle_leaf_hash("x", 1, &root);
        assert_int_equal(note_key_generate(ORIGIN, &skey, &vkey), 0);
        assert_int_equal(note_key_generate("other.example/log", &oskey, &ovkey), 0);
        assert_int_equal(note_key_generate(ORIGIN, &fskey, &fvkey), 0); /* same name, other key */
        assert_int_equal(note_verifier_from_vkey(vkey, &v), 0);
        assert_int_equal(note_verifier_from_vkey(ovkey, &other), 0);

        _cleanup_free_ char *good = signed_checkpoint(skey, ORIGIN, 42, &root);
        assert_int_equal(audit_cli_open_checkpoint(good, strlen(good), v, &c), 0);
        assert_true(c.size == 42);
        assert_string_equal(c.origin, ORIGIN);
        assert_memory_equal(c.root.b, root.b, MERKLE_HASH_SIZE);
        assert_string_equal(c.note, good);
        assert_non_null(strstr(good, c.body));
        audit_cli_checkpoint_clear(&c);

        /* signed by another key of the same name */
        _cleanup_free_ char *forged = signed_checkpoint(fskey, ORIGIN, 42, &root);
        assert_int_equal(audit_cli_open_checkpoint(forged, strlen(forged), v, &c), -EBADMSG);
        (void) audit_cli_take_failure();
        /* right signature, wrong verifier */
        assert_int_equal(audit_cli_open_checkpoint(good, strlen(good), other, &c), -EBADMSG);
        (void) audit_cli_take_failure();
        /* signed by the log key, but for another origin */
        _cleanup_free_ char *elsewhere = signed_checkpoint(skey, "other.example/log", 42, &root);
        assert_int_equal(audit_cli_open_checkpoint(elsewhere, strlen(elsewhere), v, &c), -EBADMSG);
        assert_non_null(strstr(audit_cli_take_failure(), "origin"));
        /* a byte of the root changed after signing */
        char *p = strstr(good, "\n42\n") + 4;
        *p = *p == 'A' ? 'B' : 'A';
        assert_int_equal(audit_cli_open_checkpoint(good, strlen(good), v, &c), -EBADMSG);
        (void) audit_cli_take_failure();
        assert_null(c.note);

        note_verifier_free(v);
        note_verifier_free(other);
        note_text_free_secret(skey);
        note_text_free_secret(oskey);
        note_text_free_secret(fskey);
        free(vkey);
        free(ovkey);
        free(fvkey);
}

static void test_rollback_and_fork_without_proofs(void **state) {
        (void) state;
        struct audit_cli_checkpoint cp = { .size = 10 };
        merkle_hash seen, other;
        merkle_leaf_hash("a", 1, &seen);
        merkle_leaf_hash("b", 1, &other);
        cp.root = seen;

        /* no request is needed for these cases: the client may be NULL */
        assert_int_equal(audit_cli_check_consistency(NULL, 10, &seen, &cp), 0);
        assert_int_equal(audit_cli_check_consistency(NULL, 0, &other, &cp), 0);
        assert_int_equal(audit_cli_check_consistency(NULL, 11, &seen, &cp), -EBADMSG);
        assert_non_null(strstr(audit_cli_take_failure(), "rollback"));
        cp.root = other;
        assert_int_equal(audit_cli_check_consistency(NULL, 10, &seen, &cp), -EBADMSG);
        assert_non_null(strstr(audit_cli_take_failure(), "fork"));
}

/* ---- audit verify --data on a log built here ---- */

static char *make_vault(const char *name, char **ret_skey) {
        char *data = in_dir(name);
        _cleanup_free_ char *keys = path_join(data, "keys"), *vkey_path = path_join(keys, "log.vkey");
        _cleanup_free_ char *conf = path_join(data, "coffre.conf");
        char *skey = NULL, *vkey = NULL;

        assert_int_equal(mkdir_p(keys, 0700), 0);
        assert_int_equal(note_key_generate(ORIGIN, &skey, &vkey), 0);
        write_text(vkey_path, vkey, 0644);
        write_text(conf, "[vault]\nid = 0123456789abcdef0123456789abcdef\n[audit]\norigin = " ORIGIN "\n", 0600);
        free(vkey);
        *ret_skey = skey;
        return data;
}

static int run_verify(const char *data) {
        char *argv[] = { "audit", "verify", "--data", (char *) data, NULL };
        return cmd_audit(4, argv);
}

static void append_entries(struct audit_log *log, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                char e[64];
                uint64_t idx;
                int len = snprintf(e, sizeof e, "{\"n\":\"%u\"}", i);
                assert_int_equal(audit_log_append(log, e, (size_t) len, &idx), 0);
        }
}

static void store_signed(struct audit_log *log, const char *skey, const char *origin) {
        merkle_hash root;
        uint64_t size = audit_log_size(log);
        assert_int_equal(audit_log_root(log, size, &root), 0);
        _cleanup_free_ char *note = signed_checkpoint(skey, origin, size, &root);
        assert_int_equal(audit_log_checkpoint_store(log, size, note), 0);
}

static void test_verify_data(void **state) {
        (void) state;
        char *skey = NULL;
        _cleanup_free_ char *data = make_vault("v1", &skey);
        _cleanup_free_ char *audit_dir = path_join(data, "audit");
        struct audit_log *log = NULL;

        /* an empty log verifies */
        assert_int_equal(audit_log_open(audit_dir, true, &log), 0);
        audit_log_close(log);
        assert_int_equal(run_verify(data), CLI_EXIT_OK);

        /* entries, then a signed checkpoint covering them */
        assert_int_equal(audit_log_open(audit_dir, false, &log), 0);
        append_entries(log, 5);
        store_signed(log, skey, ORIGIN);
        append_entries(log, 6);
        store_signed(log, skey, ORIGIN);
        /* while the log is held open, verify refuses politely */
        assert_int_equal(run_verify(data), CLI_EXIT_FAILURE);
        audit_log_close(log);
        assert_int_equal(run_verify(data), CLI_EXIT_OK);

        /* entries no checkpoint covers */
        assert_int_equal(audit_log_open(audit_dir, false, &log), 0);
        append_entries(log, 2);
        audit_log_close(log);
        assert_int_equal(run_verify(data), CLI_EXIT_VERIFY);

        /* covered by a checkpoint signed for another origin */
        assert_int_equal(audit_log_open(audit_dir, false, &log), 0);
        store_signed(log, skey, "other.example/log");
        audit_log_close(log);
        assert_int_equal(run_verify(data), CLI_EXIT_VERIFY);
        (void) audit_cli_take_failure();

        /* usage errors */
        char *argv[] = { "audit", "verify", "--data", data, "--state", "x", NULL };
        assert_int_equal(cmd_audit(6, argv), CLI_EXIT_USAGE);
        note_text_free_secret(skey);
}

static void test_verify_data_checkpoint_by_other_key(void **state) {
        (void) state;
        char *skey = NULL, *oskey = NULL, *ovkey = NULL;
        _cleanup_free_ char *data = make_vault("v2", &skey);
        _cleanup_free_ char *audit_dir = path_join(data, "audit");
        struct audit_log *log = NULL;

        assert_int_equal(note_key_generate(ORIGIN, &oskey, &ovkey), 0);
        assert_int_equal(audit_log_open(audit_dir, true, &log), 0);
        append_entries(log, 3);
        store_signed(log, oskey, ORIGIN);
        audit_log_close(log);
        assert_int_equal(run_verify(data), CLI_EXIT_VERIFY);
        (void) audit_cli_take_failure();
        note_text_free_secret(skey);
        note_text_free_secret(oskey);
        free(ovkey);
}

static void test_witness_print_key_creates_private_state(void **state) {
        (void) state;
        _cleanup_free_ char *path = in_dir("new.state");
        struct witness_state t = {};
        struct stat st;
        char *argv[] = { "witness", "--state", path, "--print-key", "--name", "w.example", NULL };

        assert_int_equal(cmd_witness(6, argv), CLI_EXIT_OK);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(witness_state_load(path, &t), 0);
        assert_non_null(t.skey);
        assert_non_null(strstr(t.skey, "PRIVATE+KEY+w.example+"));
        witness_state_clear(&t);

        char *bad_name[] = { "witness", "--state", path, "--print-key", "--name", "a b", NULL };
        assert_int_equal(cmd_witness(6, bad_name), CLI_EXIT_USAGE);
        char *no_state[] = { "witness", "--print-key", NULL };
        assert_int_equal(cmd_witness(2, no_state), CLI_EXIT_USAGE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_state_round_trip),
                cmocka_unit_test(test_state_refuses_loose_or_odd_files),
                cmocka_unit_test(test_state_refuses_malformed),
                cmocka_unit_test(test_open_checkpoint),
                cmocka_unit_test(test_rollback_and_fork_without_proofs),
                cmocka_unit_test(test_verify_data),
                cmocka_unit_test(test_verify_data_checkpoint_by_other_key),
                cmocka_unit_test(test_witness_print_key_creates_private_state),
        };
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, setup, teardown);
}
