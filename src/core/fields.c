/* fields.c: the personal fields of the metadata store sealed under each organisation's field keys.
 *
 * The two keys of an organisation are unwrapped from the keyring on first use and kept for the
 * life of the vault in slabs of libsodium guarded, locked memory (never moved, so a caller may
 * keep the pointers), wiped at close. A slab is never freed before close; a lookup is a scan under
 * a mutex, which is cheap next to the keyring's unwrap it saves (one per field otherwise). */
#include "fields.h"
#include "vault_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/field.h"
#include "crypto/keyring.h"
#include "hex.h"
#include "log.h"

_Static_assert(STORE_NAME_SEALED_MAX == STORE_NAME_MAX + FIELD_OVERHEAD, "a sealed name fits its column");
_Static_assert(STORE_NAME_INDEX_SIZE == FIELD_INDEX_SIZE, "a name's index fits its column");

#define SLAB_SLOTS 64u
#define SEAL_BATCH 500u
#define NAMES_SETTING "document_names"
#define NAMES_SEALED "sealed"

struct field_key_slot {
        char org_id[STORE_ID_LEN + 1];
        uint8_t enc[KEYRING_KEY_SIZE];
        uint8_t idx[KEYRING_KEY_SIZE];
};

struct field_key_slab {
        struct field_key_slot *slots; /* SLAB_SLOTS, sodium_allocarray'd */
        unsigned used;
        struct field_key_slab *next;
};

struct vault_field_keys_cache {
        pthread_mutex_t lock;
        struct field_key_slab *slabs; /* newest first */
};

static const char TABLE[] = "documents", COLUMN[] = "name";

static struct field_key_slot *cache_find(struct vault_field_keys_cache *c, const char *org_id) {
        for (struct field_key_slab *s = c->slabs; s; s = s->next)
                for (unsigned i = 0; i < s->used; i++)
                        if (strcmp(s->slots[i].org_id, org_id) == 0)
                                return &s->slots[i];
        return NULL;
}

static int cache_get(struct vault *v, struct vault_field_keys_cache **ret) {
        if (!v->field_keys) /* made by vault_open */
                return -EINVAL;
        *ret = v->field_keys;
        return 0;
}

int vault_field_keys_init(struct vault *v) {
        if (v->field_keys)
                return 0;
        struct vault_field_keys_cache *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        v->field_keys = c;
        return 0;
}

int vault_field_keys(struct vault *v, const char *org_id, const uint8_t **ret_enc, const uint8_t **ret_idx) {
        struct vault_field_keys_cache *c;
        uint8_t kek_id[KEYRING_ID_SIZE], enc[KEYRING_KEY_SIZE], idx[KEYRING_KEY_SIZE];
        int r;

        if (!v || !ret_enc || !ret_idx || !org_id || strlen(org_id) != STORE_ID_LEN ||
            hex_decode(org_id, kek_id, sizeof kek_id) < 0)
                return -EINVAL;
        r = cache_get(v, &c);
        if (r < 0)
                return r;
        pthread_mutex_lock(&c->lock);
        struct field_key_slot *s = cache_find(c, org_id);
        if (s) {
                *ret_enc = s->enc;
                *ret_idx = s->idx;
                pthread_mutex_unlock(&c->lock);
                return 0;
        }
        /* Unwrapped under the lock: two first uses of one organisation do not both unwrap. */
        r = keyring_org_key(v->keyring, kek_id, "field", enc);
        if (r >= 0)
                r = keyring_org_key(v->keyring, kek_id, "field-index", idx);
        if (r >= 0 && (!c->slabs || c->slabs->used == SLAB_SLOTS)) {
                struct field_key_slab *slab = calloc(1, sizeof *slab);
                if (slab)
                        slab->slots = sodium_allocarray(SLAB_SLOTS, sizeof *slab->slots);
                if (!slab || !slab->slots) {
                        free(slab);
                        r = -ENOMEM;
                } else {
                        slab->next = c->slabs;
                        c->slabs = slab;
                }
        }
        if (r >= 0) {
                s = &c->slabs->slots[c->slabs->used++];
                snprintf(s->org_id, sizeof s->org_id, "%s", org_id);
                memcpy(s->enc, enc, sizeof enc);
                memcpy(s->idx, idx, sizeof idx);
                *ret_enc = s->enc;
                *ret_idx = s->idx;
        }
        pthread_mutex_unlock(&c->lock);
        sodium_memzero(enc, sizeof enc);
        sodium_memzero(idx, sizeof idx);
        return r;
}

void vault_field_keys_free(struct vault *v) {
        struct vault_field_keys_cache *c = v ? v->field_keys : NULL;
        if (!c)
                return;
        for (struct field_key_slab *s = c->slabs, *next; s; s = next) {
                next = s->next;
                sodium_free(s->slots); /* wipes them */
                free(s);
        }
        pthread_mutex_destroy(&c->lock);
        free(c);
        v->field_keys = NULL;
}

