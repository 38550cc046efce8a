/* accounts.c: users and organisations and their rules: input checks, who may grant which role,
 * field encryption of personal data, the bootstrap token's one job, and the audit record of each
 * change. Login, sessions, the second factor and tokens are in accounts_auth.c. */
#include "accounts.h"
#include "retention.h"
#include "accounts_internal.h"
#include "vault_internal.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/field.h"
#include "crypto/keyring.h"
#include "fields.h"
#include "hex.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

#define USERS_MAX 10000

static const char *const org_roles[] = { "owner", "admin", "accountant", "viewer", "auditor" };

bool accounts_role_is_org_role(const char *role) {
        for (size_t i = 0; role && i < ELEMENTSOF(org_roles); i++)
                if (strcmp(role, org_roles[i]) == 0)
                        return true;
        return false;
}

static bool is_role(const char *role, const char *want) {
        return role && strcmp(role, want) == 0;
}

static bool is_owner_or_admin(const struct vault_actor *actor) {
        return is_role(actor->role, "owner") || is_role(actor->role, "admin");
}

bool accounts_actor_manages(const struct vault_actor *actor) {
        return actor && (actor->credential == VAULT_CRED_SESSION ||
                         (actor->credential == VAULT_CRED_TOKEN && (actor->scopes & VAULT_SCOPE_ACCOUNTS)));
}

void accounts_user_wipe(struct accounts_user *u) {
        if (u)
                sodium_memzero(u, sizeof *u);
}

void accounts_new_id(char out[STORE_ID_LEN + 1]) {
        uint8_t raw[16];
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, out);
}

