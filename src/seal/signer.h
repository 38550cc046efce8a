/* signer.h: the signer process. It holds the log's private key in a separate, locked-down
 * process and answers a short list of typed requests over a SOCK_SEQPACKET socketpair; it
 * checks every checkpoint it is asked to sign (right origin, no rollback, no fork). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define SIGNER_MAX_MSG ((size_t) 64 * 1024) /* one request or response, header included */

/* Wire format, both ways: a 4-byte header then the payload, one message per packet.
 * Request header: the message type. Response header: 0 or a negative errno (int32). */
enum signer_msg_type {
        SIGNER_MSG_GET_LOG_VKEY = 1,      /* payload: none; answer: the log vkey text */
        SIGNER_MSG_SIGN_CHECKPOINT = 2,   /* payload: checkpoint body; answer: one signature line */
};

struct signer;

/* Creates keys_dir (0700) with log.key (PRIVATE+KEY text, 0600) and log.vkey (0644) for a new
 * Ed25519 key named after the log origin. -EEXIST when a log key is already there. */
int signer_init_keys(const char *keys_dir, const char *log_origin) _warn_unused_;

/* Forks the signer. The child loads keys_dir/log.key (a regular file of ours, mode 0600 or
 * stricter, named log_origin), closes every other descriptor but stderr, drops what it can
 * (no new privileges, no new files or sockets, no core dumps, dies with the parent) and serves
 * requests. Call it before starting threads. -EPERM for a key file with loose permissions. */
int signer_start(const char *keys_dir, const char *log_origin, struct signer **ret) _warn_unused_;
/* Closes the channel and reaps the child (NULL-safe). */
void signer_stop(struct signer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct signer *, signer_stop);

/* The log's verifier key, from the signer (malloc'd). */
int signer_log_vkey(struct signer *s, char **ret_vkey) _warn_unused_;
/* Signs a checkpoint body: the signed note (body, blank line, signature line), checked against
 * the log vkey before it is returned. -EPERM when the signer refuses (other origin, a size
 * below one it signed, or another root for a size it signed), -EBADMSG for a body that is not a
 * checkpoint, -EPIPE when the signer is gone. Thread-safe. */
int signer_sign_checkpoint(struct signer *s, const char *body, size_t len, char **ret_note) _warn_unused_;

/* Sends one raw packet and returns the status of the answer: for tests of the child's input
 * handling only. */
int signer_send_raw(struct signer *s, const void *msg, size_t len, int *ret_status) _warn_unused_;
/* The child's pid, for tests. */
int signer_pid(const struct signer *s);
