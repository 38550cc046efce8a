/* cmd_accounts.c: the account commands: coffre login / logout (the session kept in
 * $XDG_CONFIG_HOME/coffre/session), coffre 2fa enroll|disable, coffre user add|ls|rm|role,
 * coffre token create|ls|revoke and coffre org add|ls|suspend. Passwords and codes are asked
 * without echo on a terminal and read from standard input otherwise; never from the command line. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cmd_common.h"
#include "commands.h"
#include "core/accounts.h"
#include "core/vault.h"
#include "crypto/totp.h"
#include "fileio.h"
#include "progress.h"
#include "prompt.h"

#define EMAIL_MAX 254
#define PASSWORD_MAX 1024
#define CODE_MAX 64
#define NAME_MAX_LEN 128
#define PROBLEM_PREFIX "urn:coffre:problem:"

enum {
        OPT_EMAIL = CMD_OPT_FIRST_PRIVATE,
        OPT_ALL,
        OPT_ROLE,
        OPT_DISPLAY_NAME,
        OPT_PHONE,
        OPT_PASSWORD_FILE,
        OPT_ORG,
        OPT_NAME,
        OPT_SCOPE,
        OPT_EXPIRES_IN,
        OPT_DATA,
        OPT_OPERATOR,
};

#define ACCOUNT_COMMON_OPTIONS                          \
        CMD_COMMON_OPTIONS, {                           \
                "json", no_argument, NULL, CMD_OPT_JSON \
        }

/* ---- small helpers ---- */

/* Overwrites the string value of key in o (a password, a token) before o is freed. */
static void json_wipe_string(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        if (json_is_string(v))
                sodium_memzero((char *) json_string_value(v), json_string_length(v));
}

static bool problem_is(const struct client_problem *p, const char *slug) {
        return p->type && strncmp(p->type, PROBLEM_PREFIX, strlen(PROBLEM_PREFIX)) == 0 &&
               strcmp(p->type + strlen(PROBLEM_PREFIX), slug) == 0;
}

/* Opens a client for the account commands: flags as client_config_load_flags; anonymous for login. */
static int open_client(const struct cmd_opts *o, unsigned flags, bool anonymous, struct client_config **ret_cfg,
                       struct client **ret) {
        _cleanup_(client_config_freep) struct client_config *cfg = NULL;
        int r = client_config_load_flags(o->url, o->cacert, flags, &cfg);
        if (r < 0)
                return r;
        r = anonymous ? client_new_anonymous(cfg, ret) : client_new(cfg, ret);
        if (r < 0)
                return r;
        if (ret_cfg)
                *ret_cfg = TAKE_PTR(cfg);
        return 0;
}

/* The one array of an answer such as {"users":[...]}. */
static json_t *answer_list(json_t *o, const char *key) {
        json_t *a = json_object_get(o, key);
        return json_is_array(a) ? a : NULL;
}

static int print_answer(json_t *o, bool json, const char *text_fmt_key) {
        if (json)
                return cmd_print_json_line(o);
        const char *v = cmd_json_str(o, text_fmt_key, NULL);
        if (v) {
                _cleanup_free_ char *e = cli_escape(v);
                printf("%s\n", e ? e : "?");
        }
        return 0;
}

/* "2026-12-04T18:00:00Z" for epoch milliseconds or seconds as the server gives them */
static void format_time(json_t *v, char *out, size_t n) {
        if (json_is_string(v)) {
                _cleanup_free_ char *e = cli_escape(json_string_value(v));
                snprintf(out, n, "%s", e ? e : "?");
                return;
        }
        if (!json_is_integer(v)) {
                snprintf(out, n, "-");
                return;
        }
        json_int_t t = json_integer_value(v);
        if (t > 100000000000LL) /* milliseconds */
                t /= 1000;
        time_t tt = (time_t) t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(out, n, "%lld", (long long) t);
}

