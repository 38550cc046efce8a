/* log.c: JSON-lines logging on stderr, one write(2) per line so lines never interleave. */
#include "log.h"

#include <jansson.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_LEVEL_INFO;
static const char *component = "coffre";

void log_set_level(enum log_level level) {
        min_level = level;
}

void log_set_component(const char *c) {
        component = c;
}

static const char *level_name(enum log_level l) {
        switch (l) {
        case LOG_LEVEL_DEBUG:
                return "debug";
        case LOG_LEVEL_INFO:
                return "info";
        case LOG_LEVEL_WARN:
                return "warn";
        default:
                return "error";
        }
}

static void emit(json_t *o) {
        char ts[40];
        struct timespec now;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
        json_object_set_new(o, "ts", json_string(ts));

        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!line)
                return;
        size_t len = strlen(line);
        char *out = malloc(len + 2);
        if (out) {
                memcpy(out, line, len);
                out[len] = '\n';
                ssize_t _unused_ w = write(STDERR_FILENO, out, len + 1);
                free(out);
        }
        free(line);
}

static json_t *base_object(enum log_level level, const char *msg) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        json_object_set_new(o, "level", json_string(level_name(level)));
        json_object_set_new(o, "component", json_string(component));
        json_object_set_new(o, "msg", json_string(msg ? msg : ""));
        return o;
}

_printf_(2, 0) static void vlog(enum log_level level, const char *fmt, va_list ap) {
        char msg[1024];

        if (level < min_level)
                return;
        vsnprintf(msg, sizeof msg, fmt, ap);
        json_t *o = base_object(level, msg);
        if (!o)
                return;
        emit(o);
        json_decref(o);
}

void log_msg(enum log_level level, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vlog(level, fmt, ap);
        va_end(ap);
}

void log_fields(enum log_level level, const char *msg, ...) {
        va_list ap;

        if (level < min_level)
                return;
        json_t *o = base_object(level, msg);
        if (!o)
                return;
        va_start(ap, msg);
        for (;;) {
                const char *k = va_arg(ap, const char *);
                if (!k)
                        break;
                const char *v = va_arg(ap, const char *);
                json_object_set_new(o, k, json_string(v ? v : ""));
        }
        va_end(ap);
        emit(o);
        json_decref(o);
}

int log_error_errno(int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vlog(LOG_LEVEL_ERROR, fmt, ap);
        va_end(ap);
        return r;
}

int log_openssl_errors(int r, const char *what) {
        char buf[256] = "unknown";
        unsigned long e, last = 0;

        while ((e = ERR_get_error()) != 0)
                last = e;
        if (last)
                ERR_error_string_n(last, buf, sizeof buf);
        log_error("%s: %s", what, buf);
        return r;
}
