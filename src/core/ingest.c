/* ingest.c: a document's way in: encrypted as it streams, key stored on the side, made durable
 * in an order that a crash at any instant leaves either nothing visible or a whole document:
 *   DEK queued at begin for the keyring's group commit, object encrypted into tmp/ -> object
 *   synced and renamed into place -> DEK durable (waited for) -> seal made (signer, over the
 *   SHA-256 computed on the way in) -> document.create and document.seal entries -> metadata
 *   row, its seal and the references to both entries committed together (the commit point) -> 201.
 * Without a seal (signer down) nothing is kept: the object and DEK go, the caller answers 503.
 * vault_recover() (recovery.c) at start settles what an interrupted ingest leaves, on the audit
 * log's evidence. It relies on one invariant, which any reordering or batching here must keep:
 * the document.create entry is durable before the 201. A key or object that no document.create
 * names was then never acknowledged, and only such remains are removed unasked. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob.h"
#include "crypto/keyring.h"
#include "crypto/object_stream.h"
#include "fields.h"
#include "hex.h"
#include "lifecycle.h"
#include "log.h"
#include "seal/cades.h"
#include "timeutil.h"
#include "vault_internal.h"

static void random_id(uint8_t raw[16], char hex[STORE_ID_LEN + 1]) {
        randombytes_buf(raw, 16);
        hex_encode(raw, 16, hex);
}

/* ---- ingest ---- */

struct vault_upload {
        struct vault *v;
        struct vault_actor actor;
        uint8_t id[16];
        char id_hex[STORE_ID_LEN + 1];
        char name[STORE_NAME_MAX + 1];
        char class_[STORE_CLASS_MAX + 1];
        char document_date[11];
        struct blob_writer *bw;
        struct obj_writer *ow;
        EVP_MD_CTX *md;
        uint64_t size;
        bool have_expected;
        uint8_t expected[32];
        uint8_t kek_id[KEYRING_ID_SIZE];
        uint8_t dek[KEYRING_KEY_SIZE];
        /* the DEK is queued for the keyring's group commit when the upload begins: any upload
         * finishing meanwhile makes it durable with its own; finish waits for it */
        struct keyring_dek_request dek_req;
        bool dek_submitted;
        int dek_result;
        bool dek_stored;
        int error;
};

/* Waits for the DEK to be durable; returns the keyring's answer. */
static int upload_join_dek(struct vault_upload *u) {
        if (u->dek_submitted) {
                u->dek_result = keyring_dek_wait(u->v->keyring, &u->dek_req);
                u->dek_submitted = false;
                u->dek_stored = u->dek_result >= 0;
        }
        return u->dek_result;
}

static int upload_sink(void *ud, const uint8_t *p, size_t n) {
        struct vault_upload *u = ud;
        return u->v->blob->ops->writer_write(u->bw, p, n);
}

static void upload_free(struct vault_upload *u, bool destroy_dek) {
        if (!u)
                return;
        (void) upload_join_dek(u);
        obj_writer_free(u->ow);
        if (u->bw)
                u->v->blob->ops->writer_abort(u->bw);
        EVP_MD_CTX_free(u->md);
        if (destroy_dek && u->dek_stored) {
                int r = keyring_dek_destroy(u->v->keyring, u->id);
                if (r < 0 && r != -ENOENT)
                        log_warn("could not destroy the key of an abandoned upload (%s); the next start removes it",
                                 strerror(-r));
        }
        sodium_memzero(u, sizeof *u);
        free(u);
}

void vault_upload_abort(struct vault_upload *u) {
        upload_free(u, true);
}

uint64_t vault_upload_size(const struct vault_upload *u) {
        return u->size;
}

int vault_upload_begin(struct vault *v, const struct vault_actor *a, const char *name, const char *class_,
                       const uint8_t *expected_sha256, struct vault_upload **ret) {
        return vault_upload_begin_dated(v, a, name, class_, NULL, expected_sha256, ret);
}

