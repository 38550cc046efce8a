/* signer.h: the signer process. It holds the log's private key in a separate, locked-down
 * process and answers a short list of typed requests over a SOCK_SEQPACKET socketpair; it
 * checks every checkpoint it is asked to sign (right origin, no rollback, no fork). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/merkle.h"
#include "macro.h"

#define SIGNER_MAX_MSG ((size_t) 64 * 1024) /* one request or response, header included */

/* Wire format, both ways: a 4-byte header then the payload, one message per packet.
 * Request header: the message type. Response header: 0 or a negative errno (int32). */
enum signer_msg_type {
        SIGNER_MSG_GET_LOG_VKEY = 1,      /* payload: none; answer: the log vkey text */
        SIGNER_MSG_SIGN_CHECKPOINT = 2,   /* payload: body length (u32), checkpoint body, consistency
                                           * proof (32-byte hashes); answer: one signature line */
        SIGNER_MSG_GET_STATE = 3,         /* payload: none; answer: 1 byte "has signed", size (u64 LE),
                                           * root (32 bytes) of the last tree it signed */
        SIGNER_MSG_SEAL = 4,              /* payload: organisation id (32 hex), document SHA-256 (32),
                                           * signing time (i64 ms); answer: CAdES-B-B SignedData DER */
        SIGNER_MSG_TIMESTAMP = 5,         /* payload: TimeStampReq DER; answer: TimeStampResp DER */
        SIGNER_MSG_SEAL_CERT = 6,         /* payload: organisation id (32 hex), its name; answer: PEM
                                           * seal certificate then CA (made when missing) */
        SIGNER_MSG_TSA_CERT = 7,          /* payload: none; answer: PEM TSA certificate then CA */
        SIGNER_MSG_SEAL_BATCH = 8,        /* payload: count (u32), then per document a SEAL payload and a
                                           * nonce (8); answer: per document status (i32), seal, TSA
                                           * reply (each u32 length + DER) */
        SIGNER_MSG_SIGN_MANIFEST = 0x100, /* payload: a backup manifest header (signer_backup.h);
                                           * answer: its Ed25519 signature (64 bytes) */
};

/* What the seal and TSA keys are made and used with. Set before signer_start(): the signer
 * processes forked later read it. Strings are copied. */
#define SIGNER_PKCS11_PATHS_MAX 4
struct signer_seal_options {
        const char *tsa_policy;   /* dotted OID of the TSA policy; NULL: TSA_DEFAULT_POLICY */
        uint32_t tsa_accuracy_ms; /* 0: TSA_DEFAULT_ACCURACY_MS; also how far apart the server's and
                                   * the signer's clocks may be for a seal */
        const char *ca_name;      /* the CN of a CA made at first start; NULL: "coffre vault CA" */
        const char *tsa_name;     /* the CN of a TSA certificate made at first start */
        /* directories a PKCS#11 module reads while signing ([keys] pkcs11_path): with at least one,
         * the signer loads seal and TSA keys that name a token key, before it locks itself down,
         * and then may read (only) under them and keys/ (Landlock) */
        const char *pkcs11_paths[SIGNER_PKCS11_PATHS_MAX];
        size_t n_pkcs11_paths;
};
void signer_set_seal_options(const struct signer_seal_options *o);

struct signer;

/* Creates keys_dir (0700) with log.key (PRIVATE+KEY text, 0600), log.vkey (0644) for a new
 * Ed25519 key named after the log origin, and an empty log.state (0600): the signer's memory of
 * what it signed, empty until the first checkpoint. -EEXIST when a log key is already there. */
int signer_init_keys(const char *keys_dir, const char *log_origin) _warn_unused_;

/* Forks the signer's supervisor, which forks the signer and restarts it with back-off whenever it
 * dies. Each signer loads keys_dir/log.key (a regular file of ours, mode 0600 or stricter, named
 * log_origin) and opens keys_dir/log.state (same rules), closes every other descriptor but
 * stderr, drops what it can (no new privileges, no new files or sockets, no core dumps, a
 * seccomp allow-list, dies with its parent) and serves requests. It signs a checkpoint only for
 * its origin, with no extension line other than one starting with a prefix in extensions (each
 * at most once), and only with a valid consistency proof from the last tree it signed, which it
 * writes to log.state (fdatasync) before it answers. Call it before starting threads. -EPERM for
 * a key or state file with loose permissions, -ENOENT when one is missing, -EBADMSG for a damaged
 * state file, -EXDEV for the state file of another log. */
int signer_start_ext(const char *keys_dir, const char *log_origin, char *const *extensions, size_t n_extensions,
                     struct signer **ret) _warn_unused_;
/* signer_start_ext() with no extension line allowed. */
int signer_start(const char *keys_dir, const char *log_origin, struct signer **ret) _warn_unused_;
/* Closes the channel and reaps the child (NULL-safe). */
void signer_stop(struct signer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct signer *, signer_stop);

