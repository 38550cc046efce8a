/* s3.c: the S3 operations: put (single and multipart, with Content-MD5, x-amz-checksum-sha256,
 * If-None-Match and Object Lock headers), get with Range, head, list (v2, following
 * continuation tokens) and delete. The transport and retries are in s3_request.c. */
#include <errno.h>
#include <string.h>

#include "s3/s3_internal.h"
#include "timeutil.h"

#define PART_DEFAULT ((size_t) 64 << 20)

static bool key_ok(const char *key) {
        size_t n = key ? strlen(key) : 0;
        if (n == 0 || n > S3_KEY_MAX)
                return false;
        for (const char *p = key; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

static void slist_freep(struct curl_slist **l) {
        curl_slist_free_all(*l);
}

static int add_header(struct curl_slist **l, const char *line) {
        struct curl_slist *t = curl_slist_append(*l, line);
        if (!t)
                return -ENOMEM;
        *l = t;
        return 0;
}

/* The Object Lock headers of o, if any. */
static int lock_headers(struct curl_slist **l, const struct s3_put_opts *o) {
        char line[128], when[RFC3339_MAX];
        int r;

        if (!o || o->lock == S3_LOCK_NONE)
                return 0;
        if (o->lock_until <= 0)
                return -EINVAL;
        r = add_header(l, o->lock == S3_LOCK_COMPLIANCE ? "x-amz-object-lock-mode: COMPLIANCE"
                                                        : "x-amz-object-lock-mode: GOVERNANCE");
        if (r < 0)
                return r;
        rfc3339_format(o->lock_until * 1000, when);
        /* S3 wants ISO 8601 in UTC; whole seconds */
        char *dot = strchr(when, '.');
        if (dot)
                snprintf(dot, sizeof when - (size_t) (dot - when), "Z");
        snprintf(line, sizeof line, "x-amz-object-lock-retain-until-date: %s", when);
        return add_header(l, line);
}

static int digest_headers(struct curl_slist **l, const void *p, size_t n, bool md5, bool sha) {
        char line[128], b64[45];
        int r;

        if (md5) {
                r = s3_md5_base64(p, n, b64);
                if (r < 0)
                        return r;
                snprintf(line, sizeof line, "Content-MD5: %s", b64);
                r = add_header(l, line);
                if (r < 0)
                        return r;
        }
        if (sha) {
                s3_sha256_base64(p, n, b64);
                snprintf(line, sizeof line, "x-amz-checksum-sha256: %s", b64);
                r = add_header(l, line);
                if (r < 0)
                        return r;
        }
        return 0;
}

int s3_put_object(struct s3_client *c, const char *key, const void *p, size_t n, const struct s3_put_opts *o) {
        _cleanup_(slist_freep) struct curl_slist *h = NULL;
        static const struct s3_put_opts none = {};
        int r;

        if (!o)
                o = &none;
        if (!key_ok(key) || (!p && n))
                return s3_fail(c, -EINVAL, "S3 PUT: invalid key or body");
        r = digest_headers(&h, p ? p : "", n, !o->no_content_md5, !o->no_checksum_sha256);
        if (r >= 0 && o->if_none_match)
                r = add_header(&h, "If-None-Match: *");
        if (r >= 0)
                r = lock_headers(&h, o);
        if (r < 0)
                return s3_fail(c, r, "S3 PUT: cannot build the request headers");
        struct s3_request q = {
                .method = "PUT",
                .key = key,
                .body = p ? p : "",
                .body_len = n,
                .content_type = "application/octet-stream",
                .headers = h,
        };
        return s3_request_perform(c, &q);
}

int s3_multipart_create(struct s3_client *c, const char *key, const struct s3_put_opts *o, char **ret_upload_id) {
        _cleanup_(slist_freep) struct curl_slist *h = NULL;
        _cleanup_buf_ struct buf out = {};
        int r;

        if (!key_ok(key))
                return s3_fail(c, -EINVAL, "S3 POST: invalid key");
        r = lock_headers(&h, o);
        if (r < 0)
                return s3_fail(c, r, "S3 POST: cannot build the request headers");
        buf_init(&out, S3_RESPONSE_XML_MAX);
        struct s3_request q = {
                .method = "POST",
                .key = key,
                .query = "uploads=",
                .content_type = "application/octet-stream",
                .headers = h,
                .out = &out,
        };
        r = s3_request_perform(c, &q);
        if (r < 0)
                return r;
        r = s3_xml_upload_id(out.data, out.len, ret_upload_id);
        if (r < 0)
                return s3_fail(c, r, "S3 POST: the server's answer to starting a multipart upload has no UploadId");
        return 0;
}

static int upload_query(struct buf *b, const char *upload_id, unsigned part) {
        int r = part ? buf_printf(b, "partNumber=%u&uploadId=", part) : buf_append_str(b, "uploadId=");
        if (r >= 0)
                r = s3_uri_encode(b, upload_id, false);
        return r < 0 ? r : (buf_str(b) ? 0 : -ENOMEM);
}

int s3_multipart_upload_part(struct s3_client *c, const char *key, const char *upload_id, unsigned part, const void *p,
                             size_t n, char **ret_etag) {
        _cleanup_(slist_freep) struct curl_slist *h = NULL;
        _cleanup_buf_ struct buf query = {};
        int r;

        if (!key_ok(key) || !upload_id || part < 1 || part > S3_PART_MAX_COUNT || (!p && n))
                return s3_fail(c, -EINVAL, "S3 PUT: invalid part");
        buf_init(&query, 4096);
        r = upload_query(&query, upload_id, part);
        if (r >= 0)
                r = digest_headers(&h, p ? p : "", n, true, false);
        if (r < 0)
                return s3_fail(c, r, "S3 PUT: cannot build the part request");
        struct s3_request q = {
                .method = "PUT",
                .key = key,
                .query = buf_str(&query),
                .body = p ? p : "",
                .body_len = n,
                .content_type = "application/octet-stream",
                .headers = h,
        };
        r = s3_request_perform(c, &q);
        if (r < 0)
                return r;
        if (!q.etag[0])
                return s3_fail(c, -EBADMSG, "S3 PUT: the server sent no ETag for part %u", part);
        *ret_etag = strdup(q.etag);
        return *ret_etag ? 0 : -ENOMEM;
}

int s3_multipart_complete(struct s3_client *c, const char *key, const char *upload_id, const struct s3_part *parts,
                          size_t n, const struct s3_put_opts *o) {
        _cleanup_(slist_freep) struct curl_slist *h = NULL;
        _cleanup_buf_ struct buf query = {}, body = {}, out = {};
        char root[64];
        int r;

        if (!key_ok(key) || !upload_id || n == 0 || n > S3_PART_MAX_COUNT)
                return s3_fail(c, -EINVAL, "S3 POST: invalid multipart completion");
        buf_init(&query, 4096);
        buf_init(&body, (size_t) 1 << 20);
        buf_init(&out, S3_RESPONSE_XML_MAX);
        r = upload_query(&query, upload_id, 0);
        if (r >= 0)
                r = buf_append_str(&body, "<CompleteMultipartUpload>");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                for (const char *e = parts[i].etag; e && *e; e++)
                        if (*e == '<' || *e == '&' || *e == '>')
                                return s3_fail(c, -EBADMSG, "S3 POST: an ETag the server sent is not plain text");
                r = buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>\"%s\"</ETag></Part>", parts[i].number,
                               parts[i].etag ? parts[i].etag : "");
        }
        if (r >= 0)
                r = buf_append_str(&body, "</CompleteMultipartUpload>");
        if (r >= 0)
                r = digest_headers(&h, body.data, body.len, true, false);
        if (r >= 0 && o && o->if_none_match)
                r = add_header(&h, "If-None-Match: *");
        if (r < 0)
                return s3_fail(c, r, "S3 POST: cannot build the completion request");
        struct s3_request q = {
                .method = "POST",
                .key = key,
                .query = buf_str(&query),
                .body = body.data,
                .body_len = body.len,
                .content_type = "application/xml",
                .headers = h,
                .out = &out,
        };
        r = s3_request_perform(c, &q);
        if (r < 0)
                return r;
        /* S3 may answer 200 and then an Error body when the completion fails late */
        char code[64], msg[256];
        if (s3_xml_error(out.data, out.len, code, msg) == 0)
                return s3_fail(c, code[0] && strcmp(code, "InternalError") == 0 ? -EIO : -EBADMSG,
                               "S3 POST: completing the multipart upload failed: %s: %s", code, msg);
        if (s3_xml_root(out.data, out.len, root) < 0 || strcmp(root, "CompleteMultipartUploadResult") != 0)
                return s3_fail(c, -EBADMSG, "S3 POST: unexpected answer to completing a multipart upload");
        return 0;
}

