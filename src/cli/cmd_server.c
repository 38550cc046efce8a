/* cmd_server.c: the server-side commands: init, serve, key rotate. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "cmd_server.h"
#include "commands.h"
#include "core/ledger.h"
#include "core/selfsigned.h"
#include "backup/schedule.h"
#include "core/lifecycle.h"
#include "core/sandbox.h"
#include "core/vault.h"
#include "fileio.h"
#include "http/http.h"
#include "log.h"

#define TLS_EXPIRY_WARN_SECONDS (30 * 86400)

/* A certificate that expires within 30 days is said so in the log (at start, then daily). */
static void tls_expiry_check(const char *cert_path, int64_t not_after) {
        int64_t left = not_after - (int64_t) time(NULL);
        if (left >= TLS_EXPIRY_WARN_SECONDS)
                return;
        char days[24];
        snprintf(days, sizeof days, "%lld", (long long) (left / 86400));
        log_fields(LOG_LEVEL_WARN, left > 0 ? "TLS certificate expires soon" : "TLS certificate has expired",
                   "certificate", cert_path, "days_left", days, "fix", "coffre tls renew --data DIR, then restart",
                   NULL);
}

static int usage_error(const char *cmd, const char *msg) {
        fprintf(stderr, "coffre %s: %s\nTry 'coffre %s --help'.\n", cmd, msg, cmd);
        return 2;
}

int cmd_init(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "tls-cert", required_argument, NULL, 'c' },
                { "tls-key", required_argument, NULL, 'k' },
                { "org-name", required_argument, NULL, 'o' },
                { "master-key", required_argument, NULL, 'm' },
                { "pkcs11-path", required_argument, NULL, 'P' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct vault_init_options o = { 0 };
        const char *data = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 'c':
                        o.tls_cert = optarg;
                        break;
                case 'k':
                        o.tls_key = optarg;
                        break;
                case 'o':
                        o.org_name = optarg;
                        break;
                case 'm':
                        o.master_key = optarg;
                        break;
                case 'P':
                        if (o.n_pkcs11_path >= ELEMENTSOF(o.pkcs11_path))
                                return usage_error("init", "too many --pkcs11-path");
                        o.pkcs11_path[o.n_pkcs11_path++] = optarg;
                        break;
                case 'h':
                        printf("Usage: coffre init --data DIR [--tls-cert FILE --tls-key FILE] [--org-name NAME]\n"
                               "                   [--master-key pkcs11:token=T;object=L;pin-source=file:PIN\n"
                               "                    [--pkcs11-path TOKEN-DIR]...]\n\n"
                               "Creates a new vault in DIR (which must not exist or be empty):\n"
                               "  DIR/keys/master.key   the master key (32 random bytes, mode 0600), or with\n"
                               "                        --master-key two keys on a PKCS#11 token that never\n"
                               "                        leave it (AES-256 L and HMAC L-hmac, made when missing);\n"
                               "                        --pkcs11-path: what the module reads once sandboxed\n"
                               "  DIR/tls/              a self-signed ECDSA P-256 certificate for localhost,\n"
                               "                        or the given PEM pair\n"
                               "  DIR/meta.db, DIR/keyring.db, DIR/objects/, DIR/tmp/\n"
                               "  DIR/bootstrap-token   the bootstrap token (0600), also printed once: it only\n"
                               "                        creates the first owner (POST /v1/users), and the\n"
                               "                        operator before that, then stops working\n"
                               "Refuses to touch an existing vault.\n");
                        return 0;
                default:
                        return usage_error("init", "unknown option");
                }
        if (!data || optind != argc)
                return usage_error("init", "--data DIR is required");
        char *token = NULL;
        int r = vault_init(data, &o, &token);
        if (r < 0) {
                fprintf(stderr, "coffre init: %s\n", r == -EEXIST ? "the directory is not empty" : strerror(-r));
                return 1;
        }
        printf("Created a vault in %s\n"
               "Bootstrap token (shown once; also in %s/bootstrap-token, mode 0600):\n%s\n"
               "It can only create users with POST /v1/users: the operator (role \"operator\") if you\n"
               "want one, then the first owner (role \"owner\"); once an owner exists it stops working.\n"
               "An operator can also be added later with coffre user add --data DIR --operator.\n"
               "TLS certificate for clients: %s/tls/cert.pem\n",
               data, data, token, data);
        sodium_memzero(token, strlen(token));
        free(token);
        return 0;
}

