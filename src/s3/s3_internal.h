/* s3_internal.h: what the files of src/s3/ share: the client, one request and its transport
 * (s3_request.c), and the bounded XML readers of S3's answers (s3_xml.c). Not for callers. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "s3/s3.h"

struct s3_client {
        CURL *curl;
        char *base; /* "http://host:port/bucket" (path style) or "http://bucket.host:port" */
        bool path_style;
        char *sigv4;   /* "aws:amz:REGION:s3" */
        char *userpwd; /* "ACCESS:SECRET", sodium_malloc'd */
        size_t userpwd_len;
        char *token_header; /* "x-amz-security-token: ...", sodium_malloc'd, or NULL */
        size_t token_header_len;
        char *ca_file;
        unsigned max_attempts, backoff_ms;
        long connect_timeout_s, timeout_s;
        unsigned attempts;
        char err[512];
};

struct s3_request {
        const char *method; /* GET HEAD PUT POST DELETE */
        const char *key;    /* NULL: the bucket */
        const char *query;  /* canonical (sorted, encoded), or NULL */
        const void *body;
        size_t body_len;
        const char *content_type;
        struct curl_slist *headers; /* more headers, owned by the caller */
        struct buf *out;            /* the answer's body on success (NULL: dropped) */
        /* results */
        long status;
        char etag[80];
        int64_t last_modified;  /* -1 when not sent */
        int64_t content_length; /* -1 when not sent */
};

/* Performs r with retries. 0 on a 2xx answer; else a negative errno with c->err set. */
int s3_request_perform(struct s3_client *c, struct s3_request *r) _warn_unused_;
/* Sets c->err from a format (for errors found after a request succeeded). Returns r. */
int s3_fail(struct s3_client *c, int r, const char *fmt, ...) _printf_(3, 4);
/* Appends s encoded as SigV4 wants it (unreserved bytes kept; '/' kept when keep_slash). */
int s3_uri_encode(struct buf *b, const char *s, bool keep_slash) _warn_unused_;
/* base64 of the MD5 / SHA-256 of p[0..n): out must hold 25 / 45 bytes. */
int s3_md5_base64(const void *p, size_t n, char out[25]) _warn_unused_;
void s3_sha256_base64(const void *p, size_t n, char out[45]);

/* XML answers. Each refuses a document with a DTD, and bodies over S3_RESPONSE_XML_MAX. */
/* <Error><Code>..</Code><Message>..</Message></Error>: -EBADMSG when it is not one. */
int s3_xml_error(const uint8_t *p, size_t n, char code[64], char msg[256]) _warn_unused_;
/* ListBucketResult: fn per Contents; *ret_token (malloc'd) when IsTruncated. */
int s3_xml_list(const uint8_t *p, size_t n, s3_list_fn fn, void *ud, bool *ret_truncated, char **ret_token)
        _warn_unused_;
/* InitiateMultipartUploadResult/UploadId. */
int s3_xml_upload_id(const uint8_t *p, size_t n, char **ret) _warn_unused_;
/* The root element's local name, into out. */
int s3_xml_root(const uint8_t *p, size_t n, char out[64]) _warn_unused_;
