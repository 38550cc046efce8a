/* engine.c: backup run, snapshot listing, file restore and verification for one repository. */
#include "backup/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "fileio.h"
#include "hex.h"
#include "log.h"

#define DATE_SKEW_SEC 3600 /* a snapshot's date vs its object's time at the destination */
#define FUTURE_SKEW_SEC 600

/* ---- run ---- */

struct run_ctx {
        struct backup_repo *r;
        struct backup_pack_writer *w[3];
        struct backup_index *pending;
        struct backup_run_result *res;
        bool *pack_present; /* by index position: the pack is at the destination */
        size_t n_packs;
        json_t *previous; /* name -> file entry of the latest data snapshot here, or NULL */
};

static bool stored(const struct run_ctx *c, const backup_id *id);

struct newest {
        char name[4][128]; /* the four newest snapshots by the destination's time */
        int64_t mtime[4];
};

static int newest_one(const char *name, uint64_t size, int64_t mtime, void *ud) {
        struct newest *n = ud;
        if (strlen(name) >= sizeof n->name[0])
                return 0;
        for (unsigned i = 0; i < 4; i++)
                if (!n->name[i][0] || mtime > n->mtime[i]) {
                        for (unsigned j = 3; j > i; j--) {
                                memcpy(n->name[j], n->name[j - 1], sizeof n->name[j]);
                                n->mtime[j] = n->mtime[j - 1];
                        }
                        snprintf(n->name[i], sizeof n->name[i], "%s", name);
                        n->mtime[i] = mtime;
                        break;
                }
        return 0;
}

/* The files of the newest data snapshot stored here (among the four newest snapshots), when it
 * checks: objects never change once acknowledged, so one of the same name and size is not read
 * again. */
static json_t *previous_files(struct backup_repo *r) {
        struct newest n = {};
        struct backup_snapshot s = {}, best = {};
        const char *what;
        json_t *map, *f;
        size_t i;

        if (r->dest->ops->list(r->dest, "snapshots/", newest_one, &n) < 0)
                return NULL;
        for (unsigned k = 0; k < 4 && n.name[k][0]; k++) {
                if (backup_manifest_read(r, n.name[k], &s, &what) < 0)
                        continue;
                if (s.series == BACKUP_SERIES_DATA && !backup_snapshot_date_problem(&s, (int64_t) time(NULL)) &&
                    (!best.body || s.time > best.time || (s.time == best.time && s.audit_size > best.audit_size))) {
                        backup_snapshot_clear(&best);
                        best = s;
                } else
                        backup_snapshot_clear(&s);
        }
        if (!best.body)
                return NULL;
        map = json_object();
        json_array_foreach(json_object_get(best.body, "files"), i, f) {
                const char *name = json_string_value(json_object_get(f, "name"));
                if (map && name && strncmp(name, "objects/", 8) == 0)
                        json_object_set(map, name, f);
        }
        backup_snapshot_clear(&best);
        return map;
}

/* The previous entry of an object, when it is the same size and every chunk is still stored. */
static json_t *reusable(const struct run_ctx *c, const struct backup_stage_file *f) {
        json_t *prev = c->previous ? json_object_get(c->previous, f->name) : NULL, *ch;
        struct stat st;
        size_t i;

        if (!prev || stat(f->src, &st) < 0 ||
            json_integer_value(json_object_get(prev, "size")) != (json_int_t) st.st_size)
                return NULL;
        json_array_foreach(json_object_get(prev, "chunks"), i, ch) {
                backup_id id;
                if (backup_id_parse(json_string_value(ch), &id) < 0 || !stored(c, &id))
                        return NULL;
        }
        return prev;
}

/* Whether a blob the index knows is really stored: its pack must still be at the destination
 * (a pack deleted or lost there is written again rather than trusted). */
