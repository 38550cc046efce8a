/* config.c: resolves the client's settings from options, environment and the INI config file,
 * and reads the API token without ever taking it from the command line. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "fileio.h"
#include "progress.h"

struct ini_state {
        struct client_config *cfg;
        char *dir; /* directory of the config file, for relative paths */
        char *url, *cacert, *token_file;
        int error; /* negative errno from the handler */
        char *bad_key;
};

static void ini_state_done(struct ini_state *s) {
        free(s->dir);
        free(s->url);
        free(s->cacert);
        free(s->token_file);
        free(s->bad_key);
}

/* "~/x" -> $HOME/x; relative -> dir/x; absolute stays. */
static char *resolve_path(const char *dir, const char *value) {
        if (value[0] == '~' && value[1] == '/') {
                const char *home = getenv("HOME");
                if (!home || home[0] != '/')
                        return NULL;
                return path_join(home, value + 2);
        }
        if (value[0] == '/' || !dir)
                return strdup(value);
        return path_join(dir, value);
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value) {
        struct ini_state *s = user;
        char **slot;

        if (strcmp(section, "client") != 0)
                return 1; /* other sections belong to other tools */
        if (strcmp(name, "url") == 0)
                slot = &s->url;
        else if (strcmp(name, "cacert") == 0)
                slot = &s->cacert;
        else if (strcmp(name, "token_file") == 0)
                slot = &s->token_file;
        else {
                free(s->bad_key);
                s->bad_key = strdup(name);
                s->error = -EINVAL;
                return 0;
        }
        char *v = slot == &s->url ? strdup(value) : resolve_path(s->dir, value);
        if (!v) {
                s->error = -ENOMEM;
                return 0;
        }
        free(*slot);
        *slot = v;
        return 1;
}

/* $XDG_CONFIG_HOME/coffre/NAME, else ~/.config/coffre/NAME */
static char *config_dir_file(const char *name) {
        const char *xdg = getenv("XDG_CONFIG_HOME");
        struct buf b;

        buf_init(&b, 8192);
        if (xdg && xdg[0] == '/') { /* the XDG spec says to ignore relative values */
                if (buf_printf(&b, "%s/coffre/%s", xdg, name) < 0)
                        goto fail;
        } else {
                const char *home = getenv("HOME");
                if (!home || home[0] != '/')
                        return NULL;
                if (buf_printf(&b, "%s/.config/coffre/%s", home, name) < 0)
                        goto fail;
        }
        return buf_steal(&b);
fail:
        buf_free(&b);
        return NULL;
}

static char *config_file_path(void) {
        return config_dir_file("config");
}

char *client_session_path(void) {
        return config_dir_file("session");
}

static int read_config_file(const char *path, struct ini_state *s) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT)
                        return 0;
                int r = negative_errno();
                cli_error("cannot read config file %s: %s", path, strerror(-r));
                return -EINVAL;
        }
        s->dir = strdup(path);
        if (!s->dir)
                return -ENOMEM;
        char *slash = strrchr(s->dir, '/');
        if (slash)
                *slash = 0;
        int line = ini_parse_file(f, on_ini_entry, s);
        if (s->error == -ENOMEM || line == -2)
                return -ENOMEM;
        if (line != 0) {
                _cleanup_free_ char *key = s->bad_key ? cli_escape(s->bad_key) : NULL;
                if (key)
                        cli_error("%s:%d: unknown key \"%s\" in [client] (known: url, cacert, token_file)", path, line,
                                  key);
                else
                        cli_error("%s:%d: syntax error", path, line);
                return -EINVAL;
        }
        return 0;
}

static int check_url(const char *url) {
        size_t n = strlen(url);

        if (strncasecmp(url, "https://", 8) != 0 || n <= 8) {
                cli_error("the server URL must start with https:// (TLS is always on)");
                return -EINVAL;
        }
        if (n > 2048) {
                cli_error("the server URL is too long");
                return -EINVAL;
        }
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f || *p == '?' || *p == '#') {
                        cli_error("the server URL must be a plain https://host[:port][/path] URL");
                        return -EINVAL;
                }
        return 0;
}

static const char *nonempty_env(const char *name) {
        const char *v = getenv(name);
        return v && v[0] ? v : NULL;
}

/* ---- the session file of coffre login ---- */

static int token_from(const char *src, size_t n, const char *origin, char **ret);

#define SESSION_FILE_MAX ((size_t) 16 * 1024)

struct session {
        char *url, *cacert;
        char *token; /* secure memory */
};

static void session_donep(struct session *s) {
        free(s->url);
        free(s->cacert);
        client_token_free(s->token);
        *s = (struct session){};
}

/* Reads and checks the session file into s: -ENOENT when there is none, -EPERM/-EINVAL (printed)
 * when it is not the user's alone or not what coffre login writes. */