char *accounts_new_bearer(uint8_t hash[32]) {
        uint8_t raw[32];
        size_t n = sodium_base64_encoded_len(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        char *t = malloc(sizeof(VAULT_TOKEN_PREFIX) - 1 + n);
        if (!t)
                return NULL;
        randombytes_buf(raw, sizeof raw);
        memcpy(t, VAULT_TOKEN_PREFIX, sizeof(VAULT_TOKEN_PREFIX) - 1);
        sodium_bin2base64(t + sizeof(VAULT_TOKEN_PREFIX) - 1, n, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof raw);
        crypto_hash_sha256(hash, (const unsigned char *) t, strlen(t));
        return t;
}

/* ---- the accounts object and its clock ---- */

struct accounts *vault_accounts(struct vault *v) {
        return v->accounts;
}

int64_t accounts_now_ms(struct accounts *a) {
        return a->clock() + atomic_load(&a->clock_offset_ms);
}

#ifdef COFFRE_TEST_HOOKS
void accounts_clock_shift(struct accounts *a, int64_t delta_ms) {
        atomic_fetch_add(&a->clock_offset_ms, delta_ms);
}
#endif

struct oldest_org {
        char id[STORE_ID_LEN + 1];
        int64_t created_at;
};

static int oldest_org_cb(const struct store_org *o, void *ud) {
        struct oldest_org *x = ud;
        if (!x->id[0] || o->created_at < x->created_at) {
                snprintf(x->id, sizeof x->id, "%s", o->id);
                x->created_at = o->created_at;
        }
        return 0;
}

int accounts_new(struct vault *v, struct store *s, struct keyring *k, const uint8_t login_key[32],
                 struct accounts **ret) {
        const struct vault_config *c = vault_get_config(v);
        struct accounts *a = calloc(1, sizeof *a);
        int r;

        if (!a)
                return -ENOMEM;
        a->v = v;
        a->store = s;
        a->keyring = k;
        a->clock = now_ms;
        a->session_idle_ms = (int64_t) c->session_idle * 1000;
        a->session_lifetime_ms = (int64_t) c->session_lifetime * 1000;
        a->login_key = sodium_malloc(32);
        if (!a->login_key) {
                r = -ENOMEM;
                goto fail;
        }
        memcpy(a->login_key, login_key, 32);
        struct password_cost cost = { .opslimit = c->argon2_passes, .memlimit = (size_t) c->argon2_memory };
        r = password_pool_new(c->hash_slots, c->hash_wait_ms, &cost, &a->pool);
        if (r < 0) {
                log_error("cannot make the password hashing pool: %s", strerror(-r));
                goto fail;
        }
        /* the organisation coffre init made is the instance's own: the operator's */
        struct oldest_org o = {};
        r = s->ops->org_foreach(s, oldest_org_cb, &o);
        if (r < 0)
                goto fail;
        if (!o.id[0]) {
                r = log_error_errno(-EBADMSG, "the metadata store has no organisation");
                goto fail;
        }
        snprintf(a->default_org, sizeof a->default_org, "%s", o.id);
        *ret = a;
        return 0;
fail:
        accounts_free(a);
        return r;
}

void accounts_free(struct accounts *a) {
        if (!a)
                return;
        password_pool_free(a->pool);
        sodium_free(a->login_key);
        free(a);
}

int accounts_metrics(struct accounts *a, struct buf *b) {
        return password_metrics_append(a->pool, b);
}

/* ---- personal fields ---- */

/* The organisation's field key, from the vault's cache of them (fields.c). */
static int org_field_key(struct accounts *a, const char *org_id, uint8_t key[32]) {
        const uint8_t *enc = NULL, *idx = NULL;
        int r = vault_field_keys(a->v, org_id, &enc, &idx);
        if (r < 0)
                return log_error_errno(r, "no field key for organisation %s: %s", org_id, strerror(-r));
        memcpy(key, enc, 32);
        return 0;
}

int accounts_field_seal(struct accounts *a, const char *org_id, const char *column, const char *row_id, const void *p,
                        size_t n, uint8_t *out, size_t size, size_t *ret_n) {
        uint8_t key[32];
        if (n + FIELD_OVERHEAD > size)
                return -E2BIG;
        int r = org_field_key(a, org_id, key);
        if (r >= 0)
                r = field_encrypt(key, "users", column, row_id, p, n, out);
        sodium_memzero(key, sizeof key);
        if (r >= 0)
                *ret_n = n + FIELD_OVERHEAD;
        return r;
}

int accounts_field_open(struct accounts *a, const char *org_id, const char *column, const char *row_id,
                        const uint8_t *c, size_t n, uint8_t *out, size_t size, size_t *ret_n) {
        uint8_t key[32];
        size_t m = 0;
        if (n < FIELD_OVERHEAD || n - FIELD_OVERHEAD + 1 > size)
                return -EBADMSG;
        int r = org_field_key(a, org_id, key);
        if (r >= 0)
                r = field_decrypt(key, "users", column, row_id, c, n, out, &m);
        sodium_memzero(key, sizeof key);
        if (r < 0)
                return r;
        out[m] = 0;
        *ret_n = m;
        return 0;
}

/* Text field to out (size includes the NUL); an empty ciphertext gives "". */
static int open_text(struct accounts *a, const struct store_user *u, const char *column, const uint8_t *c, size_t n,
                     char *out, size_t size) {
        size_t m;
        if (n == 0) {
                out[0] = 0;
                return 0;
        }
        int r = accounts_field_open(a, u->org_id, column, u->id, c, n, (uint8_t *) out, size, &m);
        if (r < 0)
                return log_error_errno(r, "user %s: the %s field does not decrypt", u->id, column);
        if (memchr(out, 0, m))
                return -EBADMSG;
        return 0;
}

int accounts_user_view(struct accounts *a, const struct store_user *u, struct accounts_user *ret) {
        struct accounts_user x = {};
        int r;
        snprintf(x.id, sizeof x.id, "%s", u->id);
        snprintf(x.org_id, sizeof x.org_id, "%s", u->org_id);
        snprintf(x.role, sizeof x.role, "%s", u->role);
        snprintf(x.status, sizeof x.status, "%s", u->status);
        x.totp_enabled = u->totp_enabled;
        x.created_at = u->created_at;
        if ((r = open_text(a, u, "email", u->email, u->email_n, x.email, sizeof x.email)) < 0 ||
            (r = open_text(a, u, "display_name", u->display_name, u->display_name_n, x.display_name,
                           sizeof x.display_name)) < 0 ||
            (r = open_text(a, u, "phone", u->phone, u->phone_n, x.phone, sizeof x.phone)) < 0) {
                accounts_user_wipe(&x);
                return r;
        }
        *ret = x;
        accounts_user_wipe(&x);
        return 0;
}

/* ---- input checks ---- */

/* A practical address check (not all of RFC 5322): 3..254 bytes, one '@', a local part of
 * 1..64 printable characters, a domain of dot-separated labels; no space, quote or colon. */
static bool email_valid(const char *e) {
        size_t n = e ? strnlen(e, ACCOUNTS_EMAIL_MAX + 1) : 0;
        if (n < 3 || n > ACCOUNTS_EMAIL_MAX)
                return false;
        const char *at = strchr(e, '@');
        if (!at || strchr(at + 1, '@') || at == e || at - e > 64 || !at[1])
                return false;
        for (const char *p = e; *p; p++) {
                unsigned char ch = (unsigned char) *p;
                if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),:;<>[\\]", ch))
                        return false;
        }
        const char *d = at + 1;
        if (*d == '.' || d[strlen(d) - 1] == '.' || strstr(d, ".."))
                return false;
        return strchr(d, '.') != NULL || strcmp(d, "localhost") == 0;
}

