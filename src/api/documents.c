/* documents.c: /v1/documents: streaming upload, listing, metadata, streaming download with Range,
 * deletion. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "api.h"
#include "core/lifecycle.h"
#include "buf.h"
#include "hex.h"
#include "log.h"
#include "timeutil.h"

json_t *api_document_json(const struct store_document *d) {
        char sha[65], created[RFC3339_MAX], until[RFC3339_MAX];
        hex_encode(d->sha256, 32, sha);
        rfc3339_format(d->created_at, created);
        rfc3339_format(d->retain_until, until);
        return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:o}", "id", d->id, "name", d->name, "class",
                         d->class_, "size", (json_int_t) d->size, "sha256", sha, "created_at", created, "retain_until",
                         until, "lock", d->lock, "document_date",
                         d->document_date[0] ? json_string(d->document_date) : json_null());
}

/* For the extra members of a problem answer (http_respond_problem_extra does not take them). */
static void decrefp(json_t **o) {
        json_decref(*o);
}

/* 400 unknown-class with the classes of the configuration. */
static int unknown_class(struct http_request *r) {
        struct vault *v = http_vault(r);
        const struct vault_config *c = vault_get_config(v);
        json_t *valid = json_array();
        for (size_t i = 0; valid && i < c->n_classes; i++)
                json_array_append_new(valid, json_string(c->classes[i].name));
        _cleanup_free_ char *names = vault_class_names(v);
        char detail[1024];
        snprintf(detail, sizeof detail, "No retention class of that name; the valid ones are: %s.",
                 names ? names : "?");
        _cleanup_(decrefp) json_t *extra = json_pack("{s:o}", "valid_classes", valid ? valid : json_array());
        return http_respond_problem_extra(r, 400, "unknown-class", "Unknown retention class", detail, extra);
}

/* 410 erased: what is left of the document. */
static int erased(struct http_request *r, const struct store_tombstone *t) {
        char sha[65], created[RFC3339_MAX], until[RFC3339_MAX], at[RFC3339_MAX];
        hex_encode(t->sha256, 32, sha);
        rfc3339_format(t->created_at, created);
        rfc3339_format(t->retain_until, until);
        rfc3339_format(t->erased_at, at);
        _cleanup_(decrefp) json_t *extra =
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", t->id, "class", t->class_, "sha256", sha,
                          "created_at", created, "retain_until", until, "erased_at", at, "why", t->why);
        return http_respond_problem_extra(r, 410, "erased", "Erased",
                                          "The document was erased: its key is destroyed and its content deleted.",
                                          extra);
}

int api_document_missing(struct http_request *r, const char *detail) {
        struct store_tombstone t;
        if (vault_tombstone_get(http_vault(r), http_actor(r), http_param(r, "id"), &t) >= 0)
                return erased(r, &t);
        return http_respond_problem(r, 404, "not-found", "Not found", detail);
}

static int missing(struct http_request *r) {
        return api_document_missing(r, "There is no such document.");
}

/* The document's JSON with its seal's level and times (null without a seal). */
static json_t *document_json_sealed(struct http_request *r, const struct store_document *d, int *ret_err) {
        struct store_seal s = { 0 };
        json_t *o = api_document_json(d);
        int k = vault_seal_get(http_vault(r), http_actor(r), d->id, &s);

        *ret_err = 0;
        if (k < 0 && k != -ENOENT) {
                json_decref(o);
                *ret_err = k;
                return NULL;
        }
        if (o && k == 0) {
                char t[RFC3339_MAX];
                rfc3339_format(s.signing_time, t);
                json_object_set_new(o, "seal_level", json_string(s.level));
                json_object_set_new(o, "seal_time", json_string(t));
                if (s.timestamp_time) {
                        rfc3339_format(s.timestamp_time, t);
                        json_object_set_new(o, "timestamp_time", json_string(t));
                } else
                        json_object_set_new(o, "timestamp_time", json_null());
        } else if (o) {
                json_object_set_new(o, "seal_level", json_null());
                json_object_set_new(o, "seal_time", json_null());
                json_object_set_new(o, "timestamp_time", json_null());
        }
        free(s.sealed);
        return o;
}

/* ---- upload ---- */

