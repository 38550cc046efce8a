/* lifecycle.h: retention, legal holds and erasure of documents: the vault's rules for when a
 * document may go, who may make it go early, and what is left once it has gone (a tombstone).
 * The sweeper finds the documents whose retention ended and erases them or lists them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "store/store.h"
#include "vault.h"

/* The clock of the rules (ms): the real one unless a test build moved it (the accounts' clock,
 * POST /v1/_test/clock; COFFRE_TEST_CLOCK_SHIFT_MS for the offline commands of a test build). */
int64_t vault_now_ms(struct vault *v);

/* Why a deletion or a change was refused (with -EPERM). */
enum vault_refusal {
        VAULT_REFUSED_NONE,
        VAULT_REFUSED_RETENTION, /* retained: retain_until in the future */
        VAULT_REFUSED_HOLD,      /* an active legal hold */
        VAULT_REFUSED_SHORTER,   /* a class change that would end sooner or lock less */
};

/* The retention of a new document of class class_ in org_id, ingested at now: -ENOENT for an
 * unknown class, -EINVAL for a malformed document_date (YYYY-MM-DD; NULL = the ingest day) or an
 * organisation time zone this machine does not know. */
int vault_retention_for(struct vault *v, const char *org_id, const char *class_, const char *document_date, int64_t now,
                        struct store_document *d) _warn_unused_;

/* "a, b, c": the classes of the configuration (for a 400 on an unknown one). malloc'd. */
char *vault_class_names(struct vault *v);

/* DELETE /v1/documents/{id}: erases the document (DEK destroyed, ciphertext removed, tombstone
 * kept) when its retention ended and no hold is on it, or early under a governance lock when the
 * actor is an owner and gives a reason. -EPERM with *ret_why and *ret_doc (its class and
 * retain_until) when refused; -ENOENT when absent; -ENOTCONN (with *ret_tomb) when erased. */
int vault_document_delete_checked(struct vault *v, const struct vault_actor *a, const char *id, const char *reason,
                                  const char *request_id, struct store_document *ret_doc, enum vault_refusal *ret_why)
        _warn_unused_;
/* PATCH {"class"}: -EPERM (VAULT_REFUSED_SHORTER) when the new class ends sooner or locks less,
 * -ENOENT for an unknown class (*ret_unknown_class true) or document. */
int vault_document_set_class(struct vault *v, const struct vault_actor *a, const char *id, const char *class_,
                             const char *request_id, struct store_document *ret, bool *ret_unknown_class,
                             enum vault_refusal *ret_why) _warn_unused_;
/* The tombstone of an erased document of the actor's organisation; -ENOENT when none. */
int vault_tombstone_get(struct vault *v, const struct vault_actor *a, const char *id, struct store_tombstone *ret)
        _warn_unused_;

/* A legal hold as the API shows it (reason and case opened). */
#define VAULT_HOLD_TEXT_MAX 1024
struct vault_hold {
        char id[STORE_ID_LEN + 1];
        char document_id[STORE_ID_LEN + 1];
        char reason[VAULT_HOLD_TEXT_MAX + 1];
        char case_[VAULT_HOLD_TEXT_MAX + 1];
        int64_t created_at;
        char created_by[STORE_ID_LEN + 1];
};
/* reason and case: 1..1024 bytes of UTF-8 (-EINVAL otherwise). -ENOENT when no such document. */
int vault_hold_add(struct vault *v, const struct vault_actor *a, const char *document_id, const char *reason,
                   const char *case_, const char *request_id, struct vault_hold *ret) _warn_unused_;
int vault_hold_release(struct vault *v, const struct vault_actor *a, const char *document_id, const char *hold_id,
                       const char *reason, const char *request_id) _warn_unused_;
/* Active holds of the actor's organisation, newest first; *ret malloc'd (free with
 * vault_hold_list_free, which wipes them). */
int vault_hold_list(struct vault *v, const struct vault_actor *a, struct vault_hold **ret, size_t *ret_n) _warn_unused_;
void vault_hold_list_free(struct vault_hold *h, size_t n);

/* One sweep: every document (all organisations) whose retention ended at now with no hold is
 * erased when its class says on_expiry = erase, else listed for review (as is a document whose
 * class is no longer configured). dry_run: lists both and changes nothing. cb (may be NULL) is
 * called for each document with erase = what was (or would be) done. Each erasure stands on its
 * own: an interrupted sweep leaves whole documents or logged deletions that the next start
 * finishes, and running it again goes on where it stopped. */
struct vault_sweep_stats {
        uint64_t erased, review, failed;
};
int vault_lifecycle_sweep(struct vault *v, bool dry_run, int64_t now,
                          void (*cb)(const struct store_document *d, bool erase, void *ud), void *ud,
                          struct vault_sweep_stats *ret) _warn_unused_;

/* The server's sweeper: a thread running vault_lifecycle_sweep at start and then every [lifecycle]
 * interval seconds (0: never). Stop waits for a sweep under way to finish its current document. */
int vault_lifecycle_start(struct vault *v) _warn_unused_;
void vault_lifecycle_stop(void);
