/* test_object_stream.c: the encrypted object format: round trips, random access, every kind of
 * tampering, the NIST/McGrew-Viega AES-256-GCM vectors and the fixed object-v1 vectors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "crypto/aead.h"
#include "buf.h"
#include "fileio.h"
#include "hex.h"
#include "crypto/object_stream.h"

static const uint8_t KEY[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t OID_A[16] = { 0xa };
static const uint8_t OID_B[16] = { 0xb };
static const uint8_t KEK[16] = { 0xc };

static int sink_buf(void *ud, const uint8_t *p, size_t n) {
        return buf_append(ud, p, n);
}

struct mem {
        const uint8_t *p;
        size_t n;
        size_t fetched; /* bytes handed out by read_at */
};

static int mem_read_at(void *ud, uint8_t *p, size_t n, uint64_t off) {
        struct mem *m = ud;
        if (off >= m->n)
                return 0;
        size_t k = MIN(n, m->n - (size_t) off);
        memcpy(p, m->p + off, k);
        m->fetched += k;
        return (int) k;
}

static uint8_t *pattern(size_t n) {
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        assert_int_equal(RAND_bytes(p, (int) (n ? n : 1)), 1);
        return p;
}

/* Encrypts pt fed in the given cycle of chunk sizes; returns the object in *out. */
static void encrypt_chunks(const uint8_t *pt, size_t n, const uint8_t oid[16], const size_t *chunks, size_t nchunks,
                           struct buf *out) {
        struct obj_writer *w = NULL;
        buf_init(out, 64 * 1024 * 1024);
        assert_int_equal(obj_writer_new(KEY, oid, KEK, sink_buf, out, &w), 0);
        for (size_t off = 0, i = 0; off < n; i++) {
                size_t c = MIN(chunks[i % nchunks], n - off);
                assert_int_equal(obj_writer_update(w, pt + off, c), 0);
                off += c;
        }
        assert_int_equal(obj_writer_final(w), 0);
        assert_int_equal(obj_writer_update(w, "x", 1), -EINVAL); /* nothing after final */
        obj_writer_free(w);
        assert_int_equal(out->len, obj_ciphertext_size(n));
}

static void encrypt_simple(const uint8_t *pt, size_t n, const uint8_t oid[16], struct buf *out) {
        static const size_t one[] = { 100000 };
        encrypt_chunks(pt, n, oid, one, 1, out);
}

/* Decrypts a whole object; returns the first error. Plaintext emitted so far is in *out. */
static int decrypt_all(const uint8_t key[32], const uint8_t *ct, size_t n, struct buf *out) {
        struct mem m = { ct, n, 0 };
        struct obj_reader *r = NULL;
        buf_init(out, 64 * 1024 * 1024);
        int k = obj_reader_new(key, n, mem_read_at, &m, &r);
        if (k < 0)
                return k;
        k = obj_reader_read(r, 0, obj_reader_plaintext_size(r), sink_buf, out);
        obj_reader_free(r);
        return k;
}

static void test_round_trip_sizes(void **state) {
        (void) state;
        static const size_t sizes[] = { 0, 1, 65535, 65536, 65537, 10 * 1024 * 1024 };
        static const size_t chunks[] = { 1, 7, 4093, 65535, 65537, 200003, 13, 131072 };
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                size_t n = sizes[i];
                _cleanup_free_ uint8_t *pt = pattern(n);
                _cleanup_buf_ struct buf ct, back;
                encrypt_chunks(pt, n, OID_A, chunks, ELEMENTSOF(chunks), &ct);
                assert_int_equal(decrypt_all(KEY, ct.data, ct.len, &back), 0);
                assert_int_equal(back.len, n);
                if (n > 0)
                        assert_memory_equal(back.data, pt, n);
                /* the header is in the clear and says who the object is */
                struct obj_header h;
                assert_int_equal(obj_header_parse(ct.data, ct.len, &h), 0);
                assert_memory_equal(h.object_id, OID_A, 16);
                assert_memory_equal(h.kek_id, KEK, 16);
                assert_int_equal(h.segment_size, OBJ_SEGMENT_SIZE);
        }
}

