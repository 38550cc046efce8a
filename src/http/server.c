/* server.c: the HTTPS server on libmicrohttpd + GnuTLS: TLS policy, limits, routing, token
 * authentication, request bookkeeping (ids, logs, metrics) and graceful shutdown.
 *
 * Who may call a route is the permission table's (authz.c), asked here before any handler.
 *
 * libmicrohttpd calls on_request several times per request: once when the headers are in, once
 * per body chunk, and once more at the end of the body. An answer can only be queued on the first
 * or the last call, so errors met while the body streams in are remembered and answered at the end. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "authz.h"
#include "core/accounts.h"
#include "fileio.h"
#include "hex.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

/* TLS 1.3 and 1.2 only, AEAD ciphers only, ECDHE only, X25519 first. */
#define TLS_PRIORITIES                                                                                    \
        "NONE:+VERS-TLS1.3:+VERS-TLS1.2:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:+AEAD:+ECDHE-ECDSA:" \
        "+ECDHE-RSA:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+SIGN-ALL:+COMP-NULL:+CTYPE-X509:%SERVER_PRECEDENCE"

/* The Content-Security-Policy and Permissions-Policy of every answer (docs/security.md). */
#define HTTP_CSP                                                                                              \
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
#define HTTP_PERMISSIONS_POLICY                                                                       \
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), " \
        "payment=(), usb=(), interest-cohort=()"

#define MAX_PARAMS 4
#define DISCARD_AFTER_LIMIT ((uint64_t) 64 * 1024 * 1024)
#define MAX_EXTRA_HEADERS 8

/* A connection from accept to close, watched for the header deadline. */
struct conn_watch {
        struct conn_watch *prev, *next;
        int fd;
        uint64_t deadline_ns; /* 0 while a request is in (its body has the rate check instead) */
        bool cut;
};

struct http_server {
        struct MHD_Daemon *daemon;
        struct http_server_options o;
        struct metrics *metrics;
        int listen_fd;
        uint16_t port;
        atomic_int in_flight;
        atomic_bool stopping;
        /* connections waiting for a header block, and the thread that cuts the late ones */
        pthread_mutex_t watch_lock;
        pthread_cond_t watch_wake;
        struct conn_watch *watched;
        pthread_t watchdog;
        bool watchdog_started, watchdog_stop;
};

struct http_request {
        struct http_server *server;
        struct MHD_Connection *conn;
        const struct http_route *route;
        const char *route_name;
        char method[16];
        char request_id[17];
        char param_names[MAX_PARAMS][16];
        char *param_values[MAX_PARAMS];
        size_t n_params;
        struct vault_actor actor;
        bool authenticated;
        void *state;
        char *hdr_names[MAX_EXTRA_HEADERS], *hdr_values[MAX_EXTRA_HEADERS];
        size_t n_hdr;
        unsigned status;
        bool answered;
        bool begun; /* first_call() ran */
        bool finished_body;
        /* an error met while the body streamed in, answered at the end */
        int pending_err;
        uint64_t bytes_in;
        _Atomic uint64_t bytes_out;
        uint64_t start_ns;
        /* body rate: bytes received since window_ns */
        uint64_t window_ns, window_bytes;
        /* streamed response */
        http_stream_fn stream_fn;
        void *stream_ud;
        void (*stream_free)(void *ud);
};

/* ---- accessors ---- */

const char *http_param(struct http_request *r, const char *name) {
        for (size_t i = 0; i < r->n_params; i++)
                if (strcmp(r->param_names[i], name) == 0)
                        return r->param_values[i];
        return NULL;
}

