/* lifecycle.c: retention classes applied to documents, deletion under retention and legal holds,
 * class changes that may only lengthen retention, holds with sealed reasons, tombstones, and the
 * sweep of documents whose retention ended. */
#include "lifecycle.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "buf.h"
#include "crypto/field.h"
#include "fields.h"
#include "hex.h"
#include "log.h"
#include "retention.h"
#include "utf8.h"
#include "vault_internal.h"

#define HOLD_TABLE "holds"

int64_t vault_now_ms(struct vault *v) {
        return accounts_now_ms(v->accounts);
}

static const char *lock_name(enum vault_class_lock l) {
        return l == VAULT_LOCK_GOVERNANCE ? "governance" : "compliance";
}

char *vault_class_names(struct vault *v) {
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, 4096);
        for (size_t i = 0; i < v->config.n_classes; i++)
                if (buf_printf(&b, "%s%s", i ? ", " : "", v->config.classes[i].name) < 0)
                        return NULL;
        return buf_steal(&b);
}

static int org_time_zone(struct vault *v, const char *org_id, char tz[64]) {
        struct store_org o;
        int r = v->store->ops->org_get(v->store, org_id, &o);
        if (r < 0)
                return r;
        snprintf(tz, 64, "%s", o.time_zone[0] ? o.time_zone : "UTC");
        return 0;
}

/* retain_until of a document of class c, from its ingest instant and document date. */
static int compute(struct vault *v, const char *org_id, const struct vault_class *c, const char *document_date,
                   int64_t ingest, int64_t *ret) {
        struct retention_date dd, *pd = NULL;
        char tz[64];
        if (document_date && document_date[0]) {
                if (retention_parse_date(document_date, &dd) < 0)
                        return -EINVAL;
                pd = &dd;
        }
        int r = org_time_zone(v, org_id, tz);
        if (r < 0)
                return r;
        r = retention_until(c, tz, v->config.fiscal_year_end_month, v->config.fiscal_year_end_day, ingest, pd, ret);
        if (r < 0)
                log_error("organisation %s: retention not computable (time zone %s unknown here?)", org_id, tz);
        return r;
}

int vault_retention_for(struct vault *v, const char *org_id, const char *class_, const char *document_date, int64_t now,
                        struct store_document *d) {
        const struct vault_class *c = vault_config_class(&v->config, class_);
        if (!c)
                return -ENOENT;
        int64_t until;
        int r = compute(v, org_id, c, document_date, now, &until);
        if (r < 0)
                return r;
        d->retain_until = until;
        snprintf(d->lock, sizeof d->lock, "%s", lock_name(c->lock));
        snprintf(d->document_date, sizeof d->document_date, "%s", document_date ? document_date : "");
        return 0;
}

int vault_tombstone_get(struct vault *v, const struct vault_actor *a, const char *id, struct store_tombstone *ret) {
        if (!vault_id_valid(id))
                return -ENOENT;
        return v->store->ops->tombstone_get(v->store, a->org_id, id, ret);
}

static int active_holds(struct vault *v, const char *org_id, const char *id, size_t *ret_n) {
        struct store_hold *h = NULL;
        size_t n = 0;
        int r = v->store->ops->hold_list(v->store, org_id, id, 1, &h, &n);
        free(h);
        if (r >= 0)
                *ret_n = n;
        return r;
}

int vault_document_delete_checked(struct vault *v, const struct vault_actor *a, const char *id, const char *reason,
                                  const char *request_id, struct store_document *ret_doc, enum vault_refusal *ret_why) {
        struct store_document d;
        size_t holds = 0;
        int64_t now = vault_now_ms(v);
        const char *why = "deleted";

        *ret_why = VAULT_REFUSED_NONE;
        int r = vault_document_get(v, a, id, &d);
        if (r == -ENOENT) {
                struct store_tombstone t;
                return vault_tombstone_get(v, a, id, &t) >= 0 ? -ENOTCONN : -ENOENT;
        }
        if (r < 0)
                return r;
        r = active_holds(v, d.org_id, d.id, &holds);
        if (r < 0)
                goto out;
        if (holds > 0) {
                *ret_why = VAULT_REFUSED_HOLD;
                r = -EPERM;
        } else if (now < d.retain_until) {
                /* early: only under a governance lock, by an owner, with a reason */
                if (strcmp(d.lock, "governance") == 0 && strcmp(a->role, "owner") == 0 && reason && reason[0])
                        why = "deleted-early";
                else {
                        *ret_why = VAULT_REFUSED_RETENTION;
                        r = -EPERM;
                }
        }
        if (r == -EPERM) {
                log_info("document %s: deletion refused (%s)", d.id,
                         *ret_why == VAULT_REFUSED_HOLD ? "legal hold" : "retention");
                *ret_doc = d;
                goto out;
        }
        r = vault_document_erase(v, a->actor_id, &d, why, strcmp(why, "deleted-early") == 0 ? reason : NULL, now,
                                 request_id);
        if (r >= 0 && strcmp(why, "deleted-early") == 0)
                log_info("document %s: deleted before the end of its retention by an owner, with a reason", d.id);
out:
        sodium_memzero(d.name, sizeof d.name);
        return r;
}

