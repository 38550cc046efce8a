/* keyring.h: envelope keys. master key -> per-organisation KEK (versioned) -> per-object DEK.
 * Wrapped keys live only in DATA/keyring.db; each records the id and version of its wrapping key.
 * Unwrapped keys are handed out in caller buffers that the caller wipes (sodium_memzero). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#define KEYRING_KEY_SIZE 32u
#define KEYRING_ID_SIZE 16u

/* Where the master key lives: a file (32 bytes, 0600) or a PKCS#11 token (p11_master.h: an AES key
 * that wraps the KEKs and an HMAC key that derives, neither of which leaves the token). */
struct master_key;
/* spec: a path (relative to base_dir when not NULL and not absolute) or a pkcs11: URI. Logs why on failure. */
int master_key_load(const char *spec, const char *base_dir, struct master_key **ret) _warn_unused_;
/* The master key on the token the URI names; with create, its keys are made there when missing.
 * import_from (a file master key, or NULL) gives the token's HMAC key the file key's value, so
 * master_key_derive answers the same after a migration. Logs why on failure. */
int master_key_load_pkcs11(const char *uri, bool create, const struct master_key *import_from, struct master_key **ret)
        _warn_unused_;
bool master_key_is_token(const struct master_key *m);
/* Creates DATA/keys/master.key (32 random bytes, 0600); -EEXIST if present. The directory must exist. */
int master_key_create_file(const char *path) _warn_unused_;
/* -EPERM when group or others may read the file; -EBADMSG when it is not exactly 32 bytes. */
int master_key_load_file(const char *path, struct master_key **ret) _warn_unused_;
/* A key for one purpose of the whole vault (label), derived from the master key by HMAC-SHA-256;
 * wipe it after use. Used for the audit log's record MACs. */
int master_key_derive(const struct master_key *m, const char *label, uint8_t out[KEYRING_KEY_SIZE]) _warn_unused_;
void master_key_free(struct master_key *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct master_key *, master_key_free);

struct keyring;
/* Opens (or creates) keyring.db (0600). Takes ownership of m, also on failure. -ENOENT when absent and
 * !create; -EBADMSG when keyring.db was made with another master key. */
int keyring_open(const char *path, bool create, struct master_key *m, struct keyring **ret) _warn_unused_;
void keyring_free(struct keyring *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct keyring *, keyring_free);

/* Moves every KEK under the master key to (taken, also on failure) in one durable transaction,
 * after checking each unwraps under the current key; rows already under to are checked, not
 * rewrapped, so an interrupted run can be rerun. Then reads every row back under to, and only then
 * makes to the keyring's master key. ret_rewrapped (may be NULL): rows rewrapped by this call. */
int keyring_change_master(struct keyring *k, struct master_key *to, size_t *ret_rewrapped) _warn_unused_;
/* Unwraps one KEK (0 when there is none): the master key works, e.g. from inside the sandbox. */
int keyring_master_probe(struct keyring *k) _warn_unused_;
bool keyring_master_is_token(const struct keyring *k);
/* KEK rows (all organisations and versions). */
int keyring_kek_count(struct keyring *k, size_t *ret) _warn_unused_;

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
/* keyring_dek_store in two halves, with no thread of the caller's own: submit queues the request
 * and returns at once; the next group commit, led by whichever caller waits first, stores it
 * together with every other request queued by then; wait returns its result once it is durable
 * (leading a commit itself when no one else is). req and the three buffers must stay alive and
 * unchanged until wait returns; every submitted request must be waited for. */
struct keyring_dek_request {
        const uint8_t *kek_id, *object_id, *dek; /* the fields are the keyring's own */
        int result;
        bool done;
        struct keyring_dek_request *next;
};
void keyring_dek_submit(struct keyring *k, struct keyring_dek_request *req, const uint8_t kek_id[KEYRING_ID_SIZE],
                        const uint8_t object_id[KEYRING_ID_SIZE], const uint8_t dek[KEYRING_KEY_SIZE]);
int keyring_dek_wait(struct keyring *k, struct keyring_dek_request *req) _warn_unused_;
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
/* The same and the DEK requests those transactions carried. */
void keyring_group_stats(struct keyring *k, uint64_t *ret_commits, uint64_t *ret_keys);
/* Tuning and test hook for keyring_rotate: batch_size keys per transaction (0: default 1000); hook is
 * called after the new version exists (batches_done 0) and after each committed batch; a negative
 * return stops the rotation with that error, as an interruption would. Not thread-safe; set it before use. */
void keyring_set_rotate_hook(struct keyring *k, unsigned batch_size, int (*hook)(unsigned batches_done, void *ud), void *ud);

/* A 32-byte key derived for an organisation's other purposes ("audit-details", "field", ...),
 * wrapped like a DEK under its KEK; created on first use. */
int keyring_org_key(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], const char *purpose,
                    uint8_t key[KEYRING_KEY_SIZE]) _warn_unused_;
