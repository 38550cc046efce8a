/* sqlite.c: the embedded metadata store (DATA/meta.db), behind struct store_ops: opening and
 * closing, the reader pool, organisations, tokens, settings and audit references. Documents,
 * with the group commit of inserts, are in sqlite_documents.c; the schema and connection set-up
 * in sqlite_schema.c.
 *
 * One writer connection, guarded by a mutex, does every change, each one durable on return
 * (WAL, synchronous=FULL). Reads use a small pool of query-only connections, so in WAL mode they
 * never wait behind a commit. */
#include "store/sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "fileio.h"

#define READERS_MAX 8
#define SETTING_KEY_MAX 128
#define SETTING_VALUE_MAX (64 * 1024)

/* Copies a text column into a fixed field; -EBADMSG if the stored value does not fit. */
int sqlite_column_copy(sqlite3_stmt *st, int col, char *out, size_t size) {
        const unsigned char *t = sqlite3_column_text(st, col);
        int n = sqlite3_column_bytes(st, col);
        if (!t)
                return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -ENOMEM : -EBADMSG;
        if (n < 0 || (size_t) n >= size)
                return -EBADMSG;
        memcpy(out, t, (size_t) n);
        out[n] = 0;
        return 0;
}

int sqlite_step_done(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : rc == SQLITE_ROW ? -EINVAL : sqlite_errno(rc);
}

/* --- reader pool --- */

int sqlite_reader_get(struct sqlite_store *s, struct sqlite_conn **ret) {
        struct sqlite_conn *c;

        pthread_mutex_lock(&s->pool_lock);
        while (!s->pool_free && s->pool_count >= READERS_MAX)
                pthread_cond_wait(&s->pool_cond, &s->pool_lock);
        if (s->pool_free) {
                c = s->pool_free;
                s->pool_free = c->next;
                pthread_mutex_unlock(&s->pool_lock);
                *ret = c;
                return 0;
        }
        s->pool_count++;
        pthread_mutex_unlock(&s->pool_lock);

        int r = sqlite_conn_open(s->path, false, &c);
        if (r < 0) {
                pthread_mutex_lock(&s->pool_lock);
                s->pool_count--;
                pthread_cond_signal(&s->pool_cond);
                pthread_mutex_unlock(&s->pool_lock);
                return r;
        }
        *ret = c;
        return 0;
}

void sqlite_reader_put(struct sqlite_store *s, struct sqlite_conn *c) {
        pthread_mutex_lock(&s->pool_lock);
        c->next = s->pool_free;
        s->pool_free = c;
        pthread_cond_signal(&s->pool_cond);
        pthread_mutex_unlock(&s->pool_lock);
}

/* --- organisations --- */

static int org_insert(struct store *st, const struct store_org *o) {
        struct sqlite_store *s = sqlite_store_of(st);
        int r;

        if (!o || !sqlite_id_is_valid(o->id) || !sqlite_field_is_valid(o->name, sizeof o->name, false))
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        sqlite3_stmt *q = NULL;
        r = sqlite_conn_stmt(s->writer, STMT_ORG_INSERT, &q);
        if (r >= 0) {
                sqlite3_bind_text(q, 1, o->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, o->name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 3, o->created_at);
                sqlite3_bind_text(q, 4, o->status[0] ? o->status : STORE_ORG_STATUS_ACTIVE, -1, SQLITE_STATIC);
                sqlite3_bind_int(q, 5, o->require_2fa);
                sqlite3_bind_text(q, 6, o->default_class, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 7, o->time_zone[0] ? o->time_zone : "UTC", -1, SQLITE_STATIC);
                r = sqlite_step_done(q);
                sqlite_stmt_releasep(&q);
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

int sqlite_org_from_row(sqlite3_stmt *q, struct store_org *o) {
        int r;
        memset(o, 0, sizeof *o);
        if ((r = sqlite_column_copy(q, 0, o->id, sizeof o->id)) < 0 ||
            (r = sqlite_column_copy(q, 1, o->name, sizeof o->name)) < 0 ||
            (r = sqlite_column_copy(q, 3, o->status, sizeof o->status)) < 0 ||
            (r = sqlite_column_copy(q, 5, o->default_class, sizeof o->default_class)) < 0 ||
            (r = sqlite_column_copy(q, 6, o->time_zone, sizeof o->time_zone)) < 0)
                return r;
        o->created_at = sqlite3_column_int64(q, 2);
        o->require_2fa = sqlite3_column_int(q, 4) != 0;
        return 0;
}

static int org_get_conn(struct sqlite_conn *c, const char *id, struct store_org *ret) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        struct store_org o;
        int r = sqlite_conn_stmt(c, STMT_ORG_GET, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sqlite_errno(rc);
        r = sqlite_org_from_row(q, &o);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}

static int org_get(struct store *st, const char *id, struct store_org *ret) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!sqlite_id_is_valid(id) || !ret)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = org_get_conn(c, id, ret);
        sqlite_reader_put(s, c);
        return r;
}

