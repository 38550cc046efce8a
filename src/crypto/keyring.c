/* keyring.c: envelope keys in DATA/keyring.db (SQLite, WAL, synchronous=FULL).
 *
 * master key -> per-organisation KEK (versioned) -> per-object DEK and per-purpose organisation keys.
 * Every wrapped key is AES-256-GCM under its parent with an AAD naming the key's identity (see
 * key_wrap.c), so a wrapped key copied into another row does not open. New DEKs are group-committed:
 * concurrent callers queue, one of them (the leader) writes the whole queue in one transaction and
 * one fsync, then wakes the others. Schema and byte formats: docs/formats.md. */
#include "keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>
#include <sqlite3.h>

#include "fileio.h"
#include "key_wrap.h"
#include "keyring_db.h"
#include "log.h"
#include "p11_master.h"
#include "p11_uri.h"

/* The master key is a file's 32 bytes (key) or two keys on a PKCS#11 token (hsm); never both. */
struct master_key {
        uint8_t *key; /* sodium_malloc'd, locked, read-only */
        struct p11_master *hsm;
        uint8_t id[KEYRING_ID_SIZE];
};

/* The format byte of a wrapped key (key_wrap.c): the token's wrapping has the same layout. */
#define MASTER_WRAP_FORMAT 1u

/* One queued keyring_dek_new call; lives on the caller's stack until done. */
struct keyring {
        struct master_key *master;
        sqlite3 *wdb; /* writes, under wlock */
        sqlite3 *rdb; /* reads, under rlock (WAL lets it read while a commit runs) */
        sqlite3 *cdb; /* WAL checkpoints after a key is destroyed, under clock: outside wlock, so
                       * waiting for readers to finish does not hold up writers */
        pthread_mutex_t wlock;
        pthread_mutex_t rlock;
        pthread_mutex_t clock;
        bool wal_dirty; /* under clock: a destroyed key may still be in keyring.db-wal */
        /* group commit */
        pthread_mutex_t qlock;
        pthread_cond_t qcond;
        struct keyring_dek_request *qhead, *qtail;
        bool leader_active;
        uint64_t commits; /* transactions written by group commit, for tests and metrics */
        unsigned queued, hold; /* test seam (keyring_hold_group): no batch until hold are queued */
        uint64_t committed_keys; /* requests those transactions carried */
        /* organisation keys already unwrapped (one per audit entry otherwise): slots in guarded,
         * locked memory under okc_lock; okc_gen moves on every destruction or rotation, and a key
         * read before the move is not cached after it */
        pthread_mutex_t okc_lock;
        struct org_key_slot *okc;
        unsigned okc_next;
        uint64_t okc_gen;
        /* rotation tuning and test hook */
        unsigned rotate_batch;
        int (*rotate_hook)(unsigned batches_done, void *ud);
        void *rotate_hook_ud;
};

#define KEYRING_ROTATE_BATCH_DEFAULT 1000u
#define ORG_KEY_CACHE_SLOTS 16u

struct org_key_slot {
        bool used;
        uint8_t kek_id[KEYRING_ID_SIZE];
        char purpose[KEY_WRAP_PURPOSE_MAX + 1];
        uint8_t key[KEYRING_KEY_SIZE];
};

/* ---- master key ---- */

static int master_key_derive_id(const uint8_t key[KEYRING_KEY_SIZE], uint8_t id[KEYRING_ID_SIZE]) {
        static const char label[] = "coffre master key id v1";
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state st;
        /* A key check value: names the master key in keyring.db without revealing it. */
        int r = crypto_auth_hmacsha256_init(&st, key, KEYRING_KEY_SIZE) == 0 &&
                                crypto_auth_hmacsha256_update(&st, (const uint8_t *) label, sizeof label - 1) == 0 &&
                                crypto_auth_hmacsha256_final(&st, mac) == 0
                        ? 0
                        : -EIO;
        sodium_memzero(&st, sizeof st);
        if (r == 0)
                memcpy(id, mac, KEYRING_ID_SIZE);
        sodium_memzero(mac, sizeof mac);
        return r;
}

/* A token master key's id: an HMAC inside the token, under its own label (never the file's id). */
static int master_key_derive_id_hsm(struct p11_master *h, uint8_t id[KEYRING_ID_SIZE]) {
        static const char label[] = "coffre master key id v1 pkcs11";
        uint8_t mac[32];
        int r = p11_master_hmac(h, (const uint8_t *) label, sizeof label - 1, NULL, 0, mac);
        if (r == 0)
                memcpy(id, mac, KEYRING_ID_SIZE);
        sodium_memzero(mac, sizeof mac);
        return r;
}

int master_key_derive(const struct master_key *m, const char *label, uint8_t out[KEYRING_KEY_SIZE]) {
        crypto_auth_hmacsha256_state st;
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        static const char prefix[] = "coffre derived key v1: ";
        if (m->hsm) {
                /* the same HMAC, computed inside the token: a migrated vault derives the same keys */
                int r = p11_master_hmac(m->hsm, (const uint8_t *) prefix, sizeof prefix - 1, (const uint8_t *) label,
                                        strlen(label), mac);
                if (r == 0)
                        memcpy(out, mac, KEYRING_KEY_SIZE);
                sodium_memzero(mac, sizeof mac);
                return r;
        }
        int r = crypto_auth_hmacsha256_init(&st, m->key, KEYRING_KEY_SIZE) == 0 &&
                                crypto_auth_hmacsha256_update(&st, (const uint8_t *) prefix, sizeof prefix - 1) == 0 &&
                                crypto_auth_hmacsha256_update(&st, (const uint8_t *) label, strlen(label)) == 0 &&
                                crypto_auth_hmacsha256_final(&st, mac) == 0
                        ? 0
                        : -EIO;
        sodium_memzero(&st, sizeof st);
        if (r == 0)
                memcpy(out, mac, KEYRING_KEY_SIZE);
        sodium_memzero(mac, sizeof mac);
        return r;
}

