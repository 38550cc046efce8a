/* tsa_client.h: a client of an external RFC 3161 time-stamping authority over HTTP(S)
 * (RFC 3161 section 3.4: POST application/timestamp-query, answer application/timestamp-reply),
 * with optional basic authentication, and the trust anchors its tokens must chain to. It sends
 * and receives bytes only: the query is made and the reply checked by cades_add_timestamp(). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "macro.h"

#define TSA_CLIENT_REPLY_MAX ((size_t) 64 * 1024) /* a reply with its chain: a few KB */

struct tsa_client;

struct tsa_client_options {
        const char *url;      /* http:// or https:// */
        const char *username; /* NULL or "": no authentication */
        const char *password; /* with username; copied and wiped at free */
        const char *ca_file;  /* PEM: the CA(s) the TSA's certificate must chain to */
        unsigned timeout_ms;  /* the whole exchange, connection included */
};

/* Reads ca_file now (the process may be sandboxed later). -EINVAL for a bad URL or CA file. */
int tsa_client_new(const struct tsa_client_options *o, struct tsa_client **ret) _warn_unused_;
void tsa_client_free(struct tsa_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct tsa_client *, tsa_client_free);

/* The trust anchors of ca_file (owned by the client). */
X509_STORE *tsa_client_trust(struct tsa_client *c);

/* A cades_tsa_fn: posts the DER TimeStampReq req, *ret the reply body (OPENSSL_malloc'd).
 * -ETIMEDOUT, -ECONNREFUSED, -EPROTO (HTTP status other than 200, wrong content type),
 * -EFBIG (reply over TSA_CLIENT_REPLY_MAX), -EIO otherwise. Thread-safe (one handle per call). */
int tsa_client_post(void *client, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) _warn_unused_;
