/* sandbox.h: confining the server process (Landlock + seccomp) once it has started. */
#pragma once

#include "macro.h"

struct vault;

/* Before the vault in data_dir is opened: makes every sqlite connection keep its -wal file
 * (truncated to zero bytes at a clean close) instead of deleting it, which the sandbox forbids,
 * and put its temporary files in data_dir/tmp/. */
int vault_sandbox_prepare(const char *data_dir) _warn_unused_;

/* Restricts the calling process, which must still have a single thread, to the files of the data
 * directory it serves (never keys/) and to the system calls a running server makes. Where the
 * kernel lacks Landlock it logs a warning and carries on with seccomp alone. Irreversible. */
int vault_sandbox(const struct vault *v) _warn_unused_;