int s3_multipart_abort(struct s3_client *c, const char *key, const char *upload_id) {
        _cleanup_buf_ struct buf query = {};
        int r;

        if (!key_ok(key) || !upload_id)
                return s3_fail(c, -EINVAL, "S3 DELETE: invalid upload");
        buf_init(&query, 4096);
        r = upload_query(&query, upload_id, 0);
        if (r < 0)
                return s3_fail(c, r, "S3 DELETE: cannot build the request");
        struct s3_request q = { .method = "DELETE", .key = key, .query = buf_str(&query) };
        return s3_request_perform(c, &q);
}

int s3_put(struct s3_client *c, const char *key, const void *p, size_t n, const struct s3_put_opts *o) {
        static const struct s3_put_opts none = {};
        _cleanup_free_ char *upload = NULL;
        struct s3_part *parts = NULL;
        size_t part_size, n_parts = 0;
        int r = 0;

        if (!o)
                o = &none;
        part_size = o->part_size ? o->part_size : PART_DEFAULT;
        if (n <= part_size)
                return s3_put_object(c, key, p, n, o);
        if (part_size < S3_PART_MIN || (n + part_size - 1) / part_size > S3_PART_MAX_COUNT)
                return s3_fail(c, -EINVAL, "S3: a part size of %zu bytes is below 5 MiB or makes over %u parts",
                               part_size, S3_PART_MAX_COUNT);
        parts = calloc((n + part_size - 1) / part_size, sizeof *parts);
        if (!parts)
                return -ENOMEM;
        r = s3_multipart_create(c, key, o, &upload);
        for (size_t off = 0; r >= 0 && off < n; off += part_size) {
                size_t len = MIN(part_size, n - off);
                parts[n_parts].number = (unsigned) n_parts + 1;
                r = s3_multipart_upload_part(c, key, upload, parts[n_parts].number, (const uint8_t *) p + off, len,
                                             &parts[n_parts].etag);
                if (r >= 0)
                        n_parts++;
        }
        if (r >= 0)
                r = s3_multipart_complete(c, key, upload, parts, n_parts, o);
        if (r < 0 && upload) {
                /* keep the first error's message; the abort is best effort (a lifecycle rule on
                 * incomplete uploads catches what it misses) */
                char saved[sizeof c->err];
                unsigned att = c->attempts;
                memcpy(saved, c->err, sizeof saved);
                (void) !s3_multipart_abort(c, key, upload);
                memcpy(c->err, saved, sizeof saved);
                c->attempts = att;
        }
        for (size_t i = 0; i < n_parts; i++)
                free(parts[i].etag);
        free(parts);
        return r;
}

