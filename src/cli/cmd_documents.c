/* cmd_documents.c: the document commands of the client: put, get, ls and rm. Uploads and
 * downloads stream from and to disk; every byte received is checked against the SHA-256 the
 * vault recorded before it is handed to the user. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "client.h"
#include "cmd_common.h"
#include "config.h"
#include "fileio.h"
#include "hex.h"
#include "progress.h"

#define HASH_PIECE ((size_t) 64 * 1024)
#define LS_PAGE_MAX 1000

/* ---- put ---------------------------------------------------------------------------------- */

static const char put_help[] =
        "Usage: coffre put FILE... [--class CLASS] [--name NAME] [--json]\n"
        "\n"
        "Uploads each FILE to the vault and prints one line per document: ID  SIZE  NAME.\n"
        "The SHA-256 of each file is computed first and checked by the server and against its\n"
        "answer. Stops at the first failure.\n"
        "\n"
        "Options:\n"
        "  -c, --class CLASS   retention class (default: the server's, accounting-10y)\n"
        "  -n, --name NAME     name to store, only with one FILE (default: the file's base name)\n"
        "      --json          print the server's answer instead, one JSON object per line\n" CMD_COMMON_HELP;

/* First pass over the file: its SHA-256, with a progress bar for large files. */
static int hash_file(int fd, const char *label, uint64_t size, bool show, char ret_hex[static 65]) {
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_(progress_freep) struct progress *p = NULL;
        _cleanup_free_ uint8_t *piece = malloc(HASH_PIECE);
        uint8_t digest[32];
        uint64_t done = 0;
        int r;

        if (!md || !piece || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return -ENOMEM;
        r = progress_new(label, size, show && size >= 16 * HASH_PIECE, &p);
        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = read_full(fd, piece, HASH_PIECE);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(md, piece, (size_t) n) != 1)
                        return -EIO;
                done += (uint64_t) n;
                progress_update(p, done);
        }
        if (done != size)
                return -ESTALE;
        if (EVP_DigestFinal_ex(md, digest, NULL) != 1)
                return -EIO;
        hex_encode(digest, sizeof digest, ret_hex);
        return 0;
}

static const char *base_name(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash ? slash + 1 : path;
}

static int put_one(struct client *c, const char *file, const char *name, const char *class, bool json) {
        _cleanup_free_ char *show = cli_escape(file);
        _cleanup_(progress_freep) struct progress *p = NULL;
        json_t *answer = NULL;
        struct buf path;
        struct stat st;
        struct cmd_doc d;
        char hex[65];
        int r;

        if (!show)
                return -ENOMEM;
        _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                cli_error("cannot open %s: %s", show, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                cli_error("%s is not a regular file", show);
                return -EINVAL;
        }
        if (!name)
                name = base_name(file);
        struct buf label;
        buf_init(&label, 0);
        r = buf_printf(&label, "checksum of %s", name);
        if (r >= 0)
                r = hash_file(fd, buf_str(&label), (uint64_t) st.st_size, !json, hex);
        buf_free(&label);
        if (r < 0) {
                cli_error("cannot read %s: %s", show,
                          r == -ESTALE ? "it changed while being read" : strerror(-r));
                return r;
        }
        if (lseek(fd, 0, SEEK_SET) < 0) {
                r = negative_errno();
                cli_error("cannot read %s: %s", show, strerror(-r));
                return r;
        }

        buf_init(&path, 64 * 1024);
        r = buf_append_str(&path, "/v1/documents?name=");
        if (r >= 0)
                r = client_url_encode(&path, name);
        if (r >= 0 && class) {
                r = buf_append_str(&path, "&class=");
                if (r >= 0)
                        r = client_url_encode(&path, class);
        }
        if (r >= 0 && !buf_str(&path))
                r = -ENOMEM;
        if (r >= 0)
                r = progress_new(name, (uint64_t) st.st_size, !json, &p);
        if (r >= 0)
                r = client_upload(c, buf_str(&path), fd, (uint64_t) st.st_size, hex, p, &answer);
        buf_free(&path);
        progress_finish(p);
        if (r < 0)
                return r;

        r = cmd_doc_from_json(answer, &d);
        if (r >= 0 && (d.size != (uint64_t) st.st_size || strcmp(d.sha256, hex) != 0)) {
                cli_error("the server recorded %s with size %" PRIu64 " and SHA-256 %s, but the file has size %" PRIu64
                          " and SHA-256 %s",
                          show, d.size, d.sha256, (uint64_t) st.st_size, hex);
                r = -EBADMSG;
        }
        if (r >= 0) {
                if (json)
                        r = cmd_print_json_line(answer);
                else {
                        _cleanup_free_ char *shown_name = cli_escape(d.name);
                        if (!shown_name)
                                r = -ENOMEM;
                        else {
                                printf("%s  %" PRIu64 "  %s\n", d.id, d.size, shown_name);
                                fflush(stdout);
                        }
                }
        }
        json_decref(answer);
        return r;
}

