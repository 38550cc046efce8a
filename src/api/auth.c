/* auth.c: /v1/auth/login (public, rate limited per account and per source address), logout,
 * log out everywhere, and the caller's second factor under /v1/users/me/totp. */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "core/accounts.h"
#include "crypto/totp.h"
#include "hex.h"
#include "http/ratelimit.h"
#include "log.h"
#include "timeutil.h"

/* Token buckets of login attempts, per account and per source address, as [auth] login_* in
 * coffre.conf say (docs/security.md, "Rate limits"). Made at the first login. */
static pthread_once_t limits_once = PTHREAD_ONCE_INIT;
static struct ratelimit *by_account, *by_address;
static const struct vault_config *limits_config;

static void limits_init(void) {
        const struct vault_config *c = limits_config;
        struct ratelimit_options acct = {
                .rate = c->login_account_per_minute / 60.0,
                .burst = c->login_account_burst,
                .fail_free = c->login_fail_free,
                .fail_delay_ms = c->login_fail_delay_ms,
                .fail_delay_max_ms = c->login_fail_delay_max_ms,
                .fail_window_ms = c->login_fail_window * 1000u,
                .max_keys = c->login_max_keys,
        };
        struct ratelimit_options addr = acct;
        addr.rate = c->login_address_per_minute / 60.0;
        addr.burst = c->login_address_burst;
        addr.fail_free = c->login_address_fail_free;
        if (ratelimit_new(&acct, &by_account) < 0 || ratelimit_new(&addr, &by_address) < 0)
                log_error("cannot make the login rate limiters: logins are refused");
}

static struct accounts *acc(struct http_request *r) {
        return vault_accounts(http_vault(r));
}

/* The limiters, made at first use from coffre.conf: 0, or -ENOMEM when they could not be made. */
static int limits_ready(struct http_request *r) {
        limits_config = vault_get_config(http_vault(r));
        pthread_once(&limits_once, limits_init);
        return by_account && by_address ? 0 : -ENOMEM;
}

static int rate_limited(struct http_request *r, uint32_t wait_ms) {
        char s[16];
        snprintf(s, sizeof s, "%u", (wait_ms + 999) / 1000);
        if (http_header_add(r, "Retry-After", s) < 0)
                return -ENOMEM;
        return http_respond_problem(r, 429, "rate-limited", "Too many requests",
                                    "Too many login attempts; wait as Retry-After says.");
}

/* The account's bucket key: a hash of the lower-cased address, so no e-mail sits in memory. */
static void account_key(const char *email, char out[2 + 32 + 1]) {
        uint8_t h[32];
        crypto_generichash_state st;
        crypto_generichash_init(&st, (const unsigned char *) "coffre login", 12, sizeof h);
        for (const char *p = email ? email : ""; *p; p++) {
                unsigned char ch = (unsigned char) (*p >= 'A' && *p <= 'Z' ? *p + ('a' - 'A') : *p);
                crypto_generichash_update(&st, &ch, 1);
        }
        crypto_generichash_final(&st, h, sizeof h);
        out[0] = 'a';
        out[1] = ':';
        hex_encode(h, 16, out + 2);
}

static const struct api_field login_fields[] = {
        { "email", JSON_STRING, ACCOUNTS_EMAIL_MAX, true },
        { "password", JSON_STRING, 1024, true },
        { "totp", JSON_STRING, 16 },
        { "recovery_code", JSON_STRING, TOTP_RECOVERY_CODE_MAX },
        { "cookie", JSON_TRUE },
};

/* A browser login: the session's bearer goes in an HttpOnly cookie the page's scripts cannot
 * read, and the answer carries the CSRF token bound to it instead (docs/security.md). */
static int set_session_cookie(struct http_request *r, const char *token) {
        _cleanup_(api_free_secret_stringp) char *c = NULL;
        if (asprintf(&c, HTTP_SESSION_COOKIE "=%s; Secure; HttpOnly; SameSite=Strict; Path=/", token) < 0) {
                c = NULL;
                return -ENOMEM;
        }
        return http_header_add(r, "Set-Cookie", c);
}

static int clear_session_cookie(struct http_request *r) {
        return http_header_add(r, "Set-Cookie",
                               HTTP_SESSION_COOKIE "=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
}

/* Login CSRF: another site's page must not log the browser into an account of its choosing. A
 * plain cross-site form cannot send application/json (that needs CORS, which coffre never
 * grants), and a browser names a cross-site request in Sec-Fetch-Site. 1 when refused (answered). */
static int login_csrf_refused(struct http_request *r) {
        const char *ct = http_header(r, "Content-Type");
        const char *site = http_header(r, "Sec-Fetch-Site");
        int k;
        if (site && strcmp(site, "cross-site") == 0)
                k = http_respond_problem(r, 403, "csrf", "Forbidden",
                                         "A browser login must come from this site's page.");
        else if (!ct || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] && ct[16] != ';' && ct[16] != ' '))
                k = api_bad_request(r, "A browser login (\"cookie\":true) must be sent as application/json.");
        else
                return 0;
        if (k < 0)
                log_error("cannot answer a refused browser login: %s", strerror(-k));
        return 1;
}