void master_key_free(struct master_key *m) {
        if (!m)
                return;
        sodium_free(m->key); /* wipes and unlocks */
        p11_master_free(m->hsm);
        free(m);
}

bool master_key_is_token(const struct master_key *m) {
        return m && m->hsm;
}

int master_key_load_pkcs11(const char *uri, bool create, const struct master_key *import_from,
                           struct master_key **ret) {
        if (!uri || !ret || (import_from && !import_from->key))
                return -EINVAL;
        _cleanup_(master_key_freep) struct master_key *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        int r = p11_master_open(uri, create || import_from, import_from ? import_from->key : NULL, &m->hsm);
        if (r < 0)
                return r;
        r = master_key_derive_id_hsm(m->hsm, m->id);
        if (r < 0)
                return log_error_errno(r, "the PKCS#11 token failed to compute the master key's id");
        *ret = TAKE_PTR(m);
        return 0;
}

int master_key_load(const char *spec, const char *base_dir, struct master_key **ret) {
        if (!spec || !ret)
                return -EINVAL;
        if (p11_uri_is(spec))
                return master_key_load_pkcs11(spec, false, NULL, ret);
        _cleanup_free_ char *path = base_dir && spec[0] != '/' ? path_join(base_dir, spec) : strdup(spec);
        if (!path)
                return -ENOMEM;
        int r = master_key_load_file(path, ret);
        if (r < 0)
                return log_error_errno(r, "cannot load the master key %s: %s", path,
                                       r == -EPERM ? "group or others may read it" : strerror(-r));
        return 0;
}

/* AES-256-GCM under the master key (in the token or here), in key_wrap.c's layout. */
static int master_wrap(const struct master_key *m, const uint8_t *aad, size_t aad_len,
                       const uint8_t key[KEYRING_KEY_SIZE], uint8_t out[KEY_WRAP_SIZE]) {
        if (!m->hsm)
                return key_wrap(m->key, aad, aad_len, key, out);
        out[0] = MASTER_WRAP_FORMAT;
        randombytes_buf(out + 1, P11_MASTER_NONCE);
        return p11_master_seal(m->hsm, out + 1, aad, aad_len, key, KEYRING_KEY_SIZE, out + 1 + P11_MASTER_NONCE);
}

static int master_unwrap(const struct master_key *m, const uint8_t *aad, size_t aad_len, const uint8_t *wrapped,
                         size_t wrapped_len, uint8_t out[KEYRING_KEY_SIZE]) {
        if (!m->hsm)
                return key_unwrap(m->key, aad, aad_len, wrapped, wrapped_len, out);
        if (!wrapped || wrapped_len != KEY_WRAP_SIZE || wrapped[0] != MASTER_WRAP_FORMAT)
                return -EBADMSG;
        return p11_master_open_sealed(m->hsm, wrapped + 1, aad, aad_len, wrapped + 1 + P11_MASTER_NONCE,
                                      KEYRING_KEY_SIZE, out);
}

int master_key_create_file(const char *path) {
        if (!path)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        uint8_t *key = sodium_malloc(KEYRING_KEY_SIZE);
        if (!key)
                return -ENOMEM;
        randombytes_buf(key, KEYRING_KEY_SIZE);
        int r = write_file_atomic(path, key, KEYRING_KEY_SIZE, 0600, 1);
        sodium_free(key);
        return r;
}

int master_key_load_file(const char *path, struct master_key **ret) {
        struct stat st;

        if (!path || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_size != KEYRING_KEY_SIZE)
                return -EBADMSG;
        if (st.st_mode & 077) /* like ssh: a key others can read is refused */
                return -EPERM;
        _cleanup_(master_key_freep) struct master_key *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->key = sodium_malloc(KEYRING_KEY_SIZE);
        if (!m->key)
                return -ENOMEM;
        ssize_t n = read_full(fd, m->key, KEYRING_KEY_SIZE);
        if (n < 0)
                return (int) n;
        if (n != KEYRING_KEY_SIZE)
                return -EBADMSG;
        int r = master_key_derive_id(m->key, m->id);
        if (r < 0)
                return r;
        sodium_mprotect_readonly(m->key);
        *ret = TAKE_PTR(m);
        return 0;
}

static int kek_unwrap(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t version, const uint8_t *wrapped,
                      size_t wrapped_len, uint8_t out[KEYRING_KEY_SIZE]);

/* ---- wiping the WAL ---- */

/* After a key is destroyed (its row overwritten: secure_delete), older copies of its page may
 * remain in keyring.db-wal until a checkpoint copies the WAL back and truncates it. Called
 * without wlock. A checkpoint kept from completing is logged and retried after the next
 * destruction, and at close. */