int accounts_email_index(struct accounts *a, const char *email, uint8_t out[32]) {
        char low[ACCOUNTS_EMAIL_MAX + 1];
        if (!email_valid(email))
                return -EINVAL;
        size_t n = strlen(email);
        for (size_t i = 0; i <= n; i++)
                low[i] = (char) (email[i] >= 'A' && email[i] <= 'Z' ? email[i] + ('a' - 'A') : email[i]);
        int r = field_blind_index(a->login_key, "users", "email", low, n, out);
        sodium_memzero(low, sizeof low);
        return r;
}

/* 1..max bytes of UTF-8 without control characters. */
static bool text_valid(const char *s, size_t max) {
        size_t n = s ? strnlen(s, max + 1) : 0;
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t l = utf8_next((const uint8_t *) s + i, n - i, &cp);
                if (l == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
                        return false;
                i += l;
        }
        return true;
}

/* Digits, spaces and + - ( ) . with at least one digit. */
static bool phone_valid(const char *s) {
        size_t n = s ? strnlen(s, ACCOUNTS_PHONE_MAX + 1) : 0;
        bool digit = false;
        if (n == 0 || n > ACCOUNTS_PHONE_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] >= '0' && s[i] <= '9')
                        digit = true;
                else if (!strchr(" +-().", s[i]))
                        return false;
        }
        return digit;
}

/* Whether actor may give role to a user of its organisation. */
static int may_grant(const struct vault_actor *actor, const char *role) {
        if (!is_role(role, "operator") && !accounts_role_is_org_role(role))
                return -EINVAL;
        if (actor->credential == VAULT_CRED_BOOTSTRAP)
                return is_role(role, "owner") || is_role(role, "operator") ? 0 : -EPERM;
        if (!accounts_actor_manages(actor) || is_role(role, "operator"))
                return -EPERM; /* no one makes an operator through the API */
        if (is_role(actor->role, "owner") || is_role(actor->role, "operator"))
                return 0;
        if (is_role(actor->role, "admin"))
                return is_role(role, "owner") ? -EPERM : 0;
        return -EPERM;
}

static int seal_user_field(struct accounts *a, struct store_user *u, const char *column, const char *value,
                           uint8_t *out, size_t *ret_n) {
        if (!value || !*value) {
                *ret_n = 0;
                return 0;
        }
        return accounts_field_seal(a, u->org_id, column, u->id, value, strlen(value), out, STORE_FIELD_CT_MAX, ret_n);
}

