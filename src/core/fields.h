/* fields.h: the personal fields of the metadata store, sealed under each organisation's field keys
 * (crypto/field.h, docs/formats.md §4): the vault's cache of those keys, and the document name's
 * seal, opening and blind index, with the one-time sealing of the clear names of an older vault. */
#pragma once

#include <stdint.h>

#include "macro.h"
#include "store/store.h"

struct vault;

/* The organisation's field key (keyring purpose "field") and blind-index key ("field-index"),
 * 32 bytes each, unwrapped once and then kept in libsodium guarded memory until vault_close,
 * which wipes them: the pointers stay valid (and must not be written) until then. -EINVAL for a
 * malformed organisation id, -ENOENT when the organisation has no keys (unknown, or erased). */
int vault_field_keys(struct vault *v, const char *org_id, const uint8_t **ret_enc, const uint8_t **ret_idx)
        _warn_unused_;
/* Makes the empty cache (vault_open, before any thread). */
int vault_field_keys_init(struct vault *v) _warn_unused_;
/* Wipes and frees the cache (vault_close). */
void vault_field_keys_free(struct vault *v);

/* Seals d->name (bound to table documents, column name, row d->id, under d->org_id's field key)
 * into d->name_sealed and sets d->name_index. */
int vault_name_seal(struct vault *v, struct store_document *d) _warn_unused_;
/* The reverse: d->name from d->name_sealed. -EBADMSG when it does not authenticate (damage, or a
 * value moved from another row or organisation), or when the row still holds a clear name. */
int vault_name_open(struct vault *v, struct store_document *d) _warn_unused_;
/* vault_name_open for n rows, with one key setup per organisation rather than per row (a
 * listing); on failure *ret_failed is the index of the row that failed. */
int vault_names_open(struct vault *v, struct store_document *docs, size_t n, size_t *ret_failed) _warn_unused_;
/* The blind index of an exact name in an organisation, for lookups. */
int vault_name_index(struct vault *v, const char *org_id, const char *name, uint8_t out[STORE_NAME_INDEX_SIZE])
        _warn_unused_;

/* At open: seals every name still in clear (a vault written before names were sealed), then
 * rewrites meta.db and empties its WAL so that no clear name is left in either file. Done once:
 * the settings record that the file holds no clear name. */
int vault_seal_clear_names(struct vault *v) _warn_unused_;