/* The log's verifier key, from the signer (malloc'd). */
int signer_log_vkey(struct signer *s, char **ret_vkey) _warn_unused_;
/* What the signer last signed, from its own state file: *ret_have false before its first
 * checkpoint. Also a liveness probe: -EPIPE while no signer is up. */
int signer_state(struct signer *s, bool *ret_have, uint64_t *ret_size, merkle_hash *ret_root) _warn_unused_;
/* Parses a keys/log.state file open on fd (read-only: nothing is written, no permission rule
 * applied) for the log log_origin, by the signer's own rules: *ret_have false while it is empty.
 * -EBADMSG when damaged, -EXDEV for the state file of another log. For verifiers. */
int signer_state_file_read(int fd, const char *log_origin, bool *ret_have, uint64_t *ret_size,
                           merkle_hash *ret_root) _warn_unused_;
/* Creates a keys/log.state file (0600, must not exist) recording that the signer of log_origin
 * last signed the tree of size entries (> 0) with root: for a vault rebuilt from a backup, so
 * that its signer keeps refusing anything that does not extend the restored log. */
int signer_state_file_create(const char *path, const char *log_origin, uint64_t size,
                             const merkle_hash *root) _warn_unused_;
/* Signs a checkpoint body: the signed note (body, blank line, signature line), checked against
 * the log vkey before it is returned. proof is the RFC 9162 consistency proof from the tree the
 * signer last signed (signer_state()) to this one; none for the first checkpoint or the same
 * tree again. -EPERM when the signer refuses (other origin, unexpected extension line, a size
 * below one it signed, another root for a size it signed, a proof that does not hold), -EBADMSG
 * for a body that is not a checkpoint, -EPIPE while the signer is down (a call after the
 * supervisor restarted it reaches the new one). Thread-safe. */
int signer_sign_checkpoint(struct signer *s, const char *body, size_t len, const merkle_hash *proof, size_t proof_len,
                           char **ret_note) _warn_unused_;

/* ---- seal API (the server side of seals and timestamps) ---- */

/* A CAdES-B-B seal of a document of organisation org_id whose SHA-256 is sha256, made and signed
 * by the signer at its own time (signing_time_ms, the caller's clock, must be within the TSA
 * accuracy of it: -ERANGE otherwise). *ret is malloc'd DER. -ENOKEY when the organisation has no
 * seal key yet (signer_seal_chain() makes one), -EPIPE while the signer is down. */
int signer_seal(struct signer *s, const char *org_id, const uint8_t sha256[32], int64_t signing_time_ms, uint8_t **ret,
                size_t *ret_len) _warn_unused_;
#define SIGNER_SEAL_BATCH_MAX 16 /* documents per SEAL_BATCH: their answers fit in one packet */
#define SIGNER_SEAL_ITEM (32 + 32 + 8 + 8)
/* A seal and its timestamp in one step (what ingest uses): the CAdES-B-B seal (malloc'd DER) and
 * the signer's TSA reply (malloc'd DER) to a query over its signature value with this nonce, for
 * cades_attach_reply(). Concurrent callers share round trips (up to SIGNER_SEAL_BATCH_MAX per
 * packet), so the signer wakes once for many documents. Errors as signer_seal(). Thread-safe. */
int signer_seal_timestamped(struct signer *s, const char *org_id, const uint8_t sha256[32], int64_t signing_time_ms,
                            const uint8_t nonce[8], uint8_t **ret_seal, size_t *ret_seal_len, uint8_t **ret_reply,
                            size_t *ret_reply_len) _warn_unused_;
/* The signer's TSA's answer (DER TimeStampResp, granted or a rejection) to a DER TimeStampReq.
 * *ret malloc'd. -EPIPE while the signer is down. Never fails on a bad request: that is a
 * rejection reply. */
int signer_timestamp(struct signer *s, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) _warn_unused_;
/* The organisation's seal certificate chain (PEM: seal certificate, CA), made (key in the
 * signer, files in keys/) when it has none; org_name becomes its subject. malloc'd. */
int signer_seal_chain(struct signer *s, const char *org_id, const char *org_name, char **ret_pem) _warn_unused_;
/* The TSA certificate chain (PEM: TSA certificate, CA). malloc'd. */
int signer_tsa_chain(struct signer *s, char **ret_pem) _warn_unused_;

/* Sends one raw packet and returns the status of the answer: for tests of the child's input
 * handling only. */
int signer_send_raw(struct signer *s, const void *msg, size_t len, int *ret_status) _warn_unused_;
/* The current signer's pid, for tests. */
int signer_pid(struct signer *s);
/* Installs the signer's seccomp allow-list on the calling process (fd 0 the channel, 1 the one
 * key file it may open, 2 stderr, 3 the state file, 4 DATA/keys); anything else kills the
 * process. Exposed for tests. */
int signer_seccomp_install(void) _warn_unused_;
