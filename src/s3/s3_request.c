/* s3_request.c: the S3 client's transport: building the URL (path or virtual-host style),
 * signing with SigV4 through libcurl, sending, reading the answer with a cap, retrying
 * transient failures with exponential back-off and full jitter, and turning S3 errors into
 * negative errno plus a message. Credentials live in sodium-locked memory and are never put
 * in a message. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "hex.h"
#include "s3/s3_internal.h"

#define ERROR_BODY_MAX ((size_t) 64 << 10)
#define BACKOFF_CAP_MS 10000u

void s3_config_from_env(struct s3_config *c) {
        const char *v;

        if (!c->access_key && (v = getenv("AWS_ACCESS_KEY_ID")) && *v)
                c->access_key = v;
        if (!c->secret_key && (v = getenv("AWS_SECRET_ACCESS_KEY")) && *v)
                c->secret_key = v;
        if (!c->session_token && (v = getenv("AWS_SESSION_TOKEN")) && *v)
                c->session_token = v;
        if (!c->region && (((v = getenv("AWS_REGION")) && *v) || ((v = getenv("AWS_DEFAULT_REGION")) && *v)))
                c->region = v;
        if (!c->endpoint && (v = getenv("AWS_ENDPOINT_URL")) && *v)
                c->endpoint = v;
        if (!c->ca_file && (v = getenv("AWS_CA_BUNDLE")) && *v)
                c->ca_file = v;
}

static bool printable(const char *s, size_t max) {
        size_t n = 0;
        for (; *s; s++, n++)
                if ((unsigned char) *s < 0x21 || (unsigned char) *s > 0x7e || n >= max)
                        return false;
        return n > 0;
}

/* S3 bucket names: 3..63 of [a-z0-9.-]; no dots in virtual-host style (TLS names). */
static bool bucket_ok(const char *b, bool path_style) {
        size_t n = strlen(b);
        if (n < 3 || n > 63)
                return false;
        for (const char *p = b; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || (*p == '.' && path_style)))
                        return false;
        return true;
}

int s3_client_new(const struct s3_config *cfg, struct s3_client **ret) {
        _cleanup_(s3_client_freep) struct s3_client *c = NULL;
        _cleanup_buf_ struct buf b = {};
        const char *ep, *host, *region;
        size_t al, sl;
        int r;

        if (!cfg || !cfg->endpoint || !cfg->bucket || !cfg->access_key || !cfg->secret_key)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        ep = cfg->endpoint;
        if (strncmp(ep, "https://", 8) == 0)
                host = ep + 8;
        else if (strncmp(ep, "http://", 7) == 0)
                host = ep + 7;
        else
                return -EINVAL;
        region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
        if (!printable(host, 256) || strchr(host, '?') || strchr(host, '#') || strchr(host, '@') ||
            !bucket_ok(cfg->bucket, cfg->path_style) || !printable(region, 64) || strchr(region, ':') ||
            !printable(cfg->access_key, 256) || strchr(cfg->access_key, ':') || !printable(cfg->secret_key, 256) ||
            (cfg->session_token && !printable(cfg->session_token, 4096)))
                return -EINVAL;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->path_style = cfg->path_style;
        c->max_attempts = cfg->max_attempts ? cfg->max_attempts : 5;
        c->backoff_ms = cfg->backoff_ms ? cfg->backoff_ms : 200;
        c->connect_timeout_s = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 10;
        c->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 300;

        buf_init(&b, 4096);
        size_t hl = strlen(host);
        while (hl && host[hl - 1] == '/')
                hl--;
        if (cfg->path_style)
                r = buf_printf(&b, "%.*s%.*s/%s", (int) (host - ep), ep, (int) hl, host, cfg->bucket);
        else {
                if (memchr(host, '/', hl))
                        return -EINVAL; /* a path on the endpoint works in path style only */
                r = buf_printf(&b, "%.*s%s.%.*s", (int) (host - ep), ep, cfg->bucket, (int) hl, host);
        }
        if (r < 0)
                return r;
        c->base = buf_steal(&b);
        buf_init(&b, 4096);
        r = buf_printf(&b, "aws:amz:%s:s3", region);
        if (r < 0)
                return r;
        c->sigv4 = buf_steal(&b);
        if (!c->base || !c->sigv4)
                return -ENOMEM;

        al = strlen(cfg->access_key);
        sl = strlen(cfg->secret_key);
        c->userpwd_len = al + 1 + sl + 1;
        c->userpwd = sodium_malloc(c->userpwd_len);
        if (!c->userpwd)
                return -ENOMEM;
        memcpy(c->userpwd, cfg->access_key, al);
        c->userpwd[al] = ':';
        memcpy(c->userpwd + al + 1, cfg->secret_key, sl + 1);
        if (cfg->session_token) {
                static const char name[] = "x-amz-security-token: ";
                size_t tl = strlen(cfg->session_token);
                c->token_header_len = sizeof name + tl;
                c->token_header = sodium_malloc(c->token_header_len);
                if (!c->token_header)
                        return -ENOMEM;
                memcpy(c->token_header, name, sizeof name - 1);
                memcpy(c->token_header + sizeof name - 1, cfg->session_token, tl + 1);
        }
        if (cfg->ca_file && !(c->ca_file = strdup(cfg->ca_file)))
                return -ENOMEM;
        c->curl = curl_easy_init();
        if (!c->curl)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

void s3_client_free(struct s3_client *c) {
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        if (c->userpwd)
                sodium_free(c->userpwd); /* sodium_free wipes */
        if (c->token_header)
                sodium_free(c->token_header);
        free(c->base);
        free(c->sigv4);
        free(c->ca_file);
        free(c);
}

const char *s3_client_error(const struct s3_client *c) {
        return c && c->err[0] ? c->err : "no error";
}

unsigned s3_client_attempts(const struct s3_client *c) {
        return c ? c->attempts : 0;
}

int s3_fail(struct s3_client *c, int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        va_end(ap);
        return r;
}

int s3_uri_encode(struct buf *b, const char *s, bool keep_slash) {
        static const char hexd[] = "0123456789ABCDEF";
        int r = 0;
        for (const unsigned char *p = (const unsigned char *) s; *p && r >= 0; p++) {
                if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                    *p == '_' || *p == '.' || *p == '~' || (*p == '/' && keep_slash))
                        r = buf_append(b, p, 1);
                else {
                        char e[3] = { '%', hexd[*p >> 4], hexd[*p & 15] };
                        r = buf_append(b, e, 3);
                }
        }
        return r;
}

