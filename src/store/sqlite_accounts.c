/* sqlite_accounts.c: the account rows of the SQLite store: organisation settings, users (their
 * personal fields arrive as field ciphertexts: this file never sees a clear e-mail, name or
 * phone), recovery codes, login sessions and API tokens. Every change is durable on return. */
#include "store/sqlite_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 10000

/* Runs fn on the writer connection under the write lock. */
static int with_writer(struct sqlite_store *s, int (*fn)(struct sqlite_conn *c, const void *ud), const void *ud) {
        pthread_mutex_lock(&s->write_lock);
        int r = fn(s->writer, ud);
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

/* Runs fn on a reader connection of the pool. */
static int with_reader(struct sqlite_store *s, int (*fn)(struct sqlite_conn *c, void *ud), void *ud) {
        struct sqlite_conn *c;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = fn(c, ud);
        sqlite_reader_put(s, c);
        return r;
}

static int exec_id(struct sqlite_conn *c, enum sqlite_stmt_id id) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, id, &q);
        if (r < 0)
                return r;
        return sqlite_step_done(q);
}

static int begin(struct sqlite_conn *c) {
        return exec_id(c, STMT_BEGIN);
}

static int commit_or_rollback(struct sqlite_conn *c, int r) {
        if (r >= 0)
                r = exec_id(c, STMT_COMMIT);
        if (r < 0 && !sqlite3_get_autocommit(c->db))
                (void) exec_id(c, STMT_ROLLBACK);
        return r;
}

/* A statement that changes rows: -ENOENT when it changed none. */
static int step_changed(sqlite3_stmt *q) {
        int r = sqlite_step_done(q);
        if (r < 0)
                return r;
        return sqlite3_changes(sqlite3_db_handle(q)) > 0 ? 0 : -ENOENT;
}

static void bind_blob_or_null(sqlite3_stmt *q, int i, const uint8_t *p, size_t n) {
        if (n)
                sqlite3_bind_blob(q, i, p, (int) n, SQLITE_STATIC);
        else
                sqlite3_bind_null(q, i);
}

static int column_blob(sqlite3_stmt *q, int col, uint8_t *out, size_t size, size_t *ret_n) {
        if (sqlite3_column_type(q, col) == SQLITE_NULL) {
                *ret_n = 0;
                return 0;
        }
        const void *p = sqlite3_column_blob(q, col);
        int n = sqlite3_column_bytes(q, col);
        if (n < 0 || (size_t) n > size || (n > 0 && !p))
                return -EBADMSG;
        if (n)
                memcpy(out, p, (size_t) n);
        *ret_n = (size_t) n;
        return 0;
}

/* ---- organisations ---- */

static int org_update_fn(struct sqlite_conn *c, const void *ud) {
        const struct store_org *o = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_ORG_UPDATE, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, o->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, o->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, o->status, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 4, o->require_2fa);
        sqlite3_bind_text(q, 5, o->default_class, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, o->time_zone[0] ? o->time_zone : "UTC", -1, SQLITE_STATIC);
        return step_changed(q);
}

int sqlite_org_update(struct store *st, const struct store_org *o) {
        if (!o || !sqlite_id_is_valid(o->id) || !sqlite_field_is_valid(o->name, sizeof o->name, false) ||
            !sqlite_field_is_valid(o->status, sizeof o->status, false) ||
            !sqlite_field_is_valid(o->default_class, sizeof o->default_class, true) ||
            !sqlite_field_is_valid(o->time_zone, sizeof o->time_zone, true))
                return -EINVAL;
        return with_writer(sqlite_store_of(st), org_update_fn, o);
}

/* ---- users ---- */

static bool user_is_valid(const struct store_user *u) {
        return u && sqlite_id_is_valid(u->id) && sqlite_id_is_valid(u->org_id) &&
               sqlite_field_is_valid(u->role, sizeof u->role, false) &&
               sqlite_field_is_valid(u->status, sizeof u->status, false) &&
               sqlite_field_is_valid(u->password_hash, sizeof u->password_hash, false) && u->email_n > 0 &&
               u->email_n <= sizeof u->email && u->display_name_n <= sizeof u->display_name &&
               u->phone_n <= sizeof u->phone && u->totp_secret_n <= sizeof u->totp_secret &&
               u->totp_last_step <= (uint64_t) INT64_MAX;
}

