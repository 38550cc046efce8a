/* accounts_auth.c: proving who one is: login (password, then TOTP or a recovery code), sessions
 * with idle and absolute expiry, enrol-only sessions, the second factor's enrolment, API tokens
 * with scopes, and accounts_authenticate(), which turns any bearer into an actor. */
#include "accounts.h"
#include "accounts_internal.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/totp.h"
#include "hex.h"
#include "log.h"

/* last_seen and last_used are written at most this often: not one write per request */
#define TOUCH_EVERY_MS 30000
#define ISSUER "coffre"

static const struct {
        uint32_t bit;
        const char *name;
} scope_names[] = {
        { VAULT_SCOPE_DOCUMENTS_READ, "documents:read" },
        { VAULT_SCOPE_DOCUMENTS_WRITE, "documents:write" },
        { VAULT_SCOPE_AUDIT_READ, "audit:read" },
        { VAULT_SCOPE_WITNESS, "witness" },
        { VAULT_SCOPE_ACCOUNTS, "accounts" },
};

int accounts_scope_parse(const char *name, uint32_t *ret) {
        for (size_t i = 0; name && i < ELEMENTSOF(scope_names); i++)
                if (strcmp(name, scope_names[i].name) == 0) {
                        *ret = scope_names[i].bit;
                        return 0;
                }
        return -EINVAL;
}

const char *accounts_scope_name(uint32_t bit) {
        for (size_t i = 0; i < ELEMENTSOF(scope_names); i++)
                if (scope_names[i].bit == bit)
                        return scope_names[i].name;
        return NULL;
}

uint32_t accounts_role_scopes(const char *role) {
        if (!role)
                return 0;
        if (strcmp(role, "owner") == 0 || strcmp(role, "admin") == 0)
                return VAULT_SCOPE_ALL;
        if (strcmp(role, "accountant") == 0)
                return VAULT_SCOPE_DOCUMENTS_READ | VAULT_SCOPE_DOCUMENTS_WRITE;
        if (strcmp(role, "viewer") == 0)
                return VAULT_SCOPE_DOCUMENTS_READ;
        if (strcmp(role, "auditor") == 0)
                return VAULT_SCOPE_DOCUMENTS_READ | VAULT_SCOPE_AUDIT_READ | VAULT_SCOPE_WITNESS;
        if (strcmp(role, "operator") == 0)
                return VAULT_SCOPE_ACCOUNTS;
        return 0;
}

static bool needs_second_factor(const struct store_user *u, const struct store_org *o) {
        return u->totp_enabled || o->require_2fa || strcmp(u->role, "owner") == 0 || strcmp(u->role, "admin") == 0 ||
               strcmp(u->role, "operator") == 0;
}

/* ---- authentication ---- */

/* The user behind a credential, still active, in an active organisation. */
static int live_user(struct accounts *a, const char *org_id, const char *user_id, struct store_user *ret,
                     bool *ret_must_enrol) {
        struct store_org o;
        int r = a->store->ops->org_get(a->store, org_id, &o);
        if (r == -ENOENT)
                return -EACCES;
        if (r < 0)
                return r;
        if (strcmp(o.status, STORE_ORG_STATUS_ACTIVE) != 0)
                return -EACCES;
        r = a->store->ops->user_get(a->store, org_id, user_id, ret);
        if (r == -ENOENT)
                return -EACCES;
        if (r < 0)
                return r;
        if (strcmp(ret->status, "active") != 0) {
                sodium_memzero(ret, sizeof *ret);
                return -EACCES;
        }
        /* checked at each use: a role or organisation rule that came after the credential binds it */
        *ret_must_enrol = needs_second_factor(ret, &o) && !ret->totp_enabled;
        return 0;
}

static void actor_fill(struct vault_actor *x, const char *org_id, const char *actor_id, const char *cred_id,
                       const char *role, enum vault_credential cred, uint32_t scopes) {
        memset(x, 0, sizeof *x);
        snprintf(x->org_id, sizeof x->org_id, "%s", org_id);
        snprintf(x->actor_id, sizeof x->actor_id, "%s", actor_id);
        snprintf(x->credential_id, sizeof x->credential_id, "%s", cred_id);
        snprintf(x->role, sizeof x->role, "%s", role);
        x->credential = cred;
        x->scopes = scopes;
}

