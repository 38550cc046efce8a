/* tokens.c: /v1/tokens: API tokens, named and scoped to a subset of their creator's rights, with
 * an expiry; the secret is shown once, at creation; listed without secrets; revocable. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "core/accounts.h"
#include "timeutil.h"

static json_t *scopes_json(uint32_t scopes) {
        json_t *arr = json_array();
        for (uint32_t bit = 1; arr && bit <= VAULT_SCOPE_ALL; bit <<= 1)
                if ((scopes & bit) && accounts_scope_name(bit))
                        json_array_append_new(arr, json_string(accounts_scope_name(bit)));
        return arr;
}

static json_t *time_or_null(int64_t ms) {
        char s[RFC3339_MAX];
        if (!ms)
                return json_null();
        rfc3339_format(ms, s);
        return json_string(s);
}

static json_t *token_json(const struct store_token *t) {
        return json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:b}", "id", t->id, "name", t->name, "scopes",
                         scopes_json(t->scopes), "user_id", t->user_id, "created_at", time_or_null(t->created_at),
                         "expires_at", time_or_null(t->expires_at), "last_used", time_or_null(t->last_used), "revoked",
                         t->revoked_at != 0);
}

static const struct api_field create_fields[] = {
        { "name", JSON_STRING, ACCOUNTS_TOKEN_NAME_MAX, true },
        { "scopes", JSON_ARRAY, 16, true },
        { "expires_in", JSON_INTEGER, 0 },
};

int api_tokens_create(struct http_request *r) {
        struct store_token t;
        const char *field = NULL;
        _cleanup_(api_free_secret_stringp) char *secret = NULL;
        uint32_t scopes = 0;
        int64_t expires_in = 0;

        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *o = api_json_parse(r, create_fields, ELEMENTSOF(create_fields));
        if (!o)
                return 0;
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(o, "scopes"), i, s) {
                uint32_t bit;
                if (!json_is_string(s) || accounts_scope_parse(json_string_value(s), &bit) < 0)
                        return api_bad_request(r,
                                               "'scopes' holds an unknown scope (known: documents:read, "
                                               "documents:write, audit:read, witness, accounts); nothing was changed.");
                scopes |= bit;
        }
        json_t *e = json_object_get(o, "expires_in");
        if (e) {
                json_int_t v = json_integer_value(e);
                if (v < 1 || v > ACCOUNTS_TOKEN_LIFETIME_MAX)
                        return api_bad_request(r, "'expires_in' must be 1 to 63072000 seconds; nothing was changed.");
                expires_in = (int64_t) v;
        }
        int k = accounts_token_create(vault_accounts(http_vault(r)), http_actor(r), api_json_str(o, "name"), scopes,
                                      expires_in, http_request_id(r), &t, &secret, &field);
        if (k < 0)
                return api_accounts_problem(
                        r, k, field, k == -EPERM ? "A token's scopes must be among its creator's rights." : NULL);
        json_t *body = token_json(&t);
        if (!body)
                return -ENOMEM;
        json_object_set_new(body, "token", json_string(secret));
        char *txt = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        api_json_free_secret(&body);
        if (!txt)
                return -ENOMEM;
        k = http_respond_text(r, 201, "application/json", txt, strlen(txt));
        sodium_memzero(txt, strlen(txt));
        free(txt);
        return k;
}

int api_tokens_list(struct http_request *r) {
        _cleanup_free_ struct store_token *v = NULL;
        size_t n = 0;
        int k = accounts_token_list(vault_accounts(http_vault(r)), http_actor(r), &v, &n);
        if (k < 0)
                return api_accounts_problem(r, k, NULL, "cannot list the tokens");
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
                if (json_array_append_new(arr, token_json(&v[i])) < 0) {
                        json_decref(arr);
                        arr = NULL;
                }
        if (!arr)
                return -ENOMEM;
        return http_respond_json(r, 200, json_pack("{s:o}", "tokens", arr));
}

int api_tokens_delete(struct http_request *r) {
        if (api_refuse_if_stalled(r))
                return 0;
        int k = accounts_token_revoke(vault_accounts(http_vault(r)), http_actor(r), http_param(r, "id"),
                                      http_request_id(r));
        if (k < 0)
                return api_accounts_problem(r, k, NULL, NULL);
        return http_respond_empty(r, 204);
}
