/* recovery.c: the vault's start-up sweep, which decides on the audit log's evidence what to do with
 * objects and document keys (DEKs) that have no metadata row, and `coffre repair`.
 *
 * The invariant it relies on (ingest.c keeps it, whatever it batches): a document's
 * `document.create` entry is durable in the audit log before the upload is acknowledged (201).
 * The key and the object may be written before it, the metadata row before or after it, but never
 * the 201 before it. So for a key or object without a row:
 *   - no `document.create` naming it in the log: the upload was never acknowledged, and the
 *     remains may go (this is the only case where the sweep removes what it did not see deleted);
 *   - a `document.create` followed by `document.delete` or `document.discard`: the log already
 *     says the document is gone (a deletion or a failed upload cut short): the remains may go;
 *   - a `document.create` followed by `document.quarantine` (written by `coffre repair`): an
 *     operator decided to keep the remains aside; they are left alone;
 *   - a `document.create` and nothing after it: the document exists. Its row is rebuilt from the
 *     entry (time, organisation, actor, sha256, and the sealed details: name, class, size), the key
 *     and the object, once the object decrypts to exactly that size and sha256; the rebuild is
 *     logged as `document.restore`. Its seal row is kept when one is left; else the document is
 *     sealed again (and that logged as `document.seal`). When that cannot be done the server refuses to start and names
 *     the document and the `coffre repair` command; nothing is changed.
 * Nothing is removed unless every orphan is settled. And a row that the log says was deleted
 * after meta.db last indexed it (an older meta.db put back) has its deletion finished when its
 * key or object is already gone; when both are intact the deletion was cut short before it did
 * anything, and `document.delete_cancelled` records that the document stays. A row whose key is
 * gone (a crash between the key's destruction and the row's removal) has its deletion finished
 * when its trail ends in a `document.delete`. */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/log.h"
#include "blob/blob.h"
#include "crypto/keyring.h"
#include "crypto/object_stream.h"
#include "fields.h"
#include "hex.h"
#include "ledger.h"
#include "log.h"
#include "seal/cades.h"
#include "timeutil.h"
#include "vault_internal.h"

enum orphan_state {
        ORPHAN_UNLOGGED,    /* no document.create: never acknowledged */
        ORPHAN_LIVE,        /* created and nothing after: the document exists */
        ORPHAN_GONE,        /* deleted or discarded after its creation */
        ORPHAN_QUARANTINED, /* set aside by coffre repair */
};

struct orphan {
        char id[STORE_ID_LEN + 1];
        bool object, key;
        enum orphan_state state;
        uint64_t create_index;
};

struct orphans {
        struct orphan *v;
        size_t n, cap;
        struct vault *vault;
        uint64_t keyed_rows; /* keys whose row exists: fewer than rows when a row lost its key */
};

static int orphan_cmp(const void *a, const void *b) {
        return strcmp(((const struct orphan *) a)->id, ((const struct orphan *) b)->id);
}

static struct orphan *orphans_find(struct orphans *o, const char *id) {
        struct orphan key;
        if (o->n == 0)
                return NULL;
        snprintf(key.id, sizeof key.id, "%s", id);
        return bsearch(&key, o->v, o->n, sizeof *o->v, orphan_cmp);
}

/* Adds id (kept sorted, merged with an existing one). */
static int orphans_mark(struct orphans *o, const char *id, bool is_object) {
        struct orphan *f = orphans_find(o, id);
        if (!f) {
                if (o->n == o->cap) {
                        size_t cap = o->cap ? o->cap * 2 : 64;
                        void *p = reallocarray(o->v, cap, sizeof *o->v);
                        if (!p)
                                return -ENOMEM;
                        o->v = p;
                        o->cap = cap;
                }
                f = &o->v[o->n++];
                *f = (struct orphan){ 0 };
                snprintf(f->id, sizeof f->id, "%s", id);
                qsort(o->v, o->n, sizeof *o->v, orphan_cmp);
                f = orphans_find(o, id);
        }
        if (is_object)
                f->object = true;
        else
                f->key = true;
        return 0;
}

