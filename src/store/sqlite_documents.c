/* sqlite_documents.c: the document rows of the SQLite store.
 *
 * Inserts go through a group commit: each caller queues its row; the first waiter with no leader
 * running becomes the leader, takes the whole queue, inserts it in one transaction (one fsync of
 * the WAL) and wakes every caller with its own result. A row may bring the audit reference of its
 * creation entry, inserted in the same transaction (no commit of its own). Listing is newest first with keyset
 * pagination: the opaque cursor is base64url(version, created_at, id) of the last row given. */
#include "store/sqlite_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define LIST_LIMIT_MAX 1000
#define CURSOR_VERSION 1
#define CURSOR_BIN_LEN (1 + 8 + 16) /* version, created_at (big endian), id */
#define CURSOR_TEXT_MAX 64

static bool document_is_valid(const struct store_document *d) {
        return d && sqlite_id_is_valid(d->id) && sqlite_id_is_valid(d->org_id) && d->name_sealed_len > 0 &&
               d->name_sealed_len <= sizeof d->name_sealed &&
               sqlite_field_is_valid(d->class_, sizeof d->class_, false) &&
               sqlite_field_is_valid(d->created_by, sizeof d->created_by, true) && d->size <= (uint64_t) INT64_MAX;
}

static int insert_row(struct sqlite_conn *c, const struct store_document *d) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_DOC_INSERT, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, d->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, d->org_id, -1, SQLITE_STATIC);
        sqlite3_bind_blob(q, 3, d->name_sealed, (int) d->name_sealed_len, SQLITE_STATIC);
        sqlite3_bind_blob(q, 9, d->name_index, sizeof d->name_index, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, d->class_, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, (int64_t) d->size);
        sqlite3_bind_blob(q, 6, d->sha256, sizeof d->sha256, SQLITE_STATIC);
        sqlite3_bind_int64(q, 7, d->created_at);
        sqlite3_bind_text(q, 8, d->created_by, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 10, d->retain_until);
        sqlite3_bind_text(q, 11, d->lock[0] ? d->lock : "compliance", -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 12, d->document_date, -1, SQLITE_STATIC);
        return sqlite_step_done(q);
}

static int insert_ref(struct sqlite_conn *c, const char *id, uint64_t index) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_AUDIT_REF_ADD, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (int64_t) index);
        return sqlite_step_done(q);
}

static int run_simple(struct sqlite_conn *c, enum sqlite_stmt_id id) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, id, &q);
        if (r < 0)
                return r;
        return sqlite_step_done(q);
}

static void rollback(struct sqlite_conn *c) {
        if (!sqlite3_get_autocommit(c->db))
                (void) run_simple(c, STMT_ROLLBACK);
}

/* One transaction for all n rows. A constraint failure (duplicate id, unknown organisation) only
 * undoes its own statement, so the other rows stay in. Anything else (disk full, I/O error) may
 * have undone the whole transaction: then every row is retried alone and gets its own result.
 * Must be called with write_lock held. Returns how many transactions committed. */
static unsigned insert_batch_locked(struct sqlite_store *s, const struct store_document *const *docs,
                                    const uint64_t *refs, int *results, size_t n) {
        struct sqlite_conn *c = s->writer;
        int r = run_simple(c, STMT_BEGIN);
        bool fallback = false;

        if (r < 0)
                fallback = true;
        for (size_t i = 0; i < n && !fallback; i++) {
                r = insert_row(c, docs[i]);
                if (r >= 0 && docs[i]->seal) {
                        r = sqlite_seal_insert(c, docs[i]->id, docs[i]->seal);
                        if (r >= 0 && docs[i]->seal->audit_index != SQLITE_NO_REF)
                                r = insert_ref(c, docs[i]->id, docs[i]->seal->audit_index);
                        if (r < 0) {
                                fallback = true; /* the row is in without its seal: redo alone */
                                break;
                        }
                }
                if (r >= 0 && refs && refs[i] != SQLITE_NO_REF) {
                        r = insert_ref(c, docs[i]->id, refs[i]);
                        if (r < 0) {
                                fallback = true; /* the row is in without its reference: redo alone */
                                break;
                        }
                }
                if (r == -EEXIST || r == -ENOENT)
                        results[i] = r;
                else if (r < 0)
                        fallback = true;
                else
                        results[i] = 0;
        }
        if (!fallback) {
                r = run_simple(c, STMT_COMMIT);
                if (r >= 0)
                        return 1;
                fallback = true;
        }
        rollback(c);
        if (n == 1) {
                results[0] = r;
                return 0;
        }
        unsigned commits = 0;
        for (size_t i = 0; i < n; i++)
                commits += insert_batch_locked(s, docs + i, refs ? refs + i : NULL, results + i, 1);
        return commits;
}