static int keyring_wal_wipe(struct keyring *k) {
        pthread_mutex_lock(&k->clock);
        int r = kdb_checkpoint(k->cdb);
        if (r < 0 && !k->wal_dirty)
                log_warn("keyring: destroyed keys may remain in keyring.db-wal until the next checkpoint (%s)",
                         strerror(-r));
        k->wal_dirty = r < 0;
        pthread_mutex_unlock(&k->clock);
        return r;
}

/* ---- open / close ---- */

void keyring_free(struct keyring *k) {
        if (!k)
                return;
        if (k->wal_dirty && k->cdb)
                (void) keyring_wal_wipe(k);
        sqlite3_close_v2(k->cdb);
        sqlite3_close_v2(k->rdb);
        sqlite3_close_v2(k->wdb);
        master_key_free(k->master);
        sodium_free(k->okc); /* wipes the cached keys */
        pthread_mutex_destroy(&k->okc_lock);
        pthread_mutex_destroy(&k->wlock);
        pthread_mutex_destroy(&k->rlock);
        pthread_mutex_destroy(&k->clock);
        pthread_mutex_destroy(&k->qlock);
        pthread_cond_destroy(&k->qcond);
        free(k);
}

/* Checks the master key against the id keyring.db records, or records it in a fresh keyring.
 * Without a recorded id, a KEK must unwrap before the id is recorded again. */
static int keyring_check_master(struct keyring *k) {
        uint8_t stored[KEYRING_ID_SIZE], kek_id[KEYRING_ID_SIZE], kek[KEYRING_KEY_SIZE], wrapped[KEY_WRAP_SIZE];
        uint32_t version;
        size_t wl;
        int r = kdb_begin(k->wdb);
        if (r < 0)
                return r;
        r = kdb_meta_get(k->wdb, "master_key_id", stored, sizeof stored);
        if (r >= 0)
                r = sodium_memcmp(stored, k->master->id, KEYRING_ID_SIZE) == 0 ? 0 : -EBADMSG;
        else if (r == -ENOENT) {
                r = kdb_kek_any(k->wdb, kek_id, &version, wrapped, &wl);
                if (r >= 0) {
                        r = kek_unwrap(k, kek_id, version, wrapped, wl, kek);
                        sodium_memzero(kek, sizeof kek);
                } else if (r == -ENOENT)
                        r = 0;
                if (r >= 0)
                        r = kdb_meta_put(k->wdb, "master_key_id", k->master->id, KEYRING_ID_SIZE);
        }
        return kdb_end(k->wdb, r);
}

int keyring_open(const char *path, bool create, struct master_key *m, struct keyring **ret) {
        _cleanup_(master_key_freep) struct master_key *owned = m;
        int r;

        if (!path || !m || !ret)
                return -EINVAL;
        if (create) {
                /* Create the file ourselves so it is 0600 from the start (SQLite would use the umask). */
                _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return negative_errno();
        } else if (access(path, F_OK) < 0)
                return negative_errno();

        _cleanup_(keyring_freep) struct keyring *k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        pthread_mutex_init(&k->wlock, NULL);
        pthread_mutex_init(&k->rlock, NULL);
        pthread_mutex_init(&k->clock, NULL);
        pthread_mutex_init(&k->qlock, NULL);
        pthread_cond_init(&k->qcond, NULL);
        pthread_mutex_init(&k->okc_lock, NULL);
        k->okc = sodium_allocarray(ORG_KEY_CACHE_SLOTS, sizeof *k->okc);
        if (!k->okc)
                return -ENOMEM;
        sodium_memzero(k->okc, ORG_KEY_CACHE_SLOTS * sizeof *k->okc);
        k->rotate_batch = KEYRING_ROTATE_BATCH_DEFAULT;
        k->master = TAKE_PTR(owned);

        r = kdb_open(path, &k->wdb);
        if (r < 0)
                return r;
        r = kdb_schema(k->wdb);
        if (r < 0)
                return r;
        r = keyring_check_master(k);
        if (r < 0)
                return r;
        r = kdb_open(path, &k->rdb);
        if (r < 0)
                return r;
        r = kdb_open(path, &k->cdb);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(k);
        return 0;
}

/* ---- KEKs ---- */

/* Unwraps a KEK row's key into out (caller wipes). */
static int kek_unwrap(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t version, const uint8_t *wrapped,
                      size_t wrapped_len, uint8_t out[KEYRING_KEY_SIZE]) {
        uint8_t aad[KEY_WRAP_AAD_MAX];
        size_t aad_len = key_wrap_aad_kek(kek_id, version, aad);
        return master_unwrap(k->master, aad, aad_len, wrapped, wrapped_len, out);
}

/* Makes version `version` of a KEK and stores it (inside the caller's transaction). */
static int kek_insert_new(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t version) {
        uint8_t kek[KEYRING_KEY_SIZE], aad[KEY_WRAP_AAD_MAX], wrapped[KEY_WRAP_SIZE];
        randombytes_buf(kek, sizeof kek);
        size_t aad_len = key_wrap_aad_kek(kek_id, version, aad);
        int r = master_wrap(k->master, aad, aad_len, kek, wrapped);
        sodium_memzero(kek, sizeof kek);
        if (r < 0)
                return r;
        return kdb_kek_insert(k->wdb, kek_id, version, k->master->id, wrapped, sizeof wrapped);
}

