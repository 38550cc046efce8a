/* cmd_verify.c: `coffre verify`: offline checks that need no server. `FILE.asics` checks an
 * evidence bundle (seal/asic_verify.c); `--tsr REPLY --data FILE
 * --ca CA.pem` checks any RFC 3161 reply (or `--token TOKEN`, a bare time-stamp token): each check
 * is printed, the exit status is 0, or 3 with the first failure. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>

#include "commands.h"
#include "fileio.h"
#include "hex.h"
#include "seal/asic_verify.h"
#include "seal/tsr_check.h"

enum {
        OPT_TSR = 0x300,
        OPT_TOKEN,
        OPT_DATA,
        OPT_DIGEST,
        OPT_CA,
        OPT_UNTRUSTED,
        OPT_AT_NOW,
        OPT_DOCUMENT,
        OPT_LOG_KEY,
};

static int usage(FILE *f, int rc) {
        fprintf(f, "Usage: coffre verify FILE.asics [--document FILE] [--ca CA.pem] [--log-key LOG.vkey]\n"
                   "       coffre verify --tsr REPLY --data FILE --ca CA.pem [--untrusted CERTS.pem] [--at-now]\n"
                   "       coffre verify --token TOKEN --data FILE --ca CA.pem [...]\n"
                   "       (--digest HEX instead of --data FILE: the hash itself)\n\n"
                   "FILE.asics (an evidence bundle from coffre evidence): checks offline the container\n"
                   "(ZIP, mimetype first and stored, every CRC, exactly the expected files), the document\n"
                   "(and that FILE given with --document is the same), the CAdES seal (CMS signature over the\n"
                   "document, signing-certificate-v2 binding, chain up to CA.pem or else the bundled CA,\n"
                   "valid at the time-stamp), the time-stamp token over the signature value, the signed\n"
                   "checkpoint (under LOG.vkey or else the bundled key) and every audit entry's inclusion\n"
                   "proof. Nothing is written.\n\n"
                   "--tsr/--token: checks an RFC 3161 time-stamp reply (DER, from any TSA) or a bare time-stamp token\n"
                   "offline: strict DER, status granted, the token's signature and the TSA certificate\n"
                   "chain up to a certificate of CA.pem (each one is trusted as an anchor), the ESS\n"
                   "signing-certificate binding and the critical timeStamping key usage, and that the\n"
                   "message imprint is the hash of FILE. The chain is checked at the token's genTime\n"
                   "(the TSA certificate was valid when it signed), or now with --at-now.\n"
                   "Prints each check; exit 0 when all pass, 3 at the first that fails (said on the\n"
                   "last line), 1 when a file cannot be read, 2 on a usage error.\n");
        return rc;
}

int cmd_verify(int argc, char **argv) {
        static const struct option opts[] = {
                { "tsr", required_argument, NULL, OPT_TSR },
                { "token", required_argument, NULL, OPT_TOKEN },
                { "data", required_argument, NULL, OPT_DATA },
                { "digest", required_argument, NULL, OPT_DIGEST },
                { "ca", required_argument, NULL, OPT_CA },
                { "untrusted", required_argument, NULL, OPT_UNTRUSTED },
                { "at-now", no_argument, NULL, OPT_AT_NOW },
                { "document", required_argument, NULL, OPT_DOCUMENT },
                { "log-key", required_argument, NULL, OPT_LOG_KEY },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *tsr = NULL, *token = NULL, *data = NULL, *digest = NULL, *document = NULL, *log_key = NULL;
        uint8_t digest_bin[64];
        struct tsr_check_options o = {};
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case OPT_TSR:
                        tsr = optarg;
                        break;
                case OPT_TOKEN:
                        token = optarg;
                        break;
                case OPT_DATA:
                        data = optarg;
                        break;
                case OPT_DIGEST:
                        digest = optarg;
                        break;
                case OPT_CA:
                        o.ca_file = optarg;
                        break;
                case OPT_UNTRUSTED:
                        o.untrusted_file = optarg;
                        break;
                case OPT_AT_NOW:
                        o.at_now = true;
                        break;
                case OPT_DOCUMENT:
                        document = optarg;
                        break;
                case OPT_LOG_KEY:
                        log_key = optarg;
                        break;
                case 'h':
                        return usage(stdout, CLI_EXIT_OK);
                default:
                        return usage(stderr, CLI_EXIT_USAGE);
                }
        if (optind == argc - 1 && !tsr && !token && !data && !digest && !o.untrusted_file && !o.at_now) {
                struct asic_verify_options ao = { .document = document, .ca_file = o.ca_file, .log_key = log_key };
                char why[256] = "";
                int r = asic_verify_file(argv[optind], &ao, stdout, why, sizeof why);
                fflush(stdout);
                if (r == -EBADMSG) {
                        fprintf(stderr, "coffre verify: verification failed: %s\n", why);
                        return CLI_EXIT_VERIFY;
                }
                if (r < 0) {
                        fprintf(stderr, "coffre verify: cannot check %s: %s\n", argv[optind],
                                r == -EINVAL ? "cannot read the --ca file" : strerror(-r));
                        return CLI_EXIT_FAILURE;
                }
                printf("verified\n");
                return CLI_EXIT_OK;
        }
        if (document || log_key) {
                fprintf(stderr, "coffre verify: --document and --log-key go with FILE.asics\n");
                return usage(stderr, CLI_EXIT_USAGE);
        }
        if (optind != argc || (!tsr == !token) || (!data == !digest) || !o.ca_file) {
                fprintf(stderr, "coffre verify: give one of --tsr or --token, one of --data or --digest, and --ca\n");
                return usage(stderr, CLI_EXIT_USAGE);
        }
        if (digest) {
                size_t hl = strlen(digest);
                if ((hl != 40 && hl != 64 && hl != 96 && hl != 128) || hex_decode(digest, digest_bin, hl / 2) < 0) {
                        fprintf(stderr, "coffre verify: --digest must be the hex of a SHA-1 or SHA-2 hash\n");
                        return CLI_EXIT_USAGE;
                }
                o.digest = digest_bin;
                o.digest_len = hl / 2;
        }
        const char *in = tsr ? tsr : token;
        _cleanup_buf_ struct buf b = {};
        int r = read_file(in, TSR_MAX_SIZE, &b);
        if (r < 0) {
                fprintf(stderr, "coffre verify: cannot read %s: %s\n", in,
                        r == -EFBIG ? "larger than any time-stamp reply" : strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        BIO *d = data ? BIO_new_file(data, "rb") : NULL;
        if (data && !d) {
                fprintf(stderr, "coffre verify: cannot read %s\n", data);
                return CLI_EXIT_FAILURE;
        }
        struct tsr_check_result res;
        r = tsr ? tsr_check_reply(b.data, b.len, d, &o, stdout, &res)
                : tsr_check_token(b.data, b.len, d, &o, stdout, &res);
        fflush(stdout);
        if (r == -EBADMSG) {
                fprintf(stderr, "coffre verify: verification failed: %s\n", res.reason);
                return CLI_EXIT_VERIFY;
        }
        if (r < 0) {
                fprintf(stderr, "coffre verify: %s\n", res.reason[0] ? res.reason : strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        printf("verified\n");
        return CLI_EXIT_OK;
}
