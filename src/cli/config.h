/* config.h: where the client finds the server, its CA certificate and the API token. */
#pragma once

#include <stdbool.h>

#include "macro.h"

#define CLIENT_DEFAULT_URL "https://127.0.0.1:8443"
#define CLIENT_TOKEN_MAX 4096

struct client_config {
        char *url;         /* https://..., without a trailing slash */
        char *cacert;      /* PEM file to trust, or NULL for the system store */
        char *token_file;  /* from the config file, or NULL */
        char *config_path; /* the config file looked at (it may not exist) */
        /* the session of coffre login (secure memory), when it is the credential to use */
        char *session_token;
        char *session_url; /* the server it belongs to, when a session file exists */
        bool use_session;  /* the session is the credential (no other configured, or asked for) */
        bool need_session; /* CLIENT_CONFIG_SESSION: nothing else will do */
};

/* Options of client_config_load_flags() */
enum {
        /* use the session of coffre login even when COFFRE_TOKEN or token_file= is set (logout,
         * 2fa): -ENOKEY (printed) when there is none or it belongs to another server */
        CLIENT_CONFIG_SESSION = 1 << 0,
        /* a session file that cannot be used is silently passed over (coffre login replaces it) */
        CLIENT_CONFIG_ANY_SESSION = 1 << 1,
};

/* Resolves each setting: the command-line value (NULL when not given), else COFFRE_URL /
 * COFFRE_CACERT, else [client] url= / cacert= in $XDG_CONFIG_HOME/coffre/config (default
 * ~/.config/coffre/config), else the default URL and the system trust store. Relative paths in
 * the config file are relative to its directory; "~/" is the home directory. Only https URLs
 * are accepted. Prints the reason on failure: -EINVAL for a bad setting or config file. */
int client_config_load(const char *url_opt, const char *cacert_opt, struct client_config **ret) _warn_unused_;
/* The same, and when neither COFFRE_TOKEN nor token_file= gives a token (or with
 * CLIENT_CONFIG_SESSION), the session that coffre login saved: its token is used only with the
 * server it came from (its URL is the default URL then, and its cacert the default cacert). */
int client_config_load_flags(const char *url_opt, const char *cacert_opt, unsigned flags, struct client_config **ret)
        _warn_unused_;
void client_config_free(struct client_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct client_config *, client_config_free);

/* Reads the API token: COFFRE_TOKEN, else the token file, which must be a regular file owned by
 * the user and not accessible by group or others (-EPERM otherwise, as ssh does for keys).
 * The token must be 1..CLIENT_TOKEN_MAX visible ASCII characters (a trailing newline is dropped).
 * *ret is in libsodium secure memory: release it with client_token_free(), which wipes it.
 * Prints the reason on failure; -ENOKEY when no token is configured. */
int client_config_token(const struct client_config *c, char **ret) _warn_unused_;
void client_token_free(char *token);

/* The session file of coffre login: $XDG_CONFIG_HOME/coffre/session (~/.config/coffre/session),
 * lines url=, cacert= (optional) and token=, mode 0600 in a 0700 directory. malloc'd path, or
 * NULL when neither XDG_CONFIG_HOME nor HOME is an absolute path. */
char *client_session_path(void);
/* Saves the session (atomically, 0600; the directory is made 0700 if missing). Prints why on failure. */
int client_session_save(const char *url, const char *cacert, const char *token) _warn_unused_;
/* Removes the session file: 0, or -ENOENT when there was none. */
int client_session_remove(void) _warn_unused_;
