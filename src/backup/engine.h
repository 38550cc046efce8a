/* engine.h: what `coffre backup run | verify | list` and `coffre restore` do with one
 * repository: write a staged snapshot (deduplicated against the index), restore files from a
 * snapshot, and read everything back to check it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backup/manifest.h"
#include "backup/repo.h"
#include "backup/stage.h"
#include "macro.h"

struct signer;

/* Problems found, one call each: object is a destination object name ("packs/ab/ID",
 * "snapshots/ID", "index/ID", "config") and what says what is wrong with it. */
typedef void (*backup_report_fn)(const char *object, const char *what, void *ud);
/* Bytes done so far, for progress bars. */
typedef void (*backup_progress_fn)(uint64_t done, void *ud);

struct backup_run_result {
        backup_id snapshot, keyring_snapshot;
        uint64_t files, bytes;     /* read from the vault */
        uint64_t added;            /* bytes of new packs and index written */
        uint64_t blobs_new, packs; /* new blobs, new packs */
};

#define BACKUP_RUN_DATA (1u << BACKUP_SERIES_DATA)
#define BACKUP_RUN_KEYRING (1u << BACKUP_SERIES_KEYRING)

/* Writes stage into r as a data and/or a keyring snapshot (series: BACKUP_RUN_* bits; run_id
 * ties them, and the snapshots of the other destinations of the same run, together). */
int backup_run(struct backup_repo *r, const struct backup_stage *stage, struct signer *s, unsigned series,
               const uint8_t run_id[16], backup_progress_fn progress, void *pud, struct backup_run_result *ret)
        _warn_unused_;

/* Every snapshot that checks (signed, whole); others are reported. Sorted by time, oldest
 * first (in one second, by the size of the audit log covered). */
int backup_snapshots(struct backup_repo *r, backup_report_fn report, void *ud, struct backup_snapshot **ret,
                     size_t *ret_n) _warn_unused_;
void backup_snapshots_free(struct backup_snapshot *s, size_t n);
/* Why a snapshot's date is not to be trusted (NULL when it agrees with the destination's own
 * time and is not in the future). */
const char *backup_snapshot_date_problem(const struct backup_snapshot *s, int64_t now);

/* Restores one file of a snapshot ("files" entry) to fd: every chunk from its pack, opened,
 * checked; then size and SHA-256 of the whole. -ENOENT (missing pack or blob) or -EBADMSG
 * (damage) with *ret_what saying which. */
int backup_restore_file(struct backup_repo *r, json_t *file, int fd, const char **ret_what) _warn_unused_;

struct backup_verify_result {
        unsigned problems; /* damage found: verify fails */
        unsigned notes;    /* harmless findings (packs of an interrupted run) */
        unsigned snapshots, packs, indexes;
};
/* Checks the config (by opening), every index file, that every pack the index names exists
 * (read_data: reads it back, checks its name, header and every blob), every snapshot's
 * signature, body, date, and that every chunk it lists is in a present, intact pack. Reports
 * each problem. Changes nothing. */
int backup_verify(struct backup_repo *r, bool read_data, backup_report_fn report, void *ud,
                  struct backup_verify_result *ret) _warn_unused_;