static int authenticate_token(struct accounts *a, const struct store_token *t, int64_t now, struct vault_actor *ret) {
        struct store_user u;
        int r;

        if (t->revoked_at || (t->expires_at && t->expires_at <= now))
                return -EACCES;
        if (strcmp(t->kind, STORE_TOKEN_BOOTSTRAP) == 0) {
                /* good until the first owner exists, however that owner was made */
                uint64_t owners = 0;
                r = a->store->ops->user_count_role(a->store, t->org_id, "owner", &owners);
                if (r < 0)
                        return r;
                if (owners > 0)
                        return -EACCES;
                actor_fill(ret, t->org_id, t->id, t->id, "bootstrap", VAULT_CRED_BOOTSTRAP, 0);
                return 0;
        }
        if (strcmp(t->kind, STORE_TOKEN_API) != 0 || !t->user_id[0])
                return -EACCES;
        bool must_enrol = false;
        r = live_user(a, t->org_id, t->user_id, &u, &must_enrol);
        if (r < 0)
                return r;
        if (must_enrol) {
                /* a user who must have a second factor and has none does nothing but enrol,
                 * which takes a login: the token waits for the enrolment */
                sodium_memzero(&u, sizeof u);
                return -ENOKEY;
        }
        /* the role is the user's now: a token loses what its user lost */
        actor_fill(ret, t->org_id, u.id, t->id, u.role, VAULT_CRED_TOKEN, t->scopes & accounts_role_scopes(u.role));
        sodium_memzero(&u, sizeof u);
        if (now - t->last_used >= TOUCH_EVERY_MS && a->store->ops->token_touch(a->store, t->id, now) < 0)
                log_warn("token %s: last use not recorded", t->id);
        return 0;
}

static int authenticate_session(struct accounts *a, const struct store_session *se, int64_t now,
                                struct vault_actor *ret) {
        struct store_user u;
        if (se->revoked_at || se->expires_at <= now || se->last_seen + a->session_idle_ms <= now)
                return -EACCES;
        bool must_enrol = false;
        int r = live_user(a, se->org_id, se->user_id, &u, &must_enrol);
        if (r < 0)
                return r;
        bool enrol = strcmp(se->kind, STORE_SESSION_ENROL) == 0;
        if (must_enrol && !enrol) {
                /* a full session of a user who now must enrol: revoked, the next login is enrol-only */
                sodium_memzero(&u, sizeof u);
                if (a->store->ops->session_revoke(a->store, se->id, now) < 0)
                        log_warn("session %s: not revoked; refused anyway", se->id);
                return -EACCES;
        }
        actor_fill(ret, se->org_id, u.id, se->id, u.role, enrol ? VAULT_CRED_ENROL : VAULT_CRED_SESSION,
                   enrol ? 0 : VAULT_SCOPE_ALL);
        sodium_memzero(&u, sizeof u);
        if (now - se->last_seen >= TOUCH_EVERY_MS && a->store->ops->session_touch(a->store, se->id, now) < 0)
                log_warn("session %s: last use not recorded", se->id);
        return 0;
}

int accounts_authenticate(struct accounts *a, const char *bearer, int64_t now_ms, struct vault_actor *ret) {
        uint8_t hash[32];
        size_t n = bearer ? strnlen(bearer, ACCOUNTS_TOKEN_MAX + 1) : 0;
        struct store_token t;
        struct store_session se;
        struct vault_actor x;

        if (n < sizeof(VAULT_TOKEN_PREFIX) || n > ACCOUNTS_TOKEN_MAX ||
            strncmp(bearer, VAULT_TOKEN_PREFIX, sizeof(VAULT_TOKEN_PREFIX) - 1) != 0)
                return -EACCES;
        crypto_hash_sha256(hash, (const unsigned char *) bearer, n);
        int r = a->store->ops->token_lookup(a->store, hash, &t);
        if (r >= 0)
                r = authenticate_token(a, &t, now_ms, &x);
        else if (r == -ENOENT) {
                r = a->store->ops->session_lookup(a->store, hash, &se);
                if (r == -ENOENT)
                        return -EACCES;
                if (r >= 0)
                        r = authenticate_session(a, &se, now_ms, &x);
        }
        if (r < 0)
                return r;
        *ret = x;
        return 0;
}

/* ---- browser sessions: the CSRF token ---- */

void accounts_csrf_token(const char *bearer, char out[ACCOUNTS_CSRF_LEN + 1]) {
        static const unsigned char key[] = "coffre csrf token v1"; /* domain separation only */
        uint8_t h[ACCOUNTS_CSRF_LEN / 2];
        crypto_generichash(h, sizeof h, (const unsigned char *) bearer, strlen(bearer), key, sizeof key - 1);
        hex_encode(h, sizeof h, out);
        out[ACCOUNTS_CSRF_LEN] = 0;
        sodium_memzero(h, sizeof h);
}