/* Loads and unwraps the KEK's current version (inside the caller's lock). */
static int kek_load_current(struct keyring *k, sqlite3 *db, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t *ret_version,
                            uint8_t out[KEYRING_KEY_SIZE]) {
        uint8_t wrapped[KEY_WRAP_SIZE];
        size_t wl;
        uint32_t v;
        int r = kdb_kek_current(db, kek_id, &v, wrapped, &wl);
        if (r < 0)
                return r;
        r = kek_unwrap(k, kek_id, v, wrapped, wl, out);
        if (r < 0)
                return r;
        *ret_version = v;
        return 0;
}

static int kek_load_version(struct keyring *k, sqlite3 *db, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t version,
                            uint8_t out[KEYRING_KEY_SIZE]) {
        uint8_t wrapped[KEY_WRAP_SIZE];
        size_t wl;
        int r = kdb_kek_get(db, kek_id, version, wrapped, &wl);
        if (r < 0)
                return r;
        return kek_unwrap(k, kek_id, version, wrapped, wl, out);
}

int keyring_kek_create(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE]) {
        if (!k || !kek_id)
                return -EINVAL;
        pthread_mutex_lock(&k->wlock);
        int r = kdb_begin(k->wdb);
        if (r >= 0) {
                uint32_t v;
                r = kdb_kek_current(k->wdb, kek_id, &v, NULL, NULL);
                if (r >= 0)
                        r = -EEXIST;
                else if (r == -ENOENT)
                        r = kek_insert_new(k, kek_id, 1);
                r = kdb_end(k->wdb, r);
        }
        pthread_mutex_unlock(&k->wlock);
        return r;
}

int keyring_kek_current_version(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t *ret) {
        uint32_t v;
        if (!k || !kek_id || !ret)
                return -EINVAL;
        pthread_mutex_lock(&k->rlock);
        int r = kdb_kek_current(k->rdb, kek_id, &v, NULL, NULL);
        pthread_mutex_unlock(&k->rlock);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

/* Forgets (wipes) the cached organisation keys of kek_id. */
static void org_key_cache_drop(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE]) {
        pthread_mutex_lock(&k->okc_lock);
        k->okc_gen++;
        for (unsigned i = 0; i < ORG_KEY_CACHE_SLOTS; i++)
                if (k->okc[i].used && sodium_memcmp(k->okc[i].kek_id, kek_id, KEYRING_ID_SIZE) == 0)
                        sodium_memzero(&k->okc[i], sizeof k->okc[i]);
        pthread_mutex_unlock(&k->okc_lock);
}

int keyring_kek_destroy(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE]) {
        if (!k || !kek_id)
                return -EINVAL;
        pthread_mutex_lock(&k->wlock);
        org_key_cache_drop(k, kek_id);
        int r = kdb_begin(k->wdb);
        if (r >= 0) {
                r = kdb_kek_destroy_all(k->wdb, kek_id);
                r = kdb_end(k->wdb, r);
        }
        org_key_cache_drop(k, kek_id); /* also what was read while the destruction ran */
        pthread_mutex_unlock(&k->wlock);
        if (r >= 0)
                (void) keyring_wal_wipe(k); /* logged; retried later */
        return r;
}

/* ---- DEKs: group commit ---- */

/* Writes a batch of requests in one transaction (caller holds wlock). Sets each result. */
static void dek_commit_batch(struct keyring *k, struct keyring_dek_request *batch) {
        /* The batch usually names one organisation: keep the last KEK unwrapped. */
        uint8_t kek[KEYRING_KEY_SIZE], kek_for[KEYRING_ID_SIZE];
        uint32_t version = 0;
        bool have_kek = false;
        int r = kdb_begin(k->wdb);
        bool began = r >= 0;

        for (struct keyring_dek_request *q = batch; q; q = q->next) {
                if (r < 0) {
                        q->result = r;
                        continue;
                }
                if (!have_kek || memcmp(kek_for, q->kek_id, KEYRING_ID_SIZE) != 0) {
                        have_kek = false;
                        q->result = kek_load_current(k, k->wdb, q->kek_id, &version, kek);
                        if (q->result < 0)
                                continue;
                        memcpy(kek_for, q->kek_id, KEYRING_ID_SIZE);
                        have_kek = true;
                }
                uint8_t aad[KEY_WRAP_AAD_MAX], wrapped[KEY_WRAP_SIZE];
                size_t aad_len = key_wrap_aad_dek(q->object_id, q->kek_id, version, aad);
                q->result = key_wrap(kek, aad, aad_len, q->dek, wrapped);
                if (q->result >= 0)
                        q->result = kdb_dek_insert(k->wdb, q->object_id, q->kek_id, version, wrapped, sizeof wrapped);
                /* A duplicate id or a missing KEK fails that call only; anything else (disk full, I/O)
                 * may have ended the transaction, so the rest of the batch fails with it. */
                if (q->result < 0 && q->result != -EEXIST && q->result != -ENOENT && q->result != -EBADMSG)
                        r = q->result;
        }
        sodium_memzero(kek, sizeof kek);
        if (began)
                r = kdb_end(k->wdb, r); /* one commit, one fsync, for the whole batch */
        if (r < 0)
                for (struct keyring_dek_request *q = batch; q; q = q->next)
                        if (q->result >= 0)
                                q->result = r; /* rolled back: nothing of this batch was stored */
}

