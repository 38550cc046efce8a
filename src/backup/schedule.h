/* schedule.h: scheduled backups for `coffre serve`. The server forks a small scheduler process
 * before it opens the vault or locks itself down (so it holds no key and keeps the rights that
 * writing to destinations outside the data directory needs, which the sandboxed server does not
 * have); every [backup] interval (1h by default) it runs `coffre backup run --data DIR` as a
 * child process at low priority, so uploads never wait on a backup. */
#pragma once

#include <sys/types.h>

#include "macro.h"

/* Starts the scheduler when coffre.conf names a destination and [backup] interval is not
 * "off"; *ret_pid 0 when none is started. Call before any thread exists. */
int backup_schedule_start(const char *data_dir, pid_t *ret_pid) _warn_unused_;
/* Stops it (a backup it started runs to its end on its own). NULL-safe for pid 0. */
void backup_schedule_stop(pid_t pid);
