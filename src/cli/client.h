/* client.h: the client side of the coffre HTTP API, on libcurl: verified TLS only, bearer token,
 * streamed bodies both ways, problem+json errors turned into one clear line on stderr. */
#pragma once

#include <stdint.h>

#include <jansson.h>

#include "buf.h"
#include "config.h"
#include "macro.h"
#include "progress.h"

/* Largest JSON answer accepted (a page of a listing); larger answers fail with -EFBIG. */
#define CLIENT_JSON_MAX ((size_t) 16 * 1024 * 1024)

struct client;

/* Every client_* function that fails has already printed one "coffre: ..." line saying why, and
 * returns a negative errno: -ECONNREFUSED, -EKEYREJECTED (server certificate not trusted),
 * -EHOSTUNREACH and -ETIMEDOUT for transport failures; for an HTTP error answer -EINVAL (400),
 * -EACCES (401), -EPERM (403), -ENOENT (404), -EBUSY (409), -EFBIG (413), -EAGAIN (429),
 * -EIO (5xx) or -EPROTO (anything else, or an answer that does not parse). */

/* Reads the token (client_config_token) and prepares a connection to cfg->url. */
int client_new(const struct client_config *cfg, struct client **ret) _warn_unused_;
/* A client that sends no token, for coffre login. */
int client_new_anonymous(const struct client_config *cfg, struct client **ret) _warn_unused_;
/* Wipes the token and every header that held it. NULL-safe. */
void client_free(struct client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct client *, client_free);

/* Appends s percent-encoded (everything but RFC 3986 unreserved characters) to b. */
int client_url_encode(struct buf *b, const char *s) _warn_unused_;

/* GET path (which starts with "/"); *ret is the JSON object of a 2xx answer. */
int client_get_json(struct client *c, const char *path, json_t **ret) _warn_unused_;
/* DELETE path; success on any 2xx answer. */
int client_delete(struct client *c, const char *path) _warn_unused_;
/* POST path with the size bytes read from fd as the body (application/octet-stream), and
 * X-Content-SHA256: sha256_hex. *ret is the JSON object of the 2xx answer. The body is read in
 * 64 KiB pieces; a file that ends early aborts the upload (-ESTALE). */
int client_upload(struct client *c, const char *path, int fd, uint64_t size, const char *sha256_hex, struct progress *p,
                  json_t **ret) _warn_unused_;

/* An error answer left to the caller: its status, and its problem+json object when it had one
 * (type borrowed from it). Release with client_problem_done(). */
struct client_problem {
        long status;
        json_t *body;
        const char *type;
};
/* METHOD path with body as JSON (NULL: none, "{}" for a POST); the serialised body is wiped
 * afterwards (it may hold a password). *ret (may be NULL) is the JSON object of a 2xx answer, or
 * NULL when it had no body (204). An error answer is printed, unless ret_problem is given: then
 * it is returned there, unprinted, for the caller to handle or print with client_report_problem()
 * (a transport failure is printed all the same, and leaves ret_problem->status at 0). */
int client_send_json(struct client *c, const char *method, const char *path, json_t *body, json_t **ret,
                     struct client_problem *ret_problem) _warn_unused_;
/* Prints the problem as client_send_json would have; returns its negative errno. */
int client_report_problem(struct client *c, const struct client_problem *p);
void client_problem_done(struct client_problem *p);

/* Receives one piece of a download. Returns 0, or a negative errno after printing why. */
typedef int (*client_sink_fn)(const void *data, size_t n, void *userdata);
/* GET path and hand each piece of a 200 answer to sink. *ret_etag (may be NULL) is the ETag
 * header as sent, or NULL when there was none; free() it. */
int client_download(struct client *c, const char *path, client_sink_fn sink, void *userdata, struct progress *p,
                    char **ret_etag) _warn_unused_;