int sqlite_store_insert_batch(struct store *st, const struct store_document *const *docs, int *results, size_t n) {
        struct sqlite_store *s = sqlite_store_of(st);
        for (size_t i = 0; i < n; i++)
                if (!document_is_valid(docs[i]))
                        return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        unsigned commits = insert_batch_locked(s, docs, NULL, results, n);
        pthread_mutex_unlock(&s->write_lock);
        pthread_mutex_lock(&s->queue_lock);
        s->commits += commits;
        s->committed_rows += n;
        pthread_mutex_unlock(&s->queue_lock);
        return 0;
}

void sqlite_store_commit_stats(struct store *st, uint64_t *ret_commits, uint64_t *ret_rows) {
        struct sqlite_store *s = sqlite_store_of(st);
        pthread_mutex_lock(&s->queue_lock);
        *ret_commits = s->commits;
        *ret_rows = s->committed_rows;
        pthread_mutex_unlock(&s->queue_lock);
}

void sqlite_store_hold_group(struct store *st, unsigned n) {
        struct sqlite_store *s = sqlite_store_of(st);
        pthread_mutex_lock(&s->queue_lock);
        s->hold = n;
        pthread_mutex_unlock(&s->queue_lock);
}

/* Runs a batch taken from the queue (called by the leader without queue_lock). */
static unsigned lead_batch(struct sqlite_store *s, struct insert_req *batch, size_t n) {
        _cleanup_free_ const struct store_document **docs = calloc(n, sizeof *docs);
        _cleanup_free_ int *results = calloc(n, sizeof *results);
        _cleanup_free_ uint64_t *refs = calloc(n, sizeof *refs);
        struct insert_req *q;
        size_t i = 0;

        if (!docs || !results || !refs) {
                for (q = batch; q; q = q->next)
                        q->result = -ENOMEM;
                return 0;
        }
        for (q = batch; q; q = q->next, i++) {
                docs[i] = q->doc;
                refs[i] = q->ref_index;
        }
        pthread_mutex_lock(&s->write_lock);
        unsigned commits = insert_batch_locked(s, docs, refs, results, n);
        pthread_mutex_unlock(&s->write_lock);
        i = 0;
        for (q = batch; q; q = q->next)
                q->result = results[i++];
        return commits;
}

int sqlite_document_insert(struct store *st, const struct store_document *d) {
        return sqlite_document_insert_ref(st, d, SQLITE_NO_REF);
}

int sqlite_document_insert_ref(struct store *st, const struct store_document *d, uint64_t audit_index) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct insert_req req = { .doc = d, .ref_index = audit_index };

        if (!document_is_valid(d) || (audit_index != SQLITE_NO_REF && audit_index > (uint64_t) INT64_MAX))
                return -EINVAL;
        pthread_mutex_lock(&s->queue_lock);
        if (s->queue_tail)
                s->queue_tail->next = &req;
        else
                s->queue_head = &req;
        s->queue_tail = &req;
        s->queued++;
        while (!req.done) {
                if (s->leader_active || s->queued < s->hold) {
                        pthread_cond_wait(&s->queue_cond, &s->queue_lock);
                        continue;
                }
                /* Lead: take everything queued so far (our own row is in it). */
                struct insert_req *batch = s->queue_head;
                size_t n = 0;
                for (struct insert_req *q = batch; q; q = q->next)
                        n++;
                s->queue_head = s->queue_tail = NULL;
                s->queued = s->hold = 0;
                s->leader_active = true;
                pthread_mutex_unlock(&s->queue_lock);

                unsigned commits = lead_batch(s, batch, n);

                pthread_mutex_lock(&s->queue_lock);
                s->commits += commits;
                s->committed_rows += n;
                for (struct insert_req *q = batch, *next; q; q = next) {
                        next = q->next; /* q lives on its waiter's stack: read before marking done */
                        q->done = true;
                }
                s->leader_active = false;
                pthread_cond_broadcast(&s->queue_cond);
        }
        pthread_mutex_unlock(&s->queue_lock);
        return req.result;
}

/* --- documents: reads and delete --- */

/* A row in DOC_COLUMNS order. The name is a sealed BLOB with its index, or (a row written before
 * names were sealed, and not sealed yet) clear TEXT with no index: anything else is damage. */