/* Everything is open and no thread runs yet: confine the process, then start the checkpointer. */
static int serve_lock_down(void *ud) {
        struct vault *v = ud;
        int r;

        if (vault_get_config(v)->sandbox) {
                r = vault_sandbox(v);
                if (r < 0)
                        return r;
        } else
                log_warn("sandbox disabled by [server] sandbox = false: the server can read every file it can reach");
        r = vault_check_master(v);
        if (r < 0)
                return r;
        r = ledger_start(vault_ledger(v));
        if (r < 0) {
                log_error("cannot start the checkpointer: %s", strerror(-r));
                return r;
        }
        r = vault_seal_upgrader_start(v);
        if (r < 0)
                return r;
        return vault_lifecycle_start(v);
}

int cmd_serve(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "listen", required_argument, NULL, 'l' },
                { "port-file", required_argument, NULL, 'p' },
                { "max-body", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *data = NULL, *listen = NULL, *port_file = NULL, *max_body = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "d:l:h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 'l':
                        listen = optarg;
                        break;
                case 'p':
                        port_file = optarg;
                        break;
                case 'm':
                        max_body = optarg;
                        break;
                case 'h':
                        printf("Usage: coffre serve --data DIR [--listen ADDR:PORT] [--port-file FILE] [--max-body SIZE]\n\n"
                               "Serves the vault in DIR over HTTPS (TLS 1.2/1.3 only; no plaintext listener).\n"
                               "  --listen ADDR:PORT  default from coffre.conf (127.0.0.1:8443); port 0 picks a free one\n"
                               "  --port-file FILE    write the bound port to FILE once listening\n"
                               "  --max-body SIZE     largest accepted upload, e.g. 4G (default from coffre.conf)\n"
                               "Logs are JSON lines on stderr. SIGTERM, SIGINT or SIGHUP finish running requests, then exit 0.\n");
                        return 0;
                default:
                        return usage_error("serve", "unknown option");
                }
        if (!data || optind != argc)
                return usage_error("serve", "--data DIR is required");

        /* No exec may gain privileges, and no core dump may carry the master key or document
         * keys out of the process (the signer, forked later, inherits this too). */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 }) < 0 ||
            prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                log_warn("could not restrict the server process: %m");

        /* Signals are taken synchronously by this thread; every other thread inherits the mask. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* before the vault is open: the scheduler holds no key, no lock, no socket */
        pid_t backups = 0;
        if (backup_schedule_start(data, &backups) < 0)
                return 1;
        if (vault_sandbox_prepare(data) < 0) {
                backup_schedule_stop(backups);
                return 1;
        }
        _cleanup_(vault_closep) struct vault *v = NULL;
        r = vault_open(data, &v);
        if (r < 0) {
                backup_schedule_stop(backups);
                return 1;
        }
        const struct vault_config *cfg = vault_get_config(v);
        struct http_server_options o = {
                .listen = listen ? listen : cfg->listen,
                .port_file = port_file,
                .max_body = cfg->max_body,
                .max_connections = cfg->max_connections,
                .max_connections_per_ip = cfg->max_connections_per_ip,
                .idle_timeout = cfg->idle_timeout,
                .shutdown_timeout = cfg->shutdown_timeout,
                .header_timeout = cfg->header_timeout,
                .body_min_rate = cfg->body_min_rate,
                .body_rate_window = cfg->body_rate_window,
                .routes = api_routes,
                .n_routes = api_routes_count,
                .vault = v,
        };
        if (max_body && parse_size(max_body, &o.max_body) < 0)
                return usage_error("serve", "--max-body wants a size such as 1048576, 64M or 4G");
        r = vault_recover(v);
        if (r < 0)
                return 1;
        r = vault_stats_load(v);
        if (r < 0) {
                log_error("cannot count the documents in the store: %s", strerror(-r));
                return 1;
        }
        r = vault_prepare_writes(v);
        if (r < 0)
                return 1;
        /* the checkpointer starts in serve_lock_down, once the sandbox is on */

        _cleanup_free_ char *cert_path = vault_path(v, cfg->tls_cert);
        _cleanup_free_ char *key_path = vault_path(v, cfg->tls_key);
        struct buf cert, key;
        if (!cert_path || !key_path)
                return 1;
        if ((r = read_file(cert_path, 1 << 20, &cert)) < 0) {
                log_error("cannot read the TLS certificate %s: %s", cert_path, strerror(-r));
                return 1;
        }
        int64_t not_after = 0;
        if ((r = selfsigned_cert_not_after((const char *) cert.data, cert.len, &not_after)) < 0) {
                log_error("%s holds no PEM certificate", cert_path);
                buf_free(&cert);
                return 1;
        }
        o.tls_not_after = not_after;
        tls_expiry_check(cert_path, not_after);
        if ((r = read_file_secret(key_path, 1 << 20, &key)) < 0) {
                log_error("cannot read the TLS key %s: %s", key_path, strerror(-r));
                buf_free(&cert);
                return 1;
        }
        o.before_threads = serve_lock_down;
        o.before_threads_ud = v;
        o.cert_pem = (const char *) cert.data;
        o.key_pem = (const char *) key.data;
        struct http_server *s = NULL;
        r = http_server_start(&o, &s);
        buf_free_secure(&key);
        buf_free(&cert);
        if (r < 0) {
                vault_lifecycle_stop();
                backup_schedule_stop(backups);
                return 1;
        }
        char port[8];
        snprintf(port, sizeof port, "%u", http_server_port(s));
        log_fields(LOG_LEVEL_INFO, "listening", "listen", o.listen, "port", port, NULL);

        int sig;
        for (;;) {
                sig = sigtimedwait(&set, NULL, &(struct timespec){ .tv_sec = 86400 });
                if (sig > 0)
                        break;
                if (sig < 0 && errno == EAGAIN)
                        tls_expiry_check(cert_path, not_after);
        }
        log_info("signal %d: finishing running requests", sig);
        backup_schedule_stop(backups);
        vault_lifecycle_stop();
        http_server_stop(s);
        log_info("stopped");
        return 0;
}