int api_auth_login(struct http_request *r) {
        struct accounts *a = acc(r);
        char akey[35], addr[64] = "ip:";
        enum accounts_login_result result = ACCOUNTS_LOGIN_OK;
        _cleanup_(api_free_secret_stringp) char *token = NULL;
        int64_t expires_at = 0;

        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *o = api_json_parse(r, login_fields, ELEMENTSOF(login_fields));
        if (!o)
                return 0;
        json_t *cookie = json_object_get(o, "cookie");
        bool browser = cookie && json_is_true(cookie);
        if (browser && login_csrf_refused(r))
                return 0;
        if (limits_ready(r) < 0)
                return http_respond_problem(r, 503, "busy", "Service unavailable", "Logins are unavailable.");
        if (http_peer_address(r, addr + 3, sizeof addr - 3) < 0)
                snprintf(addr, sizeof addr, "ip:unknown");
        account_key(api_json_str(o, "email"), akey);
        uint64_t now = (uint64_t) accounts_now_ms(a);
        /* the account's bucket only once the address's allows the attempt: a refused flood of
         * e-mails from one address touches no account entry */
        uint32_t wait = ratelimit_take(by_address, addr, now);
        if (!wait)
                wait = ratelimit_take(by_account, akey, now);
        if (wait)
                return rate_limited(r, wait);
        struct accounts_login in = {
                .email = api_json_str(o, "email"),
                .password = api_json_str(o, "password"),
                .totp = api_json_str(o, "totp"),
                .recovery_code = api_json_str(o, "recovery_code"),
        };
        int k = accounts_login(a, &in, http_request_id(r), &result, &token, &expires_at);
        if (k == -EACCES) {
                ratelimit_failure(by_account, akey, now);
                ratelimit_failure(by_address, addr, now);
                if (http_header_add(r, "WWW-Authenticate", "Bearer realm=\"coffre\"") < 0)
                        return -ENOMEM;
                return http_respond_problem(r, 401, "unauthorized", "Unauthorized",
                                            "The e-mail address, password or code is wrong.");
        }
        if (k < 0)
                return api_accounts_problem(r, k, NULL, "login failed");
        /* the password alone clears nothing: only a login that passed every factor the user has */
        if (result == ACCOUNTS_LOGIN_TOTP_REQUIRED)
                return http_respond_problem(r, 401, "totp-required", "Second factor required",
                                            "Give the current code of the authenticator app as 'totp', or a "
                                            "recovery code as 'recovery_code'.");
        ratelimit_success(by_account, akey);
        char exp[RFC3339_MAX], csrf[ACCOUNTS_CSRF_LEN + 1];
        rfc3339_format(expires_at, exp);
        if (browser) {
                accounts_csrf_token(token, csrf);
                k = set_session_cookie(r, token);
                if (k < 0)
                        return k;
                json_t *body = json_pack("{s:s, s:s}", "csrf_token", csrf, "expires_at", exp);
                sodium_memzero(csrf, sizeof csrf);
                if (!body)
                        return -ENOMEM;
                if (result != ACCOUNTS_LOGIN_ENROL)
                        return http_respond_json(r, 200, body);
                k = http_respond_problem_extra(r, 403, "totp-enrolment-required", "Second factor enrolment required",
                                               "Enrol an authenticator app first: this session can do nothing "
                                               "else.",
                                               body);
                api_json_free_secret(&body);
                return k;
        }
        if (result == ACCOUNTS_LOGIN_ENROL) {
                json_t *extra = json_pack("{s:s, s:s}", "token", token, "expires_at", exp);
                if (!extra)
                        return -ENOMEM;
                k = http_respond_problem_extra(r, 403, "totp-enrolment-required", "Second factor enrolment required",
                                               "Enrol an authenticator app (POST /v1/users/me/totp, then "
                                               ".../confirm) with this token; it can do nothing else.",
                                               extra);
                api_json_free_secret(&extra);
                return k;
        }
        return http_respond_json(r, 200, json_pack("{s:s, s:s}", "token", token, "expires_at", exp));
}

/* The caller's own account in the login limiter's table (keyed by user id, as a logged-in check
 * knows no e-mail). */
static void own_key(struct http_request *r, char out[API_OWN_LIMIT_KEY_MAX]) {
        snprintf(out, API_OWN_LIMIT_KEY_MAX, "u:%s", http_actor(r)->actor_id);
}

int api_own_secret_check_begin(struct http_request *r) {
        char key[API_OWN_LIMIT_KEY_MAX];
        if (limits_ready(r) < 0) {
                int k = http_respond_problem(r, 503, "busy", "Service unavailable", "Checks are unavailable.");
                return k < 0 ? k : 1;
        }
        own_key(r, key);
        uint32_t wait = ratelimit_take(by_account, key, (uint64_t) accounts_now_ms(acc(r)));
        if (!wait)
                return 0;
        int k = rate_limited(r, wait);
        return k < 0 ? k : 1;
}

