/* keyring.h: envelope keys. master key -> per-organisation KEK (versioned) -> per-object DEK.
 * Wrapped keys live only in DATA/keyring.db; each records the id and version of its wrapping key.
 * Unwrapped keys are handed out in caller buffers that the caller wipes (sodium_memzero). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#define KEYRING_KEY_SIZE 32u
#define KEYRING_ID_SIZE 16u

/* Where the master key lives. A file now; a PKCS#11 object later (same struct, other functions). */
struct master_key;
/* Creates DATA/keys/master.key (32 random bytes, 0600); -EEXIST if present. The directory must exist. */
int master_key_create_file(const char *path) _warn_unused_;
/* -EPERM when group or others may read the file; -EBADMSG when it is not exactly 32 bytes. */
int master_key_load_file(const char *path, struct master_key **ret) _warn_unused_;
void master_key_free(struct master_key *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct master_key *, master_key_free);

struct keyring;
/* Opens (or creates) keyring.db (0600). Takes ownership of m, also on failure. -ENOENT when absent and
 * !create; -EBADMSG when keyring.db was made with another master key. */
int keyring_open(const char *path, bool create, struct master_key *m, struct keyring **ret) _warn_unused_;
void keyring_free(struct keyring *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct keyring *, keyring_free);

/* Creates an organisation's KEK (version 1) with the given 16-byte id. */
int keyring_kek_create(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE]) _warn_unused_;
int keyring_kek_current_version(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t *ret) _warn_unused_;
/* Crypto-shreds an organisation: every KEK version, DEK and organisation key under kek_id, durably.
 * -ENOENT when there was no such KEK. */
int keyring_kek_destroy(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE]) _warn_unused_;

/* New random DEK for object_id, wrapped under the KEK's current version and stored durably
 * (batched with concurrent calls). The plaintext DEK is returned in dek. */
int keyring_dek_new(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], const uint8_t object_id[KEYRING_ID_SIZE],
                    uint8_t dek[KEYRING_KEY_SIZE]) _warn_unused_;
/* Stores a DEK the caller generated (randombytes_buf) for object_id, like keyring_dek_new: lets
 * encryption start while the key is being made durable. */
int keyring_dek_store(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], const uint8_t object_id[KEYRING_ID_SIZE],
                      const uint8_t dek[KEYRING_KEY_SIZE]) _warn_unused_;
/* -ENOENT when the DEK was destroyed or never existed; -EBADMSG when a wrapped key fails to authenticate. */
int keyring_dek_get(struct keyring *k, const uint8_t object_id[KEYRING_ID_SIZE], uint8_t dek[KEYRING_KEY_SIZE]) _warn_unused_;
/* Durable destruction of the wrapped DEK (crypto-shredding). -ENOENT when absent. */
int keyring_dek_destroy(struct keyring *k, const uint8_t object_id[KEYRING_ID_SIZE]) _warn_unused_;
/* Calls cb for each object id holding a DEK (for orphan sweeps at start). */
int keyring_dek_foreach(struct keyring *k, int (*cb)(const uint8_t object_id[KEYRING_ID_SIZE], void *ud), void *ud);

/* New KEK version; rewraps every DEK of that KEK; destroys the old version when all are rewrapped.
 * Interruptible: rerunning finishes the job. Returns the new current version. */
int keyring_rotate(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t *ret_version) _warn_unused_;

/* Transactions written by the DEK group commit so far (for /metrics and tests). */
uint64_t keyring_group_commits(struct keyring *k);
/* For tests: the next group commit starts only once n requests are queued (then takes them all),
 * so a batching test does not depend on scheduling. One-shot; n requests must come. */
void keyring_hold_group(struct keyring *k, unsigned n);
/* Tuning and test hook for keyring_rotate: batch_size keys per transaction (0: default 1000); hook is
 * called after the new version exists (batches_done 0) and after each committed batch; a negative
 * return stops the rotation with that error, as an interruption would. Not thread-safe; set it before use. */
void keyring_set_rotate_hook(struct keyring *k, unsigned batch_size, int (*hook)(unsigned batches_done, void *ud), void *ud);

/* A 32-byte key derived for an organisation's other purposes ("audit-details", "field", ...),
 * wrapped like a DEK under its KEK; created on first use. */
int keyring_org_key(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], const char *purpose,
                    uint8_t key[KEYRING_KEY_SIZE]) _warn_unused_;
