/* holds.c: legal holds: on one document (POST/DELETE /v1/documents/{id}/holds), on every
 * document matching a filter (POST /v1/holds), and the list of active holds (GET /v1/holds). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "core/lifecycle.h"
#include "log.h"
#include "timeutil.h"

static json_t *hold_json(const struct vault_hold *h) {
        char at[RFC3339_MAX];
        rfc3339_format(h->created_at, at);
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", h->id, "document_id", h->document_id, "reason",
                         h->reason, "case", h->case_, "created_at", at, "created_by", h->created_by);
}

static int hold_errno(struct http_request *r, int k) {
        if (k == -ENOENT)
                return http_respond_problem(r, 404, "not-found", "Not found", "There is no such document or hold.");
        if (k == -EINVAL)
                return api_bad_request(r, "reason and case must be 1 to 1024 bytes of text without control "
                                          "characters; nothing was changed.");
        return http_respond_errno(r, k, "cannot change the legal hold");
}

static const struct api_field hold_fields[] = {
        { "reason", JSON_STRING, VAULT_HOLD_TEXT_MAX, true, false },
        { "case", JSON_STRING, VAULT_HOLD_TEXT_MAX, true, false },
};

int api_holds_create(struct http_request *r) {
        struct vault_hold h;
        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_decrefp) json_t *o = api_json_parse(r, hold_fields, 2);
        if (!o)
                return 0;
        int k = vault_hold_add(http_vault(r), http_actor(r), http_param(r, "id"), api_json_str(o, "reason"),
                               api_json_str(o, "case"), http_request_id(r), &h);
        if (k < 0)
                return hold_errno(r, k);
        return http_respond_json(r, 201, hold_json(&h));
}

int api_holds_delete(struct http_request *r) {
        static const struct api_field fields[] = { { "reason", JSON_STRING, VAULT_HOLD_TEXT_MAX, true, false } };
        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_decrefp) json_t *o = api_json_parse(r, fields, 1);
        if (!o)
                return 0;
        int k = vault_hold_release(http_vault(r), http_actor(r), http_param(r, "id"), http_param(r, "hold_id"),
                                   api_json_str(o, "reason"), http_request_id(r));
        if (k < 0)
                return hold_errno(r, k);
        return http_respond_empty(r, 204);
}

int api_holds_list(struct http_request *r) {
        struct vault_hold *h = NULL;
        size_t n = 0;
        int k = vault_hold_list(http_vault(r), http_actor(r), &h, &n);
        if (k < 0)
                return http_respond_errno(r, k, "cannot list the legal holds");
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
                json_array_append_new(arr, hold_json(&h[i]));
        vault_hold_list_free(h, n);
        return http_respond_json(r, 200, json_pack("{s:o}", "holds", arr ? arr : json_array()));
}

/* POST /v1/holds {"reason","case","filter":{"class","created_after","created_before","name"}}:
 * one hold on each matching document (at most 10,000; more is a 400 asking for a narrower
 * filter, with nothing held). */
#define MANY_MAX 10000

int api_holds_create_many(struct http_request *r) {
        static const struct api_field fields[] = {
                { "reason", JSON_STRING, VAULT_HOLD_TEXT_MAX, true, false },
                { "case", JSON_STRING, VAULT_HOLD_TEXT_MAX, true, false },
                { "filter", JSON_OBJECT, 0, true, false },
        };
        struct store_document_filter f = { .created_after = INT64_MIN, .created_before = INT64_MAX, .limit = 1000 };
        const char *why = NULL, *name = NULL;

        if (api_refuse_if_stalled(r))
                return 0;
        _cleanup_(api_json_decrefp) json_t *o = api_json_parse(r, fields, 3);
        if (!o)
                return 0;
        json_t *flt = json_object_get(o, "filter");
        const char *key;
        json_t *val;
        json_object_foreach(flt, key, val) {
                const char *s = json_string_value(val);
                if (!s)
                        return api_bad_request(r, "Each member of filter is a string; nothing was changed.");
                if (strcmp(key, "class") == 0 && vault_check_class(s, &why) >= 0)
                        f.class_ = s;
                else if (strcmp(key, "name") == 0 && vault_check_name(s, &why) >= 0)
                        name = s;
                else if (strcmp(key, "created_after") == 0 && rfc3339_parse(s, &f.created_after) >= 0)
                        ;
                else if (strcmp(key, "created_before") == 0 && rfc3339_parse(s, &f.created_before) >= 0)
                        ;
                else
                        return api_bad_request(r, "filter takes class, name, created_after and created_before (RFC "
                                                  "3339 dates); nothing was changed.");
        }
        if (json_object_size(flt) == 0)
                return api_bad_request(r, "An empty filter would hold every document: give at least one member; "
                                          "nothing was changed.");
        const char *reason = api_json_str(o, "reason"), *case_ = api_json_str(o, "case");
        /* collect the ids first, so that a refusal changes nothing */
        char(*ids)[STORE_ID_LEN + 1] = NULL;
        size_t n_ids = 0;
        _cleanup_free_ char *cursor = NULL;
        int k = 0;
        do {
                struct store_document *docs = NULL;
                size_t n = 0;
                char *next = NULL;
                f.cursor = cursor;
                k = vault_document_list(http_vault(r), http_actor(r), &f, name, &docs, &n, &next);
                if (k < 0)
                        break;
                if (n_ids + n > MANY_MAX) {
                        vault_document_list_free(docs, n);
                        free(next);
                        free(ids);
                        return api_bad_request(r, "More than 10,000 documents match: narrow the filter; nothing was "
                                                  "changed.");
                }
                void *ni = realloc(ids, (n_ids + n + 1) * sizeof *ids);
                if (!ni) {
                        vault_document_list_free(docs, n);
                        free(next);
                        k = -ENOMEM;
                        break;
                }
                ids = ni;
                for (size_t i = 0; i < n; i++)
                        memcpy(ids[n_ids++], docs[i].id, STORE_ID_LEN + 1);
                vault_document_list_free(docs, n);
                free(cursor);
                cursor = next;
        } while (cursor);
        if (k < 0) {
                free(ids);
                return http_respond_errno(r, k, "cannot list the documents to hold");
        }
        json_t *arr = json_array();
        for (size_t i = 0; k >= 0 && i < n_ids; i++) {
                struct vault_hold h;
                k = vault_hold_add(http_vault(r), http_actor(r), ids[i], reason, case_, http_request_id(r), &h);
                if (k >= 0 && arr)
                        json_array_append_new(arr, hold_json(&h));
        }
        free(ids);
        if (k < 0) {
                json_decref(arr);
                /* the holds made so far stay (and are logged): a hold is never undone silently */
                return hold_errno(r, k);
        }
        return http_respond_json(
                r, 201,
                json_pack("{s:I, s:o}", "count", (json_int_t) json_array_size(arr), "holds", arr ? arr : json_array()));
}
