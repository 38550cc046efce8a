/* routes.c: the route table: every URL the server answers, with its handler. */
#include "api.h"

const struct http_route api_routes[] = {
        { "GET", "/healthz", "healthz", .public_ = true, .begin = api_system_healthz },
        { "GET", "/metrics", "metrics", .public_ = true, .begin = api_system_metrics },
        { "GET", "/v1/openapi.yaml", "openapi", .public_ = true, .begin = api_system_openapi },
        { "POST", "/v1/documents", "documents.create", .accepts_body = true, .begin = api_documents_create_begin,
          .body = api_documents_create_body, .end = api_documents_create_end, .cleanup = api_documents_create_cleanup },
        { "GET", "/v1/documents", "documents.list", .begin = api_documents_list },
        { "GET", "/v1/documents/{id}", "documents.get", .begin = api_documents_get },
        { "DELETE", "/v1/documents/{id}", "documents.delete", .begin = api_documents_delete },
        { "GET", "/v1/documents/{id}/content", "documents.content", .begin = api_documents_content },
        { "GET", "/v1/documents/{id}/audit", "documents.audit", .begin = api_documents_audit },
        { "GET", "/v1/documents/{id}/seal", "documents.seal", .begin = api_documents_seal },
        { "GET", "/v1/documents/{id}/evidence", "documents.evidence", .begin = api_documents_evidence },
        /* tsa.*: public_ here because [tsa] access decides (public, or any valid token) in the
         * handler; a permission table keyed by route name should keep that rule for these two */
        { "POST", "/v1/tsa", "tsa.timestamp", .public_ = true, .accepts_body = true, .begin = api_tsa_timestamp_begin,
          .body = api_tsa_timestamp_body, .end = api_tsa_timestamp_end, .cleanup = api_tsa_timestamp_cleanup },
        { "GET", "/v1/tsa/certificate", "tsa.certificate", .public_ = true, .begin = api_tsa_certificate },
        { "GET", "/v1/audit/checkpoint", "audit.checkpoint", .begin = api_audit_checkpoint },
        { "POST", "/v1/audit/checkpoint/cosignature", "audit.cosignature", .accepts_body = true,
          .begin = api_audit_cosignature_begin, .body = api_audit_cosignature_body, .end = api_audit_cosignature_end,
          .cleanup = api_audit_cosignature_cleanup },
        { "GET", "/v1/audit/verifier-key", "audit.verifier_key", .begin = api_audit_verifier_key },
        { "GET", "/v1/audit/checkpoint/timestamp", "audit.checkpoint_timestamp", .begin = api_audit_checkpoint_timestamp },
        { "GET", "/v1/audit/proof/inclusion", "audit.proof.inclusion", .begin = api_audit_proof_inclusion },
        { "GET", "/v1/audit/proof/consistency", "audit.proof.consistency", .begin = api_audit_proof_consistency },
        { "GET", "/v1/audit/entries", "audit.entries", .begin = api_audit_entries },
        /* C2SP tlog-tiles: tile/<L>/<N>[.p/<W>] with N as 1 to 3 path elements (see docs/api.md) */
        { "GET", "/v1/audit/tile/{l}/{a}", "audit.tile", .begin = api_audit_tile },
        { "GET", "/v1/audit/tile/{l}/{a}/{b}", "audit.tile", .begin = api_audit_tile },
        { "GET", "/v1/audit/tile/{l}/{a}/{b}/{c}", "audit.tile", .begin = api_audit_tile },
        API_TEST_ROUTES
};
const size_t api_routes_count = sizeof api_routes / sizeof api_routes[0];
