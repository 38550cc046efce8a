/* sqlite_lifecycle.c: the SQLite side of retention, legal holds and tombstones. These statements
 * are rare (a deletion, a hold, a sweep page), so they are prepared per call rather than cached. */
#include "store/sqlite_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DOC_COLUMNS_D                                                                                                \
        "d.id, d.org_id, d.name, d.class, d.size, d.sha256, d.created_at, d.created_by, d.name_bi, d.retain_until, " \
        "d.lock, d.document_date"
#define HOLD_COLUMNS "id, org_id, document_id, reason, case_ref, created_at, created_by, released_at"

static void finalizep(sqlite3_stmt **q) {
        sqlite3_finalize(*q);
}
#define _cleanup_final_ _cleanup_(finalizep)

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(db, sql, -1, ret, NULL);
        return rc == SQLITE_OK ? 0 : sqlite_errno(rc);
}

int sqlite_document_set_retention(struct store *st, const char *org_id, const char *id, const char *class_,
                                  int64_t retain_until, const char *lock) {
        struct sqlite_store *s = sqlite_store_of(st);
        if (!sqlite_id_is_valid(org_id) || !sqlite_id_is_valid(id) || !class_ || !*class_ ||
            strlen(class_) > STORE_CLASS_MAX || !lock)
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        int r;
        {
                _cleanup_final_ sqlite3_stmt *q = NULL;
                r = prepare(s->writer->db,
                            "UPDATE documents SET class = ?3, retain_until = ?4, lock = ?5 "
                            "WHERE id = ?1 AND org_id = ?2 AND retain_until <= ?4",
                            &q);
                if (r >= 0) {
                        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 2, org_id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 3, class_, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 4, retain_until);
                        sqlite3_bind_text(q, 5, lock, -1, SQLITE_STATIC);
                        r = sqlite_step_done(q);
                }
                if (r >= 0 && sqlite3_changes(s->writer->db) == 0) {
                        _cleanup_final_ sqlite3_stmt *e = NULL;
                        r = prepare(s->writer->db, "SELECT 1 FROM documents WHERE id = ?1 AND org_id = ?2", &e);
                        if (r >= 0) {
                                sqlite3_bind_text(e, 1, id, -1, SQLITE_STATIC);
                                sqlite3_bind_text(e, 2, org_id, -1, SQLITE_STATIC);
                                r = sqlite3_step(e) == SQLITE_ROW ? -ESTALE : -ENOENT;
                        }
                }
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

static int exec(sqlite3 *db, const char *sql) {
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : sqlite_errno(rc);
}

int sqlite_document_erase(struct store *st, const struct store_tombstone *t) {
        struct sqlite_store *s = sqlite_store_of(st);
        if (!t || !sqlite_id_is_valid(t->org_id) || !sqlite_id_is_valid(t->id) ||
            !sqlite_field_is_valid(t->class_, sizeof t->class_, false) ||
            !sqlite_field_is_valid(t->why, sizeof t->why, false))
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        int r = exec(s->writer->db, "BEGIN IMMEDIATE");
        if (r >= 0) {
                _cleanup_final_ sqlite3_stmt *sl = NULL, *d = NULL, *i = NULL;
                /* the seal goes with the content: a tombstone keeps none (named here rather than
                 * left to the foreign key's cascade) */
                r = prepare(s->writer->db,
                            "DELETE FROM seals WHERE document_id = ?1 AND document_id IN "
                            "(SELECT id FROM documents WHERE id = ?1 AND org_id = ?2)",
                            &sl);
                if (r >= 0) {
                        sqlite3_bind_text(sl, 1, t->id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(sl, 2, t->org_id, -1, SQLITE_STATIC);
                        r = sqlite_step_done(sl);
                }
                if (r >= 0)
                        r = prepare(s->writer->db, "DELETE FROM documents WHERE id = ?1 AND org_id = ?2", &d);
                if (r >= 0) {
                        sqlite3_bind_text(d, 1, t->id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(d, 2, t->org_id, -1, SQLITE_STATIC);
                        r = sqlite_step_done(d);
                        if (r >= 0 && sqlite3_changes(s->writer->db) == 0)
                                r = -ENOENT;
                }
                if (r >= 0)
                        r = prepare(s->writer->db,
                                    "INSERT INTO tombstones (id, org_id, class, sha256, created_at, retain_until, "
                                    "erased_at, why) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                                    &i);
                if (r >= 0) {
                        sqlite3_bind_text(i, 1, t->id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(i, 2, t->org_id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(i, 3, t->class_, -1, SQLITE_STATIC);
                        sqlite3_bind_blob(i, 4, t->sha256, sizeof t->sha256, SQLITE_STATIC);
                        sqlite3_bind_int64(i, 5, t->created_at);
                        sqlite3_bind_int64(i, 6, t->retain_until);
                        sqlite3_bind_int64(i, 7, t->erased_at);
                        sqlite3_bind_text(i, 8, t->why, -1, SQLITE_STATIC);
                        r = sqlite_step_done(i);
                }
                int k = exec(s->writer->db, r >= 0 ? "COMMIT" : "ROLLBACK");
                if (r >= 0)
                        r = k;
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

int sqlite_tombstone_get(struct store *st, const char *org_id, const char *id, struct store_tombstone *ret) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;
        if (!sqlite_id_is_valid(org_id) || !sqlite_id_is_valid(id))
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        {
                _cleanup_final_ sqlite3_stmt *q = NULL;
                r = prepare(c->db,
                            "SELECT id, org_id, class, sha256, created_at, retain_until, erased_at, why "
                            "FROM tombstones WHERE id = ?1 AND org_id = ?2",
                            &q);
                if (r >= 0) {
                        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 2, org_id, -1, SQLITE_STATIC);
                        int rc = sqlite3_step(q);
                        struct store_tombstone t = { 0 };
                        if (rc == SQLITE_DONE)
                                r = -ENOENT;
                        else if (rc != SQLITE_ROW)
                                r = sqlite_errno(rc);
                        else if ((r = sqlite_column_copy(q, 0, t.id, sizeof t.id)) >= 0 &&
                                 (r = sqlite_column_copy(q, 1, t.org_id, sizeof t.org_id)) >= 0 &&
                                 (r = sqlite_column_copy(q, 2, t.class_, sizeof t.class_)) >= 0 &&
                                 (r = sqlite_column_copy(q, 7, t.why, sizeof t.why)) >= 0) {
                                if (sqlite3_column_bytes(q, 3) != 32)
                                        r = -EBADMSG;
                                else {
                                        memcpy(t.sha256, sqlite3_column_blob(q, 3), 32);
                                        t.created_at = sqlite3_column_int64(q, 4);
                                        t.retain_until = sqlite3_column_int64(q, 5);
                                        t.erased_at = sqlite3_column_int64(q, 6);
                                        *ret = t;
                                }
                        }
                }
        }
        sqlite_reader_put(s, c);
        return r;
}

int sqlite_document_expired(struct store *st, int64_t now, int64_t after_until, const char *after_id, size_t limit,
                            struct store_document **ret, size_t *ret_n) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;
        if (limit < 1 || limit > 1000 || !after_id)
                return -EINVAL;
        struct store_document *rows = calloc(limit, sizeof *rows);
        if (!rows)
                return -ENOMEM;
        size_t n = 0;
        int r = sqlite_reader_get(s, &c);
        if (r < 0) {
                free(rows);
                return r;
        }
        {
                _cleanup_final_ sqlite3_stmt *q = NULL;
                r = prepare(c->db,
                            "SELECT " DOC_COLUMNS_D " FROM documents d WHERE d.retain_until <= ?1 "
                            "AND (d.retain_until, d.id) > (?2, ?3) AND NOT EXISTS (SELECT 1 FROM holds h "
                            "WHERE h.document_id = d.id AND h.released_at = 0) "
                            "ORDER BY d.retain_until, d.id LIMIT ?4",
                            &q);
                if (r >= 0) {
                        sqlite3_bind_int64(q, 1, now);
                        sqlite3_bind_int64(q, 2, after_until);
                        sqlite3_bind_text(q, 3, after_id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 4, (int64_t) limit);
                        int rc;
                        while (r >= 0 && (rc = sqlite3_step(q)) == SQLITE_ROW)
                                r = sqlite_document_from_row(q, &rows[n++]);
                        if (r >= 0 && rc != SQLITE_DONE)
                                r = sqlite_errno(rc);
                }
        }
        sqlite_reader_put(s, c);
        if (r < 0) {
                free(rows);
                return r;
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}

int sqlite_hold_insert(struct store *st, const struct store_hold *h) {
        struct sqlite_store *s = sqlite_store_of(st);
        if (!h || !sqlite_id_is_valid(h->id) || !sqlite_id_is_valid(h->org_id) || !sqlite_id_is_valid(h->document_id) ||
            h->reason_n == 0 || h->reason_n > sizeof h->reason || h->case_n == 0 || h->case_n > sizeof h->case_)
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        int r;
        {
                _cleanup_final_ sqlite3_stmt *q = NULL;
                r = prepare(s->writer->db,
                            "INSERT INTO holds (id, org_id, document_id, reason, case_ref, created_at, created_by) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                            &q);
                if (r >= 0) {
                        sqlite3_bind_text(q, 1, h->id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 2, h->org_id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 3, h->document_id, -1, SQLITE_STATIC);
                        sqlite3_bind_blob(q, 4, h->reason, (int) h->reason_n, SQLITE_STATIC);
                        sqlite3_bind_blob(q, 5, h->case_, (int) h->case_n, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 6, h->created_at);
                        sqlite3_bind_text(q, 7, h->created_by, -1, SQLITE_STATIC);
                        r = sqlite_step_done(q);
                }
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

int sqlite_hold_release(struct store *st, const char *org_id, const char *document_id, const char *id, int64_t now) {
        struct sqlite_store *s = sqlite_store_of(st);
        if (!sqlite_id_is_valid(org_id) || !sqlite_id_is_valid(document_id) || !sqlite_id_is_valid(id))
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        int r;
        {
                _cleanup_final_ sqlite3_stmt *q = NULL;
                r = prepare(s->writer->db,
                            "UPDATE holds SET released_at = ?4 WHERE id = ?1 AND org_id = ?2 AND document_id = ?3 "
                            "AND released_at = 0",
                            &q);
                if (r >= 0) {
                        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 2, org_id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 3, document_id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 4, now > 0 ? now : 1);
                        r = sqlite_step_done(q);
                        if (r >= 0 && sqlite3_changes(s->writer->db) == 0)
                                r = -ENOENT;
                }
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

static int blob_copy(sqlite3_stmt *q, int col, uint8_t *out, size_t max, size_t *ret_n) {
        int n = sqlite3_column_bytes(q, col);
        if (n <= 0 || (size_t) n > max)
                return -EBADMSG;
        memcpy(out, sqlite3_column_blob(q, col), (size_t) n);
        *ret_n = (size_t) n;
        return 0;
}

int sqlite_hold_list(struct store *st, const char *org_id, const char *document_id, size_t max, struct store_hold **ret,
                     size_t *ret_n) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;
        if (!sqlite_id_is_valid(org_id) || (document_id && !sqlite_id_is_valid(document_id)) || max < 1 || max > 10000)
                return -EINVAL;
        struct store_hold *rows = NULL;
        size_t n = 0, cap = 0;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        {
                _cleanup_final_ sqlite3_stmt *q = NULL;
                r = prepare(c->db,
                            "SELECT " HOLD_COLUMNS " FROM holds WHERE org_id = ?1 AND released_at = 0 "
                            "AND (?2 IS NULL OR document_id = ?2) ORDER BY created_at DESC, id DESC LIMIT ?3",
                            &q);
                if (r >= 0) {
                        sqlite3_bind_text(q, 1, org_id, -1, SQLITE_STATIC);
                        if (document_id)
                                sqlite3_bind_text(q, 2, document_id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 3, (int64_t) max);
                        int rc;
                        while (r >= 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
                                if (n == cap) {
                                        size_t nc = cap ? cap * 2 : 16;
                                        struct store_hold *nr = realloc(rows, nc * sizeof *rows);
                                        if (!nr) {
                                                r = -ENOMEM;
                                                break;
                                        }
                                        rows = nr;
                                        cap = nc;
                                }
                                struct store_hold *h = &rows[n];
                                memset(h, 0, sizeof *h);
                                if ((r = sqlite_column_copy(q, 0, h->id, sizeof h->id)) < 0 ||
                                    (r = sqlite_column_copy(q, 1, h->org_id, sizeof h->org_id)) < 0 ||
                                    (r = sqlite_column_copy(q, 2, h->document_id, sizeof h->document_id)) < 0 ||
                                    (r = blob_copy(q, 3, h->reason, sizeof h->reason, &h->reason_n)) < 0 ||
                                    (r = blob_copy(q, 4, h->case_, sizeof h->case_, &h->case_n)) < 0 ||
                                    (r = sqlite_column_copy(q, 6, h->created_by, sizeof h->created_by)) < 0)
                                        break;
                                h->created_at = sqlite3_column_int64(q, 5);
                                h->released_at = sqlite3_column_int64(q, 7);
                                n++;
                        }
                        if (r >= 0 && rc != SQLITE_DONE)
                                r = sqlite_errno(rc);
                }
        }
        sqlite_reader_put(s, c);
        if (r < 0) {
                free(rows);
                return r;
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}