static bool is_totp_code(const char *s) {
        if (strlen(s) != TOTP_DIGITS)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

/* A password: the first line of file, or asked (twice on a terminal when confirm). */
static int read_password(const char *file, bool confirm, char **ret) {
        int r;
        if (file) {
                struct buf b = {};
                r = read_file_secret(file, PASSWORD_MAX + 2, &b);
                if (r < 0) {
                        cli_error("cannot read the password file %s: %s", file,
                                  r == -EFBIG ? "longer than a password may be" : strerror(-r));
                        return r;
                }
                size_t n = strcspn(buf_str(&b) ? buf_str(&b) : "", "\r\n");
                if (n == 0 || n > PASSWORD_MAX) {
                        buf_free_secure(&b);
                        cli_error("the password file %s holds no password on its first line", file);
                        return -EINVAL;
                }
                char *p = sodium_malloc(n + 1);
                if (!p) {
                        buf_free_secure(&b);
                        return -ENOMEM;
                }
                memcpy(p, b.data, n);
                p[n] = 0;
                buf_free_secure(&b);
                *ret = p;
                return 0;
        }
        char *p = NULL, *again = NULL;
        r = prompt_line("Password: ", true, PASSWORD_MAX, &p);
        if (r < 0)
                return r;
        if (confirm && prompt_interactive()) {
                r = prompt_line("Password again: ", true, PASSWORD_MAX, &again);
                if (r >= 0 && strcmp(p, again) != 0) {
                        cli_error("the two passwords differ");
                        r = -EINVAL;
                }
                prompt_free(again);
                if (r < 0) {
                        prompt_free(p);
                        return r;
                }
        }
        *ret = p;
        return 0;
}

/* ---- coffre login / logout ---- */

static const char login_help[] =
        "Usage: coffre login [--email EMAIL] [--json]\n"
        "\n"
        "Logs in to the server with an e-mail address, a password and, when the account has one,\n"
        "a code of its authenticator app (or a recovery code). On a terminal each is asked (the\n"
        "password and code without echo); otherwise they are read from standard input, one per\n"
        "line: e-mail (unless --email), password, then the code if the server asks for one.\n"
        "The session token is kept in $XDG_CONFIG_HOME/coffre/session (~/.config/coffre/session,\n"
        "mode 0600) with the server's URL and CA certificate, and is used by the other commands\n"
        "when COFFRE_TOKEN and token_file= are not set, and only with that server. A session ends\n"
        "after 30 minutes without use or 12 hours in all (the server's [auth] settings).\n"
        "An account that must set up two-factor authentication first gets a session that can\n"
        "only do that: run coffre 2fa enroll, then coffre login again (exit status 1 meanwhile).\n"
        "\n"
        "Options:\n"
        "      --email EMAIL   the account's e-mail address (asked otherwise)\n"
        "      --json          print {\"url\", \"expires_at\"} of the new session (never the token)\n" CMD_COMMON_HELP;

static int login_post(struct client *c, const char *email, const char *password, const char *code, json_t **ret,
                      struct client_problem *ret_problem) {
        json_t *body = json_pack("{s:s,s:s}", "email", email, "password", password);
        if (!body)
                return -ENOMEM;
        if (code && json_object_set_new(body, is_totp_code(code) ? "totp" : "recovery_code", json_string(code)) < 0) {
                json_wipe_string(body, "password");
                json_decref(body);
                return -ENOMEM;
        }
        int r = client_send_json(c, "POST", "/v1/auth/login", body, ret, ret_problem);
        json_wipe_string(body, "password");
        json_wipe_string(body, "totp");
        json_wipe_string(body, "recovery_code");
        json_decref(body);
        return r;
}

static int save_session(const struct client_config *cfg, const char *token) {
        _cleanup_free_ char *cacert = NULL;
        if (cfg->cacert && !(cacert = realpath(cfg->cacert, NULL))) {
                int r = negative_errno();
                cli_error("cannot find the CA certificate %s: %s", cfg->cacert, strerror(-r));
                return r;
        }
        return client_session_save(cfg->url, cacert, token);
}

int cmd_login(int argc, char **argv) {
        static const struct option options[] = {
                ACCOUNT_COMMON_OPTIONS,
                { "email", required_argument, NULL, OPT_EMAIL },
                {},
        };
        struct cmd_opts o = {};
        const char *email_opt = NULL;
        char *email = NULL, *password = NULL, *code = NULL;
        json_t *answer = NULL;
        struct client_problem prob = {};
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(login_help, stdout);
                        return cmd_finish_stdout();
                } else if (opt == OPT_EMAIL)
                        email_opt = optarg;
                else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("login", argv);
        }
        if (optind < argc)
                return cmd_usage_error("login", "login takes no arguments (the password is asked, never given)");
        if (email_opt && (strlen(email_opt) == 0 || strlen(email_opt) > EMAIL_MAX))
                return cmd_usage_error("login", "--email needs an e-mail address of at most 254 bytes");

        _cleanup_(client_config_freep) struct client_config *cfg = NULL;
        _cleanup_(client_freep) struct client *c = NULL;
        r = open_client(&o, CLIENT_CONFIG_ANY_SESSION, true, &cfg, &c);
        if (r < 0)
                return cmd_exit_code(r);
        if (!email_opt) {
                r = prompt_line("E-mail: ", false, EMAIL_MAX, &email);
                if (r < 0)
                        goto out;
                if (!email[0]) {
                        cli_error("no e-mail address given");
                        r = -EINVAL;
                        goto out;
                }
        }
        r = read_password(NULL, false, &password);
        if (r < 0)
                goto out;
        r = login_post(c, email_opt ? email_opt : email, password, NULL, &answer, &prob);
        if (r < 0 && problem_is(&prob, "totp-required")) {
                client_problem_done(&prob);
                r = prompt_line("Code (authenticator app, or a recovery code): ", true, CODE_MAX, &code);
                if (r < 0)
                        goto out;
                r = login_post(c, email_opt ? email_opt : email, password, code, &answer, &prob);
        }
        if (r < 0 && problem_is(&prob, "totp-enrolment-required")) {
                const char *tok = cmd_json_str(prob.body, "token", NULL);
                if (!tok) {
                        cli_error("the server asks for two-factor enrolment but sent no session for it");
                        r = -EPROTO;
                        goto out;
                }
                r = save_session(cfg, tok);
                json_wipe_string(prob.body, "token");
                if (r < 0)
                        goto out;
                cli_error("this account must set up two-factor authentication first: run coffre 2fa enroll, "
                          "then coffre login again (the session saved can only do that)");
                r = -EACCES;
                goto out;
        }
        if (r < 0) {
                if (prob.status) {
                        if (prob.status == 401)
                                cli_error("login refused: wrong e-mail address, password or code");
                        else
                                client_report_problem(c, &prob);
                }
                goto out;
        }
        const char *tok = cmd_json_str(answer, "token", NULL);
        if (!tok) {
                cli_error("the server's login answer holds no token");
                r = -EPROTO;
                goto out;
        }
        r = save_session(cfg, tok);
        json_wipe_string(answer, "token");
        if (r < 0)
                goto out;
        char until[64];
        format_time(json_object_get(answer, "expires_at"), until, sizeof until);
        if (o.json) {
                json_t *out =
                        json_pack("{s:s,s:O?}", "url", cfg->url, "expires_at", json_object_get(answer, "expires_at"));
                r = out ? cmd_print_json_line(out) : -ENOMEM;
                json_decref(out);
        } else {
                _cleanup_free_ char *u = cli_escape(cfg->url);
                fprintf(stderr, "coffre: logged in to %s (the session ends at %s at the latest)\n", u ? u : "?", until);
        }