int accounts_record(struct accounts *a, const char *org_id, const char *actor_id, const char *action,
                    const char *object_id, const char *request_id, const char *details_json) {
        int r = vault_record(a->v, org_id, actor_id, action, object_id, NULL, request_id, details_json);
        if (r < 0)
                log_error("audit entry %s not recorded: %s", action, strerror(-r));
        return r;
}

/* JSON of the given key/value pairs (NULL values left out), for an audit entry's sealed details. */
static char *details(const char *k1, const char *v1, const char *k2, const char *v2) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        if (v1)
                json_object_set_new(o, k1, json_string(v1));
        if (k2 && v2)
                json_object_set_new(o, k2, json_string(v2));
        char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        return s;
}

int accounts_revoke_sessions(struct accounts *a, const char *user_id) {
        return a->store->ops->session_revoke_user(a->store, user_id, accounts_now_ms(a), NULL);
}

/* ---- users ---- */

static int user_create_in(struct accounts *a, const char *org_id, const char *actor_id, const char *role,
                          const struct accounts_user_new *in, const char *request_id, struct accounts_user *ret,
                          const char **ret_field) {
        _cleanup_(vault_free_secret_stringp) char *d = NULL;
        const char *why = NULL;
        struct store_user u = {};
        int r;

        if (!email_valid(in->email))
                return *ret_field = "email", -EINVAL;
        if (!in->password || password_check_policy(in->password, strlen(in->password), &why) < 0)
                return *ret_field = "password", -EINVAL;
        if (in->display_name && !text_valid(in->display_name, ACCOUNTS_DISPLAY_NAME_MAX))
                return *ret_field = "display_name", -EINVAL;
        if (in->phone && !phone_valid(in->phone))
                return *ret_field = "phone", -EINVAL;
        struct store_org org;
        r = a->store->ops->org_get(a->store, org_id, &org);
        if (r < 0)
                return r == -EINVAL ? -ENOENT : r;
        accounts_new_id(u.id);
        snprintf(u.org_id, sizeof u.org_id, "%s", org_id);
        snprintf(u.role, sizeof u.role, "%s", role);
        snprintf(u.status, sizeof u.status, "active");
        u.created_at = accounts_now_ms(a);
        r = accounts_email_index(a, in->email, u.email_index);
        if (r < 0)
                return *ret_field = "email", r;
        if ((r = seal_user_field(a, &u, "email", in->email, u.email, &u.email_n)) < 0 ||
            (r = seal_user_field(a, &u, "display_name", in->display_name, u.display_name, &u.display_name_n)) < 0 ||
            (r = seal_user_field(a, &u, "phone", in->phone, u.phone, &u.phone_n)) < 0)
                goto out;
        r = password_hash(a->pool, in->password, strlen(in->password), u.password_hash);
        if (r < 0)
                goto out;
        r = a->store->ops->user_insert(a->store, &u);
        if (r == -EEXIST) {
                *ret_field = "email";
                goto out;
        }
        if (r < 0)
                goto out;
        d = details("email", in->email, "role", role);
        r = d ? accounts_record(a, org_id, actor_id, "user.created", u.id, request_id, d) : -ENOMEM;
        if (r < 0)
                goto out;
        r = accounts_user_view(a, &u, ret);
out:
        sodium_memzero(&u, sizeof u);
        return r;
}