const char *http_query(struct http_request *r, const char *name) {
        return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(struct http_request *r, const char *name) {
        return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_request_id(struct http_request *r) {
        return r->request_id;
}

const struct vault_actor *http_actor(struct http_request *r) {
        return r->authenticated ? &r->actor : NULL;
}

struct vault *http_vault(struct http_request *r) {
        return r->server->o.vault;
}

void *http_state(struct http_request *r) {
        return r->state;
}

void http_set_state(struct http_request *r, void *state) {
        r->state = state;
}

uint64_t http_max_body(struct http_request *r) {
        return r->server->o.max_body;
}

bool http_answered(struct http_request *r) {
        return r->answered;
}

struct http_server *http_request_server(struct http_request *r) {
        return r->server;
}

int64_t http_content_length(struct http_request *r) {
        const char *v = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (!v || !*v)
                return -1;
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (errno || *end || n > INT64_MAX)
                return -1;
        return (int64_t) n;
}

/* ---- answers ---- */

int http_header_add(struct http_request *r, const char *name, const char *value) {
        if (r->n_hdr >= MAX_EXTRA_HEADERS)
                return -E2BIG;
        char *n = strdup(name), *v = strdup(value);
        if (!n || !v) {
                free(n);
                free(v);
                return -ENOMEM;
        }
        r->hdr_names[r->n_hdr] = n;
        r->hdr_values[r->n_hdr++] = v;
        return 0;
}

static int queue(struct http_request *r, unsigned status, struct MHD_Response *resp) {
        if (!resp)
                return -ENOMEM;
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=63072000; includeSubDomains");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        /* the web interface's policy, on every answer: a JSON or problem answer opened in a
         * browser is as confined as a page (docs/security.md, "Web interface") */
        MHD_add_response_header(resp, "Content-Security-Policy", HTTP_CSP);
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(resp, "Permissions-Policy", HTTP_PERMISSIONS_POLICY);
        MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
        MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
        bool cache_set = false;
        for (size_t i = 0; i < r->n_hdr; i++)
                cache_set |= strcasecmp(r->hdr_names[i], "Cache-Control") == 0;
        if (!cache_set)
                MHD_add_response_header(resp, "Cache-Control", "no-store");
        MHD_add_response_header(resp, "X-Request-Id", r->request_id);
        for (size_t i = 0; i < r->n_hdr; i++)
                MHD_add_response_header(resp, r->hdr_names[i], r->hdr_values[i]);
        enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
        MHD_destroy_response(resp);
        if (ok != MHD_YES)
                return -EIO;
        r->status = status;
        r->answered = true;
        return 0;
}

int http_respond_text(struct http_request *r, unsigned status, const char *content_type, const char *body, size_t len) {
        if (r->answered)
                return -EALREADY;
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);
        if (resp && content_type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        r->bytes_out += len;
        return queue(r, status, resp);
}

int http_respond_json(struct http_request *r, unsigned status, json_t *body) {
        char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(body);
        if (!s)
                return http_respond_problem(r, 500, "internal", "Internal error", NULL);
        int k = http_respond_text(r, status, "application/json", s, strlen(s));
        free(s);
        return k;
}

int http_respond_empty(struct http_request *r, unsigned status) {
        return http_respond_text(r, status, NULL, "", 0);
}

int http_respond_problem(struct http_request *r, unsigned status, const char *slug, const char *title,
                         const char *detail) {
        return http_respond_problem_extra(r, status, slug, title, detail, NULL);
}

int http_respond_problem_extra(struct http_request *r, unsigned status, const char *slug, const char *title,
                               const char *detail, json_t *extra) {
        char type[96];
        snprintf(type, sizeof type, "urn:coffre:problem:%s", slug);
        json_t *o = json_object();
        if (!o)
                return -ENOMEM;
        json_object_set_new(o, "type", json_string(type));
        json_object_set_new(o, "title", json_string(title));
        json_object_set_new(o, "status", json_integer(status));
        if (detail)
                json_object_set_new(o, "detail", json_string(detail));
        if (extra)
                json_object_update(o, extra);
        json_object_set_new(o, "request_id", json_string(r->request_id));
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!s)
                return -ENOMEM;
        int k = http_respond_text(r, status, "application/problem+json", s, strlen(s));
        /* extra members may be secrets (an enrol-only token) */
        if (extra)
                sodium_memzero(s, strlen(s));
        free(s);
        return k;
}

int http_respond_errno(struct http_request *r, int err, const char *what) {
        switch (err) {
        case -ENOENT:
                return http_respond_problem(r, 404, "not-found", "Not found", what);
        case -EPERM:
        case -EACCES:
                return http_respond_problem(r, 403, "forbidden", "Forbidden", what);
        case -EINVAL:
                return http_respond_problem(r, 400, "bad-request", "Bad request", what);
        case -ENOSPC:
        case -EDQUOT:
                return http_respond_problem(r, 507, "insufficient-storage", "Insufficient storage",
                                            "The vault's disk is full; the request changed nothing.");
        case -EFBIG:
        case -E2BIG:
                return http_respond_problem(r, 413, "payload-too-large", "Payload too large", what);
        case -EEXIST:
                return http_respond_problem(r, 409, "conflict", "Conflict", what);
        default:
                log_error("%s: %s (request %s)", what ? what : "request failed", strerror(-err), r->request_id);
                return http_respond_problem(r, 500, "internal", "Internal error",
                                            "The request failed inside the vault; it has been logged.");
        }
}

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max) {
        struct http_request *r = cls;
        ssize_t n = r->stream_fn(r->stream_ud, pos, (uint8_t *) buf, max);
        if (n < 0) {
                log_error("response stream failed at byte %llu: %s (request %s)", (unsigned long long) pos,
                          strerror((int) -n), r->request_id);
                return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (n == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
        r->bytes_out += (uint64_t) n;
        return n;
}

int http_respond_stream(struct http_request *r, unsigned status, const char *content_type, uint64_t size,
                        http_stream_fn fn, void *ud, void (*free_ud)(void *ud)) {
        if (r->answered) {
                if (free_ud)
                        free_ud(ud);
                return -EALREADY;
        }
        r->stream_fn = fn;
        r->stream_ud = ud;
        r->stream_free = free_ud;
        /* r outlives the response: it is freed in on_completed, after the last byte is sent */
        struct MHD_Response *resp = MHD_create_response_from_callback(size, 256 * 1024, stream_cb, r, NULL);
        if (resp && content_type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        return queue(r, status, resp);
}

/* ---- routing ---- */

/* Matches url against pattern, filling path parameters. 1 = match, 0 = no match. */
static int match(struct http_request *r, const char *pattern, const char *url) {
        const char *p = pattern, *u = url;
        size_t n = 0;

        while (*p && *u) {
                if (*p == '{') {
                        const char *pe = strchr(p, '}');
                        const char *ue = strchr(u, '/');
                        if (!pe)
                                return 0;
                        if (!ue)
                                ue = u + strlen(u);
                        if (ue == u || n >= MAX_PARAMS || (size_t) (pe - p - 1) >= sizeof r->param_names[0])
                                return 0;
                        snprintf(r->param_names[n], sizeof r->param_names[n], "%.*s", (int) (pe - p - 1), p + 1);
                        free(r->param_values[n]);
                        r->param_values[n] = strndup(u, (size_t) (ue - u));
                        if (!r->param_values[n])
                                return 0;
                        n++;
                        p = pe + 1;
                        u = ue;
                        continue;
                }
                if (*p != *u)
                        return 0;
                p++;
                u++;
        }
        if (*p || *u)
                return 0;
        r->n_params = n;
        return 1;
}

/* Finds the route; *ret_allow lists the methods of routes whose path matches when none fits the method. */
static const struct http_route *route_find(struct http_request *r, const char *method, const char *url,
                                           struct buf *allow, bool *ret_path_matched) {
        const struct http_server_options *o = &r->server->o;
        const struct http_route *found = NULL;
        *ret_path_matched = false;
        for (size_t i = 0; i < o->n_routes; i++) {
                if (!match(r, o->routes[i].pattern, url))
                        continue;
                *ret_path_matched = true;
                if (strcmp(o->routes[i].method, method) == 0) {
                        found = &o->routes[i];
                        break;
                }
                if (allow->len && buf_append_str(allow, ", ") < 0)
                        continue;
                if (buf_append_str(allow, o->routes[i].method) < 0)
                        continue;
        }
        if (found) /* re-match to leave the right parameters */
                match(r, found->pattern, url);
        return found;
}

static const char *bearer_token(struct http_request *r) {
        const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
                return NULL;
        h += 7;
        while (*h == ' ')
                h++;
        return *h ? h : NULL;
}

/* The caller's credential: the bearer of Authorization, else the browser session's cookie
 * (*ret_cookie then true). NULL when there is neither. */
static const char *credential(struct http_request *r, bool *ret_cookie) {
        const char *tok = bearer_token(r);
        *ret_cookie = false;
        if (tok)
                return tok;
        tok = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, HTTP_SESSION_COOKIE);
        if (!tok || !*tok)
                return NULL;
        *ret_cookie = true;
        return tok;
}

/* A cookie is sent by the browser whoever made the page: a call that may change something
 * (any method but GET and HEAD) is taken with it only with the session's X-CSRF-Token. */
static bool csrf_ok(struct http_request *r, const char *cookie_token) {
        if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
                return true;
        return accounts_csrf_check(cookie_token, http_header(r, "X-CSRF-Token"));
}

int http_authenticate(struct http_request *r) {
        if (r->authenticated)
                return 0;
        bool cookie;
        const char *tok = credential(r, &cookie);
        if (!tok)
                return -EACCES;
        struct accounts *a = vault_accounts(r->server->o.vault);
        int k = accounts_authenticate(a, tok, accounts_now_ms(a), &r->actor);
        if (k == -ENOKEY)
                return -EACCES; /* a token waiting for its user's enrolment */
        if (k < 0)
                return k;
        if (cookie && !csrf_ok(r, tok))
                return -EACCES;
        r->authenticated = true;
        return 0;
}

int http_peer_address(struct http_request *r, char *out, size_t size) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        const void *addr;
        if (!sa)
                return -ENOTCONN;
        if (sa->sa_family == AF_INET)
                addr = &((const struct sockaddr_in *) sa)->sin_addr;
        else if (sa->sa_family == AF_INET6)
                addr = &((const struct sockaddr_in6 *) sa)->sin6_addr;
        else
                return -EAFNOSUPPORT;
        return inet_ntop(sa->sa_family, addr, out, (socklen_t) size) ? 0 : -ENOSPC;
}

bool http_peer_is_loopback(struct http_request *r) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        if (!sa)
                return false;
        if (sa->sa_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24) == 127;
        if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
        }
        return false;
}