int sqlite_document_from_row(sqlite3_stmt *q, struct store_document *d) {
        int r;
        /* field by field rather than a memset of the whole row: on a page of 1000 rows, the two
         * name buffers are most of the bytes, and only their used part is written */
        d->name[0] = 0;
        d->name_sealed_len = 0;
        if ((r = sqlite_column_copy(q, 0, d->id, sizeof d->id)) < 0 ||
            (r = sqlite_column_copy(q, 1, d->org_id, sizeof d->org_id)) < 0 ||
            (r = sqlite_column_copy(q, 3, d->class_, sizeof d->class_)) < 0 ||
            (r = sqlite_column_copy(q, 7, d->created_by, sizeof d->created_by)) < 0)
                return r;
        int name_type = sqlite3_column_type(q, 2), index_type = sqlite3_column_type(q, 8);
        if (name_type == SQLITE_BLOB && index_type == SQLITE_BLOB) {
                const void *p = sqlite3_column_blob(q, 2);
                int n = sqlite3_column_bytes(q, 2);
                if (!p || n <= 0 || (size_t) n > sizeof d->name_sealed ||
                    sqlite3_column_bytes(q, 8) != (int) sizeof d->name_index)
                        return -EBADMSG;
                memcpy(d->name_sealed, p, (size_t) n);
                d->name_sealed_len = (size_t) n;
                memcpy(d->name_index, sqlite3_column_blob(q, 8), sizeof d->name_index);
        } else if (name_type == SQLITE_TEXT && index_type == SQLITE_NULL) {
                memset(d->name_index, 0, sizeof d->name_index);
                r = sqlite_column_copy(q, 2, d->name, sizeof d->name);
                if (r < 0)
                        return r;
        } else
                return -EBADMSG;
        int64_t size = sqlite3_column_int64(q, 4);
        if (size < 0 || sqlite3_column_bytes(q, 5) != (int) sizeof d->sha256)
                return -EBADMSG;
        d->size = (uint64_t) size;
        memcpy(d->sha256, sqlite3_column_blob(q, 5), sizeof d->sha256);
        d->created_at = sqlite3_column_int64(q, 6);
        d->retain_until = sqlite3_column_int64(q, 9);
        if ((r = sqlite_column_copy(q, 10, d->lock, sizeof d->lock)) < 0)
                return r;
        return sqlite_column_copy(q, 11, d->document_date, sizeof d->document_date);
}

static int document_get_conn(struct sqlite_conn *c, const char *org_id, const char *id, struct store_document *ret) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        struct store_document d;
        int r = sqlite_conn_stmt(c, STMT_DOC_GET, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, org_id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sqlite_errno(rc);
        r = sqlite_document_from_row(q, &d);
        if (r < 0)
                return r;
        *ret = d;
        return 0;
}

int sqlite_document_get(struct store *st, const char *org_id, const char *id, struct store_document *ret) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!sqlite_id_is_valid(org_id) || !sqlite_id_is_valid(id) || !ret)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = document_get_conn(c, org_id, id, ret);
        sqlite_reader_put(s, c);
        return r;
}