out:
        if (answer)
                json_wipe_string(answer, "token");
        json_decref(answer);
        client_problem_done(&prob);
        prompt_free(email);
        prompt_free(password);
        prompt_free(code);
        return r < 0 ? cmd_exit_code(r) : cmd_finish_stdout();
}

static const char logout_help[] =
        "Usage: coffre logout [--all]\n"
        "\n"
        "Ends the session coffre login saved, on the server and here (the session file is removed\n"
        "even when the server cannot be told; the session then ends by its timeout).\n"
        "\n"
        "Options:\n"
        "      --all           end every session of this user, on every device\n" CMD_COMMON_HELP;

int cmd_logout(int argc, char **argv) {
        static const struct option options[] = {
                CMD_COMMON_OPTIONS,
                { "all", no_argument, NULL, OPT_ALL },
                {},
        };
        struct cmd_opts o = {};
        bool all = false;
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(logout_help, stdout);
                        return cmd_finish_stdout();
                } else if (opt == OPT_ALL)
                        all = true;
                else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("logout", argv);
        }
        if (optind < argc)
                return cmd_usage_error("logout", "logout takes no arguments");
        _cleanup_(client_freep) struct client *c = NULL;
        r = open_client(&o, CLIENT_CONFIG_SESSION, false, NULL, &c);
        if (r < 0)
                return cmd_exit_code(r);
        struct client_problem prob = {};
        r = client_send_json(c, "POST", all ? "/v1/auth/logout-all" : "/v1/auth/logout", NULL, NULL, &prob);
        bool gone = r < 0 && prob.status == 401; /* expired or revoked already: nothing left to end */
        if (r < 0 && prob.status && !gone)
                client_report_problem(c, &prob);
        client_problem_done(&prob);
        int k = client_session_remove();
        if (k < 0 && k != -ENOENT)
                cli_error("cannot remove the session file: %s", strerror(-k));
        if (r < 0 && !gone) {
                cli_error("the server was not told: the session stays valid there until it times out");
                return cmd_exit_code(r);
        }
        if (k < 0 && k != -ENOENT)
                return CLI_EXIT_FAILURE;
        fprintf(stderr, "coffre: logged out%s\n", all ? " everywhere" : "");
        return CLI_EXIT_OK;
}

/* ---- coffre 2fa ---- */

static const char twofa_help[] =
        "Usage: coffre 2fa enroll [--json]\n"
        "       coffre 2fa disable\n"
        "\n"
        "enroll: sets up two-factor authentication (TOTP: Google or Microsoft Authenticator, Duo,\n"
        "  ...) for the user logged in with coffre login. Shows a QR code and the secret to enter\n"
        "  in the app, asks the first code it shows, and prints 10 recovery codes, once: keep them\n"
        "  somewhere safe, each replaces a code one time. With --json, prints {\"secret\",\n"
        "  \"otpauth_uri\"} first and {\"recovery_codes\"} after the code is read.\n"
        "disable: turns it off (asks a current code).\n"
        "Both end every session of the user: log in again afterwards.\n"
        "\n"
        "Options:\n"
        "      --json          JSON output, one object per line\n" CMD_COMMON_HELP;

static int twofa_enroll(struct client *c, bool json) {
        json_t *enrol = NULL, *done = NULL, *body = NULL;
        char *code = NULL;
        int r;

        r = client_send_json(c, "POST", "/v1/users/me/totp", NULL, &enrol, NULL);
        if (r < 0)
                return r;
        const char *secret = cmd_json_str(enrol, "secret", NULL), *uri = cmd_json_str(enrol, "otpauth_uri", NULL);
        if (!secret || !uri) {
                cli_error("the server's enrolment answer holds no secret or otpauth URI");
                r = -EPROTO;
                goto out;
        }
        if (json) {
                json_t *line = json_pack("{s:s,s:s}", "secret", secret, "otpauth_uri", uri);
                r = line ? cmd_print_json_line(line) : -ENOMEM;
                json_wipe_string(line, "secret");
                json_wipe_string(line, "otpauth_uri");
                json_decref(line);
        } else {
                struct buf qr;
                buf_init(&qr, 1 << 20);
                r = totp_qr_terminal(uri, &qr);
                if (r >= 0) {
                        _cleanup_free_ char *s = cli_escape(secret);
                        printf("Scan this QR code with the authenticator app:\n\n%s\n"
                               "or enter this secret in it: %s\n\n",
                               buf_str(&qr) ? buf_str(&qr) : "", s ? s : "?");
                        fflush(stdout);
                        if (s)
                                sodium_memzero(s, strlen(s));
                } else
                        cli_error("cannot draw the QR code: %s", strerror(-r));
                buf_free_secure(&qr);
        }
        if (r < 0)
                goto out;
        r = prompt_line("Code shown by the app: ", true, CODE_MAX, &code);
        if (r < 0)
                goto out;
        body = json_pack("{s:s}", "code", code);
        r = body ? client_send_json(c, "POST", "/v1/users/me/totp/confirm", body, &done, NULL) : -ENOMEM;
        if (r < 0)
                goto out;
        json_t *codes = answer_list(done, "recovery_codes");
        if (!codes || json_array_size(codes) == 0) {
                cli_error("the server's confirmation holds no recovery codes");
                r = -EPROTO;
                goto out;
        }
        if (json)
                r = cmd_print_json_line(done);
        else {
                printf("Two-factor authentication is on. Recovery codes (shown this once; each works one time):\n");
                size_t i;
                json_t *v;
                json_array_foreach(codes, i, v) {
                        _cleanup_free_ char *e = json_is_string(v) ? cli_escape(json_string_value(v)) : NULL;
                        printf("  %s\n", e ? e : "?");
                }
        }
        fflush(stdout);
        if (r >= 0)
                fprintf(stderr, "coffre: every session of this user has ended: run coffre login again\n");
out:
        if (enrol) {
                json_wipe_string(enrol, "secret");
                json_wipe_string(enrol, "otpauth_uri");
                json_wipe_string(enrol, "qr_png_base64");
        }
        if (done) {
                size_t i;
                json_t *v;
                json_array_foreach(answer_list(done, "recovery_codes"), i, v) if (json_is_string(v))
                        sodium_memzero((char *) json_string_value(v), json_string_length(v));
        }
        json_wipe_string(body, "code");
        json_decref(body);
        json_decref(enrol);
        json_decref(done);
        prompt_free(code);
        return r;
}

