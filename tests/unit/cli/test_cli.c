/* test_cli.c: the client commands against the real server (`coffre init` and `coffre serve` of
 * this build, COFFRE_BINARY, over HTTPS on 127.0.0.1), checking exit codes, stdout, stderr and
 * files as a user would see them; plus the escaping, URL-encoding and progress helpers.
 *
 * A second group runs against a stand-in (fake_server.py, stdlib Python) for what the real
 * server cannot be made to do: answer an upload with the wrong hash, serve altered or truncated
 * content, or send a document name with control characters (the real one refuses such names).
 * Network failures (a closed port, an untrusted certificate, a plain http:// URL) need no
 * server at all. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "fileio.h"
#include "hex.h"
#include "cli/progress.h"

/* Paths here are short ones under /tmp; truncation cannot happen. */
#ifndef __clang__ /* clang has no such warning */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#define FAKE_TOKEN "test-token-0123456789abcdef"
#define SERVER_DEADLINE_MS 30000 /* for the real server to write its port file */

static struct {
        char dir[PATH_MAX];
        char cert[PATH_MAX], key[PATH_MAX], other_cert[PATH_MAX], store[PATH_MAX];
        char url[64];
        char token[160];
        pid_t server;
} T;

struct out {
        int code;
        char *out;
        char *err;
};

static void out_done(struct out *o) {
        free(o->out);
        free(o->err);
        *o = (struct out){};
}

static char *slurp(const char *path) {
        struct buf b;
        assert_int_equal(read_file(path, 256 * 1024 * 1024, &b), 0);
        return buf_steal(&b);
}

/* Runs a command in-process with stdout and stderr captured in files. */
static void run_argv(int (*fn)(int, char **), struct out *o, char **argv) {
        char out_path[PATH_MAX], err_path[PATH_MAX];
        int argc = 0;

        while (argv[argc])
                argc++;
        snprintf(out_path, sizeof out_path, "%s/stdout", T.dir);
        snprintf(err_path, sizeof err_path, "%s/stderr", T.dir);
        fflush(stdout);
        fflush(stderr);
        int saved_out = dup(1), saved_err = dup(2);
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(saved_out >= 0 && saved_err >= 0 && fo >= 0 && fe >= 0);
        dup2(fo, 1);
        dup2(fe, 2);
        close(fo);
        close(fe);
        o->code = fn(argc, argv);
        fflush(stdout);
        fflush(stderr);
        dup2(saved_out, 1);
        dup2(saved_err, 2);
        close(saved_out);
        close(saved_err);
        o->out = slurp(out_path);
        o->err = slurp(err_path);
}

#define RUN(fn, o, ...)                                                  \
        do {                                                             \
                char *_argv[] = { __VA_ARGS__, NULL };                   \
                run_argv(fn, o, _argv);                                  \
        } while (0)

