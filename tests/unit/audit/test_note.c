/* test_note.c: C2SP signed notes, checkpoints and cosignatures: known answers from the Go
 * reference implementations, round trips, and malformed or forged inputs that must be refused.
 * Also replays the fuzz corpus (argv[1]) through the fuzz entry point.
 *
 * Vectors: golang.org/x/mod sumdb/note/note_test.go (PeterNeumann and EnochRoot keys, the signed
 * "cryptography" note), Copyright 2019 The Go Authors, BSD-3-Clause; transparency-dev/formats
 * note/note_cosigv1_test.go (TEST and remora.n621.de verifier keys, a cosignature with timestamp
 * 1727964367), Copyright 2023 The Go Authors, BSD-3-Clause. Only the test strings are used. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit/note.h"
#include "buf.h"
#include "fileio.h"
#include "hex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern int note_fuzz_last_result;

static const char *corpus_dir;

#define PETER_VKEY "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
#define PETER_SKEY "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
#define ENOCH_VKEY "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
#define TEXT                                                         \
        "If you think cryptography is the answer to your problem,\n" \
        "then you don't know what your problem is.\n"
#define PETER_SIG \
        "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
#define ENOCH_SIG \
        "\xe2\x80\x94 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

static struct note_verifier *verifier(const char *vkey) {
        struct note_verifier *v = NULL;
        assert_int_equal(note_verifier_from_vkey(vkey, &v), 0);
        return v;
}

static int open_str(const char *note, struct note_verifier *const *vs, size_t n, char **body,
                    struct note_verified *res) {
        return note_open(note, strlen(note), vs, n, body, res);
}

static void test_go_sign_vector(void **state) {
        (void) state;
        _cleanup_(note_signer_freep) struct note_signer *s = NULL;
        _cleanup_free_ char *note = NULL, *vkey = NULL;

        assert_int_equal(note_signer_from_skey(PETER_SKEY, &s), 0);
        assert_string_equal(note_signer_name(s), "PeterNeumann");
        assert_int_equal(note_signer_vkey(s, &vkey), 0);
        assert_string_equal(vkey, PETER_VKEY);
        assert_int_equal(note_sign(s, TEXT, strlen(TEXT), &note), 0);
        assert_string_equal(note, TEXT "\n" PETER_SIG);
        /* bodies that are not note texts */
        char *x = NULL;
        assert_int_equal(note_sign(s, "abc", 3, &x), -EINVAL);
        assert_int_equal(note_sign(s, "a\rb\n", 4, &x), -EINVAL);
        assert_int_equal(note_sign(s, "\xff\n", 2, &x), -EINVAL);
        assert_null(x);
}