int vault_name_seal(struct vault *v, struct store_document *d) {
        const uint8_t *enc, *idx;
        size_t n = strnlen(d->name, sizeof d->name);
        if (n == 0 || n > STORE_NAME_MAX)
                return -EINVAL;
        int r = vault_field_keys(v, d->org_id, &enc, &idx);
        if (r < 0)
                return r;
        r = field_encrypt(enc, TABLE, COLUMN, d->id, d->name, n, d->name_sealed);
        if (r >= 0)
                r = field_blind_index(idx, TABLE, COLUMN, d->name, n, d->name_index);
        if (r < 0)
                return r;
        d->name_sealed_len = n + FIELD_OVERHEAD;
        return 0;
}

int vault_name_open(struct vault *v, struct store_document *d) {
        size_t failed;
        return vault_names_open(v, d, 1, &failed);
}

/* d->name from d->name_sealed under ctx, the key of d's organisation. */
static int name_open_ctx(struct field_ctx *ctx, struct store_document *d) {
        size_t n = 0;
        if (d->name_sealed_len < FIELD_OVERHEAD || d->name_sealed_len > sizeof d->name_sealed)
                return -EBADMSG;
        int r = field_ctx_decrypt(ctx, TABLE, COLUMN, d->id, d->name_sealed, d->name_sealed_len, (uint8_t *) d->name,
                                  &n);
        if (r < 0)
                return r;
        /* the sealed length bounds n to STORE_NAME_MAX; a NUL inside would cut the name short */
        if (memchr(d->name, 0, n)) {
                sodium_memzero(d->name, sizeof d->name);
                return -EBADMSG;
        }
        d->name[n] = 0;
        return 0;
}

int vault_names_open(struct vault *v, struct store_document *docs, size_t n, size_t *ret_failed) {
        _cleanup_(field_ctx_freep) struct field_ctx *ctx = NULL;
        const char *ctx_org = NULL;
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                if (!ctx_org || strcmp(ctx_org, docs[i].org_id) != 0) {
                        const uint8_t *enc, *idx;
                        field_ctx_free(TAKE_PTR(ctx));
                        r = vault_field_keys(v, docs[i].org_id, &enc, &idx);
                        if (r >= 0)
                                r = field_ctx_new(enc, &ctx);
                        if (r < 0) {
                                *ret_failed = i;
                                return r;
                        }
                        ctx_org = docs[i].org_id;
                }
                r = name_open_ctx(ctx, &docs[i]);
                if (r < 0) {
                        *ret_failed = i;
                        return r;
                }
        }
        return 0;
}

int vault_name_index(struct vault *v, const char *org_id, const char *name, uint8_t out[STORE_NAME_INDEX_SIZE]) {
        const uint8_t *enc, *idx;
        size_t n = name ? strnlen(name, STORE_NAME_MAX + 1) : 0;
        if (n == 0 || n > STORE_NAME_MAX)
                return -EINVAL;
        int r = vault_field_keys(v, org_id, &enc, &idx);
        if (r < 0)
                return r;
        return field_blind_index(idx, TABLE, COLUMN, name, n, out);
}

int vault_seal_clear_names(struct vault *v) {
        _cleanup_free_ char *state = NULL;
        uint64_t sealed = 0;
        int r = v->store->ops->setting_get(v->store, NAMES_SETTING, &state);
        if (r < 0 && r != -ENOENT)
                return log_error_errno(r, "cannot read the metadata store's settings: %s", strerror(-r));
        if (r >= 0 && strcmp(state, NAMES_SEALED) == 0)
                return 0;
        for (;;) {
                struct store_document *rows = NULL;
                size_t n = 0;
                r = v->store->ops->document_clear_names(v->store, SEAL_BATCH, &rows, &n);
                if (r < 0)
                        return log_error_errno(r, "cannot read the document names to seal: %s", strerror(-r));
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        r = vault_name_seal(v, &rows[i]);
                        if (r < 0)
                                log_error("document %s: its name cannot be sealed: %s", rows[i].id, strerror(-r));
                }
                if (r >= 0 && n > 0)
                        r = v->store->ops->document_seal_names(v->store, rows, n);
                sodium_memzero(rows, n * sizeof *rows);
                free(rows);
                if (r < 0)
                        return log_error_errno(r, "cannot seal the document names: %s", strerror(-r));
                if (n == 0)
                        break;
                sealed += n;
        }
        /* Before the setting: a crash in between only compacts once more at the next open. */
        r = v->store->ops->compact(v->store);
        if (r < 0)
                return log_error_errno(r, "cannot rewrite the metadata store without the clear names: %s",
                                       strerror(-r));
        r = v->store->ops->setting_set(v->store, NAMES_SETTING, NAMES_SEALED);
        if (r < 0)
                return log_error_errno(r, "cannot record that the document names are sealed: %s", strerror(-r));
        if (sealed > 0)
                log_info("sealed the names of %llu documents written before names were encrypted",
                         (unsigned long long) sealed);
        return 0;
}
