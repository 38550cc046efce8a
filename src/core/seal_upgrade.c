/* seal_upgrade.c: with an external TSA ([tsa] url), a document whose timestamp could not be had
 * at ingest is kept with a B-B seal and queued here. One thread takes the queue in order, asks
 * the TSA for a token over each seal's signature value, and on success stores the B-T seal in
 * place of the B-B one with its document.seal entry (one transaction). On failure it puts the
 * document at the back of the queue and waits, doubling the wait from one second up to
 * [tsa] retry_max; an ingest that gets a timestamp wakes it at once. The queue is bounded: when it overflows, or
 * at start (what an earlier run left), the store's B-B seals are read back into it. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "crypto/keyring.h"
#include "hex.h"
#include "log.h"
#include "seal/cades.h"
#include "vault_internal.h"

#define UPGRADE_QUEUE_MAX 1024
#define UPGRADE_FIRST_WAIT_MS 1000

struct seal_upgrader {
        struct vault *v;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool started, stop, rescan, kicked;
        struct store_seal_ref q[UPGRADE_QUEUE_MAX]; /* a ring */
        size_t head, n;
        _Atomic uint64_t upgraded, failures;
};

int vault_seal_upgrader_new(struct vault *v) {
        struct seal_upgrader *u = calloc(1, sizeof *u);
        if (!u)
                return -ENOMEM;
        u->v = v;
        pthread_mutex_init(&u->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&u->cond, &ca);
        pthread_condattr_destroy(&ca);
        u->rescan = true; /* what an earlier run left */
        v->upgrader = u;
        return 0;
}

void vault_seal_upgrader_free(struct vault *v) {
        struct seal_upgrader *u = v->upgrader;
        if (!u)
                return;
        if (u->started) {
                pthread_mutex_lock(&u->lock);
                u->stop = true;
                pthread_cond_broadcast(&u->cond);
                pthread_mutex_unlock(&u->lock);
                pthread_join(u->thread, NULL);
        }
        pthread_cond_destroy(&u->cond);
        pthread_mutex_destroy(&u->lock);
        free(u);
        v->upgrader = NULL;
}

static bool queued_locked(struct seal_upgrader *u, const char *id) {
        for (size_t i = 0; i < u->n; i++)
                if (strcmp(u->q[(u->head + i) % UPGRADE_QUEUE_MAX].id, id) == 0)
                        return true;
        return false;
}

static void push_locked(struct seal_upgrader *u, const char *id, const char *org_id) {
        if (queued_locked(u, id))
                return;
        if (u->n == UPGRADE_QUEUE_MAX) {
                u->rescan = true; /* the store still has it */
                return;
        }
        struct store_seal_ref *e = &u->q[(u->head + u->n) % UPGRADE_QUEUE_MAX];
        snprintf(e->id, sizeof e->id, "%s", id);
        snprintf(e->org_id, sizeof e->org_id, "%s", org_id);
        u->n++;
}

void vault_seal_upgrader_enqueue(struct vault *v, const char *id, const char *org_id) {
        struct seal_upgrader *u = v->upgrader;
        if (!u)
                return;
        pthread_mutex_lock(&u->lock);
        push_locked(u, id, org_id);
        pthread_cond_broadcast(&u->cond);
        pthread_mutex_unlock(&u->lock);
}

void vault_seal_upgrader_kick(struct vault *v) {
        struct seal_upgrader *u = v->upgrader;
        if (!u)
                return;
        pthread_mutex_lock(&u->lock);
        if (u->n > 0) {
                u->kicked = true;
                pthread_cond_broadcast(&u->cond);
        }
        pthread_mutex_unlock(&u->lock);
}

void vault_seal_upgrader_note_failure(struct vault *v) {
        if (v->upgrader)
                atomic_fetch_add(&v->upgrader->failures, 1);
}

void vault_seal_upgrade_stats(struct vault *v, struct vault_seal_upgrade_stats *ret) {
        struct seal_upgrader *u = v->upgrader;
        *ret = (struct vault_seal_upgrade_stats){ 0 };
        if (!u)
                return;
        ret->enabled = true;
        pthread_mutex_lock(&u->lock);
        ret->queued = u->n;
        pthread_mutex_unlock(&u->lock);
        ret->upgraded = atomic_load(&u->upgraded);
        ret->failures = atomic_load(&u->failures);
}