static int twofa_disable(struct client *c) {
        char *code = NULL;
        int r = prompt_line("Current code of the app: ", true, CODE_MAX, &code);
        if (r < 0)
                return r;
        json_t *body = json_pack("{s:s}", "code", code);
        r = body ? client_send_json(c, "DELETE", "/v1/users/me/totp", body, NULL, NULL) : -ENOMEM;
        json_wipe_string(body, "code");
        json_decref(body);
        prompt_free(code);
        if (r >= 0)
                fprintf(stderr, "coffre: two-factor authentication is off; every session of this user has ended: "
                                "run coffre login again\n");
        return r;
}

int cmd_2fa(int argc, char **argv) {
        static const struct option options[] = {
                ACCOUNT_COMMON_OPTIONS,
                {},
        };
        struct cmd_opts o = {};
        int opt, r;

        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                if (opt == 'h') {
                        fputs(twofa_help, stdout);
                        return cmd_finish_stdout();
                } else if (!cmd_common_option(opt, &o))
                        return cmd_bad_option("2fa", argv);
        }
        if (optind + 1 != argc || (strcmp(argv[optind], "enroll") != 0 && strcmp(argv[optind], "disable") != 0))
                return cmd_usage_error("2fa", "say enroll or disable");
        bool enroll = strcmp(argv[optind], "enroll") == 0;
        _cleanup_(client_freep) struct client *c = NULL;
        r = open_client(&o, CLIENT_CONFIG_SESSION, false, NULL, &c);
        if (r < 0)
                return cmd_exit_code(r);
        r = enroll ? twofa_enroll(c, o.json) : twofa_disable(c);
        if (r >= 0) {
                /* the server ended the session: forget it here too */
                int k = client_session_remove();
                if (k < 0 && k != -ENOENT)
                        cli_error("cannot remove the session file: %s", strerror(-k));
        }
        return r < 0 ? cmd_exit_code(r) : cmd_finish_stdout();
}

/* ---- coffre user / token / org ---- */

struct group_opts {
        struct cmd_opts o;
        const char *email, *role, *display_name, *phone, *password_file, *org, *name, *data;
        const char *scopes[8];
        size_t n_scopes;
        int64_t expires_in; /* -1: not given */
        bool operator_;
};

static const struct option group_options[] = {
        ACCOUNT_COMMON_OPTIONS,
        { "email", required_argument, NULL, OPT_EMAIL },
        { "role", required_argument, NULL, OPT_ROLE },
        { "display-name", required_argument, NULL, OPT_DISPLAY_NAME },
        { "phone", required_argument, NULL, OPT_PHONE },
        { "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
        { "org", required_argument, NULL, OPT_ORG },
        { "name", required_argument, NULL, OPT_NAME },
        { "scope", required_argument, NULL, OPT_SCOPE },
        { "expires-in", required_argument, NULL, OPT_EXPIRES_IN },
        { "data", required_argument, NULL, OPT_DATA },
        { "operator", no_argument, NULL, OPT_OPERATOR },
        {},
};

/* SECONDS, or a number with s, m, h or d */
static int parse_duration(const char *s, int64_t *ret) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || s[0] < '0' || s[0] > '9')
                return -EINVAL;
        uint64_t mult = 1;
        if (*end == 'm')
                mult = 60;
        else if (*end == 'h')
                mult = 3600;
        else if (*end == 'd')
                mult = 86400;
        else if (*end != 's' && *end != 0)
                return -EINVAL;
        if (*end && end[1])
                return -EINVAL;
        if (v == 0 || v > (uint64_t) INT64_MAX / mult)
                return -EINVAL;
        *ret = (int64_t) (v * mult);
        return 0;
}