/* ---- request life cycle ---- */

static void request_free(struct http_request *r) {
        if (!r)
                return;
        for (size_t i = 0; i < MAX_PARAMS; i++)
                free(r->param_values[i]);
        for (size_t i = 0; i < r->n_hdr; i++) {
                free(r->hdr_names[i]);
                free(r->hdr_values[i]);
        }
        if (r->stream_free)
                r->stream_free(r->stream_ud);
        free(r);
}

static bool has_body(struct http_request *r) {
        const char *te = http_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        return http_content_length(r) > 0 || (te && *te);
}

/* An answer that could not be queued (out of memory): the connection is closed rather than
 * left waiting for an answer that will never come. */
static enum MHD_Result sent(struct http_request *r, int k) {
        if (k >= 0)
                return MHD_YES;
        log_error("request %s: cannot queue the answer (%s); connection closed", r->request_id, strerror(-k));
        return MHD_NO;
}

static enum MHD_Result first_call(struct http_server *s, struct http_request *r, const char *url, const char *method) {
        _cleanup_buf_ struct buf allow = {}; /* freed on the early 503 return */
        bool path_matched;

        if (atomic_load(&s->stopping)) {
                r->route_name = "shutting-down";
                int k = http_header_add(r, "Connection", "close");
                if (k >= 0)
                        k = http_respond_problem(r, 503, "shutting-down", "Service unavailable",
                                                 "The vault is shutting down; try again shortly.");
                return sent(r, k);
        }