bool accounts_csrf_check(const char *bearer, const char *token) {
        char want[ACCOUNTS_CSRF_LEN + 1];
        if (!bearer || !token || strlen(token) != ACCOUNTS_CSRF_LEN)
                return false;
        accounts_csrf_token(bearer, want);
        bool ok = sodium_memcmp(want, token, ACCOUNTS_CSRF_LEN) == 0;
        sodium_memzero(want, sizeof want);
        return ok;
}

/* ---- sessions ---- */

static int session_new(struct accounts *a, const struct store_user *u, const char *kind, int64_t now, char **ret_token,
                       int64_t *ret_expires_at, char ret_id[STORE_ID_LEN + 1]) {
        struct store_session se = { .created_at = now, .last_seen = now };
        uint8_t hash[32];
        accounts_new_id(se.id);
        snprintf(se.user_id, sizeof se.user_id, "%s", u->id);
        snprintf(se.org_id, sizeof se.org_id, "%s", u->org_id);
        snprintf(se.kind, sizeof se.kind, "%s", kind);
        se.expires_at = now + a->session_lifetime_ms;
        char *tok = accounts_new_bearer(hash);
        if (!tok)
                return -ENOMEM;
        int r = a->store->ops->session_insert(a->store, &se, hash);
        if (r < 0) {
                sodium_memzero(tok, strlen(tok));
                free(tok);
                return r;
        }
        *ret_token = tok;
        *ret_expires_at = se.expires_at;
        snprintf(ret_id, STORE_ID_LEN + 1, "%s", se.id);
        return 0;
}

static int login_failed(struct accounts *a, const struct store_user *u, const char *reason, const char *request_id) {
        char d[64];
        snprintf(d, sizeof d, "{\"reason\":\"%s\"}", reason);
        /* no e-mail in the log: the user when known, else only the instance */
        int r = accounts_record(a, u ? u->org_id : a->default_org, u ? u->id : "anonymous", "user.login_failed",
                                u ? u->id : NULL, request_id, d);
        return r < 0 ? r : -EACCES;
}

/* The second factor of u: a TOTP code (its step recorded against replays) or an unused
 * recovery code. 0, -EACCES, or -ENOMSG when none was given. */
static int second_factor(struct accounts *a, struct store_user *u, const struct accounts_login *in, int64_t now,
                         const char *request_id) {
        if (in->totp) {
                uint8_t secret[64];
                size_t n;
                uint64_t step;
                int r = accounts_field_open(a, u->org_id, "totp_secret", u->id, u->totp_secret, u->totp_secret_n,
                                            secret, sizeof secret, &n);
                if (r < 0)
                        return r;
                r = totp_verify(secret, n, in->totp, now / 1000, u->totp_last_step, &step);
                sodium_memzero(secret, sizeof secret);
                if (r < 0)
                        return r == -EINVAL ? -EACCES : r;
                u->totp_last_step = step;
                return 0;
        }
        if (in->recovery_code) {
                uint8_t h[32];
                if (totp_recovery_code_hash(in->recovery_code, h) < 0)
                        return -EACCES;
                int r = a->store->ops->recovery_use(a->store, u->id, h, now);
                if (r == -ENOENT)
                        return -EACCES;
                if (r < 0)
                        return r;
                return accounts_record(a, u->org_id, u->id, "user.recovery_code_used", u->id, request_id, NULL);
        }
        return -ENOMSG;
}