static int org_foreach_conn(struct sqlite_conn *c, int (*cb)(const struct store_org *o, void *ud), void *ud) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        struct store_org o;
        int r = sqlite_conn_stmt(c, STMT_ORG_ALL, &q);
        if (r < 0)
                return r;
        for (;;) {
                int rc = sqlite3_step(q);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return sqlite_errno(rc);
                r = sqlite_org_from_row(q, &o);
                if (r < 0)
                        return r;
                r = cb(&o, ud);
                if (r < 0)
                        return r;
        }
}

static int org_foreach(struct store *st, int (*cb)(const struct store_org *o, void *ud), void *ud) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!cb)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = org_foreach_conn(c, cb, ud);
        sqlite_reader_put(s, c);
        return r;
}

/* --- tokens and settings --- */

static int token_insert(struct store *st, const struct store_token *t, const uint8_t hash[32]) {
        struct sqlite_store *s = sqlite_store_of(st);
        int r;

        if (!t || !hash || !sqlite_id_is_valid(t->id) || !sqlite_id_is_valid(t->org_id) ||
            !sqlite_field_is_valid(t->role, sizeof t->role, false) ||
            !sqlite_field_is_valid(t->kind, sizeof t->kind, false) ||
            !sqlite_field_is_valid(t->name, sizeof t->name, true) || (t->user_id[0] && !sqlite_id_is_valid(t->user_id)))
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        sqlite3_stmt *q = NULL;
        r = sqlite_conn_stmt(s->writer, STMT_TOKEN_INSERT, &q);
        if (r >= 0) {
                sqlite3_bind_blob(q, 1, hash, 32, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, t->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 3, t->org_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 4, t->role, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 5, t->created_at);
                sqlite3_bind_int64(q, 6, t->expires_at);
                sqlite3_bind_text(q, 7, t->kind, -1, SQLITE_STATIC);
                if (t->user_id[0])
                        sqlite3_bind_text(q, 8, t->user_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 9, t->name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 10, t->scopes);
                r = sqlite_step_done(q);
                sqlite_stmt_releasep(&q);
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

int sqlite_token_from_row(sqlite3_stmt *q, struct store_token *ret) {
        struct store_token t = {};
        int r;
        if ((r = sqlite_column_copy(q, 0, t.id, sizeof t.id)) < 0 ||
            (r = sqlite_column_copy(q, 1, t.org_id, sizeof t.org_id)) < 0 ||
            (r = sqlite_column_copy(q, 2, t.role, sizeof t.role)) < 0 ||
            (r = sqlite_column_copy(q, 5, t.kind, sizeof t.kind)) < 0 ||
            (r = sqlite_column_copy(q, 6, t.user_id, sizeof t.user_id)) < 0 ||
            (r = sqlite_column_copy(q, 7, t.name, sizeof t.name)) < 0)
                return r;
        t.created_at = sqlite3_column_int64(q, 3);
        t.expires_at = sqlite3_column_int64(q, 4);
        t.scopes = (uint32_t) sqlite3_column_int64(q, 8);
        t.revoked_at = sqlite3_column_int64(q, 9);
        t.last_used = sqlite3_column_int64(q, 10);
        *ret = t;
        return 0;
}

static int token_lookup_conn(struct sqlite_conn *c, const uint8_t hash[32], struct store_token *ret) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_TOKEN_LOOKUP, &q);
        if (r < 0)
                return r;
        sqlite3_bind_blob(q, 1, hash, 32, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sqlite_errno(rc);
        return sqlite_token_from_row(q, ret);
}

static int token_lookup(struct store *st, const uint8_t hash[32], struct store_token *ret) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!hash || !ret)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = token_lookup_conn(c, hash, ret);
        sqlite_reader_put(s, c);
        return r;
}

static bool setting_key_is_valid(const char *key) {
        size_t l = key ? strnlen(key, SETTING_KEY_MAX + 1) : 0;
        return l > 0 && l <= SETTING_KEY_MAX;
}

