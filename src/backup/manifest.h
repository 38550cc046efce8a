/* manifest.h: snapshot manifests: a fixed header signed (Ed25519) by the signer's backup key,
 * then a sealed body (zstd JSON: the files of the snapshot and their chunk lists, the audit
 * checkpoint it covers). Layout in docs/formats.md ("Backup repository"). */
#pragma once

#include <stdint.h>

#include <jansson.h>

#include "backup/repo.h"
#include "macro.h"

struct signer;

struct backup_snapshot {
        backup_id id;
        enum backup_series series;
        int64_t time;        /* from the signed header */
        int64_t stored_time; /* the destination's own time of the object */
        uint64_t audit_size; /* the signed checkpoint the snapshot covers */
        uint8_t audit_root[32];
        json_t *body;
};
void backup_snapshot_clear(struct backup_snapshot *s);

/* Builds, signs (through the signer) and stores a manifest; *ret_id its name. */
int backup_manifest_write(struct backup_repo *r, struct signer *s, enum backup_series series, uint64_t audit_size,
                          const uint8_t audit_root[32], json_t *body, backup_id *ret_id) _warn_unused_;
/* Reads and checks snapshots/NAME: the name is the SHA-256 of the file, the header is signed by
 * the repository's verifier key, names this repository, and the body opens. -EBADMSG with a
 * reason in *ret_what. */
int backup_manifest_read(struct backup_repo *r, const char *name, struct backup_snapshot *ret, const char **ret_what)
        _warn_unused_;