int cmd_put(int argc, char **argv) {
        static const struct option options[] = {
                { "class", required_argument, NULL, 'c' },
                { "name", required_argument, NULL, 'n' },
                { "json", no_argument, NULL, CMD_OPT_JSON },
                CMD_COMMON_OPTIONS,
                {},
        };
        struct cmd_opts o = {};
        const char *class = NULL, *name = NULL;
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "c:n:h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(put_help, stdout);
                        return cmd_finish_stdout();
                } else if (opt == 'c')
                        class = optarg;
                else if (opt == 'n')
                        name = optarg;
                else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("put", argv);
        }
        if (optind >= argc)
                return cmd_usage_error("put", "no FILE given");
        if (name && argc - optind > 1)
                return cmd_usage_error("put", "--name only works with a single FILE");
        if (name && !name[0])
                return cmd_usage_error("put", "--name must not be empty");
        if (class && !class[0])
                return cmd_usage_error("put", "--class must not be empty");

        _cleanup_(client_freep) struct client *c = NULL;
        r = cmd_open_client(&o, &c);
        if (r < 0)
                return cmd_exit_code(r);
        for (int i = optind; i < argc; i++) {
                r = put_one(c, argv[i], name, class, o.json);
                if (r < 0)
                        return cmd_exit_code(r);
        }
        return cmd_finish_stdout();
}

/* ---- get ---------------------------------------------------------------------------------- */

static const char get_help[] =
        "Usage: coffre get ID [-o FILE]\n"
        "\n"
        "Downloads document ID. With -o, the bytes go to a temporary file beside FILE, which\n"
        "replaces FILE (mode 0600 when new) only once their SHA-256 matches the one the vault\n"
        "recorded; on a mismatch nothing is left behind and the exit status is 3. Without -o\n"
        "(or with -o -) they go to standard output, which must not be a terminal, and are\n"
        "checked at the end (exit status 3 on a mismatch).\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE   where to write the document (default: standard output)\n" CMD_COMMON_HELP;

struct sink {
        int fd;
        const char *what; /* escaped, for messages */
        EVP_MD_CTX *md;
        uint64_t received;
        uint64_t expected;
};

static int sink_write(const void *data, size_t n, void *userdata) {
        struct sink *s = userdata;

        if (n > s->expected - s->received) {
                cli_error("the server sent more bytes than the document has; download aborted");
                return -EBADMSG;
        }
        if (EVP_DigestUpdate(s->md, data, n) != 1)
                return -EIO;
        int r = write_all(s->fd, data, n);
        if (r < 0) {
                cli_error("cannot write %s: %s", s->what, strerror(-r));
                return r;
        }
        s->received += n;
        return 0;
}

/* Where a download goes before it is known to be right: an unnamed O_TMPFILE in FILE's
 * directory (nothing is left even after kill -9), else a hidden named file removed on failure. */
struct out_file {
        int fd;
        char *dir;
        char *tmp; /* the named temporary file, once there is one */
};

static void out_file_abort(struct out_file *o) {
        if (o->fd >= 0)
                close(o->fd);
        if (o->tmp)
                unlink(o->tmp);
        free(o->dir);
        free(o->tmp);
        *o = (struct out_file){ .fd = -1 };
}