static int setting_get_conn(struct sqlite_conn *c, const char *key, char **ret) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_SETTING_GET, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sqlite_errno(rc);
        const char *v = (const char *) sqlite3_column_text(q, 0);
        char *copy = v ? strdup(v) : NULL;
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int setting_get(struct store *st, const char *key, char **ret) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!setting_key_is_valid(key) || !ret)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = setting_get_conn(c, key, ret);
        sqlite_reader_put(s, c);
        return r;
}

static int setting_set(struct store *st, const char *key, const char *value) {
        struct sqlite_store *s = sqlite_store_of(st);
        int r;

        if (!setting_key_is_valid(key) || !value || strnlen(value, SETTING_VALUE_MAX + 1) > SETTING_VALUE_MAX)
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        sqlite3_stmt *q = NULL;
        r = sqlite_conn_stmt(s->writer, STMT_SETTING_SET, &q);
        if (r >= 0) {
                sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
                r = sqlite_step_done(q);
                sqlite_stmt_releasep(&q);
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

/* --- audit references --- */

static bool audit_object_is_valid(const char *id) {
        size_t l = id ? strnlen(id, STORE_AUDIT_OBJECT_MAX + 1) : 0;
        return l > 0 && l <= STORE_AUDIT_OBJECT_MAX;
}

static int audit_ref_add(struct store *st, const char *object_id, uint64_t index) {
        struct sqlite_store *s = sqlite_store_of(st);
        int r;

        /* SQLite integers are signed 64-bit. */
        if (!audit_object_is_valid(object_id) || index > (uint64_t) INT64_MAX)
                return -EINVAL;
        pthread_mutex_lock(&s->write_lock);
        sqlite3_stmt *q = NULL;
        r = sqlite_conn_stmt(s->writer, STMT_AUDIT_REF_ADD, &q);
        if (r >= 0) {
                sqlite3_bind_text(q, 1, object_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 2, (int64_t) index);
                r = sqlite_step_done(q);
                sqlite_stmt_releasep(&q);
        }
        pthread_mutex_unlock(&s->write_lock);
        return r;
}

static int audit_ref_list_conn(struct sqlite_conn *c, const char *object_id, uint64_t **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        _cleanup_free_ uint64_t *v = NULL;
        size_t n = 0, cap = 0;
        int r = sqlite_conn_stmt(c, STMT_AUDIT_REF_LIST, &q);
        if (r < 0)
                return r;
        sqlite3_bind_text(q, 1, object_id, -1, SQLITE_STATIC);
        for (;;) {
                int rc = sqlite3_step(q);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW)
                        return sqlite_errno(rc);
                int64_t x = sqlite3_column_int64(q, 0);
                if (x < 0)
                        return -EBADMSG;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        uint64_t *nv = reallocarray(v, ncap, sizeof *nv);
                        if (!nv)
                                return -ENOMEM;
                        v = nv;
                        cap = ncap;
                }
                v[n++] = (uint64_t) x;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static int audit_ref_list(struct store *st, const char *object_id, uint64_t **ret, size_t *ret_n) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!audit_object_is_valid(object_id) || !ret || !ret_n)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = audit_ref_list_conn(c, object_id, ret, ret_n);
        sqlite_reader_put(s, c);
        return r;
}

static int audit_ref_max_conn(struct sqlite_conn *c, uint64_t *ret_next) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        int r = sqlite_conn_stmt(c, STMT_AUDIT_REF_MAX, &q);
        if (r < 0)
                return r;
        int rc = sqlite3_step(q);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -EBADMSG : sqlite_errno(rc);
        if (sqlite3_column_type(q, 0) == SQLITE_NULL) {
                *ret_next = 0;
                return 0;
        }
        int64_t x = sqlite3_column_int64(q, 0);
        if (x < 0)
                return -EBADMSG;
        *ret_next = (uint64_t) x + 1;
        return 0;
}

static int audit_ref_max(struct store *st, uint64_t *ret_next) {
        struct sqlite_store *s = sqlite_store_of(st);
        struct sqlite_conn *c;

        if (!ret_next)
                return -EINVAL;
        int r = sqlite_reader_get(s, &c);
        if (r < 0)
                return r;
        r = audit_ref_max_conn(c, ret_next);
        sqlite_reader_put(s, c);
        return r;
}

/* --- open and close --- */

