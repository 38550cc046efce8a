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
        char name[STORE_NAME_MAX + 1];  /* UTF-8, no control characters (checked by caller) */
        char class_[STORE_CLASS_MAX + 1];
        uint64_t size;                  /* plaintext bytes */
        uint8_t sha256[32];             /* of the plaintext */
        int64_t created_at;             /* Unix time, milliseconds */
        char created_by[STORE_ID_LEN + 1]; /* opaque actor id (token id) */
        const struct store_seal *seal;     /* insert only: stored with the row, in its transaction; NULL: none */
};

struct store_document_filter {
        const char *org_id;      /* required */
        const char *class_;      /* NULL = any */
        int64_t created_after;   /* ms, inclusive; INT64_MIN = unbounded */
        int64_t created_before;  /* ms, exclusive; INT64_MAX = unbounded */
        const char *cursor;      /* opaque, from a previous page; NULL = first page */
        size_t limit;            /* 1..1000 */
};

struct store_token {
        char id[STORE_ID_LEN + 1];
        char org_id[STORE_ID_LEN + 1];
        char role[32];           /* "admin", later "owner", "auditor", "member", ... */
        int64_t created_at;
        int64_t expires_at;      /* 0 = never */
};

struct store_org {
        char id[STORE_ID_LEN + 1];
        char name[128];
        int64_t created_at;
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
        /* -ENOENT when absent or in another organisation. */
        int (*document_get)(struct store *s, const char *org_id, const char *id, struct store_document *ret);
        /* Newest first. *ret is malloc'd (free()); *ret_next_cursor malloc'd or NULL at the end. */
        int (*document_list)(struct store *s, const struct store_document_filter *f,
                             struct store_document **ret, size_t *ret_n, char **ret_next_cursor);
        /* Durable when it returns 0; -ENOENT when absent. */
        int (*document_delete)(struct store *s, const char *org_id, const char *id);
        /* true when a document row with this id exists (any organisation), for orphan sweeps. */
        int (*document_exists)(struct store *s, const char *id, bool *ret);
        int (*document_stats)(struct store *s, uint64_t *ret_count, uint64_t *ret_bytes);
        /* Transactions of the document group commit and the rows they held, since open. */
        void (*commit_stats)(struct store *s, uint64_t *ret_commits, uint64_t *ret_rows);

        /* Tokens are looked up by the SHA-256 of the secret; the secret itself is never stored. */
        int (*token_insert)(struct store *s, const struct store_token *t, const uint8_t hash[32]);
        int (*token_lookup)(struct store *s, const uint8_t hash[32], struct store_token *ret);

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
