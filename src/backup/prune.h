/* prune.h: retention of snapshots (grandfather-father-son for the data series, a plain age
 * limit for the keyring series) and removal of what no kept snapshot needs. A snapshot whose
 * date is not trusted (in the future, or disagreeing with the destination's own time of the
 * object) is kept and never counts towards a retention slot, so a forged or back-dated
 * snapshot cannot push real ones out. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backup/engine.h"
#include "macro.h"

#define BACKUP_RUN_LOCK_STALE_SEC (6 * 3600) /* a run lock older than this is from a killed run */
#define BACKUP_LEFTOVER_PACK_SEC (24 * 3600) /* packs no index names, removed once this old */

struct backup_policy {
        int64_t hourly;  /* seconds: the newest snapshot of each hour is kept this long (7 d) */
        int64_t daily;   /* of each day (35 d) */
        int64_t weekly;  /* of each week, Monday to Sunday UTC (5 y) */
        int64_t keyring; /* keyring snapshots are kept this long (90 d); the newest always */
};
void backup_policy_default(struct backup_policy *p);
/* "90s", "30m", "36h", "7d", "5w", "5y" (365 d) into seconds. */
int backup_parse_duration(const char *s, int64_t *ret) _warn_unused_;

struct backup_prune_item {
        backup_id id;
        enum backup_series series;
        int64_t time;
        bool keep;
        char why[96];
};

struct backup_prune_plan {
        struct backup_prune_item *items; /* every snapshot that checks, newest first */
        size_t n;
        unsigned unreadable; /* snapshots that do not check: kept, and their packs are not counted */
};
void backup_prune_plan_free(struct backup_prune_plan *p);

/* Decides which snapshots go, as of now. */
int backup_prune_plan(struct backup_repo *r, const struct backup_policy *pol, int64_t now, backup_report_fn report,
                      void *ud, struct backup_prune_plan *ret) _warn_unused_;

struct backup_prune_result {
        unsigned snapshots_deleted, packs_deleted, packs_written, indexes_replaced;
        uint64_t bytes_freed;
};
/* Carries the plan out: deletes the snapshots that go, repacks the still-needed blobs of keyring
 * packs that also hold unneeded ones (so an expired keyring snapshot leaves no copy of its keys),
 * writes one index of what remains, removes the old index files and every pack nothing needs
 * (and packs of interrupted runs older than a day). In an order where a crash at any point
 * leaves a valid repository. Refuses while a run (-EBUSY) or another prune (-EALREADY) holds the
 * destination, and (-EBADMSG) when an index file is damaged: nothing is deleted then. */
int backup_prune_apply(struct backup_repo *r, const struct backup_prune_plan *plan, int64_t now,
                       struct backup_prune_result *ret) _warn_unused_;

/* Lock objects: "locks/prune" (exclusive), "locks/run-ID" (one per run). -EBUSY when a prune
 * holds the destination. */
int backup_lock_run(struct backup_repo *r, const uint8_t run_id[16], char *ret_name, size_t n) _warn_unused_;
void backup_unlock(struct backup_repo *r, const char *name);