int vault_document_set_class(struct vault *v, const struct vault_actor *a, const char *id, const char *class_,
                             const char *request_id, struct store_document *ret, bool *ret_unknown_class,
                             enum vault_refusal *ret_why) {
        struct store_document d;
        *ret_unknown_class = false;
        *ret_why = VAULT_REFUSED_NONE;
        const struct vault_class *c = vault_config_class(&v->config, class_);
        if (!c) {
                *ret_unknown_class = true;
                return -ENOENT;
        }
        int r = vault_document_get(v, a, id, &d);
        if (r < 0)
                return r;
        int64_t until;
        /* from the document's own start: its ingest instant and the date it was given */
        r = compute(v, d.org_id, c, d.document_date, d.created_at, &until);
        if (r < 0)
                goto out;
        bool weaker = strcmp(d.lock, "compliance") == 0 && c->lock != VAULT_LOCK_COMPLIANCE;
        if (until < d.retain_until || weaker) {
                *ret_why = VAULT_REFUSED_SHORTER;
                *ret = d;
                r = -EPERM;
                goto out;
        }
        r = v->store->ops->document_set_retention(v->store, d.org_id, d.id, c->name, until, lock_name(c->lock));
        if (r == -ESTALE) { /* a concurrent change lengthened it further */
                *ret_why = VAULT_REFUSED_SHORTER;
                *ret = d;
                r = -EPERM;
                goto out;
        }
        if (r < 0)
                goto out;
        char details[256], ru[32];
        snprintf(ru, sizeof ru, "%lld", (long long) until);
        snprintf(details, sizeof details, "{\"class\":\"%s\",\"from\":\"%s\",\"retain_until_ms\":%s}", c->name,
                 d.class_, ru);
        r = vault_record(v, d.org_id, a->actor_id, "document.class", d.id, d.sha256, request_id, details);
        if (r < 0)
                goto out;
        snprintf(d.class_, sizeof d.class_, "%s", c->name);
        snprintf(d.lock, sizeof d.lock, "%s", lock_name(c->lock));
        d.retain_until = until;
        *ret = d;
out:
        sodium_memzero(d.name, sizeof d.name);
        return r;
}

/* ---- holds ---- */

static int check_text(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > VAULT_HOLD_TEXT_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t l = utf8_next((const uint8_t *) s + i, n - i, &cp);
                if (l == 0 || cp < 0x20 || cp == 0x7f)
                        return -EINVAL;
                i += l;
        }
        return 0;
}

static void random_hex_id(char out[STORE_ID_LEN + 1]) {
        uint8_t raw[16];
        randombytes_buf(raw, sizeof raw);
        hex_encode(raw, sizeof raw, out);
}

static char *hold_details(const char *document_id, const char *hold_id, const char *k1, const char *v1, const char *k2,
                          const char *v2) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "document", document_id, "hold", hold_id, k1, v1);
        if (o && k2 && json_object_set_new(o, k2, json_string(v2)) < 0)
                json_decref(TAKE_PTR(o));
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        return s;
}