/* 64 hex digits, either case. */
static int parse_sha256_hex(const char *s, uint8_t out[32]) {
        char low[65];
        size_t l = strlen(s);
        if (l != 64)
                return -EINVAL;
        for (size_t i = 0; i < l; i++)
                low[i] = (char) (s[i] >= 'A' && s[i] <= 'F' ? s[i] + ('a' - 'A') : s[i]);
        low[l] = 0;
        return hex_decode(low, out, 32);
}

int api_documents_create_begin(struct http_request *r) {
        struct vault *v = http_vault(r);
        const char *name = http_query(r, "name");
        const char *class_ = http_query(r, "class");
        const char *want = http_header(r, "X-Content-SHA256");
        const char *date = http_query(r, "document_date");
        const char *why = NULL;
        uint8_t expected[32];

        if (api_refuse_if_stalled(r))
                return 0;
        if (!class_)
                class_ = vault_get_config(v)->default_class;
        if (!name)
                return http_respond_problem(r, 400, "bad-request", "Bad request",
                                            "The query parameter 'name' is required.");
        if (vault_check_name(name, &why) < 0 || vault_check_class(class_, &why) < 0)
                return http_respond_problem(r, 400, "bad-request", "Bad request", why);
        if (want && parse_sha256_hex(want, expected) < 0)
                return http_respond_problem(r, 400, "bad-request", "Bad request",
                                            "X-Content-SHA256 must be 64 hexadecimal digits.");
        if (date && !date[0])
                return http_respond_problem(r, 400, "bad-request", "Bad request",
                                            "document_date must be a date YYYY-MM-DD that exists (from 1970).");
        if (!vault_get_config(v) || !vault_config_class(vault_get_config(v), class_))
                return unknown_class(r);
        struct vault_upload *u = NULL;
        int k = vault_upload_begin_dated(v, http_actor(r), name, class_, date, want ? expected : NULL, &u);
        if (k == -ENOENT)
                return unknown_class(r);
        if (k == -EINVAL && date)
                return http_respond_problem(r, 400, "bad-request", "Bad request",
                                            "document_date must be a date YYYY-MM-DD that exists (from 1970).");
        if (k < 0)
                return http_respond_errno(r, k, "cannot start the upload");
        http_set_state(r, u);
        return 0;
}

int api_documents_create_body(struct http_request *r, const uint8_t *p, size_t n) {
        struct vault_upload *u = http_state(r);
        return u ? vault_upload_write(u, p, n) : -EIO;
}

int api_documents_create_end(struct http_request *r) {
        struct vault_upload *u = http_state(r);
        struct store_document d;
        char loc[64];

        if (!u)
                return -EIO;
        http_set_state(r, NULL);
        int k = vault_upload_finish(u, http_request_id(r), &d);
        if (k == -EBADMSG)
                return http_respond_problem(r, 422, "hash-mismatch", "Hash mismatch",
                                            "The body does not match X-Content-SHA256; nothing was stored.");
        if (k == -EPIPE) {
                if (http_header_add(r, "Retry-After", "5") < 0)
                        return -ENOMEM;
                return http_respond_problem(r, 503, "signer-unavailable", "Service unavailable",
                                            "The document could not be sealed (the signer is restarting); nothing "
                                            "was stored. Try again shortly.");
        }
        if (k < 0)
                return http_respond_errno(r, k, "cannot store the document");
        snprintf(loc, sizeof loc, "/v1/documents/%s", d.id);
        /* stored and logged: a 201 without its Location is still the truth */
        if (http_header_add(r, "Location", loc) < 0)
                log_warn("request %s: no Location header on the answer", http_request_id(r));
        json_t *o = document_json_sealed(r, &d, &k);
        if (k < 0) /* stored and logged: say so, without the seal's fields */
                o = api_document_json(&d);
        return http_respond_json(r, 201, o);
}

void api_documents_create_cleanup(struct http_request *r) {
        struct vault_upload *u = http_state(r);
        if (u) {
                http_set_state(r, NULL);
                vault_upload_abort(u);
        }
}

/* ---- listing and metadata ---- */

static int parse_date(struct http_request *r, const char *key, int64_t *ret) {
        const char *s = http_query(r, key);
        if (!s)
                return 0;
        return rfc3339_parse(s, ret);
}

