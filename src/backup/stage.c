/* stage.c: taking a consistent snapshot of a data directory (see stage.h). What goes into
 * each series is listed in docs/operations.md ("Backups: what goes where"). */
#include "backup/stage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <jansson.h>
#include <sqlite3.h>

#include "audit/merkle.h"
#include "buf.h"
#include "fileio.h"
#include "log.h"

#define CKPT_HDR (4 + 8 + 32)

void backup_stage_free(struct backup_stage *s) {
        if (!s)
                return;
        for (unsigned k = 0; k < 3; k++) {
                for (size_t i = 0; i < s->n_files[k]; i++) {
                        free(s->files[k][i].name);
                        free(s->files[k][i].src);
                }
                free(s->files[k]);
        }
        if (s->dir)
                (void) rm_rf(s->dir);
        if (s->lock_fd >= 0)
                close(s->lock_fd);
        free(s->dir);
        free(s->checkpoint);
        free(s);
}

static int add_file(struct backup_stage *s, unsigned series, const char *name, const char *src) {
        struct stat st;
        struct backup_stage_file *f;

        if (stat(src, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        f = realloc(s->files[series], (s->n_files[series] + 1) * sizeof *f);
        if (!f)
                return -ENOMEM;
        s->files[series] = f;
        f = &f[s->n_files[series]];
        f->name = strdup(name);
        f->src = strdup(src);
        f->mode = st.st_mode & 0777;
        if (!f->name || !f->src) {
                free(f->name);
                free(f->src);
                return -ENOMEM;
        }
        s->n_files[series]++;
        s->bytes[series] += (uint64_t) st.st_size;
        return 0;
}

/* SQLite online backup of src into dst (0600): one read transaction, so a consistent copy
 * whatever the server writes meanwhile. */
static int copy_db(const char *src, const char *dst) {
        sqlite3 *from = NULL, *to = NULL;
        sqlite3_backup *b;
        int rc, fd;

        fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        close(fd);
        rc = sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_busy_timeout(from, 10000);
        if (rc == SQLITE_OK)
                rc = sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc == SQLITE_OK) {
                b = sqlite3_backup_init(to, "main", from, "main");
                if (!b)
                        rc = sqlite3_errcode(to);
                else {
                        do
                                rc = sqlite3_backup_step(b, -1);
                        while (rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
                        rc = sqlite3_backup_finish(b) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK : rc;
                }
        }
        if (rc != SQLITE_OK)
                log_error("cannot copy %s: %s", src, from ? sqlite3_errmsg(from) : sqlite3_errstr(rc));
        sqlite3_close(from);
        sqlite3_close(to);
        return rc == SQLITE_OK ? 0 : rc == SQLITE_FULL ? -ENOSPC : -EIO;
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* Whole records of audit/entries, read in order (at most stop_at): their count, the offset
 * where the last one ends and the root of their Merkle tree. Streams: memory does not grow
 * with the log. */
static int scan_entries(FILE *f, uint64_t stop_at, uint64_t *ret_count, uint64_t *ret_end, merkle_hash *ret_root) {
        _cleanup_free_ uint8_t *skip = malloc(65535);
        struct merkle_frontier mf;
        uint64_t count = 0, off = 0;
        uint8_t hdr[4];

        if (!skip)
                return -ENOMEM;
        merkle_frontier_init(&mf);
        while (count < stop_at && fread(hdr, 1, 4, f) == 4) {
                uint32_t len = le32(hdr);
                merkle_hash leaf;
                if (len > 65535 || fread(skip, 1, len, f) != len || fread(leaf.b, 1, 32, f) != 32)
                        break; /* a torn or foreign tail: not covered by any checkpoint */
                if (merkle_frontier_append(&mf, &leaf, NULL, NULL) < 0)
                        return -EIO;
                off += 4 + (uint64_t) len + 32;
                count++;
        }
        if (ferror(f))
                return -EIO;
        *ret_count = count;
        *ret_end = off;
        if (ret_root)
                merkle_frontier_root(&mf, ret_root);
        return 0;
}

/* The last whole checkpoint record (each is checked against its SHA-256): its size, root,
 * note and the offset where it ends. */
static int last_checkpoint(FILE *f, uint64_t *ret_size, uint8_t root[32], char **ret_note, uint64_t *ret_end) {
        _cleanup_free_ uint8_t *rec = malloc(CKPT_HDR + 65536 + 32);
        _cleanup_free_ char *note = NULL;
        uint64_t off = 0, size = 0;
        bool found = false;

        if (!rec)
                return -ENOMEM;
        while (fread(rec, 1, CKPT_HDR, f) == CKPT_HDR) {
                uint32_t len = le32(rec);
                uint8_t sum[32];
                if (len > 65536 || fread(rec + CKPT_HDR, 1, (size_t) len + 32, f) != (size_t) len + 32)
                        break; /* a torn last record */
                SHA256(rec, CKPT_HDR + len, sum);
                if (memcmp(sum, rec + CKPT_HDR + len, 32) != 0)
                        return -EBADMSG;
                size = 0;
                for (unsigned i = 0; i < 8; i++)
                        size |= (uint64_t) rec[4 + i] << (8 * i);
                memcpy(root, rec + 12, 32);
                free(note);
                note = strndup((const char *) rec + CKPT_HDR, len);
                if (!note)
                        return -ENOMEM;
                off += CKPT_HDR + (uint64_t) len + 32;
                found = true;
        }
        if (ferror(f))
                return -EIO;
        if (!found)
                return -ENOENT;
        *ret_size = size;
        *ret_note = TAKE_PTR(note);
        *ret_end = off;
        return 0;
}

/* Copies the first n bytes of src to dst (a new file, 0600) and syncs it. */
static int copy_prefix(const char *src, const char *dst, uint64_t n) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        _cleanup_close_ int out = -1;
        uint8_t buf[1 << 16];
        int r = 0;

        if (in < 0)
                return negative_errno();
        out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return negative_errno();
        while (r == 0 && n > 0) {
                ssize_t got = read_full(in, buf, (size_t) MIN((uint64_t) sizeof buf, n));
                if (got < 0)
                        return (int) got;
                if (got == 0)
                        return -EBADMSG; /* shorter than it was a moment ago: not ours to explain */
                r = write_all(out, buf, (size_t) got);
                n -= (uint64_t) got;
        }
        if (r == 0 && fsync(out) < 0)
                r = negative_errno();
        return r;
}

static int stage_audit(struct backup_stage *s, const char *data_dir, uint64_t needed, int lock_fd) {
        _cleanup_free_ char *ep = path_join(data_dir, "audit/entries"), *cp = path_join(data_dir, "audit/checkpoints");
        _cleanup_free_ char *sdir = path_join(s->dir, "audit");
        _cleanup_free_ char *se = path_join(s->dir, "audit/entries"), *sc = path_join(s->dir, "audit/checkpoints");
        struct timespec start;
        int r;

        if (!ep || !cp || !sdir || !se || !sc)
                return -ENOMEM;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                _cleanup_fclose_ FILE *cf = NULL, *ef = NULL;
                uint64_t size, count, end, cend;
                uint8_t root[32];
                merkle_hash got;
                char *note = NULL;

                cf = fopen(cp, "rbe");
                if (!cf)
                        return log_error_errno(negative_errno(), "cannot read %s: %m", cp);
                r = last_checkpoint(cf, &size, root, &note, &cend);
                if (r < 0)
                        return log_error_errno(r, "audit/checkpoints holds no valid checkpoint: %s", strerror(-r));
                if (size < needed) {
                        struct timespec now;
                        free(note);
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        if (lock_fd >= 0 || now.tv_sec - start.tv_sec > BACKUP_STAGE_WAIT_SEC)
                                return log_error_errno(-EAGAIN,
                                                       "the audit log holds %llu entries but its last signed "
                                                       "checkpoint covers %llu: start the server so that it signs "
                                                       "them (or wait for it), then run the backup again",
                                                       (unsigned long long) needed, (unsigned long long) size);
                        struct timespec d = { 0, 100 * 1000 * 1000 };
                        nanosleep(&d, NULL); /* the server checkpoints at least every second */
                        continue;
                }
                ef = fopen(ep, "rbe");
                r = ef ? scan_entries(ef, size, &count, &end, &got) : negative_errno();
                if (r >= 0 && (count != size || memcmp(got.b, root, 32) != 0))
                        r = log_error_errno(-EBADMSG,
                                            "audit/entries does not hold the tree its last checkpoint "
                                            "signs (size %llu): run coffre audit verify",
                                            (unsigned long long) size);
                if (r >= 0)
                        r = mkdir_p(sdir, 0700);
                if (r >= 0)
                        r = copy_prefix(ep, se, end);
                if (r >= 0)
                        r = copy_prefix(cp, sc, cend);
                if (r < 0) {
                        free(note);
                        return r;
                }
                s->audit_size = size;
                memcpy(s->audit_root, root, 32);
                s->checkpoint = note;
                break;
        }
        if ((r = add_file(s, BACKUP_SERIES_DATA, "audit/entries", se)) < 0 ||
            (r = add_file(s, BACKUP_SERIES_DATA, "audit/checkpoints", sc)) < 0)
                return r;
        _cleanup_free_ char *cos = path_join(data_dir, "audit/cosignatures");
        if (cos && access(cos, F_OK) == 0) {
                _cleanup_free_ char *dst = path_join(s->dir, "audit/cosignatures");
                struct stat st;
                r = stat(cos, &st) < 0 ? negative_errno() : dst ? 0 : -ENOMEM;
                if (r >= 0)
                        r = copy_prefix(cos, dst, (uint64_t) st.st_size);
                if (r >= 0)
                        r = add_file(s, BACKUP_SERIES_DATA, "audit/cosignatures", dst);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool id_ok(const char *id) {
        if (strlen(id) != 32)
                return false;
        for (const char *c = id; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
                        return false;
        return true;
}

/* Whether the live meta.db still has the document's row (read-only; true when in doubt). */
static bool row_still_there(const char *data_dir, const char *id) {
        _cleanup_free_ char *meta = path_join(data_dir, "meta.db");
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        bool there = true;

        if (meta && sqlite3_open_v2(meta, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK &&
            sqlite3_busy_timeout(db, 10000) == SQLITE_OK &&
            sqlite3_prepare_v2(db, "SELECT 1 FROM documents WHERE id = ?", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) == SQLITE_OK)
                there = sqlite3_step(st) != SQLITE_DONE;
        sqlite3_finalize(st);
        sqlite3_close(db);
        return there;
}

static int stage_objects(struct backup_stage *s, const char *data_dir, const char *meta_copy, json_t *rows) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        int rc, r = 0;

        rc = sqlite3_open_v2(meta_copy, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v2(db, "SELECT id FROM documents ORDER BY id", -1, &st, NULL);
        while (rc == SQLITE_OK && r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *id = (const char *) sqlite3_column_text(st, 0);
                char rel[128], *src;
                rc = SQLITE_OK;
                if (!id || !id_ok(id)) {
                        r = log_error_errno(-EBADMSG, "meta.db holds a document id that is not one");
                        break;
                }
                snprintf(rel, sizeof rel, "objects/%.2s/%.2s/%s", id, id + 2, id);
                src = path_join(data_dir, rel);
                if (!src || json_object_set_new(rows, id, json_true()) < 0) {
                        free(src);
                        r = -ENOMEM;
                        break;
                }
                r = add_file(s, BACKUP_SERIES_DATA, rel, src);
                if (r == -ENOENT && !row_still_there(data_dir, id)) {
                        /* deleted since the metadata was copied: its key is gone too */
                        log_info("a document deleted during the backup is not in this snapshot");
                        r = 0;
                } else if (r < 0)
                        log_error("document %s has no object in %s/objects: %s", id, data_dir, strerror(-r));
                free(src);
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = log_error_errno(-EIO, "cannot list the documents of the metadata copy: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return r;
}

/* Documents the staged log says were created (and not discarded or deleted) but that have no row
 * in the metadata copy: uploads acknowledged by the log, whose row was being committed while
 * the metadata was copied. Their objects go into the snapshot too, so that the restored vault's
 * start-up recovery rebuilds their rows from the log, as after a crash. */
static int stage_logged_objects(struct backup_stage *s, const char *data_dir, json_t *rows) {
        _cleanup_free_ char *ep = path_join(s->dir, "audit/entries");
        _cleanup_free_ uint8_t *rec = malloc(65536);
        _cleanup_fclose_ FILE *f = NULL;
        json_t *created = json_object(), *v;
        const char *id;
        uint8_t hdr[4];
        int r = 0;

        if (!ep || !rec || !created) {
                json_decref(created);
                return -ENOMEM;
        }
        f = fopen(ep, "rbe");
        if (!f) {
                json_decref(created);
                return negative_errno();
        }
        while (r == 0 && fread(hdr, 1, 4, f) == 4) {
                uint32_t len = le32(hdr);
                if (len > 65535 || fread(rec, 1, len + 32, f) != len + 32)
                        break;
                json_t *e = json_loadb((const char *) rec, len, 0, NULL);
                const char *action = json_string_value(json_object_get(e, "action"));
                const char *obj = json_string_value(json_object_get(e, "object"));
                if (action && obj && id_ok(obj)) {
                        if (strcmp(action, "document.create") == 0 || strcmp(action, "document.restore") == 0)
                                r = json_object_set_new(created, obj, json_true()) < 0 ? -ENOMEM : 0;
                        else if (strcmp(action, "document.delete") == 0 || strcmp(action, "document.discard") == 0 ||
                                 strcmp(action, "document.quarantine") == 0)
                                (void) json_object_del(created, obj);
                }
                json_decref(e);
        }
        json_object_foreach(created, id, v) {
                char rel[128];
                if (r < 0)
                        break;
                if (json_object_get(rows, id))
                        continue;
                snprintf(rel, sizeof rel, "objects/%.2s/%.2s/%s", id, id + 2, id);
                _cleanup_free_ char *src = path_join(data_dir, rel);
                r = src ? add_file(s, BACKUP_SERIES_DATA, rel, src) : -ENOMEM;
                if (r == -ENOENT)
                        r = log_error_errno(-EAGAIN, "a document logged in the snapshot's audit log has neither a "
                                                     "metadata row nor an object any more (it was being discarded "
                                                     "while the backup ran): run the backup again");
        }
        json_decref(created);
        return r;
}

/* coffre.conf, the log's key pair, public keys and certificates: what a restored vault needs
 * besides its databases, its log and its objects. Never keys/master.key, keys/backup.key, the
 * TLS private key or the bootstrap token. */
static int stage_config(struct backup_stage *s, const char *data_dir) {
        static const char *const always[] = { "coffre.conf", "keys/log.key", "keys/log.vkey" };
        static const char *const dirs[] = { "keys", "tls" };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(always); i++) {
                _cleanup_free_ char *src = path_join(data_dir, always[i]);
                if (!src)
                        return -ENOMEM;
                r = add_file(s, BACKUP_SERIES_DATA, always[i], src);
                if (r < 0)
                        return log_error_errno(r, "cannot read %s/%s: %s", data_dir, always[i], strerror(-r));
        }
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *dir = path_join(data_dir, dirs[i]);
                DIR *d = dir ? opendir(dir) : NULL;
                struct dirent *de;
                if (!d)
                        continue;
                r = 0;
                while (r == 0 && (de = readdir(d))) {
                        const char *n = de->d_name;
                        size_t l = strlen(n);
                        bool pub = (l > 4 && strcmp(n + l - 4, ".pub") == 0) ||
                                   (l > 5 && strcmp(n + l - 5, ".vkey") == 0 && strcmp(n, "log.vkey") != 0) ||
                                   (l > 4 && strcmp(n + l - 4, ".crt") == 0) ||
                                   (l > 4 && strcmp(n + l - 4, ".pem") == 0 && strstr(n, "key") == NULL);
                        if (n[0] == '.' || !pub)
                                continue;
                        char rel[600];
                        snprintf(rel, sizeof rel, "%s/%s", dirs[i], n);
                        _cleanup_free_ char *src = path_join(data_dir, rel);
                        r = src ? add_file(s, BACKUP_SERIES_DATA, rel, src) : -ENOMEM;
                }
                closedir(d);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Staging directories of runs that were killed (their lock is free): they hold copies of meta.db
 * and keyring.db, which must not outlive the run (a key erased since would survive in them). */
static void remove_stale_stages(const char *tmp_base) {
        DIR *d = opendir(tmp_base);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, "coffre-backup.", 14) != 0 || strlen(de->d_name) != 20)
                        continue;
                _cleanup_free_ char *dir = path_join(tmp_base, de->d_name);
                _cleanup_free_ char *lock = dir ? path_join(dir, "lock") : NULL;
                struct stat st;
                if (!lock || lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
                        continue;
                int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 && time(NULL) - st.st_mtime < 3600)
                        continue; /* perhaps a run between mkdtemp and its lock */
                if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        close(fd); /* a run in progress */
                        continue;
                }
                if (fd >= 0)
                        close(fd);
                if (rm_rf(dir) == 0)
                        log_info("removed the staging directory of an interrupted backup run");
        }
        closedir(d);
}

int backup_stage_take(const char *data_dir, const char *tmp_base, struct backup_stage **ret) {
        _cleanup_(backup_stage_freep) struct backup_stage *s = calloc(1, sizeof *s);
        _cleanup_free_ char *meta = path_join(data_dir, "meta.db"), *keyring = path_join(data_dir, "keyring.db");
        if (s)
                s->lock_fd = -1;
        _cleanup_free_ char *lock = path_join(data_dir, "audit/lock"), *ep = path_join(data_dir, "audit/entries");
        _cleanup_free_ char *smeta = NULL, *skeyring = NULL, *tmpl = NULL;
        _cleanup_close_ int lock_fd = -1;
        _cleanup_fclose_ FILE *ef = NULL;
        uint64_t needed, end;
        int r;

        if (!s || !meta || !keyring || !lock || !ep)
                return -ENOMEM;
        tmpl = path_join(tmp_base, "coffre-backup.XXXXXX");
        if (!tmpl || !mkdtemp(tmpl))
                return tmpl ? log_error_errno(negative_errno(), "cannot make a staging directory in %s: %m", tmp_base)
                            : -ENOMEM;
        s->dir = TAKE_PTR(tmpl);
        /* held for the life of the run: a later run removes this directory only once it is free */
        _cleanup_free_ char *slock = path_join(s->dir, "lock");
        s->lock_fd = slock ? open(slock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
        if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
                return log_error_errno(slock ? negative_errno() : -ENOMEM, "cannot lock the staging directory");
        remove_stale_stages(tmp_base);
        smeta = path_join(s->dir, "meta.db");
        skeyring = path_join(s->dir, "keyring.db");
        if (!smeta || !skeyring)
                return -ENOMEM;

        /* a stopped vault: hold its log lock shared so that no server starts meanwhile; a running
         * server holds it exclusively and checkpoints what it appends */
        lock_fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (lock_fd < 0)
                return log_error_errno(negative_errno(), "%s is not a coffre data directory (no audit/lock)", data_dir);
        if (flock(lock_fd, LOCK_SH | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return log_error_errno(negative_errno(), "cannot lock %s: %m", lock);
                close(TAKE_FD(lock_fd));
        }

        /* 1. the metadata, consistent at one instant */
        r = copy_db(meta, smeta);
        if (r < 0)
                return r;
        /* 2. every log entry written by then: the documents in the copy are logged there */
        ef = fopen(ep, "rbe");
        if (!ef)
                return log_error_errno(negative_errno(), "cannot read %s: %m", ep);
        r = scan_entries(ef, UINT64_MAX, &needed, &end, NULL);
        if (r < 0)
                return r;
        /* 3. the log up to a signed checkpoint covering them */
        r = stage_audit(s, data_dir, needed, lock_fd);
        if (r < 0)
                return r;
        /* 4. the keyring after the metadata: it holds the key of every document in the copy */
        r = copy_db(keyring, skeyring);
        if (r < 0)
                return r;
        if ((r = add_file(s, BACKUP_SERIES_DATA, "meta.db", smeta)) < 0 ||
            (r = add_file(s, BACKUP_SERIES_KEYRING, "keyring.db", skeyring)) < 0)
                return r;
        /* 5. objects: immutable once acknowledged; those whose rows are in the copy */
        json_t *rows = json_object();
        r = rows ? stage_objects(s, data_dir, smeta, rows) : -ENOMEM;
        if (r == 0)
                r = stage_logged_objects(s, data_dir, rows);
        json_decref(rows);
        if (r < 0)
                return r;
        r = stage_config(s, data_dir);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}
