/* store.h: the metadata store interface. One file per backend (sqlite.c now, postgres.c later);
 * callers see only this struct of function pointers. Knows nothing about HTTP. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define STORE_ID_LEN 32 /* ids are 32 lower-case hex characters (16 random bytes) */
#define STORE_NAME_MAX 255
#define STORE_CLASS_MAX 64
#define STORE_AUDIT_OBJECT_MAX 1024 /* bytes of an audit reference's object id (an entry field's limit) */
/* A document name is stored sealed (a field ciphertext made by core/, crypto/field.h: 29 bytes more
 * than the name) beside its blind index; the store only keeps and returns those bytes. */
#define STORE_NAME_SEALED_MAX (STORE_NAME_MAX + 29)
#define STORE_NAME_INDEX_SIZE 32

/* A sealed document named by its id and organisation (seal_list_level). */
struct store_seal_ref {
        char id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
};

/* A document's seal (CAdES), stored encrypted by the caller (docs/formats.md). */
struct store_seal {
        char level[4];          /* "B-B" or "B-T" */
        int64_t signing_time;   /* ms */
        int64_t timestamp_time; /* ms; 0 for B-B */
        uint8_t *sealed;        /* the encrypted seal; malloc'd by seal_get */
        size_t sealed_len;      /* 1..STORE_SEAL_MAX */
        uint64_t audit_index;   /* insert: its document.seal entry, referenced in the same transaction */
};
#define STORE_SEAL_MAX 65536

struct store_document {
        char id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
        /* The clear name (UTF-8, no control characters): core/ fills it from name_sealed and
         * seals it into name_sealed; the store neither writes nor reads it, but for a row written
         * before names were sealed (name_sealed_len 0), whose clear name it returns here. */
        char name[STORE_NAME_MAX + 1];
        uint8_t name_sealed[STORE_NAME_SEALED_MAX]; /* stored in the name column */
        size_t name_sealed_len;                     /* 1..STORE_NAME_SEALED_MAX */
        uint8_t name_index[STORE_NAME_INDEX_SIZE];  /* blind index of the name (name_bi column) */
        char class_[STORE_CLASS_MAX + 1];
        uint64_t size;                     /* plaintext bytes */
        uint8_t sha256[32];                /* of the plaintext */
        int64_t created_at;                /* Unix time, milliseconds */
        char created_by[STORE_ID_LEN + 1]; /* opaque actor id (token id) */
        const struct store_seal *seal;     /* insert only: stored with the row, in its transaction; NULL: none */
        int64_t retain_until;              /* ms: deletable from then on (core/retention.c) */
        char lock[16];                     /* "compliance" or "governance", fixed at ingest */
        char document_date[11];            /* YYYY-MM-DD the retention starts from ("" before version 6) */
};

/* What is left of an erased document (no name, no content, no key). */
#define STORE_WHY_MAX 64
struct store_tombstone {
        char id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
        char class_[STORE_CLASS_MAX + 1];
        uint8_t sha256[32];
        int64_t created_at, retain_until, erased_at;
        char why[STORE_WHY_MAX + 1]; /* "deleted", "deleted-early", "retention-ended" */
};

/* A legal hold on one document; reason and case are field ciphertexts (core/ seals them). */
#define STORE_HOLD_TEXT_MAX 1024
#define STORE_HOLD_SEALED_MAX (STORE_HOLD_TEXT_MAX + 29)
struct store_hold {
        char id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
        char document_id[STORE_ID_LEN + 1];
        uint8_t reason[STORE_HOLD_SEALED_MAX];
        size_t reason_n;
        uint8_t case_[STORE_HOLD_SEALED_MAX];
        size_t case_n;
        int64_t created_at;
        char created_by[STORE_ID_LEN + 1];
        int64_t released_at; /* 0 = active */
};

struct store_document_filter {
        const char *org_id;        /* required */
        const char *class_;        /* NULL = any */
        const uint8_t *name_index; /* NULL = any; else STORE_NAME_INDEX_SIZE bytes: that name only */
        int64_t created_after;     /* ms, inclusive; INT64_MIN = unbounded */
        int64_t created_before;    /* ms, exclusive; INT64_MAX = unbounded */
        const char *cursor;        /* opaque, from a previous page; NULL = first page */
        size_t limit;              /* 1..1000 */
};