/* Binds the columns in USER_COLUMNS order from 1 (insert) or the update's layout. */
static void bind_user_fields(sqlite3_stmt *q, const struct store_user *u, int first) {
        sqlite3_bind_text(q, first, u->role, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, first + 1, u->status, -1, SQLITE_STATIC);
        sqlite3_bind_blob(q, first + 2, u->email_index, sizeof u->email_index, SQLITE_STATIC);
        sqlite3_bind_blob(q, first + 3, u->email, (int) u->email_n, SQLITE_STATIC);
        bind_blob_or_null(q, first + 4, u->display_name, u->display_name_n);
        bind_blob_or_null(q, first + 5, u->phone, u->phone_n);
        sqlite3_bind_text(q, first + 6, u->password_hash, -1, SQLITE_STATIC);
        bind_blob_or_null(q, first + 7, u->totp_secret, u->totp_secret_n);
        sqlite3_bind_int(q, first + 8, u->totp_enabled);
        sqlite3_bind_int64(q, first + 9, (int64_t) u->totp_last_step);
        sqlite3_bind_int(q, first + 10, u->logged_in);
}

static int user_insert_fn(struct sqlite_conn *c, const void *ud) {
        const struct store_user *u = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_USER_INSERT, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, u->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, u->org_id, -1, SQLITE_STATIC);
        bind_user_fields(q, u, 3);
        sqlite3_bind_int64(q, 14, u->created_at);
        return sqlite_step_done(q);
}

int sqlite_user_insert(struct store *st, const struct store_user *u) {
        if (!user_is_valid(u))
                return -EINVAL;
        return with_writer(sqlite_store_of(st), user_insert_fn, u);
}

static int user_from_row(sqlite3_stmt *q, struct store_user *u) {
        size_t n;
        int r;
        memset(u, 0, sizeof *u);
        if ((r = sqlite_column_copy(q, 0, u->id, sizeof u->id)) < 0 ||
            (r = sqlite_column_copy(q, 1, u->org_id, sizeof u->org_id)) < 0 ||
            (r = sqlite_column_copy(q, 2, u->role, sizeof u->role)) < 0 ||
            (r = sqlite_column_copy(q, 3, u->status, sizeof u->status)) < 0 ||
            (r = column_blob(q, 4, u->email_index, sizeof u->email_index, &n)) < 0 ||
            (r = column_blob(q, 5, u->email, sizeof u->email, &u->email_n)) < 0 ||
            (r = column_blob(q, 6, u->display_name, sizeof u->display_name, &u->display_name_n)) < 0 ||
            (r = column_blob(q, 7, u->phone, sizeof u->phone, &u->phone_n)) < 0 ||
            (r = sqlite_column_copy(q, 8, u->password_hash, sizeof u->password_hash)) < 0 ||
            (r = column_blob(q, 9, u->totp_secret, sizeof u->totp_secret, &u->totp_secret_n)) < 0)
                return r;
        if (n != sizeof u->email_index)
                return -EBADMSG;
        u->totp_enabled = sqlite3_column_int(q, 10) != 0;
        int64_t step = sqlite3_column_int64(q, 11);
        if (step < 0)
                return -EBADMSG;
        u->totp_last_step = (uint64_t) step;
        u->logged_in = sqlite3_column_int(q, 12) != 0;
        u->created_at = sqlite3_column_int64(q, 13);
        return 0;
}

struct user_get_args {
        const char *org_id, *id;
        const uint8_t *index;
        struct store_user *ret;
};

static int user_get_fn(struct sqlite_conn *c, void *ud) {
        struct user_get_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        enum sqlite_stmt_id id = a->index ? STMT_USER_GET_INDEX : a->org_id ? STMT_USER_GET : STMT_USER_GET_ANY;
        int r = sqlite_conn_stmt(c, id, &q);
        if (r < 0)
                return r;
        if (a->index)
                sqlite3_bind_blob(q, 1, a->index, 32, SQLITE_STATIC);
        else {
                sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
                if (a->org_id)
                        sqlite3_bind_text(q, 2, a->org_id, -1, SQLITE_STATIC);
        }
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sqlite_errno(rc);
        return user_from_row(q, a->ret);
}