int accounts_login(struct accounts *a, const struct accounts_login *in, const char *request_id,
                   enum accounts_login_result *ret_result, char **ret_token, int64_t *ret_expires_at) {
        uint8_t index[32];
        struct store_user u;
        struct store_org o;
        bool rehash = false;
        char sid[STORE_ID_LEN + 1];
        int64_t now = accounts_now_ms(a);
        size_t pwlen = in->password ? strnlen(in->password, PASSWORD_MAX_BYTES + 1) : 0;
        int r;

        /* an unknown or malformed address costs one hash like a wrong password */
        if (!in->email || accounts_email_index(a, in->email, index) < 0 ||
            a->store->ops->user_get_by_index(a->store, index, &u) < 0) {
                r = password_verify_dummy(a->pool, in->password ? in->password : "", pwlen);
                if (r == -EBUSY)
                        return r;
                return login_failed(a, NULL, "credentials", request_id);
        }
        r = password_verify(a->pool, u.password_hash, in->password ? in->password : "", pwlen, &rehash);
        if (r == -EACCES || r == -EINVAL) {
                r = login_failed(a, &u, "credentials", request_id);
                goto out;
        }
        if (r < 0)
                goto out;
        r = a->store->ops->org_get(a->store, u.org_id, &o);
        if (r < 0)
                goto out;
        if (strcmp(u.status, "active") != 0 || strcmp(o.status, STORE_ORG_STATUS_ACTIVE) != 0) {
                r = login_failed(a, &u, strcmp(u.status, "active") != 0 ? "disabled" : "suspended", request_id);
                goto out;
        }
        if (rehash && password_hash(a->pool, in->password, pwlen, u.password_hash) < 0)
                log_warn("user %s: password not rehashed at the new cost", u.id);
        enum accounts_login_result result = ACCOUNTS_LOGIN_OK;
        uint64_t prev_step = u.totp_last_step;
        if (u.totp_enabled) {
                r = second_factor(a, &u, in, now, request_id);
                if (r == -ENOMSG) {
                        *ret_result = ACCOUNTS_LOGIN_TOTP_REQUIRED;
                        r = 0;
                        goto out;
                }
                if (r == -EACCES) {
                        r = login_failed(a, &u, "second-factor", request_id);
                        goto out;
                }
                if (r < 0)
                        goto out;
        } else if (needs_second_factor(&u, &o))
                result = ACCOUNTS_LOGIN_ENROL;
        u.logged_in = true;
        /* the TOTP step is stored before the answer, and only if no other login stored one
         * meanwhile: a replay, even a concurrent one, finds it */
        r = a->store->ops->user_login_update(a->store, &u, prev_step);
        if (r == -ESTALE) {
                r = login_failed(a, &u, "second-factor", request_id);
                goto out;
        }
        if (r < 0)
                goto out;
        r = session_new(a, &u, result == ACCOUNTS_LOGIN_ENROL ? STORE_SESSION_ENROL : STORE_SESSION_FULL, now,
                        ret_token, ret_expires_at, sid);
        if (r < 0)
                goto out;
        char d[96];
        snprintf(d, sizeof d, "{\"kind\":\"%s\",\"session\":\"%s\"}",
                 result == ACCOUNTS_LOGIN_ENROL ? STORE_SESSION_ENROL : STORE_SESSION_FULL, sid);
        r = accounts_record(a, u.org_id, u.id, "user.login", u.id, request_id, d);
        if (r < 0) {
                (void) a->store->ops->session_revoke(a->store, sid, now);
                sodium_memzero(*ret_token, strlen(*ret_token));
                free(*ret_token);
                *ret_token = NULL;
                goto out;
        }
        *ret_result = result;
out:
        sodium_memzero(&u, sizeof u);
        return r;
}

int accounts_logout(struct accounts *a, const struct vault_actor *actor, const char *request_id) {
        if (actor->credential != VAULT_CRED_SESSION && actor->credential != VAULT_CRED_ENROL)
                return -EPERM; /* an API token is revoked, not logged out */
        int r = accounts_record(a, actor->org_id, actor->actor_id, "user.logout", actor->actor_id, request_id, NULL);
        if (r < 0)
                return r;
        r = a->store->ops->session_revoke(a->store, actor->credential_id, accounts_now_ms(a));
        return r == -ENOENT ? 0 : r;
}

int accounts_logout_all(struct accounts *a, const struct vault_actor *actor, const char *request_id) {
        if (actor->credential != VAULT_CRED_SESSION)
                return -EPERM;
        int r = accounts_record(a, actor->org_id, actor->actor_id, "user.logout_all", actor->actor_id, request_id,
                                NULL);
        if (r < 0)
                return r;
        return accounts_revoke_sessions(a, actor->actor_id);
}

/* ---- second factor ---- */

/* The user of a session (full or enrol-only), for their own second factor. */
static int own_user(struct accounts *a, const struct vault_actor *actor, struct store_user *ret) {
        if (actor->credential != VAULT_CRED_SESSION && actor->credential != VAULT_CRED_ENROL)
                return -EPERM;
        return a->store->ops->user_get(a->store, actor->org_id, actor->actor_id, ret);
}