        buf_init(&allow, 256);
        snprintf(r->method, sizeof r->method, "%s", method);
        r->route = route_find(r, method, url, &allow, &path_matched);
        r->route_name = r->route ? r->route->name : (path_matched ? "method-not-allowed" : "not-found");
        if (!r->route) {
                if (!path_matched)
                        return sent(r, http_respond_problem(r, 404, "not-found", "Not found",
                                                            "There is no such resource."));
                int k = http_header_add(r, "Allow", buf_str(&allow) ? buf_str(&allow) : "");
                if (k >= 0)
                        k = http_respond_problem(r, 405, "method-not-allowed", "Method not allowed",
                                                 "This resource does not support that method.");
                return sent(r, k);
        }
        if (!r->route->public_) {
                bool cookie;
                const char *tok = credential(r, &cookie);
                struct accounts *a = vault_accounts(s->o.vault);
                int k = tok ? accounts_authenticate(a, tok, accounts_now_ms(a), &r->actor) : -EACCES;
                if (k == -ENOKEY)
                        return sent(r, http_respond_problem(r, 403, "totp-enrolment-required",
                                                            "Second factor enrolment required",
                                                            "This token's user must enrol a second factor "
                                                            "(log in to enrol); until then the token is refused."));
                if (k < 0) {
                        if (k != -EACCES)
                                log_error("token check failed: %s", strerror(-k));
                        k = http_header_add(r, "WWW-Authenticate", "Bearer realm=\"coffre\"");
                        if (k >= 0)
                                k = http_respond_problem(r, 401, "unauthorized", "Unauthorized",
                                                         tok ? "The token is not valid."
                                                             : "A bearer token is required.");
                        return sent(r, k);
                }
                if (cookie && !csrf_ok(r, tok)) {
                        log_fields(LOG_LEVEL_WARN, "csrf-refused", "request_id", r->request_id, "route", r->route->name,
                                   "actor", r->actor.actor_id, NULL);
                        return sent(r, http_respond_problem(r, 403, "csrf", "Forbidden",
                                                            "A call made with the session cookie must carry the "
                                                            "session's X-CSRF-Token header."));
                }
                r->authenticated = true;
        }
        /* the permission table, before any handler: a route it does not know is refused */
        if (authz_check(r->route, http_actor(r)) < 0) {
                static const char *const creds[] = { "token", "session", "enrol", "bootstrap" };
                const char *cred = r->actor.credential <= VAULT_CRED_BOOTSTRAP ? creds[r->actor.credential] : "?";
                log_fields(LOG_LEVEL_WARN, "forbidden", "request_id", r->request_id, "route", r->route->name, "actor",
                           r->authenticated ? r->actor.actor_id : "-", "role", r->authenticated ? r->actor.role : "-",
                           "credential", r->authenticated ? cred : "-", NULL);
                const char *why = "This credential may not call this route: its role, its token's scopes or its "
                                  "kind do not allow it (see docs/security.md).";
                if (r->authenticated && r->actor.credential == VAULT_CRED_ENROL)
                        why = "This session may only enrol a second factor (and log out).";
                else if (r->authenticated && r->actor.credential == VAULT_CRED_BOOTSTRAP)
                        why = "The bootstrap token only creates the first owner (or the operator).";
                return sent(r, http_respond_problem(r, 403, "forbidden", "Forbidden", why));
        }
        int64_t cl = http_content_length(r);
        if (r->route->accepts_body && cl >= 0 && (uint64_t) cl > s->o.max_body)
                return sent(r, http_respond_problem(r, 413, "payload-too-large", "Payload too large",
                                                    "The body is larger than this vault accepts."));
        int k = r->route->begin(r);
        if (k < 0 && !r->answered)
                return sent(r, http_respond_errno(r, k, "request failed"));
        if (!r->route->accepts_body && !r->answered)
                return sent(r, http_respond_problem(r, 500, "internal", "Internal error", NULL));
        return MHD_YES;
}