int sqlite_user_get(struct store *st, const char *org_id, const char *id, struct store_user *ret) {
        if (!ret || (org_id && !sqlite_id_is_valid(org_id)))
                return -EINVAL;
        if (!sqlite_id_is_valid(id))
                return -ENOENT;
        struct user_get_args a = { .org_id = org_id, .id = id, .ret = ret };
        return with_reader(sqlite_store_of(st), user_get_fn, &a);
}

int sqlite_user_get_by_index(struct store *st, const uint8_t idx[32], struct store_user *ret) {
        if (!idx || !ret)
                return -EINVAL;
        struct user_get_args a = { .index = idx, .ret = ret };
        return with_reader(sqlite_store_of(st), user_get_fn, &a);
}

struct user_list_args {
        const char *org_id;
        size_t max;
        struct store_user *v;
        size_t n;
};

static int user_list_fn(struct sqlite_conn *c, void *ud) {
        struct user_list_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        size_t cap = 0;
        int r = sqlite_conn_stmt(c, STMT_USER_LIST, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, a->org_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (int64_t) a->max);
        for (;;) {
                int rc = sqlite3_step(q);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return sqlite_errno(rc);
                if (a->n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        struct store_user *nv = reallocarray(a->v, ncap, sizeof *nv);
                        if (!nv)
                                return -ENOMEM;
                        a->v = nv;
                        cap = ncap;
                }
                r = user_from_row(q, &a->v[a->n]);
                if (r < 0)
                        return r;
                a->n++;
        }
}

int sqlite_user_list(struct store *st, const char *org_id, size_t max, struct store_user **ret, size_t *ret_n) {
        if (!sqlite_id_is_valid(org_id) || !ret || !ret_n || max == 0)
                return -EINVAL;
        struct user_list_args a = { .org_id = org_id, .max = MIN(max, (size_t) LIST_MAX) };
        int r = with_reader(sqlite_store_of(st), user_list_fn, &a);
        if (r < 0) {
                free(a.v);
                return r;
        }
        *ret = a.v;
        *ret_n = a.n;
        return 0;
}

static int user_update_fn(struct sqlite_conn *c, const void *ud) {
        const struct store_user *u = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_USER_UPDATE, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, u->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, u->org_id, -1, SQLITE_STATIC);
        bind_user_fields(q, u, 3);
        return step_changed(q);
}

int sqlite_user_update(struct store *st, const struct store_user *u) {
        if (!user_is_valid(u))
                return -EINVAL;
        return with_writer(sqlite_store_of(st), user_update_fn, u);
}

struct login_update_args {
        const struct store_user *u;
        uint64_t prev_step;
};

static int user_login_update_fn(struct sqlite_conn *c, const void *ud) {
        const struct login_update_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_USER_LOGIN_UPDATE, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, a->u->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, a->u->password_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, (int64_t) a->u->totp_last_step);
        sqlite3_bind_int(q, 4, a->u->logged_in);
        sqlite3_bind_int64(q, 5, (int64_t) a->prev_step);
        r = step_changed(q);
        return r == -ENOENT ? -ESTALE : r;
}

int sqlite_user_login_update(struct store *st, const struct store_user *u, uint64_t prev_step) {
        if (!user_is_valid(u) || prev_step > (uint64_t) INT64_MAX)
                return -EINVAL;
        struct login_update_args a = { u, prev_step };
        return with_writer(sqlite_store_of(st), user_login_update_fn, &a);
}

static int exec_user_stmt(struct sqlite_conn *c, enum sqlite_stmt_id id, const char *user_id) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, id, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, user_id, -1, SQLITE_STATIC);
        return sqlite_step_done(q);
}

struct user_key {
        const char *org_id, *id;
};