void keyring_dek_submit(struct keyring *k, struct keyring_dek_request *req, const uint8_t kek_id[KEYRING_ID_SIZE],
                        const uint8_t object_id[KEYRING_ID_SIZE], const uint8_t dek[KEYRING_KEY_SIZE]) {
        *req = (struct keyring_dek_request) { .kek_id = kek_id, .object_id = object_id, .dek = dek };
        pthread_mutex_lock(&k->qlock);
        if (k->qtail)
                k->qtail->next = req;
        else
                k->qhead = req;
        k->qtail = req;
        k->queued++;
        pthread_mutex_unlock(&k->qlock);
}

int keyring_dek_wait(struct keyring *k, struct keyring_dek_request *req) {
        pthread_mutex_lock(&k->qlock);
        while (!req->done) {
                if (!k->leader_active && k->queued >= k->hold) {
                        /* Lead: take everything queued so far, ours included, and commit it. */
                        struct keyring_dek_request *batch = k->qhead;
                        k->qhead = k->qtail = NULL;
                        k->queued = k->hold = 0;
                        k->leader_active = true;
                        pthread_mutex_unlock(&k->qlock);

                        pthread_mutex_lock(&k->wlock);
                        dek_commit_batch(k, batch);
                        pthread_mutex_unlock(&k->wlock);

                        pthread_mutex_lock(&k->qlock);
                        k->commits++;
                        for (struct keyring_dek_request *q = batch, *next; q; q = next) {
                                next = q->next; /* q may vanish once done is seen */
                                k->committed_keys++;
                                q->done = true;
                        }
                        k->leader_active = false;
                        pthread_cond_broadcast(&k->qcond);
                } else
                        pthread_cond_wait(&k->qcond, &k->qlock);
        }
        pthread_mutex_unlock(&k->qlock);
        return req->result;
}

int keyring_dek_new(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], const uint8_t object_id[KEYRING_ID_SIZE],
                    uint8_t dek[KEYRING_KEY_SIZE]) {
        uint8_t fresh[KEYRING_KEY_SIZE];
        if (!k || !kek_id || !object_id || !dek)
                return -EINVAL;
        randombytes_buf(fresh, sizeof fresh);
        struct keyring_dek_request req;
        keyring_dek_submit(k, &req, kek_id, object_id, fresh);
        int r = keyring_dek_wait(k, &req);
        if (r >= 0)
                memcpy(dek, fresh, KEYRING_KEY_SIZE);
        sodium_memzero(fresh, sizeof fresh);
        return r;
}

int keyring_dek_store(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], const uint8_t object_id[KEYRING_ID_SIZE],
                      const uint8_t dek[KEYRING_KEY_SIZE]) {
        if (!k || !kek_id || !object_id || !dek)
                return -EINVAL;
        struct keyring_dek_request req;
        keyring_dek_submit(k, &req, kek_id, object_id, dek);
        return keyring_dek_wait(k, &req);
}

void keyring_group_stats(struct keyring *k, uint64_t *ret_commits, uint64_t *ret_keys) {
        pthread_mutex_lock(&k->qlock);
        *ret_commits = k->commits;
        *ret_keys = k->committed_keys;
        pthread_mutex_unlock(&k->qlock);
}

void keyring_hold_group(struct keyring *k, unsigned n) {
        pthread_mutex_lock(&k->qlock);
        k->hold = n;
        pthread_mutex_unlock(&k->qlock);
}

uint64_t keyring_group_commits(struct keyring *k) {
        pthread_mutex_lock(&k->qlock);
        uint64_t n = k->commits;
        pthread_mutex_unlock(&k->qlock);
        return n;
}

int keyring_dek_get(struct keyring *k, const uint8_t object_id[KEYRING_ID_SIZE], uint8_t dek[KEYRING_KEY_SIZE]) {
        uint8_t kek_id[KEYRING_ID_SIZE], wrapped[KEY_WRAP_SIZE], kek[KEYRING_KEY_SIZE], out[KEYRING_KEY_SIZE];
        uint8_t aad[KEY_WRAP_AAD_MAX];
        size_t wl;
        uint32_t version;

        if (!k || !object_id || !dek)
                return -EINVAL;
        pthread_mutex_lock(&k->rlock);
        int r = kdb_read_begin(k->rdb); /* DEK row and KEK row from one snapshot */
        if (r >= 0) {
                r = kdb_dek_get(k->rdb, object_id, kek_id, &version, wrapped, &wl);
                if (r >= 0)
                        r = kek_load_version(k, k->rdb, kek_id, version, kek);
                kdb_read_end(k->rdb);
        }
        pthread_mutex_unlock(&k->rlock);
        if (r >= 0) {
                size_t aad_len = key_wrap_aad_dek(object_id, kek_id, version, aad);
                r = key_unwrap(kek, aad, aad_len, wrapped, wl, out);
        }
        sodium_memzero(kek, sizeof kek);
        if (r >= 0)
                memcpy(dek, out, KEYRING_KEY_SIZE);
        sodium_memzero(out, sizeof out);
        return r;
}

int keyring_dek_destroy(struct keyring *k, const uint8_t object_id[KEYRING_ID_SIZE]) {
        if (!k || !object_id)
                return -EINVAL;
        pthread_mutex_lock(&k->wlock);
        int r = kdb_begin(k->wdb);
        if (r >= 0) {
                r = kdb_dek_delete(k->wdb, object_id);
                r = kdb_end(k->wdb, r);
        }
        pthread_mutex_unlock(&k->wlock);
        if (r >= 0)
                (void) keyring_wal_wipe(k); /* push the zeroed page out of the WAL too; logged, retried later */
        return r;
}

