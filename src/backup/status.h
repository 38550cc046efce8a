/* status.h: DATA/backup/status, what the last `coffre backup run` did for each destination
 * (written by the run, atomically; read by `GET /metrics`): the time of the last run and of the
 * last success, its duration, bytes read and added. No secret and no personal data in it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

#define BACKUP_STATUS_DIR "backup" /* readable by the sandboxed server */
#define BACKUP_STATUS_FILE "backup/status"
#define BACKUP_STATUS_MAX (1u << 20)
#define BACKUP_OVERDUE_SEC (2 * 3600) /* no success for this long: overdue (hourly backups) */

struct backup_status_entry {
        const char *destination;
        bool ok;
        int64_t time;
        double seconds;
        uint64_t bytes, added;
};

/* Records the results of one run (n entries) in data_dir/backup/status (the directory made
 * when missing), keeping the last
 * success of destinations that failed this time. */
int backup_status_record(const char *data_dir, const struct backup_status_entry *e, size_t n) _warn_unused_;
/* Appends the Prometheus lines of data_dir/backup/status to b (nothing when there is no file). */
int backup_status_metrics(const char *data_dir, int64_t now, struct buf *b) _warn_unused_;