static int user_delete_fn(struct sqlite_conn *c, const void *ud) {
        const struct user_key *k = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = begin(c);
        if (r < 0)
                return r;
        /* the row first, so that a user of another organisation is not found and nothing else goes */
        r = sqlite_conn_stmt(c, STMT_USER_DELETE, &q);
        if (r >= 0) {
                /* children first: the foreign keys would refuse the user's row */
                if ((r = exec_user_stmt(c, STMT_SESSION_DELETE_USER, k->id)) >= 0 &&
                    (r = exec_user_stmt(c, STMT_TOKEN_DELETE_USER, k->id)) >= 0 &&
                    (r = exec_user_stmt(c, STMT_RECOVERY_DELETE_USER, k->id)) >= 0) {
                        sqlite3_bind_text(q, 1, k->id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 2, k->org_id, -1, SQLITE_STATIC);
                        r = step_changed(q); /* -ENOENT: rolled back, the children stay */
                }
        }
        sqlite_stmt_releasep(&q);
        q = NULL;
        return commit_or_rollback(c, r);
}

int sqlite_user_delete(struct store *st, const char *org_id, const char *id) {
        if (!sqlite_id_is_valid(org_id))
                return -EINVAL;
        if (!sqlite_id_is_valid(id))
                return -ENOENT;
        struct user_key k = { org_id, id };
        return with_writer(sqlite_store_of(st), user_delete_fn, &k);
}

struct count_args {
        enum sqlite_stmt_id stmt;
        const char *a, *b;
        uint64_t n;
};

static int count_fn(struct sqlite_conn *c, void *ud) {
        struct count_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, a->stmt, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, a->a, -1, SQLITE_STATIC);
        if (a->b)
                sqlite3_bind_text(q, 2, a->b, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -EBADMSG : sqlite_errno(rc);
        int64_t n = sqlite3_column_int64(q, 0);
        if (n < 0)
                return -EBADMSG;
        a->n = (uint64_t) n;
        return 0;
}

int sqlite_user_count_role(struct store *st, const char *org_id, const char *role, uint64_t *ret) {
        if (!role || !ret || (org_id && !sqlite_id_is_valid(org_id)))
                return -EINVAL;
        struct count_args a = org_id ? (struct count_args){ STMT_USER_COUNT_ROLE, org_id, role }
                                     : (struct count_args){ STMT_USER_COUNT_ROLE_ANY, role, NULL };
        int r = with_reader(sqlite_store_of(st), count_fn, &a);
        if (r >= 0)
                *ret = a.n;
        return r;
}

int sqlite_user_count_active_role(struct store *st, const char *org_id, const char *role, uint64_t *ret) {
        if (!role || !ret || !org_id || !sqlite_id_is_valid(org_id))
                return -EINVAL;
        struct count_args a = { STMT_USER_COUNT_ROLE_ACTIVE, org_id, role };
        int r = with_reader(sqlite_store_of(st), count_fn, &a);
        if (r >= 0)
                *ret = a.n;
        return r;
}

/* ---- recovery codes ---- */

struct recovery_args {
        const char *user_id;
        const uint8_t (*hashes)[32];
        size_t n;
        int64_t now;
};

static int recovery_set_fn(struct sqlite_conn *c, const void *ud) {
        const struct recovery_args *a = ud;
        int r = begin(c);
        if (r < 0)
                return r;
        r = exec_user_stmt(c, STMT_RECOVERY_DELETE_USER, a->user_id);
        for (size_t i = 0; r >= 0 && i < a->n; i++) {
                _cleanup_stmt_ sqlite3_stmt *q = NULL;
                r = sqlite_conn_stmt(c, STMT_RECOVERY_INSERT, &q);
                if (r < 0)
                        break;
                sqlite3_bind_text(q, 1, a->user_id, -1, SQLITE_STATIC);
                sqlite3_bind_blob(q, 2, a->hashes[i], 32, SQLITE_STATIC);
                r = sqlite_step_done(q);
        }
        return commit_or_rollback(c, r);
}