static char *cursor_encode(int64_t created_at, const char *id) {
        uint8_t bin[CURSOR_BIN_LEN];
        char *out;
        size_t len = sodium_base64_encoded_len(sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

        bin[0] = CURSOR_VERSION;
        for (size_t i = 0; i < 8; i++)
                bin[1 + i] = (uint8_t) ((uint64_t) created_at >> (56 - 8 * i));
        if (sodium_hex2bin(bin + 9, 16, id, STORE_ID_LEN, NULL, NULL, NULL) != 0)
                return NULL;
        out = malloc(len);
        if (!out)
                return NULL;
        sodium_bin2base64(out, len, bin, sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        return out;
}

/* Strict: only what cursor_encode produces is accepted. */
static int cursor_decode(const char *cursor, int64_t *ret_created_at, char ret_id[STORE_ID_LEN + 1]) {
        uint8_t bin[CURSOR_BIN_LEN + 1];
        size_t len = strnlen(cursor, CURSOR_TEXT_MAX + 1), got = 0;
        const char *end = NULL;
        char again[CURSOR_TEXT_MAX + 1];
        uint64_t t = 0;

        if (len == 0 || len > CURSOR_TEXT_MAX)
                return -EINVAL;
        if (sodium_base642bin(bin, sizeof bin, cursor, len, NULL, &got, &end,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
            end != cursor + len || got != CURSOR_BIN_LEN || bin[0] != CURSOR_VERSION)
                return -EINVAL;
        /* Reject non-canonical spellings (stray low bits in the last character). */
        sodium_bin2base64(again, sizeof again, bin, CURSOR_BIN_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        if (strcmp(again, cursor) != 0)
                return -EINVAL;
        for (size_t i = 0; i < 8; i++)
                t = (t << 8) | bin[1 + i];
        *ret_created_at = (int64_t) t;
        sodium_bin2hex(ret_id, STORE_ID_LEN + 1, bin + 9, 16);
        return 0;
}

/* Rows strictly below (bound_at, bound_id), newest first. */
static int document_list_conn(struct sqlite_conn *c, const struct store_document_filter *f, int64_t bound_at,
                              const char *bound_id, struct store_document *rows, size_t *ret_n, bool *ret_more) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        size_t n = 0;
        enum sqlite_stmt_id id = f->name_index ? STMT_DOC_LIST_NAME : f->class_ ? STMT_DOC_LIST_CLASS : STMT_DOC_LIST;
        int r = sqlite_conn_stmt(c, id, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, f->org_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, f->created_after);
        sqlite3_bind_int64(q, 3, bound_at);
        sqlite3_bind_text(q, 4, bound_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, (int64_t) f->limit + 1); /* one more tells whether a next page exists */
        if (f->class_)
                sqlite3_bind_text(q, 6, f->class_, -1, SQLITE_STATIC);
        if (f->name_index)
                sqlite3_bind_blob(q, 7, f->name_index, STORE_NAME_INDEX_SIZE, SQLITE_STATIC);
        for (;;) {
                int rc = sqlite3_step(q);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW)
                        return sqlite_errno(rc);
                if (n == f->limit) {
                        *ret_n = n;
                        *ret_more = true;
                        return 0;
                }
                r = sqlite_document_from_row(q, &rows[n]);
                if (r < 0)
                        return r;
                n++;
        }
        *ret_n = n;
        *ret_more = false;
        return 0;
}

int sqlite_document_list(struct store *st, const struct store_document_filter *f, struct store_document **ret,
                         size_t *ret_n, char **ret_next_cursor) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;
        int64_t cur_at = 0;
        char cur_id[STORE_ID_LEN + 1] = "";
        size_t n = 0;
        bool more = false;
        int r;

        if (!f || !ret || !ret_n || !ret_next_cursor || !sqlite_id_is_valid(f->org_id) || f->limit < 1 ||
            f->limit > LIST_LIMIT_MAX || (f->class_ && strnlen(f->class_, STORE_CLASS_MAX + 1) > STORE_CLASS_MAX))
                return -EINVAL;
        if (f->cursor) {
                r = cursor_decode(f->cursor, &cur_at, cur_id);
                if (r < 0)
                        return r;
        }
        /* One upper bound: (created_before, '') excludes exactly created_at >= created_before. */
        if (!f->cursor || cur_at >= f->created_before) {
                cur_at = f->created_before;
                cur_id[0] = 0;
        }

        /* not zeroed: document_from_row sets every field of the rows it fills, and the others
         * are never read (zeroing a page of 1000 rows costs as much as decrypting its names) */
        _cleanup_free_ struct store_document *rows = reallocarray(NULL, f->limit, sizeof *rows);
        if (!rows)
                return -ENOMEM;
        r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = document_list_conn(c, f, cur_at, cur_id, rows, &n, &more);
        sqlite_reader_put(s, c);
        if (r < 0) {
                sodium_memzero(rows, f->limit * sizeof *rows);
                return r;
        }

        _cleanup_free_ char *next = NULL;
        if (more) {
                next = cursor_encode(rows[n - 1].created_at, rows[n - 1].id);
                if (!next)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(rows);
        *ret_n = n;
        *ret_next_cursor = TAKE_PTR(next);
        return 0;
}

int sqlite_document_delete(struct store *st, const char *org_id, const char *id) {
        struct sqlite_store *s = sqlite_store_of(st);
        int r;

        if (!sqlite_id_is_valid(org_id) || !sqlite_id_is_valid(id))
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        sqlite3_stmt *q = NULL;
        r = sqlite_conn_stmt(s->writer, STMT_DOC_DELETE, &q);
        if (r >= 0) {
                sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, org_id, -1, SQLITE_STATIC);
                r = sqlite_step_done(q);
                if (r >= 0 && sqlite3_changes(s->writer->db) == 0)
                        r = -ENOENT;
                sqlite_stmt_releasep(&q);
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

static int document_exists_conn(struct sqlite_conn *c, const char *id, bool *ret) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_DOC_EXISTS, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return sqlite_errno(rc);
        *ret = rc == SQLITE_ROW;
        return 0;
}

int sqlite_document_exists(struct store *st, const char *id, bool *ret) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!sqlite_id_is_valid(id) || !ret)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = document_exists_conn(c, id, ret);
        sqlite_reader_put(s, c);
        return r;
}