int api_documents_list(struct http_request *r) {
        struct store_document_filter f = {
                .created_after = INT64_MIN,
                .created_before = INT64_MAX,
                .limit = 100,
        };
        const char *why = NULL;
        const char *lim = http_query(r, "limit");
        const char *name = http_query(r, "name");

        f.class_ = http_query(r, "class");
        f.cursor = http_query(r, "cursor");
        if (f.class_ && vault_check_class(f.class_, &why) < 0)
                return http_respond_problem(r, 400, "bad-request", "Bad request", why);
        /* an exact name, the rules of an upload's: no stored name can match another */
        if (name && vault_check_name(name, &why) < 0)
                return http_respond_problem(r, 400, "bad-request", "Bad request", why);
        if (parse_date(r, "created_after", &f.created_after) < 0 ||
            parse_date(r, "created_before", &f.created_before) < 0)
                return http_respond_problem(r, 400, "bad-request", "Bad request",
                                            "created_after and created_before must be RFC 3339 dates.");
        if (lim) {
                /* plain decimal digits like every number of the API: strtol would take "+5" and " 5" */
                size_t l = 0, i = 0;
                for (; lim[i] >= '0' && lim[i] <= '9' && l <= 1000; i++)
                        l = l * 10 + (size_t) (lim[i] - '0');
                if (i == 0 || lim[i] || l < 1 || l > 1000)
                        return http_respond_problem(r, 400, "bad-request", "Bad request",
                                                    "limit must be a number between 1 and 1000.");
                f.limit = l;
        }
        struct store_document *docs = NULL;
        size_t n = 0;
        _cleanup_free_ char *next = NULL;
        int k = vault_document_list(http_vault(r), http_actor(r), &f, name, &docs, &n, &next);
        if (k == -EINVAL) {
                return http_respond_problem(r, 400, "bad-request", "Bad request", "The cursor is not valid.");
        }
        if (k < 0)
                return http_respond_errno(r, k, "cannot list documents");
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
                json_array_append_new(arr, api_document_json(&docs[i]));
        vault_document_list_free(docs, n);
        json_t *o = json_pack("{s:o, s:o}", "documents", arr ? arr : json_array(), "next_cursor",
                              next ? json_string(next) : json_null());
        return http_respond_json(r, 200, o);
}

int api_documents_get(struct http_request *r) {
        struct store_document d;
        int k = vault_document_get(http_vault(r), http_actor(r), http_param(r, "id"), &d);
        if (k == -ENOENT)
                return missing(r);
        if (k < 0)
                return http_respond_errno(r, k, "There is no such document.");
        json_t *o = document_json_sealed(r, &d, &k);
        if (k < 0)
                return http_respond_errno(r, k, "cannot read the seal");
        return http_respond_json(r, 200, o);
}

/* ---- download ---- */

#define PREFETCH_MIN ((uint64_t) 1024 * 1024)

struct download {
        struct vault_reader *rd;
        uint64_t start, len;
};

/* Fills as much of buf as it can (whole segments at a time) to keep calls and copies few. */
static ssize_t download_fn(void *ud, uint64_t pos, uint8_t *buf, size_t max) {
        struct download *d = ud;
        size_t done = 0;
        if (pos >= d->len)
                return 0;
        max = (size_t) MIN((uint64_t) max, d->len - pos);
        while (done < max) {
                size_t n = 0;
                int k = vault_reader_read(d->rd, d->start + pos + done, buf + done, max - done, &n);
                if (k < 0)
                        return done ? (ssize_t) done : k;
                if (n == 0)
                        return done ? (ssize_t) done : -EIO;
                done += n;
        }
        return (ssize_t) done;
}

static void download_free(void *ud) {
        struct download *d = ud;
        if (!d)
                return;
        vault_reader_free(d->rd);
        free(d);
}