int keyring_dek_foreach(struct keyring *k, int (*cb)(const uint8_t object_id[KEYRING_ID_SIZE], void *ud), void *ud) {
        uint8_t after[KEYRING_ID_SIZE] = {}, page[256][KEYRING_ID_SIZE];
        bool first = true;

        if (!k || !cb)
                return -EINVAL;
        for (;;) {
                size_t n;
                /* Page through without holding the lock during callbacks (they may call us). */
                pthread_mutex_lock(&k->rlock);
                int r = kdb_dek_page(k->rdb, first ? NULL : after, page, ELEMENTSOF(page), &n);
                pthread_mutex_unlock(&k->rlock);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++) {
                        r = cb(page[i], ud);
                        if (r < 0)
                                return r;
                }
                if (n < ELEMENTSOF(page))
                        return 0;
                memcpy(after, page[n - 1], KEYRING_ID_SIZE);
                first = false;
        }
}

/* ---- organisation keys ---- */

static bool purpose_valid(const char *p) {
        size_t n = p ? strlen(p) : 0;
        if (n == 0 || n > KEY_WRAP_PURPOSE_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
                        return false;
        return true;
}

static int org_key_read(struct keyring *k, sqlite3 *db, const uint8_t kek_id[KEYRING_ID_SIZE], const char *purpose,
                        uint8_t out[KEYRING_KEY_SIZE]) {
        uint8_t wrapped[KEY_WRAP_SIZE], kek[KEYRING_KEY_SIZE], aad[KEY_WRAP_AAD_MAX];
        size_t wl;
        uint32_t version;
        int r = kdb_org_key_get(db, kek_id, purpose, &version, wrapped, &wl);
        if (r < 0)
                return r;
        r = kek_load_version(k, db, kek_id, version, kek);
        if (r >= 0) {
                size_t aad_len = key_wrap_aad_org(kek_id, version, purpose, aad);
                r = key_unwrap(kek, aad, aad_len, wrapped, wl, out);
        }
        sodium_memzero(kek, sizeof kek);
        return r;
}

int keyring_org_key(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], const char *purpose,
                    uint8_t key[KEYRING_KEY_SIZE]) {
        uint8_t out[KEYRING_KEY_SIZE];
        int r;

        if (!k || !kek_id || !key || !purpose_valid(purpose))
                return -EINVAL;
        pthread_mutex_lock(&k->okc_lock);
        uint64_t gen = k->okc_gen;
        for (unsigned i = 0; i < ORG_KEY_CACHE_SLOTS; i++) {
                struct org_key_slot *s = &k->okc[i];
                if (s->used && memcmp(s->kek_id, kek_id, KEYRING_ID_SIZE) == 0 && strcmp(s->purpose, purpose) == 0) {
                        memcpy(key, s->key, KEYRING_KEY_SIZE);
                        pthread_mutex_unlock(&k->okc_lock);
                        return 0;
                }
        }
        pthread_mutex_unlock(&k->okc_lock);

        pthread_mutex_lock(&k->rlock);
        r = kdb_read_begin(k->rdb);
        if (r >= 0) {
                r = org_key_read(k, k->rdb, kek_id, purpose, out);
                kdb_read_end(k->rdb);
        }
        pthread_mutex_unlock(&k->rlock);

        if (r == -ENOENT) {
                /* First use: create under the write lock, unless another caller just did. */
                pthread_mutex_lock(&k->wlock);
                r = kdb_begin(k->wdb);
                if (r >= 0) {
                        r = org_key_read(k, k->wdb, kek_id, purpose, out);
                        if (r == -ENOENT) {
                                uint8_t kek[KEYRING_KEY_SIZE], aad[KEY_WRAP_AAD_MAX], wrapped[KEY_WRAP_SIZE];
                                uint32_t version;
                                r = kek_load_current(k, k->wdb, kek_id, &version, kek);
                                if (r >= 0) {
                                        randombytes_buf(out, sizeof out);
                                        size_t aad_len = key_wrap_aad_org(kek_id, version, purpose, aad);
                                        r = key_wrap(kek, aad, aad_len, out, wrapped);
                                }
                                sodium_memzero(kek, sizeof kek);
                                if (r >= 0)
                                        r = kdb_org_key_insert(k->wdb, kek_id, purpose, version, wrapped, sizeof wrapped);
                        }
                        r = kdb_end(k->wdb, r);
                }
                pthread_mutex_unlock(&k->wlock);
        }
        if (r >= 0) {
                memcpy(key, out, KEYRING_KEY_SIZE);
                pthread_mutex_lock(&k->okc_lock);
                if (k->okc_gen == gen) {
                        struct org_key_slot *s = &k->okc[k->okc_next++ % ORG_KEY_CACHE_SLOTS];
                        s->used = true;
                        memcpy(s->kek_id, kek_id, KEYRING_ID_SIZE);
                        snprintf(s->purpose, sizeof s->purpose, "%s", purpose);
                        memcpy(s->key, out, KEYRING_KEY_SIZE);
                }
                pthread_mutex_unlock(&k->okc_lock);
        }
        sodium_memzero(out, sizeof out);
        return r;
}

/* ---- rotation ---- */

void keyring_set_rotate_hook(struct keyring *k, unsigned batch_size, int (*hook)(unsigned batches_done, void *ud), void *ud) {
        k->rotate_batch = batch_size > 0 ? batch_size : KEYRING_ROTATE_BATCH_DEFAULT;
        k->rotate_hook = hook;
        k->rotate_hook_ud = ud;
}