static void test_sizes(void **state) {
        (void) state;
        uint64_t p;
        assert_int_equal(obj_ciphertext_size(0), OBJ_HEADER_SIZE + 16);
        assert_int_equal(obj_ciphertext_size(65536), OBJ_HEADER_SIZE + 65536 + 16);
        assert_int_equal(obj_ciphertext_size(65537), OBJ_HEADER_SIZE + 65537 + 32);
        for (uint64_t n = 0; n < 3 * 65536 + 5; n += 4099) {
                assert_int_equal(obj_plaintext_size(obj_ciphertext_size(n), &p), 0);
                assert_int_equal(p, n);
        }
        uint64_t big = (uint64_t) 1 << 40;
        assert_int_equal(obj_plaintext_size(obj_ciphertext_size(big), &p), 0);
        assert_int_equal(p, big);
        /* sizes no plaintext maps to */
        assert_int_equal(obj_plaintext_size(OBJ_HEADER_SIZE + 15, &p), -EBADMSG);
        assert_int_equal(obj_plaintext_size(OBJ_HEADER_SIZE + 65536 + 16 + 16, &p), -EBADMSG);
        assert_int_equal(obj_plaintext_size(10, &p), -EBADMSG);
}

static void test_random_access(void **state) {
        (void) state;
        const size_t n = 5 * 65536 + 1234;
        _cleanup_free_ uint8_t *pt = pattern(n);
        _cleanup_buf_ struct buf ct;
        encrypt_simple(pt, n, OID_A, &ct);

        struct mem m = { ct.data, ct.len, 0 };
        struct obj_reader *r = NULL;
        assert_int_equal(obj_reader_new(KEY, ct.len, mem_read_at, &m, &r), 0);
        assert_int_equal(obj_reader_plaintext_size(r), n);
        assert_memory_equal(obj_reader_header(r)->object_id, OID_A, 16);

        for (int i = 0; i < 300; i++) {
                uint32_t a[2];
                assert_int_equal(RAND_bytes((uint8_t *) a, sizeof a), 1);
                uint64_t off = a[0] % (n + 1);
                uint64_t len = a[1] % (n - off + 1);
                if (i < 6) { /* edges */
                        static const uint64_t offs[] = { 0, 65535, 65536, 131071, 5 * 65536, 0 };
                        off = offs[i];
                        len = i == 5 ? n : MIN((uint64_t) 3, n - off);
                }
                _cleanup_buf_ struct buf out;
                buf_init(&out, 0);
                m.fetched = 0;
                assert_int_equal(obj_reader_read(r, off, len, sink_buf, &out), 0);
                assert_int_equal(out.len, len);
                if (len > 0) {
                        assert_memory_equal(out.data, pt + off, len);
                        /* only the segments covering the range were fetched */
                        uint64_t first = off / 65536, last = (off + len - 1) / 65536;
                        assert_true(m.fetched <= (last - first + 1) * (65536 + 16));
                } else
                        assert_int_equal(m.fetched, 0);
        }
        _cleanup_buf_ struct buf out;
        buf_init(&out, 0);
        assert_int_equal(obj_reader_read(r, n, 1, sink_buf, &out), -EINVAL);
        assert_int_equal(obj_reader_read(r, n + 1, 0, sink_buf, &out), -EINVAL);
        assert_int_equal(obj_reader_read(r, n, 0, sink_buf, &out), 0);
        obj_reader_free(r);
}

/* A three-segment object (A) and one under the same key with another id (B). */
#define TAMPER_SIZE (2 * 65536 + 1000)
#define SEG_CT (65536 + 16)

