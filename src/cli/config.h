/* config.h: where the client finds the server, its CA certificate and the API token. */
#pragma once

#include "macro.h"

#define CLIENT_DEFAULT_URL "https://127.0.0.1:8443"
#define CLIENT_TOKEN_MAX 4096

struct client_config {
        char *url;         /* https://..., without a trailing slash */
        char *cacert;      /* PEM file to trust, or NULL for the system store */
        char *token_file;  /* from the config file, or NULL */
        char *config_path; /* the config file looked at (it may not exist) */
};

/* Resolves each setting: the command-line value (NULL when not given), else COFFRE_URL /
 * COFFRE_CACERT, else [client] url= / cacert= in $XDG_CONFIG_HOME/coffre/config (default
 * ~/.config/coffre/config), else the default URL and the system trust store. Relative paths in
 * the config file are relative to its directory; "~/" is the home directory. Only https URLs
 * are accepted. Prints the reason on failure: -EINVAL for a bad setting or config file. */
int client_config_load(const char *url_opt, const char *cacert_opt, struct client_config **ret) _warn_unused_;
void client_config_free(struct client_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct client_config *, client_config_free);

/* Reads the API token: COFFRE_TOKEN, else the token file, which must be a regular file owned by
 * the user and not accessible by group or others (-EPERM otherwise, as ssh does for keys).
 * The token must be 1..CLIENT_TOKEN_MAX visible ASCII characters (a trailing newline is dropped).
 * *ret is in libsodium secure memory: release it with client_token_free(), which wipes it.
 * Prints the reason on failure; -ENOKEY when no token is configured. */
int client_config_token(const struct client_config *c, char **ret) _warn_unused_;
void client_token_free(char *token);