static void spawn_wait(char *const argv[]) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 2);
                execvp(argv[0], argv);
                _exit(127);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void make_cert(const char *cert, const char *key) {
        char *argv[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                         "-nodes", "-keyout", (char *) key, "-out", (char *) cert, "-days", "2", "-subj",
                         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", NULL };
        spawn_wait(argv);
}

static int fake_group_setup(void **state) {
        const char *script = getenv("COFFRE_CLI_FAKE_SERVER");
        char other_key[PATH_MAX], xdg[PATH_MAX];
        int p[2];

        if (!script)
                return -1;
        snprintf(T.dir, sizeof T.dir, "/tmp/coffre-cli-fake-XXXXXX");
        if (!mkdtemp(T.dir))
                return -1;
        snprintf(T.cert, sizeof T.cert, "%s/cert.pem", T.dir);
        snprintf(T.key, sizeof T.key, "%s/key.pem", T.dir);
        snprintf(T.other_cert, sizeof T.other_cert, "%s/other.pem", T.dir);
        snprintf(other_key, sizeof other_key, "%s/other-key.pem", T.dir);
        snprintf(T.store, sizeof T.store, "%s/store", T.dir);
        snprintf(xdg, sizeof xdg, "%s/no-config", T.dir);
        make_cert(T.cert, T.key);
        make_cert(T.other_cert, other_key);

        if (pipe(p) < 0)
                return -1;
        T.server = fork();
        if (T.server < 0)
                return -1;
        if (T.server == 0) {
                dup2(p[1], 1);
                close(p[0]);
                close(p[1]);
                execlp("python3", "python3", script, "--cert", T.cert, "--key", T.key, "--token", FAKE_TOKEN, "--dir",
                       T.store, NULL);
                _exit(127);
        }
        close(p[1]);
        FILE *f = fdopen(p[0], "r");
        int port = 0;
        /* blocks until the server listens: no sleeping */
        if (!f || fscanf(f, "PORT %d", &port) != 1 || port <= 0)
                return -1;
        fclose(f);
        snprintf(T.url, sizeof T.url, "https://127.0.0.1:%d", port);
        setenv("COFFRE_URL", T.url, 1);
        setenv("COFFRE_CACERT", T.cert, 1);
        setenv("COFFRE_TOKEN", FAKE_TOKEN, 1);
        snprintf(T.token, sizeof T.token, "%s", FAKE_TOKEN);
        setenv("XDG_CONFIG_HOME", xdg, 1); /* never the tester's own config */
        return 0;
}

static int fake_group_teardown(void **state) {
        if (T.server > 0) {
                kill(T.server, SIGTERM);
                waitpid(T.server, NULL, 0);
        }
        if (T.dir[0])
                rm_rf(T.dir);
        T = (typeof(T)){};
        return 0;
}

/* Waits (bounded, woken by inotify, no sleeping) until path exists with a port number in it. */
static int wait_port_file(const char *dir, const char *path, int ifd) {
        for (int waited = 0; waited < SERVER_DEADLINE_MS;) {
                struct buf b;
                if (read_file(path, 64, &b) == 0) {
                        int port = atoi(buf_str(&b) ? buf_str(&b) : "0");
                        buf_free(&b);
                        if (port > 0)
                                return port;
                }
                if (waitpid(T.server, NULL, WNOHANG) == T.server) {
                        T.server = 0;
                        return -1; /* the server exited during start-up */
                }
                struct pollfd pfd = { .fd = ifd, .events = POLLIN };
                int r = poll(&pfd, 1, 200); /* wakes on any change in dir, or re-checks the child */
                if (r < 0)
                        return -1;
                if (r > 0) {
                        char ev[4096];
                        if (read(ifd, ev, sizeof ev) < 0)
                                return -1;
                } else
                        waited += 200;
        }
        (void) dir;
        return -1;
}

/* A fresh vault made by `coffre init`, served by `coffre serve` on a free port. */
static int real_group_setup(void **state) {
        const char *coffre = getenv("COFFRE_BINARY");
        char other_key[PATH_MAX], xdg[PATH_MAX], vault[PATH_MAX], portf[PATH_MAX], tokf[PATH_MAX], logf[PATH_MAX];

        if (!coffre)
                return -1;
        snprintf(T.dir, sizeof T.dir, "/tmp/coffre-cli-test-XXXXXX");
        if (!mkdtemp(T.dir))
                return -1;
        snprintf(vault, sizeof vault, "%s/vault", T.dir);
        snprintf(portf, sizeof portf, "%s/port", T.dir);
        snprintf(tokf, sizeof tokf, "%s/bootstrap-token", vault);
        snprintf(logf, sizeof logf, "%s/server.log", T.dir);
        snprintf(T.cert, sizeof T.cert, "%s/tls/cert.pem", vault);
        snprintf(T.other_cert, sizeof T.other_cert, "%s/other.pem", T.dir);
        snprintf(other_key, sizeof other_key, "%s/other-key.pem", T.dir);
        snprintf(xdg, sizeof xdg, "%s/no-config", T.dir);
        make_cert(T.other_cert, other_key);
        char *init[] = { (char *) coffre, "init", "--data", vault, NULL };
        spawn_wait(init);
        /* classes without retention, so that coffre rm can delete what these tests upload */
        char conf[PATH_MAX];
        snprintf(conf, sizeof conf, "%s/coffre.conf", vault);
        FILE *cf = fopen(conf, "a");
        if (!cf)
                return -1;
        fputs("\n[class scratch]\nduration = 0d\nstart = ingest\nlock = governance\non_expiry = review\n"
              "[class cli-pages]\nduration = 0d\nstart = ingest\nlock = governance\non_expiry = review\n"
              "[vault]\ndefault_class = scratch\n",
              cf);
        if (fclose(cf) != 0)
                return -1;

        struct buf tok;
        if (read_file(tokf, sizeof T.token, &tok) < 0)
                return -1;
        snprintf(T.token, sizeof T.token, "%.*s", (int) strcspn(buf_str(&tok), "\n"), buf_str(&tok));
        sodium_memzero(tok.data, tok.len);
        buf_free(&tok);

        int ifd = inotify_init1(IN_CLOEXEC);
        if (ifd < 0 || inotify_add_watch(ifd, T.dir, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE) < 0)
                return -1;
        T.server = fork();
        if (T.server < 0)
                return -1;
        if (T.server == 0) {
                int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                dup2(fd, 1);
                dup2(fd, 2);
                execl(coffre, coffre, "serve", "--data", vault, "--listen", "127.0.0.1:0", "--port-file", portf,
                      (char *) NULL);
                _exit(127);
        }
        int port = wait_port_file(T.dir, portf, ifd);
        close(ifd);
        if (port <= 0) {
                fprintf(stderr, "coffre serve did not start; see %s\n", logf);
                return -1;
        }
        snprintf(T.url, sizeof T.url, "https://127.0.0.1:%d", port);
        /* the bootstrap token only makes the first owner: the commands run with that owner's token */
        const char *owner = getenv("COFFRE_CLI_OWNER_TOKEN");
        char owner_tok[PATH_MAX];
        snprintf(owner_tok, sizeof owner_tok, "%s/owner-token", T.dir);
        if (!owner)
                return -1;
        char *mk[] = { "python3", (char *) owner, T.url, T.cert, T.token, owner_tok, NULL };
        spawn_wait(mk);
        if (read_file(owner_tok, sizeof T.token, &tok) < 0)
                return -1;
        snprintf(T.token, sizeof T.token, "%.*s", (int) strcspn(buf_str(&tok), "\n"), buf_str(&tok));
        sodium_memzero(tok.data, tok.len);
        buf_free(&tok);
        setenv("COFFRE_URL", T.url, 1);
        setenv("COFFRE_CACERT", T.cert, 1);
        setenv("COFFRE_TOKEN", T.token, 1);
        setenv("XDG_CONFIG_HOME", xdg, 1); /* never the tester's own config */
        return 0;
}

/* SIGTERM: the server must exit 0 (a failure here fails the group). */
static int real_group_teardown(void **state) {
        int st = 0, ok = 1;
        if (T.server > 0) {
                kill(T.server, SIGTERM);
                ok = waitpid(T.server, &st, 0) == T.server && WIFEXITED(st) && WEXITSTATUS(st) == 0;
                if (!ok)
                        fprintf(stderr, "coffre serve did not exit 0 after SIGTERM (status %#x)\n", st);
        }
        if (T.dir[0])
                rm_rf(T.dir);
        T = (typeof(T)){};
        return ok ? 0 : -1;
}

static void write_random_file(const char *path, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        uint8_t chunk[65536];
        assert_true(fd >= 0);
        while (size > 0) {
                size_t n = MIN(size, sizeof chunk);
                randombytes_buf(chunk, n);
                assert_int_equal(write_all(fd, chunk, n), 0);
                size -= n;
        }
        close(fd);
}

static void sha256_file(const char *path, char hex[65]) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t chunk[65536], d[32];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        assert_true(fd >= 0 && md);
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        while ((n = read(fd, chunk, sizeof chunk)) > 0)
                EVP_DigestUpdate(md, chunk, (size_t) n);
        EVP_DigestFinal_ex(md, d, NULL);
        EVP_MD_CTX_free(md);
        close(fd);
        hex_encode(d, 32, hex);
}

