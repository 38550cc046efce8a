/* api.h: the route table of the HTTP API (one file per resource under src/api/). */
#pragma once

#include <stddef.h>

#include "http/http.h"

extern const struct http_route api_routes[];
extern const size_t api_routes_count;

/* Resource handlers, registered in routes.c */
int api_documents_create_begin(struct http_request *r);
int api_documents_create_body(struct http_request *r, const uint8_t *p, size_t n);
int api_documents_create_end(struct http_request *r);
void api_documents_create_cleanup(struct http_request *r);
int api_documents_list(struct http_request *r);
int api_documents_get(struct http_request *r);
int api_documents_content(struct http_request *r);
int api_documents_delete(struct http_request *r);
int api_documents_update(struct http_request *r);
int api_holds_create(struct http_request *r);
int api_holds_delete(struct http_request *r);
int api_holds_list(struct http_request *r);
int api_holds_create_many(struct http_request *r);

int api_audit_checkpoint(struct http_request *r);
int api_audit_verifier_key(struct http_request *r);
int api_audit_checkpoint_timestamp(struct http_request *r);
int api_audit_proof_inclusion(struct http_request *r);
int api_audit_proof_consistency(struct http_request *r);
int api_audit_entries(struct http_request *r);
int api_audit_cosignature_begin(struct http_request *r);
int api_audit_cosignature_body(struct http_request *r, const uint8_t *p, size_t n);
int api_audit_cosignature_end(struct http_request *r);
void api_audit_cosignature_cleanup(struct http_request *r);
int api_audit_tile(struct http_request *r);
int api_documents_audit(struct http_request *r);
int api_documents_seal(struct http_request *r);
int api_documents_evidence(struct http_request *r);

int api_tsa_timestamp_begin(struct http_request *r);
int api_tsa_timestamp_body(struct http_request *r, const uint8_t *p, size_t n);
int api_tsa_timestamp_end(struct http_request *r);
void api_tsa_timestamp_cleanup(struct http_request *r);
int api_tsa_certificate(struct http_request *r);

int api_system_healthz(struct http_request *r);
int api_system_metrics(struct http_request *r);
int api_system_openapi(struct http_request *r);
/* The web interface (web.c): GET / and GET /ui/{file}, embedded files. */
int api_web_index(struct http_request *r);
int api_web_file(struct http_request *r);
/* For handlers that record audit entries: answers 503 with Retry-After (and returns 1) while
 * no checkpoint has been possible for longer than [audit] stall_timeout; 0 otherwise. */
int api_refuse_if_stalled(struct http_request *r);

/* Probes of the sandbox for the integration tests (testhook.c): only in a build made with
 * meson -Dtest_hooks=true, and not part of the API (nor of docs/openapi.yaml). */
#ifdef COFFRE_TEST_HOOKS
int api_test_open(struct http_request *r);
int api_test_syscall(struct http_request *r);
int api_test_clock(struct http_request *r);
#define API_TEST_ROUTES                                                                    \
        { "GET", "/v1/_test/open", "test.open", .begin = api_test_open },                  \
                { "GET", "/v1/_test/syscall", "test.syscall", .begin = api_test_syscall }, \
                { "POST", "/v1/_test/clock", "test.clock", .public_ = true, .begin = api_test_clock },
#else
#define API_TEST_ROUTES
#endif

/* JSON bodies of the account routes (body.c): begin/chunk/cleanup collect the body (64 KiB at
 * most); api_json_parse parses it strictly against fields, or answers 400/413 and returns NULL. */
struct api_field {
        const char *name;
        int type;   /* JSON_STRING, JSON_INTEGER, JSON_TRUE (a boolean), JSON_ARRAY or JSON_OBJECT */
        size_t max; /* bytes of a string, elements of an array */
        bool required;
        bool nullable;
};
int api_json_begin(struct http_request *r);
int api_json_chunk(struct http_request *r, const uint8_t *p, size_t n);
void api_json_cleanup(struct http_request *r);
json_t *api_json_parse(struct http_request *r, const struct api_field *fields, size_t n);
const char *api_json_str(json_t *o, const char *name);
/* For _cleanup_: wipes the strings of a parsed body (passwords, codes) and frees it. */
void api_json_free_secret(json_t **o);

/* A check of the caller's own secret (current password, second-factor code) under the login
 * limiter, per account: begin answers 429 with Retry-After (or 503) and returns 1 when the
 * attempt is refused, 0 to go on, negative on failure; end records the outcome. */
#define API_OWN_LIMIT_KEY_MAX 48
int api_own_secret_check_begin(struct http_request *r) _warn_unused_;
void api_own_secret_check_end(struct http_request *r, bool failed);
int api_bad_request(struct http_request *r, const char *detail);
/* For _cleanup_ of a parsed body without secrets. */
static inline void api_json_decrefp(json_t **o) {
        json_decref(*o);
}
/* True when the request came without a body (an optional JSON body). */
bool api_json_empty(struct http_request *r);
/* For _cleanup_: wipes and frees a secret string (a bearer token). */
void api_free_secret_stringp(char **s);
/* The problem answer of an error of core/accounts (field: the offending member, or NULL). */
int api_accounts_problem(struct http_request *r, int err, const char *field, const char *what);

int api_users_create(struct http_request *r);
int api_users_list(struct http_request *r);
int api_users_me(struct http_request *r);
int api_users_password(struct http_request *r);
int api_users_get(struct http_request *r);
int api_users_update(struct http_request *r);
int api_users_delete(struct http_request *r);
int api_orgs_create(struct http_request *r);
int api_orgs_list(struct http_request *r);
int api_orgs_get(struct http_request *r);
int api_orgs_update(struct http_request *r);
int api_auth_login(struct http_request *r);
int api_auth_logout(struct http_request *r);
int api_auth_logout_all(struct http_request *r);
int api_totp_enroll(struct http_request *r);
int api_totp_confirm(struct http_request *r);
int api_totp_disable(struct http_request *r);
int api_tokens_create(struct http_request *r);
int api_tokens_list(struct http_request *r);
int api_tokens_delete(struct http_request *r);

/* JSON of a document as the API shows it. */
json_t *api_document_json(const struct store_document *d);
/* A document {id} that is not there: 410 "erased" with its tombstone when it was erased (its
 * content and seal are gone), else 404 "not-found" with detail. */
int api_document_missing(struct http_request *r, const char *detail);
