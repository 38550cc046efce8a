/* orgs.c: /v1/orgs: organisations (tenants). The operator creates, lists and suspends them; an
 * organisation's owners and admins read and change its own settings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "core/accounts.h"
#include "timeutil.h"

static json_t *org_json(const struct store_org *o) {
        char created[RFC3339_MAX];
        rfc3339_format(o->created_at, created);
        return json_pack("{s:s, s:s, s:s, s:b, s:s, s:s}", "id", o->id, "name", o->name, "status", o->status,
                         "require_2fa", o->require_2fa, "created_at", created, "time_zone", o->time_zone);
}

static const struct api_field create_fields[] = {
        { "name", JSON_STRING, ACCOUNTS_ORG_NAME_MAX, true },
};

int api_orgs_create(struct http_request *r) {
        struct store_org o;
        const char *field = NULL;
        char loc[64];

        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *b = api_json_parse(r, create_fields, ELEMENTSOF(create_fields));
        if (!b)
                return 0;
        int k = accounts_org_create(vault_accounts(http_vault(r)), http_actor(r), api_json_str(b, "name"),
                                    http_request_id(r), &o, &field);
        if (k < 0)
                return api_accounts_problem(r, k, field,
                                            k == -EPERM ? "Only the operator creates organisations." : NULL);
        snprintf(loc, sizeof loc, "/v1/orgs/%s", o.id);
        if (http_header_add(r, "Location", loc) < 0)
                return -ENOMEM;
        return http_respond_json(r, 201, org_json(&o));
}

int api_orgs_list(struct http_request *r) {
        _cleanup_free_ struct store_org *v = NULL;
        size_t n = 0;
        int k = accounts_org_list(vault_accounts(http_vault(r)), http_actor(r), &v, &n);
        if (k < 0)
                return api_accounts_problem(r, k, NULL, "cannot list the organisations");
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
                if (json_array_append_new(arr, org_json(&v[i])) < 0) {
                        json_decref(arr);
                        arr = NULL;
                }
        if (!arr)
                return -ENOMEM;
        return http_respond_json(r, 200, json_pack("{s:o}", "orgs", arr));
}

int api_orgs_get(struct http_request *r) {
        struct store_org o;
        int k = accounts_org_get(vault_accounts(http_vault(r)), http_actor(r), http_param(r, "id"), &o);
        if (k < 0)
                return api_accounts_problem(r, k, NULL, "cannot read the organisation");
        return http_respond_json(r, 200, org_json(&o));
}

static const struct api_field update_fields[] = {
        { "name", JSON_STRING, ACCOUNTS_ORG_NAME_MAX },
        { "status", JSON_STRING, 15 },
        { "require_2fa", JSON_TRUE, 0 },
        { "time_zone", JSON_STRING, 63 },
};

int api_orgs_update(struct http_request *r) {
        struct store_org o;
        const char *field = NULL;

        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_free_secret) json_t *b = api_json_parse(r, update_fields, ELEMENTSOF(update_fields));
        if (!b)
                return 0;
        json_t *req = json_object_get(b, "require_2fa");
        struct accounts_org_patch p = {
                .name = api_json_str(b, "name"),
                .status = api_json_str(b, "status"),
                .require_2fa = req ? json_is_true(req) : -1,
                .time_zone = api_json_str(b, "time_zone"),
        };
        int k = accounts_org_update(vault_accounts(http_vault(r)), http_actor(r), http_param(r, "id"), &p,
                                    http_request_id(r), &o, &field);
        if (k < 0)
                return api_accounts_problem(r, k, field,
                                            k == -EPERM
                                                    ? "Settings are changed by the organisation's owners and admins; "
                                                      "the status by the operator."
                                                    : NULL);
        return http_respond_json(r, 200, org_json(&o));
}