static void path_in(char *out, const char *name) {
        snprintf(out, PATH_MAX, "%s/%s", T.dir, name);
}

static bool files_equal(const char *a, const char *b) {
        char ha[65], hb[65];
        sha256_file(a, ha);
        sha256_file(b, hb);
        return strcmp(ha, hb) == 0;
}

/* Uploads path (with an optional --name) and returns the new id from the "ID  SIZE  NAME" line. */
static void put_file(const char *path, const char *name, const char *class, char id[129]) {
        struct out o = {};
        unsigned long long size;

        if (name && class)
                RUN(cmd_put, &o, "put", (char *) path, "--name", (char *) name, "--class", (char *) class);
        else if (name)
                RUN(cmd_put, &o, "put", (char *) path, "--name", (char *) name);
        else if (class)
                RUN(cmd_put, &o, "put", (char *) path, "--class", (char *) class);
        else
                RUN(cmd_put, &o, "put", (char *) path);
        assert_int_equal(o.code, 0);
        assert_int_equal(sscanf(o.out, "%128s %llu", id, &size), 2);
        out_done(&o);
}

static size_t count_lines(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

/* The document id as `coffre ls --class CLASS --json` shows it (one JSON object a line). */
static json_t *ls_json_find(const char *id, const char *class) {
        struct out o = {};
        json_t *found = NULL;
        char *argv[] = { "ls", "--class", (char *) class, "--json", NULL };
        run_argv(cmd_ls, &o, argv);
        assert_int_equal(o.code, 0);
        for (char *line = o.out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                json_t *j = json_loads(line, 0, NULL);
                assert_non_null(j);
                if (!found && strcmp(json_string_value(json_object_get(j, "id")), id) == 0)
                        found = j;
                else
                        json_decref(j);
        }
        out_done(&o);
        assert_non_null(found);
        return found;
}

/* ---- helpers ---- */

static void test_escape(void **state) {
        static const struct {
                const char *in, *want;
        } cases[] = {
                { "facture-2026.pdf", "facture-2026.pdf" },
                { "reçu été", "reçu été" },
                { "a\x1b[2Jb", "a\\x1b[2Jb" },
                { "line\nbreak\ttab\r", "line\\nbreak\\ttab\\r" },
                { "back\\slash", "back\\\\slash" },
                { "del\x7f", "del\\x7f" },
                { "c1\xc2\x9b" "31m", "c1\\u{009b}31m" },      /* U+009B, the 8-bit CSI */
                { "rtl\xe2\x80\xae" "fdp.exe", "rtl\\u{202e}fdp.exe" }, /* RIGHT-TO-LEFT OVERRIDE */
                { "bad\xff", "bad\\xff" },
                { "overlong\xc0\xaf", "overlong\\xc0\\xaf" },
                { "cut\xe2\x82", "cut\\xe2\\x82" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *got = cli_escape(cases[i].in);
                assert_non_null(got);
                assert_string_equal(got, cases[i].want);
        }
}

static void test_url_encode(void **state) {
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(client_url_encode(&b, "a b/é&=?#%+~._-Z9"), 0);
        assert_string_equal(buf_str(&b), "a%20b%2F%C3%A9%26%3D%3F%23%25%2B~._-Z9");
        buf_free(&b);
}

static void test_progress_format(void **state) {
        char line[256], bytes[32];
        const uint64_t mib = 1024 * 1024;

        progress_format(line, sizeof line, "invoice.pdf", 50 * mib, 100 * mib, 10.0, 100);
        assert_non_null(strstr(line, "invoice.pdf"));
        assert_non_null(strstr(line, " 50%"));
        assert_non_null(strstr(line, "50.0 MiB / 100.0 MiB"));
        assert_non_null(strstr(line, "5.0 MiB/s"));
        assert_non_null(strstr(line, "ETA 0:10"));
        assert_true(strlen(line) <= 100);

        progress_format(line, sizeof line, "a-very-long-file-name-that-goes-on-and-on.pdf", 1 * mib, 4 * mib, 1.0, 60);
        assert_true(strlen(line) <= 60);
        assert_non_null(strstr(line, " 25%"));
        assert_non_null(strstr(line, "ETA 0:03"));

        progress_format(line, sizeof line, "x", 0, 0, 0.0, 80);
        assert_non_null(strstr(line, "0 B"));
        assert_null(strstr(line, "ETA"));

        progress_format_bytes(bytes, sizeof bytes, 1536.0);
        assert_string_equal(bytes, "1.5 KiB");
        progress_format_bytes(bytes, sizeof bytes, 3.0 * 1024 * 1024 * 1024);
        assert_string_equal(bytes, "3.0 GiB");
}

/* ---- commands ---- */

static void test_help(void **state) {
        int (*fns[])(int, char **) = { cmd_put, cmd_get, cmd_ls, cmd_rm };
        const char *names[] = { "put", "get", "ls", "rm" };
        struct out o = {};

        for (size_t i = 0; i < ELEMENTSOF(fns); i++) {
                char usage[64];
                RUN(fns[i], &o, (char *) names[i], "--help");
                assert_int_equal(o.code, 0);
                snprintf(usage, sizeof usage, "Usage: coffre %s", names[i]);
                assert_true(strncmp(o.out, usage, strlen(usage)) == 0);
                assert_non_null(strstr(o.out, "COFFRE_TOKEN"));
                assert_non_null(strstr(o.out, "--cacert"));
                assert_non_null(strstr(o.out, "Exit status: 0 ok, 1 failure, 2 usage error, 3 verification failed"));
                assert_string_equal(o.err, "");
                out_done(&o);
        }
}

static void test_usage_errors(void **state) {
        struct out o = {};

        RUN(cmd_put, &o, "put");
        assert_int_equal(o.code, 2);
        assert_string_equal(o.err, "coffre put: no FILE given (see coffre put --help)\n");
        out_done(&o);
        RUN(cmd_put, &o, "put", "a", "b", "--name", "x");
        assert_int_equal(o.code, 2);
        out_done(&o);
        RUN(cmd_put, &o, "put", "a", "--token", T.token);
        assert_int_equal(o.code, 2);
        assert_non_null(strstr(o.err, "never taken from the command line"));
        assert_null(strstr(o.err, T.token));
        out_done(&o);
        RUN(cmd_get, &o, "get", "../../etc/passwd");
        assert_int_equal(o.code, 2);
        out_done(&o);
        RUN(cmd_get, &o, "get", "a", "b");
        assert_int_equal(o.code, 2);
        out_done(&o);
        RUN(cmd_ls, &o, "ls", "--limit", "0");
        assert_int_equal(o.code, 2);
        out_done(&o);
        RUN(cmd_ls, &o, "ls", "--after", "yesterday");
        assert_int_equal(o.code, 2);
        out_done(&o);
        RUN(cmd_rm, &o, "rm");
        assert_int_equal(o.code, 2);
        out_done(&o);
}

static void test_put_get_roundtrip(void **state) {
        char src[PATH_MAX], dst[PATH_MAX], hex[65], id[129], line[512];
        struct out o = {};
        struct stat st;

        path_in(src, "relevé 2026-03.pdf");
        path_in(dst, "roundtrip.out");
        write_random_file(src, 3 * 65536 + 123);
        sha256_file(src, hex);

        RUN(cmd_put, &o, "put", src, "--class", "accounting-10y");
        assert_int_equal(o.code, 0);
        assert_string_equal(o.err, "");
        assert_int_equal(sscanf(o.out, "%128s", id), 1);
        snprintf(line, sizeof line, "%s  %d  relevé 2026-03.pdf\n", id, 3 * 65536 + 123);
        assert_string_equal(o.out, line);
        out_done(&o);

        /* what the server stored: the name (UTF-8, with a space), the class and the hash */
        json_t *stored = ls_json_find(id, "accounting-10y");
        assert_string_equal(json_string_value(json_object_get(stored, "name")), "relevé 2026-03.pdf");
        assert_string_equal(json_string_value(json_object_get(stored, "class")), "accounting-10y");
        assert_string_equal(json_string_value(json_object_get(stored, "sha256")), hex);
        assert_int_equal(json_integer_value(json_object_get(stored, "size")), 3 * 65536 + 123);
        json_decref(stored);

        RUN(cmd_get, &o, "get", id, "-o", dst);
        assert_int_equal(o.code, 0);
        assert_string_equal(o.out, "");
        assert_string_equal(o.err, "");
        out_done(&o);
        assert_true(files_equal(src, dst));
        assert_int_equal(stat(dst, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        /* replacing an existing file keeps its permissions */
        assert_int_equal(chmod(dst, 0640), 0);
        RUN(cmd_get, &o, "get", "-o", dst, id);
        assert_int_equal(o.code, 0);
        out_done(&o);
        assert_int_equal(stat(dst, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);
        assert_true(files_equal(src, dst));

        /* to standard output */
        RUN(cmd_get, &o, "get", id);
        assert_int_equal(o.code, 0);
        char got[65];
        unsigned char d[32];
        EVP_Digest(o.out, 3 * 65536 + 123, d, NULL, EVP_sha256(), NULL);
        hex_encode(d, 32, got);
        assert_string_equal(got, hex);
        out_done(&o);
}

static void test_put_json_and_stop_at_failure(void **state) {
        char a[PATH_MAX], b[PATH_MAX], missing[PATH_MAX], ha[65], hb[65];
        struct out o = {};

        path_in(a, "a.txt");
        path_in(b, "b.bin");
        path_in(missing, "missing.pdf");
        write_random_file(a, 10);
        write_random_file(b, 0);
        sha256_file(a, ha);
        sha256_file(b, hb);

        RUN(cmd_put, &o, "put", "--json", a, b);
        assert_int_equal(o.code, 0);
        assert_int_equal(count_lines(o.out), 2);
        json_t *j = json_loads(o.out, JSON_DISABLE_EOF_CHECK, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "sha256")), ha);
        assert_string_equal(json_string_value(json_object_get(j, "name")), "a.txt");
        assert_int_equal(json_integer_value(json_object_get(j, "size")), 10);
        assert_non_null(json_string_value(json_object_get(j, "created_at")));
        json_decref(j);
        j = json_loads(strchr(o.out, '\n') + 1, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(j, "sha256")), hb);
        json_decref(j);
        out_done(&o);

        RUN(cmd_put, &o, "put", a, missing, b);
        assert_int_equal(o.code, 1);
        assert_int_equal(count_lines(o.out), 1); /* a only: b is never sent */
        assert_non_null(strstr(o.err, "cannot open"));
        assert_non_null(strstr(o.err, "No such file or directory"));
        out_done(&o);

        RUN(cmd_put, &o, "put", T.dir);
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "is not a regular file"));
        out_done(&o);
}

