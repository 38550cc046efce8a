/* vault.c: the vault's rules over the store, blob, keyring and ledger: opening, the recovery sweep
 * at start, token authentication, names and classes, listing, deletion (crypto-shredding), key
 * rotation, and the audit record of every change. Ingest is in ingest.c, reading in reader.c. */
#include "vault.h"
#include "vault_internal.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blob/blob.h"
#include "crypto/keyring.h"
#include "fileio.h"
#include "audit/log.h"
#include "hex.h"
#include "ledger.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

struct ledger *vault_ledger(struct vault *v) {
        return v->ledger;
}

const struct vault_config *vault_get_config(const struct vault *v) {
        return &v->config;
}

const char *vault_dir(const struct vault *v) {
        return v->dir;
}

char *vault_path(const struct vault *v, const char *rel) {
        if (rel[0] == '/')
                return strdup(rel);
        return path_join(v->dir, rel);
}

bool vault_id_valid(const char *id) {
        if (!id || strlen(id) != STORE_ID_LEN)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

/* ---- audit ---- */

/* Appends an audit entry (durable on return) and indexes it under its object. details_plain
 * (which may hold personal data) is sealed under the organisation's audit key. */
int vault_record(struct vault *v, const char *org_id, const char *actor_id, const char *action, const char *object_id,
                 const uint8_t *sha256, const char *request_id, const char *details_plain) {
        char time[32], sha_hex[65], rid[17];
        uint8_t kek_id[KEYRING_ID_SIZE], key[KEYRING_KEY_SIZE];
        bool have_key = false;
        uint64_t index;
        int r;

        if (!request_id) {
                uint8_t raw[8];
                randombytes_buf(raw, sizeof raw);
                hex_encode(raw, sizeof raw, rid);
                request_id = rid;
        }
        audit_entry_format_time(now_ms(), time);
        if (sha256)
                hex_encode(sha256, 32, sha_hex);
        struct audit_entry e = {
                .time = time,
                .org = (char *) org_id,
                .actor = (char *) actor_id,
                .action = (char *) action,
                .object = (char *) object_id,
                .object_sha256 = sha256 ? sha_hex : NULL,
                .request_id = (char *) request_id,
        };
        if (details_plain && hex_decode(org_id, kek_id, sizeof kek_id) >= 0) {
                r = keyring_org_key(v->keyring, kek_id, "audit-details", key);
                if (r < 0)
                        return log_error_errno(r, "no audit key for organisation %s: %s", org_id, strerror(-r));
                have_key = true;
        }
        r = ledger_record(v->ledger, &e, have_key ? key : NULL, have_key ? details_plain : NULL, &index);
        sodium_memzero(key, sizeof key);
        if (r < 0)
                return r;
        if (object_id) {
                /* the log itself is the truth; a lost reference is rebuilt at start */
                int k = v->store->ops->audit_ref_add(v->store, object_id, index);
                if (k < 0)
                        log_warn("audit reference %llu not stored: %s", (unsigned long long) index, strerror(-k));
        }
        return 0;
}

char *vault_details_json(const struct store_document *d) {
        json_t *o = json_pack("{s:s, s:s, s:I}", "name", d->name, "class", d->class_, "size", (json_int_t) d->size);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        return s;
}

void vault_free_secret_stringp(char **s) {
        if (*s) {
                sodium_memzero(*s, strlen(*s));
                free(*s);
        }
}

/* Reads and parses log entry i; release ret with audit_entry_clear(). */
static int load_entry(struct vault *v, uint64_t i, struct audit_entry *ret) {
        _cleanup_buf_ struct buf b;
        buf_init(&b, AUDIT_ENTRY_MAX + 1);
        int r = audit_log_entry(ledger_log(v->ledger), i, &b);
        if (r < 0)
                return r;
        r = audit_entry_parse((const char *) b.data, b.len, ret);
        if (r < 0)
                return log_error_errno(r, "audit entry %llu does not parse", (unsigned long long) i);
        return 0;
}

/* Indexes the log entries that name an object but have no reference yet (lost in a crash). */
static int reindex_audit(struct vault *v) {
        struct audit_log *log = ledger_log(v->ledger);
        uint64_t next = 0, size = audit_log_size(log);
        int r = v->store->ops->audit_ref_max(v->store, &next);
        if (r < 0)
                return r;
        for (uint64_t i = next; i < size; i++) {
                struct audit_entry e = { 0 };
                r = load_entry(v, i, &e);
                if (r < 0)
                        return r;
                if (e.object)
                        r = v->store->ops->audit_ref_add(v->store, e.object, i);
                audit_entry_clear(&e);
                if (r < 0)
                        return r;
        }
        if (size > next)
                log_info("audit: indexed entries %llu to %llu", (unsigned long long) next, (unsigned long long) size);
        return 0;
}

int vault_document_audit(struct vault *v, const struct vault_actor *a, const char *id, uint64_t **ret, size_t *ret_n) {
        uint64_t *idx = NULL;
        size_t n = 0;

        if (!vault_id_valid(id))
                return -ENOENT;
        int r = v->store->ops->audit_ref_list(v->store, id, &idx, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                free(idx);
                return -ENOENT;
        }
        /* the trail outlives the document: check the organisation on the first entry */
        struct audit_entry e = { 0 };
        r = load_entry(v, idx[0], &e);
        if (r >= 0 && strcmp(e.org, a->org_id) != 0)
                r = -ENOENT;
        audit_entry_clear(&e);
        if (r < 0) {
                free(idx);
                return r;
        }
        *ret = idx;
        *ret_n = n;
        return 0;
}

int vault_check_name(const char *name, const char **ret_reason) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > STORE_NAME_MAX) {
                *ret_reason = "name must be 1 to 255 bytes";
                return -EINVAL;
        }
        /* UTF-8 well-formedness (no overlongs, no surrogates) and no control characters */
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_next((const uint8_t *) name + i, n - i, &cp);
                if (len == 0) {
                        *ret_reason = "name must be valid UTF-8";
                        return -EINVAL;
                }
                if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
                        *ret_reason = "name must not contain control characters";
                        return -EINVAL;
                }
                i += len;
        }
        return 0;
}

