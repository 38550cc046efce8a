/* cmd_lifecycle.c: `coffre lifecycle run`, the sweep of documents whose retention ended, on a
 * stopped vault: the same code as the server's sweeper thread. Each line printed is one
 * document: "erase" (erased, or to be erased with --dry-run) or "review" (its class says
 * on_expiry = review, or is no longer configured: an operator decides). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cmd_server.h"
#include "core/lifecycle.h"
#include "core/vault.h"
#include "log.h"
#include "timeutil.h"

static void print_doc(const struct store_document *d, bool erase, void *ud) {
        bool dry = *(bool *) ud;
        char until[RFC3339_MAX];
        rfc3339_format(d->retain_until, until);
        printf("%s %s %s %s %s\n", erase ? (dry ? "would-erase" : "erase") : "review", d->id, d->org_id, d->class_,
               until);
}

int cmd_lifecycle(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "dry-run", no_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *data = NULL;
        bool dry = false;
        int c;

        if (argc < 2 || strcmp(argv[1], "run") != 0) {
                fprintf(stderr, "coffre lifecycle: the only subcommand is run\nTry 'coffre lifecycle run --help'.\n");
                return 2;
        }
        argc--;
        argv++;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 'n':
                        dry = true;
                        break;
                case 'h':
                        printf("Usage: coffre lifecycle run --data DIR [--dry-run]\n\n"
                               "Finds the documents whose retention has ended and that no legal hold keeps, and\n"
                               "erases those whose class says on_expiry = erase (key destroyed, content deleted,\n"
                               "tombstone kept, audit entries document.delete and document.erase). The others are\n"
                               "listed for review. --dry-run lists both and changes nothing. One line per document:\n"
                               "erase|would-erase|review ID ORG CLASS RETAIN_UNTIL. Run it on a stopped vault;\n"
                               "coffre serve runs the same sweep every [lifecycle] interval seconds.\n");
                        return 0;
                default:
                        fprintf(stderr, "coffre lifecycle: unknown option\nTry 'coffre lifecycle run --help'.\n");
                        return 2;
                }
        if (!data || optind != argc) {
                fprintf(stderr, "coffre lifecycle run: --data DIR is required\nTry 'coffre lifecycle run --help'.\n");
                return 2;
        }
        _cleanup_(vault_closep) struct vault *v = NULL;
        if (vault_open(data, &v) < 0)
                return 1;
        struct vault_sweep_stats st;
        int r = vault_lifecycle_sweep(v, dry, vault_now_ms(v), print_doc, &dry, &st);
        fflush(stdout);
        fprintf(stderr, "coffre lifecycle run: %" PRIu64 " %s, %" PRIu64 " for review, %" PRIu64 " failed\n", st.erased,
                dry ? "to erase" : "erased", st.review, st.failed);
        if (r < 0) {
                fprintf(stderr, "coffre lifecycle run: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
