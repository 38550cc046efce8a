/* test_store_util.h: fixture and row factories shared by the store tests. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "store/store.h"

struct fixture {
        char *dir;
        char *db_path;
        struct store *s;
};

static inline void make_id(char out[STORE_ID_LEN + 1], unsigned tag, unsigned n) {
        snprintf(out, STORE_ID_LEN + 1, "%08x%024x", tag, n);
}

#define ORG_A 0xa0a0a0a0u
#define ORG_B 0xb0b0b0b0u
#define DOC_TAG 0xd0c0d0c0u

static inline struct store_document make_doc(unsigned n, unsigned org, int64_t created_at, const char *class_) {
        struct store_document d = {};
        make_id(d.id, DOC_TAG, n);
        make_id(d.org_id, org, 0);
        /* the store keeps the sealed name and its index as bytes: any bytes do here */
        d.name_sealed_len = (size_t) snprintf((char *) d.name_sealed, sizeof d.name_sealed, "sealed:facture-%u.pdf", n);
        for (size_t i = 0; i < sizeof d.name_index; i++)
                d.name_index[i] = (uint8_t) (n * 7 + i);
        snprintf(d.class_, sizeof d.class_, "%s", class_);
        d.size = 1000 + n;
        for (size_t i = 0; i < sizeof d.sha256; i++)
                d.sha256[i] = (uint8_t) (n * 31 + i);
        d.created_at = created_at;
        make_id(d.created_by, 0x70707070u, 1);
        return d;
}

static inline void add_org(struct store *s, unsigned tag) {
        struct store_org o = { .created_at = 1700000000000 };
        make_id(o.id, tag, 0);
        snprintf(o.name, sizeof o.name, "Org %x", tag);
        assert_int_equal(s->ops->org_insert(s, &o), 0);
}

static inline int setup(void **state) {
        struct fixture *f = calloc(1, sizeof *f);
        const char *base = getenv("TMPDIR");
        char tmpl[512];
        snprintf(tmpl, sizeof tmpl, "%s/coffre-store-XXXXXX", base && *base ? base : "/tmp");
        assert_non_null(mkdtemp(tmpl));
        f->dir = strdup(tmpl);
        f->db_path = path_join(f->dir, "meta.db");
        assert_int_equal(store_sqlite_open(f->db_path, true, &f->s), 0);
        add_org(f->s, ORG_A);
        add_org(f->s, ORG_B);
        *state = f;
        return 0;
}

static inline int teardown(void **state) {
        struct fixture *f = *state;
        store_close(f->s);
        rm_rf(f->dir);
        free(f->db_path);
        free(f->dir);
        free(f);
        return 0;
}

static inline void assert_doc_equal(const struct store_document *a, const struct store_document *b) {
        assert_string_equal(a->id, b->id);
        assert_string_equal(a->org_id, b->org_id);
        assert_int_equal(a->name_sealed_len, b->name_sealed_len);
        assert_memory_equal(a->name_sealed, b->name_sealed, a->name_sealed_len);
        assert_memory_equal(a->name_index, b->name_index, sizeof a->name_index);
        assert_string_equal(a->name, ""); /* never filled by the store from a sealed row */
        assert_string_equal(a->class_, b->class_);
        assert_int_equal(a->size, b->size);
        assert_memory_equal(a->sha256, b->sha256, 32);
        assert_int_equal(a->created_at, b->created_at);
        assert_string_equal(a->created_by, b->created_by);
}
