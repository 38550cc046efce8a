/* vault.h: the vault's rules for documents: authentication of tokens, ingest (encrypt, store,
 * make durable), reading, deletion, and the recovery sweep at start. Knows nothing about HTTP. */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "macro.h"
#include "store/store.h"

#define VAULT_TOKEN_PREFIX "cfr_"

struct vault;

/* What a credential is: an API token (scoped), a login session (all of its user's rights), a
 * session that may only enrol its user's second factor, or the bootstrap token of coffre init
 * (may only create the first owner and the operator). */
enum vault_credential {
        VAULT_CRED_TOKEN,
        VAULT_CRED_SESSION,
        VAULT_CRED_ENROL,
        VAULT_CRED_BOOTSTRAP,
};

/* Token scopes (a subset of the creator's rights); a session holds VAULT_SCOPE_ALL. */
#define VAULT_SCOPE_DOCUMENTS_READ (1u << 0)  /* "documents:read" */
#define VAULT_SCOPE_DOCUMENTS_WRITE (1u << 1) /* "documents:write" */
#define VAULT_SCOPE_AUDIT_READ (1u << 2)      /* "audit:read" */
#define VAULT_SCOPE_WITNESS (1u << 3)         /* "witness": checkpoints and cosignatures only */
#define VAULT_SCOPE_ACCOUNTS (1u << 4)        /* "accounts": users, tokens, organisation settings */
#define VAULT_SCOPE_ALL 0x1fu

struct vault_actor {
        char org_id[STORE_ID_LEN + 1];   /* the operator's is the instance's own organisation */
        char actor_id[STORE_ID_LEN + 1]; /* user id (or the bootstrap token's id): opaque, no personal data */
        char credential_id[STORE_ID_LEN + 1]; /* session or token id */
        char role[32];                   /* owner, admin, accountant, viewer, auditor, operator */
        enum vault_credential credential;
        uint32_t scopes;                 /* VAULT_SCOPE_* */
};

struct vault_init_options {
        const char *tls_cert; /* PEM files to use instead of a self-signed pair; both or neither */
        const char *tls_key;
        const char *org_name;
        const char *master_key;     /* a pkcs11: URI: the master key on a token (made there when missing),
                                 * instead of DATA/keys/master.key */
        const char *pkcs11_path[4]; /* [keys] pkcs11_path: the module's token store, for the sandbox */
        size_t n_pkcs11_path;
};

/* Creates a new vault in dir (which must not exist or be empty). Returns the bootstrap token
 * (malloc'd; wipe and free it) which is also written to dir/bootstrap-token (0600). */
int vault_init(const char *dir, const struct vault_init_options *o, char **ret_token) _warn_unused_;

int vault_open(const char *dir, struct vault **ret) _warn_unused_;
/* `coffre key list` (keylist.c): each key in use, where it is, and each certificate's subject and
 * notAfter, to out. *ret_warnings: certificates expired, expiring within 30 days or unreadable. */
int vault_key_list(const char *dir, FILE *out, unsigned *ret_warnings) _warn_unused_;
/* `coffre key import` (keyimport.c): a seal (org_id) or TSA certificate with its chain and key
 * file, checked, installed in place of the current pair. -EBUSY while a server runs; -EINVAL
 * (logged) when a check fails. key_spec: a PEM file or a pkcs11: URI. */
int vault_key_import(const char *dir, bool tsa, const char *org_id, const char *cert_file, const char *chain_file,
                     const char *key_spec) _warn_unused_;
/* Unwraps a key under the master key (after the sandbox is on: a token must still answer). Logs why. */
int vault_check_master(struct vault *v) _warn_unused_;
/* `coffre key migrate-master`: the master key from DATA/keys/master.key to the token uri names
 * (master_migrate.c), writing pkcs11_paths as [keys] pkcs11_path. -EBUSY while a server runs; safe
 * to interrupt and rerun. Logs each step. */
int vault_migrate_master(const char *dir, const char *uri, char *const *pkcs11_paths, size_t n_pkcs11_paths)
        _warn_unused_;
void vault_close(struct vault *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vault *, vault_close);

const struct vault_config *vault_get_config(const struct vault *v);
const char *vault_dir(const struct vault *v);
/* Absolute path of a file named in the config (relative to the data directory). malloc'd. */
char *vault_path(const struct vault *v, const char *rel);

/* Readies the object store for a server's uploads (fs: the fan-out directories synced once at
 * start rather than on each one's first use). Writes to DATA/objects: not for read-only tools. */
int vault_prepare_writes(struct vault *v) _warn_unused_;

/* Settles, on the audit log's evidence, objects and DEKs without a document row (recovery.c):
 * removes what provably never became a document (or was deleted), rebuilds the rows the log proves,
 * and returns -EBADMSG (having changed nothing) when a logged document cannot be rebuilt. */
int vault_recover(struct vault *v) _warn_unused_;
/* coffre repair: rebuilds the row of a logged document that has none, or else records in the log
 * that its remains (kept, never deleted) are quarantined, so that the server can start. -ENOENT
 * when id is no such document. */
int vault_repair_document(struct vault *v, const char *id, const char *reason) _warn_unused_;

/* -EACCES for an unknown, malformed or expired token. */
int vault_authenticate(struct vault *v, const char *token, struct vault_actor *ret) _warn_unused_;

/* Checks a document name / class as given by a user: -EINVAL with a reason in *ret_reason. */
int vault_check_name(const char *name, const char **ret_reason) _warn_unused_;
int vault_check_class(const char *class_, const char **ret_reason) _warn_unused_;
bool vault_id_valid(const char *id);

struct vault_upload;
int vault_upload_begin(struct vault *v, const struct vault_actor *a, const char *name, const char *class_,
                       const uint8_t *expected_sha256, struct vault_upload **ret) _warn_unused_;