static void test_tampering(void **state) {
        (void) state;
        _cleanup_free_ uint8_t *pt = pattern(TAMPER_SIZE);
        _cleanup_buf_ struct buf a, b;
        encrypt_simple(pt, TAMPER_SIZE, OID_A, &a);
        encrypt_simple(pt, TAMPER_SIZE, OID_B, &b);
        _cleanup_free_ uint8_t *t = malloc(a.len);
        assert_non_null(t);

        /* every bit of the header */
        for (size_t bit = 0; bit < OBJ_HEADER_SIZE * 8; bit++) {
                _cleanup_buf_ struct buf out;
                memcpy(t, a.data, a.len);
                t[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                assert_int_equal(decrypt_all(KEY, t, a.len, &out), -EBADMSG);
                assert_int_equal(out.len, 0);
        }

        /* a bit in segment 1's ciphertext, and in its tag: segment 0 comes out, nothing of segment 1 */
        size_t where[] = { OBJ_HEADER_SIZE + SEG_CT + 5, OBJ_HEADER_SIZE + 2 * SEG_CT - 1 };
        for (size_t i = 0; i < ELEMENTSOF(where); i++) {
                _cleanup_buf_ struct buf out;
                memcpy(t, a.data, a.len);
                t[where[i]] ^= 0x40;
                assert_int_equal(decrypt_all(KEY, t, a.len, &out), -EBADMSG);
                assert_int_equal(out.len, 65536);
                assert_memory_equal(out.data, pt, 65536);
        }
        /* a bit in the last segment fails at open */
        {
                _cleanup_buf_ struct buf out;
                memcpy(t, a.data, a.len);
                t[a.len - 20] ^= 1;
                assert_int_equal(decrypt_all(KEY, t, a.len, &out), -EBADMSG);
                assert_int_equal(out.len, 0);
        }
        /* truncated mid-segment, at a segment boundary, to the header */
        size_t cuts[] = { a.len - 1, a.len - 500, OBJ_HEADER_SIZE + 2 * SEG_CT, OBJ_HEADER_SIZE + SEG_CT,
                          OBJ_HEADER_SIZE + SEG_CT + 17, OBJ_HEADER_SIZE, 0 };
        for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
                _cleanup_buf_ struct buf out;
                assert_int_equal(decrypt_all(KEY, a.data, cuts[i], &out), -EBADMSG);
                assert_int_equal(out.len, 0);
        }
        /* a size claimed larger than the data (short read) */
        {
                struct mem m = { a.data, a.len, 0 };
                struct obj_reader *r = NULL;
                assert_int_equal(obj_reader_new(KEY, a.len + 17, mem_read_at, &m, &r), -EBADMSG);
        }
        /* segments 0 and 1 swapped */
        {
                _cleanup_buf_ struct buf out;
                memcpy(t, a.data, a.len);
                memcpy(t + OBJ_HEADER_SIZE, a.data + OBJ_HEADER_SIZE + SEG_CT, SEG_CT);
                memcpy(t + OBJ_HEADER_SIZE + SEG_CT, a.data + OBJ_HEADER_SIZE, SEG_CT);
                assert_int_equal(decrypt_all(KEY, t, a.len, &out), -EBADMSG);
                assert_int_equal(out.len, 0);
        }
        /* segment 0 of another object under the same key */
        {
                _cleanup_buf_ struct buf out;
                memcpy(t, a.data, a.len);
                memcpy(t + OBJ_HEADER_SIZE, b.data + OBJ_HEADER_SIZE, SEG_CT);
                assert_int_equal(decrypt_all(KEY, t, a.len, &out), -EBADMSG);
                assert_int_equal(out.len, 0);
        }
        /* B's header on A's segments (other object id, other nonce prefix) */
        {
                _cleanup_buf_ struct buf out;
                memcpy(t, a.data, a.len);
                memcpy(t, b.data, OBJ_HEADER_SIZE);
                assert_int_equal(decrypt_all(KEY, t, a.len, &out), -EBADMSG);
        }
        /* wrong key */
        {
                _cleanup_buf_ struct buf out;
                uint8_t other[32];
                memcpy(other, KEY, 32);
                other[31] ^= 1;
                assert_int_equal(decrypt_all(other, a.data, a.len, &out), -EBADMSG);
                assert_int_equal(out.len, 0);
        }
        /* the untouched objects still decrypt */
        _cleanup_buf_ struct buf out;
        assert_int_equal(decrypt_all(KEY, a.data, a.len, &out), 0);
        assert_memory_equal(out.data, pt, TAMPER_SIZE);
}