/* Parses a single "bytes=" range. 1 = a range to serve, 0 = serve everything (absent, malformed
 * or several ranges: RFC 9110 lets a server ignore those), -ERANGE = unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *ret_start, uint64_t *ret_len) {
        if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
                return 0;
        const char *p = h + 6;
        char *end = NULL;
        if (*p == '-') {
                if (p[1] < '0' || p[1] > '9')
                        return 0;
                errno = 0;
                unsigned long long n = strtoull(p + 1, &end, 10);
                if (errno || *end)
                        return 0;
                if (n == 0 || size == 0)
                        return -ERANGE;
                n = MIN(n, size);
                *ret_start = size - n;
                *ret_len = n;
                return 1;
        }
        if (*p < '0' || *p > '9')
                return 0;
        errno = 0;
        unsigned long long a = strtoull(p, &end, 10);
        if (errno || *end != '-')
                return 0;
        p = end + 1;
        unsigned long long b = UINT64_MAX;
        if (*p) {
                if (*p < '0' || *p > '9')
                        return 0;
                b = strtoull(p, &end, 10);
                if (errno || *end || b < a)
                        return 0;
        }
        if (a >= size)
                return -ERANGE;
        if (b >= size)
                b = size - 1;
        *ret_start = a;
        *ret_len = b - a + 1;
        return 1;
}

/* Content-Disposition with an ASCII fallback and the exact UTF-8 name (RFC 6266, RFC 8187). */
static int content_disposition(const char *name, struct buf *b) {
        static const char attr[] = "!#$&+-.^_`|~";
        int k = buf_append_str(b, "attachment; filename=\"");
        for (const unsigned char *p = (const unsigned char *) name; k >= 0 && *p; p++) {
                char c = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '%') ? (char) *p : '_';
                k = buf_append(b, &c, 1);
        }
        if (k >= 0)
                k = buf_append_str(b, "\"; filename*=UTF-8''");
        for (const unsigned char *p = (const unsigned char *) name; k >= 0 && *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    (*p < 0x80 && strchr(attr, *p)))
                        k = buf_append(b, p, 1);
                else
                        k = buf_printf(b, "%%%02X", *p);
        }
        return k;
}

int api_documents_content(struct http_request *r) {
        struct store_document doc;
        struct vault_reader *rd = NULL;
        char etag[68], sha[65], crange[96];
        uint64_t start = 0, len;

        int k = vault_document_open(http_vault(r), http_actor(r), http_param(r, "id"), http_request_id(r), &doc, &rd);
        if (k == -ENOENT)
                return missing(r);
        if (k < 0)
                return http_respond_errno(r, k,
                                          k == -ENOENT ? "There is no such document." : "cannot read the document");
        len = doc.size;
        hex_encode(doc.sha256, 32, sha);
        snprintf(etag, sizeof etag, "\"%s\"", sha);
        _cleanup_buf_ struct buf cd = {};
        buf_init(&cd, 4096);
        if ((k = http_header_add(r, "ETag", etag)) < 0 || (k = http_header_add(r, "Accept-Ranges", "bytes")) < 0 ||
            (content_disposition(doc.name, &cd) >= 0 &&
             (k = http_header_add(r, "Content-Disposition", buf_str(&cd))) < 0)) {
                vault_reader_free(rd);
                return k;
        }

        unsigned status = 200;
        k = parse_range(http_header(r, "Range"), doc.size, &start, &len);
        if (k == -ERANGE) {
                vault_reader_free(rd);
                snprintf(crange, sizeof crange, "bytes */%" PRIu64, doc.size);
                if ((k = http_header_add(r, "Content-Range", crange)) < 0)
                        return k;
                return http_respond_problem(r, 416, "range-not-satisfiable", "Range not satisfiable",
                                            "The requested range is outside the document.");
        }
        if (k == 1) {
                status = 206;
                snprintf(crange, sizeof crange, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, start + len - 1,
                         doc.size);
                if ((k = http_header_add(r, "Content-Range", crange)) < 0) {
                        vault_reader_free(rd);
                        return k;
                }
        } else {
                start = 0;
                len = doc.size;
        }
        struct download *d = calloc(1, sizeof *d);
        if (!d) {
                vault_reader_free(rd);
                return -ENOMEM;
        }
        *d = (struct download){ .rd = rd, .start = start, .len = len };
        /* large answers: decrypt ahead on a second core while this thread sends */
        if (len >= PREFETCH_MIN && vault_reader_prefetch(rd, start, len) < 0)
                log_warn("no read-ahead for this download; reading directly");
        return http_respond_stream(r, status, "application/octet-stream", len, download_fn, d, download_free);
}

