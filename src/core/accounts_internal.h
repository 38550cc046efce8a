/* accounts_internal.h: what accounts.c (users, organisations, rules) and accounts_auth.c (login,
 * sessions, second factor, tokens, authentication) share. Not for other modules. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "accounts.h"
#include "crypto/password.h"
#include "store/store.h"

struct keyring;

struct accounts {
        struct vault *v;
        struct store *store;
        struct keyring *keyring;
        uint8_t *login_key; /* sodium_malloc'd: the instance-wide key of the e-mail blind index */
        struct password_pool *pool;
        char default_org[STORE_ID_LEN + 1]; /* the instance's own organisation (the operator's) */
        int64_t session_idle_ms, session_lifetime_ms;
        int64_t (*clock)(void);
        _Atomic int64_t clock_offset_ms; /* moved only by test builds */
};

/* Made by vault_open once the store and keyring are open. */
int accounts_new(struct vault *v, struct store *s, struct keyring *k, const uint8_t login_key[32],
                 struct accounts **ret) _warn_unused_;
void accounts_free(struct accounts *a);

bool accounts_role_is_org_role(const char *role);
/* Field ciphertext of a value (table users, the column, row id) under the organisation's field
 * key / back to text (NUL-terminated in out). */
int accounts_field_seal(struct accounts *a, const char *org_id, const char *column, const char *row_id, const void *p,
                        size_t n, uint8_t *out, size_t size, size_t *ret_n) _warn_unused_;
int accounts_field_open(struct accounts *a, const char *org_id, const char *column, const char *row_id,
                        const uint8_t *c, size_t n, uint8_t *out, size_t size, size_t *ret_n) _warn_unused_;
/* The login blind index of an e-mail (lower-cased here). -EINVAL for a malformed address. */
int accounts_email_index(struct accounts *a, const char *email, uint8_t out[32]) _warn_unused_;
int accounts_user_view(struct accounts *a, const struct store_user *u, struct accounts_user *ret) _warn_unused_;
/* Appends an audit entry; details_json (may be NULL) is sealed under the organisation's audit key. */
int accounts_record(struct accounts *a, const char *org_id, const char *actor_id, const char *action,
                    const char *object_id, const char *request_id, const char *details_json) _warn_unused_;
/* Revokes every session of the user; logs nothing. */
int accounts_revoke_sessions(struct accounts *a, const char *user_id) _warn_unused_;
/* Random 16-byte id as 32 hex characters. */
void accounts_new_id(char out[STORE_ID_LEN + 1]);
/* A new "cfr_" bearer (malloc'd) and its SHA-256. */
char *accounts_new_bearer(uint8_t hash[32]);
/* The actor may manage accounts: a full session, or an API token with the accounts scope. */
bool accounts_actor_manages(const struct vault_actor *actor);