static char *temp_name(const char *dir, const char *target) {
        uint8_t rnd[6];
        char hex[13];
        struct buf b;

        randombytes_buf(rnd, sizeof rnd);
        hex_encode(rnd, sizeof rnd, hex);
        buf_init(&b, 0);
        if (buf_printf(&b, "%s/.%s.coffre-%s", dir, base_name(target), hex) < 0) {
                buf_free(&b);
                return NULL;
        }
        return buf_steal(&b);
}

static int out_file_open(const char *target, struct out_file *ret) {
        struct out_file o = { .fd = -1 };
        const char *slash = strrchr(target, '/');

        o.dir = slash ? (slash == target ? strdup("/") : strndup(target, (size_t) (slash - target))) : strdup(".");
        if (!o.dir)
                return -ENOMEM;
        o.fd = open(o.dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        if (o.fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
                for (int tries = 0; o.fd < 0 && tries < 8; tries++) {
                        free(o.tmp);
                        o.tmp = temp_name(o.dir, target);
                        if (!o.tmp) {
                                out_file_abort(&o);
                                return -ENOMEM;
                        }
                        o.fd = open(o.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                        if (o.fd < 0 && errno != EEXIST)
                                break;
                }
        }
        if (o.fd < 0) {
                int r = negative_errno();
                free(o.tmp);
                o.tmp = NULL; /* never created */
                out_file_abort(&o);
                return r;
        }
        *ret = o;
        return 0;
}

/* fsync, give the file its name atomically, fsync the directory. */
static int out_file_commit(struct out_file *o, const char *target, mode_t mode) {
        if (fchmod(o->fd, mode) < 0 || fsync(o->fd) < 0)
                return negative_errno();
        if (!o->tmp) {
                char proc[64];
                snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
                for (int tries = 0;; tries++) {
                        _cleanup_free_ char *t = temp_name(o->dir, target);
                        if (!t)
                                return -ENOMEM;
                        if (linkat(AT_FDCWD, proc, AT_FDCWD, t, AT_SYMLINK_FOLLOW) == 0) {
                                o->tmp = TAKE_PTR(t);
                                break;
                        }
                        if (errno != EEXIST || tries >= 8)
                                return negative_errno();
                }
        }
        if (rename(o->tmp, target) < 0)
                return negative_errno();
        free(o->tmp);
        o->tmp = NULL; /* now it is the target: abort must not remove it */
        return fsync_dir(o->dir);
}

static int fetch_metadata(struct client *c, const char *id, json_t **ret_json, struct cmd_doc *ret) {
        char path[32 + CMD_ID_MAX];
        json_t *o = NULL;

        snprintf(path, sizeof path, "/v1/documents/%s", id);
        int r = client_get_json(c, path, &o);
        if (r < 0)
                return r;
        r = cmd_doc_from_json(o, ret);
        if (r >= 0 && strcmp(ret->id, id) != 0) {
                cli_error("the server answered about another document than %s", id);
                r = -EPROTO;
        }
        if (r < 0) {
                json_decref(o);
                return r;
        }
        *ret_json = o;
        return 0;
}

/* The ETag is "\"<sha256>\"": a strong one that disagrees with the metadata is a bad sign. */
static bool etag_contradicts(const char *etag, const char *sha256) {
        size_t n = etag ? strlen(etag) : 0;
        if (n != 66 || etag[0] != '"' || etag[65] != '"')
                return false;
        return strncasecmp(etag + 1, sha256, 64) != 0;
}

static int get_document(struct client *c, const char *id, const char *output) {
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_(progress_freep) struct progress *p = NULL;
        _cleanup_free_ char *etag = NULL, *show = NULL;
        struct out_file out = { .fd = -1 };
        bool to_stdout = !output || strcmp(output, "-") == 0;
        mode_t mode = 0600;
        json_t *meta = NULL;
        uint8_t want[32], got[32];
        struct cmd_doc d;
        struct stat st;
        int r;

        if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return -ENOMEM;
        show = cli_escape(to_stdout ? "standard output" : output);
        if (!show)
                return -ENOMEM;
        if (!to_stdout && stat(output, &st) == 0) {
                if (!S_ISREG(st.st_mode)) {
                        cli_error("%s exists and is not a regular file", show);
                        return -EEXIST;
                }
                mode = st.st_mode & 07777; /* replacing a file keeps its permissions */
        }
        r = fetch_metadata(c, id, &meta, &d);
        if (r < 0)
                return r;
        if (hex_decode(d.sha256, want, sizeof want) < 0) {
                json_decref(meta);
                return -EPROTO;
        }
        if (to_stdout)
                out.fd = STDOUT_FILENO;
        else {
                r = out_file_open(output, &out);
                if (r < 0) {
                        cli_error("cannot create %s: %s", show, strerror(-r));
                        goto finish;
                }
        }

        struct sink s = { .fd = out.fd, .what = show, .md = md, .expected = d.size };
        char path[48 + CMD_ID_MAX];
        snprintf(path, sizeof path, "/v1/documents/%s/content", id);
        r = progress_new(d.name, d.size, true, &p);
        if (r >= 0)
                r = client_download(c, path, sink_write, &s, p, &etag);
        progress_finish(p);
        if (r < 0)
                goto finish;
        if (EVP_DigestFinal_ex(md, got, NULL) != 1) {
                r = -EIO;
                goto finish;
        }
        if (s.received != d.size || CRYPTO_memcmp(got, want, sizeof got) != 0 || etag_contradicts(etag, d.sha256)) {
                char got_hex[65];
                hex_encode(got, sizeof got, got_hex);
                cli_error("verification failed: received %" PRIu64 " bytes with SHA-256 %s, but document %s has %" PRIu64
                          " bytes with SHA-256 %s%s",
                          s.received, got_hex, id, d.size, d.sha256,
                          to_stdout ? "; discard what was written" : "; nothing was written");
                r = -EBADMSG;
                goto finish;
        }
        if (!to_stdout) {
                r = out_file_commit(&out, output, mode);
                if (r < 0)
                        cli_error("cannot write %s: %s", show, strerror(-r));
        }
finish:
        if (!to_stdout)
                out_file_abort(&out);
        json_decref(meta);
        return r;
}

int cmd_get(int argc, char **argv) {
        static const struct option options[] = {
                { "output", required_argument, NULL, 'o' },
                CMD_COMMON_OPTIONS,
                {},
        };
        struct cmd_opts o = {};
        const char *output = NULL;
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(get_help, stdout);
                        return cmd_finish_stdout();
                } else if (opt == 'o')
                        output = optarg;
                else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("get", argv);
        }
        if (argc - optind != 1)
                return cmd_usage_error("get", argc - optind == 0 ? "no ID given" : "only one ID at a time");
        if (!cmd_id_is_valid(argv[optind]))
                return cmd_usage_error("get", "not a document ID (letters, digits, '-' and '_')");
        if (output && !output[0])
                return cmd_usage_error("get", "-o needs a file name");
        if ((!output || strcmp(output, "-") == 0) && isatty(STDOUT_FILENO))
                return cmd_usage_error("get", "refusing to write a document to a terminal: use -o FILE or a redirection");

        _cleanup_(client_freep) struct client *c = NULL;
        r = cmd_open_client(&o, &c);
        if (r >= 0)
                r = get_document(c, argv[optind], output);
        return r < 0 ? cmd_exit_code(r) : CLI_EXIT_OK;
}