static int session_load(struct session *s, bool quiet) {
        _cleanup_free_ char *path = client_session_path();
        struct buf b = {};
        struct stat st;
        int r;

        if (!path)
                return -ENOENT;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0) {
                r = negative_errno();
                if (r == -ENOENT)
                        return r;
                if (!quiet)
                        cli_error("cannot open the session file %s: %s", path, strerror(-r));
                return r == -ELOOP ? -EPERM : r;
        }
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0077)) {
                if (!quiet)
                        cli_error(
                                "the session file %s must be a regular file of yours with mode 0600; refusing to use it",
                                path);
                return -EPERM;
        }
        if ((uint64_t) st.st_size > SESSION_FILE_MAX) {
                if (!quiet)
                        cli_error("the session file %s is too large", path);
                return -EINVAL;
        }
        buf_init(&b, SESSION_FILE_MAX + 1);
        r = buf_reserve(&b, (size_t) st.st_size + 1); /* one allocation: no copy of the token left behind */
        if (r < 0)
                return r;
        ssize_t n = read_full(fd, b.data, (size_t) st.st_size + 1);
        if (n < 0 || (size_t) n > (size_t) st.st_size) {
                buf_free_secure(&b);
                if (!quiet)
                        cli_error("cannot read the session file %s", path);
                return n < 0 ? (int) n : -EINVAL;
        }
        b.len = (size_t) n;
        char *text = buf_str(&b);
        r = 0;
        for (char *line = text, *next; r >= 0 && line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                char **slot = NULL;
                if (strncmp(line, "url=", 4) == 0)
                        slot = &s->url;
                else if (strncmp(line, "cacert=", 7) == 0)
                        slot = &s->cacert;
                if (slot) {
                        free(*slot);
                        *slot = strdup(strchr(line, '=') + 1);
                        r = *slot ? 0 : -ENOMEM;
                } else if (strncmp(line, "token=", 6) == 0) {
                        client_token_free(s->token);
                        s->token = NULL;
                        r = token_from(line + 6, strlen(line + 6), path, &s->token);
                } else if (line[0] && line[0] != '#')
                        r = -EINVAL;
        }
        buf_free_secure(&b);
        if (r >= 0 && (!s->url || !s->token || check_url(s->url) < 0))
                r = -EINVAL;
        if (r < 0) {
                if (r == -EINVAL)
                        if (!quiet)
                                cli_error("the session file %s is not one coffre login wrote; run coffre login again",
                                          path);
                session_donep(s);
        }
        return r;
}

int client_session_save(const char *url, const char *cacert, const char *token) {
        _cleanup_free_ char *path = client_session_path();
        struct buf b;
        int r;

        if (!path) {
                cli_error("cannot tell where to keep the session: set HOME or XDG_CONFIG_HOME");
                return -EINVAL;
        }
        if (strchr(url, '\n') || (cacert && strchr(cacert, '\n'))) {
                cli_error("the server URL or CA certificate path holds a line break");
                return -EINVAL;
        }
        char *slash = strrchr(path, '/');
        *slash = 0;
        r = mkdir_p(path, 0700);
        *slash = '/';
        if (r < 0) {
                cli_error("cannot make the directory of %s: %s", path, strerror(-r));
                return r;
        }
        buf_init(&b, SESSION_FILE_MAX);
        r = buf_reserve(&b, strlen(url) + (cacert ? strlen(cacert) : 0) + strlen(token) + 128);
        if (r >= 0)
                r = buf_printf(&b, "# coffre login: the session of this user (keep it 0600)\nurl=%s\n", url);
        if (r >= 0 && cacert)
                r = buf_printf(&b, "cacert=%s\n", cacert);
        if (r >= 0)
                r = buf_printf(&b, "token=%s\n", token);
        if (r >= 0)
                r = write_file_atomic(path, b.data, b.len, 0600, 0);
        buf_free_secure(&b);
        if (r < 0)
                cli_error("cannot write the session file %s: %s", path, strerror(-r));
        return r;
}

int client_session_remove(void) {
        _cleanup_free_ char *path = client_session_path();
        if (!path)
                return -ENOENT;
        if (unlink(path) < 0)
                return negative_errno();
        return 0;
}

int client_config_load(const char *url_opt, const char *cacert_opt, struct client_config **ret) {
        return client_config_load_flags(url_opt, cacert_opt, 0, ret);
}