static void test_put_answer_mismatch(void **state) {
        char src[PATH_MAX];
        struct out o = {};

        path_in(src, "lie.pdf");
        write_random_file(src, 1000);
        RUN(cmd_put, &o, "put", src, "--name", "lie-1.pdf");
        assert_int_equal(o.code, 3);
        assert_string_equal(o.out, "");
        assert_non_null(strstr(o.err, "the server recorded"));
        out_done(&o);
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *e;
        size_t n = 0;
        assert_non_null(d);
        while ((e = readdir(d)))
                n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
        closedir(d);
        return n;
}

static void test_get_verification_failures(void **state) {
        char src[PATH_MAX], outdir[PATH_MAX], dst[PATH_MAX], corrupt[129], shortid[129];
        struct out o = {};

        path_in(src, "victim.pdf");
        path_in(outdir, "getdir");
        assert_int_equal(mkdir(outdir, 0700), 0);
        snprintf(dst, sizeof dst, "%s/doc.pdf", outdir);
        write_random_file(src, 200000);
        put_file(src, "corrupt-1.pdf", NULL, corrupt);
        put_file(src, "short-1.pdf", NULL, shortid);

        RUN(cmd_get, &o, "get", corrupt, "-o", dst);
        assert_int_equal(o.code, 3);
        assert_non_null(strstr(o.err, "verification failed"));
        assert_non_null(strstr(o.err, "nothing was written"));
        out_done(&o);
        assert_int_equal(count_entries(outdir), 0); /* no file, no temporary left over */

        /* an existing file is left as it was */
        assert_int_equal(write_file_atomic(dst, "old", 3, 0600, 0), 0);
        RUN(cmd_get, &o, "get", shortid, "-o", dst);
        assert_int_equal(o.code, 3);
        out_done(&o);
        _cleanup_free_ char *old = slurp(dst);
        assert_string_equal(old, "old");
        assert_int_equal(count_entries(outdir), 1);

        RUN(cmd_get, &o, "get", corrupt);
        assert_int_equal(o.code, 3);
        assert_non_null(strstr(o.err, "discard what was written"));
        out_done(&o);
}