static void test_go_open_vectors(void **state) {
        (void) state;
        _cleanup_(note_verifier_freep) struct note_verifier *peter = verifier(PETER_VKEY);
        _cleanup_(note_verifier_freep) struct note_verifier *enoch = verifier(ENOCH_VKEY);
        struct note_verifier *both[2] = { peter, enoch }, *dup[3] = { enoch, peter, enoch };
        struct note_verified res[2];
        char *body = NULL;

        assert_int_equal(note_verifier_key_id(peter), 0xc74f20a3);
        assert_int_equal(note_verifier_key_id(enoch), 0xaf0cfe78);

        /* one known, one unknown (ignored) */
        assert_int_equal(open_str(TEXT "\n" PETER_SIG ENOCH_SIG, both, 1, &body, res), 0);
        assert_string_equal(body, TEXT);
        assert_true(res[0].ok);
        free(body);
        /* both known */
        assert_int_equal(open_str(TEXT "\n" PETER_SIG ENOCH_SIG, both, 2, &body, res), 0);
        assert_true(res[0].ok && res[1].ok);
        free(body);
        /* only enoch known: peter's line ignored */
        assert_int_equal(open_str(TEXT "\n" PETER_SIG ENOCH_SIG, both + 1, 1, &body, res), 0);
        assert_true(res[0].ok);
        free(body);
        /* no known signer */
        body = NULL;
        assert_int_equal(open_str(TEXT "\n" PETER_SIG ENOCH_SIG, NULL, 0, &body, NULL), -EBADMSG);
        assert_null(body);
        /* ambiguous verifier list */
        assert_int_equal(open_str(TEXT "\n" ENOCH_SIG, dup, 3, &body, NULL), -EINVAL);

        /* 101 signatures */
        _cleanup_buf_ struct buf b;
        buf_init(&b, 0);
        assert_int_equal(buf_append_str(&b, TEXT "\n"), 0);
        for (int i = 0; i < 101; i++)
                assert_int_equal(buf_append_str(&b, PETER_SIG), 0);
        assert_int_equal(note_open((char *) b.data, b.len, both, 1, &body, NULL), -EINVAL);
        /* 100 is fine (repeats by one key are skipped, the first decides) */
        b.len -= strlen(PETER_SIG);
        assert_int_equal(note_open((char *) b.data, b.len, both, 1, &body, NULL), 0);
        free(body);

        /* Go's invalid signature: "ABCD" inserted into the base64 */
        char bad[512];
        const char *ps = PETER_SIG;
        snprintf(bad, sizeof bad, "%s\n%.*sABCD%s", TEXT, 60, ps, ps + 60);
        assert_int_equal(open_str(bad, both, 1, &body, NULL), -EBADMSG);

        /* Go's malformed messages */
        const char *bad_msgs[] = {
                TEXT,
                TEXT "\n",
                TEXT "\n" "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
                "\x01" TEXT "\n" PETER_SIG,
                "\xff" TEXT "\n" PETER_SIG,
                TEXT "\n" "\xe2\x80\x94 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
                TEXT "\n" PETER_SIG "Unexpected line.\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_msgs); i++)
                assert_int_equal(open_str(bad_msgs[i], both, 1, &body, NULL), -EINVAL);
}

static void test_vkey_manglings(void **state) {
        (void) state;
        /* Go TestNewVerifier: every proper substring and every single-byte change is refused */
        char k[] = PETER_VKEY, sub[128];
        size_t n = strlen(k);
        struct note_verifier *v = NULL;

        for (size_t i = 0; i <= n; i++)
                for (size_t j = i + 1; j <= n; j++) {
                        if (i == 0 && j == n)
                                continue;
                        memcpy(sub, k + i, j - i);
                        sub[j - i] = 0;
                        int r = note_verifier_from_vkey(sub, &v);
                        if (r == 0)
                                fail_msg("accepted %s", sub);
                        assert_true(r == -EINVAL || r == -EBADMSG);
                }
        for (size_t i = 0; i < n; i++) {
                k[i]++;
                assert_int_not_equal(note_verifier_from_vkey(k, &v), 0);
                k[i]--;
        }
        /* wrong length key with adjusted hash, unknown algorithm with adjusted hash (Go) */
        assert_int_not_equal(note_verifier_from_vkey(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", &v), 0);
        assert_int_equal(note_verifier_from_vkey(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", &v), -EINVAL);
        /* wrong key hash */
        assert_int_equal(note_verifier_from_vkey(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", &v), -EBADMSG);

        /* skeys: same treatment */
        char s[] = PETER_SKEY;
        struct note_signer *sg = NULL;
        n = strlen(s);
        for (size_t i = 0; i <= n; i++)
                for (size_t j = i + 1; j <= n; j++) {
                        if (i == 0 && j == n)
                                continue;
                        memcpy(sub, s + i, j - i);
                        sub[j - i] = 0;
                        assert_int_not_equal(note_signer_from_skey(sub, &sg), 0);
                }
        for (size_t i = 0; i < n; i++) {
                s[i]++;
                assert_int_not_equal(note_signer_from_skey(s, &sg), 0);
                s[i]--;
        }
        assert_null(sg);
        assert_null(v);

        /* transparency-dev/formats cosignature keys */
        assert_int_equal(note_verifier_from_vkey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6", &v), 0);
        assert_int_equal(note_verifier_alg(v), NOTE_ALG_ED25519);
        note_verifier_free(v);
        assert_int_equal(note_verifier_cosignature_from_vkey(
                                 "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2", &v), 0);
        assert_int_equal(note_verifier_alg(v), NOTE_ALG_COSIGNATURE_V1);
        assert_int_equal(note_verifier_key_id(v), 0xda77ade7);
        note_verifier_free(v);
        assert_int_equal(note_verifier_from_vkey("bananas.sigstore.dev+12344556", &v), -EINVAL);
        assert_int_equal(note_verifier_from_vkey("rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!", &v), -EINVAL);
        assert_int_equal(note_verifier_from_vkey("rekor.sigstore.dev+12345678+AwEB", &v), -EINVAL);
}

static void test_roundtrip_and_forgeries(void **state) {
        (void) state;
        char *skey = NULL, *vkey = NULL, *skey2 = NULL, *vkey2 = NULL;
        assert_int_equal(note_key_generate("coffre.example/log", &skey, &vkey), 0);
        assert_int_equal(note_key_generate("coffre.example/log", &skey2, &vkey2), 0);
        assert_true(strncmp(skey, "PRIVATE+KEY+coffre.example/log+", 31) == 0);
        assert_true(strncmp(vkey, "coffre.example/log+", 19) == 0);
        assert_string_not_equal(vkey, vkey2);

        _cleanup_(note_signer_freep) struct note_signer *s = NULL;
        _cleanup_(note_verifier_freep) struct note_verifier *v = NULL, *other = NULL;
        assert_int_equal(note_signer_from_skey(skey, &s), 0);
        assert_int_equal(note_verifier_from_vkey(vkey, &v), 0);
        assert_int_equal(note_verifier_from_vkey(vkey2, &other), 0);
        note_text_free_secret(skey);
        note_text_free_secret(skey2);
        free(vkey2);
        _cleanup_free_ char *again = NULL;
        assert_int_equal(note_signer_vkey(s, &again), 0);
        assert_string_equal(again, vkey);
        free(vkey);

        merkle_hash root;
        memset(root.b, 0xab, sizeof root.b);
        const char *ext[] = { "extension one", "two" };
        _cleanup_free_ char *body = NULL, *note = NULL, *out = NULL, *origin = NULL;
        assert_int_equal(checkpoint_format("coffre.example/log", 42, &root, ext, 2, &body), 0);
        assert_string_equal(body, "coffre.example/log\n42\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\nextension one\ntwo\n");
        assert_int_equal(note_sign(s, body, strlen(body), &note), 0);

        struct note_verifier *vs[1] = { v }, *os[1] = { other };
        struct note_verified res[1];
        assert_int_equal(open_str(note, vs, 1, &out, res), 0);
        assert_string_equal(out, body);
        uint64_t size = 0;
        merkle_hash got;
        assert_int_equal(checkpoint_parse(out, strlen(out), &origin, &size, &got), 0);
        assert_string_equal(origin, "coffre.example/log");
        assert_int_equal(size, 42);
        assert_memory_equal(got.b, root.b, 32);

        char *x = NULL;
        /* a different key with the same name: its key ID differs, the line is unknown */
        assert_int_equal(open_str(note, os, 1, &x, NULL), -EBADMSG);

        /* modified body */
        _cleanup_free_ char *mod = strdup(note);
        mod[20] = '3';
        assert_int_equal(open_str(mod, vs, 1, &x, NULL), -EBADMSG);

        /* key ID changed in the signature line: unknown key, so nothing verifies */
        size_t bl = strlen(body);
        const char *line = note + bl + 1;
        _cleanup_free_ char *wrong_id = strdup(note);
        char *b64 = wrong_id + bl + 1 + 4 + strlen("coffre.example/log") + 1;
        b64[0] = b64[0] == 'A' ? 'B' : 'A';
        assert_int_equal(open_str(wrong_id, vs, 1, &x, NULL), -EBADMSG);

        /* truncated signature: base64 cut (invalid) and shortened to valid base64 */
        _cleanup_free_ char *trunc = strndup(note, strlen(note) - 6);
        _cleanup_buf_ struct buf t;
        buf_init(&t, 0);
        assert_int_equal(buf_append_str(&t, trunc), 0);
        assert_int_equal(buf_append_str(&t, "\n"), 0);
        assert_int_equal(open_str(buf_str(&t), vs, 1, &x, NULL), -EINVAL);
        buf_clear(&t);
        size_t full = strlen(note) - 1; /* without '\n' */
        assert_int_equal(buf_append(&t, note, full - 4 - 4), 0); /* drop 3 bytes worth + padding block */
        assert_int_equal(buf_append_str(&t, "AAA=\n"), 0);
        assert_int_equal(open_str(buf_str(&t), vs, 1, &x, NULL), -EBADMSG);

        /* extra blank lines: before the signatures, between two, after the last */
        buf_clear(&t);
        assert_int_equal(buf_printf(&t, "%s\n\n%s", body, line), 0);
        assert_int_equal(open_str(buf_str(&t), vs, 1, &x, NULL), -EBADMSG);
        buf_clear(&t);
        assert_int_equal(buf_printf(&t, "%s\n%s\n%s", body, line, line), 0);
        assert_int_equal(open_str(buf_str(&t), vs, 1, &x, NULL), -EBADMSG);
        buf_clear(&t);
        assert_int_equal(buf_printf(&t, "%s\n", note), 0);
        assert_int_equal(open_str(buf_str(&t), vs, 1, &x, NULL), -EINVAL);
        /* missing final newline */
        assert_int_equal(note_open(note, strlen(note) - 1, vs, 1, &x, NULL), -EINVAL);
        /* non-UTF-8: a lone continuation byte, an overlong '/', a surrogate */
        const char *bad_utf8[] = { "\x80", "\xc0\xaf", "\xed\xa0\x80" };
        for (size_t i = 0; i < ELEMENTSOF(bad_utf8); i++) {
                buf_clear(&t);
                assert_int_equal(buf_printf(&t, "%s%s", bad_utf8[i], note), 0);
                assert_int_equal(open_str(buf_str(&t), vs, 1, &x, NULL), -EINVAL);
        }
        /* a control character (CR) */
        buf_clear(&t);
        assert_int_equal(buf_printf(&t, "x\r%s", note), 0);
        assert_int_equal(open_str(buf_str(&t), vs, 1, &x, NULL), -EINVAL);
        /* NUL inside the length */
        buf_clear(&t);
        assert_int_equal(buf_append(&t, "a\0", 2), 0);
        assert_int_equal(buf_append_str(&t, note), 0);
        assert_int_equal(note_open((char *) t.data, t.len, vs, 1, &x, NULL), -EINVAL);
        /* an over-long signature line (from an unknown key, still refused: bounded parsing) */
        buf_clear(&t);
        assert_int_equal(buf_printf(&t, "%s\n%s\xe2\x80\x94 big ", body, line), 0);
        for (int i = 0; i < 200; i++)
                assert_int_equal(buf_append_str(&t, "AAAA"), 0);
        assert_int_equal(buf_append_str(&t, "\n"), 0);
        assert_int_equal(open_str(buf_str(&t), vs, 1, &x, NULL), -EINVAL);
        /* more than 1 MiB */
        buf_clear(&t);
        t.max = 3 * 1024 * 1024;
        for (int i = 0; i < 100000; i++)
                assert_int_equal(buf_append_str(&t, "0123456789\n"), 0);
        assert_int_equal(buf_printf(&t, "\n%s", line), 0);
        assert_int_equal(note_open((char *) t.data, t.len, vs, 1, &x, NULL), -EINVAL);
        assert_int_equal(note_sign(s, (char *) t.data, t.len - strlen(line) - 1, &x), -EINVAL);
        assert_null(x);
}

/* Copies tmpl into out with each '@' replaced by rep. */
static void subst(const char *tmpl, const char *rep, char *out, size_t size) {
        size_t o = 0, rl = strlen(rep);
        for (const char *p = tmpl; *p; p++) {
                if (*p == '@') {
                        assert_true(o + rl < size);
                        memcpy(out + o, rep, rl);
                        o += rl;
                } else {
                        assert_true(o + 1 < size);
                        out[o++] = *p;
                }
        }
        out[o] = 0;
}

static void test_checkpoint_parse_strict(void **state) {
        (void) state;
        const char *root = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
        char buf[512];
        uint64_t size = 1;
        merkle_hash h;

        snprintf(buf, sizeof buf, "example.com/log\n0\n%s\n", root);
        assert_int_equal(checkpoint_parse(buf, strlen(buf), NULL, &size, &h), 0);
        assert_int_equal(size, 0);
        snprintf(buf, sizeof buf, "example.com/log\n18446744073709551615\n%s\n", root);
        assert_int_equal(checkpoint_parse(buf, strlen(buf), NULL, &size, NULL), 0);
        assert_true(size == UINT64_MAX);

        const char *bad[] = {
                "example.com/log\n18446744073709551616\n@\n", /* overflow */
                "example.com/log\n007\n@\n",                  /* leading zeros */
                "example.com/log\n-1\n@\n",
                "example.com/log\n+1\n@\n",
                "example.com/log\n1 \n@\n",
                "example.com/log\n\n@\n",
                "example .com/log\n1\n@\n", /* origin with a space */
                "example.com/log\xc2\xa0x\n1\n@\n", /* NBSP */
                "example+com\n1\n@\n",
                "\n1\n@\n",
                "example.com/log\n1\n@",      /* no final newline */
                "example.com/log\n1\n@\n\n",  /* empty extension line */
                "example.com/log\n1\n@\n\nx\n",
                "example.com/log\r\n1\n@\n",
                "example.com/log\n1\n",
                "example.com/log\n1\n@AAAA\n", /* 35-byte root */
                /* bytes >= 0x80 inside the base64 (libsodium 1.0.18 took them for digits) */
                "example.com/log\n1\nAAECAwQFBgcICQoLDA0ODxAREWb5E324Z99\xef\xa8\x9cwdHh8=\n",
                "example.com/log\n1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6t=\n", /* non-canonical base64 */
                "example.com/log\n1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s\n",  /* no padding */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                subst(bad[i], root, buf, sizeof buf);
                int r = checkpoint_parse(buf, strlen(buf), NULL, NULL, NULL);
                if (r != -EBADMSG)
                        fail_msg("accepted or wrong error %d for case %zu", r, i);
        }

        merkle_hash z = { { 0 } };
        char *out = NULL;
        assert_int_equal(checkpoint_format("has space", 1, &z, NULL, 0, &out), -EINVAL);
        assert_int_equal(checkpoint_format("", 1, &z, NULL, 0, &out), -EINVAL);
        const char *e1[] = { "" }, *e2[] = { "a\nb" };
        assert_int_equal(checkpoint_format("o", 1, &z, e1, 1, &out), -EINVAL);
        assert_int_equal(checkpoint_format("o", 1, &z, e2, 1, &out), -EINVAL);
        assert_null(out);
}

static void test_cosignature(void **state) {
        (void) state;
        char *skey = NULL, *vkey = NULL, *wskey = NULL, *wvkey = NULL;
        assert_int_equal(note_key_generate("coffre.example/log", &skey, &vkey), 0);
        assert_int_equal(note_key_generate_alg("witness.example/w1", NOTE_ALG_COSIGNATURE_V1, &wskey, &wvkey), 0);

        _cleanup_(note_signer_freep) struct note_signer *log = NULL, *w = NULL;
        _cleanup_(note_verifier_freep) struct note_verifier *lv = NULL, *wv = NULL, *wv_plain = NULL;
        assert_int_equal(note_signer_from_skey(skey, &log), 0);
        assert_int_equal(note_signer_from_skey(wskey, &w), 0);
        assert_int_equal(note_verifier_from_vkey(vkey, &lv), 0);
        assert_int_equal(note_verifier_cosignature_from_vkey(wvkey, &wv), 0);
        assert_int_equal(note_verifier_from_vkey(wvkey, &wv_plain), 0);
        assert_int_equal(note_verifier_alg(wv_plain), NOTE_ALG_COSIGNATURE_V1);

        merkle_hash root;
        memset(root.b, 7, 32);
        _cleanup_free_ char *body = NULL, *note = NULL, *cosig = NULL, *out = NULL;
        assert_int_equal(checkpoint_format("coffre.example/log", 9, &root, NULL, 0, &body), 0);
        assert_int_equal(note_sign(log, body, strlen(body), &note), 0);
        assert_int_equal(cosignature_sign(w, body, strlen(body), 1679315147, &cosig), 0);
        /* the Ed25519 signer refuses to sign notes as a witness key and vice versa */
        char *x = NULL;
        assert_int_equal(note_signature_line(w, body, strlen(body), &x), -EINVAL);
        assert_int_equal(cosignature_sign(w, "not a checkpoint\n", 17, 1, &x), -EINVAL);

        /* independent check of the signed message: "cosignature/v1\ntime <t>\n" || body */
        const char *b64 = strchr(cosig + 4, ' ') + 1;
        uint8_t *raw = NULL, *pk = NULL;
        size_t raw_len = 0, pk_len = 0;
        assert_int_equal(base64_decode(b64, strlen(b64) - 1, &raw, &raw_len), 0);
        assert_int_equal(raw_len, 4 + 8 + 64);
        const char *pk64 = strchr(strchr(wvkey, '+') + 1, '+') + 1; /* base64 may hold '+' */
        assert_int_equal(base64_decode(pk64, strlen(pk64), &pk, &pk_len), 0);
        assert_int_equal(pk_len, 33);
        assert_int_equal(pk[0], 0x04);
        _cleanup_buf_ struct buf m;
        buf_init(&m, 0);
        assert_int_equal(buf_printf(&m, "cosignature/v1\ntime 1679315147\n%s", body), 0);
        assert_int_equal(crypto_sign_verify_detached(raw + 12, m.data, m.len, pk + 1), 0);
        uint64_t ts = 0;
        for (int i = 0; i < 8; i++)
                ts = ts << 8 | raw[4 + i];
        assert_int_equal(ts, 1679315147);
        free(raw);
        free(pk);

        _cleanup_buf_ struct buf n;
        buf_init(&n, 0);
        assert_int_equal(buf_printf(&n, "%s%s", note, cosig), 0);
        ts = 0;
        assert_int_equal(cosignature_verify(wv, (char *) n.data, n.len, &ts), 0);
        assert_int_equal(ts, 1679315147);
        struct note_verifier *both[2] = { lv, wv };
        struct note_verified res[2];
        assert_int_equal(note_open((char *) n.data, n.len, both, 2, &out, res), 0);
        assert_true(res[0].ok && res[1].ok);
        assert_int_equal(res[1].timestamp, 1679315147);
        /* the log's note without the witness line: no cosignature */
        assert_int_equal(cosignature_verify(wv, note, strlen(note), &ts), -EBADMSG);
        /* a cosignature moved onto another checkpoint fails */
        _cleanup_free_ char *body2 = NULL, *note2 = NULL;
        assert_int_equal(checkpoint_format("coffre.example/log", 10, &root, NULL, 0, &body2), 0);
        assert_int_equal(note_sign(log, body2, strlen(body2), &note2), 0);
        buf_clear(&n);
        assert_int_equal(buf_printf(&n, "%s%s", note2, cosig), 0);
        assert_int_equal(cosignature_verify(wv, (char *) n.data, n.len, &ts), -EBADMSG);
        /* a plain Ed25519 verifier is not a cosignature verifier */
        assert_int_equal(cosignature_verify(lv, note, strlen(note), &ts), -EINVAL);

        /* the transparency-dev cosignature carries its timestamp at bytes 4..12 */
        const char *td = "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==";
        assert_int_equal(base64_decode(td, strlen(td), &raw, &raw_len), 0);
        assert_int_equal(raw_len, 76);
        ts = 0;
        for (int i = 0; i < 8; i++)
                ts = ts << 8 | raw[4 + i];
        assert_int_equal(ts, 1727964367);
        free(raw);

        note_text_free_secret(skey);
        note_text_free_secret(wskey);
        free(vkey);
        free(wvkey);
}

/* A cosignature made by another implementation (the openssl command line, see
 * tests/data/cosignature/SOURCES.md) verifies with coffre's verifier, and stops verifying when
 * the body or the signature changes. The transparency-dev vector has no published key or
 * message: coffre refuses it under the remora key, whose ID is not the one it carries. */
static void test_cosignature_independent_vector(void **state) {
        (void) state;
        const char *data = getenv("COFFRE_TEST_DATA");
        assert_non_null(data); /* set by the build: the vector is part of the repository */
        _cleanup_free_ char *np = path_join(data, "cosignature/cosigned-checkpoint.txt");
        _cleanup_free_ char *kp = path_join(data, "cosignature/witness.vkey");
        _cleanup_buf_ struct buf note, vkey;
        struct note_verifier *v = NULL, *remora = NULL;
        uint64_t ts = 0;

        buf_init(&note, NOTE_MAX_SIZE);
        buf_init(&vkey, 1024);
        assert_int_equal(read_file(np, NOTE_MAX_SIZE, &note), 0);
        assert_int_equal(read_file(kp, 1024, &vkey), 0);
        assert_true(vkey.len > 1 && vkey.data[vkey.len - 1] == '\n');
        vkey.data[--vkey.len] = 0;
        assert_int_equal(note_verifier_cosignature_from_vkey((char *) vkey.data, &v), 0);
        assert_int_equal(note_verifier_alg(v), NOTE_ALG_COSIGNATURE_V1);
        assert_int_equal(note_verifier_key_id(v), 0x7f6e9115);

        assert_int_equal(cosignature_verify(v, (char *) note.data, note.len, &ts), 0);
        assert_int_equal(ts, 1679315147);

        /* another tree size in the body: the cosignature no longer covers it */
        char *changed = strndup((char *) note.data, note.len);
        assert_non_null(changed);
        char *size = strstr(changed, "\n20852163\n");
        assert_non_null(size);
        size[8] = '4';
        assert_int_equal(cosignature_verify(v, changed, note.len, &ts), -EBADMSG);
        free(changed);
        /* one bit of the Ed25519 signature (the last base64 character before "==") */
        changed = strndup((char *) note.data, note.len);
        assert_non_null(changed);
        char *end = strstr(changed, "==\n");
        assert_non_null(end);
        end[-1] = end[-1] == 'Q' ? 'g' : 'Q';
        assert_int_equal(cosignature_verify(v, changed, note.len, &ts), -EBADMSG);
        free(changed);

        /* the transparency-dev cosignature, presented as remora.n621.de's */
        const char *td = "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==";
        assert_int_equal(note_verifier_cosignature_from_vkey(
                                 "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2", &remora), 0);
        _cleanup_buf_ struct buf n2;
        buf_init(&n2, NOTE_MAX_SIZE);
        const char *body_end = strstr((char *) note.data, "\n\n");
        assert_non_null(body_end);
        assert_int_equal(buf_printf(&n2, "%.*s\n\xe2\x80\x94 remora.n621.de %s\n",
                                    (int) (body_end - (char *) note.data + 1), (char *) note.data, td), 0);
        assert_int_equal(cosignature_verify(remora, (char *) n2.data, n2.len, &ts), -EBADMSG);
        note_verifier_free(remora);
        note_verifier_free(v);
}

static void test_names(void **state) {
        (void) state;
        assert_true(note_name_is_valid("example.com/log42"));
        assert_true(note_name_is_valid("caf\xc3\xa9"));
        assert_false(note_name_is_valid(""));
        assert_false(note_name_is_valid("a+b"));
        assert_false(note_name_is_valid("a b"));
        assert_false(note_name_is_valid("a\tb"));
        assert_false(note_name_is_valid("a\xe3\x80\x80" "b")); /* ideographic space */
        assert_false(note_name_is_valid("a\xe2\x80\xa8" "b")); /* line separator */
        assert_false(note_name_is_valid("\xff"));
        char longname[300];
        memset(longname, 'a', sizeof longname - 1);
        longname[sizeof longname - 1] = 0;
        assert_false(note_name_is_valid(longname));
        char *s = NULL, *v = NULL;
        assert_int_equal(note_key_generate("bad name", &s, &v), -EINVAL);
        assert_null(s);
}

static void test_fuzz_corpus_replay(void **state) {
        (void) state;
        const char *dir = corpus_dir;
        DIR *d;
        struct dirent *de;
        unsigned n = 0;

        if (!dir)
                skip();
        d = opendir(dir);
        assert_non_null(d);
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *p = path_join(dir, de->d_name);
                _cleanup_buf_ struct buf b;
                buf_init(&b, 2 * NOTE_MAX_SIZE);
                assert_int_equal(read_file(p, 2 * NOTE_MAX_SIZE, &b), 0);
                assert_int_equal(LLVMFuzzerTestOneInput(b.data, b.len), 0);
                /* the file name says what the parsers must make of it */
                int want = strncmp(de->d_name, "bad-", 4) == 0                  ? 0
                           : strcmp(de->d_name, "checkpoint-body") == 0         ? 4
                           : strcmp(de->d_name, "checkpoint-cosigned") == 0     ? 3
                           : strncmp(de->d_name, "checkpoint-", 11) == 0        ? 1
                           : strcmp(de->d_name, "go-sumdb-note") == 0           ? 1
                                                                                : -1;
                if (want >= 0 && note_fuzz_last_result != want)
                        fail_msg("%s: got %d, want %d", de->d_name, note_fuzz_last_result, want);
                n++;
        }
        closedir(d);
        print_message("replayed %u corpus files\n", n);
        assert_true(n >= 5);
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_go_sign_vector),
                cmocka_unit_test(test_go_open_vectors),
                cmocka_unit_test(test_vkey_manglings),
                cmocka_unit_test(test_roundtrip_and_forgeries),
                cmocka_unit_test(test_checkpoint_parse_strict),
                cmocka_unit_test(test_cosignature),
                cmocka_unit_test(test_cosignature_independent_vector),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_fuzz_corpus_replay),
        };
        if (argc > 1)
                corpus_dir = argv[1];
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