int vault_hold_add(struct vault *v, const struct vault_actor *a, const char *document_id, const char *reason,
                   const char *case_, const char *request_id, struct vault_hold *ret) {
        struct store_document d;
        struct store_hold h = { 0 };
        const uint8_t *enc, *idx;

        if (check_text(reason) < 0 || check_text(case_) < 0)
                return -EINVAL;
        int r = vault_document_get(v, a, document_id, &d);
        if (r < 0)
                return r;
        sodium_memzero(d.name, sizeof d.name);
        r = vault_field_keys(v, a->org_id, &enc, &idx);
        if (r < 0)
                return r;
        random_hex_id(h.id);
        snprintf(h.org_id, sizeof h.org_id, "%s", a->org_id);
        snprintf(h.document_id, sizeof h.document_id, "%s", d.id);
        snprintf(h.created_by, sizeof h.created_by, "%s", a->actor_id);
        h.created_at = vault_now_ms(v);
        size_t rn = strlen(reason), cn = strlen(case_);
        if ((r = field_encrypt(enc, HOLD_TABLE, "reason", h.id, reason, rn, h.reason)) < 0 ||
            (r = field_encrypt(enc, HOLD_TABLE, "case_ref", h.id, case_, cn, h.case_)) < 0)
                return r;
        h.reason_n = rn + FIELD_OVERHEAD;
        h.case_n = cn + FIELD_OVERHEAD;
        _cleanup_(vault_free_secret_stringp) char *details = hold_details(d.id, h.id, "reason", reason, "case", case_);
        if (!details)
                return -ENOMEM;
        /* recorded first: a hold that exists was logged */
        r = vault_record(v, a->org_id, a->actor_id, "hold.add", d.id, d.sha256, request_id, details);
        if (r < 0)
                return r;
        r = v->store->ops->hold_insert(v->store, &h);
        if (r < 0)
                return r;
        *ret = (struct vault_hold){ .created_at = h.created_at };
        snprintf(ret->id, sizeof ret->id, "%s", h.id);
        snprintf(ret->document_id, sizeof ret->document_id, "%s", h.document_id);
        snprintf(ret->created_by, sizeof ret->created_by, "%s", h.created_by);
        snprintf(ret->reason, sizeof ret->reason, "%s", reason);
        snprintf(ret->case_, sizeof ret->case_, "%s", case_);
        return 0;
}

int vault_hold_release(struct vault *v, const struct vault_actor *a, const char *document_id, const char *hold_id,
                       const char *reason, const char *request_id) {
        if (check_text(reason) < 0)
                return -EINVAL;
        if (!vault_id_valid(document_id) || !vault_id_valid(hold_id))
                return -ENOENT;
        struct store_hold *h = NULL;
        size_t n = 0;
        int r = v->store->ops->hold_list(v->store, a->org_id, document_id, 10000, &h, &n);
        if (r < 0)
                return r;
        bool found = false;
        for (size_t i = 0; i < n; i++)
                found |= strcmp(h[i].id, hold_id) == 0;
        free(h);
        if (!found)
                return -ENOENT;
        _cleanup_(vault_free_secret_stringp) char *details =
                hold_details(document_id, hold_id, "reason", reason, NULL, NULL);
        if (!details)
                return -ENOMEM;
        r = vault_record(v, a->org_id, a->actor_id, "hold.release", document_id, NULL, request_id, details);
        if (r < 0)
                return r;
        return v->store->ops->hold_release(v->store, a->org_id, document_id, hold_id, vault_now_ms(v));
}

static int open_text(const uint8_t *key, const char *column, const char *row, const uint8_t *c, size_t n, char *out) {
        size_t len = 0;
        if (n < FIELD_OVERHEAD || n - FIELD_OVERHEAD > VAULT_HOLD_TEXT_MAX)
                return -EBADMSG;
        int r = field_decrypt(key, HOLD_TABLE, column, row, c, n, (uint8_t *) out, &len);
        if (r < 0)
                return r;
        out[len] = 0;
        return 0;
}