static int check_row(struct orphans *o, const char *id, bool is_object) {
        bool exists = false;
        if (!vault_id_valid(id))
                return 0; /* not a document's: nothing of ours to decide */
        int r = o->vault->store->ops->document_exists(o->vault->store, id, &exists);
        if (r < 0)
                return r;
        if (exists && !is_object)
                o->keyed_rows++;
        return exists ? 0 : orphans_mark(o, id, is_object);
}

static int blob_cb(const char *id, void *ud) {
        return check_row(ud, id, true);
}

static int dek_cb(const uint8_t object_id[KEYRING_ID_SIZE], void *ud) {
        char hex[STORE_ID_LEN + 1];
        hex_encode(object_id, KEYRING_ID_SIZE, hex);
        return check_row(ud, hex, false);
}

/* Reads the whole log once and sets each orphan's state from the entries that name it. */
static int orphans_read_log(struct orphans *o) {
        struct audit_log *log = ledger_log(o->vault->ledger);
        uint64_t size = audit_log_size(log);
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, AUDIT_ENTRY_MAX + 1);

        for (uint64_t i = 0; i < size; i++) {
                buf_clear(&b);
                int r = audit_log_entry(log, i, &b);
                if (r < 0)
                        return log_error_errno(r, "recovery: audit entry %llu unreadable: %s", (unsigned long long) i,
                                               strerror(-r));
                /* cheap filter: an entry about a document holds "object":"<32 hex>" */
                const char *p = memmem(b.data, b.len, "\"object\":\"", 10);
                if (!p || (size_t) (p - (const char *) b.data) + 10 + STORE_ID_LEN > b.len)
                        continue;
                char id[STORE_ID_LEN + 1];
                memcpy(id, p + 10, STORE_ID_LEN);
                id[STORE_ID_LEN] = 0;
                struct orphan *f = orphans_find(o, id);
                if (!f)
                        continue;
                struct audit_entry e = { 0 };
                r = audit_entry_parse((const char *) b.data, b.len, &e);
                if (r < 0)
                        return log_error_errno(r, "recovery: audit entry %llu does not parse", (unsigned long long) i);
                if (e.object && strcmp(e.object, id) == 0) {
                        if (strcmp(e.action, "document.create") == 0) {
                                f->state = ORPHAN_LIVE;
                                f->create_index = i;
                        } else if (f->state == ORPHAN_LIVE && (strcmp(e.action, "document.delete") == 0 ||
                                                               strcmp(e.action, "document.discard") == 0))
                                f->state = ORPHAN_GONE;
                        else if (f->state == ORPHAN_LIVE && strcmp(e.action, "document.quarantine") == 0)
                                f->state = ORPHAN_QUARANTINED;
                        else if (f->state == ORPHAN_GONE && strcmp(e.action, "document.delete_cancelled") == 0)
                                f->state = ORPHAN_LIVE; /* the deletion destroyed nothing */
                }
                audit_entry_clear(&e);
        }
        return 0;
}

static int collect_orphans(struct vault *v, struct orphans *o) {
        *o = (struct orphans){ .vault = v };
        int r = v->blob->ops->foreach(v->blob, blob_cb, o);
        if (r >= 0)
                r = keyring_dek_foreach(v->keyring, dek_cb, o);
        if (r >= 0 && o->n > 0)
                r = orphans_read_log(o);
        return r;
}

/* ---- rebuilding a row from the log ---- */

struct hash_ctx {
        struct blob *blob;
        struct blob_reader *br;
        EVP_MD_CTX *md;
};

static int hash_read_at(void *ud, uint8_t *p, size_t n, uint64_t off) {
        struct hash_ctx *h = ud;
        if (n > INT32_MAX)
                return -EINVAL;
        int k = h->blob->ops->reader_pread(h->br, p, n, off);
        return k < 0 ? k : (int) n;
}

