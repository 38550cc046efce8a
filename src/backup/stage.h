/* stage.h: a consistent snapshot of a data directory, taken while `coffre serve` may run:
 * meta.db and keyring.db through SQLite's online backup API into a private staging directory,
 * the audit log cut at its last signed checkpoint that covers every entry present when the
 * metadata was copied, and the list of files each series holds. Nothing in DATA is changed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "backup/format.h"
#include "macro.h"

#define BACKUP_STAGE_WAIT_SEC 30 /* for a running server's checkpoint to cover the copied state */

struct backup_stage_file {
        char *name; /* path in the snapshot, relative: "meta.db", "objects/ab/cd/ID" */
        char *src;  /* absolute path to read it from */
        uint32_t mode;
};

struct backup_stage {
        char *dir;                          /* the private staging directory (removed by backup_stage_free) */
        int lock_fd;                        /* dir/lock, flock()ed while the stage lives */
        struct backup_stage_file *files[3]; /* by series (1 data, 2 keyring) */
        size_t n_files[3];
        uint64_t bytes[3];
        uint64_t audit_size;
        uint8_t audit_root[32];
        char *checkpoint; /* the signed note of that checkpoint */
};

/* Stages data_dir (tmp_base: where to make the staging directory). Errors are logged. */
int backup_stage_take(const char *data_dir, const char *tmp_base, struct backup_stage **ret) _warn_unused_;
void backup_stage_free(struct backup_stage *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_stage *, backup_stage_free);
