/* main.c: the coffre binary: dispatches to the server, admin and client commands. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "api/api.h"
#include "audit_commands.h"
#include "cmd_backup.h"
#include "cmd_server.h"
#include "commands.h"
#include "http/authz.h"
#include "log.h"

struct command {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *summary;
};

static const struct command commands[] = {
        { "init", cmd_init, "create a vault: coffre init --data DIR" },
        { "serve", cmd_serve, "serve a vault over HTTPS: coffre serve --data DIR [--listen 127.0.0.1:8443]" },
        { "key", cmd_key, "key management: coffre key rotate --data DIR [--org ID]" },
        { "tls", cmd_tls, "renew the self-signed TLS certificate: coffre tls renew --data DIR" },
        { "repair", cmd_repair, "settle a document recovery refused: coffre repair --data DIR --document ID" },
        { "lifecycle", cmd_lifecycle, "erase or list expired documents: coffre lifecycle run --data DIR [--dry-run]" },
        { "put", cmd_put, "upload documents: coffre put FILE... [--class C]" },
        { "get", cmd_get, "download a document: coffre get ID [-o FILE]" },
        { "evidence", cmd_evidence, "download a document's evidence bundle: coffre evidence ID -o FILE.asics" },
        { "ls", cmd_ls, "list documents: coffre ls [--class C]" },
        { "rm", cmd_rm, "delete documents: coffre rm ID..." },
        { "verify", cmd_verify, "check offline: coffre verify FILE.asics [--document FILE] [--ca CA.pem] | --tsr REPLY ..." },
        { "audit", cmd_audit, "check the audit log: coffre audit verify --data DIR | --url URL; audit proof ID" },
        { "backup", cmd_backup, "encrypted backups: coffre backup init|run|list|verify --data DIR ..." },
        { "restore", cmd_restore, "rebuild a data directory: coffre restore --from DEST --data NEWDIR ..." },
        { "witness", cmd_witness, "witness a vault's log: coffre witness --url URL --state FILE" },
        { "login", cmd_login, "log in (asks e-mail, password and code): coffre login [--email E]" },
        { "logout", cmd_logout, "end the session: coffre logout [--all]" },
        { "2fa", cmd_2fa, "two-factor authentication: coffre 2fa enroll | disable" },
        { "user", cmd_user, "users: coffre user add | ls | rm ID... | role ID ROLE" },
        { "token", cmd_token, "API tokens: coffre token create --name N --scope S | ls | revoke ID..." },
        { "org", cmd_org, "organisations: coffre org add NAME | ls | suspend ID" },
};

static void usage(FILE *f) {
        fprintf(f,
                "Usage: coffre COMMAND [OPTIONS]\n\ncoffre is a vault for the financial documents of businesses.\n\nCommands:\n");
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
        fprintf(f, "\nClient commands read COFFRE_URL, COFFRE_TOKEN and COFFRE_CACERT, or\n"
                   "$XDG_CONFIG_HOME/coffre/config. 'coffre COMMAND --help' tells more.\n"
                   "Exit codes: 0 ok, 1 failure, 2 usage error, 3 verification failed.\n");
}

/* coffre --print-authz [--json]: the permission table, as docs/security.md shows it or as JSON
 * (every route with its rule) for the tests. Not in the usage text: a tool of the docs. */
static int print_authz(int argc, char **argv) {
        _cleanup_buf_ struct buf b = {};
        bool json = argc == 2 && strcmp(argv[1], "--json") == 0;

        if (argc > 2 || (argc == 2 && !json)) {
                fprintf(stderr, "Usage: coffre --print-authz [--json]\n");
                return 2;
        }
        buf_init(&b, 1 << 20);
        int r = json ? authz_render_json(api_routes, api_routes_count, &b)
                     : authz_render_markdown(api_routes, api_routes_count, &b);
        if (r < 0 || fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout) != 0) {
                fprintf(stderr, "coffre: cannot print the permission table\n");
                return 1;
        }
        return 0;
}

int main(int argc, char **argv) {
        if (sodium_init() < 0) {
                fprintf(stderr, "coffre: libsodium failed to initialise\n");
                return 1;
        }
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(argv[1], "--version") == 0) {
                printf("coffre %s\n", COFFRE_VERSION);
                return 0;
        }
        if (strcmp(argv[1], "--print-authz") == 0)
                return print_authz(argc - 1, argv + 1);
        if (strcmp(argv[1], "--print-authz") == 0)
                return print_authz(argc - 1, argv + 1);
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (strcmp(argv[1], commands[i].name) == 0)
                        return commands[i].fn(argc - 1, argv + 1);
        fprintf(stderr, "coffre: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
}
