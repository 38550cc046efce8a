/* signer_backup.h: the backup signing key (keys/backup.key, Ed25519, held by the signer
 * process only) and the shape of what it signs: the fixed header of a backup snapshot
 * manifest. The signer refuses anything else, and headers whose time is far from its clock. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define SIGNER_MANIFEST_HEADER_SIZE 120u
#define SIGNER_MANIFEST_MAGIC "CFRSNAP1"
#define SIGNER_MANIFEST_VERSION 1u
#define SIGNER_MANIFEST_CONTEXT "coffre-backup-manifest-v1\n" /* signed before the header */
#define SIGNER_MANIFEST_SKEW_SEC 600                          /* |header time - signer clock| allowed */
#define SIGNER_MANIFEST_BODY_MAX ((uint64_t) 1 << 30)
#define SIGNER_BACKUP_PUB_SIZE 32u
#define SIGNER_BACKUP_SIG_SIZE 64u

struct signer;

/* Creates keys_dir/backup.key (the 32-byte Ed25519 seed, 0600) and keys_dir/backup.pub (hex of
 * the public key, 0644); -EEXIST when backup.key exists. */
int signer_backup_key_init(const char *keys_dir) _warn_unused_;
/* Reads keys_dir/backup.pub. */
int signer_backup_pub(const char *keys_dir, uint8_t ret_pub[SIGNER_BACKUP_PUB_SIZE]) _warn_unused_;
/* 0 when header is a well-formed manifest header whose time is within the skew of now. */
int signer_manifest_check(const uint8_t *header, size_t len, int64_t now) _warn_unused_;
/* Checks sig over header under pub (the verifier's side). -EBADMSG when it does not verify. */
int signer_manifest_verify(const uint8_t pub[SIGNER_BACKUP_PUB_SIZE], const uint8_t *header, size_t len,
                           const uint8_t sig[SIGNER_BACKUP_SIG_SIZE]) _warn_unused_;
/* Asks the signer to sign a manifest header (SIGNER_MSG_SIGN_MANIFEST); the signature is checked
 * against pub before it is returned. -ENOKEY when the signer has no backup key, -EPERM when it
 * refuses the header. */
int signer_sign_manifest(struct signer *s, const uint8_t pub[SIGNER_BACKUP_PUB_SIZE], const uint8_t *header, size_t len,
                         uint8_t ret_sig[SIGNER_BACKUP_SIG_SIZE]) _warn_unused_;

/* ---- the signer process's side (signer_child.c) ---- */
/* Loads keys_dir/backup.key into secure memory (*ret NULL and 0 when there is none). */
int signer_backup_child_load(const char *keys_dir, uint8_t **ret_sk) _warn_unused_;
/* Checks and signs one request's payload; *ret_sig 64 bytes. */
int signer_backup_child_sign(const uint8_t *sk, const uint8_t *msg, size_t len, uint8_t ret_sig[SIGNER_BACKUP_SIG_SIZE])
        _warn_unused_;
void signer_backup_child_free(uint8_t *sk);