/* ---- evidence ----------------------------------------------------------------------------- */

static const char evidence_help[] =
        "Usage: coffre evidence ID -o FILE.asics\n"
        "\n"
        "Downloads the document's evidence bundle: an ASiC-S container (ZIP) with the document, its\n"
        "CAdES seal, the seal and TSA certificate chains, a signed checkpoint of the audit log and the\n"
        "document's log entries with their inclusion proofs, and META-INF/VERIFY.txt. Check it offline\n"
        "with `coffre verify FILE.asics` (or openssl, as VERIFY.txt says). FILE appears only once\n"
        "the whole bundle is in.\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE   where to write the bundle (required)\n" CMD_COMMON_HELP;

static int sink_plain(const void *data, size_t n, void *userdata) {
        struct sink *s = userdata;
        if (n > (uint64_t) 1 << 44) /* no bundle is 16 TiB */
                return -EFBIG;
        int r = write_all(s->fd, data, n);
        if (r < 0) {
                cli_error("cannot write %s: %s", s->what, strerror(-r));
                return r;
        }
        s->received += n;
        return 0;
}

int cmd_evidence(int argc, char **argv) {
        static const struct option options[] = {
                { "output", required_argument, NULL, 'o' },
                CMD_COMMON_OPTIONS,
                {},
        };
        struct cmd_opts o = {};
        const char *output = NULL;
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(evidence_help, stdout);
                        return cmd_finish_stdout();
                } else if (opt == 'o')
                        output = optarg;
                else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("evidence", argv);
        }
        if (argc - optind != 1)
                return cmd_usage_error("evidence", argc - optind == 0 ? "no ID given" : "only one ID at a time");
        if (!cmd_id_is_valid(argv[optind]))
                return cmd_usage_error("evidence", "not a document ID (letters, digits, '-' and '_')");
        if (!output || !output[0] || strcmp(output, "-") == 0)
                return cmd_usage_error("evidence", "-o FILE.asics is required");

        _cleanup_(client_freep) struct client *c = NULL;
        r = cmd_open_client(&o, &c);
        if (r < 0)
                return cmd_exit_code(r);
        _cleanup_buf_ struct buf path = {};
        buf_init(&path, 0);
        if (buf_append_str(&path, "/v1/documents/") < 0 || client_url_encode(&path, argv[optind]) < 0 ||
            buf_append_str(&path, "/evidence") < 0 || !buf_str(&path))
                return cmd_exit_code(-ENOMEM);
        struct out_file out;
        r = out_file_open(output, &out);
        if (r < 0) {
                cli_error("cannot write %s: %s", output, strerror(-r));
                return cmd_exit_code(r);
        }
        struct sink sk = { .fd = out.fd, .what = output };
        r = client_download(c, buf_str(&path), sink_plain, &sk, NULL, NULL);
        if (r >= 0) {
                r = out_file_commit(&out, output, 0644);
                if (r < 0)
                        cli_error("cannot write %s: %s", output, strerror(-r));
        }
        out_file_abort(&out);
        if (r < 0)
                return cmd_exit_code(r);
        printf("%s: evidence bundle of %s, %" PRIu64 " bytes\n", output, argv[optind], sk.received);
        return CLI_EXIT_OK;
}