int vault_hold_list(struct vault *v, const struct vault_actor *a, struct vault_hold **ret, size_t *ret_n) {
        struct store_hold *h = NULL;
        size_t n = 0;
        const uint8_t *enc, *idx;
        int r = vault_field_keys(v, a->org_id, &enc, &idx);
        if (r == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        r = v->store->ops->hold_list(v->store, a->org_id, NULL, 10000, &h, &n);
        if (r < 0)
                return r;
        struct vault_hold *out = calloc(n ? n : 1, sizeof *out);
        if (!out) {
                free(h);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                snprintf(out[i].id, sizeof out[i].id, "%s", h[i].id);
                snprintf(out[i].document_id, sizeof out[i].document_id, "%s", h[i].document_id);
                snprintf(out[i].created_by, sizeof out[i].created_by, "%s", h[i].created_by);
                out[i].created_at = h[i].created_at;
                r = open_text(enc, "reason", h[i].id, h[i].reason, h[i].reason_n, out[i].reason);
                if (r >= 0)
                        r = open_text(enc, "case_ref", h[i].id, h[i].case_, h[i].case_n, out[i].case_);
                if (r < 0)
                        log_error("hold %s: its reason or case does not decrypt: listing refused", h[i].id);
        }
        free(h);
        if (r < 0) {
                vault_hold_list_free(out, n);
                return -EBADMSG;
        }
        *ret = out;
        *ret_n = n;
        return 0;
}

void vault_hold_list_free(struct vault_hold *h, size_t n) {
        if (h)
                sodium_memzero(h, n * sizeof *h);
        free(h);
}

/* ---- the sweep ---- */

int vault_lifecycle_sweep(struct vault *v, bool dry_run, int64_t now,
                          void (*cb)(const struct store_document *d, bool erase, void *ud), void *ud,
                          struct vault_sweep_stats *ret) {
        struct vault_sweep_stats st = { 0 };
        int64_t after_until = INT64_MIN;
        char after_id[STORE_ID_LEN + 1] = "";
        int r = 0;

        for (;;) {
                struct store_document *docs = NULL;
                size_t n = 0;
                r = v->store->ops->document_expired(v->store, now, after_until, after_id, 100, &docs, &n);
                if (r < 0)
                        break;
                for (size_t i = 0; i < n; i++) {
                        const struct vault_class *c = vault_config_class(&v->config, docs[i].class_);
                        bool erase = c && c->erase_on_expiry;
                        if (cb)
                                cb(&docs[i], erase, ud);
                        if (!erase || dry_run) {
                                if (erase)
                                        st.erased++;
                                else
                                        st.review++;
                                continue;
                        }
                        /* a hold placed since the page was read wins */
                        size_t held = 0;
                        int k = active_holds(v, docs[i].org_id, docs[i].id, &held);
                        if (k >= 0 && held > 0)
                                continue;
                        if (k >= 0)
                                k = vault_document_erase(v, "system:lifecycle", &docs[i], "retention-ended", NULL, now,
                                                         NULL);
                        if (k < 0) {
                                log_error("document %s: not erased at the end of its retention: %s", docs[i].id,
                                          strerror(-k));
                                st.failed++;
                        } else
                                st.erased++;
                }
                if (n > 0) {
                        after_until = docs[n - 1].retain_until;
                        snprintf(after_id, sizeof after_id, "%s", docs[n - 1].id);
                }
                /* names are sealed in these rows: nothing personal to wipe */
                free(docs);
                if (n < 100)
                        break;
        }
        if (r >= 0)
                log_info("lifecycle sweep%s: %llu erased, %llu for review, %llu failed", dry_run ? " (dry run)" : "",
                         (unsigned long long) st.erased, (unsigned long long) st.review,
                         (unsigned long long) st.failed);
        *ret = st;
        return r < 0 ? r : st.failed ? -EIO : 0;
}

/* ---- the server's sweeper thread ---- */

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool running, stop;
        struct vault *v;
} sweeper = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void *sweeper_main(void *ud) {
        (void) ud;
        unsigned interval = sweeper.v->config.lifecycle_interval;
        pthread_mutex_lock(&sweeper.lock);
        while (!sweeper.stop) {
                pthread_mutex_unlock(&sweeper.lock);
                struct vault_sweep_stats st;
                int r = vault_lifecycle_sweep(sweeper.v, false, vault_now_ms(sweeper.v), NULL, NULL, &st);
                if (r < 0)
                        log_error("lifecycle sweep: %s; the next one tries again", strerror(-r));
                pthread_mutex_lock(&sweeper.lock);
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += (time_t) interval;
                while (!sweeper.stop && pthread_cond_timedwait(&sweeper.cond, &sweeper.lock, &until) == 0)
                        ;
        }
        pthread_mutex_unlock(&sweeper.lock);
        return NULL;
}

int vault_lifecycle_start(struct vault *v) {
        if (v->config.lifecycle_interval == 0) {
                log_info("lifecycle sweeps disabled ([lifecycle] interval = 0)");
                return 0;
        }
        sweeper.v = v;
        sweeper.stop = false;
        int r = -pthread_create(&sweeper.thread, NULL, sweeper_main, NULL);
        if (r < 0)
                return log_error_errno(r, "cannot start the lifecycle sweeper: %s", strerror(-r));
        sweeper.running = true;
        return 0;
}

void vault_lifecycle_stop(void) {
        if (!sweeper.running)
                return;
        pthread_mutex_lock(&sweeper.lock);
        sweeper.stop = true;
        pthread_cond_broadcast(&sweeper.cond);
        pthread_mutex_unlock(&sweeper.lock);
        pthread_join(sweeper.thread, NULL);
        sweeper.running = false;
}