int s3_md5_base64(const void *p, size_t n, char out[25]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        if (EVP_Digest(p, n, md, &ml, EVP_md5(), NULL) != 1 || ml != 16)
                return -EIO;
        sodium_bin2base64(out, 25, md, 16, sodium_base64_VARIANT_ORIGINAL);
        return 0;
}

void s3_sha256_base64(const void *p, size_t n, char out[45]) {
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, p, n);
        sodium_bin2base64(out, 45, h, sizeof h, sodium_base64_VARIANT_ORIGINAL);
}

/* ---- one attempt ---- */

struct sink {
        struct s3_request *r;
        CURL *curl;
        struct buf *err;
        bool too_big;
};

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud) {
        struct sink *s = ud;
        size_t n = size * nmemb;
        long code = 0;

        (void) curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
        if (code < 200 || code >= 300) {
                /* keep the head of an error body, drop the rest */
                size_t room = s->err->len < ERROR_BODY_MAX ? ERROR_BODY_MAX - s->err->len : 0;
                if (room && buf_append(s->err, p, MIN(room, n)) < 0)
                        return 0;
                return n;
        }
        if (!s->r->out)
                return n;
        if (buf_append(s->r->out, p, n) < 0) {
                s->too_big = true;
                return 0;
        }
        return n;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud) {
        struct sink *s = ud;
        size_t n = size * nmemb;
        static const char etag[] = "etag:";

        if (n > sizeof etag && strncasecmp(p, etag, sizeof etag - 1) == 0) {
                const char *v = p + sizeof etag - 1, *e = p + n;
                while (v < e && (*v == ' ' || *v == '"'))
                        v++;
                while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '"'))
                        e--;
                size_t l = (size_t) (e - v);
                if (l < sizeof s->r->etag) {
                        memcpy(s->r->etag, v, l);
                        s->r->etag[l] = 0;
                }
        }
        return n;
}