/* ---- ls ----------------------------------------------------------------------------------- */

static const char ls_help[] =
        "Usage: coffre ls [--name NAME] [--class CLASS] [--after DATE] [--before DATE] [--limit N] [--json]\n"
        "\n"
        "Lists documents, oldest first as the server pages them, following pages to the end\n"
        "(or until N documents). Prints a table of ID, SIZE (bytes), CREATED, CLASS and NAME;\n"
        "control characters in names are shown escaped (\\n, \\x1b, ...).\n"
        "\n"
        "Options:\n"
        "      --name NAME     only documents named exactly NAME (byte for byte)\n"
        "  -c, --class CLASS   only documents of this retention class\n"
        "      --after DATE    only documents created after DATE (YYYY-MM-DD, taken as\n"
        "                      00:00:00 UTC, or RFC 3339 such as 2026-01-31T12:00:00Z)\n"
        "      --before DATE   only documents created before DATE\n"
        "  -n, --limit N       at most N documents in all\n"
        "      --json          one JSON object per document and line, as the server sent it\n" CMD_COMMON_HELP;

enum {
        OPT_AFTER = CMD_OPT_FIRST_PRIVATE,
        OPT_BEFORE,
        OPT_NAME,
};

/* Accepts YYYY-MM-DD (made midnight UTC) or an RFC 3339 date-time; the server checks the rest. */
static int parse_date(const char *s, char *out, size_t out_size) {
        size_t n = strlen(s);
        static const char shape[] = "dddd-dd-dd";

        if (n < 10 || n > 40)
                return -EINVAL;
        for (size_t i = 0; i < 10; i++)
                if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
                        return -EINVAL;
        if (n == 10) {
                snprintf(out, out_size, "%sT00:00:00Z", s);
                return 0;
        }
        if ((s[10] != 'T' && s[10] != 't') || n < 20)
                return -EINVAL;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || strchr("-:.+TtZz", *p)))
                        return -EINVAL;
        snprintf(out, out_size, "%s", s);
        return 0;
}

