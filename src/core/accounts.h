/* accounts.h: the rules of accounts: organisations, users and their roles, passwords, login with
 * a second factor, sessions, API tokens, the bootstrap token, and the audit record of each of
 * these events. Knows nothing about HTTP: callers pass the acting credential (struct vault_actor)
 * and get 0 or a negative errno:
 *   -EINVAL  bad input (*ret_field, where offered, names the field)
 *   -ENOENT  no such object, or one of another organisation (the same answer)
 *   -EPERM   the actor may not do this (a role it may not grant...)
 *   -EEXIST  taken (an e-mail address)
 *   -EACCES  wrong credentials
 *   -EBUSY   no hashing slot freed in time (retry later)
 * Personal fields (e-mail, display name, phone, TOTP secret) are encrypted with the
 * organisation's field key before they reach the store. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto/totp.h"
#include "macro.h"
#include "vault.h"

#define ACCOUNTS_EMAIL_MAX 254
#define ACCOUNTS_DISPLAY_NAME_MAX 128 /* bytes of UTF-8 */
#define ACCOUNTS_PHONE_MAX 32
#define ACCOUNTS_ORG_NAME_MAX 127
#define ACCOUNTS_TOKEN_NAME_MAX 64
#define ACCOUNTS_TOKEN_MAX 64                   /* characters of a bearer: "cfr_" + 43 base64url */
#define ACCOUNTS_TOKEN_LIFETIME_MAX 63072000    /* two years, in seconds */
#define ACCOUNTS_TOKEN_LIFETIME_DEFAULT 7776000 /* 90 days */

struct accounts;
struct vault;

/* A user as the API shows it (decrypted): wipe it after use (accounts_user_wipe). */
struct accounts_user {
        char id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
        char role[32];
        char status[16];
        char email[ACCOUNTS_EMAIL_MAX + 1];
        char display_name[ACCOUNTS_DISPLAY_NAME_MAX + 1]; /* "" when not set */
        char phone[ACCOUNTS_PHONE_MAX + 1];
        bool totp_enabled;
        int64_t created_at;
};
void accounts_user_wipe(struct accounts_user *u);

/* The accounts of an open vault (made by vault_open; freed by vault_close). */
struct accounts *vault_accounts(struct vault *v);

/* The clock the rules read (milliseconds since the epoch): the real one unless a test build
 * moved it (accounts_clock_shift). */
int64_t accounts_now_ms(struct accounts *a);
#ifdef COFFRE_TEST_HOOKS
/* Test builds only (meson -Dtest_hooks=true): moves the accounts' clock by delta_ms, so that
 * session expiry and TOTP steps are tested without sleeping. */
void accounts_clock_shift(struct accounts *a, int64_t delta_ms);
#endif

/* The credential behind a bearer (API token, session, enrol-only session or the bootstrap
 * token) at now_ms: 0, -EACCES for an unknown, expired or revoked one, or one whose user is gone
 * or whose organisation is suspended (a full session of a user who must enrol a second factor
 * and has not is revoked and -EACCES too); -ENOKEY for an API token of such a user; other
 * negative errnos for failures. */
int accounts_authenticate(struct accounts *a, const char *bearer, int64_t now_ms, struct vault_actor *ret)
        _warn_unused_;

/* Browser sessions carry the session's bearer in the __Host-coffre_session cookie; a call that
 * changes something must then also send this token in X-CSRF-Token. It is a keyed BLAKE2b hash
 * of the bearer, so it is bound to the session, cannot be forged without the cookie's value, and
 * does not reveal it. Hex, ACCOUNTS_CSRF_LEN characters. */
#define ACCOUNTS_CSRF_LEN 64
void accounts_csrf_token(const char *bearer, char out[ACCOUNTS_CSRF_LEN + 1]);
/* true when token is the CSRF token of bearer (constant time) */
bool accounts_csrf_check(const char *bearer, const char *token);

/* ---- users ---- */
struct accounts_user_new {
        const char *org_id; /* NULL: the actor's own organisation; an operator must name one */
        const char *email, *password, *role;
        const char *display_name, *phone; /* NULL: not set */
};
int accounts_user_create(struct accounts *a, const struct vault_actor *actor, const struct accounts_user_new *in,
                         const char *request_id, struct accounts_user *ret, const char **ret_field) _warn_unused_;
/* The users of the actor's organisation, oldest first. *ret malloc'd: wipe each, then free. */
int accounts_user_list(struct accounts *a, const struct vault_actor *actor, struct accounts_user **ret, size_t *ret_n)
        _warn_unused_;
int accounts_user_get(struct accounts *a, const struct vault_actor *actor, const char *id, struct accounts_user *ret)
        _warn_unused_;
/* Fields left NULL are unchanged; "" clears display_name or phone. A change of role or status
 * revokes every session of the user. */
struct accounts_user_patch {
        const char *role, *status, *display_name, *phone;
};
int accounts_user_update(struct accounts *a, const struct vault_actor *actor, const char *id,
                         const struct accounts_user_patch *p, const char *request_id, struct accounts_user *ret,
                         const char **ret_field) _warn_unused_;
