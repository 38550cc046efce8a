/* prompt.h: asking the user for a line (an e-mail, a password, a code): on a terminal with a
 * prompt and, for secrets, without echo; from standard input, one line each, when it is not a
 * terminal (scripts, tests). Lines land in libsodium secure memory. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* Reads one line of at most max bytes (without its newline) into *ret (secure memory; free it
 * with prompt_free, which wipes it). The prompt goes to the terminal (stderr) only when stdin is
 * one; secret turns echo off meanwhile (restored on return and on SIGINT, SIGTERM, SIGHUP).
 * -ENODATA at the end of input with nothing read, -E2BIG for a longer line (both printed). */
int prompt_line(const char *prompt, bool secret, size_t max, char **ret) _warn_unused_;
void prompt_free(char *line);
/* true when standard input is a terminal */
bool prompt_interactive(void);