int accounts_user_create(struct accounts *a, const struct vault_actor *actor, const struct accounts_user_new *in,
                         const char *request_id, struct accounts_user *ret, const char **ret_field) {
        const char *org_id = actor->org_id;
        int r;

        *ret_field = NULL;
        if (!in->role)
                return *ret_field = "role", -EINVAL;
        r = may_grant(actor, in->role);
        if (r == -EINVAL)
                *ret_field = "role";
        if (r < 0)
                return r;
        if (is_role(actor->role, "operator") && actor->credential != VAULT_CRED_BOOTSTRAP) {
                /* an operator makes the people of the organisations it creates */
                if (!in->org_id)
                        return *ret_field = "org_id", -EINVAL;
                org_id = in->org_id;
                /* only in an organisation it made (never the instance's own) that has no owner
                 * yet: once an owner exists the organisation manages its own people, and the
                 * operator never reaches its documents through an account it made */
                if (!vault_id_valid(org_id))
                        return -ENOENT;
                if (strcmp(org_id, a->default_org) == 0)
                        return -EPERM;
                uint64_t owners = 0;
                r = a->store->ops->user_count_role(a->store, org_id, "owner", &owners);
                if (r < 0)
                        return r;
                if (owners > 0)
                        return -EPERM;
        } else if (in->org_id && strcmp(in->org_id, actor->org_id) != 0)
                return -ENOENT; /* another organisation: as if it did not exist */
        if (!vault_id_valid(org_id))
                return -ENOENT;
        if (actor->credential == VAULT_CRED_BOOTSTRAP) {
                uint64_t owners = 0;
                r = a->store->ops->user_count_role(a->store, org_id, "owner", &owners);
                if (r < 0)
                        return r;
                if (owners > 0)
                        return -EPERM;
                /* and one operator at most: more are made with the CLI on the host */
                uint64_t operators = 0;
                if (is_role(in->role, "operator")) {
                        r = a->store->ops->user_count_role(a->store, NULL, "operator", &operators);
                        if (r < 0)
                                return r;
                        if (operators > 0)
                                return -EPERM;
                }
        }
        r = user_create_in(a, org_id, actor->actor_id, in->role, in, request_id, ret, ret_field);
        if (r < 0)
                return r;
        /* the bootstrap token's one job is done once an owner exists */
        if (actor->credential == VAULT_CRED_BOOTSTRAP && is_role(in->role, "owner")) {
                int k = a->store->ops->token_revoke_kind(a->store, STORE_TOKEN_BOOTSTRAP, accounts_now_ms(a));
                if (k < 0)
                        log_warn("the bootstrap token could not be revoked (%s); it is refused anyway", strerror(-k));
        }
        return 0;
}

int accounts_operator_create(struct accounts *a, const char *email, const char *password, const char *display_name,
                             struct accounts_user *ret, const char **ret_field) {
        struct accounts_user_new in = {
                .email = email, .password = password, .role = "operator", .display_name = display_name
        };
        *ret_field = NULL;
        return user_create_in(a, a->default_org, "system:cli", "operator", &in, NULL, ret, ret_field);
}

int accounts_user_list(struct accounts *a, const struct vault_actor *actor, struct accounts_user **ret, size_t *ret_n) {
        _cleanup_free_ struct store_user *v = NULL;
        size_t n = 0;
        int r = a->store->ops->user_list(a->store, actor->org_id, USERS_MAX, &v, &n);
        if (r < 0)
                return r;
        struct accounts_user *out = calloc(n ? n : 1, sizeof *out);
        if (!out)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = accounts_user_view(a, &v[i], &out[i]);
        if (v)
                sodium_memzero(v, n * sizeof *v);
        if (r < 0) {
                if (out)
                        sodium_memzero(out, (n ? n : 1) * sizeof *out);
                free(out);
                return r;
        }
        *ret = out;
        *ret_n = n;
        return 0;
}

int accounts_user_get(struct accounts *a, const struct vault_actor *actor, const char *id, struct accounts_user *ret) {
        struct store_user u;
        if (!vault_id_valid(id))
                return -ENOENT;
        int r = a->store->ops->user_get(a->store, actor->org_id, id, &u);
        if (r >= 0)
                r = accounts_user_view(a, &u, ret);
        sodium_memzero(&u, sizeof u);
        return r;
}