/* 409 retention-active or legal-hold, with the document's class and end of retention. */
static int refused(struct http_request *r, const struct store_document *d, enum vault_refusal why, const char *detail) {
        char until[RFC3339_MAX];
        rfc3339_format(d->retain_until, until);
        _cleanup_(decrefp) json_t *extra =
                json_pack("{s:s, s:s, s:s}", "class", d->class_, "retain_until", until, "lock", d->lock);
        if (why == VAULT_REFUSED_HOLD)
                return http_respond_problem_extra(r, 409, "legal-hold", "Legal hold",
                                                  "The document is under a legal hold; nothing was changed.", extra);
        if (why == VAULT_REFUSED_SHORTER)
                return http_respond_problem_extra(r, 409, "retention-shortened", "Retention would be shortened", detail,
                                                  extra);
        return http_respond_problem_extra(r, 409, "retention-active", "Retention active", detail, extra);
}

int api_documents_delete(struct http_request *r) {
        static const struct api_field fields[] = { { "reason", JSON_STRING, 1024, true, false } };
        _cleanup_(api_json_decrefp) json_t *body = NULL;
        const char *reason = http_query(r, "reason");
        struct store_document d;
        enum vault_refusal why;

        if (api_refuse_if_stalled(r))
                return 0;
        if (!api_json_empty(r)) {
                body = api_json_parse(r, fields, 1);
                if (!body)
                        return 0;
                if (reason)
                        return api_bad_request(r, "Give the reason in the body or in the query, not both.");
                reason = api_json_str(body, "reason");
        }
        if (reason && (!reason[0] || strlen(reason) > 1024))
                return api_bad_request(r, "reason must be 1 to 1024 bytes.");
        int k = vault_document_delete_checked(http_vault(r), http_actor(r), http_param(r, "id"), reason,
                                              http_request_id(r), &d, &why);
        if (k == -ENOTCONN || k == -ENOENT)
                return missing(r);
        if (k == -EPERM) {
                const struct vault_actor *a = http_actor(r);
                const char *detail =
                        strcmp(d.lock, "governance") != 0
                                ? "The document is retained under a compliance lock until retain_until: no one can "
                                  "delete it before."
                        : strcmp(a->role, "owner") != 0
                                ? "The document is retained until retain_until; under its governance lock only an "
                                  "owner can delete it early, with a reason."
                                : "The document is retained until retain_until; to delete it early under its "
                                  "governance lock, give a reason.";
                int x = refused(r, &d, why, detail);
                sodium_memzero(d.name, sizeof d.name);
                return x;
        }
        if (k < 0)
                return http_respond_errno(r, k, "cannot delete the document");
        return http_respond_empty(r, 204);
}

int api_documents_update(struct http_request *r) {
        static const struct api_field fields[] = { { "class", JSON_STRING, STORE_CLASS_MAX, true, false } };
        _cleanup_(api_json_decrefp) json_t *body = NULL;
        struct store_document d;
        enum vault_refusal why;
        bool unknown = false;
        const char *reason = NULL;

        if (api_refuse_if_stalled(r))
                return 0;
        body = api_json_parse(r, fields, 1);
        if (!body)
                return 0;
        const char *class_ = api_json_str(body, "class");
        if (vault_check_class(class_, &reason) < 0)
                return api_bad_request(r, reason);
        int k = vault_document_set_class(http_vault(r), http_actor(r), http_param(r, "id"), class_, http_request_id(r),
                                         &d, &unknown, &why);
        if (k == -ENOENT)
                return unknown ? unknown_class(r) : missing(r);
        if (k == -EPERM) {
                int x = refused(r, &d, why,
                                "A class may only change to one that keeps the document at least as long and "
                                "locks it at least as strictly; nothing was changed.");
                sodium_memzero(d.name, sizeof d.name);
                return x;
        }
        if (k < 0)
                return http_respond_errno(r, k, "cannot change the class");
        int x = http_respond_json(r, 200, api_document_json(&d));
        sodium_memzero(d.name, sizeof d.name);
        return x;
}
