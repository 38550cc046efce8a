/* users.c: /v1/users: creating users (by an owner or admin, or the bootstrap token for the first
 * owner), listing, reading, changing role, status and profile, removal, the caller's own account
 * and password. The rules are in core/accounts.c; this file parses and answers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "core/accounts.h"
#include "crypto/password.h"
#include "timeutil.h"

#define PASSWORD_FIELD_MAX 1024

/* A refused password: the policy's reason, for the user to choose another. */
static int password_refused(struct http_request *r, const char *field, const char *pw) {
        const char *why = NULL;
        char d[200];
        if (!pw || password_check_policy(pw, strlen(pw), &why) >= 0 || !why)
                return 0;
        snprintf(d, sizeof d, "'%s' is not valid: %s; nothing was changed.", field, why);
        return api_bad_request(r, d) < 0 ? -ENOMEM : 1;
}

static struct accounts *acc(struct http_request *r) {
        return vault_accounts(http_vault(r));
}

static json_t *user_json(const struct accounts_user *u) {
        char created[RFC3339_MAX];
        rfc3339_format(u->created_at, created);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "id", u->id, "email", u->email, "role", u->role,
                              "org_id", u->org_id, "status", u->status, "totp_enabled", u->totp_enabled, "created_at",
                              created);
        if (o && u->display_name[0])
                json_object_set_new(o, "display_name", json_string(u->display_name));
        if (o && u->phone[0])
                json_object_set_new(o, "phone", json_string(u->phone));
        return o;
}

static int respond_user(struct http_request *r, unsigned status, struct accounts_user *u) {
        json_t *o = user_json(u);
        accounts_user_wipe(u);
        return http_respond_json(r, status, o);
}

static const struct api_field create_fields[] = {
        { "email", JSON_STRING, ACCOUNTS_EMAIL_MAX, true },
        { "password", JSON_STRING, PASSWORD_FIELD_MAX, true },
        { "role", JSON_STRING, 31, true },
        { "display_name", JSON_STRING, ACCOUNTS_DISPLAY_NAME_MAX },
        { "phone", JSON_STRING, ACCOUNTS_PHONE_MAX },
        { "org_id", JSON_STRING, 32 },
};

int api_users_create(struct http_request *r) {
        struct accounts_user u;
        const char *field = NULL;
        char loc[64];

        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *o = api_json_parse(r, create_fields, ELEMENTSOF(create_fields));
        if (!o)
                return 0;
        struct accounts_user_new in = {
                .org_id = api_json_str(o, "org_id"),
                .email = api_json_str(o, "email"),
                .password = api_json_str(o, "password"),
                .role = api_json_str(o, "role"),
                .display_name = api_json_str(o, "display_name"),
                .phone = api_json_str(o, "phone"),
        };
        int k = accounts_user_create(acc(r), http_actor(r), &in, http_request_id(r), &u, &field);
        if (k == -EINVAL && field && strcmp(field, "password") == 0 && password_refused(r, field, in.password))
                return 0;
        if (k < 0)
                return api_accounts_problem(r, k, field,
                                            k == -EPERM ? "This caller may not create a user with that role." : NULL);
        snprintf(loc, sizeof loc, "/v1/users/%s", u.id);
        if (http_header_add(r, "Location", loc) < 0) {
                accounts_user_wipe(&u);
                return -ENOMEM;
        }
        return respond_user(r, 201, &u);
}

int api_users_list(struct http_request *r) {
        struct accounts_user *v = NULL;
        size_t n = 0;
        int k = accounts_user_list(acc(r), http_actor(r), &v, &n);
        if (k < 0)
                return api_accounts_problem(r, k, NULL, "cannot list the users");
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
                if (arr && json_array_append_new(arr, user_json(&v[i])) < 0) {
                        json_decref(arr);
                        arr = NULL;
                }
                accounts_user_wipe(&v[i]);
        }
        free(v);
        if (!arr)
                return -ENOMEM;
        return http_respond_json(r, 200, json_pack("{s:o}", "users", arr));
}

static int get_one(struct http_request *r, const char *id) {
        struct accounts_user u;
        int k = accounts_user_get(acc(r), http_actor(r), id, &u);
        if (k < 0)
                return api_accounts_problem(r, k, NULL, "cannot read the user");
        return respond_user(r, 200, &u);
}

int api_users_me(struct http_request *r) {
        const struct vault_actor *a = http_actor(r);
        if (a->credential == VAULT_CRED_BOOTSTRAP)
                return http_respond_problem(r, 403, "forbidden", "Forbidden", "The bootstrap token is no user.");
        return get_one(r, a->actor_id);
}

int api_users_get(struct http_request *r) {
        return get_one(r, http_param(r, "id"));
}

static const struct api_field update_fields[] = {
        { "role", JSON_STRING, 31 },
        { "status", JSON_STRING, 15 },
        { "display_name", JSON_STRING, ACCOUNTS_DISPLAY_NAME_MAX },
        { "phone", JSON_STRING, ACCOUNTS_PHONE_MAX },
};

int api_users_update(struct http_request *r) {
        struct accounts_user u;
        const char *field = NULL;

        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *o = api_json_parse(r, update_fields, ELEMENTSOF(update_fields));
        if (!o)
                return 0;
        struct accounts_user_patch p = {
                .role = api_json_str(o, "role"),
                .status = api_json_str(o, "status"),
                .display_name = api_json_str(o, "display_name"),
                .phone = api_json_str(o, "phone"),
        };
        int k = accounts_user_update(acc(r), http_actor(r), http_param(r, "id"), &p, http_request_id(r), &u, &field);
        if (k < 0)
                return api_accounts_problem(r, k, field, k == -EPERM ? "This caller may not make that change." : NULL);
        return respond_user(r, 200, &u);
}

int api_users_delete(struct http_request *r) {
        if (api_refuse_if_stalled(r))
                return 0;
        int k = accounts_user_delete(acc(r), http_actor(r), http_param(r, "id"), http_request_id(r));
        if (k < 0)
                return api_accounts_problem(r, k, NULL, k == -EPERM ? "This caller may not remove that user." : NULL);
        return http_respond_empty(r, 204);
}

static const struct api_field password_fields[] = {
        { "current_password", JSON_STRING, PASSWORD_FIELD_MAX, true },
        { "new_password", JSON_STRING, PASSWORD_FIELD_MAX, true },
};

int api_users_password(struct http_request *r) {
        const char *field = NULL;
        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *o = api_json_parse(r, password_fields, ELEMENTSOF(password_fields));
        if (!o)
                return 0;
        int k = api_own_secret_check_begin(r);
        if (k != 0)
                return k < 0 ? k : 0;
        k = accounts_password_change(acc(r), http_actor(r), api_json_str(o, "current_password"),
                                     api_json_str(o, "new_password"), http_request_id(r), &field);
        if (k == -EACCES || k >= 0)
                api_own_secret_check_end(r, k == -EACCES);
        if (k == -EINVAL && field && strcmp(field, "new_password") == 0 &&
            password_refused(r, field, api_json_str(o, "new_password")))
                return 0;
        if (k < 0)
                return api_accounts_problem(r, k, field,
                                            k == -EPERM ? "A password is changed in a login session." : NULL);
        return http_respond_empty(r, 204);
}