/* As vault_upload_begin, with the date the retention starts from (YYYY-MM-DD in the organisation's
 * time zone; NULL = the ingest day). -ENOENT for a class that is not configured, -EINVAL for a
 * malformed date. */
int vault_upload_begin_dated(struct vault *v, const struct vault_actor *a, const char *name, const char *class_,
                             const char *document_date, const uint8_t *expected_sha256, struct vault_upload **ret)
        _warn_unused_;
/* -ENOSPC when the disk is full; after an error only vault_upload_abort is allowed. */
int vault_upload_write(struct vault_upload *u, const void *p, size_t n) _warn_unused_;
uint64_t vault_upload_size(const struct vault_upload *u);
/* Makes the document durable; frees u in every case. -EBADMSG when the expected hash differs
 * (nothing stored), -ENOSPC on a full disk (nothing stored). */
int vault_upload_finish(struct vault_upload *u, const char *request_id, struct store_document *ret) _warn_unused_;
void vault_upload_abort(struct vault_upload *u);

int vault_document_get(struct vault *v, const struct vault_actor *a, const char *id, struct store_document *ret)
        _warn_unused_;
/* The organisation's documents matching f (its org_id and name_index are set here) and, when name
 * is not NULL, of exactly that name (found through its blind index). The names are decrypted;
 * free *ret with vault_document_list_free, which wipes them. -EBADMSG when a stored name does not
 * decrypt (nothing returned). */
int vault_document_list(struct vault *v, const struct vault_actor *a, struct store_document_filter *f, const char *name,
                        struct store_document **ret, size_t *ret_n, char **ret_cursor) _warn_unused_;
void vault_document_list_free(struct store_document *docs, size_t n);
/* Deletion is in lifecycle.h (vault_document_delete_checked): retention and holds first. */
/* Counts the documents and their bytes in the store; run once at start, before serving. */
int vault_stats_load(struct vault *v) _warn_unused_;
/* The counts from vault_stats_load, kept up to date by uploads and deletions: no query. */
void vault_stats(struct vault *v, uint64_t *ret_count, uint64_t *ret_bytes);
/* How well the group commits of an upload's durable writes batch, since the server started: for
 * each store, the syncs (commits) done and the items they made durable. */
struct vault_durability_stats {
        uint64_t keyring_commits, keyring_keys;
        uint64_t audit_groups, audit_entries;
        uint64_t meta_commits, meta_rows;
};
void vault_durability_stats(struct vault *v, struct vault_durability_stats *ret);

/* Streaming, random-access reading of one document's plaintext. */
struct vault_reader;
int vault_document_open(struct vault *v, const struct vault_actor *a, const char *id, const char *request_id,
                        struct store_document *ret_doc, struct vault_reader **ret) _warn_unused_;
/* Reads up to n bytes at off; *ret_n = 0 at the end. -EBADMSG when the object fails authentication. */
int vault_reader_read(struct vault_reader *r, uint64_t off, uint8_t *buf, size_t n, size_t *ret_n) _warn_unused_;
/* Starts decrypting [off, off+len) ahead on a thread of its own, for a sequential read. */
int vault_reader_prefetch(struct vault_reader *r, uint64_t off, uint64_t len) _warn_unused_;
void vault_reader_free(struct vault_reader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vault_reader *, vault_reader_free);

/* New KEK version for an organisation (all when org_id is NULL), DEKs rewrapped. */
int vault_rotate_keys(struct vault *v, const char *org_id) _warn_unused_;

struct ledger;
struct ledger *vault_ledger(struct vault *v);
/* Indexes of the log entries about document id (which may be deleted), ascending, after *after
 * (NULL: from the start), at most limit; *ret_more when there are more. malloc'd. Each entry is
 * read and checked to name id; references past the log's end or naming another object make
 * them all be rebuilt from the log. -ENOENT when there are none or they belong to another
 * organisation. */
int vault_document_audit(struct vault *v, const struct vault_actor *a, const char *id, const uint64_t *after,
                         size_t limit, uint64_t **ret, size_t *ret_n, bool *ret_more) _warn_unused_;

/* ---- seals (seal.c) ---- */

/* The seal of document id as stored (level, times; ret->sealed is the encrypted form, malloc'd).
 * -ENOENT when there is no such document, or it has no seal. */
int vault_seal_get(struct vault *v, const struct vault_actor *a, const char *id, struct store_seal *ret) _warn_unused_;
/* The seal of document id: the CAdES-B-T detached SignedData, DER (malloc'd). */
int vault_document_seal(struct vault *v, const struct vault_actor *a, const char *id, uint8_t **ret, size_t *ret_len)
        _warn_unused_;
/* The built-in TSA's answer (DER TimeStampResp, malloc'd) to a DER TimeStampReq. */
int vault_tsa_respond(struct vault *v, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) _warn_unused_;
/* PEM: the TSA certificate then the CA; NULL before the seals are set up. */
const char *vault_tsa_chain(struct vault *v);
/* notAfter (Unix seconds, 0 unknown) of the CA, the TSA and the soonest-expiring seal certificate. */
struct vault_cert_expiry {
        int64_t ca, tsa, seal;
};
void vault_cert_expiry(struct vault *v, struct vault_cert_expiry *ret);
/* The B-B to B-T upgrade queue (with an external TSA, [tsa] url): started once the process is
 * confined (a no-op without one). It finds the B-B seals left by an earlier run first. */
int vault_seal_upgrader_start(struct vault *v) _warn_unused_;
struct vault_seal_upgrade_stats {
        bool enabled;
        uint64_t queued, upgraded, failures;
};
void vault_seal_upgrade_stats(struct vault *v, struct vault_seal_upgrade_stats *ret);