int accounts_totp_enroll(struct accounts *a, const struct vault_actor *actor, const char *request_id,
                         struct buf *ret_secret_b32, struct buf *ret_uri) {
        uint8_t secret[TOTP_SECRET_BYTES];
        struct store_user u;
        struct accounts_user view;
        int r = own_user(a, actor, &u);
        if (r < 0)
                return r;
        if (u.totp_enabled) {
                r = -EEXIST;
                goto out;
        }
        r = accounts_user_view(a, &u, &view);
        if (r < 0)
                goto out;
        randombytes_buf(secret, sizeof secret);
        r = accounts_field_seal(a, u.org_id, "totp_secret", u.id, secret, sizeof secret, u.totp_secret,
                                sizeof u.totp_secret, &u.totp_secret_n);
        if (r >= 0)
                r = totp_base32_encode(secret, sizeof secret, ret_secret_b32);
        if (r >= 0)
                r = totp_otpauth_uri(ISSUER, view.email, secret, sizeof secret, ret_uri);
        if (r >= 0)
                r = a->store->ops->user_update(a->store, &u); /* pending until confirmed */
        (void) request_id;                                    /* recorded when confirmed */
out:
        sodium_memzero(secret, sizeof secret);
        accounts_user_wipe(&view);
        sodium_memzero(&u, sizeof u);
        return r;
}

/* Checks code against u's secret at now, recording its step. */
static int check_code(struct accounts *a, struct store_user *u, const char *code) {
        uint8_t secret[64];
        size_t n;
        uint64_t step;
        if (!u->totp_secret_n)
                return -ENOENT;
        int r = accounts_field_open(a, u->org_id, "totp_secret", u->id, u->totp_secret, u->totp_secret_n, secret,
                                    sizeof secret, &n);
        if (r < 0)
                return r;
        r = totp_verify(secret, n, code, accounts_now_ms(a) / 1000, u->totp_last_step, &step);
        sodium_memzero(secret, sizeof secret);
        if (r < 0)
                return r == -EINVAL ? -EACCES : r;
        u->totp_last_step = step;
        return 0;
}

int accounts_totp_confirm(struct accounts *a, const struct vault_actor *actor, const char *code, const char *request_id,
                          char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX]) {
        uint8_t hashes[TOTP_RECOVERY_CODES][32];
        struct store_user u;
        int r = own_user(a, actor, &u);
        if (r < 0)
                return r;
        if (u.totp_enabled) {
                r = -EEXIST;
                goto out;
        }
        r = check_code(a, &u, code);
        if (r < 0) {
                if (r == -EACCES) {
                        /* the wrong code's step is not stored; the user may try again */
                        int k = accounts_record(a, u.org_id, u.id, "user.totp_failed", u.id, request_id, NULL);
                        if (k < 0)
                                r = k;
                }
                goto out;
        }
        r = totp_recovery_codes_new(codes, hashes);
        if (r < 0)
                goto out;
        u.totp_enabled = true;
        r = a->store->ops->recovery_set(a->store, u.id, (const uint8_t(*)[32]) hashes, TOTP_RECOVERY_CODES);
        if (r >= 0)
                r = a->store->ops->user_update(a->store, &u);
        if (r >= 0)
                r = accounts_revoke_sessions(a, u.id); /* a 2FA change ends every session */
        if (r >= 0)
                r = accounts_record(a, u.org_id, u.id, "user.totp_enrolled", u.id, request_id, NULL);
        if (r < 0)
                sodium_memzero(codes, sizeof(char[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX]));
out:
        sodium_memzero(hashes, sizeof hashes);
        sodium_memzero(&u, sizeof u);
        return r;
}

int accounts_totp_disable(struct accounts *a, const struct vault_actor *actor, const char *code,
                          const char *request_id) {
        struct store_user u;
        if (actor->credential != VAULT_CRED_SESSION)
                return -EPERM;
        int r = own_user(a, actor, &u);
        if (r < 0)
                return r;
        if (!u.totp_enabled) {
                r = -ENOENT;
                goto out;
        }
        r = check_code(a, &u, code);
        if (r == -EACCES)
                if (accounts_record(a, u.org_id, u.id, "user.totp_failed", u.id, request_id, NULL) < 0)
                        log_warn("a failed second-factor check was not audited; it is refused anyway");
        if (r < 0)
                goto out;
        u.totp_enabled = false;
        sodium_memzero(u.totp_secret, sizeof u.totp_secret);
        u.totp_secret_n = 0;
        r = a->store->ops->user_update(a->store, &u);
        if (r >= 0)
                r = a->store->ops->recovery_set(a->store, u.id, NULL, 0);
        if (r >= 0)
                r = accounts_revoke_sessions(a, u.id);
        if (r >= 0)
                r = accounts_record(a, u.org_id, u.id, "user.totp_disabled", u.id, request_id, NULL);
out:
        sodium_memzero(&u, sizeof u);
        return r;
}

