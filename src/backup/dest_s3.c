/* dest_s3.c: a backup destination in an S3 bucket (s3://bucket/prefix), through src/s3.
 * Write-once: a HEAD before every PUT, and If-None-Match: * on the PUT itself where the service
 * honours it, so an object is never replaced even by two writers at once. The objects' own time
 * is the server's Last-Modified. With Object Lock set, every object but the repository's
 * locks is written with a retention mode and a retain-until date set by its series: the data
 * series for object_lock_days, the keyring series for object_lock_keyring_days (short, so that
 * an erased key does not outlive its retention in a locked copy).
 * Settings: [backup] s3_* keys of coffre.conf, or the AWS_* environment. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "backup/dest.h"
#include "backup/format.h"
#include "fileio.h"
#include "s3/s3.h"

#define DEFAULT_LOCK_DAYS 7
#define DEFAULT_PART_SIZE ((size_t) 16 << 20)
#define LOCK_DAYS_MAX 36600 /* a hundred years */

static _Thread_local char last_error[600];

const char *backup_dest_last_error(void) {
        return last_error[0] ? last_error : NULL;
}

void backup_dest_error_clear(void) {
        last_error[0] = 0;
}

struct s3_priv {
        struct s3_client *c;
        char *prefix; /* "" or "some/prefix/" */
        bool if_none_match;
        enum s3_lock_mode lock;
        int64_t lock_days, keyring_lock_days;
        size_t part_size;
        char err[600];
};

/* ---- settings ---- */

#define SETTINGS_UNSET                                                                                            \
        {                                                                                                         \
                .path_style = -1, .if_none_match = -1, .lock_mode = -1, .lock_days = -1, .keyring_lock_days = -1, \
                .part_size = -1,                                                                                  \
        }
static const struct backup_s3_settings unset = SETTINGS_UNSET;

static void settings_clear(struct backup_s3_settings *s) {
        free(s->endpoint);
        free(s->region);
        free(s->access_key_id);
        free(s->secret_key_file);
        free(s->session_token_file);
        free(s->ca_file);
        *s = unset;
}

void backup_dest_conf_init(struct backup_dest_conf *c) {
        *c = (struct backup_dest_conf){ .set_up = true, .all = unset };
}

void backup_dest_conf_clear(struct backup_dest_conf *c) {
        if (!c)
                return;
        free(c->base_dir);
        settings_clear(&c->all);
        for (size_t i = 0; i < c->n_bucket; i++) {
                free(c->bucket[i].bucket);
                settings_clear(&c->bucket[i].s);
        }
        backup_dest_conf_init(c);
}

static int parse_bool(const char *v) {
        if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0)
                return 1;
        if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "0") == 0)
                return 0;
        return -1;
}

static int64_t parse_uint(const char *v, int64_t max) {
        char *end;
        if (!*v || *v < '0' || *v > '9')
                return -1;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || x > (unsigned long long) max)
                return -1;
        return (int64_t) x;
}

static int set_str(char **p, const char *v) {
        char *d = strdup(v);
        if (!d)
                return -ENOMEM;
        free(*p);
        *p = d;
        return 1;
}

static int set_one(struct backup_s3_settings *s, const char *key, const char *v) {
        int b;
        int64_t x;

        if (strcmp(key, "endpoint") == 0) {
                if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
                        return -EINVAL;
                return set_str(&s->endpoint, v);
        }
        if (strcmp(key, "region") == 0)
                return set_str(&s->region, v);
        if (strcmp(key, "access_key_id") == 0)
                return set_str(&s->access_key_id, v);
        if (strcmp(key, "secret_key_file") == 0)
                return set_str(&s->secret_key_file, v);
        if (strcmp(key, "session_token_file") == 0)
                return set_str(&s->session_token_file, v);
        if (strcmp(key, "ca_file") == 0)
                return set_str(&s->ca_file, v);
        if (strcmp(key, "path_style") == 0 || strcmp(key, "if_none_match") == 0) {
                if ((b = parse_bool(v)) < 0)
                        return -EINVAL;
                *(key[0] == 'p' ? &s->path_style : &s->if_none_match) = b;
                return 1;
        }
        if (strcmp(key, "part_size_mib") == 0) {
                if ((x = parse_uint(v, 4096)) < 5)
                        return -EINVAL; /* S3 parts are at least 5 MiB */
                s->part_size = x << 20;
                return 1;
        }
        return 0;
}