int vault_upload_begin_dated(struct vault *v, const struct vault_actor *a, const char *name, const char *class_,
                             const char *document_date, const uint8_t *expected_sha256, struct vault_upload **ret) {
        struct store_document probe;
        const char *why;
        int r;

        if (vault_check_name(name, &why) < 0 || vault_check_class(class_, &why) < 0)
                return -EINVAL;
        /* the class must exist and the date parse before any byte is taken */
        r = vault_retention_for(v, a->org_id, class_, document_date, vault_now_ms(v), &probe);
        if (r < 0)
                return r;
        struct vault_upload *u = calloc(1, sizeof *u);
        if (!u)
                return -ENOMEM;
        u->v = v;
        u->actor = *a;
        if (hex_decode(a->org_id, u->kek_id, sizeof u->kek_id) < 0) {
                r = -EINVAL;
                goto fail;
        }
        random_id(u->id, u->id_hex);
        snprintf(u->name, sizeof u->name, "%s", name);
        snprintf(u->class_, sizeof u->class_, "%s", class_);
        snprintf(u->document_date, sizeof u->document_date, "%s", document_date ? document_date : "");
        if (expected_sha256) {
                u->have_expected = true;
                memcpy(u->expected, expected_sha256, 32);
        }
        u->md = EVP_MD_CTX_new();
        if (!u->md || EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1) {
                r = -ENOMEM;
                goto fail;
        }
        randombytes_buf(u->dek, sizeof u->dek);
        r = v->blob->ops->writer_open(v->blob, u->id_hex, &u->bw);
        if (r < 0)
                goto fail;
        r = obj_writer_new(u->dek, u->id, u->kek_id, upload_sink, u, &u->ow);
        if (r < 0)
                goto fail;
        keyring_dek_submit(v->keyring, &u->dek_req, u->kek_id, u->id, u->dek);
        u->dek_submitted = true;
        *ret = u;
        return 0;
fail:
        upload_free(u, true);
        return r;
}

int vault_upload_write(struct vault_upload *u, const void *p, size_t n) {
        if (u->error)
                return u->error;
        if (EVP_DigestUpdate(u->md, p, n) != 1)
                return u->error = -ENOMEM;
        int r = obj_writer_update(u->ow, p, n);
        if (r < 0)
                return u->error = r;
        u->size += n;
        return 0;
}