/* -ENOTEMPTY when u is the organisation's last owner. */
/* Whether the organisation keeps an active owner besides u (disabled owners manage nothing). */
static int not_last_owner(struct accounts *a, const struct store_user *u) {
        uint64_t owners = 0;
        if (!is_role(u->role, "owner"))
                return 0;
        int r = a->store->ops->user_count_active_role(a->store, u->org_id, "owner", &owners);
        if (r < 0)
                return r;
        uint64_t others = owners - (is_role(u->status, "active") && owners > 0 ? 1 : 0);
        return others == 0 ? -ENOTEMPTY : 0;
}

int accounts_user_update(struct accounts *a, const struct vault_actor *actor, const char *id,
                         const struct accounts_user_patch *p, const char *request_id, struct accounts_user *ret,
                         const char **ret_field) {
        struct store_user u;
        bool revoke = false;
        int r;

        *ret_field = NULL;
        if (p->role && !is_role(p->role, "operator") && !accounts_role_is_org_role(p->role))
                return *ret_field = "role", -EINVAL;
        if (p->status && !is_role(p->status, "active") && !is_role(p->status, "disabled"))
                return *ret_field = "status", -EINVAL;
        if (p->display_name && *p->display_name && !text_valid(p->display_name, ACCOUNTS_DISPLAY_NAME_MAX))
                return *ret_field = "display_name", -EINVAL;
        if (p->phone && *p->phone && !phone_valid(p->phone))
                return *ret_field = "phone", -EINVAL;
        if (!vault_id_valid(id))
                return -ENOENT;
        r = a->store->ops->user_get(a->store, actor->org_id, id, &u);
        if (r < 0)
                return r;
        bool self = strcmp(u.id, actor->actor_id) == 0;
        /* others' accounts: owners and admins only, and an admin never touches an owner */
        if (!self || p->role || p->status) {
                if (!accounts_actor_manages(actor) ||
                    (!is_owner_or_admin(actor) && !is_role(actor->role, "operator"))) {
                        r = -EPERM;
                        goto out;
                }
                if (is_role(u.role, "owner") && !is_role(actor->role, "owner")) {
                        r = -EPERM;
                        goto out;
                }
                if (is_role(u.role, "operator") && !is_role(actor->role, "operator")) {
                        r = -EPERM;
                        goto out;
                }
        }
        char old_role[32];
        snprintf(old_role, sizeof old_role, "%s", u.role);
        if (p->role && !is_role(p->role, u.role)) {
                if ((r = may_grant(actor, p->role)) < 0 || (r = not_last_owner(a, &u)) < 0)
                        goto out;
                snprintf(u.role, sizeof u.role, "%s", p->role);
                revoke = true;
        }
        if (p->status && !is_role(p->status, u.status)) {
                if (is_role(p->status, "disabled") && (r = not_last_owner(a, &u)) < 0)
                        goto out;
                snprintf(u.status, sizeof u.status, "%s", p->status);
                revoke = true;
        }
        if (p->display_name &&
            (r = seal_user_field(a, &u, "display_name", p->display_name, u.display_name, &u.display_name_n)) < 0)
                goto out;
        if (p->phone && (r = seal_user_field(a, &u, "phone", p->phone, u.phone, &u.phone_n)) < 0)
                goto out;
        r = a->store->ops->user_update(a->store, &u);
        if (r < 0)
                goto out;
        if (revoke && (r = accounts_revoke_sessions(a, u.id)) < 0)
                goto out;
        if (p->role && !is_role(old_role, u.role)) {
                _cleanup_free_ char *d = details("from", old_role, "to", u.role);
                r = d ? accounts_record(a, u.org_id, actor->actor_id, "user.role_changed", u.id, request_id, d)
                      : -ENOMEM;
        } else
                r = accounts_record(a, u.org_id, actor->actor_id, "user.updated", u.id, request_id, NULL);
        if (r >= 0)
                r = accounts_user_view(a, &u, ret);
out:
        sodium_memzero(&u, sizeof u);
        return r;
}

