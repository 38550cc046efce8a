/* log.h: JSON-lines logging on stderr. Never pass secrets, tokens or document content. */
#pragma once

#include <stdarg.h>

#include "macro.h"

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
void log_set_component(const char *component);

/* One line {"ts":..,"level":..,"component":..,"msg":..} plus optional extra fields given as
 * NULL-terminated key/value string pairs via log_fields(). */
void log_msg(enum log_level level, const char *fmt, ...) _printf_(2, 3);
void log_fields(enum log_level level, const char *msg, ...); /* key, value, ..., NULL */

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

/* Logs the message and returns r (a negative errno), for "log and return" at a module edge. */
int log_error_errno(int r, const char *fmt, ...) _printf_(2, 3);

/* Drains the OpenSSL error queue into one log line; returns r. */
int log_openssl_errors(int r, const char *what);