static void test_nonce_prefix_random(void **state) {
        (void) state;
        _cleanup_buf_ struct buf a, b;
        encrypt_simple((const uint8_t *) "same", 4, OID_A, &a);
        encrypt_simple((const uint8_t *) "same", 4, OID_A, &b);
        struct obj_header ha, hb;
        assert_int_equal(obj_header_parse(a.data, a.len, &ha), 0);
        assert_int_equal(obj_header_parse(b.data, b.len, &hb), 0);
        assert_memory_not_equal(ha.nonce_prefix, hb.nonce_prefix, 7);
        assert_memory_not_equal(a.data + OBJ_HEADER_SIZE, b.data + OBJ_HEADER_SIZE, 4);
}

static int failing_sink(void *ud, const uint8_t *p, size_t n) {
        int *calls = ud;
        return ++*calls >= 3 ? -ENOSPC : 0;
}

static void test_sink_error_sticks(void **state) {
        (void) state;
        int calls = 0;
        struct obj_writer *w = NULL;
        _cleanup_free_ uint8_t *pt = pattern(4 * 65536);
        assert_int_equal(obj_writer_new(KEY, OID_A, KEK, failing_sink, &calls, &w), 0);
        assert_int_equal(obj_writer_update(w, pt, 4 * 65536), -ENOSPC);
        assert_int_equal(obj_writer_update(w, pt, 1), -ENOSPC);
        assert_int_equal(obj_writer_final(w), -ENOSPC);
        obj_writer_free(w);
}

/* McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-18 (AES-256). */
struct gcm_kat {
        const char *key, *iv, *aad, *pt, *ct, *tag;
};

