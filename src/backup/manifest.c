/* manifest.c: writing and checking signed snapshot manifests. */
#include "backup/manifest.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zstd.h>

#include "seal/signer.h"
#include "seal/signer_backup.h"

#define HDR SIGNER_MANIFEST_HEADER_SIZE
#define SIG SIGNER_BACKUP_SIG_SIZE
#define BODY_JSON_MAX ((size_t) 256 << 20)

void backup_snapshot_clear(struct backup_snapshot *s) {
        json_decref(s->body);
        *s = (struct backup_snapshot){};
}

static size_t body_aad(const struct backup_repo *r, uint8_t aad[8 + BACKUP_REPO_ID_SIZE]) {
        memcpy(aad, "CFRSNAPB", 8);
        memcpy(aad + 8, r->id, BACKUP_REPO_ID_SIZE);
        return 8 + BACKUP_REPO_ID_SIZE;
}

int backup_manifest_write(struct backup_repo *r, struct signer *s, enum backup_series series, uint64_t audit_size,
                          const uint8_t audit_root[32], json_t *body, backup_id *ret_id) {
        _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        _cleanup_free_ uint8_t *z = NULL;
        _cleanup_buf_ struct buf sealed = {}, file = {};
        uint8_t h[HDR] = { 0 }, sig[SIG], aad[8 + BACKUP_REPO_ID_SIZE];
        backup_id body_id;
        size_t zb, zn;
        char name[128];
        int rc;

        if (!text)
                return -ENOMEM;
        zb = ZSTD_compressBound(strlen(text));
        z = malloc(zb);
        if (!z)
                return -ENOMEM;
        zn = ZSTD_compress(z, zb, text, strlen(text), 3);
        if (ZSTD_isError(zn))
                return -EIO;
        buf_init(&sealed, BODY_JSON_MAX);
        rc = backup_meta_seal(r->keys, aad, body_aad(r, aad), z, zn, &sealed);
        if (rc < 0)
                return rc;
        backup_content_id(sealed.data, sealed.len, &body_id);
        memcpy(h, SIGNER_MANIFEST_MAGIC, 8);
        backup_put_u32(h + 8, SIGNER_MANIFEST_VERSION);
        h[12] = (uint8_t) series;
        backup_put_u64(h + 16, (uint64_t) time(NULL));
        backup_put_u64(h + 24, audit_size);
        memcpy(h + 32, audit_root, 32);
        memcpy(h + 64, r->id, BACKUP_REPO_ID_SIZE);
        memcpy(h + 80, body_id.b, BACKUP_ID_SIZE);
        backup_put_u64(h + 112, sealed.len);
        rc = signer_sign_manifest(s, r->verifier, h, sizeof h, sig);
        if (rc < 0)
                return rc;
        buf_init(&file, BODY_JSON_MAX);
        if ((rc = buf_append(&file, h, sizeof h)) < 0 || (rc = buf_append(&file, sig, sizeof sig)) < 0 ||
            (rc = buf_append(&file, sealed.data, sealed.len)) < 0)
                return rc;
        backup_content_id(file.data, file.len, ret_id);
        backup_object_name("snapshots", ret_id, name, sizeof name);
        return backup_dest_put_series(r->dest, name, (int) series, file.data, file.len);
}

int backup_manifest_read(struct backup_repo *r, const char *name, struct backup_snapshot *ret, const char **ret_what) {
        _cleanup_buf_ struct buf file = {}, zbody = {};
        _cleanup_free_ char *text = NULL;
        uint8_t aad[8 + BACKUP_REPO_ID_SIZE];
        backup_id id, got;
        unsigned long long clen;
        uint64_t size;
        int64_t mtime;
        const uint8_t *h;
        int rc;

        *ret_what = "damaged";
        if (strncmp(name, "snapshots/", 10) != 0 || backup_id_parse(name + 10, &id) < 0) {
                *ret_what = "not a snapshot name";
                return -EBADMSG;
        }
        rc = r->dest->ops->stat(r->dest, name, &size, &mtime);
        if (rc < 0)
                return rc;
        buf_init(&file, BODY_JSON_MAX);
        rc = r->dest->ops->get(r->dest, name, 0, BACKUP_DEST_WHOLE, &file);
        if (rc < 0)
                return rc;
        if (file.len < HDR + SIG + BACKUP_SEAL_OVERHEAD) {
                *ret_what = "truncated";
                return -EBADMSG;
        }
        h = file.data;
        /* the signature first: a manifest written without the key is refused as such */
        if (signer_manifest_verify(r->verifier, h, HDR, file.data + HDR) < 0) {
                *ret_what = "signature does not verify under the repository's key (not written by this vault)";
                return -EBADMSG;
        }
        backup_content_id(file.data, file.len, &got);
        if (sodium_memcmp(got.b, id.b, BACKUP_ID_SIZE) != 0) {
                *ret_what = "content does not match its name (altered or truncated)";
                return -EBADMSG;
        }
        if (memcmp(h, SIGNER_MANIFEST_MAGIC, 8) != 0 || backup_get_u32(h + 8) != SIGNER_MANIFEST_VERSION ||
            (h[12] != BACKUP_SERIES_DATA && h[12] != BACKUP_SERIES_KEYRING)) {
                *ret_what = "unknown manifest format";
                return -EBADMSG;
        }
        if (memcmp(h + 64, r->id, BACKUP_REPO_ID_SIZE) != 0) {
                *ret_what = "belongs to another repository";
                return -EBADMSG;
        }
        backup_content_id(file.data + HDR + SIG, file.len - HDR - SIG, &got);
        if (backup_get_u64(h + 112) != file.len - HDR - SIG || sodium_memcmp(got.b, h + 80, BACKUP_ID_SIZE) != 0) {
                *ret_what = "body does not match its signed header";
                return -EBADMSG;
        }
        buf_init(&zbody, BODY_JSON_MAX);
        rc = backup_meta_open(r->keys, aad, body_aad(r, aad), file.data + HDR + SIG, file.len - HDR - SIG, &zbody);
        if (rc < 0) {
                *ret_what = "body does not authenticate";
                return rc;
        }
        clen = ZSTD_getFrameContentSize(zbody.data, zbody.len);
        if (clen == ZSTD_CONTENTSIZE_ERROR || clen == ZSTD_CONTENTSIZE_UNKNOWN || clen > BODY_JSON_MAX) {
                *ret_what = "body does not decompress";
                return -EBADMSG;
        }
        text = malloc((size_t) clen + 1);
        if (!text)
                return -ENOMEM;
        size_t dn = ZSTD_decompress(text, (size_t) clen, zbody.data, zbody.len);
        if (ZSTD_isError(dn) || dn != clen) {
                *ret_what = "body does not decompress";
                return -EBADMSG;
        }
        json_t *body = json_loadb(text, dn, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(body) || !json_is_array(json_object_get(body, "files"))) {
                json_decref(body);
                *ret_what = "body is not a snapshot";
                return -EBADMSG;
        }
        *ret = (struct backup_snapshot){ .id = id,
                                         .series = (enum backup_series) h[12],
                                         .time = (int64_t) backup_get_u64(h + 16),
                                         .stored_time = mtime,
                                         .audit_size = backup_get_u64(h + 24),
                                         .body = body };
        memcpy(ret->audit_root, h + 32, 32);
        *ret_what = NULL;
        return 0;
}
