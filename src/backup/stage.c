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

/* Whole records of audit/entries: count, end offsets and the Merkle frontier as they go. */
static int scan_entries(const uint8_t *p, size_t n, uint64_t stop_at, uint64_t *ret_count, uint64_t *ret_end,
                        merkle_hash *ret_root) {
        struct merkle_frontier f;
        size_t off = 0;
        uint64_t count = 0;

        merkle_frontier_init(&f);
        while (count < stop_at && n - off >= 4) {
                uint32_t len = (uint32_t) p[off] | (uint32_t) p[off + 1] << 8 | (uint32_t) p[off + 2] << 16 |
                               (uint32_t) p[off + 3] << 24;
                if (len > 65535 || n - off - 4 < (size_t) len + 32)
                        break;
                merkle_hash leaf;
                memcpy(leaf.b, p + off + 4 + len, 32);
                if (merkle_frontier_append(&f, &leaf, NULL, NULL) < 0)
                        return -EIO;
                off += 4 + (size_t) len + 32;
                count++;
        }
        *ret_count = count;
        *ret_end = off;
        if (ret_root)
                merkle_frontier_root(&f, ret_root);
        return 0;
}

/* The last whole checkpoint record: its size, root, note and end offset. */
static int last_checkpoint(const uint8_t *p, size_t n, uint64_t *ret_size, uint8_t root[32], char **ret_note,
                           size_t *ret_end) {
        size_t off = 0, best = SIZE_MAX, best_end = 0;

        while (n - off >= CKPT_HDR + 32) {
                uint32_t len = (uint32_t) p[off] | (uint32_t) p[off + 1] << 8 | (uint32_t) p[off + 2] << 16 |
                               (uint32_t) p[off + 3] << 24;
                uint8_t sum[32];
                if (len > 65536 || n - off - CKPT_HDR - 32 < len)
                        break;
                SHA256(p + off, CKPT_HDR + len, sum);
                if (memcmp(sum, p + off + CKPT_HDR + len, 32) != 0)
                        return -EBADMSG;
                best = off;
                off += CKPT_HDR + len + 32;
                best_end = off;
        }
        if (best == SIZE_MAX)
                return -ENOENT;
        uint32_t len = (uint32_t) p[best] | (uint32_t) p[best + 1] << 8 | (uint32_t) p[best + 2] << 16 |
                       (uint32_t) p[best + 3] << 24;
        uint64_t size = 0;
        for (unsigned i = 0; i < 8; i++)
                size |= (uint64_t) p[best + 4 + i] << (8 * i);
        memcpy(root, p + best + 12, 32);
        *ret_note = strndup((const char *) p + best + CKPT_HDR, len);
        if (!*ret_note)
                return -ENOMEM;
        *ret_size = size;
        *ret_end = best_end;
        return 0;
}

static int read_all(const char *path, struct buf *b) {
        buf_init(b, (size_t) 8 << 30);
        return read_file(path, (size_t) 8 << 30, b);
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
                _cleanup_buf_ struct buf cb = {}, eb = {};
                uint64_t size, count, end;
                uint8_t root[32];
                merkle_hash got;
                size_t cend;
                char *note = NULL;

                r = read_all(cp, &cb);
                if (r < 0)
                        return log_error_errno(r, "cannot read %s: %s", cp, strerror(-r));
                r = last_checkpoint(cb.data, cb.len, &size, root, &note, &cend);
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
                r = read_all(ep, &eb);
                if (r >= 0)
                        r = scan_entries(eb.data, eb.len, size, &count, &end, &got);
                if (r >= 0 && (count != size || memcmp(got.b, root, 32) != 0))
                        r = log_error_errno(-EBADMSG,
                                            "audit/entries does not hold the tree its last checkpoint "
                                            "signs (size %llu): run coffre audit verify",
                                            (unsigned long long) size);
                if (r >= 0)
                        r = mkdir_p(sdir, 0700);
                if (r >= 0)
                        r = write_file_atomic(se, eb.data, (size_t) end, 0600, 1);
                if (r >= 0)
                        r = write_file_atomic(sc, cb.data, cend, 0600, 1);
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
                _cleanup_buf_ struct buf b = {};
                r = read_all(cos, &b);
                if (r >= 0)
                        r = write_file_atomic(dst, b.data, b.len, 0600, 1);
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

static int stage_objects(struct backup_stage *s, const char *data_dir, const char *meta_copy) {
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
                if (!src) {
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

int backup_stage_take(const char *data_dir, const char *tmp_base, struct backup_stage **ret) {
        _cleanup_(backup_stage_freep) struct backup_stage *s = calloc(1, sizeof *s);
        _cleanup_free_ char *meta = path_join(data_dir, "meta.db"), *keyring = path_join(data_dir, "keyring.db");
        _cleanup_free_ char *lock = path_join(data_dir, "audit/lock"), *ep = path_join(data_dir, "audit/entries");
        _cleanup_free_ char *smeta = NULL, *skeyring = NULL, *tmpl = NULL;
        _cleanup_close_ int lock_fd = -1;
        _cleanup_buf_ struct buf eb = {};
        uint64_t needed, end;
        int r;

        if (!s || !meta || !keyring || !lock || !ep)
                return -ENOMEM;
        tmpl = path_join(tmp_base, "coffre-backup.XXXXXX");
        if (!tmpl || !mkdtemp(tmpl))
                return tmpl ? log_error_errno(negative_errno(), "cannot make a staging directory in %s: %m", tmp_base)
                            : -ENOMEM;
        s->dir = TAKE_PTR(tmpl);
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
        r = read_all(ep, &eb);
        if (r < 0)
                return log_error_errno(r, "cannot read %s: %s", ep, strerror(-r));
        r = scan_entries(eb.data, eb.len, UINT64_MAX, &needed, &end, NULL);
        buf_free(&eb);
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
        r = stage_objects(s, data_dir, smeta);
        if (r < 0)
                return r;
        r = stage_config(s, data_dir);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}
