/* client.c: HTTP requests to the coffre server with libcurl. TLS is always verified, redirects
 * are never followed (the token must not travel elsewhere), bodies stream in both directions and
 * error answers become one line on stderr. */
#include "client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "fileio.h"

#define PROBLEM_MAX ((size_t) 64 * 1024)
#define UPLOAD_PIECE ((size_t) 64 * 1024)
#define ETAG_MAX 256
#define AUTH_PREFIX "Authorization: Bearer "

struct client {
        CURL *curl;
        char *url;
        char *cacert;
        char *token; /* secure memory */
        char errbuf[CURL_ERROR_SIZE];
};

struct request {
        CURL *curl;
        long status;     /* of the final answer, known from its first body byte */
        struct buf body; /* JSON answer or error body */
        bool body_too_large;
        char *etag;
        /* download */
        client_sink_fn sink;
        void *userdata;
        uint64_t received;
        /* upload */
        int fd;
        uint64_t size;
        uint64_t sent;
        struct progress *progress;
        int cb_error; /* negative errno from a callback, already reported */
        /* JSON request body (POST, PATCH, DELETE), wiped by the caller after the request */
        const char *json_body;
        size_t json_len;
        bool quiet; /* an error answer is left to the caller, not printed */
};

static void request_done(struct request *r) {
        buf_free(&r->body);
        free(r->etag);
}