int sqlite_recovery_set(struct store *st, const char *user_id, const uint8_t (*hashes)[32], size_t n) {
        if (!sqlite_id_is_valid(user_id) || (n && !hashes))
                return -EINVAL;
        struct recovery_args a = { .user_id = user_id, .hashes = hashes, .n = n };
        return with_writer(sqlite_store_of(st), recovery_set_fn, &a);
}

static int recovery_use_fn(struct sqlite_conn *c, const void *ud) {
        const struct recovery_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_RECOVERY_USE, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, a->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_blob(q, 2, a->hashes[0], 32, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, a->now > 0 ? a->now : 1);
        return step_changed(q);
}

int sqlite_recovery_use(struct store *st, const char *user_id, const uint8_t hash[32], int64_t now) {
        if (!sqlite_id_is_valid(user_id) || !hash)
                return -EINVAL;
        struct recovery_args a = { .user_id = user_id, .hashes = (const uint8_t(*)[32]) hash, .n = 1, .now = now };
        return with_writer(sqlite_store_of(st), recovery_use_fn, &a);
}

int sqlite_recovery_count(struct store *st, const char *user_id, uint64_t *ret_unused) {
        if (!sqlite_id_is_valid(user_id) || !ret_unused)
                return -EINVAL;
        struct count_args a = { STMT_RECOVERY_COUNT, user_id, NULL, 0 };
        int r = with_reader(sqlite_store_of(st), count_fn, &a);
        if (r >= 0)
                *ret_unused = a.n;
        return r;
}

/* ---- sessions ---- */

struct session_args {
        const struct store_session *se;
        const uint8_t *hash;
};

static int session_insert_fn(struct sqlite_conn *c, const void *ud) {
        const struct session_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_SESSION_INSERT, &q);
        if (r < 0)
                return r;
        sqlite3_bind_blob(q, 1, a->hash, 32, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, a->se->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, a->se->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, a->se->org_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, a->se->kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 6, a->se->created_at);
        sqlite3_bind_int64(q, 7, a->se->last_seen);
        sqlite3_bind_int64(q, 8, a->se->expires_at);
        return sqlite_step_done(q);
}

int sqlite_session_insert(struct store *st, const struct store_session *se, const uint8_t hash[32]) {
        if (!se || !hash || !sqlite_id_is_valid(se->id) || !sqlite_id_is_valid(se->user_id) ||
            !sqlite_id_is_valid(se->org_id) || !sqlite_field_is_valid(se->kind, sizeof se->kind, false))
                return -EINVAL;
        struct session_args a = { se, hash };
        return with_writer(sqlite_store_of(st), session_insert_fn, &a);
}

struct session_lookup_args {
        const uint8_t *hash;
        struct store_session *ret;
};

static int session_lookup_fn(struct sqlite_conn *c, void *ud) {
        struct session_lookup_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        struct store_session se = {};
        int r = sqlite_conn_stmt(c, STMT_SESSION_LOOKUP, &q);
        if (r < 0)
                return r;
        sqlite3_bind_blob(q, 1, a->hash, 32, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sqlite_errno(rc);
        if ((r = sqlite_column_copy(q, 0, se.id, sizeof se.id)) < 0 ||
            (r = sqlite_column_copy(q, 1, se.user_id, sizeof se.user_id)) < 0 ||
            (r = sqlite_column_copy(q, 2, se.org_id, sizeof se.org_id)) < 0 ||
            (r = sqlite_column_copy(q, 3, se.kind, sizeof se.kind)) < 0)
                return r;
        se.created_at = sqlite3_column_int64(q, 4);
        se.last_seen = sqlite3_column_int64(q, 5);
        se.expires_at = sqlite3_column_int64(q, 6);
        se.revoked_at = sqlite3_column_int64(q, 7);
        *a->ret = se;
        return 0;
}

int sqlite_session_lookup(struct store *st, const uint8_t hash[32], struct store_session *ret) {
        if (!hash || !ret)
                return -EINVAL;
        struct session_lookup_args a = { hash, ret };
        return with_reader(sqlite_store_of(st), session_lookup_fn, &a);
}

struct id_time_args {
        enum sqlite_stmt_id stmt;
        const char *id;
        int64_t now;
        bool must_change;
        uint64_t changed;
};

static int id_time_fn(struct sqlite_conn *c, const void *ud) {
        struct id_time_args *a = (struct id_time_args *) ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, a->stmt, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, a->now > 0 ? a->now : 1);
        r = sqlite_step_done(q);
        if (r < 0)
                return r;
        a->changed = (uint64_t) sqlite3_changes(c->db);
        return a->must_change && a->changed == 0 ? -ENOENT : 0;
}