/* Step 1: make the new version, or find the one an interrupted rotation made. */
static int rotate_start(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t *ret_version) {
        uint32_t cur, oldest;
        int r = kdb_begin(k->wdb);
        if (r < 0)
                return r;
        r = kdb_kek_current(k->wdb, kek_id, &cur, NULL, NULL);
        if (r >= 0)
                r = kdb_kek_oldest(k->wdb, kek_id, &oldest);
        if (r >= 0 && oldest == cur) { /* nothing pending: a new rotation */
                if (cur == UINT32_MAX)
                        r = -EOVERFLOW;
                else {
                        cur++;
                        r = kek_insert_new(k, kek_id, cur);
                }
        }
        r = kdb_end(k->wdb, r);
        if (r >= 0)
                *ret_version = cur;
        return r;
}

/* Step 2: rewraps up to one batch of keys still under older versions, in one transaction.
 * Sets *ret_done to the number rewrapped (0 when none is left). */
static int rotate_batch(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t new_version, size_t *ret_done) {
        uint8_t new_kek[KEYRING_KEY_SIZE], old_kek[KEYRING_KEY_SIZE];
        uint32_t old_version = 0;
        bool have_old = false;
        size_t done = 0;
        _cleanup_free_ struct kdb_wrapped_row *rows = NULL;
        size_t n = 0;

        int r = kdb_begin(k->wdb);
        if (r < 0)
                return r;
        r = kek_load_version(k, k->wdb, kek_id, new_version, new_kek);
        if (r >= 0)
                r = kdb_rows_below(k->wdb, kek_id, new_version, k->rotate_batch, &rows, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct kdb_wrapped_row *w = &rows[i];
                uint8_t key[KEYRING_KEY_SIZE], aad[KEY_WRAP_AAD_MAX], wrapped[KEY_WRAP_SIZE];
                size_t aad_len;
                if (!have_old || old_version != w->kek_version) {
                        r = kek_load_version(k, k->wdb, kek_id, w->kek_version, old_kek);
                        if (r < 0)
                                break;
                        old_version = w->kek_version;
                        have_old = true;
                }
                aad_len = w->is_dek ? key_wrap_aad_dek(w->object_id, kek_id, old_version, aad)
                                    : key_wrap_aad_org(kek_id, old_version, w->purpose, aad);
                r = key_unwrap(old_kek, aad, aad_len, w->wrapped, w->wrapped_len, key);
                if (r >= 0) {
                        aad_len = w->is_dek ? key_wrap_aad_dek(w->object_id, kek_id, new_version, aad)
                                            : key_wrap_aad_org(kek_id, new_version, w->purpose, aad);
                        r = key_wrap(new_kek, aad, aad_len, key, wrapped);
                }
                sodium_memzero(key, sizeof key);
                if (r >= 0)
                        r = kdb_row_rewrap(k->wdb, w, kek_id, new_version, wrapped, sizeof wrapped);
                if (r >= 0)
                        done++;
        }
        sodium_memzero(new_kek, sizeof new_kek);
        sodium_memzero(old_kek, sizeof old_kek);
        if (rows)
                sodium_memzero(rows, n * sizeof *rows);
        r = kdb_end(k->wdb, r);
        if (r >= 0)
                *ret_done = done;
        return r;
}

/* Step 3: destroys the old versions once nothing refers to them (the foreign keys check it too). */
static int rotate_finish(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t new_version) {
        int r = kdb_begin(k->wdb);
        if (r < 0)
                return r;
        r = kdb_kek_delete_below(k->wdb, kek_id, new_version);
        return kdb_end(k->wdb, r);
}

int keyring_rotate(struct keyring *k, const uint8_t kek_id[KEYRING_ID_SIZE], uint32_t *ret_version) {
        uint32_t version;
        unsigned batches = 0;
        int r;

        if (!k || !kek_id)
                return -EINVAL;
        org_key_cache_drop(k, kek_id);
        pthread_mutex_lock(&k->wlock);
        r = rotate_start(k, kek_id, &version);
        pthread_mutex_unlock(&k->wlock);
        if (r < 0)
                return r;
        if (k->rotate_hook && (r = k->rotate_hook(batches, k->rotate_hook_ud)) < 0)
                return r;
        for (;;) {
                size_t done = 0;
                /* The lock is taken per batch so uploads keep going during a long rotation. */
                pthread_mutex_lock(&k->wlock);
                r = rotate_batch(k, kek_id, version, &done);
                pthread_mutex_unlock(&k->wlock);
                if (r < 0)
                        return r;
                if (done == 0)
                        break;
                batches++;
                if (k->rotate_hook && (r = k->rotate_hook(batches, k->rotate_hook_ud)) < 0)
                        return r;
        }
        pthread_mutex_lock(&k->wlock);
        r = rotate_finish(k, kek_id, version);
        pthread_mutex_unlock(&k->wlock);
        org_key_cache_drop(k, kek_id);
        if (r < 0)
                return r;
        (void) keyring_wal_wipe(k); /* the old KEK versions out of the WAL; logged, retried later */
        if (ret_version)
                *ret_version = version;
        return 0;
}

/* ---- change of master key ---- */

/* One KEK row under the master key to: rewrapped (unwrapped under the current master key first)
 * unless it already is, and checked to open under to either way. Inside the caller's transaction. */