static int client_make(const struct client_config *cfg, bool with_token, struct client **ret) {
        static bool curl_ready;
        int r;

        if (!curl_ready) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                        cli_error("cannot initialise libcurl");
                        return -EIO;
                }
                curl_ready = true;
        }
        _cleanup_(client_freep) struct client *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->curl = curl_easy_init();
        c->url = strdup(cfg->url);
        c->cacert = cfg->cacert ? strdup(cfg->cacert) : NULL;
        if (!c->curl || !c->url || (cfg->cacert && !c->cacert))
                return -ENOMEM;
        if (with_token) {
                r = client_config_token(cfg, &c->token);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int client_new(const struct client_config *cfg, struct client **ret) {
        return client_make(cfg, true, ret);
}

int client_new_anonymous(const struct client_config *cfg, struct client **ret) {
        return client_make(cfg, false, ret);
}

void client_free(struct client *c) {
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        client_token_free(c->token);
        free(c->url);
        free(c->cacert);
        free(c);
}

int client_url_encode(struct buf *b, const char *s) {
        static const char hexd[] = "0123456789ABCDEF";
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                int r;
                if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                    *p == '.' || *p == '_' || *p == '~')
                        r = buf_append(b, p, 1);
                else {
                        char e[3] = { '%', hexd[*p >> 4], hexd[*p & 15] };
                        r = buf_append(b, e, 3);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static void slist_free_wiped(struct curl_slist *l) {
        for (struct curl_slist *i = l; i; i = i->next)
                if (i->data)
                        sodium_memzero(i->data, strlen(i->data));
        curl_slist_free_all(l);
}

/* Appends a copy of s; on failure the list is left as it was (curl_slist_append would lose it). */
static int slist_add(struct curl_slist **l, const char *s) {
        struct curl_slist *n = curl_slist_append(*l, s);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
        struct request *req = userdata;
        size_t n = size * nmemb;

        if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                /* a new response (after 100 Continue): forget the previous one's headers */
                free(req->etag);
                req->etag = NULL;
        } else if (n > 5 && strncasecmp(data, "etag:", 5) == 0) {
                size_t i = 5, end = n;
                while (i < end && (data[i] == ' ' || data[i] == '\t'))
                        i++;
                while (end > i && (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' '))
                        end--;
                if (end - i <= ETAG_MAX) {
                        free(req->etag);
                        req->etag = strndup(data + i, end - i);
                }
        }
        return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
        struct request *req = userdata;
        size_t n = size * nmemb;

        if (req->status == 0)
                curl_easy_getinfo(req->curl, CURLINFO_RESPONSE_CODE, &req->status);
        if (req->sink && req->status == 200) {
                int r = req->sink(data, n, req->userdata);
                if (r < 0) {
                        req->cb_error = r;
                        return 0; /* aborts the transfer */
                }
                req->received += n;
                progress_update(req->progress, req->received);
                return n;
        }
        if (buf_append(&req->body, data, n) < 0) {
                req->body_too_large = true;
                return 0;
        }
        return n;
}

static size_t on_read(char *dest, size_t size, size_t nmemb, void *userdata) {
        struct request *req = userdata;
        size_t want = MIN(size * nmemb, UPLOAD_PIECE);

        if (req->sent >= req->size)
                return 0;
        want = (size_t) MIN((uint64_t) want, req->size - req->sent);
        ssize_t n = read_full(req->fd, dest, want);
        if (n < 0) {
                cli_error("cannot read the file being uploaded: %s", strerror((int) -n));
                req->cb_error = (int) n;
                return CURL_READFUNC_ABORT;
        }
        if (n == 0) {
                cli_error("the file got shorter while it was being uploaded; upload aborted");
                req->cb_error = -ESTALE;
                return CURL_READFUNC_ABORT;
        }
        req->sent += (uint64_t) n;
        progress_update(req->progress, req->sent);
        return (size_t) n;
}

/* libcurl rewinds the body when it must send it again (e.g. after a refused 100-continue). */
static int on_seek(void *userdata, curl_off_t offset, int origin) {
        struct request *req = userdata;

        if (origin != SEEK_SET || offset < 0 || (uint64_t) offset > req->size)
                return CURL_SEEKFUNC_CANTSEEK;
        if (lseek(req->fd, (off_t) offset, SEEK_SET) < 0)
                return CURL_SEEKFUNC_FAIL;
        req->sent = (uint64_t) offset;
        return CURL_SEEKFUNC_OK;
}

static int status_errno(long status) {
        switch (status) {
        case 400:
                return -EINVAL;
        case 401:
                return -EACCES;
        case 403:
                return -EPERM;
        case 404:
                return -ENOENT;
        case 409:
                return -EBUSY;
        case 413:
                return -EFBIG;
        case 429:
                return -EAGAIN;
        default:
                return status >= 500 && status < 600 ? -EIO : -EPROTO;
        }
}

static const char *json_str(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Prints the error answer req holds: "coffre: <title>: <detail> (HTTP <status>)". */
static int report_http_error(struct client *c, struct request *req) {
        _cleanup_free_ char *title = NULL, *detail = NULL;
        json_t *o = NULL;

        if (req->body.len > 0 && req->body.len <= PROBLEM_MAX)
                o = json_loadb((const char *) req->body.data, req->body.len, 0, NULL);
        if (json_is_object(o) && json_str(o, "title")) {
                title = cli_escape(json_str(o, "title"));
                if (json_str(o, "detail"))
                        detail = cli_escape(json_str(o, "detail"));
        }
        json_decref(o);
        if (title && detail && detail[0])
                cli_error("%s: %s (HTTP %ld)", title, detail, req->status);
        else if (title)
                cli_error("%s (HTTP %ld)", title, req->status);
        else if (req->status >= 300 && req->status < 400)
                cli_error("the server at %s answered with a redirect (HTTP %ld), which coffre does not follow", c->url,
                          req->status);
        else
                cli_error("the server at %s answered HTTP %ld", c->url, req->status);
        if (req->status == 401 && title && c->token)
                cli_error("check the API token (COFFRE_TOKEN or token_file=), or log in again with coffre login");
        return status_errno(req->status);
}

static int report_curl_error(struct client *c, CURLcode cc) {
        const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
        long os_errno = 0;

        switch (cc) {
        case CURLE_COULDNT_CONNECT:
                curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
                if (os_errno == ECONNREFUSED) {
                        cli_error("cannot connect to %s: connection refused (is `coffre serve` running there?)",
                                  c->url);
                        return -ECONNREFUSED;
                }
                cli_error("cannot connect to %s: %s", c->url, why);
                return -EHOSTUNREACH;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                cli_error("cannot find the host of %s: %s", c->url, why);
                return -EHOSTUNREACH;
        case CURLE_PEER_FAILED_VERIFICATION:
                cli_error("the certificate of %s is not trusted (%s): use --cacert DATA/tls/cert.pem, "
                          "COFFRE_CACERT or cacert= in the config file",
                          c->url, why);
                return -EKEYREJECTED;
        case CURLE_SSL_CACERT_BADFILE:
                cli_error("cannot load the CA certificate %s: %s", c->cacert ? c->cacert : "(system store)", why);
                return -EKEYREJECTED;
        case CURLE_SSL_CONNECT_ERROR:
                cli_error("TLS handshake with %s failed: %s", c->url, why);
                return -EPROTO;
        case CURLE_OPERATION_TIMEDOUT:
                cli_error("timed out talking to %s: %s", c->url, why);
                return -ETIMEDOUT;
        default:
                cli_error("request to %s failed: %s", c->url, why);
                return -EPROTO;
        }
}

/* Runs one request on the client's handle. method is "GET", "POST" or "DELETE"; for POST, req
 * carries fd and size and extra holds the body's headers. Returns 0 on a 2xx answer. */
static int perform(struct client *c, const char *method, const char *path, struct curl_slist *extra, bool want_json,
                   struct request *req) {
        struct curl_slist *headers = NULL;
        struct buf url, auth;
        CURLcode cc;
        int r;

        buf_init(&url, 16384);
        buf_init(&auth, CLIENT_TOKEN_MAX + 64);
        r = buf_append_str(&url, c->url);
        if (r >= 0)
                r = buf_append_str(&url, path);
        /* reserved up front so the token is never left behind by a realloc */
        if (r >= 0 && c->token)
                r = buf_reserve(&auth, strlen(AUTH_PREFIX) + strlen(c->token));
        if (r >= 0 && c->token)
                r = buf_append_str(&auth, AUTH_PREFIX);
        if (r >= 0 && c->token)
                r = buf_append_str(&auth, c->token);
        if (r < 0) {
                buf_free(&url);
                buf_free_secure(&auth);
                cli_error("request too large");
                return r;
        }
        if (c->token)
                r = slist_add(&headers, buf_str(&auth));
        buf_free_secure(&auth);
        if (r >= 0 && req->json_body)
                r = slist_add(&headers, "Content-Type: application/json");
        if (r >= 0 && want_json)
                r = slist_add(&headers, "Accept: application/json, application/problem+json");
        for (struct curl_slist *i = extra; r >= 0 && i; i = i->next)
                r = slist_add(&headers, i->data);
        if (r < 0) {
                slist_free_wiped(headers);
                buf_free(&url);
                return r;
        }

        CURL *h = c->curl;
        curl_easy_reset(h); /* keeps the connection cache */
        c->errbuf[0] = 0;
        req->curl = h;
        buf_init(&req->body, want_json ? CLIENT_JSON_MAX : PROBLEM_MAX);
        curl_easy_setopt(h, CURLOPT_URL, buf_str(&url));
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(h, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        if (c->cacert)
                curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer ends after 5 minutes */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 300L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "coffre-cli/0.1");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, req);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, req);
        if (req->json_body) {
                /* not copied by libcurl: the caller wipes it (it may hold a password) */
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->json_body);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->json_len);
                if (strcmp(method, "POST") != 0)
                        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        } else if (strcmp(method, "POST") == 0) {
                curl_easy_setopt(h, CURLOPT_POST, 1L);
                curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(h, CURLOPT_READDATA, req);
                curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
                curl_easy_setopt(h, CURLOPT_SEEKDATA, req);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->size);
        } else if (strcmp(method, "DELETE") == 0)
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");

        cc = curl_easy_perform(h);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        slist_free_wiped(headers);
        buf_free(&url);

        if (req->cb_error < 0)
                return req->cb_error;
        if (req->body_too_large) {
                cli_error("the answer from %s is too large", c->url);
                return -EFBIG;
        }
        if (cc != CURLE_OK)
                return report_curl_error(c, cc);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &req->status);
        if (req->status < 200 || req->status > 299)
                return req->quiet ? status_errno(req->status) : report_http_error(c, req);
        return 0;
}