static void test_http_errors(void **state) {
        char missing[65];
        uint8_t raw[16];
        struct out o = {};

        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, missing);
        RUN(cmd_get, &o, "get", missing);
        assert_int_equal(o.code, 1);
        assert_string_equal(o.out, "");
        assert_string_equal(o.err, "coffre: Not found: There is no such document. (HTTP 404)\n");
        out_done(&o);

        setenv("COFFRE_TOKEN", "cfr_wrong-token-0123456789abcdef", 1);
        RUN(cmd_ls, &o, "ls");
        setenv("COFFRE_TOKEN", T.token, 1);
        assert_int_equal(o.code, 1);
        const char *want = "coffre: Unauthorized: The token is not valid. (HTTP 401)\n";
        assert_true(strncmp(o.err, want, strlen(want)) == 0);
        assert_null(strstr(o.err, "wrong-token"));
        out_done(&o);
}

static void test_ls_paging_and_filters(void **state) {
        enum { N = 105 }; /* past the server's default page of 100: ls follows the cursor */
        char class[32], *argv[N + 4], paths[N][PATH_MAX], ids[N][129];
        struct out o = {};

        snprintf(class, sizeof class, "cli-pages"); /* declared in the group's coffre.conf */
        argv[0] = "put";
        for (int i = 0; i < N; i++) {
                char name[32];
                snprintf(name, sizeof name, "page-%03d.txt", i);
                path_in(paths[i], name);
                write_random_file(paths[i], 5);
                argv[1 + i] = paths[i];
        }
        argv[1 + N] = "--class";
        argv[2 + N] = class;
        argv[3 + N] = NULL;
        run_argv(cmd_put, &o, argv);
        assert_int_equal(o.code, 0);
        assert_int_equal(count_lines(o.out), N);
        const char *line = o.out;
        for (int i = 0; i < N; i++) {
                assert_int_equal(sscanf(line, "%128s", ids[i]), 1);
                line = strchr(line, '\n') + 1;
        }
        out_done(&o);

        RUN(cmd_ls, &o, "ls", "--class", class);
        assert_int_equal(o.code, 0);
        assert_int_equal(count_lines(o.out), N + 1); /* a header and every document once */
        assert_true(strncmp(o.out, "ID ", 3) == 0);
        assert_non_null(strstr(o.out, "CREATED"));
        for (int i = 0; i < N; i++) {
                const char *row = strstr(o.out, ids[i]);
                assert_non_null(row);
                assert_null(strstr(row + 1, ids[i]));
        }
        out_done(&o);

        RUN(cmd_ls, &o, "ls", "--class", class, "--limit", "3");
        assert_int_equal(o.code, 0);
        assert_int_equal(count_lines(o.out), 4);
        out_done(&o);

        RUN(cmd_ls, &o, "ls", "--class", class, "--json");
        assert_int_equal(o.code, 0);
        assert_int_equal(count_lines(o.out), N);
        json_t *j = json_loads(o.out, JSON_DISABLE_EOF_CHECK, NULL);
        assert_string_equal(json_string_value(json_object_get(j, "class")), class);
        json_decref(j);
        out_done(&o);

        /* the date filters reach the server: a window around now holds them all, others none */
        RUN(cmd_ls, &o, "ls", "--class", class, "--after", "2026-01-01", "--before", "2099-12-31T00:00:00Z");
        assert_int_equal(o.code, 0);
        assert_int_equal(count_lines(o.out), N + 1);
        out_done(&o);
        RUN(cmd_ls, &o, "ls", "--class", class, "--json", "--after", "2099-01-01");
        assert_int_equal(o.code, 0);
        assert_string_equal(o.out, "");
        out_done(&o);
        RUN(cmd_ls, &o, "ls", "--class", class, "--json", "--before", "2001-01-01T00:00:00Z");
        assert_int_equal(o.code, 0);
        assert_string_equal(o.out, "");
        out_done(&o);
        for (int i = 0; i < N; i++)
                unlink(paths[i]);
}

