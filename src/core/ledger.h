/* ledger.h: the vault's audit service. Owns the Merkle log (DATA/audit/), the signer process
 * that holds the log key, the checkpointer thread (a signed checkpoint at least every second
 * while entries arrive) and the witnesses' cosignatures. Every state change of the vault goes
 * through ledger_record() before it is acknowledged. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "audit/entry.h"
#include "audit/merkle.h"
#include "macro.h"

struct audit_log;
struct ledger;
struct signer;

/* Creates DATA/audit/ and the log key pair in DATA/keys/ (log.key 0600, log.vkey). */
int ledger_init(const char *data_dir, const char *origin) _warn_unused_;

/* Opens DATA/audit/ (exclusive: -EBUSY when a server holds it) and forks the signer (call
 * before any thread starts). witness_vkeys: the witnesses whose cosignatures are accepted. */
int ledger_open(const char *data_dir, const char *origin, char *const *witness_vkeys, size_t n_witnesses,
                struct ledger **ret) _warn_unused_;
/* Signs a last checkpoint covering everything, stops the checkpointer and the signer. */
void ledger_close(struct ledger *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ledger *, ledger_close);

/* Sets the key of the record MACs (32 bytes, derived from the master key; copied): every entry
 * recorded from then on carries one. */
int ledger_set_record_key(struct ledger *l, const uint8_t key[32]) _warn_unused_;
/* After a crash, signs the entries past the last checkpoint if each carries a valid record MAC
 * and none is a copy of another, and records that as an audit.recover entry; -EBADMSG (nothing
 * changed, no checkpoint will be signed) otherwise. No-op when the checkpoint covers everything.
 * (After a clean stop, ledger_open() itself refuses any entry past the checkpoint.) */
int ledger_recover_tail(struct ledger *l) _warn_unused_;

/* Starts the checkpointer thread (serve only; CLI commands checkpoint at close). */
int ledger_start(struct ledger *l) _warn_unused_;

/* Appends an entry; returns once it is durable. ret_index may be NULL. */
int ledger_record(struct ledger *l, const struct audit_entry *e, const uint8_t *details_key, const char *details_plain,
                  uint64_t *ret_index) _warn_unused_;

/* Appends two entries as consecutive indexes, in one group (one sync): a document's creation
 * (details sealed under details_key) and its seal. *ret_first is the first's index. */
int ledger_record_pair(struct ledger *l, const struct audit_entry *first, const uint8_t *details_key,
                       const char *details_plain, const struct audit_entry *second, uint64_t *ret_first) _warn_unused_;

/* Signs and stores a checkpoint of the current size if it is newer than the last one. */
int ledger_checkpoint_now(struct ledger *l) _warn_unused_;

struct audit_log *ledger_log(struct ledger *l);
/* The signer process the ledger started (seals and timestamps go through it too). */
struct signer *ledger_signer(struct ledger *l);
const char *ledger_origin(const struct ledger *l);
/* The log's verifier key (C2SP vkey text). */
const char *ledger_vkey(const struct ledger *l);

/* Timestamps checkpoints with the signer's TSA: the first checkpoint signed, then the first one
 * each interval_ms after the last token (0: every checkpoint); tokens are checked to chain to
 * trust (a reference is taken), appended to audit/checkpoint-timestamps (synced) and kept in
 * memory for the newest 1024. Loads the file. */
int ledger_set_checkpoint_timestamps(struct ledger *l, X509_STORE *trust, int64_t interval_ms) _warn_unused_;
/* The stored timestamp (DER TimeStampResp, malloc'd) of the checkpoint of size (0: the latest
 * timestamped). -ENOENT when none is kept for it. */
int ledger_checkpoint_timestamp(struct ledger *l, uint64_t size, uint8_t **ret, size_t *ret_len) _warn_unused_;

/* The latest checkpoint (size 0: latest; else the one stored at exactly that size) as a signed
 * note with every accepted cosignature line appended. malloc'd. -ENOENT when none. */
int ledger_checkpoint_note(struct ledger *l, uint64_t size, char **ret_note) _warn_unused_;
/* Takes a checkpoint note carrying cosignature lines; keeps those that verify under a known
 * witness key and whose body is exactly a stored checkpoint. Returns how many were new.
 * -EBADMSG when none verifies, -ENOENT when the body is no stored checkpoint. */
int ledger_add_cosignatures(struct ledger *l, const char *note, size_t len, unsigned *ret_added) _warn_unused_;

/* ---- health ---- */

struct ledger_health {
        bool signer_up;       /* the signer answers */
        bool stalled;         /* entries have waited for a checkpoint longer than the stall timeout */
        int64_t uncovered_ms; /* how long the oldest entry not covered by a checkpoint has waited */
};
/* [audit] stall_timeout, in ms (<= 0: the default, 10 s). */
void ledger_set_stall_timeout(struct ledger *l, int64_t ms);
/* Probes the signer (a round trip) and reads the checkpointing state. */
int ledger_health(struct ledger *l, struct ledger_health *ret) _warn_unused_;
/* True when no checkpoint has covered the log for longer than the stall timeout: state-changing
 * requests are then refused (503) rather than piling up entries that cannot be proved. Cheap. */
bool ledger_stalled(struct ledger *l);
/* Keeps cosignatures for the newest n checkpoints (1 to 1024, the default), dropping the oldest
 * beyond that now (the file is rewritten) and as new ones come. */
int ledger_set_cosigned_checkpoints(struct ledger *l, size_t n) _warn_unused_;
