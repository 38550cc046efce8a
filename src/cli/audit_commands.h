/* audit_commands.h: `coffre audit verify|proof` and `coffre witness`, and what the two files share:
 * fetching and checking signed checkpoints and consistency proofs from a server, and the state
 * file that remembers the last checkpoint seen (and, for a witness, its own key). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "audit/merkle.h"
#include "audit/note.h"
#include "client.h"
#include "macro.h"

/* coffre audit verify --data DIR | --url URL ...;  coffre audit proof DOC_ID ... */
int cmd_audit(int argc, char **argv);
/* coffre witness --url URL --state FILE [--log-key FILE] [--once] [--interval S] | --print-key */
int cmd_witness(int argc, char **argv);

/* ---- shared by cmd_audit.c and cmd_witness.c (implemented in cmd_audit.c, but the two
 * file and text readers, in cmd_witness.c) ---- */

/* A checkpoint whose signature by the log key has been checked. */
struct audit_cli_checkpoint {
        char *note;   /* the signed note as received */
        char *body;   /* the checkpoint body (what was signed) */
        char *origin; /* equal to the log key's name */
        uint64_t size;
        merkle_hash root;
};
void audit_cli_checkpoint_clear(struct audit_cli_checkpoint *c);

/* Reads a C2SP vkey from a file (one line) and checks it parses. Prints why on failure. */
int audit_cli_load_vkey_file(const char *path, char **ret_vkey) _warn_unused_;
/* GET path as text (at most max bytes, NUL-terminated). Prints why on failure. */
int audit_cli_fetch_text(struct client *c, const char *path, size_t max, char **ret) _warn_unused_;
/* Checks a signed note under the log key: signature, body a checkpoint, origin = the key's name.
 * -EBADMSG (printed) when it does not verify. */
int audit_cli_open_checkpoint(const char *note, size_t len, struct note_verifier *log_key,
                              struct audit_cli_checkpoint *ret) _warn_unused_;
/* Fetches GET /v1/audit/checkpoint (the latest) and opens it as above. */
int audit_cli_fetch_checkpoint(struct client *c, struct note_verifier *log_key, struct audit_cli_checkpoint *ret)
        _warn_unused_;
/* Checks that cp extends the tree (old_size, old_root) we saw before: a smaller size is a
 * rollback, the same size with another root or a consistency proof that does not verify is a
 * fork. -EBADMSG (printed, with the reason) when not; fetches the proof from the server. */
int audit_cli_check_consistency(struct client *c, uint64_t old_size, const merkle_hash *old_root,
                                const struct audit_cli_checkpoint *cp) _warn_unused_;
/* The reason of the last verification failure (-EBADMSG) the helpers above reported, which is
 * then forgotten; valid until the next failure. */
const char *audit_cli_take_failure(void);
/* base64 of a hash into out (45 bytes). */
void audit_cli_hash_b64(const merkle_hash *h, char out[static 45]);

/* ---- the state file (implemented in cmd_witness.c) ---- */

/* Text, mode 0600, replaced atomically:
 *   coffre-witness-state 1
 *   key PRIVATE+KEY+...        (witness only: its cosigning key)
 *   log-key <vkey>             (the pinned log key)
 *   checkpoint <size> <base64 root>   (the last checkpoint verified) */
struct witness_state {
        char *skey;     /* secret, or NULL */
        char *log_vkey; /* or NULL */
        bool have_checkpoint;
        uint64_t size;
        merkle_hash root;
};
/* -ENOENT when the file does not exist; -EPERM (printed) when it is not a regular file of ours
 * or group/others may access it; -EINVAL (printed) when malformed. */
int witness_state_load(const char *path, struct witness_state *ret) _warn_unused_;
/* Writes the state atomically and durably (tmp file, fsync, rename, fsync dir), mode 0600. */
int witness_state_save(const char *path, const struct witness_state *s) _warn_unused_;
/* Wipes the key and frees everything. */
void witness_state_clear(struct witness_state *s);