int vault_check_class(const char *class_, const char **ret_reason) {
        size_t n = class_ ? strlen(class_) : 0;
        if (n == 0 || n > STORE_CLASS_MAX) {
                *ret_reason = "class must be 1 to 64 characters";
                return -EINVAL;
        }
        for (const char *p = class_; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
                        *ret_reason = "class may only contain a-z, 0-9 and '-'";
                        return -EINVAL;
                }
        return 0;
}

/* ---- opening ---- */

static int vault_open_parts(struct vault *v) {
        _cleanup_free_ char *meta = path_join(v->dir, "meta.db");
        _cleanup_free_ char *kr = path_join(v->dir, "keyring.db");
        _cleanup_free_ char *mk = vault_path(v, v->config.master_key);
        struct master_key *m = NULL;
        int r;

        if (!meta || !kr || !mk)
                return -ENOMEM;
        /* the ledger first: it forks the signer, which must happen before any thread exists */
        char *witnesses[VAULT_MAX_WITNESSES];
        for (size_t i = 0; i < v->config.n_witness; i++)
                witnesses[i] = v->config.witness[i];
        r = ledger_open(v->dir, v->config.audit_origin, witnesses, v->config.n_witness, &v->ledger);
        if (r < 0)
                return r;
        ledger_set_stall_timeout(v->ledger, (int64_t) v->config.stall_timeout * 1000);
        r = store_sqlite_open(meta, false, &v->store);
        if (r < 0)
                return log_error_errno(r, "cannot open the metadata store %s: %s", meta, strerror(-r));
        r = blob_fs_open(v->dir, false, &v->blob);
        if (r < 0)
                return log_error_errno(r, "cannot open the object store in %s: %s", v->dir, strerror(-r));
        r = master_key_load_file(mk, &m);
        if (r < 0)
                return log_error_errno(r, "cannot load the master key %s: %s", mk, strerror(-r));
        r = keyring_open(kr, false, m, &v->keyring);
        if (r < 0)
                return log_error_errno(r, "cannot open the keyring %s: %s", kr, strerror(-r));
        return 0;
}

