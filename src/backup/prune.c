/* prune.c: retention decisions and garbage collection of backup repositories (see prune.h). */
#include "backup/prune.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "hex.h"
#include "log.h"

#define DAY 86400

void backup_policy_default(struct backup_policy *p) {
        *p = (struct backup_policy){
                .hourly = 7 * DAY, .daily = 35 * DAY, .weekly = 5 * 365 * DAY, .keyring = 90 * DAY
        };
}

int backup_parse_duration(const char *s, int64_t *ret) {
        char *end = NULL;
        long long v;
        int64_t unit;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || end == s || !end[0] || end[1])
                return -EINVAL;
        switch (*end) {
        case 's':
                unit = 1;
                break;
        case 'm':
                unit = 60;
                break;
        case 'h':
                unit = 3600;
                break;
        case 'd':
                unit = DAY;
                break;
        case 'w':
                unit = 7 * DAY;
                break;
        case 'y':
                unit = 365 * DAY;
                break;
        default:
                return -EINVAL;
        }
        if (v <= 0 || v > INT64_MAX / unit / 2)
                return -EINVAL;
        *ret = (int64_t) v * unit;
        return 0;
}

void backup_prune_plan_free(struct backup_prune_plan *p) {
        free(p->items);
        *p = (struct backup_prune_plan){};
}

static void count_unreadable(const char *object, const char *what, void *ud) {
        struct {
                struct backup_prune_plan *plan;
                backup_report_fn report;
                void *ud;
        } *c = ud;
        c->plan->unreadable++;
        if (c->report)
                c->report(object, what, c->ud);
}

static int64_t floor_div(int64_t a, int64_t b) {
        return a >= 0 ? a / b : -((-a + b - 1) / b);
}

int backup_prune_plan(struct backup_repo *r, const struct backup_policy *pol, int64_t now, backup_report_fn report,
                      void *ud, struct backup_prune_plan *ret) {
        struct backup_prune_plan plan = {};
        struct {
                struct backup_prune_plan *plan;
                backup_report_fn report;
                void *ud;
        } c = { &plan, report, ud };
        struct backup_snapshot *s = NULL;
        size_t n = 0;
        int rc;

        rc = backup_snapshots(r, count_unreadable, &c, &s, &n);
        if (rc < 0)
                return rc;
        plan.items = calloc(n ? n : 1, sizeof *plan.items);
        if (!plan.items) {
                backup_snapshots_free(s, n);
                return -ENOMEM;
        }
        /* newest first; slots taken per series */
        int64_t last_h[3] = { INT64_MIN, INT64_MIN, INT64_MIN }, last_d[3] = { INT64_MIN, INT64_MIN, INT64_MIN },
                last_w[3] = { INT64_MIN, INT64_MIN, INT64_MIN };
        bool have_latest[3] = { false, false, false };
        for (size_t k = 0; k < n; k++) {
                const struct backup_snapshot *x = &s[n - 1 - k];
                struct backup_prune_item *it = &plan.items[plan.n++];
                const char *dp = backup_snapshot_date_problem(x, now);
                unsigned ser = (unsigned) x->series;
                int64_t age = now - x->time;

                *it = (struct backup_prune_item){ .id = x->id, .series = x->series, .time = x->time };
                if (dp) {
                        it->keep = true;
                        snprintf(it->why, sizeof it->why, "date not trusted (%s): kept, counts for nothing", dp);
                        continue;
                }
                int64_t h = floor_div(x->time, 3600), d = floor_div(x->time, DAY),
                        w = floor_div(floor_div(x->time, DAY) + 3, 7); /* weeks from Monday */
                if (x->series == BACKUP_SERIES_KEYRING) {
                        it->keep = !have_latest[ser] || age < pol->keyring;
                        snprintf(it->why, sizeof it->why,
                                 !have_latest[ser] ? "the newest of its series"
                                 : it->keep        ? "within keyring retention"
                                                   : "older than the keyring retention");
                        have_latest[ser] = true;
                        continue;
                }
                if (!have_latest[ser]) {
                        have_latest[ser] = true;
                        it->keep = true;
                        snprintf(it->why, sizeof it->why, "the newest of its series");
                } else if (age < pol->hourly && h != last_h[ser]) {
                        it->keep = true;
                        snprintf(it->why, sizeof it->why, "the newest of its hour");
                } else if (age < pol->daily && d != last_d[ser]) {
                        it->keep = true;
                        snprintf(it->why, sizeof it->why, "the newest of its day");
                } else if (age < pol->weekly && w != last_w[ser]) {
                        it->keep = true;
                        snprintf(it->why, sizeof it->why, "the newest of its week");
                } else
                        snprintf(it->why, sizeof it->why,
                                 age < pol->weekly ? "a newer snapshot holds its hour, day and week"
                                                   : "older than every retention");
                last_h[ser] = h;
                last_d[ser] = d;
                last_w[ser] = w;
        }
        backup_snapshots_free(s, n);
        *ret = plan;
        return 0;
}