static int id_time(struct store *st, enum sqlite_stmt_id stmt, const char *id, int64_t now, bool must_change,
                   uint64_t *ret_changed) {
        if (!id || !*id || strlen(id) > 64)
                return -EINVAL;
        struct id_time_args a = { stmt, id, now, must_change, 0 };
        int r = with_writer(sqlite_store_of(st), id_time_fn, &a);
        if (r >= 0 && ret_changed)
                *ret_changed = a.changed;
        return r;
}

int sqlite_session_touch(struct store *st, const char *id, int64_t now) {
        return id_time(st, STMT_SESSION_TOUCH, id, now, false, NULL);
}

int sqlite_session_revoke(struct store *st, const char *id, int64_t now) {
        return id_time(st, STMT_SESSION_REVOKE, id, now, true, NULL);
}

int sqlite_session_revoke_user(struct store *st, const char *user_id, int64_t now, uint64_t *ret_n) {
        if (!sqlite_id_is_valid(user_id))
                return -EINVAL;
        return id_time(st, STMT_SESSION_REVOKE_USER, user_id, now, false, ret_n);
}

/* ---- API tokens ---- */

struct token_list_args {
        const char *org_id;
        size_t max;
        struct store_token *v;
        size_t n;
};

static int token_list_fn(struct sqlite_conn *c, void *ud) {
        struct token_list_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        size_t cap = 0;
        int r = sqlite_conn_stmt(c, STMT_TOKEN_LIST, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, a->org_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (int64_t) a->max);
        for (;;) {
                int rc = sqlite3_step(q);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return sqlite_errno(rc);
                if (a->n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        struct store_token *nv = reallocarray(a->v, ncap, sizeof *nv);
                        if (!nv)
                                return -ENOMEM;
                        a->v = nv;
                        cap = ncap;
                }
                r = sqlite_token_from_row(q, &a->v[a->n]);
                if (r < 0)
                        return r;
                a->n++;
        }
}

int sqlite_token_list(struct store *st, const char *org_id, size_t max, struct store_token **ret, size_t *ret_n) {
        if (!sqlite_id_is_valid(org_id) || !ret || !ret_n || max == 0)
                return -EINVAL;
        struct token_list_args a = { .org_id = org_id, .max = MIN(max, (size_t) LIST_MAX) };
        int r = with_reader(sqlite_store_of(st), token_list_fn, &a);
        if (r < 0) {
                free(a.v);
                return r;
        }
        *ret = a.v;
        *ret_n = a.n;
        return 0;
}

struct token_revoke_args {
        const char *org_id, *id;
        int64_t now;
};

static int token_revoke_fn(struct sqlite_conn *c, const void *ud) {
        const struct token_revoke_args *a = ud;
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_TOKEN_REVOKE, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, a->org_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, a->now > 0 ? a->now : 1);
        return step_changed(q);
}

int sqlite_token_revoke(struct store *st, const char *org_id, const char *id, int64_t now) {
        if (!sqlite_id_is_valid(org_id))
                return -EINVAL;
        if (!sqlite_id_is_valid(id))
                return -ENOENT;
        struct token_revoke_args a = { org_id, id, now };
        return with_writer(sqlite_store_of(st), token_revoke_fn, &a);
}

int sqlite_token_revoke_kind(struct store *st, const char *kind, int64_t now) {
        return id_time(st, STMT_TOKEN_REVOKE_KIND, kind, now, false, NULL);
}

int sqlite_token_touch(struct store *st, const char *id, int64_t now) {
        return id_time(st, STMT_TOKEN_TOUCH, id, now, false, NULL);
}
