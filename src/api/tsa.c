/* tsa.c: /v1/tsa: the built-in RFC 3161 time-stamping authority over HTTP (RFC 3161 section 3.4:
 * application/timestamp-query in, application/timestamp-reply out), its certificate chain, and
 * /v1/documents/{id}/seal, a document's CAdES seal. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "buf.h"
#include "log.h"
#include "seal/tsa.h"

/* [tsa] access: "public", or "token": any valid API token or login session, of any role or
 * scope, but not an enrol-only session nor the bootstrap token (which reach only what their
 * rules in src/http/authz.c name). The permission table marks the tsa.* routes public and
 * leaves this choice here, as it does for /metrics. 0: allowed; 1: answered. */
static int tsa_allowed(struct http_request *r) {
        if (strcmp(vault_get_config(http_vault(r))->tsa_access, "public") == 0)
                return 0;
        int k = http_authenticate(r);
        if (k == -EACCES) {
                if (http_header_add(r, "WWW-Authenticate", "Bearer realm=\"coffre\"") < 0)
                        return -ENOMEM;
                k = http_respond_problem(r, 401, "unauthorized", "Unauthorized", "A valid bearer token is required.");
                return k < 0 ? k : 1;
        }
        if (k < 0)
                return k;
        enum vault_credential cred = http_actor(r)->credential;
        if (cred != VAULT_CRED_TOKEN && cred != VAULT_CRED_SESSION) {
                k = http_respond_problem(r, 403, "forbidden", "Forbidden",
                                         "The time-stamping authority needs an API token or a login session "
                                         "([tsa] access = token).");
                return k < 0 ? k : 1;
        }
        return 0;
}

static bool content_type_is(const char *ct, const char *want) {
        size_t n = strlen(want);
        return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

int api_tsa_timestamp_begin(struct http_request *r) {
        int64_t cl = http_content_length(r);
        int k = tsa_allowed(r);

        if (k != 0)
                return k < 0 ? k : 0;
        if (!content_type_is(http_header(r, "Content-Type"), "application/timestamp-query"))
                return http_respond_problem(r, 415, "unsupported-media-type", "Unsupported media type",
                                            "The body must be an RFC 3161 TimeStampReq (application/timestamp-query).");
        if (cl > (int64_t) TSA_REQUEST_MAX)
                return http_respond_problem(r, 413, "payload-too-large", "Payload too large",
                                            "A timestamp query is at most 4 KiB.");
        struct buf *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        buf_init(b, TSA_REQUEST_MAX);
        http_set_state(r, b);
        return 0;
}

int api_tsa_timestamp_body(struct http_request *r, const uint8_t *p, size_t n) {
        struct buf *b = http_state(r);
        if (!b)
                return -EIO;
        if (n > TSA_REQUEST_MAX - b->len)
                return -E2BIG; /* answered 413 at the end of the body */
        return buf_append(b, p, n);
}

int api_tsa_timestamp_end(struct http_request *r) {
        struct buf *b = http_state(r);
        uint8_t *reply = NULL;
        size_t len = 0;

        if (!b)
                return -EIO;
        int k = vault_tsa_respond(http_vault(r), b->data, b->len, &reply, &len);
        if (k == -EPIPE || k == -ETIMEDOUT) {
                if (http_header_add(r, "Retry-After", "5") < 0)
                        return -ENOMEM;
                return http_respond_problem(r, 503, "signer-unavailable", "Service unavailable",
                                            "The signer is restarting; try again shortly.");
        }
        if (k < 0)
                return http_respond_errno(r, k, "cannot answer the timestamp query");
        k = http_respond_text(r, 200, "application/timestamp-reply", (const char *) reply, len);
        free(reply);
        return k;
}

void api_tsa_timestamp_cleanup(struct http_request *r) {
        struct buf *b = http_state(r);
        if (b) {
                http_set_state(r, NULL);
                buf_free(b);
                free(b);
        }
}

int api_tsa_certificate(struct http_request *r) {
        const char *pem = vault_tsa_chain(http_vault(r));
        int k = tsa_allowed(r);

        if (k != 0)
                return k < 0 ? k : 0;
        if (!pem)
                return http_respond_errno(r, -EIO, "the TSA is not set up");
        return http_respond_text(r, 200, "application/pem-certificate-chain", pem, strlen(pem));
}

int api_documents_seal(struct http_request *r) {
        uint8_t *p = NULL;
        size_t n = 0;
        int k = vault_document_seal(http_vault(r), http_actor(r), http_param(r, "id"), &p, &n);

        if (k == -ENOENT)
                return api_document_missing(r, "There is no such document, or it was stored without a seal.");
        if (k < 0)
                return http_respond_errno(r, k, "cannot read the seal");
        k = http_respond_text(r, 200, "application/pkcs7-signature", (const char *) p, n);
        free(p);
        return k;
}