void api_own_secret_check_end(struct http_request *r, bool failed) {
        char key[API_OWN_LIMIT_KEY_MAX];
        own_key(r, key);
        if (failed)
                ratelimit_failure(by_account, key, (uint64_t) accounts_now_ms(acc(r)));
        else
                ratelimit_success(by_account, key);
}

int api_auth_logout(struct http_request *r) {
        int k = accounts_logout(acc(r), http_actor(r), http_request_id(r));
        if (k >= 0)
                k = clear_session_cookie(r);
        if (k < 0)
                return api_accounts_problem(r, k, NULL, k == -EPERM ? "Only a login session logs out." : NULL);
        return http_respond_empty(r, 204);
}

int api_auth_logout_all(struct http_request *r) {
        int k = accounts_logout_all(acc(r), http_actor(r), http_request_id(r));
        if (k >= 0)
                k = clear_session_cookie(r);
        if (k < 0)
                return api_accounts_problem(r, k, NULL, k == -EPERM ? "Only a login session logs out." : NULL);
        return http_respond_empty(r, 204);
}

/* ---- second factor ---- */

int api_totp_enroll(struct http_request *r) {
        _cleanup_(buf_free_secure) struct buf secret = {}, uri = {};
        uint8_t *png = NULL;
        size_t png_n = 0;

        if (api_refuse_if_stalled(r))
                return 0;
        buf_init(&secret, 128);
        buf_init(&uri, 2048);
        int k = accounts_totp_enroll(acc(r), http_actor(r), http_request_id(r), &secret, &uri);
        if (k == -EEXIST)
                return http_respond_problem(r, 409, "conflict", "Conflict",
                                            "A second factor is enrolled already; disable it first.");
        if (k < 0)
                return api_accounts_problem(r, k, NULL, k == -EPERM ? "Enrol in a login session." : NULL);
        k = totp_qr_png(buf_str(&uri), &png, &png_n);
        if (k < 0)
                return http_respond_errno(r, k, "cannot draw the QR code");
        char *b64 = base64_encode(png, png_n);
        free(png);
        if (!b64)
                return -ENOMEM;
        json_t *o = json_pack("{s:s, s:s, s:s}", "secret", buf_str(&secret), "otpauth_uri", buf_str(&uri),
                              "qr_png_base64", b64);
        free(b64);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (!s)
                return -ENOMEM;
        k = http_respond_text(r, 200, "application/json", s, strlen(s));
        sodium_memzero(s, strlen(s));
        free(s);
        return k;
}

static const struct api_field code_fields[] = {
        { "code", JSON_STRING, 16, true },
};

int api_totp_confirm(struct http_request *r) {
        char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX];

        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *o = api_json_parse(r, code_fields, ELEMENTSOF(code_fields));
        if (!o)
                return 0;
        int k = accounts_totp_confirm(acc(r), http_actor(r), api_json_str(o, "code"), http_request_id(r), codes);
        if (k == -EEXIST)
                return http_respond_problem(r, 409, "conflict", "Conflict", "The second factor is enrolled already.");
        if (k == -ENOENT)
                return http_respond_problem(r, 409, "conflict", "Conflict",
                                            "Nothing to confirm: enrol first (POST /v1/users/me/totp).");
        if (k < 0)
                return api_accounts_problem(r, k, "code", k == -EPERM ? "Confirm in a login session." : NULL);
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < TOTP_RECOVERY_CODES; i++)
                json_array_append_new(arr, json_string(codes[i]));
        sodium_memzero(codes, sizeof codes);
        json_t *body = arr ? json_pack("{s:o}", "recovery_codes", arr) : NULL;
        char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (body)
                api_json_free_secret(&body);
        if (!s)
                return -ENOMEM;
        k = http_respond_text(r, 200, "application/json", s, strlen(s));
        sodium_memzero(s, strlen(s));
        free(s);
        return k;
}

int api_totp_disable(struct http_request *r) {
        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *o = api_json_parse(r, code_fields, ELEMENTSOF(code_fields));
        if (!o)
                return 0;
        int k = api_own_secret_check_begin(r);
        if (k != 0)
                return k < 0 ? k : 0;
        k = accounts_totp_disable(acc(r), http_actor(r), api_json_str(o, "code"), http_request_id(r));
        if (k == -EACCES || k >= 0)
                api_own_secret_check_end(r, k == -EACCES);
        if (k == -ENOENT)
                return http_respond_problem(r, 409, "conflict", "Conflict", "No second factor is enrolled.");
        if (k < 0)
                return api_accounts_problem(r, k, "code", k == -EPERM ? "Disable it in a login session." : NULL);
        return http_respond_empty(r, 204);
}