/* Credential kinds of the tokens table. */
#define STORE_TOKEN_API "api"             /* an API token of a user */
#define STORE_TOKEN_BOOTSTRAP "bootstrap" /* coffre init's token */

#define STORE_TOKEN_NAME_MAX 64

struct store_token {
        char id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
        char role[32];                  /* "bootstrap" for the bootstrap token; an API token takes its user's role */
        char kind[16];                  /* STORE_TOKEN_API or STORE_TOKEN_BOOTSTRAP */
        char user_id[STORE_ID_LEN + 1]; /* the creator; "" for the bootstrap token */
        char name[STORE_TOKEN_NAME_MAX + 1]; /* not personal data: stored in clear */
        uint32_t scopes;                     /* VAULT_SCOPE_* */
        int64_t created_at;
        int64_t expires_at; /* 0 = never */
        int64_t revoked_at; /* 0 = not revoked */
        int64_t last_used;  /* 0 = never */
};

#define STORE_ORG_STATUS_ACTIVE "active"
#define STORE_ORG_STATUS_SUSPENDED "suspended"

struct store_org {
        char id[STORE_ID_LEN + 1];
        char name[128];
        int64_t created_at;
        char status[16];                         /* "active" (also when left empty at insert) or "suspended" */
        bool require_2fa;                        /* every member must enrol a second factor */
        char default_class[STORE_CLASS_MAX + 1]; /* "" = the vault's */
        char time_zone[64];                      /* IANA name; "UTC" by default */
};

/* Personal fields of a user are stored as field ciphertexts (crypto/field.h): the store keeps
 * bytes, never clear values. */
#define STORE_FIELD_CT_MAX 384
#define STORE_PASSWORD_HASH_MAX 128

struct store_user {
        char id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
        char role[32];           /* owner, admin, accountant, viewer, auditor, operator */
        char status[16];         /* "active" or "disabled" */
        uint8_t email_index[32]; /* blind index of the lower-case e-mail, instance-wide (unique) */
        uint8_t email[STORE_FIELD_CT_MAX];
        size_t email_n;
        uint8_t display_name[STORE_FIELD_CT_MAX]; /* email_n etc. = 0 when absent */
        size_t display_name_n;
        uint8_t phone[STORE_FIELD_CT_MAX];
        size_t phone_n;
        char password_hash[STORE_PASSWORD_HASH_MAX];
        uint8_t totp_secret[STORE_FIELD_CT_MAX]; /* ciphertext; pending until totp_enabled */
        size_t totp_secret_n;
        bool totp_enabled;
        uint64_t totp_last_step; /* the last TOTP step accepted (replays refused) */
        bool logged_in;          /* has logged in once: 2FA now required for owner/admin/operator */
        int64_t created_at;
};

#define STORE_SESSION_FULL "full"
#define STORE_SESSION_ENROL "enrol" /* may only enrol its user's second factor */

struct store_session {
        char id[STORE_ID_LEN + 1];
        char user_id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
        char kind[16];
        int64_t created_at, last_seen, expires_at; /* expires_at: the absolute end */
        int64_t revoked_at;                        /* 0 = live */
};

struct store;

struct store_ops {
        const char *name;
        void (*close)(struct store *s);

        int (*org_insert)(struct store *s, const struct store_org *org);
        int (*org_get)(struct store *s, const char *id, struct store_org *ret);
        /* Calls cb for every organisation; stops early on a negative return and passes it on. */
        int (*org_foreach)(struct store *s, int (*cb)(const struct store_org *o, void *ud), void *ud);

