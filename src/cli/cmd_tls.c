/* cmd_tls.c: coffre tls renew, which re-issues the vault's self-signed TLS certificate. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_server.h"
#include "commands.h"
#include "core/config.h"
#include "core/selfsigned.h"
#include "fileio.h"
#include "log.h"

static int usage_error(const char *msg) {
        fprintf(stderr, "coffre tls: %s\nTry 'coffre tls --help'.\n", msg);
        return CLI_EXIT_USAGE;
}

static void help(void) {
        printf("Usage: coffre tls renew --data DIR [--rotate-key] [--days N] [--force]\n\n"
               "Re-issues the self-signed TLS certificate that 'coffre init' made (DIR/tls/ or the\n"
               "paths in coffre.conf), valid for N days (default and most %d).\n"
               "  --rotate-key  make a new key pair too (default: keep the key)\n"
               "  --force       replace a certificate coffre did not make (one an operator installed)\n"
               "The server uses the new certificate from its next start.\n",
               SELFSIGNED_MAX_DAYS);
}

static char *data_path(const char *data, const char *p) {
        return p[0] == '/' ? strdup(p) : path_join(data, p);
}

int cmd_tls(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "rotate-key", no_argument, NULL, 'r' },
                { "days", required_argument, NULL, 'n' },
                { "force", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct selfsigned_renew_options o = { 0 };
        const char *data = NULL;
        int c;

        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                help();
                return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        }
        if (strcmp(argv[1], "renew") != 0)
                return usage_error("unknown subcommand (want: renew)");
        argc--;
        argv++;
        while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 'r':
                        o.rotate_key = true;
                        break;
                case 'n': {
                        char *end = NULL;
                        errno = 0;
                        long d = strtol(optarg, &end, 10);
                        if (errno || end == optarg || *end || d < 1 || d > SELFSIGNED_MAX_DAYS)
                                return usage_error("--days wants a number of days from 1 to 397");
                        o.days = (int) d;
                        break;
                }
                case 'f':
                        o.force = true;
                        break;
                case 'h':
                        help();
                        return CLI_EXIT_OK;
                default:
                        return usage_error("unknown option");
                }
        if (!data || optind != argc)
                return usage_error("--data DIR is required");

        struct vault_config cfg;
        _cleanup_free_ char *conf = path_join(data, "coffre.conf");
        if (!conf)
                return CLI_EXIT_FAILURE;
        int r = vault_config_load(conf, &cfg);
        if (r == -ENOENT)
                log_error("%s is not a vault (no coffre.conf)", data);
        if (r < 0)
                return CLI_EXIT_FAILURE;
        _cleanup_free_ char *cert = data_path(data, cfg.tls_cert);
        _cleanup_free_ char *key = data_path(data, cfg.tls_key);
        if (!cert || !key)
                return CLI_EXIT_FAILURE;
        r = selfsigned_tls_renew(cert, key, &o);
        if (r < 0)
                return CLI_EXIT_FAILURE; /* already logged */
        printf("Renewed %s for %d days%s; restart 'coffre serve' to use it.\n", cert,
               o.days ? o.days : SELFSIGNED_MAX_DAYS, o.rotate_key ? " with a new key" : "");
        return CLI_EXIT_OK;
}