/* One document from B-B to B-T. -ENOENT: nothing to do (gone, or B-T already). */
static int upgrade_one(struct vault *v, const struct store_seal_ref *ref) {
        struct store_seal old = { 0 }, seal = { .audit_index = UINT64_MAX };
        _cleanup_free_ uint8_t *cms = NULL, *bt = NULL, *sealed = NULL;
        size_t cms_len = 0, bt_len = 0;
        uint8_t raw[16], dek[KEYRING_KEY_SIZE], seal_sha[32];
        struct cades_info info;
        uint64_t index = 0;
        int r;

        r = v->store->ops->seal_get(v->store, ref->id, &old);
        if (r < 0)
                return r;
        if (strcmp(old.level, "B-B") != 0) {
                free(old.sealed);
                return -ENOENT;
        }
        r = hex_decode(ref->id, raw, sizeof raw);
        if (r >= 0)
                r = keyring_dek_get(v->keyring, raw, dek);
        if (r >= 0)
                r = vault_seal_decrypt(dek, ref->id, old.sealed, old.sealed_len, &cms, &cms_len);
        free(old.sealed);
        if (r >= 0)
                r = vault_seal_timestamp_external(v, cms, cms_len, &bt, &bt_len, &info);
        if (r >= 0)
                r = vault_seal_encrypt(dek, ref->id, bt, bt_len, &sealed, &seal.sealed_len);
        sodium_memzero(dek, sizeof dek);
        if (r < 0)
                return r;
        crypto_hash_sha256(seal_sha, bt, bt_len);
        r = vault_record_entry(v, ref->org_id, "system:seal", "document.seal", ref->id, seal_sha, NULL,
                               "{\"level\":\"B-T\"}", &index);
        if (r < 0)
                return r;
        memcpy(seal.level, "B-T", 4);
        seal.signing_time = info.signing_time;
        seal.timestamp_time = info.timestamp_time;
        seal.sealed = sealed;
        seal.audit_index = index;
        r = v->store->ops->seal_upgrade(v->store, ref->id, &seal);
        if (r < 0) {
                /* the entry says B-T: keep it findable under the document */
                int k = v->store->ops->audit_ref_add(v->store, ref->id, index);
                if (k < 0)
                        log_warn("audit reference %llu not stored: %s", (unsigned long long) index, strerror(-k));
                return r;
        }
        return 0;
}

static void rescan(struct seal_upgrader *u) {
        struct store_seal_ref *refs = calloc(UPGRADE_QUEUE_MAX, sizeof *refs);
        size_t n = 0;
        int r = refs ? u->v->store->ops->seal_list_level(u->v->store, "B-B", UPGRADE_QUEUE_MAX, refs, &n) : -ENOMEM;
        pthread_mutex_lock(&u->lock);
        if (r < 0)
                log_error("seal upgrades: the B-B seals cannot be listed: %s", strerror(-r));
        else {
                u->rescan = false;
                for (size_t i = 0; i < n; i++)
                        push_locked(u, refs[i].id, refs[i].org_id);
                if (n > 0)
                        log_info("seal upgrades: %zu B-B seal(s) queued for a timestamp", n);
        }
        pthread_mutex_unlock(&u->lock);
        free(refs);
}

static void deadline_after(struct timespec *ts, uint64_t ms) {
        clock_gettime(CLOCK_MONOTONIC, ts);
        ts->tv_sec += (time_t) (ms / 1000);
        ts->tv_nsec += (long) (ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static void *upgrader_main(void *ud) {
        struct seal_upgrader *u = ud;
        uint64_t wait_ms = UPGRADE_FIRST_WAIT_MS, max_ms = (uint64_t) u->v->config.tsa_retry_max * 1000;

        for (;;) {
                pthread_mutex_lock(&u->lock);
                while (!u->stop && u->n == 0 && !u->rescan)
                        pthread_cond_wait(&u->cond, &u->lock);
                bool stop = u->stop, again = u->rescan && u->n == 0;
                pthread_mutex_unlock(&u->lock);
                if (stop)
                        break;
                if (again) {
                        rescan(u);
                        continue;
                }
                pthread_mutex_lock(&u->lock);
                struct store_seal_ref ref = u->q[u->head];
                pthread_mutex_unlock(&u->lock);

                int r = upgrade_one(u->v, &ref);
                if (r >= 0) {
                        atomic_fetch_add(&u->upgraded, 1);
                        log_fields(LOG_LEVEL_INFO, "seal upgraded to B-T", "document", ref.id, NULL);
                }
                if (r >= 0 || r == -ENOENT) {
                        pthread_mutex_lock(&u->lock);
                        u->head = (u->head + 1) % UPGRADE_QUEUE_MAX;
                        u->n--;
                        pthread_mutex_unlock(&u->lock);
                        wait_ms = UPGRADE_FIRST_WAIT_MS;
                        continue;
                }
                atomic_fetch_add(&u->failures, 1);
                /* to the back of the queue: one seal that keeps failing holds no other up */
                pthread_mutex_lock(&u->lock);
                if (u->n > 1 && strcmp(u->q[u->head].id, ref.id) == 0) {
                        u->head = (u->head + 1) % UPGRADE_QUEUE_MAX;
                        u->n--;
                        push_locked(u, ref.id, ref.org_id);
                }
                pthread_mutex_unlock(&u->lock);
                log_warn("seal upgrade of document %s failed (%s); next attempt in %llu ms", ref.id, strerror(-r),
                         (unsigned long long) wait_ms);
                struct timespec ts;
                deadline_after(&ts, wait_ms);
                pthread_mutex_lock(&u->lock);
                while (!u->stop && !u->kicked)
                        if (pthread_cond_timedwait(&u->cond, &u->lock, &ts) == ETIMEDOUT)
                                break;
                bool kicked = u->kicked;
                u->kicked = false;
                pthread_mutex_unlock(&u->lock);
                wait_ms = kicked ? UPGRADE_FIRST_WAIT_MS : wait_ms * 2 > max_ms ? max_ms : wait_ms * 2;
        }
        return NULL;
}

int vault_seal_upgrader_start(struct vault *v) {
        struct seal_upgrader *u = v->upgrader;
        if (!u || u->started)
                return 0;
        int r = -pthread_create(&u->thread, NULL, upgrader_main, u);
        if (r < 0)
                return log_error_errno(r, "cannot start the seal upgrades: %s", strerror(-r));
        u->started = true;
        return 0;
}