static const char K0[] = "0000000000000000000000000000000000000000000000000000000000000000";
static const char KF[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
static const char P64[] = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                          "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
static const char P60[] = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                          "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
static const char AADF[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
static const char IV60[] = "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728"
                           "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b";

static const struct gcm_kat kats[] = {
        { K0, "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
        { K0, "000000000000000000000000", "", "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18",
          "d0d1c8a799996bf0265b98b5d48ab919" },
        { KF, "cafebabefacedbaddecaf888", "", P64,
          "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
          "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
          "b094dac5d93471bdec1a502270e3cc6c" },
        { KF, "cafebabefacedbaddecaf888", AADF, P60,
          "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
          "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
          "76fc6ece0f4e1768cddf8853bb2d551b" },
        { KF, "cafebabefacedbad", AADF, P60,
          "c3762df1ca787d32ae47c13bf19844cbaf1ae14d0b976afac52ff7d79bba9de0"
          "feb582d33934a4f0954cc2363bc73f7862ac430e64abe499f47c9b1f",
          "3a337dbf46a792c45e454913fe2ea8f2" },
        { KF, IV60, AADF, P60,
          "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf4"
          "0fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f",
          "a44a8266ee1c8eb0c8b5d4cf5ae9f19a" },
};

static size_t unhex(const char *s, uint8_t *out, size_t max) {
        size_t n = strlen(s) / 2;
        assert_true(n <= max);
        assert_int_equal(hex_decode(s, out, n), 0);
        return n;
}

static void test_gcm_kat(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(kats); i++) {
                uint8_t key[32], iv[64], aad[32], pt[64], ct[64], tag[16], out[64], got_tag[16];
                unhex(kats[i].key, key, sizeof key);
                size_t ivl = unhex(kats[i].iv, iv, sizeof iv);
                size_t aadl = unhex(kats[i].aad, aad, sizeof aad);
                size_t ptl = unhex(kats[i].pt, pt, sizeof pt);
                assert_int_equal(unhex(kats[i].ct, ct, sizeof ct), ptl);
                unhex(kats[i].tag, tag, sizeof tag);

                EVP_CIPHER_CTX *e = aead_ctx_new(key, true), *d = aead_ctx_new(key, false);
                assert_non_null(e);
                assert_non_null(d);
                /* twice on one context, as the object stream reuses it */
                for (int rep = 0; rep < 2; rep++) {
                        assert_int_equal(aead_seal(e, iv, ivl, aad, aadl, pt, ptl, out, got_tag), 0);
                        if (ptl)
                                assert_memory_equal(out, ct, ptl);
                        assert_memory_equal(got_tag, tag, 16);
                        assert_int_equal(aead_open(d, iv, ivl, aad, aadl, ct, ptl, out, tag), 0);
                        if (ptl)
                                assert_memory_equal(out, pt, ptl);
                }
                got_tag[0] ^= 1;
                assert_int_equal(aead_open(d, iv, ivl, aad, aadl, ct, ptl, out, got_tag), -EBADMSG);
                EVP_CIPHER_CTX_free(e);
                EVP_CIPHER_CTX_free(d);
        }
}

/* Reads "name=value" from a vector file into a malloc'd string. */
static char *vec_field(const char *text, const char *name) {
        size_t nl = strlen(name);
        for (const char *line = text; line && *line;) {
                const char *end = strchr(line, '\n');
                size_t len = end ? (size_t) (end - line) : strlen(line);
                if (len > nl && memcmp(line, name, nl) == 0 && line[nl] == '=')
                        return strndup(line + nl + 1, len - nl - 1);
                line = end ? end + 1 : NULL;
        }
        fail_msg("field %s missing", name);
        return NULL;
}

static char *vec_path(const char *file) {
        const char *dir = getenv("COFFRE_TEST_DATA");
        assert_non_null(dir);
        _cleanup_free_ char *sub = path_join(dir, "object-v1");
        return path_join(sub, file);
}

static void vec_ids(const char *text, uint8_t key[32], uint8_t oid[16], uint8_t kek[16], uint8_t prefix[7]) {
        _cleanup_free_ char *k = vec_field(text, "key"), *o = vec_field(text, "object_id"), *e = vec_field(text, "kek_id"),
                            *n = vec_field(text, "nonce_prefix");
        assert_int_equal(hex_decode(k, key, 32), 0);
        assert_int_equal(hex_decode(o, oid, 16), 0);
        assert_int_equal(hex_decode(e, kek, 16), 0);
        assert_int_equal(hex_decode(n, prefix, 7), 0);
}

static void test_vector1(void **state) {
        (void) state;
        _cleanup_free_ char *path = vec_path("vector1.txt");
        _cleanup_buf_ struct buf file, ct;
        assert_int_equal(read_file(path, 1 << 20, &file), 0);
        uint8_t key[32], oid[16], kek[16], prefix[7];
        vec_ids((const char *) file.data, key, oid, kek, prefix);
        _cleanup_free_ char *pth = vec_field((const char *) file.data, "plaintext"),
                            *cth = vec_field((const char *) file.data, "ciphertext");
        size_t ptl = strlen(pth) / 2, ctl = strlen(cth) / 2;
        _cleanup_free_ uint8_t *pt = malloc(ptl), *want = malloc(ctl);
        assert_int_equal(hex_decode(pth, pt, ptl), 0);
        assert_int_equal(hex_decode(cth, want, ctl), 0);

        struct obj_writer *w = NULL;
        buf_init(&ct, 0);
        assert_int_equal(obj_writer_new_with_nonce(key, oid, kek, prefix, sink_buf, &ct, &w), 0);
        assert_int_equal(obj_writer_update(w, pt, ptl), 0);
        assert_int_equal(obj_writer_final(w), 0);
        obj_writer_free(w);
        assert_int_equal(ct.len, ctl);
        assert_memory_equal(ct.data, want, ctl);

        _cleanup_buf_ struct buf back;
        assert_int_equal(decrypt_all(key, want, ctl, &back), 0);
        assert_int_equal(back.len, ptl);
        assert_memory_equal(back.data, pt, ptl);
}

static void test_vector2(void **state) {
        (void) state;
        _cleanup_free_ char *path = vec_path("vector2.txt"), *bin = vec_path("vector2.cfro");
        _cleanup_buf_ struct buf file, want, ct, back;
        assert_int_equal(read_file(path, 1 << 20, &file), 0);
        assert_int_equal(read_file(bin, 1 << 20, &want), 0);
        uint8_t key[32], oid[16], kek[16], prefix[7];
        vec_ids((const char *) file.data, key, oid, kek, prefix);
        _cleanup_free_ char *ptlen = vec_field((const char *) file.data, "plaintext_length");
        size_t n = (size_t) strtoul(ptlen, NULL, 10);
        _cleanup_free_ uint8_t *pt = malloc(n);
        for (size_t i = 0; i < n; i++)
                pt[i] = (uint8_t) (i % 251);

        struct obj_writer *w = NULL;
        buf_init(&ct, 0);
        assert_int_equal(obj_writer_new_with_nonce(key, oid, kek, prefix, sink_buf, &ct, &w), 0);
        assert_int_equal(obj_writer_update(w, pt, n), 0);
        assert_int_equal(obj_writer_final(w), 0);
        obj_writer_free(w);
        assert_int_equal(ct.len, want.len);
        assert_memory_equal(ct.data, want.data, want.len);
        assert_int_equal(decrypt_all(key, want.data, want.len, &back), 0);
        assert_int_equal(back.len, n);
        assert_memory_equal(back.data, pt, n);
}

static int count_sink(void *ud, const uint8_t *p, size_t n) {
        *(size_t *) ud += n;
        return 0;
}

static double seconds_since(const struct timespec *a) {
        struct timespec b;
        clock_gettime(CLOCK_MONOTONIC, &b);
        return (double) (b.tv_sec - a->tv_sec) + (double) (b.tv_nsec - a->tv_nsec) / 1e9;
}

/* Throughput over 256 MiB, only with COFFRE_BENCH set (figures for reports, not a pass/fail bar). */
static void test_throughput(void **state) {
        (void) state;
        if (!getenv("COFFRE_BENCH"))
                skip();
        const size_t chunk = 1 << 20, total = (size_t) 256 << 20;
        _cleanup_free_ uint8_t *pt = pattern(chunk);
        _cleanup_buf_ struct buf ct;
        struct obj_writer *w = NULL;
        size_t sunk = 0;
        struct timespec a;

        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(obj_writer_new(KEY, OID_A, KEK, count_sink, &sunk, &w), 0);
        for (size_t off = 0; off < total; off += chunk)
                assert_int_equal(obj_writer_update(w, pt, chunk), 0);
        assert_int_equal(obj_writer_final(w), 0);
        obj_writer_free(w);
        print_message("encrypt 256 MiB: %.0f MiB/s\n", 256.0 / seconds_since(&a));
        assert_int_equal(sunk, obj_ciphertext_size(total));

        /* decrypt 32 MiB held in memory */
        _cleanup_free_ uint8_t *big = pattern((size_t) 32 << 20);
        encrypt_simple(big, (size_t) 32 << 20, OID_A, &ct);
        struct mem m = { ct.data, ct.len, 0 };
        struct obj_reader *r = NULL;
        sunk = 0;
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(obj_reader_new(KEY, ct.len, mem_read_at, &m, &r), 0);
        assert_int_equal(obj_reader_read(r, 0, (uint64_t) 32 << 20, count_sink, &sunk), 0);
        obj_reader_free(r);
        print_message("decrypt 32 MiB: %.0f MiB/s\n", 32.0 / seconds_since(&a));
        assert_int_equal(sunk, (size_t) 32 << 20);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_round_trip_sizes),
                cmocka_unit_test(test_random_access),
                cmocka_unit_test(test_tampering),
                cmocka_unit_test(test_nonce_prefix_random),
                cmocka_unit_test(test_sink_error_sticks),
                cmocka_unit_test(test_gcm_kat),
                cmocka_unit_test(test_vector1),
                cmocka_unit_test(test_vector2),
                cmocka_unit_test(test_throughput),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