static void sqlite_store_close(struct store *st) {
        struct sqlite_store *s = sqlite_store_of(st);
        if (!s)
                return;
        while (s->pool_free) {
                struct sqlite_conn *c = s->pool_free;
                s->pool_free = c->next;
                sqlite_conn_close(c);
        }
        sqlite_conn_close(s->writer); /* the last connection to close checkpoints the WAL */
        pthread_mutex_destroy(&s->write_lock);
        pthread_mutex_destroy(&s->queue_lock);
        pthread_cond_destroy(&s->queue_cond);
        pthread_mutex_destroy(&s->pool_lock);
        pthread_cond_destroy(&s->pool_cond);
        free(s->path);
        free(s);
}

static const struct store_ops sqlite_ops = {
        .name = "sqlite",
        .close = sqlite_store_close,
        .org_insert = org_insert,
        .org_get = org_get,
        .org_foreach = org_foreach,
        .document_insert = sqlite_document_insert,
        .document_insert_ref = sqlite_document_insert_ref,
        .commit_stats = sqlite_store_commit_stats,
        .document_get = sqlite_document_get,
        .document_list = sqlite_document_list,
        .document_delete = sqlite_document_delete,
        .document_exists = sqlite_document_exists,
        .seal_get = sqlite_seal_get,
        .seal_upgrade = sqlite_seal_upgrade,
        .seal_list_level = sqlite_seal_list_level,
        .document_stats = sqlite_document_stats,
        .document_clear_names = sqlite_document_clear_names,
        .document_seal_names = sqlite_document_seal_names,
        .compact = sqlite_store_compact,
        .token_insert = token_insert,
        .token_lookup = token_lookup,
        .org_update = sqlite_org_update,
        .user_insert = sqlite_user_insert,
        .user_get = sqlite_user_get,
        .user_get_by_index = sqlite_user_get_by_index,
        .user_list = sqlite_user_list,
        .user_update = sqlite_user_update,
        .user_login_update = sqlite_user_login_update,
        .user_delete = sqlite_user_delete,
        .user_count_role = sqlite_user_count_role,
        .user_count_active_role = sqlite_user_count_active_role,
        .recovery_set = sqlite_recovery_set,
        .recovery_use = sqlite_recovery_use,
        .recovery_count = sqlite_recovery_count,
        .session_insert = sqlite_session_insert,
        .session_lookup = sqlite_session_lookup,
        .session_touch = sqlite_session_touch,
        .session_revoke = sqlite_session_revoke,
        .session_revoke_user = sqlite_session_revoke_user,
        .token_list = sqlite_token_list,
        .token_revoke = sqlite_token_revoke,
        .token_revoke_kind = sqlite_token_revoke_kind,
        .token_touch = sqlite_token_touch,
        .setting_get = setting_get,
        .setting_set = setting_set,
        .audit_ref_add = audit_ref_add,
        .audit_ref_list = audit_ref_list,
        .audit_ref_max = audit_ref_max,
        .document_set_retention = sqlite_document_set_retention,
        .document_erase = sqlite_document_erase,
        .tombstone_get = sqlite_tombstone_get,
        .document_expired = sqlite_document_expired,
        .hold_insert = sqlite_hold_insert,
        .hold_release = sqlite_hold_release,
        .hold_list = sqlite_hold_list,
};

int store_sqlite_open(const char *path, bool create, struct store **ret) {
        bool created = false;
        int r;

        if (!path || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        /* Create the file ourselves so that it (and the -wal and -shm SQLite derives from it) is 0600. */
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0), 0600);
        if (fd < 0 && create && errno == EEXIST)
                fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        else if (fd >= 0 && create)
                created = true;
        if (fd < 0)
                return negative_errno();
        close(fd);

        struct sqlite_store *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->base.ops = &sqlite_ops;
        pthread_mutex_init(&s->write_lock, NULL);
        pthread_mutex_init(&s->queue_lock, NULL);
        pthread_cond_init(&s->queue_cond, NULL);
        pthread_mutex_init(&s->pool_lock, NULL);
        pthread_cond_init(&s->pool_cond, NULL);
        s->path = strdup(path);
        if (!s->path) {
                r = -ENOMEM;
                goto fail;
        }
        r = sqlite_conn_open(path, true, &s->writer);
        if (r < 0)
                goto fail;
        r = sqlite_schema_migrate(s->writer, create);
        if (r < 0)
                goto fail;
        if (created) {
                r = fsync_parent(path);
                if (r < 0)
                        goto fail;
        }
        *ret = &s->base;
        return 0;
fail:
        sqlite_store_close(&s->base);
        if (created)
                (void) unlink(path);
        return r;
}