/* ---- deadlines ----
 *
 * libmicrohttpd's idle timer restarts on every byte, so a client trickling a TLS handshake or
 * a header block one byte at a time would hold its connection (and thread) forever. Each
 * connection is therefore given a deadline for its TLS handshake and first header block
 * (header_timeout from accept), and on keep-alive for the next header block (idle_timeout +
 * header_timeout from the previous answer). A watchdog thread shuts down the socket of a
 * connection past its deadline; libmicrohttpd then sees the end of the stream and closes it.
 * The socket is only touched under watch_lock, and libmicrohttpd reports the close (which
 * removes the entry) before it closes the descriptor, so a reused descriptor is never hit. */

static void watch_set_deadline(struct http_server *s, struct MHD_Connection *conn, uint64_t deadline_ns) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct conn_watch *w = ci ? ci->socket_context : NULL;
        if (!w)
                return;
        pthread_mutex_lock(&s->watch_lock);
        w->deadline_ns = deadline_ns;
        pthread_mutex_unlock(&s->watch_lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        struct http_server *s = cls;

        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                struct conn_watch *w = calloc(1, sizeof *w);
                if (!w || !ci) {
                        /* without a watch the connection only has the idle timeout: refuse it */
                        free(w);
                        if (ci)
                                shutdown(ci->connect_fd, SHUT_RDWR);
                        return;
                }
                w->fd = ci->connect_fd;
                w->deadline_ns = s->o.header_timeout ? mono_ns() + (uint64_t) s->o.header_timeout * 1000000000u : 0;
                pthread_mutex_lock(&s->watch_lock);
                w->next = s->watched;
                if (s->watched)
                        s->watched->prev = w;
                s->watched = w;
                pthread_mutex_unlock(&s->watch_lock);
                *socket_context = w;
                return;
        }
        struct conn_watch *w = *socket_context;
        if (!w)
                return;
        pthread_mutex_lock(&s->watch_lock);
        if (w->prev)
                w->prev->next = w->next;
        else
                s->watched = w->next;
        if (w->next)
                w->next->prev = w->prev;
        pthread_mutex_unlock(&s->watch_lock);
        free(w);
        *socket_context = NULL;
}