int accounts_user_delete(struct accounts *a, const struct vault_actor *actor, const char *id, const char *request_id) {
        struct store_user u;
        int r;

        if (!vault_id_valid(id))
                return -ENOENT;
        r = a->store->ops->user_get(a->store, actor->org_id, id, &u);
        if (r < 0)
                return r;
        if (!accounts_actor_manages(actor) || !(is_owner_or_admin(actor) || is_role(actor->role, "operator")) ||
            (is_role(u.role, "owner") && !is_role(actor->role, "owner")) ||
            (is_role(u.role, "operator") && !is_role(actor->role, "operator")))
                r = -EPERM;
        else
                r = not_last_owner(a, &u);
        /* logged before it happens, like a document's deletion */
        if (r >= 0)
                r = accounts_record(a, u.org_id, actor->actor_id, "user.removed", u.id, request_id, NULL);
        if (r >= 0)
                r = a->store->ops->user_delete(a->store, u.org_id, u.id);
        sodium_memzero(&u, sizeof u);
        return r;
}

int accounts_password_change(struct accounts *a, const struct vault_actor *actor, const char *current,
                             const char *new_password, const char *request_id, const char **ret_field) {
        const char *why = NULL;
        struct store_user u;
        int r;

        *ret_field = NULL;
        if (!current)
                return *ret_field = "current_password", -EINVAL;
        if (!new_password || password_check_policy(new_password, strlen(new_password), &why) < 0)
                return *ret_field = "new_password", -EINVAL;
        if (actor->credential != VAULT_CRED_SESSION)
                return -EPERM; /* a password is changed by its user, logged in */
        r = a->store->ops->user_get(a->store, actor->org_id, actor->actor_id, &u);
        if (r < 0)
                return r;
        r = password_verify(a->pool, u.password_hash, current, strlen(current), NULL);
        if (r == -EACCES) {
                /* a wrong guess at the password of a logged-in account is worth an audit entry */
                *ret_field = "current_password";
                if (accounts_record(a, u.org_id, actor->actor_id, "user.password_change_failed", u.id, request_id,
                                    NULL) < 0)
                        log_warn("a failed password change was not audited; it is refused anyway");
                goto out;
        }
        if (r < 0)
                goto out;
        r = password_hash(a->pool, new_password, strlen(new_password), u.password_hash);
        if (r < 0)
                goto out;
        r = a->store->ops->user_update(a->store, &u);
        if (r >= 0)
                r = accounts_revoke_sessions(a, u.id);
        if (r >= 0)
                r = accounts_record(a, u.org_id, actor->actor_id, "user.password_changed", u.id, request_id, NULL);
out:
        sodium_memzero(&u, sizeof u);
        return r;
}

/* ---- organisations ---- */

int accounts_org_create(struct accounts *a, const struct vault_actor *actor, const char *name, const char *request_id,
                        struct store_org *ret, const char **ret_field) {
        struct store_org o = {};
        uint8_t raw[KEYRING_ID_SIZE];
        int r;

        *ret_field = NULL;
        if (!text_valid(name, ACCOUNTS_ORG_NAME_MAX))
                return *ret_field = "name", -EINVAL;
        if (!accounts_actor_manages(actor) || !is_role(actor->role, "operator"))
                return -EPERM;
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, o.id);
        snprintf(o.name, sizeof o.name, "%s", name);
        snprintf(o.status, sizeof o.status, STORE_ORG_STATUS_ACTIVE);
        snprintf(o.time_zone, sizeof o.time_zone, "Europe/Paris"); /* retention dates; PATCH changes it */
        o.created_at = accounts_now_ms(a);
        r = keyring_kek_create(a->keyring, raw);
        if (r < 0)
                return log_error_errno(r, "cannot create the organisation's key: %s", strerror(-r));
        r = a->store->ops->org_insert(a->store, &o);
        if (r < 0)
                return r;
        _cleanup_free_ char *d = details("name", name, NULL, NULL);
        /* in the operator's own trail: the new organisation's members need not see who made it */
        r = d ? accounts_record(a, actor->org_id, actor->actor_id, "org.created", o.id, request_id, d) : -ENOMEM;
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}

