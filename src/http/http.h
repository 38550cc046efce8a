/* http.h: what a resource handler (src/api/) sees of an HTTP request: parameters, the caller, and
 * ways to answer. Hides libmicrohttpd; knows nothing about SQL or storage. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "core/vault.h"
#include "macro.h"

struct http_request;

/* The browser session's cookie (docs/security.md, "Web interface"). */
#define HTTP_SESSION_COOKIE "__Host-coffre_session"

/* Produces up to max bytes of a streamed body at pos; returns the count, 0 at the end, or a
 * negative errno to abort the connection (the client sees a truncated body). */
typedef ssize_t (*http_stream_fn)(void *ud, uint64_t pos, uint8_t *buf, size_t max);

struct http_route {
        const char *method;  /* "GET", "POST", "DELETE" */
        const char *pattern; /* "/v1/documents/{id}/content": {name} matches one non-empty segment */
        const char *name;    /* stable label for metrics and logs, e.g. "documents.content" */
        bool public_;        /* no token needed */
        bool accepts_body;   /* streamed request body (body() gets each chunk) */
        /* Called once the headers are in. Must answer, unless accepts_body. */
        int (*begin)(struct http_request *r);
        int (*body)(struct http_request *r, const uint8_t *p, size_t n);
        /* Called after the whole body; must answer. */
        int (*end)(struct http_request *r);
        /* Called when the request is over, answered or not (client gone, shutdown). Frees state. */
        void (*cleanup)(struct http_request *r);
};

/* Request accessors */
const char *http_param(struct http_request *r, const char *name);   /* from the path pattern */
const char *http_query(struct http_request *r, const char *name);   /* NULL when absent */
const char *http_header(struct http_request *r, const char *name);  /* NULL when absent */
const char *http_request_id(struct http_request *r);
const struct vault_actor *http_actor(struct http_request *r);        /* NULL on public routes */
struct vault *http_vault(struct http_request *r);
void *http_state(struct http_request *r);
void http_set_state(struct http_request *r, void *state);
/* Content-Length of the request, or -1 when absent (chunked). */
int64_t http_content_length(struct http_request *r);
uint64_t http_max_body(struct http_request *r);
/* For a public route that checks the caller itself: checks the bearer token, if any, and makes
 * http_actor() answer. 0, -EACCES (no or bad token) or another negative errno. */
int http_authenticate(struct http_request *r) _warn_unused_;
/* The client's address as text (INET6_ADDRSTRLEN bytes suffice). */
int http_peer_address(struct http_request *r, char *out, size_t size) _warn_unused_;
/* true when the client connects from a loopback address (127.0.0.0/8, ::1) */
bool http_peer_is_loopback(struct http_request *r);
/* true once the request already has its answer queued */
bool http_answered(struct http_request *r);

/* Answers. Each returns 0 or a negative errno; exactly one per request. */
int http_header_add(struct http_request *r, const char *name, const char *value) _warn_unused_;
int http_respond_json(struct http_request *r, unsigned status, json_t *body) _warn_unused_; /* steals body */
int http_respond_text(struct http_request *r, unsigned status, const char *content_type, const char *body, size_t len)
        _warn_unused_;
int http_respond_empty(struct http_request *r, unsigned status) _warn_unused_;
/* Takes ownership of ud in every case: free_ud(ud) runs when the request is over. */
int http_respond_stream(struct http_request *r, unsigned status, const char *content_type, uint64_t size,
                        http_stream_fn fn, void *ud, void (*free_ud)(void *ud)) _warn_unused_;
/* RFC 9457 problem+json; type = "urn:coffre:problem:" slug. detail may be NULL. */
int http_respond_problem(struct http_request *r, unsigned status, const char *slug, const char *title,
                         const char *detail) _warn_unused_;
/* The same with extra members (an object, not stolen; NULL for none), for a problem that carries
 * data, such as the enrol-only token of totp-enrolment-required. */
int http_respond_problem_extra(struct http_request *r, unsigned status, const char *slug, const char *title,
                               const char *detail, json_t *extra) _warn_unused_;
/* Maps a negative errno from a lower layer to the usual problem answer (404, 409, 500, 507...). */
int http_respond_errno(struct http_request *r, int err, const char *what) _warn_unused_;

/* The server */
struct http_server_options {
        const char *listen;             /* "127.0.0.1:8443", "[::1]:0" */
        const char *port_file;          /* where to write the bound port, or NULL */
        const char *cert_pem, *key_pem; /* TLS pair as PEM text */
        uint64_t max_body;
        unsigned max_connections, max_connections_per_ip, idle_timeout, shutdown_timeout;
        unsigned header_timeout;                  /* seconds from accept to the end of the headers */
        unsigned body_min_rate, body_rate_window; /* bytes/s a body must keep up over each window (s) */
        int64_t tls_not_after;                    /* the certificate's notAfter (epoch seconds), for /metrics */
        const struct http_route *routes;
        size_t n_routes;
        struct vault *vault;
        /* Called once the socket listens and the port file is written, before the server starts
         * any thread (the last moment to confine every thread alike); a negative errno aborts. */
        int (*before_threads)(void *ud);
        void *before_threads_ud;
};

struct http_server;
int http_server_start(const struct http_server_options *o, struct http_server **ret) _warn_unused_;
uint16_t http_server_port(const struct http_server *s);
/* Stops accepting, lets in-flight requests finish (up to shutdown_timeout), then stops. */
void http_server_stop(struct http_server *s);
/* Prometheus text of the server's own counters, appended to b. */
int http_server_metrics(struct http_server *s, struct buf *b) _warn_unused_;
struct http_server *http_request_server(struct http_request *r);