static void *watchdog_main(void *ud) {
        struct http_server *s = ud;

        pthread_mutex_lock(&s->watch_lock);
        while (!s->watchdog_stop) {
                uint64_t now = mono_ns();
                unsigned n_cut = 0;
                for (struct conn_watch *w = s->watched; w; w = w->next)
                        if (w->deadline_ns && now >= w->deadline_ns && !w->cut) {
                                shutdown(w->fd, SHUT_RDWR);
                                w->cut = true;
                                n_cut++;
                        }
                if (n_cut) {
                        log_warn("%u connections closed: no complete request headers within the deadline", n_cut);
                        metrics_count_cut(s->metrics, true, n_cut);
                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 250 * 1000 * 1000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&s->watch_wake, &s->watch_lock, &ts);
        }
        pthread_mutex_unlock(&s->watch_lock);
        return NULL;
}

static void watchdog_stop(struct http_server *s) {
        if (!s->watchdog_started)
                return;
        pthread_mutex_lock(&s->watch_lock);
        s->watchdog_stop = true;
        pthread_cond_signal(&s->watch_wake);
        pthread_mutex_unlock(&s->watch_lock);
        pthread_join(s->watchdog, NULL);
        s->watchdog_started = false;
}

/* A body slower than body_min_rate over any window of body_rate_window seconds holds a
 * connection for nothing; measured per window, so a fast start buys no later trickle. */
static bool body_too_slow(struct http_server *s, struct http_request *r, size_t n) {
        uint64_t now = mono_ns();
        uint64_t window = (uint64_t) s->o.body_rate_window * 1000000000u;
        if (!r->window_ns)
                r->window_ns = r->start_ns;
        r->window_bytes += n;
        if (!window || now - r->window_ns < window)
                return false;
        double secs = (double) (now - r->window_ns) / 1e9;
        if ((double) r->window_bytes < secs * (double) s->o.body_min_rate)
                return true;
        r->window_ns = now;
        r->window_bytes = 0;
        return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct http_server *s = cls;
        struct http_request *r = *con_cls;

        (void) version;
        if (!r) {
                r = calloc(1, sizeof *r);
                if (!r)
                        return MHD_NO;
                r->server = s;
                r->conn = conn;
                r->start_ns = mono_ns();
                uint8_t raw[8];
                randombytes_buf(raw, sizeof raw);
                hex_encode(raw, sizeof raw, r->request_id);
                atomic_fetch_add(&s->in_flight, 1);
                *con_cls = r;
                watch_set_deadline(s, conn, 0); /* the header block is in */
                /* A request without a body is handled on the next call: an answer queued now
                 * would make libmicrohttpd close the connection (no keep-alive). A request with a
                 * body is checked now, so that a refusal does not wait for the whole body. */
                if (!has_body(r))
                        return MHD_YES;
                r->begun = true;
                return first_call(s, r, url, method);
        }
        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                r->bytes_in += n;
                if (body_too_slow(s, r, n)) {
                        log_warn("request %s: body slower than %u bytes/s over %u s, connection closed", r->request_id,
                                 s->o.body_min_rate, s->o.body_rate_window);
                        metrics_count_cut(s->metrics, false, 1);
                        r->status = 408;
                        return MHD_NO;
                }
                if (r->bytes_in > s->o.max_body) {
                        /* A chunked body over the limit. libmicrohttpd cannot answer mid-body, so
                         * the upload is dropped now and the rest read and discarded, up to a bound,
                         * to answer 413 at the end; past the bound the connection is cut. */
                        if (!r->pending_err) {
                                r->pending_err = -EFBIG;
                                if (r->route && r->route->cleanup)
                                        r->route->cleanup(r);
                        }
                        if (r->bytes_in - s->o.max_body > DISCARD_AFTER_LIMIT) {
                                log_warn("request %s: body far over the limit, connection closed", r->request_id);
                                r->status = 413;
                                return MHD_NO;
                        }
                        return MHD_YES;
                }
                if (r->answered || r->pending_err || !r->route || !r->route->body)
                        return MHD_YES;
                int k = r->route->body(r, (const uint8_t *) upload_data, n);
                if (k < 0)
                        r->pending_err = k;
                return MHD_YES;
        }
        /* end of the body */
        if (!r->begun) {
                r->begun = true;
                if (first_call(s, r, url, method) == MHD_NO)
                        return MHD_NO;
                if (r->answered || !r->route || !r->route->accepts_body)
                        return MHD_YES;
        }
        if (r->answered || r->finished_body)
                return MHD_YES;
        r->finished_body = true;
        if (r->pending_err == -EFBIG)
                return sent(r, http_respond_problem(r, 413, "payload-too-large", "Payload too large",
                                                    "The body is larger than this vault accepts; nothing was stored."));
        if (r->pending_err)
                return sent(r, http_respond_errno(r, r->pending_err, "upload failed"));
        int k = r->route->end ? r->route->end(r) : 0;
        if (k < 0 && !r->answered)
                return sent(r, http_respond_errno(r, k, "request failed"));
        if (!r->answered)
                return sent(r, http_respond_problem(r, 500, "internal", "Internal error", NULL));
        return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        struct http_server *s = cls;
        struct http_request *r = *con_cls;

        (void) conn;
        if (!r)
                return;
        if (r->route && r->route->cleanup)
                r->route->cleanup(r);
        double secs = (double) (mono_ns() - r->start_ns) / 1e9;
        unsigned status = r->status ? r->status : 499;
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status < 400)
                status = 499; /* the client did not get the whole answer */
        metrics_observe(s->metrics, r->route_name ? r->route_name : "unknown", status, secs, r->bytes_in, r->bytes_out);
        char st[16], dur[24], in[24], out[24];
        snprintf(st, sizeof st, "%u", status);
        snprintf(dur, sizeof dur, "%.3f", secs * 1000);
        snprintf(in, sizeof in, "%llu", (unsigned long long) r->bytes_in);
        snprintf(out, sizeof out, "%llu", (unsigned long long) r->bytes_out);
        log_fields(status >= 500 ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO, "request", "request_id", r->request_id, "method",
                   r->method, "route", r->route_name ? r->route_name : "unknown", "status", st, "duration_ms", dur,
                   "bytes_in", in, "bytes_out", out, NULL);
        request_free(r);
        *con_cls = NULL;
        /* keep-alive: the next header block gets the idle time plus its own deadline */
        if (s->o.header_timeout)
                watch_set_deadline(s, conn,
                                   mono_ns() + (uint64_t) (s->o.idle_timeout + s->o.header_timeout) * 1000000000u);
        atomic_fetch_sub(&s->in_flight, 1);
}

