/* drill.c: decrypting and hashing every document of a restored data directory (see drill.h). */
#include "backup/drill.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>
#include <sqlite3.h>

#include "crypto/keyring.h"
#include "crypto/object_stream.h"
#include "fileio.h"
#include "hex.h"

static int read_at(void *ud, uint8_t *p, size_t n, uint64_t off) {
        int fd = *(int *) ud;
        ssize_t k;
        do
                k = pread(fd, p, n, (off_t) off);
        while (k < 0 && errno == EINTR);
        return k < 0 ? negative_errno() : (int) k;
}

struct hash_sink {
        EVP_MD_CTX *md;
        uint64_t n;
};

static int sink(void *ud, const uint8_t *p, size_t n) {
        struct hash_sink *h = ud;
        h->n += n;
        return EVP_DigestUpdate(h->md, p, n) == 1 ? 0 : -EIO;
}

/* 0 when the document decrypts to size bytes hashing to sha; else a reason. */
static const char *check_one(struct keyring *k, const char *dir, const char *id, uint64_t size, const uint8_t *sha) {
        uint8_t raw[16], dek[KEYRING_KEY_SIZE], digest[32];
        char rel[128];
        struct stat st;
        const char *why = NULL;

        if (hex_decode(id, raw, sizeof raw) < 0)
                return "not a document id";
        snprintf(rel, sizeof rel, "objects/%.2s/%.2s/%s", id, id + 2, id);
        _cleanup_free_ char *path = path_join(dir, rel);
        _cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
        if (fd < 0 || fstat(fd, &st) < 0)
                return "its object is missing";
        if (keyring_dek_get(k, raw, dek) < 0)
                return "its key is not in the keyring";
        struct obj_reader *r = NULL;
        struct hash_sink h = { .md = EVP_MD_CTX_new() };
        if (!h.md || EVP_DigestInit_ex(h.md, EVP_sha256(), NULL) != 1)
                why = "out of memory";
        else if (obj_reader_new(dek, (uint64_t) st.st_size, read_at, &fd, &r) < 0 ||
                 obj_reader_read(r, 0, obj_reader_plaintext_size(r), sink, &h) < 0)
                why = "its object does not decrypt (damaged, or another key)";
        else if (EVP_DigestFinal_ex(h.md, digest, NULL) != 1)
                why = "out of memory";
        else if (h.n != size || sodium_memcmp(digest, sha, 32) != 0)
                why = "its content does not match the size and SHA-256 of its row";
        sodium_memzero(dek, sizeof dek);
        obj_reader_free(r);
        EVP_MD_CTX_free(h.md);
        return why;
}

int backup_drill_check(const char *dir, const char *master_key_file,
                       void (*report)(const char *id, const char *what, void *ud), void *ud,
                       struct backup_drill_result *ret) {
        _cleanup_free_ char *kp = path_join(dir, "keyring.db"), *mp = path_join(dir, "meta.db");
        _cleanup_(keyring_freep) struct keyring *k = NULL;
        struct master_key *m = NULL;
        struct backup_drill_result res = {};
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        int rc;

        if (!kp || !mp)
                return -ENOMEM;
        rc = master_key_load_file(master_key_file, &m);
        if (rc < 0)
                return rc;
        rc = keyring_open(kp, false, m, &k);
        if (rc < 0)
                return rc == -EBADMSG ? -EKEYREJECTED : rc;
        if (sqlite3_open_v2(mp, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "SELECT id, size, sha256 FROM documents ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
                sqlite3_close(db);
                return -EBADMSG;
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *id = (const char *) sqlite3_column_text(st, 0);
                sqlite3_int64 size = sqlite3_column_int64(st, 1);
                const uint8_t *sha = sqlite3_column_blob(st, 2);
                const char *why;

                res.documents++;
                if (!id || size < 0 || !sha || sqlite3_column_bytes(st, 2) != 32)
                        why = "its metadata row is malformed";
                else
                        why = check_one(k, dir, id, (uint64_t) size, sha);
                if (why) {
                        res.bad++;
                        if (report)
                                report(id ? id : "?", why, ud);
                } else
                        res.bytes += (uint64_t) size;
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        if (rc != SQLITE_DONE)
                return -EIO;
        *ret = res;
        return 0;
}
