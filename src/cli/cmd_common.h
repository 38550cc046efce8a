/* cmd_common.h: what the client commands share: common options and help text, usage errors,
 * exit codes, and checking the document descriptions the server sends. */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "client.h"
#include "commands.h"
#include "config.h"
#include "macro.h"

#define CMD_ID_MAX 128

enum {
        CMD_OPT_URL = 0x100,
        CMD_OPT_CACERT,
        CMD_OPT_JSON,
        CMD_OPT_FIRST_PRIVATE = 0x200, /* commands number their own long options from here */
};

#define CMD_COMMON_HELP                                                                                   \
        "      --url URL       server (default: $COFFRE_URL, url= in the config file,\n"                 \
        "                      else " CLIENT_DEFAULT_URL ")\n"                                           \
        "      --cacert FILE   CA certificate to trust, e.g. DATA/tls/cert.pem of the vault\n"            \
        "                      (default: $COFFRE_CACERT, cacert= in the config file, else the system's)\n" \
        "  -h, --help          show this help\n"                                                        \
        "\n"                                                                                              \
        "The API token is read from $COFFRE_TOKEN, else from token_file= under [client] in\n"           \
        "$XDG_CONFIG_HOME/coffre/config (~/.config/coffre/config); that file must be readable by\n"     \
        "you alone. The token is never taken from the command line.\n"                                  \
        "Exit status: 0 ok, 1 failure, 2 usage error, 3 verification failed.\n"

#define CMD_COMMON_OPTIONS                                   \
        { "url", required_argument, NULL, CMD_OPT_URL },     \
        { "cacert", required_argument, NULL, CMD_OPT_CACERT }, \
        { "help", no_argument, NULL, 'h' }

struct cmd_opts {
        const char *url;
        const char *cacert;
        bool json;
};

/* Takes an option every command has (--url, --cacert, --json); false for any other. */
bool cmd_common_option(int opt, struct cmd_opts *o);
/* Prints "coffre CMD: WHAT (see coffre CMD --help)"; returns CLI_EXIT_USAGE. */
int cmd_usage_error(const char *cmd, const char *what);
/* The usage error for the option getopt_long just rejected. */
int cmd_bad_option(const char *cmd, char **argv);
/* Exit code for a failure: CLI_EXIT_VERIFY for -EBADMSG, else CLI_EXIT_FAILURE (and a message
 * for -ENOMEM, which nothing below prints). */
int cmd_exit_code(int r);
/* Loads the configuration and opens a client (printing why when it cannot). */
int cmd_open_client(const struct cmd_opts *o, struct client **ret) _warn_unused_;
/* Flushes stdout: CLI_EXIT_OK, or CLI_EXIT_FAILURE after a message when writing failed. */
int cmd_finish_stdout(void);

/* Document ids travel in URL paths: 1..CMD_ID_MAX letters, digits, '-' or '_'. */
bool cmd_id_is_valid(const char *id);
bool cmd_sha256_hex_is_valid(const char *s);

/* A document as the server describes it; the strings are borrowed from the JSON object. */
struct cmd_doc {
        const char *id, *name, *class, *sha256, *created_at;
        uint64_t size;
};

const char *cmd_json_str(json_t *o, const char *key, const char *dflt);
/* Checks id, size and sha256 (64 lower-case hex) are there and sane; -EPROTO (printed) if not. */
int cmd_doc_from_json(json_t *o, struct cmd_doc *ret) _warn_unused_;
/* One compact JSON object and a newline on stdout; non-ASCII escaped when stdout is a terminal. */
int cmd_print_json_line(json_t *o) _warn_unused_;

static inline void evp_md_ctx_freep(EVP_MD_CTX **p) {
        EVP_MD_CTX_free(*p);
}