struct ls_query {
        const char *name;
        const char *class;
        char after[48], before[48];
        uint64_t limit; /* 0: all */
        bool json;
};

static int ls_page_path(const struct ls_query *q, uint64_t remaining, const char *cursor, struct buf *b) {
        char sep = '?';
        int r = buf_append_str(b, "/v1/documents");

#define ADD(key, value)                                                    \
        do {                                                               \
                if (r >= 0)                                                \
                        r = buf_printf(b, "%c%s=", sep, key);              \
                if (r >= 0)                                                \
                        r = client_url_encode(b, value);                   \
                sep = '&';                                                 \
        } while (0)

        if (q->name)
                ADD("name", q->name);
        if (q->class)
                ADD("class", q->class);
        if (q->after[0])
                ADD("created_after", q->after);
        if (q->before[0])
                ADD("created_before", q->before);
        if (q->limit) {
                char n[24];
                snprintf(n, sizeof n, "%" PRIu64, MIN(remaining, (uint64_t) LS_PAGE_MAX));
                ADD("limit", n);
        }
        if (cursor)
                ADD("cursor", cursor);
#undef ADD
        if (r >= 0 && !buf_str(b))
                r = -ENOMEM;
        return r;
}

/* Column widths, taken from the first page (later rows may stick out a little). */
struct ls_widths {
        int id, created, class;
};

static int ls_print_row(json_t *o, const struct ls_widths *w) {
        struct cmd_doc d;
        int r = cmd_doc_from_json(o, &d);
        if (r < 0)
                return r;
        _cleanup_free_ char *name = cli_escape(d.name), *class = cli_escape(d.class), *created = cli_escape(d.created_at);
        if (!name || !class || !created)
                return -ENOMEM;
        printf("%-*s  %12" PRIu64 "  %-*s  %-*s  %s\n", w->id, d.id, d.size, w->created, created, w->class, class,
               name);
        return 0;
}

static int ls_run(struct client *c, const struct ls_query *q) {
        _cleanup_free_ char *cursor = NULL;
        uint64_t printed = 0;
        struct ls_widths w = {};

        for (;;) {
                uint64_t remaining = q->limit ? q->limit - printed : UINT64_MAX;
                json_t *page = NULL;
                struct buf path;
                int r;

                buf_init(&path, 64 * 1024);
                r = ls_page_path(q, remaining, cursor, &path);
                if (r >= 0)
                        r = client_get_json(c, buf_str(&path), &page);
                buf_free(&path);
                if (r < 0)
                        return r;

                json_t *docs = json_object_get(page, "documents");
                json_t *next = json_object_get(page, "next_cursor");
                if (!json_is_array(docs) || !(next == NULL || json_is_null(next) || json_is_string(next))) {
                        json_decref(page);
                        cli_error("the document list from the server is not in the expected form");
                        return -EPROTO;
                }
                if (!q->json && w.id == 0) {
                        size_t i;
                        json_t *o;
                        w = (struct ls_widths){ .id = 2, .created = 7, .class = 5 };
                        json_array_foreach(docs, i, o) {
                                w.id = MAX(w.id, (int) MIN(strlen(cmd_json_str(o, "id", "")), (size_t) CMD_ID_MAX));
                                w.created = MAX(w.created, (int) MIN(strlen(cmd_json_str(o, "created_at", "")), (size_t) 40));
                                w.class = MAX(w.class, (int) MIN(strlen(cmd_json_str(o, "class", "")), (size_t) 40));
                        }
                        printf("%-*s  %12s  %-*s  %-*s  %s\n", w.id, "ID", "SIZE", w.created, "CREATED", w.class, "CLASS",
                               "NAME");
                }
                size_t i;
                json_t *o;
                json_array_foreach(docs, i, o) {
                        if (q->limit && printed >= q->limit)
                                break;
                        r = q->json ? (cmd_doc_from_json(o, &(struct cmd_doc){}) < 0 ? -EPROTO : cmd_print_json_line(o))
                                    : ls_print_row(o, &w);
                        if (r < 0) {
                                json_decref(page);
                                return r;
                        }
                        printed++;
                }
                bool more = json_is_string(next) && (!q->limit || printed < q->limit);
                if (more && cursor && strcmp(cursor, json_string_value(next)) == 0) {
                        json_decref(page);
                        cli_error("the server sent the same page cursor twice; stopping");
                        return -EPROTO;
                }
                free(cursor);
                cursor = more ? strdup(json_string_value(next)) : NULL;
                json_decref(page);
                if (!more)
                        return 0;
                if (!cursor)
                        return -ENOMEM;
        }
}