int s3_get_object(struct s3_client *c, const char *key, uint64_t off, uint64_t len, struct buf *out) {
        _cleanup_(slist_freep) struct curl_slist *h = NULL;
        char line[96];
        size_t start = out ? out->len : 0;
        int r = 0;

        if (!key_ok(key) || !out)
                return s3_fail(c, -EINVAL, "S3 GET: invalid key");
        if (len == 0)
                return 0;
        if (len != S3_WHOLE && off > UINT64_MAX - len)
                return s3_fail(c, -EINVAL, "S3 GET: invalid range");
        if (len != S3_WHOLE)
                snprintf(line, sizeof line, "Range: bytes=%llu-%llu", (unsigned long long) off,
                         (unsigned long long) (off + len - 1));
        else if (off > 0)
                snprintf(line, sizeof line, "Range: bytes=%llu-", (unsigned long long) off);
        if ((len != S3_WHOLE || off > 0) && (r = add_header(&h, line)) < 0)
                return r;
        struct s3_request q = { .method = "GET", .key = key, .headers = h, .out = out };
        r = s3_request_perform(c, &q);
        if (r < 0)
                return r;
        size_t got = out->len - start;
        if (q.status == 200 && (off > 0 || len != S3_WHOLE)) {
                /* a server that ignores Range sends the whole object: keep what was asked */
                if (off > got || (len != S3_WHOLE && len > got - off)) {
                        out->len = start;
                        return s3_fail(c, -ERANGE, "S3 GET: the object is shorter than the range asked");
                }
                size_t keep = len == S3_WHOLE ? got - (size_t) off : (size_t) len;
                memmove(out->data + start, out->data + start + off, keep);
                out->len = start + keep;
        } else if (q.status == 206 && len != S3_WHOLE && got != len) {
                out->len = start;
                return s3_fail(c, -EBADMSG, "S3 GET: %zu bytes sent for a range of %llu", got,
                               (unsigned long long) len);
        } else if (q.content_length >= 0 && (uint64_t) q.content_length != got) {
                out->len = start;
                return s3_fail(c, -EBADMSG, "S3 GET: %zu bytes received of %lld announced", got,
                               (long long) q.content_length);
        }
        return 0;
}

