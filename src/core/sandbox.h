/* sandbox.h: confining the server process (Landlock + seccomp) once it has started. */
#pragma once

#include "macro.h"

struct vault;

/* Restricts the calling process, which must still have a single thread, to the files of the data
 * directory it serves (never keys/) and to the system calls a running server makes. Where the
 * kernel lacks Landlock it logs a warning and carries on with seccomp alone. Irreversible. */
int vault_sandbox(const struct vault *v) _warn_unused_;
