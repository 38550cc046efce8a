/* vault.c: document ingest, reading and deletion over the store, blob and keyring interfaces.
 *
 * Ingest order, so that a crash at any instant leaves either nothing visible or a whole document:
 *   DEK stored (keyring) -> object encrypted into tmp/ -> object fsync'ed and renamed into place
 *   -> metadata row committed (the commit point) -> 201.
 * vault_recover() at start removes temp files, and objects and DEKs that have no metadata row. */
#include "vault.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blob/blob.h"
#include "crypto/keyring.h"
#include "crypto/object_stream.h"
#include "fileio.h"
#include "audit/log.h"
#include "hex.h"
#include "ledger.h"
#include "prefetch.h"
#include "log.h"
#include "timeutil.h"

struct vault {
        char *dir;
        struct vault_config config;
        struct store *store;
        struct blob *blob;
        struct keyring *keyring;
        struct ledger *ledger;
};

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

static void random_id(uint8_t raw[16], char hex[STORE_ID_LEN + 1]) {
        randombytes_buf(raw, 16);
        hex_encode(raw, 16, hex);
}

/* ---- audit ---- */

/* Appends an audit entry (durable on return) and indexes it under its object. details_plain
 * (which may hold personal data) is sealed under the organisation's audit key. */
static int record(struct vault *v, const char *org_id, const char *actor_id, const char *action, const char *object_id,
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

static char *details_json(const struct store_document *d) {
        json_t *o = json_pack("{s:s, s:s, s:I}", "name", d->name, "class", d->class_, "size", (json_int_t) d->size);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        return s;
}

static void free_secret_stringp(char **s) {
        if (*s) {
                sodium_memzero(*s, strlen(*s));
                free(*s);
        }
}

/* Indexes the log entries that name an object but have no reference yet (lost in a crash). */
static int reindex_audit(struct vault *v) {
        struct audit_log *log = ledger_log(v->ledger);
        uint64_t next = 0, size = audit_log_size(log);
        int r = v->store->ops->audit_ref_max(v->store, &next);
        if (r < 0)
                return r;
        for (uint64_t i = next; i < size; i++) {
                _cleanup_buf_ struct buf b;
                struct audit_entry e = { 0 };
                buf_init(&b, AUDIT_ENTRY_MAX + 1);
                r = audit_log_entry(log, i, &b);
                if (r < 0)
                        return r;
                r = audit_entry_parse((const char *) b.data, b.len, &e);
                if (r < 0)
                        return log_error_errno(r, "audit entry %llu does not parse", (unsigned long long) i);
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
        _cleanup_buf_ struct buf b;
        struct audit_entry e = { 0 };
        buf_init(&b, AUDIT_ENTRY_MAX + 1);
        r = audit_log_entry(ledger_log(v->ledger), idx[0], &b);
        if (r >= 0)
                r = audit_entry_parse((const char *) b.data, b.len, &e);
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
        const unsigned char *p = (const unsigned char *) name;
        while (*p) {
                unsigned c = *p;
                size_t len;
                uint32_t cp;
                if (c < 0x80) {
                        if (c < 0x20 || c == 0x7f) {
                                *ret_reason = "name must not contain control characters";
                                return -EINVAL;
                        }
                        p++;
                        continue;
                } else if ((c & 0xe0) == 0xc0) {
                        len = 2;
                        cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        len = 3;
                        cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        len = 4;
                        cp = c & 0x07;
                } else
                        goto bad;
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                goto bad;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        goto bad;
                if (cp >= 0x80 && cp < 0xa0) {
                        *ret_reason = "name must not contain control characters";
                        return -EINVAL;
                }
                p += len;
        }
        return 0;
bad:
        *ret_reason = "name must be valid UTF-8";
        return -EINVAL;
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
                r = record(v, "system", "system:recovery", "document.discard", s.orphans.ids[i], NULL, NULL, NULL);
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

/* ---- ingest ---- */

struct vault_upload {
        struct vault *v;
        struct vault_actor actor;
        uint8_t id[16];
        char id_hex[STORE_ID_LEN + 1];
        char name[STORE_NAME_MAX + 1];
        char class_[STORE_CLASS_MAX + 1];
        struct blob_writer *bw;
        struct obj_writer *ow;
        EVP_MD_CTX *md;
        uint64_t size;
        bool have_expected;
        uint8_t expected[32];
        uint8_t kek_id[KEYRING_ID_SIZE];
        uint8_t dek[KEYRING_KEY_SIZE];
        /* the DEK is made durable on a thread of its own while the body streams in */
        pthread_t dek_thread;
        bool dek_thread_running;
        int dek_result;
        bool dek_stored;
        int error;
};

static void *dek_store_thread(void *arg) {
        struct vault_upload *u = arg;
        u->dek_result = keyring_dek_store(u->v->keyring, u->kek_id, u->id, u->dek);
        return NULL;
}

/* Waits for the DEK to be durable; returns the keyring's answer. */
static int upload_join_dek(struct vault_upload *u) {
        if (u->dek_thread_running) {
                pthread_join(u->dek_thread, NULL);
                u->dek_thread_running = false;
                u->dek_stored = u->dek_result >= 0;
        }
        return u->dek_result;
}

static int upload_sink(void *ud, const uint8_t *p, size_t n) {
        struct vault_upload *u = ud;
        return u->v->blob->ops->writer_write(u->bw, p, n);
}

static void upload_free(struct vault_upload *u, bool destroy_dek) {
        if (!u)
                return;
        (void) upload_join_dek(u);
        obj_writer_free(u->ow);
        if (u->bw)
                u->v->blob->ops->writer_abort(u->bw);
        EVP_MD_CTX_free(u->md);
        if (destroy_dek && u->dek_stored) {
                int r = keyring_dek_destroy(u->v->keyring, u->id);
                if (r < 0 && r != -ENOENT)
                        log_warn("could not destroy the key of an abandoned upload (%s); the next start removes it",
                                 strerror(-r));
        }
        sodium_memzero(u, sizeof *u);
        free(u);
}

void vault_upload_abort(struct vault_upload *u) {
        upload_free(u, true);
}

uint64_t vault_upload_size(const struct vault_upload *u) {
        return u->size;
}

int vault_upload_begin(struct vault *v, const struct vault_actor *a, const char *name, const char *class_,
                       const uint8_t *expected_sha256, struct vault_upload **ret) {
        const char *why;
        int r;

        if (vault_check_name(name, &why) < 0 || vault_check_class(class_, &why) < 0)
                return -EINVAL;
        struct vault_upload *u = calloc(1, sizeof *u);
        if (!u)
                return -ENOMEM;
        u->v = v;
        u->actor = *a;
        if (hex_decode(a->org_id, u->kek_id, sizeof u->kek_id) < 0) {
                r = -EINVAL;
                goto fail;
        }
        random_id(u->id, u->id_hex);
        snprintf(u->name, sizeof u->name, "%s", name);
        snprintf(u->class_, sizeof u->class_, "%s", class_);
        if (expected_sha256) {
                u->have_expected = true;
                memcpy(u->expected, expected_sha256, 32);
        }
        u->md = EVP_MD_CTX_new();
        if (!u->md || EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1) {
                r = -ENOMEM;
                goto fail;
        }
        randombytes_buf(u->dek, sizeof u->dek);
        r = v->blob->ops->writer_open(v->blob, u->id_hex, &u->bw);
        if (r < 0)
                goto fail;
        r = obj_writer_new(u->dek, u->id, u->kek_id, upload_sink, u, &u->ow);
        if (r < 0)
                goto fail;
        r = -pthread_create(&u->dek_thread, NULL, dek_store_thread, u);
        if (r < 0)
                goto fail;
        u->dek_thread_running = true;
        *ret = u;
        return 0;
fail:
        upload_free(u, true);
        return r;
}

int vault_upload_write(struct vault_upload *u, const void *p, size_t n) {
        if (u->error)
                return u->error;
        if (EVP_DigestUpdate(u->md, p, n) != 1)
                return u->error = -ENOMEM;
        int r = obj_writer_update(u->ow, p, n);
        if (r < 0)
                return u->error = r;
        u->size += n;
        return 0;
}

int vault_upload_finish(struct vault_upload *u, const char *request_id, struct store_document *ret) {
        struct vault *v = u->v;
        struct store_document d = { 0 };
        _cleanup_(free_secret_stringp) char *details = NULL;
        unsigned mdlen = 0;
        int r;

        if (u->error) {
                r = u->error;
                goto fail;
        }
        r = obj_writer_final(u->ow);
        if (r < 0)
                goto fail;
        if (EVP_DigestFinal_ex(u->md, d.sha256, &mdlen) != 1) {
                r = -ENOMEM;
                goto fail;
        }
        if (u->have_expected && CRYPTO_memcmp(d.sha256, u->expected, 32) != 0) {
                r = -EBADMSG;
                goto fail;
        }
        r = v->blob->ops->writer_commit(TAKE_PTR(u->bw));
        if (r < 0)
                goto fail;
        r = upload_join_dek(u);
        if (r < 0) {
                log_error("document key not stored: %s", strerror(-r));
                if (v->blob->ops->remove(v->blob, u->id_hex) < 0)
                        log_warn("could not remove the object of a failed upload; the next start removes it");
                goto fail;
        }

        snprintf(d.id, sizeof d.id, "%s", u->id_hex);
        snprintf(d.org_id, sizeof d.org_id, "%s", u->actor.org_id);
        snprintf(d.name, sizeof d.name, "%s", u->name);
        snprintf(d.class_, sizeof d.class_, "%s", u->class_);
        snprintf(d.created_by, sizeof d.created_by, "%s", u->actor.actor_id);
        d.size = u->size;
        d.created_at = now_ms();
        details = details_json(&d);
        r = details ? record(v, d.org_id, d.created_by, "document.create", d.id, d.sha256, request_id, details) : -ENOMEM;
        if (r >= 0) {
                r = v->store->ops->document_insert(v->store, &d);
                if (r < 0 && record(v, d.org_id, d.created_by, "document.discard", d.id, NULL, request_id, NULL) < 0)
                        log_warn("document %s: discard not logged; the next start logs it", d.id);
        }
        if (r < 0) {
                int k = v->blob->ops->remove(v->blob, u->id_hex);
                if (k < 0)
                        log_warn("could not remove the object of a failed upload (%s); the next start removes it",
                                 strerror(-k));
                goto fail;
        }
        upload_free(u, false);
        *ret = d;
        return 0;
fail:
        upload_free(u, true);
        return r;
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

struct vault_reader {
        struct vault *v;
        struct blob_reader *br;
        struct obj_reader *or;
        uint64_t size;
        uint64_t seg_index;
        size_t seg_len;
        bool seg_valid;
        struct prefetch *pf; /* sequential read-ahead, when started */
        uint8_t seg[OBJ_SEGMENT_SIZE];
};

static int reader_read_at(void *ud, uint8_t *p, size_t n, uint64_t off) {
        struct vault_reader *r = ud;
        /* obj_read_at_t answers like pread (a count); the blob reads all n bytes or fails */
        if (n > INT32_MAX)
                return -EINVAL;
        int k = r->v->blob->ops->reader_pread(r->br, p, n, off);
        return k < 0 ? k : (int) n;
}

static int reader_sink(void *ud, const uint8_t *p, size_t n) {
        struct vault_reader *r = ud;
        if (r->seg_len + n > sizeof r->seg)
                return -EBADMSG;
        memcpy(r->seg + r->seg_len, p, n);
        r->seg_len += n;
        return 0;
}

void vault_reader_free(struct vault_reader *r) {
        if (!r)
                return;
        prefetch_free(r->pf);
        obj_reader_free(r->or);
        if (r->br)
                r->v->blob->ops->reader_close(r->br);
        sodium_memzero(r->seg, sizeof r->seg);
        free(r);
}

int vault_document_open(struct vault *v, const struct vault_actor *a, const char *id, const char *request_id,
                        struct store_document *ret_doc, struct vault_reader **ret) {
        struct store_document d;
        uint8_t raw[16], dek[KEYRING_KEY_SIZE];
        uint64_t csize = 0;
        int r;

        r = vault_document_get(v, a, id, &d);
        if (r < 0)
                return r;
        if (hex_decode(d.id, raw, sizeof raw) < 0)
                return -EBADMSG;
        _cleanup_(vault_reader_freep) struct vault_reader *rd = calloc(1, sizeof *rd);
        if (!rd)
                return -ENOMEM;
        rd->v = v;
        r = v->blob->ops->reader_open(v->blob, d.id, &rd->br, &csize);
        if (r < 0) {
                log_error("document %s: object missing or unreadable: %s", d.id, strerror(-r));
                return r == -ENOENT ? -EBADMSG : r;
        }
        r = keyring_dek_get(v->keyring, raw, dek);
        if (r < 0) {
                log_error("document %s: key unavailable: %s", d.id, strerror(-r));
                return r == -ENOENT ? -EBADMSG : r;
        }
        r = obj_reader_new(dek, csize, reader_read_at, rd, &rd->or);
        sodium_memzero(dek, sizeof dek);
        if (r < 0) {
                log_error("document %s: object header invalid: %s", d.id, strerror(-r));
                return r;
        }
        const struct obj_header *h = obj_reader_header(rd->or);
        if (memcmp(h->object_id, raw, sizeof raw) != 0 || obj_reader_plaintext_size(rd->or) != d.size) {
                log_error("document %s: object does not belong to this document", d.id);
                return -EBADMSG;
        }
        rd->size = d.size;
        r = record(v, a->org_id, a->actor_id, "document.read", d.id, d.sha256, request_id, NULL);
        if (r < 0)
                return r;
        *ret_doc = d;
        *ret = TAKE_PTR(rd);
        return 0;
}

struct fill_buf {
        uint8_t *p;
        size_t len;
};

static int fill_sink(void *ud, const uint8_t *p, size_t n) {
        struct fill_buf *f = ud;
        if (f->len + n > PREFETCH_SEGMENT_MAX)
                return -EBADMSG;
        memcpy(f->p + f->len, p, n);
        f->len += n;
        return 0;
}

/* Runs on the prefetch thread, which alone uses r->or while it lives. */
static int reader_fill(void *ud, uint64_t seg, uint8_t *buf, size_t *ret_len) {
        struct vault_reader *r = ud;
        uint64_t start = seg * OBJ_SEGMENT_SIZE;
        uint64_t len = MIN((uint64_t) OBJ_SEGMENT_SIZE, r->size - start);
        struct fill_buf f = { .p = buf };
        int k = obj_reader_read(r->or, start, len, fill_sink, &f);
        if (k < 0)
                return k;
        if (f.len != len)
                return -EBADMSG;
        *ret_len = f.len;
        return 0;
}

int vault_reader_prefetch(struct vault_reader *r, uint64_t off, uint64_t len) {
        if (r->pf || len == 0 || off >= r->size)
                return 0;
        uint64_t first = off / OBJ_SEGMENT_SIZE;
        uint64_t end = (MIN(off + len, r->size) - 1) / OBJ_SEGMENT_SIZE + 1;
        return prefetch_new(first, end, reader_fill, r, &r->pf);
}

int vault_reader_read(struct vault_reader *r, uint64_t off, uint8_t *buf, size_t n, size_t *ret_n) {
        if (off >= r->size) {
                *ret_n = 0;
                return 0;
        }
        uint64_t seg = off / OBJ_SEGMENT_SIZE;
        if (r->pf) {
                const uint8_t *data;
                size_t len;
                int k = prefetch_get(r->pf, seg, &data, &len);
                if (k == 0) {
                        size_t in_seg = (size_t) (off - seg * OBJ_SEGMENT_SIZE);
                        size_t take = MIN(n, len - in_seg);
                        memcpy(buf, data + in_seg, take);
                        *ret_n = take;
                        return 0;
                }
                if (k != -ESPIPE)
                        return k;
                /* not sequential after all: read directly from now on */
                prefetch_free(TAKE_PTR(r->pf));
        }
        if (!r->seg_valid || r->seg_index != seg) {
                uint64_t start = seg * OBJ_SEGMENT_SIZE;
                uint64_t len = MIN((uint64_t) OBJ_SEGMENT_SIZE, r->size - start);
                r->seg_valid = false;
                r->seg_len = 0;
                int k = obj_reader_read(r->or, start, len, reader_sink, r);
                if (k < 0)
                        return k;
                if (r->seg_len != len)
                        return -EBADMSG;
                r->seg_index = seg;
                r->seg_valid = true;
        }
        size_t in_seg = (size_t) (off - seg * OBJ_SEGMENT_SIZE);
        size_t take = MIN(n, r->seg_len - in_seg);
        memcpy(buf, r->seg + in_seg, take);
        *ret_n = take;
        return 0;
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
        _cleanup_(free_secret_stringp) char *details = details_json(&d);
        r = details ? record(v, a->org_id, a->actor_id, "document.delete", d.id, d.sha256, request_id, details) : -ENOMEM;
        if (r < 0)
                return r;
        /* Crypto-shredding first: once the DEK is gone the ciphertext is noise, even in backups. */
        r = keyring_dek_destroy(v->keyring, raw);
        if (r < 0 && r != -ENOENT)
                return r;
        r = v->store->ops->document_delete(v->store, a->org_id, d.id);
        if (r < 0)
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
        r = record(c->v, o->id, "system:cli", "key.rotate", NULL, NULL, NULL, details);
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