static int hash_sink(void *ud, const uint8_t *p, size_t n) {
        struct hash_ctx *h = ud;
        return EVP_DigestUpdate(h->md, p, n) == 1 ? 0 : -ENOMEM;
}

/* Decrypts the whole object with its key: 0 when it is this document's object, of size bytes
 * whose SHA-256 is sha256; -EBADMSG (with *ret_why) otherwise. */
static int check_object(struct vault *v, const char *id, uint64_t size, const uint8_t sha256[32],
                        const char **ret_why) {
        uint8_t raw[KEYRING_ID_SIZE], dek[KEYRING_KEY_SIZE], got[32];
        struct hash_ctx h = { .blob = v->blob };
        struct obj_reader *rd = NULL;
        uint64_t csize = 0;
        unsigned mdlen = 0;
        int r;

        if (hex_decode(id, raw, sizeof raw) < 0)
                return -EINVAL;
        r = v->blob->ops->reader_open(v->blob, id, &h.br, &csize);
        if (r < 0) {
                *ret_why = "its object cannot be opened";
                return r == -ENOENT ? -EBADMSG : r;
        }
        r = keyring_dek_get(v->keyring, raw, dek);
        if (r >= 0) {
                r = obj_reader_new(dek, csize, hash_read_at, &h, &rd);
                if (r < 0)
                        *ret_why = "its object does not authenticate under its key";
        } else
                *ret_why = "its key cannot be unwrapped";
        sodium_memzero(dek, sizeof dek);
        if (r >= 0 &&
            (memcmp(obj_reader_header(rd)->object_id, raw, sizeof raw) != 0 || obj_reader_plaintext_size(rd) != size)) {
                *ret_why = "its object is not the one the log describes (id or size differ)";
                r = -EBADMSG;
        }
        if (r >= 0) {
                h.md = EVP_MD_CTX_new();
                r = h.md && EVP_DigestInit_ex(h.md, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
        }
        for (uint64_t off = 0; r >= 0 && off < size; off += OBJ_SEGMENT_SIZE) {
                r = obj_reader_read(rd, off, MIN((uint64_t) OBJ_SEGMENT_SIZE, size - off), hash_sink, &h);
                if (r == -EBADMSG)
                        *ret_why = "a segment of its object does not authenticate";
        }
        if (r >= 0 && EVP_DigestFinal_ex(h.md, got, &mdlen) != 1)
                r = -ENOMEM;
        if (r >= 0 && CRYPTO_memcmp(got, sha256, 32) != 0) {
                *ret_why = "its object decrypts to content whose SHA-256 is not the logged one";
                r = -EBADMSG;
        }
        obj_reader_free(rd);
        EVP_MD_CTX_free(h.md);
        v->blob->ops->reader_close(h.br);
        return r;
}

/* The row of a document from its document.create entry; *ret_why says what is missing. */
static int row_from_entry(struct vault *v, const struct orphan *f, struct store_document *d, const char **ret_why) {
        struct audit_entry e = { 0 };
        uint8_t kek_id[KEYRING_ID_SIZE], key[KEYRING_KEY_SIZE];
        _cleanup_buf_ struct buf b = {};
        struct buf plain;
        int r;

        buf_init(&b, AUDIT_ENTRY_MAX + 1);
        buf_init(&plain, AUDIT_ENTRY_DETAILS_PLAIN_MAX + 1);
        r = audit_log_entry(ledger_log(v->ledger), f->create_index, &b);
        if (r >= 0)
                r = audit_entry_parse((const char *) b.data, b.len, &e);
        if (r < 0) {
                *ret_why = "its document.create entry cannot be read";
                return -EBADMSG;
        }
        *d = (struct store_document){ 0 };
        r = -EBADMSG;
        *ret_why = "its document.create entry lacks a field the row needs";
        if (!e.object_sha256 || hex_decode(e.object_sha256, d->sha256, 32) < 0 || strlen(e.org) > STORE_ID_LEN ||
            strlen(e.actor) > STORE_ID_LEN || hex_decode(e.org, kek_id, sizeof kek_id) < 0 ||
            rfc3339_parse(e.time, &d->created_at) < 0)
                goto out;
        /* under the document's own key (derived from its DEK), or the organisation's audit key
         * for a document created before */
        uint8_t dek[KEYRING_KEY_SIZE], raw_id[KEYRING_ID_SIZE];
        r = -ENOENT;
        if (hex_decode(f->id, raw_id, sizeof raw_id) >= 0 && keyring_dek_get(v->keyring, raw_id, dek) >= 0) {
                vault_document_details_key(dek, f->id, key);
                sodium_memzero(dek, sizeof dek);
                r = audit_entry_open_details(&e, key, &plain);
        }
        if (r < 0) {
                r = keyring_org_key(v->keyring, kek_id, "audit-details", key);
                if (r >= 0)
                        r = audit_entry_open_details(&e, key, &plain);
        }
        sodium_memzero(key, sizeof key);
        if (r < 0) {
                *ret_why = "the details of its document.create entry cannot be opened (organisation key missing?)";
                r = -EBADMSG;
                goto out;
        }
        json_error_t jerr;
        json_t *o = json_loadb((const char *) plain.data, plain.len, 0, &jerr);
        const char *name = NULL, *class_ = NULL;
        json_int_t size = -1;
        if (!o || json_unpack(o, "{s:s, s:s, s:I}", "name", &name, "class", &class_, "size", &size) < 0 || size < 0 ||
            strlen(name) > STORE_NAME_MAX || strlen(class_) > STORE_CLASS_MAX) {
                *ret_why = "the details of its document.create entry are not a document's";
                r = -EBADMSG;
        } else {
                snprintf(d->id, sizeof d->id, "%s", f->id);
                snprintf(d->org_id, sizeof d->org_id, "%s", e.org);
                snprintf(d->created_by, sizeof d->created_by, "%s", e.actor);
                snprintf(d->name, sizeof d->name, "%s", name);
                snprintf(d->class_, sizeof d->class_, "%s", class_);
                d->size = (uint64_t) size;
                r = 0;
        }
        json_decref(o);
out:
        buf_free_secure(&plain);
        audit_entry_clear(&e);
        return r;
}

/* A new seal for a rebuilt row (its first one was lost with the row), stored encrypted under
 * the document's DEK like any seal; *ret_sha256 the seal's SHA-256 for its document.seal entry. */
static int reseal(struct vault *v, const struct store_document *d, struct store_seal *seal, uint8_t **ret_sealed,
                  uint8_t ret_sha256[32]) {
        _cleanup_free_ uint8_t *cms = NULL;
        uint8_t raw[KEYRING_ID_SIZE], dek[KEYRING_KEY_SIZE];
        struct cades_info info;
        size_t cms_len = 0;
        int r = hex_decode(d->id, raw, sizeof raw);

        if (r >= 0)
                r = vault_seal_make(v, d->org_id, d->sha256, &cms, &cms_len, &info);
        if (r >= 0)
                r = keyring_dek_get(v->keyring, raw, dek);
        if (r >= 0)
                r = vault_seal_encrypt(dek, d->id, cms, cms_len, ret_sealed, &seal->sealed_len);
        sodium_memzero(dek, sizeof dek);
        if (r < 0)
                return r;
        memcpy(seal->level, info.level, sizeof seal->level);
        seal->signing_time = info.signing_time;
        seal->timestamp_time = info.timestamp_time;
        seal->sealed = *ret_sealed;
        crypto_hash_sha256(ret_sha256, cms, cms_len);
        return 0;
}

/* 0 when the row was rebuilt (and the rebuild logged); -EBADMSG with *ret_why when it cannot be. */
static int rebuild_row(struct vault *v, const struct orphan *f, const char **ret_why) {
        struct store_document d;
        struct store_seal seal = { .audit_index = UINT64_MAX }, kept = { 0 };
        _cleanup_free_ uint8_t *sealed = NULL;
        uint8_t seal_sha[32];
        char details[64];
        int r;

        if (!f->key) {
                *ret_why = "its key is missing from the keyring";
                return -EBADMSG;
        }
        if (!f->object) {
                *ret_why = "its object is missing";
                return -EBADMSG;
        }
        r = row_from_entry(v, f, &d, ret_why);
        if (r >= 0)
                r = check_object(v, f->id, d.size, d.sha256, ret_why);
        if (r >= 0 && vault_name_seal(v, &d) < 0) {
                *ret_why = "its name cannot be sealed (organisation key missing?)";
                r = -EBADMSG;
        }
        if (r < 0)
                goto out;
        r = v->store->ops->seal_get(v->store, d.id, &kept);
        free(kept.sealed);
        if (r < 0 && r != -ENOENT) {
                *ret_why = "its seal row cannot be read";
                goto out;
        }
        /* a seal row left without its document row is kept; a lost one is made again */
        if (r == -ENOENT && vault_config_seals_class(&v->config, d.class_)) {
                r = reseal(v, &d, &seal, &sealed, seal_sha);
                if (r < 0) {
                        log_error("recovery: document %s cannot be sealed again: %s", d.id, strerror(-r));
                        *ret_why = "it cannot be sealed (its seal was lost with its row, and the signer refuses)";
                        r = -EBADMSG;
                        goto out;
                }
                d.seal = &seal;
        }
        r = v->store->ops->document_insert(v->store, &d);
        if (r < 0) {
                *ret_why = "its row cannot be written to the metadata store";
                goto out;
        }
        snprintf(details, sizeof details, "{\"from_entry\":%llu}", (unsigned long long) f->create_index);
        r = vault_record(v, d.org_id, "system:recovery", "document.restore", d.id, d.sha256, NULL, details);
        if (r >= 0 && d.seal)
                r = vault_record(v, d.org_id, "system:recovery", "document.seal", d.id, seal_sha, NULL, NULL);
out:
        /* the row held the clear name */
        sodium_memzero(&d, sizeof d);
        return r < 0 ? r : 0;
}

/* Removes what the log proves is no document (never acknowledged, or deleted / discarded). */
static int remove_remains(struct vault *v, const struct orphan *f) {
        uint8_t raw[KEYRING_ID_SIZE];
        int r;

        if (f->object) {
                r = v->blob->ops->remove(v->blob, f->id);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        if (f->key && hex_decode(f->id, raw, sizeof raw) >= 0) {
                r = keyring_dek_destroy(v->keyring, raw);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        if (f->state == ORPHAN_UNLOGGED) {
                /* said in the log, so that the object's history ends */
                r = vault_record(v, "system", "system:recovery", "document.discard", f->id, NULL, NULL, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A meta.db older than the log (restored from a backup) holds rows of documents whose deletion
 * the log records after it: the deletion is finished (the log says it was asked for and allowed;
 * deletion is logged before it happens). Only the entries meta.db had not indexed are read. */
static int finish_logged_deletions(struct vault *v, uint64_t from, int *ret_n) {
        struct audit_log *log = ledger_log(v->ledger);
        uint64_t size = audit_log_size(log);
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, AUDIT_ENTRY_MAX + 1);

        *ret_n = 0;
        for (uint64_t i = from; i < size; i++) {
                struct audit_entry e = { 0 };
                bool exists = false;
                buf_clear(&b);
                int r = audit_log_entry(log, i, &b);
                if (r < 0)
                        return r;
                if (!memmem(b.data, b.len, "\"action\":\"document.delete\"", 26))
                        continue;
                r = audit_entry_parse((const char *) b.data, b.len, &e);
                if (r >= 0 && e.object && strcmp(e.action, "document.delete") == 0 && vault_id_valid(e.object))
                        r = v->store->ops->document_exists(v->store, e.object, &exists);
                uint8_t raw[KEYRING_ID_SIZE], dek[KEYRING_KEY_SIZE];
                bool intact = false;
                if (r >= 0 && exists && hex_decode(e.object, raw, sizeof raw) >= 0) {
                        r = keyring_dek_get(v->keyring, raw, dek);
                        sodium_memzero(dek, sizeof dek);
                        struct blob_reader *br = NULL;
                        uint64_t csize;
                        if (r >= 0 && v->blob->ops->reader_open(v->blob, e.object, &br, &csize) >= 0) {
                                v->blob->ops->reader_close(br);
                                intact = true;
                        }
                        if (r == -ENOENT || r >= 0)
                                r = 0;
                }
                if (r >= 0 && exists && intact) {
                        /* its key and object are intact: the deletion was cut short before it
                         * destroyed anything (a full disk...). The document stays, and the log
                         * says so. */
                        log_warn("recovery: audit entry %llu deletes document %s, but its key and object are intact: "
                                 "the deletion did not happen; the document is kept",
                                 (unsigned long long) i, e.object);
                        r = vault_record(v, e.org, "system:recovery", "document.delete_cancelled", e.object, NULL, NULL,
                                         NULL);
                } else if (r >= 0 && exists) {
                        /* its key or its object is gone: what is left goes too */
                        log_warn("recovery: document %s has a metadata row but audit entry %llu deletes it and its key "
                                 "or object is gone (meta.db older than the log?): finishing the deletion",
                                 e.object, (unsigned long long) i);
                        r = keyring_dek_destroy(v->keyring, raw);
                        if (r == -ENOENT)
                                r = 0;
                        if (r >= 0)
                                r = v->store->ops->document_delete(v->store, e.org, e.object);
                        if (r >= 0) {
                                r = v->blob->ops->remove(v->blob, e.object);
                                if (r == -ENOENT)
                                        r = 0;
                        }
                        if (r >= 0)
                                (*ret_n)++;
                }
                audit_entry_clear(&e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- rows whose key is gone ---- */

struct keyless {
        struct vault *v;
        struct store_document *docs; /* rows without a key */
        size_t n, cap;
};

static int keyless_org_cb(const struct store_org *org, void *ud) {
        struct keyless *k = ud;
        _cleanup_free_ char *cursor = NULL;
        int r = 0;

        do {
                struct store_document_filter f = { .org_id = org->id,
                                                   .created_after = INT64_MIN,
                                                   .created_before = INT64_MAX,
                                                   .cursor = cursor,
                                                   .limit = 1000 };
                struct store_document *page = NULL;
                char *next = NULL;
                size_t n = 0;
                r = k->v->store->ops->document_list(k->v->store, &f, &page, &n, &next);
                if (r < 0)
                        return r;
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        uint8_t raw[KEYRING_ID_SIZE], dek[KEYRING_KEY_SIZE];
                        if (hex_decode(page[i].id, raw, sizeof raw) < 0)
                                continue;
                        int g = keyring_dek_get(k->v->keyring, raw, dek);
                        sodium_memzero(dek, sizeof dek);
                        if (g != -ENOENT)
                                continue;
                        if (k->n == k->cap) {
                                size_t cap = k->cap ? k->cap * 2 : 8;
                                void *p = reallocarray(k->docs, cap, sizeof *k->docs);
                                if (!p) {
                                        r = -ENOMEM;
                                        break;
                                }
                                k->docs = p;
                                k->cap = cap;
                        }
                        k->docs[k->n++] = page[i];
                }
                sodium_memzero(page, n * sizeof *page);
                free(page);
                free(cursor);
                cursor = next;
        } while (r >= 0 && cursor);
        return r;
}

/* Whether the trail of id ends in a deletion (a document.delete not followed by a
 * document.delete_cancelled); *ret_index is that entry. */
static int trail_deleted(struct vault *v, const char *id, bool *ret, uint64_t *ret_index) {
        _cleanup_free_ uint64_t *idx = NULL;
        _cleanup_buf_ struct buf b;
        size_t n = 0;
        bool deleted = false;
        uint64_t at = 0;

        buf_init(&b, AUDIT_ENTRY_MAX + 1);
        int r = vault_document_trail(v, id, &idx, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct audit_entry e = { 0 };
                buf_clear(&b);
                r = audit_log_entry(ledger_log(v->ledger), idx[i], &b);
                if (r >= 0)
                        r = audit_entry_parse((const char *) b.data, b.len, &e);
                if (r >= 0 && e.object && strcmp(e.object, id) == 0) {
                        if (strcmp(e.action, "document.delete") == 0) {
                                deleted = true;
                                at = idx[i];
                        } else if (strcmp(e.action, "document.delete_cancelled") == 0)
                                deleted = false;
                }
                audit_entry_clear(&e);
        }
        if (r < 0)
                return r;
        *ret = deleted;
        *ret_index = at;
        return 0;
}

/* A crash between the destruction of a document's key and the removal of its row (a deletion
 * is logged, then the key goes, then the row) leaves a row without a key: listed, and never
 * readable again. Such rows are found without a look at every row: the sweep already counted
 * the keys that have a row, and only when the store holds more rows than that are the rows
 * read, to find those without a key. A row whose trail ends in its deletion has the deletion
 * finished; one whose trail does not is reported and left. */
static int finish_keyless_deletions(struct vault *v, int *ret_n) {
        struct keyless k = { .v = v };
        int r = v->store->ops->org_foreach(v->store, keyless_org_cb, &k);

        *ret_n = 0;
        for (size_t i = 0; r >= 0 && i < k.n; i++) {
                struct store_document *d = &k.docs[i];
                bool deleted = false;
                uint64_t at = 0;
                r = trail_deleted(v, d->id, &deleted, &at);
                if (r < 0)
                        break;
                if (!deleted) {
                        log_error("recovery: document %s has a metadata row but no key, and the audit log records "
                                  "no deletion of it: its content cannot be read; left as it is",
                                  d->id);
                        continue;
                }
                log_warn("recovery: document %s has a metadata row but its key is gone and audit entry %llu deletes "
                         "it (a crash during its deletion): finishing the deletion",
                         d->id, (unsigned long long) at);
                r = v->store->ops->document_delete(v->store, d->org_id, d->id);
                if (r == -ENOENT)
                        r = 0;
                if (r >= 0) {
                        r = v->blob->ops->remove(v->blob, d->id);
                        if (r == -ENOENT)
                                r = 0;
                }
                if (r >= 0)
                        (*ret_n)++;
        }
        if (k.docs)
                sodium_memzero(k.docs, k.cap * sizeof *k.docs);
        free(k.docs);
        return r;
}

int vault_recover(struct vault *v) {
        struct orphans o = { 0 };
        uint64_t indexed = 0, rows = 0, bytes = 0;
        int r, removed_tmp, removed = 0, restored = 0, unresolved = 0, quarantined = 0, finished = 0;

        removed_tmp = v->blob->ops->cleanup_tmp(v->blob);
        if (removed_tmp < 0)
                return log_error_errno(removed_tmp, "cannot clean the upload directory: %s", strerror(-removed_tmp));
        r = v->store->ops->audit_ref_max(v->store, &indexed);
        if (r < 0)
                return log_error_errno(r, "recovery: cannot read the audit references: %s", strerror(-r));
        r = vault_reindex_audit_at_start(v);
        if (r < 0)
                return log_error_errno(r, "recovery: cannot index the audit log: %s", strerror(-r));
        r = collect_orphans(v, &o);
        if (r >= 0)
                r = v->store->ops->document_stats(v->store, &rows, &bytes);
        if (r < 0)
                goto out;

        /* First the documents the log says exist: any that cannot be rebuilt stops everything. */
        for (size_t i = 0; i < o.n; i++) {
                struct orphan *f = &o.v[i];
                const char *why = NULL;
                if (f->state != ORPHAN_LIVE)
                        continue;
                int k = rebuild_row(v, f, &why);
                if (k >= 0) {
                        log_warn("recovery: document %s had no metadata row; rebuilt it from audit entry %llu, its "
                                 "key and its object",
                                 f->id, (unsigned long long) f->create_index);
                        restored++;
                        continue;
                }
                if (k != -EBADMSG) {
                        r = k;
                        goto out;
                }
                log_error("recovery: document %s exists in the audit log (document.create at entry %llu) but has no "
                          "metadata row, and it cannot be rebuilt: %s. Nothing was changed. To start anyway, keeping "
                          "what is left of it aside and recording that in the log, run: coffre repair --data %s "
                          "--document %s",
                          f->id, (unsigned long long) f->create_index, why, v->dir, f->id);
                unresolved++;
        }
        if (unresolved > 0) {
                r = -EBADMSG;
                log_error("recovery: %d document(s) of the audit log cannot be rebuilt: refusing to start", unresolved);
                goto out;
        }
        for (size_t i = 0; i < o.n; i++) {
                struct orphan *f = &o.v[i];
                if (f->state == ORPHAN_QUARANTINED) {
                        quarantined++;
                        continue;
                }
                if (f->state == ORPHAN_LIVE)
                        continue;
                r = remove_remains(v, f);
                if (r < 0)
                        goto out;
                removed++;
        }
        if (rows > o.keyed_rows) {
                r = finish_keyless_deletions(v, &finished);
                if (r < 0)
                        goto out;
        }
        int more = 0;
        r = finish_logged_deletions(v, MIN(indexed, audit_log_size(ledger_log(v->ledger))), &more);
        if (r < 0)
                goto out;
        finished += more;
        log_info("recovery: removed %d temp files and the remains of %d uploads the log proves unfinished or "
                 "deleted; rebuilt %d rows; finished %d logged deletions; %d quarantined left aside",
                 removed_tmp, removed, restored, finished, quarantined);
out:
        free(o.v);
        if (r < 0 && r != -EBADMSG)
                log_error("recovery sweep failed: %s", strerror(-r));
        return r;
}

/* ---- coffre repair ---- */

int vault_repair_document(struct vault *v, const char *id, const char *reason) {
        struct orphans o;
        int r;

        if (!vault_id_valid(id))
                return -EINVAL;
        r = vault_reindex_audit(v);
        if (r >= 0)
                r = collect_orphans(v, &o);
        if (r < 0)
                return r;
        struct orphan *f = orphans_find(&o, id);
        if (!f || f->state != ORPHAN_LIVE) {
                log_error("repair: document %s is not a logged document without a metadata row: nothing to repair", id);
                free(o.v);
                return -ENOENT;
        }
        const char *why = "unknown";
        r = rebuild_row(v, f, &why);
        if (r >= 0) {
                log_info("repair: document %s rebuilt from audit entry %llu", id, (unsigned long long) f->create_index);
                free(o.v);
                return 0;
        }
        if (r != -EBADMSG) {
                free(o.v);
                return r;
        }
        /* The remains stay where they are (never deleted); the entry tells the sweep to leave them. */
        json_t *d = json_pack("{s:I, s:s, s:s, s:s, s:s}", "create_index", (json_int_t) f->create_index, "object",
                              f->object ? "kept" : "missing", "key", f->key ? "kept" : "missing", "found", why,
                              "reason", reason ? reason : "");
        char *details = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(d);
        struct audit_entry e = { 0 };
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, AUDIT_ENTRY_MAX + 1);
        r = details ? audit_log_entry(ledger_log(v->ledger), f->create_index, &b) : -ENOMEM;
        if (r >= 0)
                r = audit_entry_parse((const char *) b.data, b.len, &e);
        if (r >= 0)
                r = vault_record(v, e.org, "system:repair", "document.quarantine", id, NULL, NULL, details);
        audit_entry_clear(&e);
        if (r >= 0)
                log_warn("repair: document %s could not be rebuilt (%s); its remains are quarantined in place and "
                         "the decision is recorded in the audit log",
                         id, why);
        free(details);
        free(o.v);
        return r;
}