int client_config_load_flags(const char *url_opt, const char *cacert_opt, unsigned flags, struct client_config **ret) {
        _cleanup_(client_config_freep) struct client_config *c = calloc(1, sizeof *c);
        _cleanup_(session_donep) struct session sess = {};
        struct ini_state s = {};
        const char *v = NULL;
        int r;

        if (!c)
                return -ENOMEM;
        c->config_path = config_file_path();
        if (c->config_path) {
                r = read_config_file(c->config_path, &s);
                if (r < 0)
                        goto out;
        }
        bool want_session = (flags & CLIENT_CONFIG_SESSION) || (!nonempty_env("COFFRE_TOKEN") && !s.token_file);
        if (want_session) {
                r = session_load(&sess, flags & CLIENT_CONFIG_ANY_SESSION);
                if (r < 0 && r != -ENOENT && !(flags & CLIENT_CONFIG_ANY_SESSION))
                        goto out;
        }

        r = -ENOMEM;
        if (url_opt || (v = nonempty_env("COFFRE_URL")))
                c->url = strdup(url_opt ? url_opt : v);
        else
                c->url = strdup(sess.url ? sess.url : s.url ? s.url : CLIENT_DEFAULT_URL);
        if (!c->url)
                goto out;
        size_t n = strlen(c->url);
        while (n > 0 && c->url[n - 1] == '/')
                c->url[--n] = 0;
        r = check_url(c->url);
        if (r < 0)
                goto out;

        r = -ENOMEM;
        if (cacert_opt || (v = nonempty_env("COFFRE_CACERT"))) {
                if (!(c->cacert = strdup(cacert_opt ? cacert_opt : v)))
                        goto out;
        } else if (sess.url && sess.cacert && strcmp(sess.url, c->url) == 0)
                c->cacert = TAKE_PTR(sess.cacert);
        else
                c->cacert = TAKE_PTR(s.cacert);
        c->token_file = TAKE_PTR(s.token_file);
        if (sess.url) {
                c->session_url = TAKE_PTR(sess.url);
                /* a session token goes to the server that issued it, never elsewhere */
                if (strcmp(c->session_url, c->url) == 0)
                        c->session_token = TAKE_PTR(sess.token);
        }
        c->use_session = want_session;
        c->need_session = flags & CLIENT_CONFIG_SESSION;
        *ret = TAKE_PTR(c);
        r = 0;
out:
        ini_state_done(&s);
        return r;
}

void client_config_free(struct client_config *c) {
        if (!c)
                return;
        free(c->url);
        free(c->cacert);
        free(c->token_file);
        free(c->config_path);
        free(c->session_url);
        client_token_free(c->session_token);
        free(c);
}

/* Copies src[0..n) as a token into secure memory, dropping trailing CR/LF/spaces. */
static int token_from(const char *src, size_t n, const char *origin, char **ret) {
        while (n > 0 && (src[n - 1] == '\n' || src[n - 1] == '\r' || src[n - 1] == ' '))
                n--;
        if (n == 0 || n > CLIENT_TOKEN_MAX) {
                cli_error("the API token from %s is %s", origin, n == 0 ? "empty" : "too long");
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) src[i] <= 0x20 || (unsigned char) src[i] >= 0x7f) {
                        /* also keeps CR/LF out of the Authorization header */
                        cli_error("the API token from %s contains characters a token cannot have", origin);
                        return -EINVAL;
                }
        char *t = sodium_malloc(n + 1);
        if (!t)
                return -ENOMEM;
        memcpy(t, src, n);
        t[n] = 0;
        *ret = t;
        return 0;
}

static int token_from_file(const char *path, char **ret) {
        char data[CLIENT_TOKEN_MAX + 2];
        struct stat st;
        int r;

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                cli_error("cannot open token file %s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode)) {
                cli_error("token file %s is not a regular file", path);
                return -EPERM;
        }
        if (st.st_uid != geteuid()) {
                cli_error("token file %s is not owned by you; refusing to use it", path);
                return -EPERM;
        }
        if (st.st_mode & 0077) {
                cli_error("token file %s is accessible by group or others (mode %04o); run: chmod 600 %s", path,
                          (unsigned) (st.st_mode & 07777), path);
                return -EPERM;
        }
        ssize_t n = read_full(fd, data, sizeof data);
        if (n < 0) {
                cli_error("cannot read token file %s: %s", path, strerror((int) -n));
                return (int) n;
        }
        if ((size_t) n == sizeof data) {
                sodium_memzero(data, sizeof data);
                cli_error("token file %s is too large to hold a token", path);
                return -EINVAL;
        }
        r = token_from(data, (size_t) n, path, ret);
        sodium_memzero(data, sizeof data);
        return r;
}

static int session_token(const struct client_config *c, char **ret) {
        if (!c->session_url) {
                cli_error("not logged in: run coffre login");
                return -ENOKEY;
        }
        if (!c->session_token) {
                _cleanup_free_ char *have = cli_escape(c->session_url), *want = cli_escape(c->url);
                cli_error("the saved session is for %s, not %s: run coffre login --url %s", have ? have : "?",
                          want ? want : "?", want ? want : "URL");
                return -ENOKEY;
        }
        return token_from(c->session_token, strlen(c->session_token), "the session file", ret);
}

int client_config_token(const struct client_config *c, char **ret) {
        const char *env = nonempty_env("COFFRE_TOKEN");

        if (sodium_init() < 0)
                return -EIO;
        if (c->need_session || (c->use_session && c->session_url))
                return session_token(c, ret);
        if (env)
                return token_from(env, strlen(env), "COFFRE_TOKEN", ret);
        if (c->token_file)
                return token_from_file(c->token_file, ret);
        cli_error("no API token: run coffre login, set COFFRE_TOKEN, or token_file= under [client] in %s",
                  c->config_path ? c->config_path : "~/.config/coffre/config");
        return -ENOKEY;
}

void client_token_free(char *token) {
        if (token)
                sodium_free(token); /* wipes before unmapping */
}
