/* test_blob_util.h: fixture, ids and deterministic contents shared by the blob tests. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob.h"
#include "fileio.h"

struct fixture {
        char *root;
        struct blob *b;
};

static inline void make_id(char out[33], unsigned tag, unsigned n) {
        snprintf(out, 33, "%08x%024x", tag, n);
}

/* Byte i of object seed: cheap, position-dependent, differs between objects. */
static inline uint8_t content_byte(unsigned seed, uint64_t i) {
        uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t) seed * 0xbf58476d1ce4e5b9ull;
        return (uint8_t) (x >> 29);
}

static inline void fill(uint8_t *p, size_t n, unsigned seed, uint64_t off) {
        for (size_t i = 0; i < n; i++)
                p[i] = content_byte(seed, off + i);
}

/* Writes size bytes of content seed in chunks of chunk bytes and commits; returns commit's result. */
static inline int put_object(struct blob *b, const char *id, unsigned seed, uint64_t size, size_t chunk) {
        struct blob_writer *w = NULL;
        uint8_t *buf = malloc(chunk ? chunk : 1);
        uint64_t off = 0;
        int r = b->ops->writer_open(b, id, &w);
        if (r < 0) {
                free(buf);
                return r;
        }
        while (off < size) {
                size_t n = (size_t) (size - off < chunk ? size - off : chunk);
                fill(buf, n, seed, off);
                r = b->ops->writer_write(w, buf, n);
                if (r < 0) {
                        free(buf);
                        b->ops->writer_abort(w);
                        return r;
                }
                off += n;
        }
        free(buf);
        return b->ops->writer_commit(w);
}

/* Reads the whole object back and compares with content seed. */
static inline void check_object(struct blob *b, const char *id, unsigned seed, uint64_t size) {
        struct blob_reader *rd = NULL;
        uint64_t got_size = 0;
        assert_int_equal(b->ops->reader_open(b, id, &rd, &got_size), 0);
        assert_int_equal(got_size, size);
        size_t chunk = 256 * 1024;
        uint8_t *buf = malloc(chunk), *want = malloc(chunk);
        for (uint64_t off = 0; off < size; off += chunk) {
                size_t n = (size_t) (size - off < chunk ? size - off : chunk);
                assert_int_equal(b->ops->reader_pread(rd, buf, n, off), 0);
                fill(want, n, seed, off);
                assert_memory_equal(buf, want, n);
        }
        free(buf);
        free(want);
        b->ops->reader_close(rd);
}

/* Entries in root/sub, not counting . and .. */
static inline int count_entries(const char *root, const char *sub) {
        _cleanup_free_ char *p = path_join(root, sub);
        DIR *d = opendir(p);
        int n = 0;
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}