static bool stored(const struct run_ctx *c, const backup_id *id) {
        const struct backup_index_entry *e[2] = { backup_index_find(c->r->index, id),
                                                  backup_index_find_alt(c->r->index, id) };
        for (unsigned i = 0; i < 2; i++)
                if (e[i] && (e[i]->pack >= c->n_packs || c->pack_present[e[i]->pack]))
                        return true; /* present, or a pack of this run */
        return false;
}

struct pack_names {
        backup_id *v;
        size_t n, cap;
};

static int pack_name_one(const char *name, uint64_t size, int64_t mtime, void *ud) {
        struct pack_names *p = ud;
        const char *base = strrchr(name, '/');
        backup_id id;

        if (!base || backup_id_parse(base + 1, &id) < 0)
                return 0;
        if (p->n == p->cap) {
                size_t cap = p->cap ? 2 * p->cap : 64;
                backup_id *v = realloc(p->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                p->v = v;
                p->cap = cap;
        }
        p->v[p->n++] = id;
        return 0;
}

static int id_cmp(const void *a, const void *b) {
        return memcmp(a, b, BACKUP_ID_SIZE);
}

static int find_present_packs(struct run_ctx *c) {
        struct pack_names pn = {};
        int rc = c->r->dest->ops->list(c->r->dest, "packs/", pack_name_one, &pn);

        if (rc < 0) {
                free(pn.v);
                return rc;
        }
        if (pn.n)
                qsort(pn.v, pn.n, sizeof *pn.v, id_cmp);
        c->n_packs = backup_index_pack_count(c->r->index);
        c->pack_present = calloc(c->n_packs + 1, sizeof *c->pack_present);
        if (!c->pack_present) {
                free(pn.v);
                return -ENOMEM;
        }
        for (size_t i = 0; i < c->n_packs; i++)
                c->pack_present[i] = pn.n && bsearch(backup_index_pack_at(c->r->index, (uint32_t) i)->id.b, pn.v, pn.n,
                                                     sizeof *pn.v, id_cmp) != NULL;
        free(pn.v);
        return 0;
}

static int flush_pack(struct run_ctx *c, enum backup_series series) {
        _cleanup_buf_ struct buf file = {};
        _cleanup_free_ struct backup_pack_entry *e = NULL;
        backup_id id;
        size_t n;
        char name[128];
        int rc;

        if (backup_pack_writer_count(c->w[series]) == 0)
                return 0;
        rc = backup_pack_writer_finish(c->w[series], c->r->keys, &file, &id, &e, &n);
        if (rc < 0)
                return rc;
        backup_object_name("packs", &id, name, sizeof name);
        rc = backup_dest_put_series(c->r->dest, name, (int) series, file.data, file.len);
        if (rc == -EEXIST)
                rc = 0; /* content addressed: the same bytes are there already */
        if (rc < 0)
                return rc;
        c->res->added += file.len;
        c->res->packs++;
        return backup_index_add_pack(c->r->index, &id, series, true, e, n);
}

static int backup_one_file(struct run_ctx *c, enum backup_series series, const struct backup_stage_file *f,
                           uint8_t *buf, size_t buf_size, backup_progress_fn progress, void *pud, uint64_t *done,
                           json_t *files) {
        const struct chunker *ch = &c->r->chunker;
        json_t *prev = reusable(c, f);
        if (prev) {
                json_int_t psize = json_integer_value(json_object_get(prev, "size"));
                if (json_array_append(files, prev) < 0)
                        return -ENOMEM;
                c->res->files++;
                c->res->bytes += (uint64_t) psize;
                *done += (uint64_t) psize;
                if (progress)
                        progress(*done, pud);
                return 0;
        }
        _cleanup_close_ int fd = open(f->src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        EVP_MD_CTX *md = NULL;
        json_t *chunks = json_array(), *entry;
        size_t have = 0;
        uint64_t size = 0;
        bool eof = false;
        uint8_t digest[32];
        char dhex[65];
        int rc = 0;

        if (fd < 0) {
                json_decref(chunks);
                return log_error_errno(negative_errno(), "cannot open %s: %m", f->src);
        }
        md = EVP_MD_CTX_new();
        if (!md || !chunks || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(md);
                json_decref(chunks);
                return -ENOMEM;
        }
        while (rc == 0 && (!eof || have > 0)) {
                while (!eof && have < buf_size) {
                        ssize_t n = read_full(fd, buf + have, buf_size - have);
                        if (n < 0) {
                                rc = (int) n;
                                break;
                        }
                        if ((size_t) n < buf_size - have)
                                eof = true;
                        have += (size_t) n;
                }
                if (rc < 0 || have == 0)
                        break;
                size_t cut = chunker_cut(ch, buf, have);
                backup_id id;
                char hex[BACKUP_ID_HEX + 1];

                backup_blob_id(c->r->keys, buf, cut, &id);
                if (!stored(c, &id) && !backup_index_find(c->pending, &id)) {
                        struct backup_pack_entry pe = { .id = id };
                        rc = backup_pack_writer_add(c->w[series], c->r->keys, &id, buf, cut);
                        if (rc == 0)
                                rc = backup_index_add_blob(c->pending, &pe);
                        if (rc == 0)
                                c->res->blobs_new++;
                        if (rc == 0 && backup_pack_writer_bytes(c->w[series]) >= BACKUP_PACK_TARGET)
                                rc = flush_pack(c, series);
                }
                if (rc < 0)
                        break;
                backup_id_hex(&id, hex);
                if (json_array_append_new(chunks, json_string(hex)) < 0 || EVP_DigestUpdate(md, buf, cut) != 1) {
                        rc = -ENOMEM;
                        break;
                }
                size += cut;
                *done += cut;
                if (progress)
                        progress(*done, pud);
                memmove(buf, buf + cut, have - cut);
                have -= cut;
        }
        if (rc == 0 && EVP_DigestFinal_ex(md, digest, NULL) != 1)
                rc = -EIO;
        EVP_MD_CTX_free(md);
        if (rc < 0) {
                json_decref(chunks);
                return rc;
        }
        hex_encode(digest, sizeof digest, dhex);
        entry = json_pack("{s:s,s:I,s:i,s:s,s:o}", "name", f->name, "size", (json_int_t) size, "mode", (int) f->mode,
                          "sha256", dhex, "chunks", chunks);
        if (!entry || json_array_append_new(files, entry) < 0)
                return -ENOMEM;
        c->res->files++;
        c->res->bytes += size;
        return 0;
}

int backup_run(struct backup_repo *r, const struct backup_stage *stage, struct signer *s, unsigned series,
               const uint8_t run_id[16], backup_progress_fn progress, void *pud, struct backup_run_result *ret) {
        struct backup_run_result res = {};
        struct run_ctx c = { .r = r, .res = &res };
        json_t *files[3] = { NULL, json_array(), json_array() };
        json_t *body = NULL;
        _cleanup_buf_ struct buf idx = {};
        uint8_t *buf = NULL;
        size_t buf_size = 2 * (size_t) r->chunker.p.max_size;
        uint64_t done = 0;
        char runhex[33];
        bool empty;
        int rc;

        hex_encode(run_id, 16, runhex);
        buf = malloc(buf_size);
        rc = buf && files[1] && files[2] ? 0 : -ENOMEM;
        if (rc == 0)
                rc = backup_index_new(&c.pending);
        if (rc == 0)
                rc = find_present_packs(&c);
        if (rc == 0 && (series & BACKUP_RUN_DATA))
                c.previous = previous_files(r);
        for (unsigned k = 1; rc == 0 && k < 3; k++)
                rc = backup_pack_writer_new((enum backup_series) k, &c.w[k]);
        /* keyring blobs go to packs of their own: dropping a keyring snapshot deletes whole packs */
        for (unsigned k = 1; rc == 0 && k < 3; k++)
                for (size_t i = 0; rc == 0 && (series & (1u << k)) && i < stage->n_files[k]; i++)
                        rc = backup_one_file(&c, (enum backup_series) k, &stage->files[k][i], buf, buf_size, progress,
                                             pud, &done, files[k]);
        for (unsigned k = 1; rc == 0 && k < 3; k++)
                rc = flush_pack(&c, (enum backup_series) k);
        /* packs first, then the index naming them, then the snapshots: a run cut short leaves
         * only packs no index names yet, which the next run writes again or finds */
        if (rc == 0) {
                buf_init(&idx, BACKUP_OBJECT_MAX);
                rc = backup_index_serialize_fresh(r->index, r->keys, &idx, &empty);
                if (rc == 0 && !empty) {
                        backup_id iid;
                        char name[128];
                        backup_content_id(idx.data, idx.len, &iid);
                        backup_object_name("index", &iid, name, sizeof name);
                        rc = r->dest->ops->put(r->dest, name, idx.data, idx.len);
                        if (rc == 0) {
                                res.added += idx.len;
                                backup_index_settle(r->index);
                        }
                }
        }
        if (rc == 0 && (series & BACKUP_RUN_DATA)) {
                body = json_pack("{s:s,s:s,s:s,s:O}", "run", runhex, "vault_id", r->vault_id, "checkpoint",
                                 stage->checkpoint ? stage->checkpoint : "", "files", files[1]);
                rc = body ? backup_manifest_write(r, s, BACKUP_SERIES_DATA, stage->audit_size, stage->audit_root, body,
                                                  &res.snapshot)
                          : -ENOMEM;
                json_decref(body);
        }
        if (rc == 0 && (series & BACKUP_RUN_KEYRING)) {
                char sid[BACKUP_ID_HEX + 1] = "";
                if (series & BACKUP_RUN_DATA)
                        backup_id_hex(&res.snapshot, sid);
                body = json_pack("{s:s,s:s,s:s,s:O}", "run", runhex, "vault_id", r->vault_id, "data_snapshot", sid,
                                 "files", files[2]);
                /* the keyring was copied after this audit cut: snapshots of one second are ordered by
                 * it, so that restore and prune take the keyring holding the newest keys */
                rc = body ? backup_manifest_write(r, s, BACKUP_SERIES_KEYRING, stage->audit_size, stage->audit_root,
                                                  body, &res.keyring_snapshot)
                          : -ENOMEM;
                json_decref(body);
        }
        for (unsigned k = 1; k < 3; k++) {
                backup_pack_writer_free(c.w[k]);
                json_decref(files[k]);
        }
        backup_index_free(c.pending);
        json_decref(c.previous);
        free(c.pack_present);
        free(buf);
        if (rc < 0)
                return rc;
        *ret = res;
        return 0;
}

/* ---- snapshots ---- */

struct snap_list {
        struct backup_repo *r;
        backup_report_fn report;
        void *ud;
        struct backup_snapshot *v;
        size_t n, cap;
        int error;
};

static int snap_one(const char *name, uint64_t size, int64_t mtime, void *ud) {
        struct snap_list *l = ud;
        struct backup_snapshot s;
        const char *what = NULL;
        int rc = backup_manifest_read(l->r, name, &s, &what);

        if (rc == -EBADMSG || rc == -EFBIG) {
                if (l->report)
                        l->report(name, what ? what : "damaged", l->ud);
                return 0;
        }
        if (rc < 0)
                return rc;
        if (l->n == l->cap) {
                size_t cap = l->cap ? 2 * l->cap : 16;
                struct backup_snapshot *v = realloc(l->v, cap * sizeof *v);
                if (!v) {
                        backup_snapshot_clear(&s);
                        return -ENOMEM;
                }
                l->v = v;
                l->cap = cap;
        }
        l->v[l->n++] = s;
        return 0;
}

static int snap_cmp(const void *a, const void *b) {
        const struct backup_snapshot *x = a, *y = b;
        if (x->time != y->time)
                return x->time < y->time ? -1 : 1;
        /* in one second: the one covering more of the audit log is the later one */
        if (x->audit_size != y->audit_size)
                return x->audit_size < y->audit_size ? -1 : 1;
        return memcmp(x->id.b, y->id.b, BACKUP_ID_SIZE);
}

int backup_snapshots(struct backup_repo *r, backup_report_fn report, void *ud, struct backup_snapshot **ret,
                     size_t *ret_n) {
        struct snap_list l = { .r = r, .report = report, .ud = ud };
        int rc = r->dest->ops->list(r->dest, "snapshots/", snap_one, &l);

        if (rc < 0) {
                backup_snapshots_free(l.v, l.n);
                return rc;
        }
        if (l.n)
                qsort(l.v, l.n, sizeof *l.v, snap_cmp);
        *ret = l.v;
        *ret_n = l.n;
        return 0;
}

void backup_snapshots_free(struct backup_snapshot *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                backup_snapshot_clear(&s[i]);
        free(s);
}

const char *backup_snapshot_date_problem(const struct backup_snapshot *s, int64_t now) {
        if (s->time > now + FUTURE_SKEW_SEC)
                return "dated in the future";
        if (s->time > s->stored_time + FUTURE_SKEW_SEC || s->time < s->stored_time - DATE_SKEW_SEC)
                return "its date disagrees with the destination's time of the object";
        return NULL;
}

/* ---- restore ---- */

int backup_restore_file(struct backup_repo *r, json_t *file, int fd, const char **ret_what) {
        _cleanup_buf_ struct buf sealed = {}, plain = {};
        json_t *chunks = json_object_get(file, "chunks"), *c;
        const char *want_hex = json_string_value(json_object_get(file, "sha256"));
        json_int_t want_size = json_integer_value(json_object_get(file, "size"));
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t digest[32];
        char dhex[65];
        uint64_t size = 0;
        size_t i;
        int rc = 0;

        *ret_what = "damaged snapshot entry";
        if (!md)
                return -ENOMEM;
        if (!json_is_array(chunks) || !want_hex || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(md);
                return -EBADMSG;
        }
        buf_init(&sealed, BACKUP_BLOB_MAX + BACKUP_SEAL_OVERHEAD + 1);
        buf_init(&plain, BACKUP_BLOB_MAX + 1);
        json_array_foreach(chunks, i, c) {
                backup_id id;
                const struct backup_index_entry *e;
                const struct backup_index_pack *p;
                char name[128];

                if (backup_id_parse(json_string_value(c), &id) < 0) {
                        rc = -EBADMSG;
                        break;
                }
                rc = -ENOENT;
                *ret_what = "a chunk is in no pack the index names";
                for (unsigned place = 0; place < 2 && rc < 0; place++) {
                        e = place ? backup_index_find_alt(r->index, &id) : backup_index_find(r->index, &id);
                        p = e ? backup_index_pack_at(r->index, e->pack) : NULL;
                        if (!p)
                                continue;
                        backup_object_name("packs", &p->id, name, sizeof name);
                        sealed.len = 0;
                        int q = r->dest->ops->get(r->dest, name, e->e.offset, e->e.length, &sealed);
                        if (q == 0)
                                q = backup_blob_open(r->keys, &id, e->e.flags, e->e.raw_len, sealed.data, sealed.len,
                                                     &plain);
                        if (q == -ENOENT)
                                *ret_what = "a pack it needs is missing";
                        else if (q == -EBADMSG)
                                *ret_what = "a chunk is damaged in its pack";
                        else if (q < 0) {
                                *ret_what = "cannot read the destination";
                                rc = q;
                                break;
                        }
                        rc = q;
                }
                if (rc < 0)
                        break;
                rc = write_all(fd, plain.data, plain.len);
                if (rc < 0) {
                        *ret_what = "cannot write";
                        break;
                }
                if (EVP_DigestUpdate(md, plain.data, plain.len) != 1) {
                        rc = -ENOMEM;
                        break;
                }
                size += plain.len;
        }
        if (rc == 0 && EVP_DigestFinal_ex(md, digest, NULL) != 1)
                rc = -EIO;
        EVP_MD_CTX_free(md);
        if (rc < 0)
                return rc;
        hex_encode(digest, sizeof digest, dhex);
        if ((json_int_t) size != want_size || strcmp(dhex, want_hex) != 0) {
                *ret_what = "restored content does not match the snapshot's hash";
                return -EBADMSG;
        }
        *ret_what = NULL;
        return 0;
}

/* ---- verify ---- */

struct present {
        backup_id *v;
        size_t n, cap;
        struct backup_repo *r;
        backup_report_fn report;
        void *ud;
        struct backup_verify_result *res;
};

static void note_damage(void *ud, const char *object, const char *what) {
        struct present *p = ud;
        p->res->problems++;
        p->report(object, what, p->ud);
}

static void index_damage(const char *object, const char *what, void *ud) {
        note_damage(ud, object, what);
}

static int present_one(const char *name, uint64_t size, int64_t mtime, void *ud) {
        struct present *p = ud;
        const char *base = strrchr(name, '/');
        backup_id id;

        if (!base || backup_id_parse(base + 1, &id) < 0 || strncmp(name + 6, base + 1, 2) != 0) {
                note_damage(p, name, "not a pack name (foreign file)");
                return 0;
        }
        if (p->n == p->cap) {
                size_t cap = p->cap ? 2 * p->cap : 64;
                backup_id *v = realloc(p->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                p->v = v;
                p->cap = cap;
        }
        p->v[p->n++] = id;
        return 0;
}

/* v sorted (id_cmp) */
static bool in_set(const backup_id *v, size_t n, const backup_id *id) {
        return n > 0 && bsearch(id->b, v, n, sizeof *v, id_cmp) != NULL;
}

static int check_pack(struct backup_repo *r, const backup_id *id, const char *name, const char **ret_what) {
        _cleanup_buf_ struct buf b = {}, plain = {};
        _cleanup_free_ struct backup_pack_entry *e = NULL;
        enum backup_series series;
        size_t n;
        int rc;

        buf_init(&b, BACKUP_OBJECT_MAX);
        rc = r->dest->ops->get(r->dest, name, 0, BACKUP_DEST_WHOLE, &b);
        if (rc < 0) {
                *ret_what = rc == -EFBIG ? "too large to be a pack" : "cannot be read";
                return rc == -EFBIG ? -EBADMSG : rc;
        }
        rc = backup_pack_parse(r->keys, id, b.data, b.len, &series, &e, &n);
        if (rc < 0) {
                *ret_what = "damaged: its content does not match its name or its header does not authenticate";
                return rc;
        }
        buf_init(&plain, BACKUP_BLOB_MAX + 1);
        for (size_t i = 0; i < n; i++) {
                rc = backup_blob_open(r->keys, &e[i].id, e[i].flags, e[i].raw_len, b.data + e[i].offset, e[i].length,
                                      &plain);
                if (rc < 0) {
                        *ret_what = "damaged: a blob does not authenticate";
                        return rc;
                }
                const struct backup_index_entry *x = backup_index_find(r->index, &e[i].id);
                const struct backup_index_pack *xp = x ? backup_index_pack_at(r->index, x->pack) : NULL;
                if (xp && memcmp(xp->id.b, id->b, BACKUP_ID_SIZE) == 0 &&
                    (x->e.offset != e[i].offset || x->e.length != e[i].length)) {
                        *ret_what = "the index disagrees with the pack's header";
                        return -EBADMSG;
                }
        }
        return 0;
}

int backup_verify(struct backup_repo *r, bool read_data, backup_report_fn report, void *ud,
                  struct backup_verify_result *ret) {
        struct backup_verify_result res = {};
        struct present p = { .r = r, .report = report, .ud = ud, .res = &res };
        _cleanup_free_ backup_id *bad = NULL;
        size_t n_bad = 0;
        struct backup_snapshot *snaps = NULL;
        size_t n_snaps = 0;
        int64_t now = (int64_t) time(NULL);
        char name[128];
        int rc;

        rc = backup_repo_load_index(r, index_damage, &p);
        if (rc < 0)
                return rc;
        rc = r->dest->ops->list(r->dest, "packs/", present_one, &p);
        if (rc < 0)
                goto out;
        res.packs = (unsigned) p.n;
        if (p.n)
                qsort(p.v, p.n, sizeof *p.v, id_cmp);
        bad = calloc(p.n + backup_index_pack_count(r->index) + 1, sizeof *bad);
        if (!bad) {
                rc = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < backup_index_pack_count(r->index); i++) {
                const struct backup_index_pack *ip = backup_index_pack_at(r->index, (uint32_t) i);
                if (!in_set(p.v, p.n, &ip->id)) {
                        backup_object_name("packs", &ip->id, name, sizeof name);
                        note_damage(&p, name, "missing (named by the index)");
                        bad[n_bad++] = ip->id;
                }
        }
        for (size_t i = 0; i < p.n; i++) {
                backup_object_name("packs", &p.v[i], name, sizeof name);
                if (!backup_index_has_pack(r->index, &p.v[i])) {
                        res.notes++;
                        report(name, "note: named by no index (left by an interrupted run; harmless)", ud);
                        continue;
                }
                if (read_data) {
                        const char *what = NULL;
                        rc = check_pack(r, &p.v[i], name, &what);
                        if (rc == -EBADMSG || rc == -ENOENT) {
                                note_damage(&p, name, what);
                                bad[n_bad++] = p.v[i];
                        } else if (rc < 0)
                                goto out;
                }
        }
        if (n_bad)
                qsort(bad, n_bad, sizeof *bad, id_cmp);
        rc = backup_snapshots(r, index_damage, &p, &snaps, &n_snaps);
        if (rc < 0)
                goto out;
        res.snapshots = (unsigned) n_snaps;
        for (size_t i = 0; i < n_snaps; i++) {
                json_t *files = json_object_get(snaps[i].body, "files"), *f, *c;
                size_t j, k;
                unsigned missing = 0;
                const char *dp = backup_snapshot_date_problem(&snaps[i], now);

                backup_object_name("snapshots", &snaps[i].id, name, sizeof name);
                if (dp)
                        note_damage(&p, name, dp);
                json_array_foreach(files, j, f) {
                        json_array_foreach(json_object_get(f, "chunks"), k, c) {
                                backup_id id;
                                bool ok = false;
                                if (backup_id_parse(json_string_value(c), &id) == 0)
                                        for (unsigned place = 0; place < 2 && !ok; place++) {
                                                const struct backup_index_entry *e =
                                                        place ? backup_index_find_alt(r->index, &id)
                                                              : backup_index_find(r->index, &id);
                                                const struct backup_index_pack *ip =
                                                        e ? backup_index_pack_at(r->index, e->pack) : NULL;
                                                ok = ip && !in_set(bad, n_bad, &ip->id);
                                        }
                                missing += !ok;
                        }
                }
                if (missing) {
                        char what[160];
                        snprintf(what, sizeof what, "incomplete: %u chunks are in missing or damaged packs", missing);
                        note_damage(&p, name, what);
                }
        }
        rc = 0;
out:
        backup_snapshots_free(snaps, n_snaps);
        free(p.v);
        if (rc < 0)
                return rc;
        res.indexes = 0;
        *ret = res;
        return 0;
}