static int cmd_key_import(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "seal", required_argument, NULL, 's' },
                { "tsa", required_argument, NULL, 't' },
                { "chain", required_argument, NULL, 'c' },
                { "key", required_argument, NULL, 'k' },
                { "org", required_argument, NULL, 'o' },
                {},
        };
        const char *data = NULL, *seal = NULL, *tsa = NULL, *chain = NULL, *key = NULL, *org = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "d:", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 's':
                        seal = optarg;
                        break;
                case 't':
                        tsa = optarg;
                        break;
                case 'c':
                        chain = optarg;
                        break;
                case 'k':
                        key = optarg;
                        break;
                case 'o':
                        org = optarg;
                        break;
                default:
                        return usage_error("key", "unknown option");
                }
        if (!data || !key || (!seal == !tsa) || optind != argc || (tsa && org))
                return usage_error(
                        "key", "import needs --data DIR, one of --seal CERT --org ID or --tsa CERT, and --key FILE");
        int r = vault_key_import(data, tsa != NULL, org, tsa ? tsa : seal, chain, key);
        if (r < 0) {
                fprintf(stderr, "coffre key import: %s\n",
                        r == -EBUSY        ? "the vault is in use (stop the server first)"
                        : r == -EINVAL     ? "refused (see the line above); nothing was installed"
                        : r == -EOPNOTSUPP ? "not supported (see the line above); nothing was installed"
                                           : strerror(-r));
                return 1;
        }
        printf("Installed; restart the server to use it.\n");
        return 0;
}