int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *ret) {
        if (!key_ok(key))
                return s3_fail(c, -EINVAL, "S3 HEAD: invalid key");
        struct s3_request q = { .method = "HEAD", .key = key };
        int r = s3_request_perform(c, &q);
        if (r < 0 && q.status >= 400 && q.status < 500 && q.status != 404) {
                /* an answer to HEAD has no body, so no S3 error code: ask a GET of one byte,
                 * whose error says why (SignatureDoesNotMatch, AccessDenied...) */
                _cleanup_(slist_freep) struct curl_slist *h = NULL;
                _cleanup_buf_ struct buf tmp = {};
                buf_init(&tmp, (size_t) 64 << 10);
                if (add_header(&h, "Range: bytes=0-0") == 0) {
                        struct s3_request g = { .method = "GET", .key = key, .headers = h, .out = &tmp };
                        int k = s3_request_perform(c, &g);
                        if (k < 0)
                                return k;
                }
                return s3_fail(c, r, "S3 HEAD: HTTP %ld", q.status);
        }
        if (r < 0)
                return r;
        if (q.content_length < 0 || q.last_modified < 0)
                return s3_fail(c, -EBADMSG, "S3 HEAD: the answer lacks Content-Length or Last-Modified");
        *ret = (struct s3_object_info){ .size = (uint64_t) q.content_length, .last_modified = q.last_modified };
        snprintf(ret->etag, sizeof ret->etag, "%s", q.etag);
        return 0;
}

int s3_list_objects(struct s3_client *c, const char *prefix, unsigned max_keys, s3_list_fn fn, void *ud) {
        _cleanup_free_ char *token = NULL;
        unsigned pages = 0;
        int r;

        if (max_keys == 0 || max_keys > 1000)
                max_keys = 1000;
        if (prefix && strlen(prefix) > S3_KEY_MAX)
                return s3_fail(c, -EINVAL, "S3 GET: prefix too long");
        for (;;) {
                _cleanup_buf_ struct buf query = {}, out = {};
                bool truncated = false;
                char *next = NULL;

                buf_init(&query, 8192);
                buf_init(&out, S3_RESPONSE_XML_MAX);
                /* parameters in the sorted order of the canonical request */
                r = 0;
                if (token) {
                        r = buf_append_str(&query, "continuation-token=");
                        if (r >= 0)
                                r = s3_uri_encode(&query, token, false);
                        if (r >= 0)
                                r = buf_append(&query, "&", 1);
                }
                if (r >= 0)
                        r = buf_printf(&query, "list-type=2&max-keys=%u", max_keys);
                if (r >= 0 && prefix && *prefix) {
                        r = buf_append_str(&query, "&prefix=");
                        if (r >= 0)
                                r = s3_uri_encode(&query, prefix, false);
                }
                if (r < 0 || !buf_str(&query))
                        return s3_fail(c, r < 0 ? r : -ENOMEM, "S3 GET: cannot build the listing request");
                struct s3_request q = { .method = "GET", .query = buf_str(&query), .out = &out };
                r = s3_request_perform(c, &q);
                if (r < 0)
                        return r;
                r = s3_xml_list(out.data, out.len, fn, ud, &truncated, &next);
                if (r == -EBADMSG)
                        return s3_fail(c, r, "S3 GET: the listing the server sent is malformed");
                if (r < 0)
                        return r;
                free(token);
                token = next;
                if (!truncated)
                        return 0;
                if (++pages > 10000000u)
                        return s3_fail(c, -ELOOP, "S3 GET: the listing does not end");
        }
}

int s3_delete_object(struct s3_client *c, const char *key) {
        if (!key_ok(key))
                return s3_fail(c, -EINVAL, "S3 DELETE: invalid key");
        struct s3_request q = { .method = "DELETE", .key = key };
        return s3_request_perform(c, &q);
}