struct org_list_ctx {
        struct store_org *v;
        size_t n, cap;
};

static int org_list_cb(const struct store_org *o, void *ud) {
        struct org_list_ctx *c = ud;
        if (c->n == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 16;
                struct store_org *nv = reallocarray(c->v, ncap, sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                c->v = nv;
                c->cap = ncap;
        }
        c->v[c->n++] = *o;
        return 0;
}

int accounts_org_list(struct accounts *a, const struct vault_actor *actor, struct store_org **ret, size_t *ret_n) {
        struct org_list_ctx c = {};
        int r;
        if (is_role(actor->role, "operator"))
                r = a->store->ops->org_foreach(a->store, org_list_cb, &c);
        else {
                struct store_org o;
                r = a->store->ops->org_get(a->store, actor->org_id, &o);
                if (r >= 0)
                        r = org_list_cb(&o, &c);
        }
        if (r < 0) {
                free(c.v);
                return r;
        }
        *ret = c.v;
        *ret_n = c.n;
        return 0;
}

int accounts_org_get(struct accounts *a, const struct vault_actor *actor, const char *id, struct store_org *ret) {
        if (!vault_id_valid(id))
                return -ENOENT;
        if (!is_role(actor->role, "operator") && strcmp(id, actor->org_id) != 0)
                return -ENOENT;
        return a->store->ops->org_get(a->store, id, ret);
}

int accounts_org_update(struct accounts *a, const struct vault_actor *actor, const char *id,
                        const struct accounts_org_patch *p, const char *request_id, struct store_org *ret,
                        const char **ret_field) {
        struct store_org o;
        int r;

        *ret_field = NULL;
        if (p->name && !text_valid(p->name, ACCOUNTS_ORG_NAME_MAX))
                return *ret_field = "name", -EINVAL;
        if (p->status && !is_role(p->status, STORE_ORG_STATUS_ACTIVE) &&
            !is_role(p->status, STORE_ORG_STATUS_SUSPENDED))
                return *ret_field = "status", -EINVAL;
        if (p->time_zone && retention_check_time_zone(p->time_zone) < 0)
                return *ret_field = "time_zone", -EINVAL;
        r = accounts_org_get(a, actor, id, &o);
        if (r < 0)
                return r;
        if (!accounts_actor_manages(actor))
                return -EPERM;
        bool operator= is_role(actor->role, "operator");
        /* settings by the organisation's own owners and admins; suspension by the operator, of
         * another organisation than its own */
        if ((p->name || p->require_2fa >= 0 || p->time_zone) &&
            !(is_owner_or_admin(actor) && strcmp(id, actor->org_id) == 0))
                return -EPERM;
        if (p->status && (!operator|| strcmp(id, a->default_org) == 0))
                return -EPERM;
        bool suspended = p->status && is_role(p->status, STORE_ORG_STATUS_SUSPENDED) &&
                         !is_role(o.status, STORE_ORG_STATUS_SUSPENDED);
        if (p->name)
                snprintf(o.name, sizeof o.name, "%s", p->name);
        if (p->require_2fa >= 0)
                o.require_2fa = p->require_2fa != 0;
        if (p->time_zone)
                snprintf(o.time_zone, sizeof o.time_zone, "%s", p->time_zone);
        if (p->status)
                snprintf(o.status, sizeof o.status, "%s", p->status);
        r = a->store->ops->org_update(a->store, &o);
        if (r < 0)
                return r;
        json_t *dj = json_pack("{s:s, s:b, s:s, s:s}", "name", o.name, "require_2fa", o.require_2fa, "status",
                               o.status, "time_zone", o.time_zone);
        _cleanup_free_ char *d = dj ? json_dumps(dj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(dj);
        r = accounts_record(a, actor->org_id, actor->actor_id, suspended ? "org.suspended" : "org.updated", o.id,
                            request_id, d);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}
