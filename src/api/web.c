/* web.c: serves the web interface (GET / and GET /ui/<file>) from the files embedded in the
 * binary, so that no run-time path is needed and the server's Landlock sandbox stays as tight as
 * it is. Answers carry a strong ETag (the content's hash) and are revalidated on each use
 * (Cache-Control: no-cache, 304 on If-None-Match); the strict security headers (CSP...) are the
 * server's, on every answer (server.c). */
#include <string.h>

#include "api.h"
#include "web.h"

static const struct web_file *web_find(const char *name) {
        for (size_t i = 0; i < web_files_count; i++)
                if (strcmp(web_files[i].name, name) == 0)
                        return &web_files[i];
        return NULL;
}

/* true when an If-None-Match list names etag (or is "*") */
static bool etag_matches(const char *inm, const char *etag) {
        size_t n = strlen(etag);
        for (const char *p = inm; p && *p;) {
                while (*p == ' ' || *p == ',')
                        p++;
                if (strncmp(p, "W/", 2) == 0)
                        p += 2;
                if (*p == '*' || (strncmp(p, etag, n) == 0 && (p[n] == ',' || p[n] == ' ' || !p[n])))
                        return true;
                p = strchr(p, ',');
        }
        return false;
}

static int web_serve(struct http_request *r, const char *name) {
        const struct web_file *f = name ? web_find(name) : NULL;
        if (!f)
                return http_respond_problem(r, 404, "not-found", "Not found", "There is no such page.");
        int k = http_header_add(r, "ETag", f->etag);
        if (k >= 0)
                k = http_header_add(r, "Cache-Control", "no-cache");
        if (k < 0)
                return k;
        const char *inm = http_header(r, "If-None-Match");
        if (inm && etag_matches(inm, f->etag))
                return http_respond_empty(r, 304);
        return http_respond_text(r, 200, f->content_type, (const char *) f->data, f->len);
}

int api_web_index(struct http_request *r) {
        return web_serve(r, "index.html");
}

int api_web_file(struct http_request *r) {
        return web_serve(r, http_param(r, "file"));
}