int cmd_ls(int argc, char **argv) {
        static const struct option options[] = {
                { "name", required_argument, NULL, OPT_NAME },
                { "class", required_argument, NULL, 'c' },
                { "after", required_argument, NULL, OPT_AFTER },
                { "before", required_argument, NULL, OPT_BEFORE },
                { "limit", required_argument, NULL, 'n' },
                { "json", no_argument, NULL, CMD_OPT_JSON },
                CMD_COMMON_OPTIONS,
                {},
        };
        struct cmd_opts o = {};
        struct ls_query q = {};
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "c:n:h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(ls_help, stdout);
                        return cmd_finish_stdout();
                } else if (opt == 'c')
                        q.class = optarg;
                else if (opt == OPT_NAME)
                        q.name = optarg;
                else if (opt == OPT_AFTER || opt == OPT_BEFORE) {
                        char *dst = opt == OPT_AFTER ? q.after : q.before;
                        if (parse_date(optarg, dst, sizeof q.after) < 0)
                                return cmd_usage_error("ls", "DATE must be YYYY-MM-DD or RFC 3339 (2026-01-31T12:00:00Z)");
                } else if (opt == 'n') {
                        char *end = NULL;
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        if (errno || !end || *end || optarg[0] < '1' || optarg[0] > '9' || v > UINT32_MAX)
                                return cmd_usage_error("ls", "--limit needs a whole number from 1");
                        q.limit = v;
                } else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("ls", argv);
        }
        if (optind < argc)
                return cmd_usage_error("ls", "unexpected argument");
        if (q.class && !q.class[0])
                return cmd_usage_error("ls", "--class must not be empty");
        if (q.name && !q.name[0])
                return cmd_usage_error("ls", "--name must not be empty");
        q.json = o.json;

        _cleanup_(client_freep) struct client *c = NULL;
        r = cmd_open_client(&o, &c);
        if (r >= 0)
                r = ls_run(c, &q);
        if (r < 0) {
                fflush(stdout);
                return cmd_exit_code(r);
        }
        return cmd_finish_stdout();
}

/* ---- rm ----------------------------------------------------------------------------------- */

static const char rm_help[] =
        "Usage: coffre rm ID...\n"
        "\n"
        "Deletes each document, in order, and stops at the first the server refuses (a document\n"
        "under retention or legal hold cannot be deleted; the message says until when).\n"
        "Prints nothing on success.\n"
        "\n"
        "Options:\n" CMD_COMMON_HELP;

int cmd_rm(int argc, char **argv) {
        static const struct option options[] = {
                CMD_COMMON_OPTIONS,
                {},
        };
        struct cmd_opts o = {};
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(rm_help, stdout);
                        return cmd_finish_stdout();
                } else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("rm", argv);
        }
        if (optind >= argc)
                return cmd_usage_error("rm", "no ID given");
        for (int i = optind; i < argc; i++)
                if (!cmd_id_is_valid(argv[i]))
                        return cmd_usage_error("rm", "not a document ID (letters, digits, '-' and '_')");

        _cleanup_(client_freep) struct client *c = NULL;
        r = cmd_open_client(&o, &c);
        if (r < 0)
                return cmd_exit_code(r);
        for (int i = optind; i < argc; i++) {
                char path[32 + CMD_ID_MAX];
                snprintf(path, sizeof path, "/v1/documents/%s", argv[i]);
                r = client_delete(c, path);
                if (r < 0)
                        return cmd_exit_code(r);
        }
        return CLI_EXIT_OK;
}