/* ---- locks ---- */

int backup_lock_run(struct backup_repo *r, const uint8_t run_id[16], char *ret_name, size_t n) {
        uint64_t size;
        int64_t mtime;
        char hex[33];

        if (r->dest->ops->stat(r->dest, "locks/prune", &size, &mtime) == 0)
                return -EBUSY;
        hex_encode(run_id, 16, hex);
        snprintf(ret_name, n, "locks/run-%s", hex);
        return r->dest->ops->put(r->dest, ret_name, "run\n", 4);
}

void backup_unlock(struct backup_repo *r, const char *name) {
        (void) r->dest->ops->del(r->dest, name);
}

struct lock_scan {
        int64_t now;
        unsigned live;
};

static int lock_one(const char *name, uint64_t size, int64_t mtime, void *ud) {
        struct lock_scan *l = ud;
        if (strncmp(name, "locks/run-", 10) == 0 && l->now - mtime < BACKUP_RUN_LOCK_STALE_SEC)
                l->live++;
        return 0;
}

/* ---- apply ---- */

struct listing {
        char **names;
        int64_t *mtimes;
        size_t n, cap;
};

static int list_one(const char *name, uint64_t size, int64_t mtime, void *ud) {
        struct listing *l = ud;
        if (l->n == l->cap) {
                size_t cap = l->cap ? 2 * l->cap : 64;
                char **nn = realloc(l->names, cap * sizeof *nn);
                if (!nn)
                        return -ENOMEM;
                l->names = nn;
                int64_t *mm = realloc(l->mtimes, cap * sizeof *mm);
                if (!mm)
                        return -ENOMEM;
                l->mtimes = mm;
                l->cap = cap;
        }
        l->names[l->n] = strdup(name);
        if (!l->names[l->n])
                return -ENOMEM;
        l->mtimes[l->n++] = mtime;
        return 0;
}

static void listing_free(struct listing *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->names[i]);
        free(l->names);
        free(l->mtimes);
}

/* Marks the blobs the kept snapshots use. */
static int mark_kept(struct backup_repo *r, const struct backup_prune_plan *plan, struct backup_index *used) {
        for (size_t i = 0; i < plan->n; i++) {
                struct backup_snapshot s;
                const char *what;
                char name[128];
                json_t *f, *c;
                size_t j, k;
                int rc;

                if (!plan->items[i].keep)
                        continue;
                backup_object_name("snapshots", &plan->items[i].id, name, sizeof name);
                rc = backup_manifest_read(r, name, &s, &what);
                if (rc < 0)
                        return rc; /* it checked a moment ago: stop rather than guess */
                json_array_foreach(json_object_get(s.body, "files"), j, f) {
                        json_array_foreach(json_object_get(f, "chunks"), k, c) {
                                struct backup_pack_entry e = {};
                                if (backup_id_parse(json_string_value(c), &e.id) < 0 ||
                                    (rc = backup_index_add_blob(used, &e)) < 0) {
                                        backup_snapshot_clear(&s);
                                        return rc < 0 ? rc : -EBADMSG;
                                }
                        }
                }
                backup_snapshot_clear(&s);
        }
        return 0;
}

static void index_damaged(const char *object, const char *what, void *ud) {
        unsigned *n = ud;
        (*n)++;
        log_error("%s: %s: pruning refused", object, what);
}

