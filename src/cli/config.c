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
        int error;  /* negative errno from the handler */
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

static char *config_file_path(void) {
        const char *xdg = getenv("XDG_CONFIG_HOME");
        struct buf b;

        buf_init(&b, 8192);
        if (xdg && xdg[0] == '/') { /* the XDG spec says to ignore relative values */
                if (buf_printf(&b, "%s/coffre/config", xdg) < 0)
                        goto fail;
        } else {
                const char *home = getenv("HOME");
                if (!home || home[0] != '/')
                        return NULL;
                if (buf_printf(&b, "%s/.config/coffre/config", home) < 0)
                        goto fail;
        }
        return buf_steal(&b);
fail:
        buf_free(&b);
        return NULL;
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
                        cli_error("%s:%d: unknown key \"%s\" in [client] (known: url, cacert, token_file)", path,
                                  line, key);
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

int client_config_load(const char *url_opt, const char *cacert_opt, struct client_config **ret) {
        _cleanup_(client_config_freep) struct client_config *c = calloc(1, sizeof *c);
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

        r = -ENOMEM;
        if (url_opt || (v = nonempty_env("COFFRE_URL")))
                c->url = strdup(url_opt ? url_opt : v);
        else
                c->url = strdup(s.url ? s.url : CLIENT_DEFAULT_URL);
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
        } else
                c->cacert = TAKE_PTR(s.cacert);
        c->token_file = TAKE_PTR(s.token_file);
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

int client_config_token(const struct client_config *c, char **ret) {
        const char *env = nonempty_env("COFFRE_TOKEN");

        if (sodium_init() < 0)
                return -EIO;
        if (env)
                return token_from(env, strlen(env), "COFFRE_TOKEN", ret);
        if (c->token_file)
                return token_from_file(c->token_file, ret);
        cli_error("no API token: set COFFRE_TOKEN, or token_file= under [client] in %s",
                  c->config_path ? c->config_path : "~/.config/coffre/config");
        return -ENOKEY;
}

void client_token_free(char *token) {
        if (token)
                sodium_free(token); /* wipes before unmapping */
}