        /* Durable when it returns 0 (batched with concurrent inserts: group commit). -EEXIST on duplicate id. */
        int (*document_insert)(struct store *s, const struct store_document *d);
        /* As document_insert, and in the same transaction the audit reference (d->id, audit_index)
         * of the entry that recorded the creation: one commit makes both durable. */
        int (*document_insert_ref)(struct store *s, const struct store_document *d, uint64_t audit_index);
        /* The seal stored with document id (ret->sealed malloc'd); -ENOENT when it has none. */
        int (*seal_get)(struct store *s, const char *id, struct store_seal *ret);
        /* Replaces a B-B seal of document id with seal (its level B-T) and adds the reference to
         * seal->audit_index (its document.seal entry), in one durable transaction. -ENOENT when the
         * document has no B-B seal (gone, or upgraded already). */
        int (*seal_upgrade)(struct store *s, const char *id, const struct store_seal *seal);
        /* Up to max ids of documents whose seal has this level, in id order. */
        int (*seal_list_level)(struct store *s, const char *level, size_t max, struct store_seal_ref *ret,
                               size_t *ret_n);
        /* -ENOENT when absent or in another organisation. */
        int (*document_get)(struct store *s, const char *org_id, const char *id, struct store_document *ret);
        /* Newest first. *ret is malloc'd (free()); *ret_next_cursor malloc'd or NULL at the end. */
        int (*document_list)(struct store *s, const struct store_document_filter *f, struct store_document **ret,
                             size_t *ret_n, char **ret_next_cursor);
        /* Durable when it returns 0; -ENOENT when absent. */
        int (*document_delete)(struct store *s, const char *org_id, const char *id);
        /* true when a document row with this id exists (any organisation), for orphan sweeps. */
        int (*document_exists)(struct store *s, const char *id, bool *ret);
        int (*document_stats)(struct store *s, uint64_t *ret_count, uint64_t *ret_bytes);
        /* Transactions of the document group commit and the rows they held, since open. */
        void (*commit_stats)(struct store *s, uint64_t *ret_commits, uint64_t *ret_rows);
        /* Up to limit (1..1000) rows that still hold a clear name (written before names were
         * sealed), with that name in name and name_sealed_len 0. *ret malloc'd (wipe it). */
        int (*document_clear_names)(struct store *s, size_t limit, struct store_document **ret, size_t *ret_n);
        /* Replaces the clear names of n rows (by id) with their name_sealed and name_index, in one
         * durable transaction; a row already sealed is left as it is. */
        int (*document_seal_names)(struct store *s, const struct store_document *docs, size_t n);
        /* Rewrites the database so that no free page or WAL frame keeps content removed before:
         * VACUUM, then the WAL checkpointed and truncated. No other use of the store meanwhile. */
        int (*compact)(struct store *s);

        /* Tokens are looked up by the SHA-256 of the secret; the secret itself is never stored. */
        int (*token_insert)(struct store *s, const struct store_token *t, const uint8_t hash[32]);
        int (*token_lookup)(struct store *s, const uint8_t hash[32], struct store_token *ret);

        /* ---- accounts (sqlite_accounts.c) ---- */
        /* Updates status, require_2fa, name, default_class, time_zone. -ENOENT when absent. */
        int (*org_update)(struct store *s, const struct store_org *org);
        /* -EEXIST when the id or the e-mail index is taken (in any organisation). */
        int (*user_insert)(struct store *s, const struct store_user *u);
        /* -ENOENT when absent or in another organisation (org_id NULL: any). */
        int (*user_get)(struct store *s, const char *org_id, const char *id, struct store_user *ret);
        int (*user_get_by_index)(struct store *s, const uint8_t email_index[32], struct store_user *ret);
        /* The users of an organisation, oldest first, at most max; *ret malloc'd. */
        int (*user_list)(struct store *s, const char *org_id, size_t max, struct store_user **ret, size_t *ret_n);
        /* Writes every mutable column (role, status, fields, password, TOTP, logged_in). -ENOENT when absent. */
        int (*user_update)(struct store *s, const struct store_user *u);
        /* What a login changes, and only that: the password hash (rehashed at a new cost), the TOTP
         * step accepted and the first-login mark, if the stored step is still prev_step (a
         * concurrent login with the same code loses: -ESTALE). */
        int (*user_login_update)(struct store *s, const struct store_user *u, uint64_t prev_step);
        /* Removes the user with its sessions, tokens and recovery codes, in one transaction. */
        int (*user_delete)(struct store *s, const char *org_id, const char *id);
        /* Users of org_id with role (org_id NULL: any organisation). */
        int (*user_count_role)(struct store *s, const char *org_id, const char *role, uint64_t *ret);
        /* Active (not disabled) users of org_id with role. */
        int (*user_count_active_role)(struct store *s, const char *org_id, const char *role, uint64_t *ret);
        /* Replaces the user's recovery codes by n new hashes. */
        int (*recovery_set)(struct store *s, const char *user_id, const uint8_t (*hashes)[32], size_t n);
        /* Marks an unused code used at now: 0, or -ENOENT when no unused code has this hash. */
        int (*recovery_use)(struct store *s, const char *user_id, const uint8_t hash[32], int64_t now);
        int (*recovery_count)(struct store *s, const char *user_id, uint64_t *ret_unused);
        /* Sessions are looked up by the SHA-256 of their bearer, like tokens. */
        int (*session_insert)(struct store *s, const struct store_session *se, const uint8_t hash[32]);
        int (*session_lookup)(struct store *s, const uint8_t hash[32], struct store_session *ret);
        int (*session_touch)(struct store *s, const char *id, int64_t now);
        int (*session_revoke)(struct store *s, const char *id, int64_t now);
        /* Every live session of a user; *ret_n (may be NULL) how many. */
        int (*session_revoke_user)(struct store *s, const char *user_id, int64_t now, uint64_t *ret_n);
        /* API tokens of an organisation (the bootstrap token excluded), newest first; *ret malloc'd. */
        int (*token_list)(struct store *s, const char *org_id, size_t max, struct store_token **ret, size_t *ret_n);
        /* -ENOENT when absent, in another organisation, or revoked already. */
        int (*token_revoke)(struct store *s, const char *org_id, const char *id, int64_t now);
        /* Revokes every token of a kind (the bootstrap token once the first owner exists). */
        int (*token_revoke_kind)(struct store *s, const char *kind, int64_t now);
        int (*token_touch)(struct store *s, const char *id, int64_t now);

