/* test_erasure.c: erasure in a real vault (coffre init's files, the signer, SQLite, the keyring):
 * the name in a document's document.create entry is sealed under a key derived from the
 * document's DEK, not under the organisation's audit key, so that once the DEK is destroyed no
 * key left in the vault opens it; the tombstone stays; a governance lock yields to an owner's
 * reason and a compliance lock to no one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit/entry.h"
#include "audit/log.h"
#include "buf.h"
#include "core/ledger.h"
#include "core/lifecycle.h"
#include "core/vault.h"
#include "core/vault_internal.h"
#include "crypto/keyring.h"
#include "fileio.h"
#include "hex.h"

static const char NAME[] = "Bulletin de paie Jeanne Martin 2026-11.pdf";

struct env {
        char base[64];
        char *dir;
        struct vault *v;
        struct vault_actor owner;
};

static int org_cb(const struct store_org *o, void *ud) {
        snprintf(ud, STORE_ID_LEN + 1, "%s", o->id);
        return 0;
}

static int setup(void **state) {
        struct env *e = calloc(1, sizeof *e);
        struct vault_init_options o = { 0 };
        char *token = NULL;
        assert_non_null(e);
        snprintf(e->base, sizeof e->base, "/var/tmp/coffre-erasure-XXXXXX");
        assert_non_null(mkdtemp(e->base));
        e->dir = path_join(e->base, "vault");
        assert_int_equal(vault_init(e->dir, &o, &token), 0);
        sodium_memzero(token, strlen(token));
        free(token);
        assert_int_equal(vault_open(e->dir, &e->v), 0);
        assert_int_equal(e->v->store->ops->org_foreach(e->v->store, org_cb, e->owner.org_id), 0);
        snprintf(e->owner.actor_id, sizeof e->owner.actor_id, "%032x", 1);
        snprintf(e->owner.role, sizeof e->owner.role, "owner");
        *state = e;
        return 0;
}

static int teardown(void **state) {
        struct env *e = *state;
        vault_close(e->v);
        (void) rm_rf(e->base);
        free(e->dir);
        free(e);
        return 0;
}

static void upload(struct env *e, const char *cls, struct store_document *ret) {
        struct vault_upload *u = NULL;
        assert_int_equal(vault_upload_begin(e->v, &e->owner, NAME, cls, NULL, &u), 0);
        assert_int_equal(vault_upload_write(u, "%PDF-1.7 paie", 13), 0);
        assert_int_equal(vault_upload_finish(u, NULL, ret), 0);
}

/* Opens the details of the document's first log entry (its document.create) with key. */
static int open_create_details(struct env *e, const char *id, const uint8_t key[32], struct buf *plain) {
        uint64_t *idx = NULL;
        size_t n = 0;
        struct audit_entry ent;
        struct buf b;
        assert_int_equal(vault_document_trail(e->v, id, &idx, &n), 0);
        assert_true(n >= 1);
        buf_init(&b, AUDIT_ENTRY_MAX + 1);
        assert_int_equal(audit_log_entry(ledger_log(e->v->ledger), idx[0], &b), 0);
        free(idx);
        assert_int_equal(audit_entry_parse((const char *) b.data, b.len, &ent), 0);
        assert_string_equal(ent.action, "document.create");
        int r = audit_entry_open_details(&ent, key, plain);
        audit_entry_clear(&ent);
        buf_free(&b);
        return r;
}

static void test_name_dies_with_the_dek(void **state) {
        struct env *e = *state;
        struct store_document d, refused;
        enum vault_refusal why;
        uint8_t raw[16], kek_id[16], org_key[32], dek[32], dkey[32];
        struct buf plain;

        upload(e, "temporary-90d", &d);
        assert_int_equal(hex_decode(d.id, raw, sizeof raw), 0);
        assert_int_equal(hex_decode(d.org_id, kek_id, sizeof kek_id), 0);
        assert_int_equal(keyring_org_key(e->v->keyring, kek_id, "audit-details", org_key), 0);

        /* before erasure: the document's own key opens the name, the organisation's does not */
        buf_init(&plain, AUDIT_ENTRY_DETAILS_PLAIN_MAX + 1);
        assert_int_not_equal(open_create_details(e, d.id, org_key, &plain), 0);
        assert_int_equal(keyring_dek_get(e->v->keyring, raw, dek), 0);
        vault_document_details_key(dek, d.id, dkey);
        assert_int_equal(open_create_details(e, d.id, dkey, &plain), 0);
        assert_non_null(memmem(plain.data, plain.len, NAME, strlen(NAME)));
        buf_free_secure(&plain);

        /* governance: an owner without a reason is refused, with one erases */
        assert_int_equal(vault_document_delete_checked(e->v, &e->owner, d.id, NULL, NULL, &refused, &why), -EPERM);
        assert_int_equal(why, VAULT_REFUSED_RETENTION);
        assert_int_equal(vault_document_delete_checked(e->v, &e->owner, d.id, "doublon", NULL, &refused, &why), 0);

        /* after: no DEK, so no key of the vault opens the name any more */
        assert_int_equal(keyring_dek_get(e->v->keyring, raw, dek), -ENOENT);
        buf_init(&plain, AUDIT_ENTRY_DETAILS_PLAIN_MAX + 1);
        assert_int_not_equal(open_create_details(e, d.id, org_key, &plain), 0);
        buf_free_secure(&plain);
        struct store_tombstone t;
        assert_int_equal(vault_tombstone_get(e->v, &e->owner, d.id, &t), 0);
        assert_string_equal(t.why, "deleted-early");
        assert_string_equal(t.class_, "temporary-90d");
        assert_memory_equal(t.sha256, d.sha256, 32);
        assert_int_equal(vault_document_get(e->v, &e->owner, d.id, &d), -ENOENT);
        sodium_memzero(org_key, sizeof org_key);
        sodium_memzero(dkey, sizeof dkey);
}

static void test_compliance_yields_to_no_one(void **state) {
        struct env *e = *state;
        struct store_document d, refused;
        enum vault_refusal why;
        upload(e, "accounting-10y", &d);
        assert_int_equal(vault_document_delete_checked(e->v, &e->owner, d.id, "please", NULL, &refused, &why), -EPERM);
        assert_int_equal(why, VAULT_REFUSED_RETENTION);
        assert_string_equal(refused.lock, "compliance");
        struct vault_actor op = e->owner;
        snprintf(op.role, sizeof op.role, "operator");
        assert_int_equal(vault_document_delete_checked(e->v, &op, d.id, "please", NULL, &refused, &why), -EPERM);
        assert_int_equal(vault_document_get(e->v, &e->owner, d.id, &d), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_name_dies_with_the_dek),
                cmocka_unit_test(test_compliance_yields_to_no_one),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