int vault_open(const char *dir, struct vault **ret) {
        _cleanup_free_ char *conf = path_join(dir, "coffre.conf");
        _cleanup_(vault_closep) struct vault *v = calloc(1, sizeof *v);
        int r;

        if (!v || !conf)
                return -ENOMEM;
        v->dir = strdup(dir);
        if (!v->dir)
                return -ENOMEM;
        r = vault_config_load(conf, &v->config);
        if (r == -ENOENT)
                return log_error_errno(r, "%s is not a coffre vault (no coffre.conf); create one with coffre init", dir);
        if (r < 0)
                return r;
        r = vault_open_parts(v);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

void vault_close(struct vault *v) {
        if (!v)
                return;
        ledger_close(v->ledger);
        keyring_free(v->keyring);
        blob_close(v->blob);
        store_close(v->store);
        free(v->dir);
        free(v);
}

/* ---- recovery sweep ---- */

struct idlist {
        char (*ids)[STORE_ID_LEN + 1];
        size_t n, cap;
};

static int idlist_add(struct idlist *l, const char *id) {
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                void *p = reallocarray(l->ids, cap, sizeof *l->ids);
                if (!p)
                        return -ENOMEM;
                l->ids = p;
                l->cap = cap;
        }
        snprintf(l->ids[l->n++], STORE_ID_LEN + 1, "%s", id);
        return 0;
}

struct sweep {
        struct vault *v;
        struct idlist orphans;
};

static int sweep_check(struct sweep *s, const char *id) {
        bool exists = false;
        int r = s->v->store->ops->document_exists(s->v->store, id, &exists);
        if (r < 0)
                return r;
        return exists ? 0 : idlist_add(&s->orphans, id);
}

static int sweep_blob_cb(const char *id, void *ud) {
        return sweep_check(ud, id);
}

static int sweep_dek_cb(const uint8_t object_id[KEYRING_ID_SIZE], void *ud) {
        char hex[STORE_ID_LEN + 1];
        hex_encode(object_id, KEYRING_ID_SIZE, hex);
        return sweep_check(ud, hex);
}

int vault_recover(struct vault *v) {
        struct sweep s = { .v = v };
        int r, removed_tmp, removed_obj = 0, removed_dek = 0;

        removed_tmp = v->blob->ops->cleanup_tmp(v->blob);
        if (removed_tmp < 0)
                return log_error_errno(removed_tmp, "cannot clean the upload directory: %s", strerror(-removed_tmp));

        r = v->blob->ops->foreach(v->blob, sweep_blob_cb, &s);
        if (r < 0)
                goto out;
        r = reindex_audit(v);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < s.orphans.n; i++) {
                r = v->blob->ops->remove(v->blob, s.orphans.ids[i]);
                if (r < 0 && r != -ENOENT)
                        goto out;
                removed_obj++;
                /* an upload cut short after its object was written: the log may hold its
                 * document.create, so say that it never became a document */
                r = vault_record(v, "system", "system:recovery", "document.discard", s.orphans.ids[i], NULL, NULL, NULL);
                if (r < 0)
                        goto out;
        }
        s.orphans.n = 0;
        r = keyring_dek_foreach(v->keyring, sweep_dek_cb, &s);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < s.orphans.n; i++) {
                uint8_t raw[KEYRING_ID_SIZE];
                if (hex_decode(s.orphans.ids[i], raw, sizeof raw) < 0)
                        continue;
                r = keyring_dek_destroy(v->keyring, raw);
                if (r < 0 && r != -ENOENT)
                        goto out;
                removed_dek++;
        }
        r = 0;
        log_info("recovery: removed %d temp files, %d orphan objects, %d orphan keys", removed_tmp, removed_obj,
                 removed_dek);
out:
        free(s.orphans.ids);
        if (r < 0)
                log_error("recovery sweep failed: %s", strerror(-r));
        return r;
}

/* ---- authentication ---- */