static int set_lock(struct backup_s3_settings *s, const char *key, const char *v) {
        int64_t x;
        if (strcmp(key, "object_lock") == 0) {
                if (strcmp(v, "none") == 0)
                        s->lock_mode = S3_LOCK_NONE;
                else if (strcmp(v, "governance") == 0)
                        s->lock_mode = S3_LOCK_GOVERNANCE;
                else if (strcmp(v, "compliance") == 0)
                        s->lock_mode = S3_LOCK_COMPLIANCE;
                else
                        return -EINVAL;
                return 1;
        }
        if (strcmp(key, "object_lock_days") == 0 || strcmp(key, "object_lock_keyring_days") == 0) {
                if ((x = parse_uint(v, LOCK_DAYS_MAX)) < 1)
                        return -EINVAL;
                *(strcmp(key, "object_lock_days") == 0 ? &s->lock_days : &s->keyring_lock_days) = x;
                return 1;
        }
        return 0;
}

int backup_dest_conf_set(struct backup_dest_conf *c, const char *name, const char *value) {
        char key[64], bucket[64];
        const char *br;
        size_t kl;
        struct backup_s3_settings *s = &c->all;
        bool is_s3 = strncmp(name, "s3_", 3) == 0, is_lock = strncmp(name, "object_lock", 11) == 0;

        if (!is_s3 && !is_lock)
                return 0;
        br = strchr(name, '[');
        kl = br ? (size_t) (br - name) : strlen(name);
        if (kl >= sizeof key)
                return -EINVAL;
        memcpy(key, name, kl);
        key[kl] = 0;
        if (br) {
                size_t bl = strlen(br + 1);
                if (bl < 2 || bl > sizeof bucket || br[bl] != ']')
                        return -EINVAL;
                memcpy(bucket, br + 1, bl - 1);
                bucket[bl - 1] = 0;
                size_t i;
                for (i = 0; i < c->n_bucket && strcmp(c->bucket[i].bucket, bucket) != 0; i++)
                        ;
                if (i == c->n_bucket) {
                        if (c->n_bucket >= BACKUP_S3_BUCKETS_MAX)
                                return -E2BIG;
                        c->bucket[i].bucket = strdup(bucket);
                        if (!c->bucket[i].bucket)
                                return -ENOMEM;
                        c->bucket[i].s = unset;
                        c->n_bucket++;
                }
                s = &c->bucket[i].s;
        }
        if (is_lock)
                return set_lock(s, key, value) > 0 ? 1 : -EINVAL;
        return set_one(s, key + 3, value) > 0 ? 1 : -EINVAL;
}

/* ---- objects ---- */

static bool name_ok(const char *name) {
        if (!name || !*name || name[0] == '/' || strlen(name) > 512)
                return false;
        for (const char *p = name; *p; p++) {
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '/' || *p == '-' || *p == '_' ||
                      *p == '.'))
                        return false;
                if ((p == name || p[-1] == '/') && (*p == '.' || *p == '/'))
                        return false;
        }
        return name[strlen(name) - 1] != '/';
}

static char *object_key(struct s3_priv *pv, const char *name) {
        if (!name_ok(name))
                return NULL;
        size_t l = strlen(pv->prefix) + strlen(name) + 1;
        char *k = malloc(l);
        if (k)
                snprintf(k, l, "%s%s", pv->prefix, name);
        return k;
}

static int fail(struct s3_priv *pv, int r) {
        const char *e = s3_client_error(pv->c);
        if (strcmp(e, "no error") != 0) {
                snprintf(pv->err, sizeof pv->err, "%s", e);
                snprintf(last_error, sizeof last_error, "%s", e);
        }
        return r;
}

static int put_with(struct backup_dest *d, const char *name, const void *p, size_t n, int64_t lock_days) {
        struct s3_priv *pv = d->priv;
        _cleanup_free_ char *key = object_key(pv, name);
        struct s3_object_info info;
        int r;

        pv->err[0] = 0;
        if (!key)
                return -EINVAL;
        if (n > BACKUP_OBJECT_MAX)
                return -EFBIG;
        r = s3_head_object(pv->c, key, &info);
        if (r == 0)
                return -EEXIST;
        if (r != -ENOENT)
                return fail(pv, r);
        struct s3_put_opts o = {
                .if_none_match = pv->if_none_match,
                .part_size = pv->part_size,
        };
        if (pv->lock != S3_LOCK_NONE && lock_days > 0) {
                o.lock = pv->lock;
                o.lock_until = (int64_t) time(NULL) + lock_days * 86400;
        }
        r = s3_put(pv->c, key, p, n, &o);
        if (r == -EEXIST)
                return r;
        if (r == -EDQUOT)
                r = -ENOSPC;
        return r < 0 ? fail(pv, r) : 0;
}

/* The repository's own locks (locks/...) come and go: never under Object Lock. */
static int64_t lock_days_of(struct s3_priv *pv, const char *name, int series) {
        if (strncmp(name, "locks/", 6) == 0)
                return 0;
        return series == BACKUP_SERIES_KEYRING ? pv->keyring_lock_days : pv->lock_days;
}