static int parse_json_answer(struct client *c, struct request *req, json_t **ret) {
        json_error_t err;
        json_t *o = json_loadb((const char *) req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &err);

        if (!json_is_object(o)) {
                json_decref(o);
                cli_error("the answer from %s is not a JSON object", c->url);
                return -EPROTO;
        }
        *ret = o;
        return 0;
}

int client_get_json(struct client *c, const char *path, json_t **ret) {
        struct request req = { .fd = -1 };
        int r = perform(c, "GET", path, NULL, true, &req);
        if (r >= 0)
                r = parse_json_answer(c, &req, ret);
        request_done(&req);
        return r;
}

int client_delete(struct client *c, const char *path) {
        struct request req = { .fd = -1 };
        int r = perform(c, "DELETE", path, NULL, true, &req);
        request_done(&req);
        return r;
}

int client_upload(struct client *c, const char *path, int fd, uint64_t size, const char *sha256_hex, struct progress *p,
                  json_t **ret) {
        struct request req = { .fd = fd, .size = size, .progress = p };
        struct curl_slist *extra = NULL;
        char sha_header[128];
        int r;

        snprintf(sha_header, sizeof sha_header, "X-Content-SHA256: %s", sha256_hex);
        r = slist_add(&extra, "Content-Type: application/octet-stream");
        if (r >= 0)
                r = slist_add(&extra, sha_header);
        if (r < 0) {
                curl_slist_free_all(extra);
                return r;
        }
        r = perform(c, "POST", path, extra, true, &req);
        curl_slist_free_all(extra);
        if (r >= 0)
                r = parse_json_answer(c, &req, ret);
        request_done(&req);
        return r;
}