static void backoff(struct s3_client *c, unsigned attempt) {
        uint64_t d = c->backoff_ms;
        for (unsigned i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
                d *= 2;
        if (d > BACKOFF_CAP_MS)
                d = BACKOFF_CAP_MS;
        /* full jitter over the upper half, so that many clients do not retry in step */
        d = d / 2 + randombytes_uniform((uint32_t) (d / 2 + 1));
        struct timespec ts = { .tv_sec = (time_t) (d / 1000), .tv_nsec = (long) (d % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static bool curl_transient(CURLcode cc) {
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return true;
        default:
                return false;
        }
}

static int curl_errno(CURLcode cc) {
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
                return -EKEYREJECTED;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        default:
                return -EIO;
        }
}

/* S3 error codes worth another try whatever their status (RequestTimeout is a 400). */
static bool code_transient(const char *code) {
        return strcmp(code, "SlowDown") == 0 || strcmp(code, "InternalError") == 0 ||
               strcmp(code, "ServiceUnavailable") == 0 || strcmp(code, "RequestTimeout") == 0 ||
               strcmp(code, "OperationAborted") == 0;
}

static int code_errno(const char *code, long status) {
        static const struct {
                const char *code;
                int err;
        } map[] = {
                { "NoSuchKey", -ENOENT },
                { "NoSuchBucket", -ENOENT },
                { "NoSuchUpload", -ENOENT },
                { "AccessDenied", -EACCES },
                { "AllAccessDisabled", -EACCES },
                { "SignatureDoesNotMatch", -EACCES },
                { "InvalidAccessKeyId", -EACCES },
                { "ExpiredToken", -EACCES },
                { "InvalidToken", -EACCES },
                { "TokenRefreshRequired", -EACCES },
                { "RequestTimeTooSkewed", -EACCES },
                { "AuthorizationHeaderMalformed", -EINVAL },
                { "PreconditionFailed", -EEXIST },
                { "ConditionalRequestConflict", -EBUSY },
                { "InvalidRange", -ERANGE },
                { "EntityTooLarge", -EFBIG },
                { "EntityTooSmall", -EINVAL },
                { "BadDigest", -EBADMSG },
                { "InvalidDigest", -EBADMSG },
                { "InvalidPart", -EBADMSG },
                { "InvalidPartOrder", -EINVAL },
                { "NotImplemented", -EOPNOTSUPP },
                { "InvalidRequest", -EINVAL },
                { "InvalidArgument", -EINVAL },
                { "InvalidBucketName", -EINVAL },
                { "KeyTooLongError", -ENAMETOOLONG },
                { "QuotaExceeded", -EDQUOT },
        };
        for (size_t i = 0; code && i < ELEMENTSOF(map); i++)
                if (strcmp(code, map[i].code) == 0)
                        return map[i].err;
        switch (status) {
        case 401:
        case 403:
                return -EACCES;
        case 404:
                return -ENOENT;
        case 409:
                return -EBUSY;
        case 412:
                return -EEXIST;
        case 416:
                return -ERANGE;
        case 501:
                return -EOPNOTSUPP;
        default:
                return status >= 500 ? -EIO : -EINVAL;
        }
}

static const char *code_hint(const char *code) {
        if (strcmp(code, "SignatureDoesNotMatch") == 0)
                return "the secret key is wrong, or the region or the clock differs from the server's";
        if (strcmp(code, "InvalidAccessKeyId") == 0)
                return "the server does not know this access key";
        if (strcmp(code, "RequestTimeTooSkewed") == 0)
                return "this machine's clock is too far from the server's";
        if (strcmp(code, "AccessDenied") == 0)
                return "the credentials are not allowed to do this";
        if (strcmp(code, "PermanentRedirect") == 0 || strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
            strcmp(code, "IllegalLocationConstraintException") == 0)
                return "the bucket is in another region than the one configured, or needs another endpoint";
        if (strcmp(code, "NoSuchBucket") == 0)
                return "create the bucket first, or check its name and the endpoint";
        return NULL;
}

static int build_url(struct s3_client *c, const struct s3_request *r, struct buf *u) {
        int k = buf_append_str(u, c->base);
        if (k >= 0 && r->key) {
                k = buf_append(u, "/", 1);
                if (k >= 0)
                        k = s3_uri_encode(u, r->key, true);
        } else if (k >= 0 && !c->path_style)
                k = buf_append(u, "/", 1);
        if (k >= 0 && r->query && *r->query)
                k = buf_printf(u, "?%s", r->query);
        return k < 0 ? k : (buf_str(u) ? 0 : -ENOMEM);
}

static int attempt(struct s3_client *c, struct s3_request *r, const char *url, struct buf *errbody, CURLcode *ret_cc) {
        struct curl_slist *h = NULL, *t;
        struct sink s = { .r = r, .curl = c->curl, .err = errbody };
        unsigned char sha[crypto_hash_sha256_BYTES];
        char shahex[2 * sizeof sha + 1], line[128];
        CURL *e = c->curl;
        CURLcode cc;
        curl_off_t ft = -1, cl = -1;
        int k = 0;

        crypto_hash_sha256(sha, r->body ? r->body : (const void *) "", r->body ? r->body_len : 0);
        hex_encode(sha, sizeof sha, shahex);
        snprintf(line, sizeof line, "x-amz-content-sha256: %s", shahex);
        /* the signed payload hash: the server checks the body against it */
        h = curl_slist_append(h, line);
        if (h && r->content_type) {
                snprintf(line, sizeof line, "Content-Type: %s", r->content_type);
                h = (t = curl_slist_append(h, line)) ? t : (curl_slist_free_all(h), NULL);
        }
        if (h && c->token_header)
                h = (t = curl_slist_append(h, c->token_header)) ? t : (curl_slist_free_all(h), NULL);
        for (struct curl_slist *x = r->headers; h && x; x = x->next)
                h = (t = curl_slist_append(h, x->data)) ? t : (curl_slist_free_all(h), NULL);
        if (!h)
                return -ENOMEM;

        curl_easy_reset(e);
        k |= curl_easy_setopt(e, CURLOPT_URL, url);
        k |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        k |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        k |= curl_easy_setopt(e, CURLOPT_AWS_SIGV4, c->sigv4);
        k |= curl_easy_setopt(e, CURLOPT_USERPWD, c->userpwd);
        k |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        k |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
        k |= curl_easy_setopt(e, CURLOPT_TIMEOUT, c->timeout_s);
        k |= curl_easy_setopt(e, CURLOPT_FILETIME, 1L);
        k |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
        k |= curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
        k |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
        k |= curl_easy_setopt(e, CURLOPT_HEADERDATA, &s);
        k |= curl_easy_setopt(e, CURLOPT_USERAGENT, "coffre-s3/1");
        if (c->ca_file)
                k |= curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
        if (strcmp(r->method, "HEAD") == 0)
                k |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        else if (strcmp(r->method, "GET") == 0)
                k |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        else {
                k |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
                if (r->body || strcmp(r->method, "DELETE") != 0) {
                        /* POSTFIELDS lets libcurl sign the body it sends */
                        k |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? (const char *) r->body : "");
                        k |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (r->body ? r->body_len : 0));
                }
        }
        if (k != CURLE_OK) {
                curl_slist_free_all(h);
                return -EINVAL;
        }
        cc = curl_easy_perform(e);
        curl_slist_free_all(h);
        /* the handle must not keep pointers to this stack frame or to the credentials' copy */
        (void) curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
        *ret_cc = cc;
        if (s.too_big)
                return -EFBIG;
        if (cc != CURLE_OK)
                return 0;
        (void) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
        if (curl_easy_getinfo(e, CURLINFO_FILETIME_T, &ft) == CURLE_OK && ft >= 0)
                r->last_modified = (int64_t) ft;
        if (curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
                r->content_length = (int64_t) cl;
        return 0;
}

int s3_request_perform(struct s3_client *c, struct s3_request *r) {
        _cleanup_buf_ struct buf url = {}, errbody = {};
        size_t out_start = r->out ? r->out->len : 0;
        char code[64] = "", msg[256] = "";
        int k;

        buf_init(&url, 8192);
        buf_init(&errbody, ERROR_BODY_MAX + 1);
        k = build_url(c, r, &url);
        if (k < 0)
                return s3_fail(c, k, "S3 %s: cannot build the request URL", r->method);
        c->err[0] = 0;
        for (c->attempts = 1;; c->attempts++) {
                CURLcode cc = CURLE_OK;
                bool transient;

                if (r->out)
                        r->out->len = out_start;
                errbody.len = 0;
                r->status = 0;
                r->etag[0] = 0;
                r->last_modified = -1;
                r->content_length = -1;
                code[0] = msg[0] = 0;
                k = attempt(c, r, buf_str(&url), &errbody, &cc);
                if (k == -EFBIG)
                        return s3_fail(c, k, "S3 %s: the answer is larger than the %zu bytes expected", r->method,
                                       r->out ? r->out->max : 0);
                if (k < 0)
                        return s3_fail(c, k, "S3 %s: %s", r->method, strerror(-k));
                if (cc != CURLE_OK) {
                        transient = curl_transient(cc);
                        k = curl_errno(cc);
                        s3_fail(c, k, "S3 %s: %s (after %u attempt%s)", r->method, curl_easy_strerror(cc), c->attempts,
                                c->attempts > 1 ? "s" : "");
                } else if (r->status >= 200 && r->status < 300)
                        return 0;
                else {
                        if (errbody.len && s3_xml_error(errbody.data, errbody.len, code, msg) < 0)
                                code[0] = msg[0] = 0;
                        transient = r->status >= 500 || r->status == 429 || (code[0] && code_transient(code));
                        if (r->status == 501)
                                transient = false;
                        k = code_errno(code[0] ? code : NULL, r->status);
                        const char *hint = code[0] ? code_hint(code) : NULL;
                        s3_fail(c, k, "S3 %s: %s%s%s (HTTP %ld)%s%s (after %u attempt%s)", r->method,
                                code[0] ? code : "error", msg[0] ? ": " : "", msg, r->status, hint ? ": " : "",
                                hint ? hint : "", c->attempts, c->attempts > 1 ? "s" : "");
                }
                if (!transient || c->attempts >= c->max_attempts) {
                        if (r->out)
                                r->out->len = out_start;
                        return k;
                }
                backoff(c, c->attempts);
        }
}