static int s3d_put(struct backup_dest *d, const char *name, const void *p, size_t n) {
        return put_with(d, name, p, n, lock_days_of(d->priv, name, BACKUP_SERIES_DATA));
}

static int s3d_put_series(struct backup_dest *d, const char *name, int series, const void *p, size_t n) {
        return put_with(d, name, p, n, lock_days_of(d->priv, name, series));
}

static int s3d_get(struct backup_dest *d, const char *name, uint64_t off, uint64_t len, struct buf *out) {
        struct s3_priv *pv = d->priv;
        _cleanup_free_ char *key = object_key(pv, name);
        int r;

        pv->err[0] = 0;
        if (!key)
                return -EINVAL;
        if (len != BACKUP_DEST_WHOLE && len > BACKUP_OBJECT_MAX)
                return -EFBIG;
        r = s3_get_object(pv->c, key, off, len == BACKUP_DEST_WHOLE ? S3_WHOLE : len, out);
        if (r == -ERANGE)
                r = -EBADMSG; /* shorter than asked */
        return r < 0 ? fail(pv, r) : 0;
}

struct list_ctx {
        struct s3_priv *pv;
        backup_dest_list_fn fn;
        void *ud;
};

static int list_one(const char *key, const struct s3_object_info *info, void *ud) {
        struct list_ctx *l = ud;
        size_t pl = strlen(l->pv->prefix);
        if (strncmp(key, l->pv->prefix, pl) != 0 || !name_ok(key + pl))
                return 0; /* not an object of the repository */
        return l->fn(key + pl, info->size, info->last_modified, l->ud);
}

static int s3d_list(struct backup_dest *d, const char *prefix, backup_dest_list_fn fn, void *ud) {
        struct s3_priv *pv = d->priv;
        _cleanup_free_ char *full = NULL;
        struct list_ctx l = { .pv = pv, .fn = fn, .ud = ud };
        size_t n = strlen(pv->prefix) + strlen(prefix) + 1;
        int r;

        pv->err[0] = 0;
        full = malloc(n);
        if (!full)
                return -ENOMEM;
        snprintf(full, n, "%s%s", pv->prefix, prefix);
        r = s3_list_objects(pv->c, full, 0, list_one, &l);
        return r < 0 ? fail(pv, r) : r;
}

static int s3d_del(struct backup_dest *d, const char *name) {
        struct s3_priv *pv = d->priv;
        _cleanup_free_ char *key = object_key(pv, name);
        pv->err[0] = 0;
        if (!key)
                return -EINVAL;
        int r = s3_delete_object(pv->c, key);
        return r < 0 ? fail(pv, r) : 0;
}

static int s3d_stat(struct backup_dest *d, const char *name, uint64_t *ret_size, int64_t *ret_mtime) {
        struct s3_priv *pv = d->priv;
        _cleanup_free_ char *key = object_key(pv, name);
        struct s3_object_info info;
        int r;

        pv->err[0] = 0;
        if (!key)
                return -EINVAL;
        r = s3_head_object(pv->c, key, &info);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return fail(pv, r);
        *ret_size = info.size;
        *ret_mtime = info.last_modified;
        return 0;
}

static const char *s3d_error(struct backup_dest *d) {
        struct s3_priv *pv = d->priv;
        return pv && pv->err[0] ? pv->err : NULL;
}

static void s3d_free(struct backup_dest *d) {
        struct s3_priv *pv = d->priv;
        if (!pv)
                return;
        s3_client_free(pv->c);
        free(pv->prefix);
        free(pv);
}

static const struct backup_dest_ops s3_ops = {
        .scheme = "s3",
        .put = s3d_put,
        .get = s3d_get,
        .list = s3d_list,
        .del = s3d_del,
        .stat = s3d_stat,
        .free = s3d_free,
        .put_series = s3d_put_series,
        .error = s3d_error,
};

/* ---- opening ---- */

#define PICK(field) (b && b->field ? b->field : a->field)
#define PICK_INT(field) (b && b->field >= 0 ? b->field : a->field)

static int read_secret_line(const char *base, const char *file, struct buf *out) {
        _cleanup_free_ char *path = file[0] == '/' || !base ? strdup(file) : path_join(base, file);
        int r;
        if (!path)
                return -ENOMEM;
        buf_init(out, 8192);
        r = read_file_secret(path, 8192, out);
        if (r < 0)
                return r;
        while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
                out->len--;
        if (out->len == 0 || memchr(out->data, 0, out->len) || memchr(out->data, '\n', out->len))
                return -EBADMSG;
        r = buf_reserve(out, 1);
        if (r < 0)
                return r;
        out->data[out->len] = 0;
        return 0;
}