int client_send_json(struct client *c, const char *method, const char *path, json_t *body, json_t **ret,
                     struct client_problem *ret_problem) {
        struct request req = { .fd = -1, .quiet = ret_problem != NULL };
        char *text = NULL;
        int r;

        if (ret_problem) /* status 0 after a failure: a transport error, already printed */
                *ret_problem = (struct client_problem){};
        if (body) {
                text = json_dumps(body, JSON_COMPACT);
                if (!text)
                        return -ENOMEM;
                req.json_body = text;
                req.json_len = strlen(text);
        } else if (strcmp(method, "POST") == 0) {
                req.json_body = "{}";
                req.json_len = 2;
        }
        r = perform(c, method, path, NULL, true, &req);
        if (text) {
                sodium_memzero(text, req.json_len);
                free(text);
        }
        if (r >= 0 && ret) {
                *ret = NULL;
                if (req.body.len > 0)
                        r = parse_json_answer(c, &req, ret);
        } else if (r < 0 && ret_problem && req.status >= 300) {
                *ret_problem = (struct client_problem){ .status = req.status };
                if (req.body.len > 0 && req.body.len <= PROBLEM_MAX)
                        ret_problem->body = json_loadb((const char *) req.body.data, req.body.len, 0, NULL);
                if (!json_is_object(ret_problem->body)) {
                        json_decref(ret_problem->body);
                        ret_problem->body = NULL;
                }
                ret_problem->type = ret_problem->body ? json_str(ret_problem->body, "type") : NULL;
        }
        buf_free_secure(&req.body); /* the answer may hold a token */
        free(req.etag);
        return r;
}

int client_report_problem(struct client *c, const struct client_problem *p) {
        struct request req = { .status = p->status };
        int r;

        buf_init(&req.body, PROBLEM_MAX);
        _cleanup_free_ char *s = p->body ? json_dumps(p->body, JSON_COMPACT) : NULL;
        if (s && buf_append_str(&req.body, s) < 0)
                buf_clear(&req.body);
        r = report_http_error(c, &req);
        buf_free(&req.body);
        return r;
}

void client_problem_done(struct client_problem *p) {
        json_decref(p->body);
        *p = (struct client_problem){};
}

int client_download(struct client *c, const char *path, client_sink_fn sink, void *userdata, struct progress *p,
                    char **ret_etag) {
        struct request req = { .fd = -1, .sink = sink, .userdata = userdata, .progress = p };
        int r = perform(c, "GET", path, NULL, false, &req);
        if (r >= 0 && req.status != 200) {
                cli_error("the server at %s answered HTTP %ld instead of the document", c->url, req.status);
                r = -EPROTO;
        }
        if (r >= 0 && ret_etag)
                *ret_etag = TAKE_PTR(req.etag);
        request_done(&req);
        return r;
}