int accounts_user_delete(struct accounts *a, const struct vault_actor *actor, const char *id, const char *request_id)
        _warn_unused_;
/* Needs the current password (-EACCES when wrong); revokes every session of the user. */
int accounts_password_change(struct accounts *a, const struct vault_actor *actor, const char *current,
                             const char *new_password, const char *request_id, const char **ret_field) _warn_unused_;
/* Offline (coffre user add --data DIR --operator): the instance operator, in the vault's own
 * organisation, without any credential. */
int accounts_operator_create(struct accounts *a, const char *email, const char *password, const char *display_name,
                             struct accounts_user *ret, const char **ret_field) _warn_unused_;

/* ---- login and sessions ---- */
enum accounts_login_result {
        ACCOUNTS_LOGIN_OK,            /* a full session */
        ACCOUNTS_LOGIN_TOTP_REQUIRED, /* password right, second factor missing: no session */
        ACCOUNTS_LOGIN_ENROL,         /* password right, second factor not enrolled: an enrol-only session */
};
struct accounts_login {
        const char *email, *password;
        const char *totp, *recovery_code; /* NULL when not given */
};
/* -EACCES for any wrong credential (unknown e-mail, wrong password or code, disabled user,
 * suspended organisation): the same answer in the same time. On success *ret_token (malloc'd;
 * wipe it) is the bearer and *ret_expires_at its absolute end.
 */
int accounts_login(struct accounts *a, const struct accounts_login *in, const char *request_id,
                   enum accounts_login_result *ret_result, char **ret_token, int64_t *ret_expires_at) _warn_unused_;
int accounts_logout(struct accounts *a, const struct vault_actor *actor, const char *request_id) _warn_unused_;
int accounts_logout_all(struct accounts *a, const struct vault_actor *actor, const char *request_id) _warn_unused_;

/* ---- second factor ---- */
/* A new pending secret (replacing a pending one; -EEXIST when one is enrolled already). */
int accounts_totp_enroll(struct accounts *a, const struct vault_actor *actor, const char *request_id,
                         struct buf *ret_secret_b32, struct buf *ret_uri) _warn_unused_;
/* The first valid code enables it and returns the recovery codes (shown once). -EACCES for a
 * wrong code, -ENOENT with nothing pending. Revokes every session of the user. */
int accounts_totp_confirm(struct accounts *a, const struct vault_actor *actor, const char *code, const char *request_id,
                          char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_MAX]) _warn_unused_;
/* Needs a current code; revokes every session of the user. */
int accounts_totp_disable(struct accounts *a, const struct vault_actor *actor, const char *code, const char *request_id)
        _warn_unused_;

/* ---- API tokens ---- */
/* scopes must be a subset of the actor's rights (and of its own token's scopes). expires_in:
 * seconds, 1..ACCOUNTS_TOKEN_LIFETIME_MAX (0: the default). *ret_token malloc'd: wipe it. */
int accounts_token_create(struct accounts *a, const struct vault_actor *actor, const char *name, uint32_t scopes,
                          int64_t expires_in, const char *request_id, struct store_token *ret, char **ret_token,
                          const char **ret_field) _warn_unused_;
/* The organisation's tokens an owner or admin sees; anyone else their own. *ret malloc'd. */
int accounts_token_list(struct accounts *a, const struct vault_actor *actor, struct store_token **ret, size_t *ret_n)
        _warn_unused_;
int accounts_token_revoke(struct accounts *a, const struct vault_actor *actor, const char *id, const char *request_id)
        _warn_unused_;
/* "documents:read,audit:read" style names <-> VAULT_SCOPE_* bits. -EINVAL for an unknown one. */
int accounts_scope_parse(const char *name, uint32_t *ret) _warn_unused_;
const char *accounts_scope_name(uint32_t bit);
/* The scopes a role may hold. */
uint32_t accounts_role_scopes(const char *role);

/* ---- organisations ---- */
int accounts_org_create(struct accounts *a, const struct vault_actor *actor, const char *name, const char *request_id,
                        struct store_org *ret, const char **ret_field) _warn_unused_;
/* An operator sees every organisation; anyone else only their own. *ret malloc'd. */
int accounts_org_list(struct accounts *a, const struct vault_actor *actor, struct store_org **ret, size_t *ret_n)
        _warn_unused_;
int accounts_org_get(struct accounts *a, const struct vault_actor *actor, const char *id, struct store_org *ret)
        _warn_unused_;
/* name and require_2fa by the organisation's owner or admin; status by the operator. NULL /
 * negative require_2fa: unchanged. */
struct accounts_org_patch {
        const char *name, *status;
        int require_2fa;       /* -1 unchanged, 0, 1 */
        const char *time_zone; /* IANA name known to this machine (retention dates) */
};
int accounts_org_update(struct accounts *a, const struct vault_actor *actor, const char *id,
                        const struct accounts_org_patch *p, const char *request_id, struct store_org *ret,
                        const char **ret_field) _warn_unused_;

/* Hashing pool figures for /metrics (Prometheus text appended to b). */
int accounts_metrics(struct accounts *a, struct buf *b) _warn_unused_;