/* The real server refuses a name with control characters: put says so and stores nothing. */
static void test_control_names_refused(void **state) {
        char src[PATH_MAX], class[32];
        struct out o = {};

        snprintf(class, sizeof class, "esc-%08x", randombytes_random());
        path_in(src, "evil.txt");
        write_random_file(src, 3);
        RUN(cmd_put, &o, "put", src, "--class", class, "--name", "evil\x1b]0;pwned\x07\nsecond line");
        assert_int_equal(o.code, 1);
        assert_string_equal(o.out, "");
        assert_string_equal(o.err, "coffre: Bad request: name must not contain control characters (HTTP 400)\n");
        out_done(&o);
        RUN(cmd_ls, &o, "ls", "--class", class, "--json");
        assert_int_equal(o.code, 0);
        assert_string_equal(o.out, "");
        out_done(&o);
}

/* Stand-in only: a server that sends a name with control characters; ls shows them escaped. */
static void test_names_escaped(void **state) {
        char src[PATH_MAX], id[129], class[32];
        struct out o = {};

        snprintf(class, sizeof class, "esc-%08x", randombytes_random());
        path_in(src, "evil.txt");
        write_random_file(src, 3);
        RUN(cmd_put, &o, "put", src, "--class", class, "--name", "evil\x1b]0;pwned\x07\nsecond line");
        assert_int_equal(o.code, 0);
        assert_int_equal(sscanf(o.out, "%128s", id), 1);
        assert_non_null(strstr(o.out, "  evil\\x1b]0;pwned\\x07\\nsecond line\n"));
        assert_null(strchr(o.out, '\x1b'));
        out_done(&o);

        RUN(cmd_ls, &o, "ls", "--class", class);
        assert_int_equal(o.code, 0);
        assert_int_equal(count_lines(o.out), 2);
        assert_non_null(strstr(o.out, "evil\\x1b]0;pwned\\x07\\nsecond line\n"));
        assert_null(strchr(o.out, '\x1b'));
        out_done(&o);
}

