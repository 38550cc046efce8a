/* body.c: small JSON request bodies for the account routes: collected up to a cap, parsed
 * strictly (an object, no duplicate or unknown member, each of the expected type and length),
 * and the problem answers of the account rules' errors. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "buf.h"
#include "log.h"

#define BODY_MAX (64 * 1024)

/* The answer is queued or, when it cannot be, the connection closes: refused either way. */
static void answered(int k) {
        if (k < 0)
                log_warn("an answer to a bad body could not be queued: %s", strerror(-k));
}

/* The body may hold a password: it is wiped when freed. */
struct json_body {
        struct buf b;
        bool too_big;
};

int api_json_begin(struct http_request *r) {
        struct json_body *jb = calloc(1, sizeof *jb);
        if (!jb)
                return -ENOMEM;
        buf_init(&jb->b, BODY_MAX);
        http_set_state(r, jb);
        return 0;
}

int api_json_chunk(struct http_request *r, const uint8_t *p, size_t n) {
        struct json_body *jb = http_state(r);
        if (!jb || jb->too_big)
                return 0;
        if (buf_append(&jb->b, p, n) < 0) {
                jb->too_big = true;
                buf_free_secure(&jb->b);
        }
        return 0;
}

void api_json_cleanup(struct http_request *r) {
        struct json_body *jb = http_state(r);
        if (!jb)
                return;
        http_set_state(r, NULL);
        buf_free_secure(&jb->b);
        free(jb);
}

bool api_json_empty(struct http_request *r) {
        struct json_body *jb = http_state(r);
        return !jb || (!jb->too_big && jb->b.len == 0);
}

int api_bad_request(struct http_request *r, const char *detail) {
        return http_respond_problem(r, 400, "bad-request", "Bad request", detail);
}

static int bad_field(struct http_request *r, const char *name, const char *what) {
        char d[160];
        snprintf(d, sizeof d, "'%s' %s; nothing was changed.", name, what);
        return api_bad_request(r, d);
}

json_t *api_json_parse(struct http_request *r, const struct api_field *fields, size_t n) {
        struct json_body *jb = http_state(r);
        json_error_t err;

        if (jb && jb->too_big) {
                answered(http_respond_problem(r, 413, "payload-too-large", "Payload too large",
                                              "The JSON body is larger than 64 KiB; nothing was changed."));
                return NULL;
        }
        if (!jb || jb->b.len == 0) {
                answered(api_bad_request(r, "A JSON object body is required."));
                return NULL;
        }
        json_t *o = json_loadb((const char *) jb->b.data, jb->b.len, JSON_REJECT_DUPLICATES, &err);
        sodium_memzero(&err, sizeof err); /* it may quote the body */
        if (!o || !json_is_object(o)) {
                api_json_free_secret(&o);
                answered(api_bad_request(r, "The body is not a JSON object."));
                return NULL;
        }
        const char *key;
        json_t *val;
        json_object_foreach(o, key, val) {
                size_t i;
                for (i = 0; i < n && strcmp(fields[i].name, key) != 0; i++)
                        ;
                if (i == n) {
                        char d[160];
                        /* the member's name as far as it is short and printable */
                        bool plain = strlen(key) <= 40;
                        for (const char *p = key; plain && *p; p++)
                                plain = *p > 0x20 && *p < 0x7f && *p != '\'';
                        snprintf(d, sizeof d, "Unknown field '%s'; nothing was changed.", plain ? key : "?");
                        api_json_free_secret(&o);
                        answered(api_bad_request(r, d));
                        return NULL;
                }
                const struct api_field *f = &fields[i];
                bool ok = f->type == JSON_TRUE      ? json_is_boolean(val)
                          : f->type == JSON_INTEGER ? json_is_integer(val)
                          : f->type == JSON_ARRAY   ? json_is_array(val)
                          : f->type == JSON_OBJECT  ? json_is_object(val)
                                                    : json_is_string(val);
                if (f->nullable && json_is_null(val))
                        ok = true;
                if (!ok) {
                        api_json_free_secret(&o);
                        answered(bad_field(r, f->name,
                                           f->type == JSON_TRUE      ? "must be true or false"
                                           : f->type == JSON_INTEGER ? "must be an integer"
                                           : f->type == JSON_ARRAY   ? "must be an array"
                                           : f->type == JSON_OBJECT  ? "must be an object"
                                                                     : "must be a string"));
                        return NULL;
                }
                if (json_is_string(val) &&
                    (json_string_length(val) > f->max || strlen(json_string_value(val)) != json_string_length(val))) {
                        /* choose the message before the body (and val with it) is wiped and freed */
                        const char *what = json_string_length(val) > f->max ? "is too long" : "holds a NUL";
                        api_json_free_secret(&o);
                        answered(bad_field(r, f->name, what));
                        return NULL;
                }
                if (json_is_array(val) && json_array_size(val) > f->max) {
                        api_json_free_secret(&o);
                        answered(bad_field(r, f->name, "has too many elements"));
                        return NULL;
                }
        }
        for (size_t i = 0; i < n; i++)
                if (fields[i].required && !json_object_get(o, fields[i].name)) {
                        api_json_free_secret(&o);
                        answered(bad_field(r, fields[i].name, "is required"));
                        return NULL;
                }
        return o;
}

const char *api_json_str(json_t *o, const char *name) {
        json_t *v = json_object_get(o, name);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

void api_json_free_secret(json_t **o) {
        if (!*o)
                return;
        const char *key;
        json_t *val;
        json_object_foreach(*o, key, val) if (json_is_string(val)) {
                /* jansson keeps its own copy: wipe it in place */
                char *s = (char *) json_string_value(val);
                sodium_memzero(s, json_string_length(val));
        }
        json_decref(*o);
        *o = NULL;
}

int api_accounts_problem(struct http_request *r, int err, const char *field, const char *what) {
        char d[200];
        switch (err) {
        case -EINVAL:
        case -EACCES:
                if (field) {
                        snprintf(d, sizeof d, "'%s' is not valid%s; nothing was changed.", field,
                                 err == -EACCES ? " (it does not match)" : "");
                        return api_bad_request(r, d);
                }
                return api_bad_request(r, what);
        case -ENOENT:
                return http_respond_problem(r, 404, "not-found", "Not found", "There is no such resource.");
        case -EPERM:
                return http_respond_problem(r, 403, "forbidden", "Forbidden",
                                            what ? what : "Not allowed to this caller.");
        case -EEXIST:
                snprintf(d, sizeof d, "%s%s%s", field ? "'" : "", field ? field : "",
                         field ? "' is already taken." : "It exists already.");
                return http_respond_problem(r, 409, "conflict", "Conflict", d);
        case -ENOTEMPTY:
                return http_respond_problem(r, 409, "conflict", "Conflict",
                                            "An organisation keeps at least one owner: make another owner first.");
        case -EBUSY:
                if (http_header_add(r, "Retry-After", "1") < 0)
                        return -ENOMEM;
                return http_respond_problem(r, 503, "busy", "Service unavailable",
                                            "Every password hashing slot is busy; try again shortly.");
        default:
                return http_respond_errno(r, err, what);
        }
}

void api_free_secret_stringp(char **s) {
        if (*s) {
                sodium_memzero(*s, strlen(*s));
                free(*s);
                *s = NULL;
        }
}
