/* note.h: C2SP signed notes (c2sp.org/signed-note) with Ed25519, tlog-checkpoint bodies
 * (c2sp.org/tlog-checkpoint) and Ed25519 cosignature/v1 witness signatures
 * (c2sp.org/tlog-cosignature). Keys travel as Go-compatible vkey / PRIVATE+KEY strings. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/merkle.h"
#include "macro.h"

#define NOTE_MAX_SIZE ((size_t) 1024 * 1024) /* a whole signed note */
#define NOTE_MAX_SIGNATURES 100u
#define NOTE_MAX_SIG_LINE 512u  /* one signature line, newline included */
#define NOTE_MAX_NAME 255u      /* key names and checkpoint origins, in bytes */
#define NOTE_MAX_KEY_TEXT 1024u /* vkey / skey strings */

/* Signature types (c2sp.org/signed-note "Signature types"). */
enum note_alg {
        NOTE_ALG_ED25519 = 0x01,
        NOTE_ALG_COSIGNATURE_V1 = 0x04, /* timestamped Ed25519 witness cosignature */
};

struct note_signer;   /* holds the Ed25519 seed in libsodium secure memory */
struct note_verifier; /* name, key ID, type, public key */

/* True for a valid key name: non-empty, at most NOTE_MAX_NAME bytes, UTF-8, no Unicode space,
 * no '+', no control character. */
bool note_name_is_valid(const char *name);

/* New random Ed25519 key (type 0x01). Texts are malloc'd; *ret_skey is a secret: wipe it
 * (note_text_free_secret) once stored. */
int note_key_generate(const char *name, char **ret_skey, char **ret_vkey) _warn_unused_;
/* Same for a given type (NOTE_ALG_ED25519 or NOTE_ALG_COSIGNATURE_V1). */
int note_key_generate_alg(const char *name, enum note_alg alg, char **ret_skey, char **ret_vkey) _warn_unused_;
/* Wipes and frees a secret string (NULL-safe). */
void note_text_free_secret(char *s);

/* "PRIVATE+KEY+<name>+<hash8>+<base64(type||seed)>": -EINVAL when malformed, -EBADMSG when the
 * key hash does not match the key. */
int note_signer_from_skey(const char *skey, struct note_signer **ret) _warn_unused_;
void note_signer_free(struct note_signer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct note_signer *, note_signer_free);
const char *note_signer_name(const struct note_signer *s);
/* The matching vkey text (malloc'd). */
int note_signer_vkey(const struct note_signer *s, char **ret_vkey) _warn_unused_;

/* "<name>+<hash8>+<base64(type||pubkey)>": -EINVAL when malformed or of an unknown type,
 * -EBADMSG when the hash does not match. */
int note_verifier_from_vkey(const char *vkey, struct note_verifier **ret) _warn_unused_;
/* A cosignature/v1 verifier from a vkey of type 0x04, or of type 0x01 (the same Ed25519 key
 * used as a witness key; its key ID is then recomputed with type 0x04). */
int note_verifier_cosignature_from_vkey(const char *vkey, struct note_verifier **ret) _warn_unused_;
void note_verifier_free(struct note_verifier *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct note_verifier *, note_verifier_free);
const char *note_verifier_name(const struct note_verifier *v);
uint32_t note_verifier_key_id(const struct note_verifier *v);
enum note_alg note_verifier_alg(const struct note_verifier *v);

/* Checks a note text: non-empty, at most NOTE_MAX_SIZE, UTF-8, no control character but '\n',
 * ends with '\n'. */
bool note_text_is_valid(const char *text, size_t len);

/* The signature line "— <name> <base64(keyid||sig)>\n" of an Ed25519 (type 0x01) signer over
 * body; -EINVAL for a body that is not a valid note text or a signer of another type. */
int note_signature_line(const struct note_signer *s, const char *body, size_t len, char **ret_line) _warn_unused_;
/* body + "\n" + one signature line. */
int note_sign(const struct note_signer *s, const char *body, size_t len, char **ret_note) _warn_unused_;

struct note_verified {
        bool ok;            /* a signature by this key verified */
        uint64_t timestamp; /* cosignature time (POSIX seconds), for cosignature verifiers */
};

/* Parses a signed note and verifies the signatures of the given keys; signatures by other keys
 * are ignored (spec). -EINVAL: malformed note or verifier list (two verifiers with the same name
 * and key ID); -EBADMSG: a signature by a known key fails, or none verifies. On success the body
 * (NUL-terminated, malloc'd) and, when ret_verified is not NULL, one entry per verifier. */
int note_open(const char *note, size_t len, struct note_verifier *const *verifiers, size_t n_verifiers,
              char **ret_body, struct note_verified *ret_verified) _warn_unused_;

/* tlog-checkpoint body: "<origin>\n<size>\n<base64 root>\n" then the extension lines, each given
 * without its newline. The origin must be a valid key name (we never produce others). */
int checkpoint_format(const char *origin, uint64_t size, const merkle_hash *root, const char *const *extensions,
                      size_t n_extensions, char **ret_body) _warn_unused_;
/* Strict parse of a checkpoint body (not the signed note): -EBADMSG when malformed. ret_origin
 * is malloc'd; any out-parameter may be NULL. */
int checkpoint_parse(const char *body, size_t len, char **ret_origin, uint64_t *ret_size,
                     merkle_hash *ret_root) _warn_unused_;

/* Witness side: the cosignature/v1 signature line over a checkpoint body at the given time. The
 * signer may be of type 0x01 or 0x04; the key ID is always computed with type 0x04. */
int cosignature_sign(const struct note_signer *witness, const char *checkpoint_body, size_t len, uint64_t timestamp,
                     char **ret_line) _warn_unused_;
/* Checks that a signed checkpoint note carries a valid cosignature by this witness (a verifier
 * from note_verifier_cosignature_from_vkey); gives its timestamp. -EBADMSG when absent or bad. */
int cosignature_verify(const struct note_verifier *witness, const char *note, size_t len,
                       uint64_t *ret_timestamp) _warn_unused_;