/* fmt comes from libmicrohttpd, hence the attribute: clang checks the call with it. */
static _printf_(2, 0) void mhd_log(void *cls, const char *fmt, va_list ap) {
        char msg[512];
        (void) cls;
        vsnprintf(msg, sizeof msg, fmt, ap);
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = 0;
        log_fields(LOG_LEVEL_WARN, "http", "detail", msg, NULL);
}

/* ---- start and stop ---- */

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len) {
        char host[64];
        const char *colon = strrchr(listen, ':');
        if (!colon || colon == listen || (size_t) (colon - listen) >= sizeof host)
                return -EINVAL;
        snprintf(host, sizeof host, "%.*s", (int) (colon - listen), listen);
        char *end = NULL;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port < 0 || port > 65535)
                return -EINVAL;
        memset(ss, 0, sizeof *ss);
        if (host[0] == '[') {
                size_t hl = strlen(host);
                if (hl < 3 || host[hl - 1] != ']')
                        return -EINVAL;
                host[hl - 1] = 0;
                struct sockaddr_in6 *a = (struct sockaddr_in6 *) ss;
                a->sin6_family = AF_INET6;
                a->sin6_port = htons((uint16_t) port);
                if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
                        return -EINVAL;
                *len = sizeof *a;
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *) ss;
                a->sin_family = AF_INET;
                a->sin_port = htons((uint16_t) port);
                if (strcmp(host, "localhost") == 0)
                        snprintf(host, sizeof host, "127.0.0.1");
                if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
                        return -EINVAL;
                *len = sizeof *a;
        }
        return 0;
}