/* ---- API tokens ---- */

static bool token_name_valid(const char *s) {
        size_t n = s ? strnlen(s, ACCOUNTS_TOKEN_NAME_MAX + 1) : 0;
        if (n == 0 || n > ACCOUNTS_TOKEN_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

int accounts_token_create(struct accounts *a, const struct vault_actor *actor, const char *name, uint32_t scopes,
                          int64_t expires_in, const char *request_id, struct store_token *ret, char **ret_token,
                          const char **ret_field) {
        struct store_token t = {};
        uint8_t hash[32];
        int64_t now = accounts_now_ms(a);

        *ret_field = NULL;
        if (!token_name_valid(name))
                return *ret_field = "name", -EINVAL;
        if (scopes == 0 || (scopes & ~(uint32_t) VAULT_SCOPE_ALL))
                return *ret_field = "scopes", -EINVAL;
        if (expires_in < 0 || expires_in > ACCOUNTS_TOKEN_LIFETIME_MAX)
                return *ret_field = "expires_in", -EINVAL;
        if (actor->credential != VAULT_CRED_SESSION && actor->credential != VAULT_CRED_TOKEN)
                return -EPERM;
        /* a subset of the creator's rights, and of its own token's scopes */
        uint32_t allowed = accounts_role_scopes(actor->role) & actor->scopes;
        if (scopes & ~allowed)
                return -EPERM;
        accounts_new_id(t.id);
        snprintf(t.org_id, sizeof t.org_id, "%s", actor->org_id);
        snprintf(t.role, sizeof t.role, "%s", actor->role);
        snprintf(t.kind, sizeof t.kind, STORE_TOKEN_API);
        snprintf(t.user_id, sizeof t.user_id, "%s", actor->actor_id);
        snprintf(t.name, sizeof t.name, "%s", name);
        t.scopes = scopes;
        t.created_at = now;
        t.expires_at = now + (expires_in ? expires_in : ACCOUNTS_TOKEN_LIFETIME_DEFAULT) * 1000;
        char *tok = accounts_new_bearer(hash);
        if (!tok)
                return -ENOMEM;
        int r = a->store->ops->token_insert(a->store, &t, hash);
        if (r >= 0) {
                char d[160];
                snprintf(d, sizeof d, "{\"expires_at\":%lld,\"scopes\":%u}", (long long) t.expires_at, t.scopes);
                r = accounts_record(a, t.org_id, actor->actor_id, "token.created", t.id, request_id, d);
                if (r < 0)
                        (void) a->store->ops->token_revoke(a->store, t.org_id, t.id, now);
        }
        if (r < 0) {
                sodium_memzero(tok, strlen(tok));
                free(tok);
                return r;
        }
        *ret = t;
        *ret_token = tok;
        return 0;
}

static bool sees_all_tokens(const struct vault_actor *actor) {
        return accounts_actor_manages(actor) &&
               (strcmp(actor->role, "owner") == 0 || strcmp(actor->role, "admin") == 0);
}

int accounts_token_list(struct accounts *a, const struct vault_actor *actor, struct store_token **ret, size_t *ret_n) {
        struct store_token *v = NULL;
        size_t n = 0, k = 0;
        int r = a->store->ops->token_list(a->store, actor->org_id, 10000, &v, &n);
        if (r < 0)
                return r;
        bool all = sees_all_tokens(actor);
        for (size_t i = 0; i < n; i++)
                if (all || strcmp(v[i].user_id, actor->actor_id) == 0)
                        v[k++] = v[i];
        *ret = v;
        *ret_n = k;
        return 0;
}

int accounts_token_revoke(struct accounts *a, const struct vault_actor *actor, const char *id, const char *request_id) {
        _cleanup_free_ struct store_token *v = NULL;
        size_t n = 0;
        int r = accounts_token_list(a, actor, &v, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (strcmp(v[i].id, id) != 0)
                        continue;
                if (v[i].revoked_at)
                        return -ENOENT;
                r = accounts_record(a, actor->org_id, actor->actor_id, "token.revoked", id, request_id, NULL);
                if (r < 0)
                        return r;
                return a->store->ops->token_revoke(a->store, actor->org_id, id, accounts_now_ms(a));
        }
        return -ENOENT;
}