static void test_rm(void **state) {
        char src[PATH_MAX], keep[129], gone[129], missing[65];
        struct out o = {};

        path_in(src, "rm.txt");
        write_random_file(src, 7);
        put_file(src, NULL, NULL, gone);
        put_file(src, NULL, NULL, keep);
        uint8_t raw[16];
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, missing); /* a well-formed id the vault does not have */

        RUN(cmd_rm, &o, "rm", gone);
        assert_int_equal(o.code, 0);
        assert_string_equal(o.out, "");
        assert_string_equal(o.err, "");
        out_done(&o);
        RUN(cmd_get, &o, "get", gone);
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "(HTTP 410)")); /* erased: its tombstone answers */
        out_done(&o);

        /* rm stops at the first refusal: the document after it is left alone */
        RUN(cmd_rm, &o, "rm", missing, keep);
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "(HTTP 404)"));
        out_done(&o);
        RUN(cmd_get, &o, "get", keep);
        assert_int_equal(o.code, 0);
        out_done(&o);
}

static void test_tls_and_connection_errors(void **state) {
        struct out o = {};

        RUN(cmd_ls, &o, "ls", "--cacert", T.other_cert);
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "is not trusted"));
        assert_non_null(strstr(o.err, "use --cacert"));
        out_done(&o);

        RUN(cmd_ls, &o, "ls", "--cacert", "/nonexistent/ca.pem");
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "/nonexistent/ca.pem"));
        out_done(&o);

        /* a port nobody listens on: bound, then closed */
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof sa;
        assert_int_equal(bind(s, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(getsockname(s, (struct sockaddr *) &sa, &sl), 0);
        close(s);
        char url[64];
        snprintf(url, sizeof url, "https://127.0.0.1:%d", ntohs(sa.sin_port));
        RUN(cmd_ls, &o, "ls", "--url", url);
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "connection refused"));
        out_done(&o);

        RUN(cmd_ls, &o, "ls", "--url", "http://127.0.0.1:8080");
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "must start with https://"));
        out_done(&o);
}