int backup_dest_s3_open(const char *url, const struct backup_dest_conf *conf, struct backup_dest **ret) {
        static const struct backup_dest_conf empty = { .all = SETTINGS_UNSET };
        const struct backup_s3_settings *a, *b = NULL;
        struct buf secret = {}, token = {};
        char bucket[64], endpoint[300];
        const char *rest, *slash, *prefix;
        struct s3_config cfg = {};
        struct s3_priv *pv = NULL;
        struct backup_dest *d = NULL;
        int r;

        if (!url || strncmp(url, "s3://", 5) != 0)
                return -EINVAL;
        if (!conf || !conf->set_up)
                conf = &empty;
        rest = url + 5;
        slash = strchr(rest, '/');
        size_t bl = slash ? (size_t) (slash - rest) : strlen(rest);
        if (bl < 3 || bl >= sizeof bucket)
                return -EINVAL;
        memcpy(bucket, rest, bl);
        bucket[bl] = 0;
        prefix = slash ? slash + 1 : "";
        size_t pl = strlen(prefix);
        while (pl && prefix[pl - 1] == '/')
                pl--;
        if (pl) {
                char tmp[400];
                if (pl >= sizeof tmp)
                        return -EINVAL;
                memcpy(tmp, prefix, pl);
                tmp[pl] = 0;
                if (!name_ok(tmp))
                        return -EINVAL;
        }
        a = &conf->all;
        for (size_t i = 0; i < conf->n_bucket; i++)
                if (strcmp(conf->bucket[i].bucket, bucket) == 0)
                        b = &conf->bucket[i].s;

        cfg.bucket = bucket;
        cfg.endpoint = PICK(endpoint);
        cfg.region = PICK(region);
        cfg.ca_file = PICK(ca_file);
        cfg.path_style = PICK_INT(path_style) > 0;
        if (PICK_INT(path_style) < 0) {
                const char *e = getenv("AWS_S3_FORCE_PATH_STYLE");
                cfg.path_style = e && (strcmp(e, "true") == 0 || strcmp(e, "1") == 0);
        }
        if (PICK(access_key_id) || PICK(secret_key_file)) {
                /* both from the configuration, or neither: never half from the environment */
                if (!PICK(access_key_id) || !PICK(secret_key_file))
                        return -ENOKEY;
                r = read_secret_line(conf->base_dir, PICK(secret_key_file), &secret);
                if (r < 0) {
                        buf_free_secure(&secret);
                        return r == -ENOENT ? -ENOKEY : r;
                }
                cfg.access_key = PICK(access_key_id);
                cfg.secret_key = (const char *) secret.data;
                if (PICK(session_token_file)) {
                        r = read_secret_line(conf->base_dir, PICK(session_token_file), &token);
                        if (r < 0) {
                                buf_free_secure(&secret);
                                buf_free_secure(&token);
                                return r == -ENOENT ? -ENOKEY : r;
                        }
                        cfg.session_token = (const char *) token.data;
                }
        }
        bool own_keys = cfg.access_key != NULL;
        s3_config_from_env(&cfg);
        if (own_keys && !PICK(session_token_file))
                cfg.session_token = NULL; /* a token of the environment belongs to its own keys */
        if (!cfg.endpoint) {
                snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com",
                         cfg.region ? cfg.region : "us-east-1");
                cfg.endpoint = endpoint;
        }
        if (!cfg.access_key || !cfg.secret_key)
                r = -ENOKEY;
        else {
                pv = calloc(1, sizeof *pv);
                d = calloc(1, sizeof *d);
                r = pv && d ? s3_client_new(&cfg, &pv->c) : -ENOMEM;
        }
        buf_free_secure(&secret);
        buf_free_secure(&token);
        if (r < 0)
                goto fail;
        r = -ENOMEM;
        pv->prefix = malloc(pl + 2);
        if (!pv->prefix || !(d->url = strdup(url)))
                goto fail;
        snprintf(pv->prefix, pl + 2, "%.*s%s", (int) pl, prefix, pl ? "/" : "");
        pv->if_none_match = PICK_INT(if_none_match) != 0;
        pv->lock = PICK_INT(lock_mode) > 0 ? (enum s3_lock_mode) PICK_INT(lock_mode) : S3_LOCK_NONE;
        pv->lock_days = PICK_INT(lock_days) > 0 ? PICK_INT(lock_days) : DEFAULT_LOCK_DAYS;
        pv->keyring_lock_days = PICK_INT(keyring_lock_days) > 0 ? PICK_INT(keyring_lock_days) : DEFAULT_LOCK_DAYS;
        pv->part_size = PICK_INT(part_size) > 0 ? (size_t) PICK_INT(part_size) : DEFAULT_PART_SIZE;
        d->ops = &s3_ops;
        d->priv = pv;
        *ret = d;
        return 0;
fail:
        if (pv) {
                s3_client_free(pv->c);
                free(pv->prefix);
        }
        free(pv);
        if (d)
                free(d->url);
        free(d);
        return r;
}