static int cmd_key_migrate_master(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "to", required_argument, NULL, 't' },
                { "pkcs11-path", required_argument, NULL, 'P' },
                {},
        };
        const char *data = NULL, *to = NULL;
        char *paths[4];
        size_t n_paths = 0;
        int c;
        while ((c = getopt_long(argc, argv, "d:", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 't':
                        to = optarg;
                        break;
                case 'P':
                        if (n_paths >= ELEMENTSOF(paths))
                                return usage_error("key", "too many --pkcs11-path");
                        paths[n_paths++] = optarg;
                        break;
                default:
                        return usage_error("key", "unknown option");
                }
        if (!data || !to || optind != argc)
                return usage_error("key", "migrate-master needs --data DIR and --to pkcs11:URI");
        int r = vault_migrate_master(data, to, paths, n_paths);
        if (r < 0) {
                fprintf(stderr, "coffre key migrate-master: %s\n",
                        r == -EBUSY ? "the vault is in use (stop the server first)" : strerror(-r));
                return r == -EINVAL ? 2 : 1;
        }
        printf("The master key is now on the PKCS#11 token; keys/master.key is removed.\n");
        return 0;
}

int cmd_key(int argc, char **argv) {
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "org", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *data = NULL, *org = NULL;
        int c;

        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                printf("Usage: coffre key rotate --data DIR [--org ID]\n"
                       "       coffre key migrate-master --data DIR --to pkcs11:URI [--pkcs11-path DIR]...\n"
                       "       coffre key list --data DIR\n"
                       "       coffre key import --data DIR --seal CERT --org ID | --tsa CERT [--chain CHAIN]\n"
                       "                         --key FILE|pkcs11:URI\n\n"
                       "import: installs a seal or TSA certificate issued elsewhere with its key (server\n"
                       "stopped), once the key is the certificate's, the chain up to a self-signed root\n"
                       "verifies, the certificate is valid now and fit for the use (TSA: critical extended\n"
                       "key usage timeStamping; seal: digitalSignature or nonRepudiation). The previous pair\n"
                       "is kept as keys/NAME.old.\n\n"
                       "list: the master, log, CA, TSA and seal keys in use (a file or a PKCS#11 URI), each\n"
                       "certificate's subject and notAfter, and a WARNING for one expiring within 30 days.\n\n"
                       "rotate: creates a new version of the organisation's key encryption key (all\n"
                       "organisations without --org), rewraps every document key under it, then destroys\n"
                       "the old version. No document is rewritten. Safe to interrupt and run again.\n\n"
                       "migrate-master: moves the master key from DIR/keys/master.key to a PKCS#11 token\n"
                       "(server stopped): rewraps every organisation key under the token's AES key in one\n"
                       "transaction, reads them back, points coffre.conf at the URI, and only then removes\n"
                       "the file. Safe to interrupt and run again.\n");
                return argc < 2 ? 2 : 0;
        }
        if (strcmp(argv[1], "migrate-master") == 0)
                return cmd_key_migrate_master(argc - 1, argv + 1);
        if (strcmp(argv[1], "import") == 0)
                return cmd_key_import(argc - 1, argv + 1);
        if (strcmp(argv[1], "list") == 0) {
                if (argc != 4 || strcmp(argv[2], "--data") != 0)
                        return usage_error("key", "list needs --data DIR");
                unsigned warnings = 0;
                if (vault_key_list(argv[3], stdout, &warnings) < 0)
                        return 1;
                if (warnings)
                        fprintf(stderr, "coffre key list: %u certificate(s) expired, expiring within 30 days, or unreadable\n",
                                warnings);
                return 0;
        }
        if (strcmp(argv[1], "rotate") != 0)
                return usage_error("key", "unknown subcommand (want: rotate, migrate-master, list, import)");
        argc--;
        argv++;
        while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 'o':
                        org = optarg;
                        break;
                case 'h':
                        return cmd_key(2, (char *[]){ "key", "--help", NULL });
                default:
                        return usage_error("key", "unknown option");
                }
        if (!data || optind != argc)
                return usage_error("key", "--data DIR is required");
        _cleanup_(vault_closep) struct vault *v = NULL;
        if (vault_open(data, &v) < 0)
                return 1;
        int r = vault_rotate_keys(v, org);
        if (r < 0) {
                fprintf(stderr, "coffre key rotate: %s\n", r == -ENOENT ? "no such organisation" : strerror(-r));
                return 1;
        }
        return 0;
}