int vault_upload_finish(struct vault_upload *u, const char *request_id, struct store_document *ret) {
        struct vault *v = u->v;
        struct store_document d = { 0 };
        _cleanup_(vault_free_secret_stringp) char *details = NULL;
        _cleanup_free_ uint8_t *cms = NULL, *sealed = NULL; /* declared before the first goto */
        struct store_seal seal = { .audit_index = UINT64_MAX };
        uint8_t cms_sha[32];
        size_t cms_len = 0;
        unsigned mdlen = 0;
        uint64_t index = 0;
        int r;

        if (u->error) {
                r = u->error;
                goto fail;
        }
        r = obj_writer_final(u->ow);
        if (r < 0)
                goto fail;
        if (EVP_DigestFinal_ex(u->md, d.sha256, &mdlen) != 1) {
                r = -ENOMEM;
                goto fail;
        }
        if (u->have_expected && CRYPTO_memcmp(d.sha256, u->expected, 32) != 0) {
                r = -EBADMSG;
                goto fail;
        }
        r = v->blob->ops->writer_commit(TAKE_PTR(u->bw));
        if (r < 0)
                goto fail;
        r = upload_join_dek(u);
        if (r < 0) {
                log_error("document key not stored: %s", strerror(-r));
                if (v->blob->ops->remove(v->blob, u->id_hex) < 0)
                        log_warn("could not remove the object of a failed upload; the next start removes it");
                goto fail;
        }

        /* the seal, before anything is logged: without it the upload is refused whole */
        if (vault_config_seals_class(&v->config, u->class_)) {
                struct cades_info info;
                r = vault_seal_make(v, u->actor.org_id, d.sha256, &cms, &cms_len, &info);
                if (r >= 0)
                        r = vault_seal_encrypt(u->dek, u->id_hex, cms, cms_len, &sealed, &seal.sealed_len);
                if (r < 0) {
                        log_error("document not sealed (%s): upload refused", strerror(-r));
                        if (v->blob->ops->remove(v->blob, u->id_hex) < 0)
                                log_warn("could not remove the object of a failed upload; the next start removes it");
                        /* -EBADMSG here is a seal that failed its checks, not the caller's hash */
                        r = r == -EPIPE || r == -ETIMEDOUT || r == -ECONNRESET ? -EPIPE : r == -ENOMEM ? r : -EIO;
                        goto fail;
                }
                memcpy(seal.level, info.level, sizeof seal.level);
                seal.signing_time = info.signing_time;
                seal.timestamp_time = info.timestamp_time;
                seal.sealed = sealed;
                crypto_hash_sha256(cms_sha, cms, cms_len);
                d.seal = &seal;
        }

        snprintf(d.id, sizeof d.id, "%s", u->id_hex);
        snprintf(d.org_id, sizeof d.org_id, "%s", u->actor.org_id);
        snprintf(d.name, sizeof d.name, "%s", u->name);
        snprintf(d.class_, sizeof d.class_, "%s", u->class_);
        snprintf(d.created_by, sizeof d.created_by, "%s", u->actor.actor_id);
        d.size = u->size;
        d.created_at = vault_now_ms(v);
        r = vault_retention_for(v, d.org_id, d.class_, u->document_date[0] ? u->document_date : NULL, d.created_at, &d);
        if (r < 0) {
                int k = v->blob->ops->remove(v->blob, u->id_hex);
                if (k < 0)
                        log_warn("could not remove the object of a failed upload (%s); the next start removes it",
                                 strerror(-k));
                goto fail;
        }
        r = vault_name_seal(v, &d);
        if (r < 0) {
                log_error("document %s: its name cannot be sealed: %s", d.id, strerror(-r));
                int k = v->blob->ops->remove(v->blob, u->id_hex);
                if (k < 0)
                        log_warn("could not remove the object of a failed upload (%s); the next start removes it",
                                 strerror(-k));
                goto fail;
        }
        details = vault_details_json(&d);
        /* the name in the creation entry: under the document's own key, gone with its DEK */
        uint8_t dkey[32];
        vault_document_details_key(u->dek, d.id, dkey);
        if (!details)
                r = -ENOMEM;
        else if (d.seal) {
                /* document.create and document.seal: one group, one sync */
                r = vault_record_created_sealed(v, &d, cms_sha, request_id, details, dkey, &index);
                if (r >= 0)
                        seal.audit_index = index + 1;
        } else
                r = vault_record_entry_keyed(v, d.org_id, d.created_by, "document.create", d.id, d.sha256, request_id,
                                             details, dkey, &index);
        sodium_memzero(dkey, sizeof dkey);
        if (r >= 0) {
                /* the row, its seal and the references to its entries: one commit (the commit point) */
                r = v->store->ops->document_insert_ref(v->store, &d, index);
                if (r < 0) {
                        int k = v->store->ops->audit_ref_add(v->store, d.id, index);
                        if (k < 0)
                                log_warn("audit reference %llu not stored: %s", (unsigned long long) index,
                                         strerror(-k));
                        if (d.seal && seal.audit_index != UINT64_MAX &&
                            (k = v->store->ops->audit_ref_add(v->store, d.id, seal.audit_index)) < 0)
                                log_warn("audit reference %llu not stored: %s", (unsigned long long) seal.audit_index,
                                         strerror(-k));
                        if (vault_record(v, d.org_id, d.created_by, "document.discard", d.id, NULL, request_id, NULL) <
                            0)
                                log_warn("document %s: discard not logged; the next start logs it", d.id);
                }
        }
        if (r < 0) {
                int k = v->blob->ops->remove(v->blob, u->id_hex);
                if (k < 0)
                        log_warn("could not remove the object of a failed upload (%s); the next start removes it",
                                 strerror(-k));
                goto fail;
        }
        atomic_fetch_add(&v->n_documents, 1);
        atomic_fetch_add(&v->n_bytes, d.size);
        if (d.seal && strcmp(seal.level, "B-B") == 0)
                vault_seal_upgrader_enqueue(v, d.id, d.org_id);
        upload_free(u, false);
        d.seal = NULL; /* points into this frame */
        *ret = d;
        return 0;
fail:
        upload_free(u, true);
        return r;
}