static int kek_row_to_master(struct keyring *k, const struct kdb_kek_row *w, const struct master_key *to,
                             bool *ret_rewrapped) {
        uint8_t aad[KEY_WRAP_AAD_MAX], kek[KEYRING_KEY_SIZE], check[KEYRING_KEY_SIZE], wrapped[KEY_WRAP_SIZE];
        size_t aad_len = key_wrap_aad_kek(w->kek_id, w->version, aad);
        int r;
        *ret_rewrapped = false;
        if (memcmp(w->master_id, to->id, KEYRING_ID_SIZE) == 0) {
                r = master_unwrap(to, aad, aad_len, w->wrapped, w->wrapped_len, check);
                sodium_memzero(check, sizeof check);
                return r;
        }
        r = master_unwrap(k->master, aad, aad_len, w->wrapped, w->wrapped_len, kek);
        if (r >= 0)
                r = master_wrap(to, aad, aad_len, kek, wrapped);
        if (r >= 0)
                r = master_unwrap(to, aad, aad_len, wrapped, sizeof wrapped, check);
        if (r >= 0 && sodium_memcmp(kek, check, KEYRING_KEY_SIZE) != 0)
                r = -EIO;
        sodium_memzero(kek, sizeof kek);
        sodium_memzero(check, sizeof check);
        if (r >= 0)
                r = kdb_kek_rewrap_master(k->wdb, w->kek_id, w->version, to->id, wrapped, sizeof wrapped);
        if (r >= 0)
                *ret_rewrapped = true;
        return r;
}

int keyring_change_master(struct keyring *k, struct master_key *to, size_t *ret_rewrapped) {
        _cleanup_(master_key_freep) struct master_key *owned = to;
        _cleanup_free_ struct kdb_kek_row *rows = NULL;
        size_t n = 0, rewrapped = 0;
        int r;

        if (!k || !to)
                return -EINVAL;
        /* One transaction: every KEK moves to the new master key, and keyring.db names it, or
         * nothing changes. There is one KEK row per organisation and version: it fits. */
        pthread_mutex_lock(&k->wlock);
        r = kdb_begin(k->wdb);
        if (r >= 0) {
                r = kdb_kek_all(k->wdb, &rows, &n);
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        bool done;
                        r = kek_row_to_master(k, &rows[i], to, &done);
                        if (r == -EBADMSG)
                                log_error("keyring: a key encryption key opens under neither master key");
                        rewrapped += done;
                }
                if (r >= 0)
                        r = kdb_meta_put(k->wdb, "master_key_id", to->id, KEYRING_ID_SIZE);
                r = kdb_end(k->wdb, r); /* synchronous=FULL: durable on return */
        }
        pthread_mutex_unlock(&k->wlock);
        if (rows)
                sodium_memzero(rows, n * sizeof *rows);
        if (r < 0)
                return r;

        /* Read back what was committed: every row names the new key and opens under it. */
        free(TAKE_PTR(rows));
        pthread_mutex_lock(&k->rlock);
        r = kdb_read_begin(k->rdb);
        if (r >= 0) {
                r = kdb_kek_all(k->rdb, &rows, &n);
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        uint8_t aad[KEY_WRAP_AAD_MAX], kek[KEYRING_KEY_SIZE];
                        if (memcmp(rows[i].master_id, to->id, KEYRING_ID_SIZE) != 0) {
                                r = -EIO;
                                break;
                        }
                        size_t aad_len = key_wrap_aad_kek(rows[i].kek_id, rows[i].version, aad);
                        r = master_unwrap(to, aad, aad_len, rows[i].wrapped, rows[i].wrapped_len, kek);
                        sodium_memzero(kek, sizeof kek);
                }
                kdb_read_end(k->rdb);
        }
        pthread_mutex_unlock(&k->rlock);
        if (rows)
                sodium_memzero(rows, n * sizeof *rows);
        if (r < 0)
                return r;
        master_key_free(k->master);
        k->master = TAKE_PTR(owned);
        if (ret_rewrapped)
                *ret_rewrapped = rewrapped;
        return 0;
}

int keyring_kek_count(struct keyring *k, size_t *ret) {
        _cleanup_free_ struct kdb_kek_row *rows = NULL;
        size_t n = 0;
        pthread_mutex_lock(&k->rlock);
        int r = kdb_kek_all(k->rdb, &rows, &n);
        pthread_mutex_unlock(&k->rlock);
        if (rows)
                sodium_memzero(rows, n * sizeof *rows);
        if (r >= 0)
                *ret = n;
        return r;
}

int keyring_master_probe(struct keyring *k) {
        uint8_t kek_id[KEYRING_ID_SIZE], wrapped[KEY_WRAP_SIZE], kek[KEYRING_KEY_SIZE];
        uint32_t version;
        size_t wl;
        if (!k)
                return -EINVAL;
        pthread_mutex_lock(&k->rlock);
        int r = kdb_kek_any(k->rdb, kek_id, &version, wrapped, &wl);
        pthread_mutex_unlock(&k->rlock);
        if (r == -ENOENT)
                return 0;
        if (r >= 0)
                r = kek_unwrap(k, kek_id, version, wrapped, wl, kek);
        sodium_memzero(kek, sizeof kek);
        return r;
}

bool keyring_master_is_token(const struct keyring *k) {
        return k && master_key_is_token(k->master);
}