/* Parses the options of a command group; *ret_sub is the sub-command, ret_args the rest. */
static int group_parse(const char *group, const char *help, int argc, char **argv, struct group_opts *g,
                       const char **ret_sub) {
        int opt;

        *g = (struct group_opts){ .expires_in = -1 };
        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "h", group_options, NULL)) != -1) {
                switch (opt) {
                case 'h':
                        fputs(help, stdout);
                        return cmd_finish_stdout() == CLI_EXIT_OK ? -ECANCELED : -EIO;
                case OPT_EMAIL:
                        g->email = optarg;
                        break;
                case OPT_ROLE:
                        g->role = optarg;
                        break;
                case OPT_DISPLAY_NAME:
                        g->display_name = optarg;
                        break;
                case OPT_PHONE:
                        g->phone = optarg;
                        break;
                case OPT_PASSWORD_FILE: {
                        /* getopt takes "--password X" as an abbreviation: refuse it, X may be the password */
                        const char *opt_text =
                                optind >= 2 && argv[optind - 1] == optarg ? argv[optind - 2] : argv[optind - 1];
                        if (strncmp(opt_text, "--password-file", 15) != 0)
                                return cmd_usage_error(group, "a password is never taken from the command line "
                                                              "(others could read it there): use --password-file FILE");
                        g->password_file = optarg;
                        break;
                }
                case OPT_ORG:
                        g->org = optarg;
                        break;
                case OPT_NAME:
                        g->name = optarg;
                        break;
                case OPT_DATA:
                        g->data = optarg;
                        break;
                case OPT_OPERATOR:
                        g->operator_ = true;
                        break;
                case OPT_SCOPE:
                        if (g->n_scopes >= ELEMENTSOF(g->scopes))
                                return cmd_usage_error(group, "too many --scope options");
                        g->scopes[g->n_scopes++] = optarg;
                        break;
                case OPT_EXPIRES_IN:
                        if (parse_duration(optarg, &g->expires_in) < 0)
                                return cmd_usage_error(
                                        group, "--expires-in needs a duration: SECONDS, or N with s, m, h or d");
                        break;
                default:
                        if (!cmd_common_option(opt, &g->o))
                                return cmd_bad_option(group, argv);
                }
        }
        if (optind >= argc)
                return cmd_usage_error(group, "no sub-command given");
        *ret_sub = argv[optind++];
        return 0;
}

/* The options a sub-command does not take are a usage error, not silently ignored. */
static int only_options(const char *group, const struct group_opts *g, const char *allowed) {
        static const struct {
                const char *name;
                size_t off;
        } opts[] = {
                { "email", offsetof(struct group_opts, email) },
                { "role", offsetof(struct group_opts, role) },
                { "display-name", offsetof(struct group_opts, display_name) },
                { "phone", offsetof(struct group_opts, phone) },
                { "password-file", offsetof(struct group_opts, password_file) },
                { "org", offsetof(struct group_opts, org) },
                { "name", offsetof(struct group_opts, name) },
                { "data", offsetof(struct group_opts, data) },
        };
        char what[96];
        for (size_t i = 0; i < ELEMENTSOF(opts); i++) {
                const char *v = *(const char *const *) ((const char *) g + opts[i].off);
                if (v && !strstr(allowed, opts[i].name)) {
                        snprintf(what, sizeof what, "--%s does not go with this sub-command", opts[i].name);
                        return cmd_usage_error(group, what);
                }
        }
        if (g->n_scopes && !strstr(allowed, "scope"))
                return cmd_usage_error(group, "--scope does not go with this sub-command");
        if (g->expires_in >= 0 && !strstr(allowed, "expires-in"))
                return cmd_usage_error(group, "--expires-in does not go with this sub-command");
        if (g->operator_ && !strstr(allowed, "operator"))
                return cmd_usage_error(group, "--operator does not go with this sub-command");
        return 0;
}

static int check_ids(const char *group, int argc, char **argv, int from, int min, int max) {
        int n = argc - from;
        if (n < min || (max >= 0 && n > max))
                return cmd_usage_error(group, n < min ? "an ID is missing" : "too many arguments");
        for (int i = from; i < argc; i++)
                if (!cmd_id_is_valid(argv[i]))
                        return cmd_usage_error(group, "not an ID (letters, digits, '-' and '_')");
        return 0;
}

