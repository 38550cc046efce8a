/* vault_internal.h: what the files of the vault's core (vault.c, ingest.c, reader.c) share. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "vault.h"

struct accounts;
struct blob;
struct keyring;
struct vault_field_keys_cache;
struct vault_seals;
struct seal_upgrader;
struct cades_info;

struct vault {
        char *dir;
        struct vault_config config;
        struct store *store;
        struct blob *blob;
        struct keyring *keyring;
        struct ledger *ledger;
        struct accounts *accounts;                 /* users, sessions, tokens (accounts.c) */
        struct vault_field_keys_cache *field_keys; /* fields.c: each organisation's field keys */
        struct vault_seals *seals;                 /* seal.c: NULL until vault_seals_open() */
        struct seal_upgrader *upgrader;            /* seal_upgrade.c: NULL without [tsa] url */
        /* for /metrics: counted at start (vault_stats_load), then kept by create and delete */
        _Atomic uint64_t n_documents, n_bytes;
        bool opened;       /* vault_open() succeeded */
        bool reserve_held; /* DATA/space-reserve is allocated (atomic) */
        uint64_t ref_gap;  /* the first log index whose audit reference could not be stored, or
                            * UINT64_MAX (atomic): the references are re-indexed from there */
};

/* seal.c: the CA and TSA chains from the signer, every organisation's seal key made. */
int vault_seals_open(struct vault *v) _warn_unused_;
void vault_seals_close(struct vault *v);
/* A CAdES-B-T seal over a document of org_id with this SHA-256 (malloc'd DER) and its level and
 * times. -EPIPE/-ETIMEDOUT while the signer is down. */
int vault_seal_make(struct vault *v, const char *org_id, const uint8_t sha256[32], uint8_t **ret, size_t *ret_len,
                    struct cades_info *ret_info) _warn_unused_;
/* B-B to B-T through the external TSA of [tsa] url (checked: status, nonce, imprint, signature
 * and chain to ca_file). *ret malloc'd. -ENODEV without one. */
int vault_seal_timestamp_external(struct vault *v, const uint8_t *cms, size_t len, uint8_t **ret, size_t *ret_len,
                                  struct cades_info *ret_info) _warn_unused_;
/* seal_upgrade.c: the queue of B-B seals waiting for the external TSA. new() at open (with
 * [tsa] url only; the others are no-ops without it), the thread by vault_seal_upgrader_start(). */
int vault_seal_upgrader_new(struct vault *v) _warn_unused_;
void vault_seal_upgrader_free(struct vault *v);
/* Queues a document sealed B-B (dropped when the queue is full: the store is scanned again). */
void vault_seal_upgrader_enqueue(struct vault *v, const char *id, const char *org_id);
/* The TSA answered an ingest: retry the queue now. */
void vault_seal_upgrader_kick(struct vault *v);
/* An ingest got no timestamp (counted with the failures). */
void vault_seal_upgrader_note_failure(struct vault *v);

/* The stored form of a seal (docs/formats.md): AES-256-GCM under HMAC-SHA-256(DEK, label). */
int vault_seal_encrypt(const uint8_t dek[32], const char *doc_id, const uint8_t *p, size_t n, uint8_t **ret,
                       size_t *ret_len) _warn_unused_;
int vault_seal_decrypt(const uint8_t dek[32], const char *doc_id, const uint8_t *p, size_t n, uint8_t **ret,
                       size_t *ret_len) _warn_unused_;

/* vault_document_open() logging action ("document.evidence", ...) instead of document.read. */
int vault_document_open_as(struct vault *v, const struct vault_actor *a, const char *id, const char *request_id,
                           const char *action, struct store_document *ret_doc, struct vault_reader **ret) _warn_unused_;
/* Appends an audit entry (durable on return) and indexes it under its object. details_plain
 * (which may hold personal data) is sealed under the organisation's audit key. */
int vault_record(struct vault *v, const char *org_id, const char *actor_id, const char *action, const char *object_id,
                 const uint8_t *sha256, const char *request_id, const char *details_plain) _warn_unused_;
/* The same without the index: the caller stores the reference itself (in the document's own
 * metadata transaction at ingest). */
int vault_record_entry(struct vault *v, const char *org_id, const char *actor_id, const char *action,
                       const char *object_id, const uint8_t *sha256, const char *request_id, const char *details_plain,
                       uint64_t *ret_index) _warn_unused_;
/* A sealed document's document.create (details sealed as vault_record_entry_keyed does) and
 * document.seal (object_sha256: the seal's SHA-256) entries, in one group: *ret_first is the
 * create's index, the seal's is the next. The caller stores both references. */
int vault_record_created_sealed(struct vault *v, const struct store_document *d, const uint8_t seal_sha256[32],
                                const char *request_id, const char *details_plain, const uint8_t *details_key,
                                uint64_t *ret_first) _warn_unused_;
/* As vault_record_entry, the details sealed under details_key (32 bytes) instead of the
 * organisation's audit key: a document's own key, so that erasing it makes them unreadable. */
int vault_record_entry_keyed(struct vault *v, const char *org_id, const char *actor_id, const char *action,
                             const char *object_id, const uint8_t *sha256, const char *request_id,
                             const char *details_plain, const uint8_t *details_key, uint64_t *ret_index) _warn_unused_;
/* The key of a document's document.create details: a keyed BLAKE2b of its id under its DEK, so
 * it dies with the DEK (erasure) and is never stored. */
void vault_document_details_key(const uint8_t dek[32], const char *id, uint8_t out[32]);
/* {"class","name","size"} of a document, for an audit entry's details. malloc'd. */
char *vault_details_json(const struct store_document *d);
/* Erases document d (of its organisation): logged (document.delete, with why and reason), DEK
 * destroyed, row replaced by its tombstone, ciphertext removed, then logged as document.erase.
 * The caller has checked retention and holds. */
int vault_document_erase(struct vault *v, const char *actor_id, const struct store_document *d, const char *why,
                         const char *reason, int64_t now, const char *request_id) _warn_unused_;
/* For _cleanup_: wipes and frees a string that may hold personal data. */
void vault_free_secret_stringp(char **s);
/* Indexes the log entries past the last stored audit reference (lost in a crash, or a restored
 * meta.db). */
int vault_reindex_audit(struct vault *v) _warn_unused_;
/* At start: indexes from where the references were last known complete (a crash or a failed
 * store can leave a reference missing below later ones), then records the log's size as such. */
int vault_reindex_audit_at_start(struct vault *v) _warn_unused_;
/* The log indexes of the entries that name id, ascending, checked against the log (rebuilt from
 * it when they do not add up); *ret malloc'd. */
int vault_document_trail(struct vault *v, const char *id, uint64_t **ret, size_t *ret_n) _warn_unused_;
