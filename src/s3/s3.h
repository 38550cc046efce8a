/* s3.h: a client for S3-compatible object storage (AWS S3 and the services that speak its
 * protocol). Requests are signed with AWS Signature Version 4 by libcurl; responses are parsed
 * with bounds; transient failures (network, 5xx, 429) are retried with exponential back-off
 * and jitter, others are not. Errors come back as negative errno with a message in
 * s3_client_error(). Knows nothing of what it stores. Never logs or reports credentials. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

#define S3_PART_MIN ((size_t) 5 << 20)         /* every part but the last is at least this */
#define S3_PART_MAX_COUNT 10000u               /* parts of one multipart upload */
#define S3_RESPONSE_XML_MAX ((size_t) 4 << 20) /* a listing page, an error body */
#define S3_KEY_MAX 1024u

struct s3_config {
        const char *endpoint; /* "https://s3.eu-west-3.amazonaws.com", "http://127.0.0.1:9000" */
        const char *region;   /* "eu-west-3"; "us-east-1" when NULL */
        const char *bucket;
        bool path_style; /* endpoint/bucket/key; else bucket.endpoint-host/key */
        const char *access_key, *secret_key;
        const char *session_token; /* NULL unless temporary credentials */
        const char *ca_file;       /* NULL: the system's trust store */
        unsigned max_attempts;     /* 0: 5; each transient failure costs one */
        unsigned backoff_ms;       /* 0: 200; first back-off, doubled each time, capped at 10 s */
        long connect_timeout_s;    /* 0: 10 */
        long timeout_s;            /* 0: 300; one request, whole */
};

/* Fills the settings a caller did not give from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION), AWS_ENDPOINT_URL and AWS_CA_BUNDLE.
 * The strings point into the environment. */
void s3_config_from_env(struct s3_config *c);

struct s3_client;

/* Copies everything it needs from c (credentials into locked memory, wiped on free).
 * -EINVAL when the endpoint, bucket or credentials are missing or malformed. */
int s3_client_new(const struct s3_config *c, struct s3_client **ret) _warn_unused_;
void s3_client_free(struct s3_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct s3_client *, s3_client_free);

/* What went wrong with the last failed call: the S3 error code and message or the network
 * error, the HTTP status, and how many attempts were made. Never holds credentials. */
const char *s3_client_error(const struct s3_client *c);
/* Attempts made by the last call (1 when it did not need a retry). */
unsigned s3_client_attempts(const struct s3_client *c);

enum s3_lock_mode {
        S3_LOCK_NONE,
        S3_LOCK_GOVERNANCE,
        S3_LOCK_COMPLIANCE,
};

struct s3_put_opts {
        bool if_none_match;      /* If-None-Match: * (-EEXIST when the key exists) */
        bool no_content_md5;     /* Content-MD5 is sent unless this is set */
        bool no_checksum_sha256; /* x-amz-checksum-sha256 is sent unless this is set */
        enum s3_lock_mode lock;  /* Object Lock mode, with */
        int64_t lock_until;      /* retain-until, seconds since the epoch */
        size_t part_size;        /* s3_put(): multipart above this size; 0: 64 MiB */
};

/* Stores p[0..n) as key in one request (single PUT). */
int s3_put_object(struct s3_client *c, const char *key, const void *p, size_t n, const struct s3_put_opts *o)
        _warn_unused_;
/* Stores p[0..n) as key: one PUT up to o->part_size, a multipart upload above (aborted on
 * failure, so no part stays billed). */
int s3_put(struct s3_client *c, const char *key, const void *p, size_t n, const struct s3_put_opts *o) _warn_unused_;

/* Multipart upload, step by step. Parts are numbered from 1; every part but the last must be
 * at least S3_PART_MIN. */
int s3_multipart_create(struct s3_client *c, const char *key, const struct s3_put_opts *o, char **ret_upload_id)
        _warn_unused_;
int s3_multipart_upload_part(struct s3_client *c, const char *key, const char *upload_id, unsigned part, const void *p,
                             size_t n, char **ret_etag) _warn_unused_;
struct s3_part {
        unsigned number;
        char *etag;
};
int s3_multipart_complete(struct s3_client *c, const char *key, const char *upload_id, const struct s3_part *parts,
                          size_t n, const struct s3_put_opts *o) _warn_unused_;
int s3_multipart_abort(struct s3_client *c, const char *key, const char *upload_id) _warn_unused_;

#define S3_WHOLE UINT64_MAX
/* Appends len bytes of key from off (S3_WHOLE: to the end) to out (its cap bounds the read).
 * -ENOENT when absent, -ERANGE when off is past the end, -EBADMSG when the server sends other
 * bytes than asked. */
int s3_get_object(struct s3_client *c, const char *key, uint64_t off, uint64_t len, struct buf *out) _warn_unused_;

struct s3_object_info {
        uint64_t size;
        int64_t last_modified; /* seconds since the epoch, the server's time */
        char etag[80];         /* as sent, quotes removed */
};
int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *ret) _warn_unused_;

/* Calls fn for every key that starts with prefix, page by page (max_keys a page, 0: 1000),
 * following continuation tokens. A negative return of fn stops the listing with it. */
typedef int (*s3_list_fn)(const char *key, const struct s3_object_info *info, void *ud);
int s3_list_objects(struct s3_client *c, const char *prefix, unsigned max_keys, s3_list_fn fn, void *ud) _warn_unused_;

/* Deletes key (0 also when it did not exist, as S3 answers). */
int s3_delete_object(struct s3_client *c, const char *key) _warn_unused_;

/* "2026-12-04T19:07:19Z" or with fractional seconds; -EINVAL otherwise. */
int s3_parse_time(const char *s, int64_t *ret) _warn_unused_;