int vault_authenticate(struct vault *v, const char *token, struct vault_actor *ret) {
        uint8_t hash[32];
        struct store_token t;
        size_t n = token ? strlen(token) : 0;

        if (n < sizeof(VAULT_TOKEN_PREFIX) || n > 128 || strncmp(token, VAULT_TOKEN_PREFIX, 4) != 0)
                return -EACCES;
        crypto_hash_sha256(hash, (const unsigned char *) token, n);
        int r = v->store->ops->token_lookup(v->store, hash, &t);
        if (r == -ENOENT)
                return -EACCES;
        if (r < 0)
                return r;
        if (t.expires_at && t.expires_at <= now_ms())
                return -EACCES;
        memset(ret, 0, sizeof *ret);
        snprintf(ret->org_id, sizeof ret->org_id, "%s", t.org_id);
        snprintf(ret->actor_id, sizeof ret->actor_id, "%s", t.id);
        snprintf(ret->role, sizeof ret->role, "%s", t.role);
        return 0;
}

/* ---- reading ---- */

int vault_document_get(struct vault *v, const struct vault_actor *a, const char *id, struct store_document *ret) {
        if (!vault_id_valid(id))
                return -ENOENT;
        return v->store->ops->document_get(v->store, a->org_id, id, ret);
}

int vault_document_list(struct vault *v, const struct vault_actor *a, struct store_document_filter *f,
                        struct store_document **ret, size_t *ret_n, char **ret_cursor) {
        f->org_id = a->org_id;
        return v->store->ops->document_list(v->store, f, ret, ret_n, ret_cursor);
}

int vault_stats(struct vault *v, uint64_t *ret_count, uint64_t *ret_bytes) {
        return v->store->ops->document_stats(v->store, ret_count, ret_bytes);
}

/* ---- deletion and keys ---- */

int vault_document_delete(struct vault *v, const struct vault_actor *a, const char *id, const char *request_id) {
        struct store_document d;
        uint8_t raw[16];
        int r;

        r = vault_document_get(v, a, id, &d);
        if (r < 0)
                return r;
        if (strcmp(a->role, "admin") != 0)
                return -EPERM;
        if (hex_decode(d.id, raw, sizeof raw) < 0)
                return -EINVAL;
        /* logged before it happens: a deletion is never unrecorded, even if cut short */
        _cleanup_(vault_free_secret_stringp) char *details = vault_details_json(&d);
        r = details ? vault_record(v, a->org_id, a->actor_id, "document.delete", d.id, d.sha256, request_id, details) : -ENOMEM;
        if (r < 0)
                return r;
        /* The row goes before the key: cut in between, the next start finds a key without a
         * document and destroys it (vault_recover); the other way round it would find a listed
         * document that can never be read again. */
        r = v->store->ops->document_delete(v->store, a->org_id, d.id);
        if (r < 0)
                return r;
        /* Crypto-shredding: once the DEK is gone the ciphertext is noise, even in backups. */
        r = keyring_dek_destroy(v->keyring, raw);
        if (r < 0 && r != -ENOENT)
                return r;
        r = v->blob->ops->remove(v->blob, d.id);
        if (r < 0 && r != -ENOENT)
                log_warn("document %s: object not removed (%s); its key is destroyed", d.id, strerror(-r));
        return 0;
}

struct rotate_ctx {
        struct vault *v;
        const char *only;
        int rotated;
};

static int rotate_cb(const struct store_org *o, void *ud) {
        struct rotate_ctx *c = ud;
        uint8_t kek_id[KEYRING_ID_SIZE];
        uint32_t version = 0;

        if (c->only && strcmp(c->only, o->id) != 0)
                return 0;
        if (hex_decode(o->id, kek_id, sizeof kek_id) < 0)
                return -EINVAL;
        int r = keyring_rotate(c->v->keyring, kek_id, &version);
        if (r < 0)
                return log_error_errno(r, "organisation %s: key rotation failed: %s", o->id, strerror(-r));
        log_info("organisation %s: key encryption key now at version %u", o->id, version);
        char details[32];
        snprintf(details, sizeof details, "{\"version\":%u}", version);
        r = vault_record(c->v, o->id, "system:cli", "key.rotate", NULL, NULL, NULL, details);
        if (r < 0)
                return r;
        c->rotated++;
        return 0;
}

int vault_rotate_keys(struct vault *v, const char *org_id) {
        struct rotate_ctx c = { .v = v, .only = org_id };
        int r = v->store->ops->org_foreach(v->store, rotate_cb, &c);
        if (r < 0)
                return r;
        if (org_id && c.rotated == 0)
                return -ENOENT;
        return 0;
}
