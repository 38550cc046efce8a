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
};
const size_t api_routes_count = sizeof api_routes / sizeof api_routes[0];