int backup_prune_apply(struct backup_repo *r, const struct backup_prune_plan *plan, int64_t now,
                       struct backup_prune_result *ret) {
        struct backup_prune_result res = {};
        _cleanup_(backup_index_freep) struct backup_index *used = NULL, *next = NULL;
        _cleanup_(backup_pack_writer_freep) struct backup_pack_writer *w = NULL;
        struct listing idx = {}, packs = {};
        struct lock_scan ls = { .now = now };
        _cleanup_buf_ struct buf blob = {}, plain = {}, file = {};
        bool *dead = NULL;
        size_t np;
        char name[160];
        int rc;

        rc = r->dest->ops->list(r->dest, "locks/", lock_one, &ls);
        if (rc < 0)
                return rc;
        if (ls.live)
                return -EBUSY;
        rc = r->dest->ops->put(r->dest, "locks/prune", "prune\n", 6);
        if (rc == -EEXIST)
                return -EALREADY;
        if (rc < 0)
                return rc;

        unsigned damaged = 0;
        if ((rc = backup_repo_load_index(r, index_damaged, &damaged)) < 0)
                goto out;
        if (damaged) {
                /* the packs a damaged index names would look unneeded: delete nothing */
                rc = -EBADMSG;
                goto out;
        }
        if ((rc = backup_index_new(&used)) < 0 || (rc = backup_index_new(&next)) < 0 ||
            (rc = mark_kept(r, plan, used)) < 0)
                goto out;
        if ((rc = r->dest->ops->list(r->dest, "index/", list_one, &idx)) < 0 ||
            (rc = r->dest->ops->list(r->dest, "packs/", list_one, &packs)) < 0)
                goto out;

        /* 1. the snapshots that go: from now on their blobs are unneeded */
        for (size_t i = 0; i < plan->n; i++)
                if (!plan->items[i].keep) {
                        backup_object_name("snapshots", &plan->items[i].id, name, sizeof name);
                        rc = r->dest->ops->del(r->dest, name);
                        if (rc < 0 && rc != -ENOENT)
                                goto out;
                        res.snapshots_deleted++;
                }

        /* 2. which packs are dead, which keyring packs must be repacked, what the new index holds */
        np = backup_index_pack_count(r->index);
        dead = calloc(np + 1, sizeof *dead);
        if (!dead) {
                rc = -ENOMEM;
                goto out;
        }
        buf_init(&blob, BACKUP_BLOB_MAX + BACKUP_SEAL_OVERHEAD + 1);
        buf_init(&plain, BACKUP_BLOB_MAX + 1);
        rc = backup_pack_writer_new(BACKUP_SERIES_KEYRING, &w);
        for (uint32_t p = 0; rc == 0 && p < np; p++) {
                const struct backup_index_pack *ip = backup_index_pack_at(r->index, p);
                size_t n_used = 0, n_all = 0;
                _cleanup_free_ struct backup_pack_entry *keep = NULL;

                for (size_t i = 0;; i++) {
                        const struct backup_index_entry *e = backup_index_entry_at(r->index, i);
                        if (!e)
                                break;
                        if (e->pack != p)
                                continue;
                        n_all++;
                        if (backup_index_find(used, &e->e.id))
                                n_used++;
                }
                if (n_used == n_all) {
                        /* wholly needed: goes into the new index as it is */
                        keep = calloc(n_all ? n_all : 1, sizeof *keep);
                        if (!keep) {
                                rc = -ENOMEM;
                                break;
                        }
                        size_t k = 0;
                        for (size_t i = 0;; i++) {
                                const struct backup_index_entry *e = backup_index_entry_at(r->index, i);
                                if (!e)
                                        break;
                                if (e->pack == p)
                                        keep[k++] = e->e;
                        }
                        rc = backup_index_add_pack(next, &ip->id, (enum backup_series) ip->series, true, keep, k);
                        continue;
                }
                dead[p] = true;
                if (n_used == 0 || ip->series != BACKUP_SERIES_KEYRING) {
                        if (n_used) {
                                /* a data pack partly needed: kept whole (documents are immutable, so this
                                 * is rare and holds only ciphertext of objects) */
                                dead[p] = false;
                                keep = calloc(n_all, sizeof *keep);
                                if (!keep) {
                                        rc = -ENOMEM;
                                        break;
                                }
                                size_t k = 0;
                                for (size_t i = 0;; i++) {
                                        const struct backup_index_entry *e = backup_index_entry_at(r->index, i);
                                        if (!e)
                                                break;
                                        if (e->pack == p)
                                                keep[k++] = e->e;
                                }
                                rc = backup_index_add_pack(next, &ip->id, (enum backup_series) ip->series, true, keep,
                                                           k);
                        }
                        continue;
                }
                /* a keyring pack partly needed: its needed blobs move to a new pack, the old one goes */
                backup_object_name("packs", &ip->id, name, sizeof name);
                for (size_t i = 0; rc == 0; i++) {
                        const struct backup_index_entry *e = backup_index_entry_at(r->index, i);
                        if (!e)
                                break;
                        if (e->pack != p || !backup_index_find(used, &e->e.id))
                                continue;
                        blob.len = 0;
                        rc = r->dest->ops->get(r->dest, name, e->e.offset, e->e.length, &blob);
                        if (rc == 0)
                                rc = backup_blob_open(r->keys, &e->e.id, e->e.flags, e->e.raw_len, blob.data, blob.len,
                                                      &plain);
                        if (rc == 0)
                                rc = backup_pack_writer_add(w, r->keys, &e->e.id, plain.data, plain.len);
                }
        }
        if (rc < 0)
                goto out;
        if (backup_pack_writer_count(w) > 0) {
                _cleanup_free_ struct backup_pack_entry *e = NULL;
                backup_id id;
                size_t n;
                rc = backup_pack_writer_finish(w, r->keys, &file, &id, &e, &n);
                if (rc == 0) {
                        backup_object_name("packs", &id, name, sizeof name);
                        rc = backup_dest_put_series(r->dest, name, BACKUP_SERIES_KEYRING, file.data, file.len);
                        if (rc == -EEXIST)
                                rc = 0;
                }
                if (rc == 0)
                        rc = backup_index_add_pack(next, &id, BACKUP_SERIES_KEYRING, true, e, n);
                if (rc < 0)
                        goto out;
                res.packs_written++;
        }

        /* 3. one index of what remains, then the old index files go */
        {
                _cleanup_buf_ struct buf ib = {};
                bool empty;
                backup_id iid;
                buf_init(&ib, BACKUP_OBJECT_MAX);
                rc = backup_index_serialize_fresh(next, r->keys, &ib, &empty);
                if (rc < 0)
                        goto out;
                backup_content_id(ib.data, ib.len, &iid);
                backup_object_name("index", &iid, name, sizeof name);
                if (!empty) {
                        rc = r->dest->ops->put(r->dest, name, ib.data, ib.len);
                        if (rc == -EEXIST)
                                rc = 0;
                        if (rc < 0)
                                goto out;
                }
                for (size_t i = 0; i < idx.n; i++)
                        if (strcmp(idx.names[i], name) != 0) {
                                rc = r->dest->ops->del(r->dest, idx.names[i]);
                                if (rc < 0 && rc != -ENOENT)
                                        goto out;
                                res.indexes_replaced++;
                        }
        }

        /* 4. packs nothing names any more: the dead ones, and old leftovers of interrupted runs */
        for (size_t i = 0; i < packs.n; i++) {
                const char *base = strrchr(packs.names[i], '/');
                backup_id id;
                uint64_t size = 0;
                int64_t mt;
                if (!base || backup_id_parse(base + 1, &id) < 0)
                        continue; /* foreign: not ours to delete */
                if (backup_index_has_pack(next, &id))
                        continue;
                if (!backup_index_has_pack(r->index, &id) && now - packs.mtimes[i] < BACKUP_LEFTOVER_PACK_SEC)
                        continue; /* perhaps a run writing right now */
                (void) r->dest->ops->stat(r->dest, packs.names[i], &size, &mt);
                rc = r->dest->ops->del(r->dest, packs.names[i]);
                if (rc < 0 && rc != -ENOENT)
                        goto out;
                res.packs_deleted++;
                res.bytes_freed += size;
        }
        rc = 0;
out:
        free(dead);
        listing_free(&idx);
        listing_free(&packs);
        (void) r->dest->ops->del(r->dest, "locks/prune");
        if (rc < 0)
                return rc;
        *ret = res;
        return 0;
}