static int document_stats_conn(struct sqlite_conn *c, uint64_t *ret_count, uint64_t *ret_bytes) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_DOC_STATS, &q);
        if (r < 0)
                return r;
        int rc = sqlite3_step(q);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -EIO : sqlite_errno(rc);
        *ret_count = (uint64_t) sqlite3_column_int64(q, 0);
        *ret_bytes = (uint64_t) sqlite3_column_int64(q, 1);
        return 0;
}

int sqlite_document_stats(struct store *st, uint64_t *ret_count, uint64_t *ret_bytes) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;
        uint64_t count = 0, bytes = 0;

        if (!ret_count || !ret_bytes)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = document_stats_conn(c, &count, &bytes);
        sqlite_reader_put(s, c);
        if (r < 0)
                return r;
        *ret_count = count;
        *ret_bytes = bytes;
        return 0;
}

/* --- sealing the clear names of an older vault --- */

int sqlite_document_clear_names(struct store *st, size_t limit, struct store_document **ret, size_t *ret_n) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;
        size_t n = 0;

        if (!ret || !ret_n || limit < 1 || limit > LIST_LIMIT_MAX)
                return -EINVAL;
        struct store_document *rows = calloc(limit, sizeof *rows);
        if (!rows)
                return -ENOMEM;
        int r = sqlite_reader_get(s, &c);
        if (r >= 0) {
                _cleanup_stmt_ sqlite3_stmt *q = NULL;
                r = sqlite_conn_stmt(c, STMT_DOC_CLEAR_NAMES, &q);
                if (r >= 0)
                        sqlite3_bind_int64(q, 1, (int64_t) limit);
                while (r >= 0 && n < limit) {
                        int rc = sqlite3_step(q);
                        if (rc == SQLITE_DONE)
                                break;
                        if (rc != SQLITE_ROW) {
                                r = sqlite_errno(rc);
                                break;
                        }
                        r = sqlite_document_from_row(q, &rows[n]);
                        if (r >= 0 && rows[n].name_sealed_len != 0)
                                r = -EBADMSG; /* a sealed name without its index */
                        if (r >= 0)
                                n++;
                }
                sqlite_stmt_releasep(&q);
                sqlite_reader_put(s, c);
        }
        if (r < 0) {
                sodium_memzero(rows, limit * sizeof *rows);
                free(rows);
                return r;
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}

int sqlite_document_seal_names(struct store *st, const struct store_document *docs, size_t n) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c = s->writer;

        if (!docs && n > 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!sqlite_id_is_valid(docs[i].id) || docs[i].name_sealed_len == 0 ||
                    docs[i].name_sealed_len > sizeof docs[i].name_sealed)
                        return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        int r = run_simple(c, STMT_BEGIN);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_stmt_ sqlite3_stmt *q = NULL;
                r = sqlite_conn_stmt(c, STMT_DOC_SEAL_NAME, &q);
                if (r < 0)
                        break;
                sqlite3_bind_text(q, 1, docs[i].id, -1, SQLITE_STATIC);
                sqlite3_bind_blob(q, 2, docs[i].name_sealed, (int) docs[i].name_sealed_len, SQLITE_STATIC);
                sqlite3_bind_blob(q, 3, docs[i].name_index, sizeof docs[i].name_index, SQLITE_STATIC);
                r = sqlite_step_done(q);
        }
        if (r >= 0)
                r = run_simple(c, STMT_COMMIT);
        if (r < 0)
                rollback(c);
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

/* secure_delete (on for every connection) zeroes what a change frees inside the file; VACUUM
 * then rebuilds it without free pages, in memory rather than a temporary file, and the
 * checkpoint copies the WAL into it and truncates the WAL to nothing, so neither file keeps an
 * old version of a page. */
int sqlite_store_compact(struct store *st) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c = s->writer;

        pthread_mutex_lock(&s->write_lock);
        int r = sqlite_errno(sqlite3_exec(c->db, "PRAGMA temp_store = MEMORY; VACUUM;", NULL, NULL, NULL));
        if (r >= 0) /* SQLITE_BUSY: a reader still holds a snapshot, so the WAL cannot be emptied */
                r = sqlite_errno(sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL));
        (void) sqlite3_exec(c->db, "PRAGMA temp_store = DEFAULT;", NULL, NULL, NULL);
        pthread_mutex_unlock(&s->write_lock);
        return r;
}