static void test_config_file_and_token_file(void **state) {
        char xdg[PATH_MAX], confdir[PATH_MAX], conf[PATH_MAX], token[PATH_MAX], text[2 * PATH_MAX];
        _cleanup_free_ char *saved_xdg = strdup(getenv("XDG_CONFIG_HOME"));
        struct out o = {};

        path_in(xdg, "xdg");
        snprintf(confdir, sizeof confdir, "%s/coffre", xdg);
        snprintf(conf, sizeof conf, "%s/config", confdir);
        snprintf(token, sizeof token, "%s/token", confdir);
        assert_int_equal(mkdir_p(confdir, 0700), 0);
        /* relative token_file is relative to the config file's directory */
        snprintf(text, sizeof text, "[client]\nurl = %s\ncacert = %s\ntoken_file = token\n", T.url, T.cert);
        assert_int_equal(write_file_atomic(conf, text, strlen(text), 0644, 0), 0);
        char tokline[sizeof T.token + 1];
        snprintf(tokline, sizeof tokline, "%s\n", T.token);
        assert_int_equal(write_file_atomic(token, tokline, strlen(tokline), 0644, 0), 0);
        setenv("XDG_CONFIG_HOME", xdg, 1);
        unsetenv("COFFRE_URL");
        unsetenv("COFFRE_CACERT");
        unsetenv("COFFRE_TOKEN");

        RUN(cmd_ls, &o, "ls");
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "accessible by group or others (mode 0644)"));
        assert_non_null(strstr(o.err, "chmod 600"));
        assert_null(strstr(o.err, T.token));
        out_done(&o);

        assert_int_equal(chmod(token, 0600), 0);
        RUN(cmd_ls, &o, "ls", "--limit", "1");
        assert_int_equal(o.code, 0);
        out_done(&o);

        snprintf(text, sizeof text, "[client]\nurl = %s\ntokenfile = token\n", T.url);
        assert_int_equal(write_file_atomic(conf, text, strlen(text), 0644, 0), 0);
        RUN(cmd_ls, &o, "ls");
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, ":3: unknown key \"tokenfile\""));
        out_done(&o);

        unlink(conf);
        RUN(cmd_ls, &o, "ls");
        assert_int_equal(o.code, 1);
        assert_non_null(strstr(o.err, "no API token"));
        out_done(&o);

        setenv("XDG_CONFIG_HOME", saved_xdg, 1);
        setenv("COFFRE_URL", T.url, 1);
        setenv("COFFRE_CACERT", T.cert, 1);
        setenv("COFFRE_TOKEN", T.token, 1);
}

static long rss_now_kib(void) {
        long pages = 0, resident = 0;
        FILE *f = fopen("/proc/self/statm", "re");
        assert_non_null(f);
        assert_int_equal(fscanf(f, "%ld %ld", &pages, &resident), 2);
        fclose(f);
        return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A 96 MiB document up and down: the peak resident size grows by far less than its size. */
static void test_memory_stays_flat(void **state) {
        char src[PATH_MAX], dst[PATH_MAX], id[129];
        struct out o = {};
        struct rusage ru;

        path_in(src, "big.bin");
        path_in(dst, "big.out");
        write_random_file(src, 96u << 20);
        long before = rss_now_kib();
        put_file(src, NULL, NULL, id);
        RUN(cmd_get, &o, "get", id, "-o", dst);
        assert_int_equal(o.code, 0);
        out_done(&o);
        assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
        print_message("rss before %ld KiB, peak after %ld KiB\n", before, ru.ru_maxrss);
#if !defined(__SANITIZE_ADDRESS__) && !__has_feature(address_sanitizer) /* gcc, clang */
        /* (ASan keeps freed blocks in quarantine, so the resident size says nothing there) */
        assert_true(ru.ru_maxrss - before < 24 * 1024);
#endif
        assert_true(files_equal(src, dst));
        unlink(src);
        unlink(dst);
}

int main(void) {
        /* against the real server */
        const struct CMUnitTest real[] = {
                cmocka_unit_test(test_escape),
                cmocka_unit_test(test_url_encode),
                cmocka_unit_test(test_progress_format),
                cmocka_unit_test(test_help),
                cmocka_unit_test(test_usage_errors),
                cmocka_unit_test(test_put_get_roundtrip),
                cmocka_unit_test(test_put_json_and_stop_at_failure),
                cmocka_unit_test(test_http_errors),
                cmocka_unit_test(test_ls_paging_and_filters),
                cmocka_unit_test(test_control_names_refused),
                cmocka_unit_test(test_rm),
                cmocka_unit_test(test_tls_and_connection_errors),
                cmocka_unit_test(test_config_file_and_token_file),
                cmocka_unit_test(test_memory_stays_flat),
        };
        /* against the stand-in, for what the real server never does */
        const struct CMUnitTest fake[] = {
                cmocka_unit_test(test_put_answer_mismatch),
                cmocka_unit_test(test_get_verification_failures),
                cmocka_unit_test(test_names_escaped),
        };
        if (sodium_init() < 0)
                return 1;
        int r = cmocka_run_group_tests_name("cli-real-server", real, real_group_setup, real_group_teardown);
        return r | cmocka_run_group_tests_name("cli-stand-in", fake, fake_group_setup, fake_group_teardown);
}