/* DELETE prefix/ID for each ID */
static int delete_each(struct client *c, const char *prefix, int argc, char **argv, int from) {
        for (int i = from; i < argc; i++) {
                char path[64 + CMD_ID_MAX];
                snprintf(path, sizeof path, "%s/%s", prefix, argv[i]);
                int r = client_delete(c, path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const char *str_or(json_t *o, const char *key, const char *dflt) {
        return cmd_json_str(o, key, dflt);
}

static void print_cell(const char *s, int width) {
        _cleanup_free_ char *e = cli_escape(s ? s : "-");
        printf("%-*s", width, e ? e : "?");
}

static const char user_help[] =
        "Usage: coffre user add --email EMAIL --role ROLE [--display-name NAME] [--phone PHONE]\n"
        "                       [--password-file FILE] [--org ID] [--json]\n"
        "       coffre user add --data DIR --operator --email EMAIL [--password-file FILE]\n"
        "                       [--display-name NAME]\n"
        "       coffre user ls [--json]\n"
        "       coffre user rm ID...\n"
        "       coffre user role ID ROLE [--json]\n"
        "\n"
        "Manages the users of your organisation (owner or admin; an operator names the\n"
        "organisation of the first owner it creates with --org). Roles: owner, admin, accountant,\n"
        "viewer, auditor. The new user's password is read from the first line of FILE, or asked\n"
        "(twice on a terminal; one line of standard input otherwise); never given as an argument.\n"
        "add prints the new user's ID; ls prints ID, ROLE, STATUS, 2FA and E-MAIL.\n"
        "With --data DIR, add makes the instance's operator directly in the vault at DIR (the\n"
        "server need not run; no token needed; run it as the vault's owner).\n"
        "\n"
        "Options:\n"
        "      --json          the server's answers as JSON, one object per line\n" CMD_COMMON_HELP;

static int user_add_offline(const struct group_opts *g);

static int user_add(struct client *c, const struct group_opts *g) {
        char *password = NULL;
        json_t *answer = NULL;
        int r = read_password(g->password_file, true, &password);
        if (r < 0)
                return r;
        json_t *body = json_pack("{s:s,s:s,s:s}", "email", g->email, "password", password, "role", g->role);
        if (body && g->display_name)
                json_object_set_new(body, "display_name", json_string(g->display_name));
        if (body && g->phone)
                json_object_set_new(body, "phone", json_string(g->phone));
        if (body && g->org)
                json_object_set_new(body, "org_id", json_string(g->org));
        r = body ? client_send_json(c, "POST", "/v1/users", body, &answer, NULL) : -ENOMEM;
        json_wipe_string(body, "password");
        json_decref(body);
        prompt_free(password);
        if (r >= 0 && answer)
                r = print_answer(answer, g->o.json, "id");
        json_decref(answer);
        return r;
}

static int user_ls(struct client *c, bool json) {
        json_t *answer = NULL;
        int r = client_get_json(c, "/v1/users", &answer);
        if (r < 0)
                return r;
        json_t *users = answer_list(answer, "users");
        if (!users) {
                json_decref(answer);
                cli_error("the server's list of users is not one coffre understands");
                return -EPROTO;
        }
        size_t i;
        json_t *u;
        if (!json)
                printf("%-33s %-11s %-10s %-4s %s\n", "ID", "ROLE", "STATUS", "2FA", "E-MAIL");
        json_array_foreach(users, i, u) {
                if (json) {
                        r = cmd_print_json_line(u);
                        if (r < 0)
                                break;
                        continue;
                }
                print_cell(str_or(u, "id", NULL), 33);
                putchar(' ');
                print_cell(str_or(u, "role", NULL), 11);
                putchar(' ');
                print_cell(str_or(u, "status", "active"), 10);
                putchar(' ');
                print_cell(json_is_true(json_object_get(u, "totp_enabled")) ? "yes" : "no", 4);
                putchar(' ');
                print_cell(str_or(u, "email", NULL), 0);
                putchar('\n');
        }
        json_decref(answer);
        return r;
}

int cmd_user(int argc, char **argv) {
        struct group_opts g;
        const char *sub = NULL;
        int r = group_parse("user", user_help, argc, argv, &g, &sub);
        if (r == -ECANCELED)
                return CLI_EXIT_OK;
        if (r != 0)
                return r < 0 ? CLI_EXIT_FAILURE : r;

        if (strcmp(sub, "add") == 0) {
                if (optind != argc)
                        return cmd_usage_error("user", "add takes options only");
                if (g.data) {
                        if ((r = only_options("user", &g, "data operator email password-file display-name")))
                                return r;
                        if (!g.operator_ || !g.email)
                                return cmd_usage_error("user", "add --data DIR needs --operator and --email");
                        return user_add_offline(&g);
                }
                if (g.operator_)
                        return cmd_usage_error("user", "--operator needs --data DIR: no one creates an operator "
                                                       "through the API");
                if ((r = only_options("user", &g, "email role display-name phone password-file org")))
                        return r;
                if (!g.email || !g.role)
                        return cmd_usage_error("user", "add needs --email and --role");
        } else if (strcmp(sub, "ls") == 0) {
                if ((r = only_options("user", &g, "")))
                        return r;
                if (optind != argc)
                        return cmd_usage_error("user", "ls takes no arguments");
        } else if (strcmp(sub, "rm") == 0) {
                if ((r = only_options("user", &g, "")) || (r = check_ids("user", argc, argv, optind, 1, -1)))
                        return r;
        } else if (strcmp(sub, "role") == 0) {
                if ((r = only_options("user", &g, "")))
                        return r;
                if (argc - optind != 2)
                        return cmd_usage_error("user", "role needs ID and ROLE");
                if ((r = check_ids("user", argc - 1, argv, optind, 1, 1)))
                        return r;
        } else
                return cmd_usage_error("user", "unknown sub-command (add, ls, rm or role)");

        _cleanup_(client_freep) struct client *c = NULL;
        r = open_client(&g.o, 0, false, NULL, &c);
        if (r < 0)
                return cmd_exit_code(r);
        if (strcmp(sub, "add") == 0)
                r = user_add(c, &g);
        else if (strcmp(sub, "ls") == 0)
                r = user_ls(c, g.o.json);
        else if (strcmp(sub, "rm") == 0)
                r = delete_each(c, "/v1/users", argc, argv, optind);
        else {
                char path[32 + CMD_ID_MAX];
                json_t *answer = NULL;
                snprintf(path, sizeof path, "/v1/users/%s", argv[optind]);
                json_t *body = json_pack("{s:s}", "role", argv[optind + 1]);
                r = body ? client_send_json(c, "PATCH", path, body, &answer, NULL) : -ENOMEM;
                json_decref(body);
                if (r >= 0 && answer && g.o.json)
                        r = cmd_print_json_line(answer);
                json_decref(answer);
        }
        return r < 0 ? cmd_exit_code(r) : cmd_finish_stdout();
}

static const char token_help[] =
        "Usage: coffre token create --name NAME --scope SCOPE... [--expires-in DURATION] [--json]\n"
        "       coffre token ls [--json]\n"
        "       coffre token revoke ID...\n"
        "\n"
        "API tokens for scripts and witnesses. create works in the session of coffre login (even\n"
        "when COFFRE_TOKEN is set: a token never makes another). A token acts with its creator's\n"
        "role and only within its scopes (documents:read, documents:write, audit:read, witness,\n"
        "accounts; --scope may be repeated or list several, comma-separated), which must be\n"
        "rights its creator has. DURATION: seconds, or N with s, m, h or d (the server's default,\n"
        "90 days, when not given). create prints the token on standard output, once: it cannot\n"
        "be shown again. ls prints ID, NAME, SCOPES and EXPIRES.\n"
        "\n"
        "Options:\n"
        "      --json          the server's answers as JSON, one object per line\n" CMD_COMMON_HELP;

static int token_create(struct client *c, const struct group_opts *g) {
        json_t *scopes = json_array(), *answer = NULL;
        int r = scopes ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < g->n_scopes; i++) {
                _cleanup_free_ char *copy = strdup(g->scopes[i]);
                if (!copy) {
                        r = -ENOMEM;
                        break;
                }
                for (char *p = copy, *next; r >= 0 && p; p = next) {
                        next = strchr(p, ',');
                        if (next)
                                *next++ = 0;
                        if (*p)
                                r = json_array_append_new(scopes, json_string(p)) < 0 ? -ENOMEM : 0;
                }
        }
        if (r < 0) {
                json_decref(scopes);
                return r;
        }
        json_t *body = json_pack("{s:s,s:o}", "name", g->name, "scopes", scopes);
        if (body && g->expires_in > 0)
                json_object_set_new(body, "expires_in", json_integer(g->expires_in));
        r = body ? client_send_json(c, "POST", "/v1/tokens", body, &answer, NULL) : -ENOMEM;
        json_decref(body);
        if (r < 0)
                return r;
        const char *tok = cmd_json_str(answer, "token", NULL);
        if (!tok) {
                cli_error("the server's answer holds no token");
                r = -EPROTO;
        } else if (g->o.json)
                r = cmd_print_json_line(answer);
        else {
                _cleanup_free_ char *id = cli_escape(str_or(answer, "id", "?"));
                printf("%s\n", tok);
                fflush(stdout);
                fprintf(stderr, "coffre: token %s created; it is shown this once\n", id ? id : "?");
        }
        json_wipe_string(answer, "token");
        json_decref(answer);
        return r;
}

static int token_ls(struct client *c, bool json) {
        json_t *answer = NULL;
        int r = client_get_json(c, "/v1/tokens", &answer);
        if (r < 0)
                return r;
        json_t *tokens = answer_list(answer, "tokens");
        if (!tokens) {
                json_decref(answer);
                cli_error("the server's list of tokens is not one coffre understands");
                return -EPROTO;
        }
        size_t i, k;
        json_t *t, *s;
        if (!json)
                printf("%-33s %-20s %-44s %s\n", "ID", "NAME", "SCOPES", "EXPIRES");
        json_array_foreach(tokens, i, t) {
                if (json) {
                        r = cmd_print_json_line(t);
                        if (r < 0)
                                break;
                        continue;
                }
                char scopes[256] = "", until[64];
                json_array_foreach(json_object_get(t, "scopes"), k, s) {
                        size_t n = strlen(scopes);
                        if (json_is_string(s))
                                snprintf(scopes + n, sizeof scopes - n, "%s%s", n ? "," : "", json_string_value(s));
                }
                format_time(json_object_get(t, "expires_at"), until, sizeof until);
                print_cell(str_or(t, "id", NULL), 33);
                putchar(' ');
                print_cell(str_or(t, "name", NULL), 20);
                putchar(' ');
                print_cell(scopes, 44);
                putchar(' ');
                print_cell(until, 0);
                putchar('\n');
        }
        json_decref(answer);
        return r;
}

int cmd_token(int argc, char **argv) {
        struct group_opts g;
        const char *sub = NULL;
        int r = group_parse("token", token_help, argc, argv, &g, &sub);
        if (r == -ECANCELED)
                return CLI_EXIT_OK;
        if (r != 0)
                return r < 0 ? CLI_EXIT_FAILURE : r;
        if (strcmp(sub, "create") == 0) {
                if ((r = only_options("token", &g, "name scope expires-in")))
                        return r;
                if (optind != argc)
                        return cmd_usage_error("token", "create takes options only");
                if (!g.name || !g.n_scopes)
                        return cmd_usage_error("token", "create needs --name and at least one --scope");
                if (strlen(g.name) > NAME_MAX_LEN)
                        return cmd_usage_error("token", "the --name is too long");
        } else if (strcmp(sub, "ls") == 0) {
                if ((r = only_options("token", &g, "")))
                        return r;
                if (optind != argc)
                        return cmd_usage_error("token", "ls takes no arguments");
        } else if (strcmp(sub, "revoke") == 0) {
                if ((r = only_options("token", &g, "")) || (r = check_ids("token", argc, argv, optind, 1, -1)))
                        return r;
        } else
                return cmd_usage_error("token", "unknown sub-command (create, ls or revoke)");

        _cleanup_(client_freep) struct client *c = NULL;
        /* tokens are made in a login session, never with another token */
        r = open_client(&g.o, strcmp(sub, "create") == 0 ? CLIENT_CONFIG_SESSION : 0, false, NULL, &c);
        if (r < 0)
                return cmd_exit_code(r);
        if (strcmp(sub, "create") == 0)
                r = token_create(c, &g);
        else if (strcmp(sub, "ls") == 0)
                r = token_ls(c, g.o.json);
        else
                r = delete_each(c, "/v1/tokens", argc, argv, optind);
        return r < 0 ? cmd_exit_code(r) : cmd_finish_stdout();
}

static const char org_help[] =
        "Usage: coffre org add NAME [--json]\n"
        "       coffre org ls [--json]\n"
        "       coffre org suspend ID [--json]\n"
        "\n"
        "Organisations of the instance (the operator's; an owner or admin sees their own).\n"
        "add prints the new organisation's ID; create its first owner with coffre user add\n"
        "--org ID --role owner. suspend stops every member's sessions and tokens. ls prints ID,\n"
        "STATUS and NAME.\n"
        "\n"
        "Options:\n"
        "      --json          the server's answers as JSON, one object per line\n" CMD_COMMON_HELP;

static int org_ls(struct client *c, bool json) {
        json_t *answer = NULL;
        int r = client_get_json(c, "/v1/orgs", &answer);
        if (r < 0)
                return r;
        json_t *orgs = answer_list(answer, "orgs");
        if (!orgs) {
                json_decref(answer);
                cli_error("the server's list of organisations is not one coffre understands");
                return -EPROTO;
        }
        size_t i;
        json_t *o;
        if (!json)
                printf("%-33s %-10s %s\n", "ID", "STATUS", "NAME");
        json_array_foreach(orgs, i, o) {
                if (json) {
                        r = cmd_print_json_line(o);
                        if (r < 0)
                                break;
                        continue;
                }
                print_cell(str_or(o, "id", NULL), 33);
                putchar(' ');
                print_cell(str_or(o, "status", "active"), 10);
                putchar(' ');
                print_cell(str_or(o, "name", NULL), 0);
                putchar('\n');
        }
        json_decref(answer);
        return r;
}

int cmd_org(int argc, char **argv) {
        struct group_opts g;
        const char *sub = NULL;
        int r = group_parse("org", org_help, argc, argv, &g, &sub);
        if (r == -ECANCELED)
                return CLI_EXIT_OK;
        if (r != 0)
                return r < 0 ? CLI_EXIT_FAILURE : r;
        if ((r = only_options("org", &g, "")))
                return r;
        if (strcmp(sub, "add") == 0) {
                if (argc - optind != 1 || !argv[optind][0])
                        return cmd_usage_error("org", "add needs one NAME");
        } else if (strcmp(sub, "ls") == 0) {
                if (optind != argc)
                        return cmd_usage_error("org", "ls takes no arguments");
        } else if (strcmp(sub, "suspend") == 0) {
                if ((r = check_ids("org", argc, argv, optind, 1, 1)))
                        return r;
        } else
                return cmd_usage_error("org", "unknown sub-command (add, ls or suspend)");

        _cleanup_(client_freep) struct client *c = NULL;
        r = open_client(&g.o, 0, false, NULL, &c);
        if (r < 0)
                return cmd_exit_code(r);
        if (strcmp(sub, "ls") == 0)
                r = org_ls(c, g.o.json);
        else {
                json_t *answer = NULL, *body;
                char path[32 + CMD_ID_MAX];
                bool add = strcmp(sub, "add") == 0;
                if (add)
                        body = json_pack("{s:s}", "name", argv[optind]);
                else {
                        snprintf(path, sizeof path, "/v1/orgs/%s", argv[optind]);
                        body = json_pack("{s:s}", "status", "suspended");
                }
                r = body ? client_send_json(c, add ? "POST" : "PATCH", add ? "/v1/orgs" : path, body, &answer, NULL)
                         : -ENOMEM;
                json_decref(body);
                if (r >= 0 && answer && (add || g.o.json))
                        r = print_answer(answer, g.o.json, "id");
                json_decref(answer);
        }
        return r < 0 ? cmd_exit_code(r) : cmd_finish_stdout();
}

/* ---- offline: the operator, straight into the vault ---- */

static int user_add_offline(const struct group_opts *g) {
        _cleanup_(vault_closep) struct vault *v = NULL;
        struct accounts_user u = {};
        const char *field = NULL;
        char *password = NULL;
        int r;

        if (strlen(g->email) > EMAIL_MAX)
                return cmd_usage_error("user", "--email is longer than an e-mail address may be");
        /* the audit log admits one writer: a running server keeps this from opening the vault */
        if (vault_open(g->data, &v) < 0) {
                cli_error("cannot open the vault at %s (if its server runs, stop it first)", g->data);
                return CLI_EXIT_FAILURE;
        }
        r = read_password(g->password_file, true, &password);
        if (r < 0)
                return cmd_exit_code(r);
        r = accounts_operator_create(vault_accounts(v), g->email, password, g->display_name, &u, &field);
        prompt_free(password);
        if (r == -EINVAL || r == -EACCES) {
                cli_error("the %s is not acceptable%s", field ? field : "input",
                          field && strcmp(field, "password") == 0
                                  ? " (12 to 1024 bytes, and not one of the most common passwords)"
                                  : "");
                return CLI_EXIT_FAILURE;
        }
        if (r == -EEXIST) {
                cli_error("an account with this e-mail address exists already");
                return CLI_EXIT_FAILURE;
        }
        if (r < 0) {
                cli_error("cannot create the operator: %s", strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        if (g->o.json) {
                json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "id", u.id, "email", u.email, "role", u.role, "org_id",
                                      u.org_id);
                r = o ? cmd_print_json_line(o) : -ENOMEM;
                json_wipe_string(o, "email");
                json_decref(o);
        } else
                printf("%s\n", u.id);
        accounts_user_wipe(&u);
        if (r < 0)
                return cmd_exit_code(r);
        fprintf(stderr, "coffre: operator created; it enrols two-factor authentication at its first login\n");
        return cmd_finish_stdout();
}
