/* cmd_common.c: option handling, exit codes and checks of server answers shared by the client
 * commands. */
#include "cmd_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"

/* Handles the options every command has; returns false for an option that is not one. */
bool cmd_common_option(int opt, struct cmd_opts *o) {
        switch (opt) {
        case CMD_OPT_URL:
                o->url = optarg;
                return true;
        case CMD_OPT_CACERT:
                o->cacert = optarg;
                return true;
        case CMD_OPT_JSON:
                o->json = true;
                return true;
        default:
                return false;
        }
}

int cmd_usage_error(const char *cmd, const char *what) {
        fprintf(stderr, "coffre %s: %s (see coffre %s --help)\n", cmd, what, cmd);
        return CLI_EXIT_USAGE;
}

int cmd_bad_option(const char *cmd, char **argv) {
        char what[256];
        const char *arg = optind > 0 ? argv[optind - 1] : "?";
        _cleanup_free_ char *e = cli_escape(arg);

        if (strncmp(arg, "--token", 7) == 0)
                snprintf(what, sizeof what,
                         "the API token is never taken from the command line (others could read it "
                         "there): set COFFRE_TOKEN or token_file= in the config file");
        else if (strncmp(arg, "--password", 10) == 0 && strncmp(arg, "--password-file", 15) != 0)
                snprintf(what, sizeof what,
                         "a password is never taken from the command line (others could read it there): "
                         "it is asked, or read with --password-file where the command has it");
        else if (optopt && strchr("cnoh", optopt) && arg[0] == '-' && arg[1] == optopt)
                snprintf(what, sizeof what, "option -%c needs a value", optopt);
        else
                snprintf(what, sizeof what, "unknown option or missing value: %s", e ? e : "?");
        return cmd_usage_error(cmd, what);
}

int cmd_exit_code(int r) {
        if (r == -ENOMEM) /* the one failure the layers below do not describe */
                cli_error("out of memory");
        return r == -EBADMSG ? CLI_EXIT_VERIFY : CLI_EXIT_FAILURE;
}

int cmd_open_client(const struct cmd_opts *o, struct client **ret) {
        _cleanup_(client_config_freep) struct client_config *cfg = NULL;
        int r = client_config_load(o->url, o->cacert, &cfg);
        if (r < 0)
                return r;
        return client_new(cfg, ret);
}

int cmd_finish_stdout(void) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                cli_error("cannot write to standard output: %s", strerror(errno));
                return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
}

/* Document ids go into URL paths: letters, digits, '-' and '_' only. */
bool cmd_id_is_valid(const char *id) {
        size_t n = strlen(id);
        if (n == 0 || n > CMD_ID_MAX)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '_'))
                        return false;
        return true;
}

bool cmd_sha256_hex_is_valid(const char *s) {
        if (strlen(s) != 64)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

const char *cmd_json_str(json_t *o, const char *key, const char *dflt) {
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? json_string_value(v) : dflt;
}

int cmd_doc_from_json(json_t *o, struct cmd_doc *ret) {
        json_t *size = json_object_get(o, "size");
        struct cmd_doc d = {
                .id = cmd_json_str(o, "id", NULL),
                .sha256 = cmd_json_str(o, "sha256", NULL),
                .name = cmd_json_str(o, "name", ""),
                .class = cmd_json_str(o, "class", ""),
                .created_at = cmd_json_str(o, "created_at", ""),
        };

        if (!json_is_object(o) || !d.id || !cmd_id_is_valid(d.id) || !d.sha256 || !cmd_sha256_hex_is_valid(d.sha256) ||
            !json_is_integer(size) || json_integer_value(size) < 0) {
                cli_error("the server described a document in a form coffre does not understand");
                return -EPROTO;
        }
        d.size = (uint64_t) json_integer_value(size);
        *ret = d;
        return 0;
}

/* One JSON object per line; everything outside ASCII escaped when stdout is a terminal. */
int cmd_print_json_line(json_t *o) {
        size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER | (isatty(STDOUT_FILENO) ? JSON_ENSURE_ASCII : 0);
        _cleanup_free_ char *s = json_dumps(o, flags);
        if (!s)
                return -ENOMEM;
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        return 0;
}