int http_server_start(const struct http_server_options *o, struct http_server **ret) {
        struct sockaddr_storage ss;
        socklen_t len;
        int r;

        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
                log_error("libmicrohttpd was built without TLS: refusing to serve without it");
                return -ENOTSUP;
        }
        r = parse_listen(o->listen, &ss, &len);
        if (r < 0) {
                log_error("invalid listen address '%s' (want HOST:PORT or [V6]:PORT)", o->listen);
                return r;
        }
        struct http_server *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->o = *o;
        s->listen_fd = -1;
        pthread_mutex_init(&s->watch_lock, NULL);
        pthread_cond_init(&s->watch_wake, NULL);
        r = metrics_new(&s->metrics);
        if (r < 0)
                goto fail;
        s->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s->listen_fd < 0) {
                r = negative_errno();
                goto fail;
        }
        int one = 1;
        setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss.ss_family == AF_INET6)
                setsockopt(s->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(s->listen_fd, (struct sockaddr *) &ss, len) < 0 || listen(s->listen_fd, 128) < 0) {
                r = negative_errno();
                log_error("cannot listen on %s: %s", o->listen, strerror(-r));
                goto fail;
        }
        struct sockaddr_storage bound;
        socklen_t bl = sizeof bound;
        getsockname(s->listen_fd, (struct sockaddr *) &bound, &bl);
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                    : ((struct sockaddr_in *) &bound)->sin_port);

        if (o->port_file) {
                char p[16];
                int n = snprintf(p, sizeof p, "%u\n", s->port);
                r = write_file_atomic(o->port_file, p, (size_t) n, 0644, 0);
                if (r < 0) {
                        log_error("cannot write %s: %s", o->port_file, strerror(-r));
                        goto fail;
                }
        }
        if (o->before_threads) {
                r = o->before_threads(o->before_threads_ud);
                if (r < 0)
                        goto fail;
        }

        s->daemon = MHD_start_daemon(
                MHD_USE_TLS | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                        MHD_USE_ITC | MHD_USE_ERROR_LOG,
                0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
                s->listen_fd, MHD_OPTION_HTTPS_MEM_KEY, o->key_pem, MHD_OPTION_HTTPS_MEM_CERT, o->cert_pem,
                MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES, MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
                o->idle_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 256 * 1024,
                MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t) 16 * 1024, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
        if (!s->daemon) {
                log_error("cannot start the HTTPS server (bad TLS key or certificate?)");
                r = -EIO;
                goto fail;
        }
        /* the daemon owns the listening socket now, and closes it when stopped */
        s->listen_fd = -1;
        r = -pthread_create(&s->watchdog, NULL, watchdog_main, s);
        if (r < 0) {
                log_error("cannot start the connection watchdog: %s", strerror(-r));
                goto fail;
        }
        s->watchdog_started = true;
        *ret = s;
        return 0;
fail:
        if (s->daemon)
                MHD_stop_daemon(s->daemon);
        watchdog_stop(s);
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        metrics_free(s->metrics);
        pthread_cond_destroy(&s->watch_wake);
        pthread_mutex_destroy(&s->watch_lock);
        free(s);
        return r;
}

uint16_t http_server_port(const struct http_server *s) {
        return s->port;
}

int http_server_metrics(struct http_server *s, struct buf *b) {
        int r = metrics_render(s->metrics, b);
        if (r < 0 || !s->o.tls_not_after)
                return r;
        return buf_printf(b,
                          "# HELP coffre_tls_certificate_expiry_seconds Seconds until the TLS certificate expires "
                          "(negative once expired).\n"
                          "# TYPE coffre_tls_certificate_expiry_seconds gauge\n"
                          "coffre_tls_certificate_expiry_seconds %lld\n",
                          (long long) (s->o.tls_not_after - (int64_t) time(NULL)));
}

void http_server_stop(struct http_server *s) {
        if (!s)
                return;
        atomic_store(&s->stopping, true);
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET)
                close(fd);
        uint64_t deadline = mono_ns() + (uint64_t) s->o.shutdown_timeout * 1000000000u;
        while (atomic_load(&s->in_flight) > 0 && mono_ns() < deadline) {
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        int left = atomic_load(&s->in_flight);
        if (left > 0)
                log_warn("shutdown: %d requests still running after %us; they are cut off", left,
                         s->o.shutdown_timeout);
        MHD_stop_daemon(s->daemon);
        watchdog_stop(s);
        metrics_free(s->metrics);
        pthread_cond_destroy(&s->watch_wake);
        pthread_mutex_destroy(&s->watch_lock);
        free(s);
}
