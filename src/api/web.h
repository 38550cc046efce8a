/* web.h: the web interface's files, embedded at build time from web/ by scripts/embed-web.py. */
#pragma once

#include <stddef.h>

struct web_file {
        const char *name;         /* "app.js": a file of web/, served as /ui/<name> */
        const char *content_type; /* "text/javascript; charset=utf-8" */
        const char *etag;         /* strong ETag with its quotes: the content's SHA-256, shortened */
        const unsigned char *data;
        size_t len;
};

extern const struct web_file web_files[];
extern const size_t web_files_count;
