/* cmd_repair.c: `coffre repair`, the operator's deliberate answer when start-up recovery refuses
 * a document it cannot rebuild: the row is rebuilt if the evidence now allows it, otherwise the
 * document's remains are quarantined in place (kept, never deleted) and that decision, with the
 * operator's reason, is recorded in the audit log. Run on a stopped vault. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd_server.h"
#include "core/vault.h"
#include "log.h"

int cmd_repair(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "document", required_argument, NULL, 'D' },
                { "reason", required_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *data = NULL, *doc = NULL, *reason = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 'D':
                        doc = optarg;
                        break;
                case 'r':
                        reason = optarg;
                        break;
                case 'h':
                        printf("Usage: coffre repair --data DIR --document ID [--reason TEXT]\n\n"
                               "For a document that the audit log says exists but that has no metadata row and\n"
                               "that start-up recovery could not rebuild (coffre serve names it and refuses to\n"
                               "start). Rebuilds the row when its key and object now allow it; otherwise records\n"
                               "in the audit log (action document.quarantine, with the reason) that what is left of\n"
                               "it is kept aside: nothing is deleted, the document is no longer served, and the\n"
                               "server starts again. Run it on a stopped vault.\n");
                        return 0;
                default:
                        fprintf(stderr, "coffre repair: unknown option\nTry 'coffre repair --help'.\n");
                        return 2;
                }
        if (!data || !doc || optind != argc) {
                fprintf(stderr,
                        "coffre repair: --data DIR and --document ID are required\nTry 'coffre repair --help'.\n");
                return 2;
        }
        if (!vault_id_valid(doc)) {
                fprintf(stderr, "coffre repair: %s is not a document id (32 lower-case hex characters)\n", doc);
                return 2;
        }
        _cleanup_(vault_closep) struct vault *v = NULL;
        if (vault_open(data, &v) < 0)
                return 1;
        int r = vault_repair_document(v, doc, reason);
        if (r == -ENOENT) {
                fprintf(stderr,
                        "coffre repair: document %s is not a logged document without a metadata row; "
                        "nothing done\n",
                        doc);
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "coffre repair: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
