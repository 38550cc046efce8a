/* sandbox.h: confining the server process (Landlock + seccomp) once it has started. */
#pragma once

#include "macro.h"

struct vault;

/* Before the vault is opened: makes every sqlite connection keep its -wal file (truncated to
 * zero bytes at a clean close) instead of deleting it, which the sandbox forbids. */
int vault_sandbox_prepare(void) _warn_unused_;

/* Restricts the calling process, which must still have a single thread, to the files of the data
 * directory it serves (never keys/) and to the system calls a running server makes. Where the
 * kernel lacks Landlock it logs a warning and carries on with seccomp alone. Irreversible. */
int vault_sandbox(const struct vault *v) _warn_unused_;