        /* Small key/value settings (vault id, schema version, log origin...). */
        int (*setting_get)(struct store *s, const char *key, char **ret);
        int (*setting_set)(struct store *s, const char *key, const char *value);

        /* Audit references: which audit log entries name an object (a document id...), so that an
         * object's history is found without scanning the log. Rebuildable from the log.
         * object_id: 1..STORE_AUDIT_OBJECT_MAX bytes; index < 2^63. */
        /* Durable when it returns 0; adding an existing pair again is a no-op (0). */
        int (*audit_ref_add)(struct store *s, const char *object_id, uint64_t index);
        /* The indexes recorded for object_id, ascending; *ret malloc'd (NULL when *ret_n = 0). */
        int (*audit_ref_list)(struct store *s, const char *object_id, uint64_t **ret, size_t *ret_n);
        /* 1 + the largest index recorded (any object), 0 when none: where a re-index resumes. */
        int (*audit_ref_max)(struct store *s, uint64_t *ret_next);

        /* ---- retention, holds, erasure (sqlite_lifecycle.c) ---- */
        /* Sets class, retain_until and lock if retain_until is not earlier than the stored one:
         * -ESTALE otherwise, -ENOENT when absent. */
        int (*document_set_retention)(struct store *s, const char *org_id, const char *id, const char *class_,
                                      int64_t retain_until, const char *lock);
        /* Deletes the row and inserts the tombstone, in one durable transaction. -ENOENT when absent. */
        int (*document_erase)(struct store *s, const struct store_tombstone *t);
        int (*tombstone_get)(struct store *s, const char *org_id, const char *id, struct store_tombstone *ret);
        /* Up to limit documents (any organisation) with retain_until <= now and no active hold,
         * oldest end first, after (retain_until, id) of the last one seen (after_id "" first). */
        int (*document_expired)(struct store *s, int64_t now, int64_t after_until, const char *after_id, size_t limit,
                                struct store_document **ret, size_t *ret_n);
        int (*hold_insert)(struct store *s, const struct store_hold *h);
        /* Marks an active hold released at now. -ENOENT when absent, elsewhere, or released already. */
        int (*hold_release)(struct store *s, const char *org_id, const char *document_id, const char *id, int64_t now);
        /* Active holds of an organisation (of one document when document_id is not NULL), newest
         * first, at most max. *ret malloc'd. */
        int (*hold_list)(struct store *s, const char *org_id, const char *document_id, size_t max,
                         struct store_hold **ret, size_t *ret_n);
};

struct store {
        const struct store_ops *ops;
};

/* Opens (creating if asked) the SQLite store at path (DATA/meta.db). */
int store_sqlite_open(const char *path, bool create, struct store **ret) _warn_unused_;

static inline void store_close(struct store *s) {
        if (s)
                s->ops->close(s);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct store *, store_close);
