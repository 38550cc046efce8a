/* repo.h: a backup repository in one destination: its config (format version, chunker
 * parameters, the manifest verifier key, the backup key wrapped by the vault's master key and
 * optionally by a recovery passphrase through Argon2id, all under an HMAC), its keys and index.
 * Layout in docs/formats.md ("Backup repository"). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backup/chunker.h"
#include "backup/dest.h"
#include "backup/format.h"
#include "backup/pack.h"
#include "crypto/keyring.h"
#include "macro.h"

#define BACKUP_REPO_ID_SIZE 16u
#define BACKUP_REPO_VERSION 1
#define BACKUP_CONFIG_MAX 65536u
#define BACKUP_MASTER_LABEL "backup repository key wrap" /* master_key_derive() label */
#define BACKUP_PASSPHRASE_MAX 1024u

struct backup_repo {
        struct backup_dest *dest; /* owned */
        struct backup_keys *keys;
        uint8_t id[BACKUP_REPO_ID_SIZE];
        char id_hex[2 * BACKUP_REPO_ID_SIZE + 1];
        struct chunker chunker;
        uint8_t verifier[32]; /* Ed25519: the signer's backup key */
        char vault_id[33];
        char audit_origin[128];
        struct backup_index *index;
};

/* Creates the repository in dest (takes dest, also on failure): a new random backup key,
 * wrapped under master (required) and under passphrase (optional, NULL: none). -EEXIST when the
 * destination already holds a repository. */
int backup_repo_create(struct backup_dest *dest, const struct master_key *master, const char *passphrase,
                       const uint8_t verifier[32], const char *vault_id, const char *audit_origin,
                       const struct chunker_params *params, struct backup_repo **ret) _warn_unused_;
/* Opens the repository of dest (takes dest) with the master key or, when master is NULL, the
 * recovery passphrase. -ENOENT: no repository there; -EKEYREJECTED: the key or passphrase does
 * not open it (or no passphrase wrap); -EBADMSG: the config is damaged or was altered. */
int backup_repo_open(struct backup_dest *dest, const struct master_key *master, const char *passphrase,
                     struct backup_repo **ret) _warn_unused_;
void backup_repo_free(struct backup_repo *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_repo *, backup_repo_free);

/* Called for each index file that is damaged (skipped). */
typedef void (*backup_damage_fn)(const char *object, const char *what, void *ud);
/* Loads every index file into repo->index (replacing it). Damaged ones are reported and skipped. */
int backup_repo_load_index(struct backup_repo *r, backup_damage_fn damage, void *ud) _warn_unused_;
/* "packs/xx/ID", "index/ID", "snapshots/ID" */
void backup_object_name(const char *kind, const backup_id *id, char *out, size_t n);
