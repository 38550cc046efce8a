/* test_backup_format.c: the backup repository's building blocks: the chunker against the test
 * vector of an independent implementation (tests/data/backup), shift resistance, blob sealing,
 * pack and index round trips, damage detection, and the signer's manifest shape check. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "backup/chunker.h"
#include "backup/format.h"
#include "backup/pack.h"
#include "buf.h"
#include "fileio.h"
#include "hex.h"
#include "seal/signer_backup.h"

static void lcg_data(uint8_t *p, size_t n) {
        uint64_t s = UINT64_C(0x0123456789abcdef);
        for (size_t i = 0; i < n; i++) {
                s = s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
                p[i] = (uint8_t) (s >> 56);
        }
}

static void test_vector(void **state) {
        const char *dir = getenv("COFFRE_TEST_DATA");
        _cleanup_free_ char *path = NULL;
        _cleanup_buf_ struct buf b = {};
        struct chunker_params p = { 64, 256, 1024 };
        struct chunker c;
        uint8_t key[32], idkey[32], data[4096];
        size_t cuts[64], n_cuts = 0, n_ids = 0;
        char ids[64][65];

        assert_non_null(dir);
        path = path_join(dir, "backup/chunker-vector.txt");
        buf_init(&b, 1 << 16);
        assert_int_equal(read_file(path, 1 << 16, &b), 0);
        assert_non_null(buf_str(&b));
        /* parse "cuts ..." and "id ..." lines */
        for (char *l = (char *) b.data; l && *l;) {
                char *nl = strchr(l, '\n');
                if (nl)
                        *nl = 0;
                if (strncmp(l, "params ", 7) == 0)
                        assert_string_equal(l, "params 64 256 1024");
                else if (strncmp(l, "cuts ", 5) == 0) {
                        char *q = l + 5;
                        while (*q) {
                                cuts[n_cuts++] = strtoul(q, &q, 10);
                                while (*q == ' ')
                                        q++;
                        }
                } else if (strncmp(l, "id ", 3) == 0) {
                        assert_int_equal(strlen(l + 3), 64);
                        memcpy(ids[n_ids++], l + 3, 65);
                }
                l = nl ? nl + 1 : NULL;
        }
        assert_true(n_cuts > 3);
        assert_int_equal(n_cuts, n_ids);

        for (unsigned i = 0; i < 32; i++) {
                key[i] = (uint8_t) i;
                idkey[i] = (uint8_t) (32 + i);
        }
        lcg_data(data, sizeof data);
        assert_int_equal(chunker_init(&c, &p, key), 0);
        size_t off = 0, k = 0;
        while (off < sizeof data) {
                size_t n = chunker_cut(&c, data + off, sizeof data - off);
                uint8_t mac[32];
                char hex[65];
                assert_true(k < n_cuts);
                crypto_auth_hmacsha256(mac, data + off, n, idkey);
                hex_encode(mac, 32, hex);
                off += n;
                assert_int_equal(off, cuts[k]);
                assert_string_equal(hex, ids[k]);
                k++;
        }
        assert_int_equal(k, n_cuts);
        chunker_wipe(&c);
}

/* chunk starts of p under c */
static size_t chunk_list(const struct chunker *c, const uint8_t *p, size_t n, uint64_t *hashes) {
        size_t off = 0, k = 0;
        while (off < n) {
                size_t l = chunker_cut(c, p + off, n - off);
                uint8_t h[8];
                crypto_generichash(h, sizeof h, p + off, l, NULL, 0);
                memcpy(&hashes[k++], h, 8);
                off += l;
        }
        return k;
}

static void test_shift_resistance(void **state) {
        struct chunker_params p = { 2048, 8192, 32768 };
        struct chunker c;
        uint8_t key[32] = { 7 };
        size_t n = (size_t) 1 << 20;
        uint8_t *a = malloc(n), *b = malloc(n + 1);
        uint64_t *ha = calloc(n / 2048 + 2, 8), *hb = calloc(n / 2048 + 2, 8);

        assert_non_null(a);
        assert_non_null(b);
        randombytes_buf(a, n);
        assert_int_equal(chunker_init(&c, &p, key), 0);
        /* fixed data and positions: the same trials every run */
        uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
        for (size_t i = 0; i < n; i++) {
                rng = rng * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
                a[i] = (uint8_t) (rng >> 56);
        }
        unsigned hist[8] = { 0 }, trials = 48;
        for (unsigned trial = 0; trial < trials; trial++) {
                rng = rng * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
                size_t at = (size_t) ((rng >> 20) % n);
                memcpy(b, a, at);
                b[at] = (uint8_t) (rng >> 8);
                memcpy(b + at + 1, a + at, n - at);
                size_t na = chunk_list(&c, a, n, ha), nb = chunk_list(&c, b, n + 1, hb), fresh = 0;
                assert_true(na > 64); /* about 1 MiB / 8 KiB */
                for (size_t i = 0; i < nb; i++) {
                        bool known = false;
                        for (size_t j = 0; j < na && !known; j++)
                                known = ha[j] == hb[i];
                        fresh += !known;
                }
                assert_true(fresh >= 1);
                hist[MIN(fresh, 7u)]++;
        }
        printf("chunks changed by one inserted byte, over %u trials: 1: %u, 2: %u, 3: %u, 4+: %u\n", trials, hist[1],
               hist[2], hist[3], hist[4] + hist[5] + hist[6] + hist[7]);
        /* one inserted byte changes the chunk it falls in, usually that one alone; when the
         * insertion moves a cut, the chunking falls back in step within a chunk or two */
        assert_true(hist[1] + hist[2] >= trials * 9 / 10);
        assert_true(hist[5] + hist[6] + hist[7] == 0);
        /* another key cuts elsewhere: boundaries depend on the secret */
        struct chunker c2;
        uint8_t key2[32] = { 8 };
        assert_int_equal(chunker_init(&c2, &p, key2), 0);
        size_t na = chunk_list(&c, a, n, ha), nb = chunk_list(&c2, a, n, hb), same = 0;
        for (size_t i = 0; i < nb; i++)
                for (size_t j = 0; j < na; j++)
                        same += ha[j] == hb[i];
        assert_true(same < nb / 4);
        free(a);
        free(b);
        free(ha);
        free(hb);
}

static void test_params(void **state) {
        struct chunker_params p;
        chunker_params_default(&p);
        assert_int_equal(chunker_params_check(&p), 0);
        p.avg_size = 3u << 20; /* not a power of two */
        assert_int_equal(chunker_params_check(&p), -EINVAL);
        p = (struct chunker_params){ 32, 64, 128 }; /* below the floor */
        assert_int_equal(chunker_params_check(&p), -EINVAL);
        p = (struct chunker_params){ 4096, 2048, 8192 };
        assert_int_equal(chunker_params_check(&p), -EINVAL);
}

static struct backup_keys *keys_of(uint8_t fill) {
        uint8_t k[BACKUP_KEY_SIZE];
        struct backup_keys *keys = NULL;
        memset(k, fill, sizeof k);
        assert_int_equal(backup_keys_new(k, &keys), 0);
        return keys;
}

/* Blob ids are HMAC-SHA-256 under the id key (docs/formats.md): the same bytes as libsodium's
 * implementation at every length around SHA-256's block and up to a chunk's size. */
static void test_blob_id_is_hmac_sha256(void **state) {
        _cleanup_(backup_keys_freep) struct backup_keys *k = keys_of(1);
        static const size_t lens[] = { 0, 1, 55, 56, 63, 64, 65, 1000, 1u << 20, (1u << 20) + 7 };
        uint8_t *data = malloc((1u << 20) + 7), want[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state st;
        backup_id id, again;

        (void) state;
        assert_non_null(data);
        lcg_data(data, (1u << 20) + 7);
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
                crypto_auth_hmacsha256_init(&st, k->id, BACKUP_KEY_SIZE);
                crypto_auth_hmacsha256_update(&st, data, lens[i]);
                crypto_auth_hmacsha256_final(&st, want);
                backup_blob_id(k, data, lens[i], &id);
                assert_memory_equal(id.b, want, sizeof want);
                backup_blob_id(k, data, lens[i], &again);
                assert_memory_equal(id.b, again.b, sizeof again.b);
        }
        free(data);
}

static void test_pack_index_round_trip(void **state) {
        _cleanup_(backup_keys_freep) struct backup_keys *k = keys_of(1), *other = keys_of(2);
        _cleanup_(backup_pack_writer_freep) struct backup_pack_writer *w = NULL;
        _cleanup_(backup_index_freep) struct backup_index *x = NULL, *y = NULL;
        _cleanup_free_ struct backup_pack_entry *e = NULL, *pe = NULL;
        struct buf file = {}, idx = {}, plain = {};
        enum backup_series series;
        uint8_t blobs[40][3000];
        backup_id ids[40], pack;
        size_t n = 0, pn = 0;
        bool empty;

        assert_int_equal(backup_pack_writer_new(BACKUP_SERIES_DATA, &w), 0);
        for (unsigned i = 0; i < 40; i++) {
                if (i % 2)
                        randombytes_buf(blobs[i], sizeof blobs[i]); /* stays raw */
                else
                        memset(blobs[i], 'a' + (int) (i % 26), sizeof blobs[i]); /* compresses */
                blobs[i][0] = (uint8_t) i;                                       /* all distinct */
                backup_blob_id(k, blobs[i], sizeof blobs[i], &ids[i]);
                assert_int_equal(backup_pack_writer_add(w, k, &ids[i], blobs[i], sizeof blobs[i]), 0);
        }
        assert_int_equal(backup_pack_writer_finish(w, k, &file, &pack, &e, &n), 0);
        assert_int_equal(n, 40);
        assert_true(file.len < 40 * 3000); /* half of them compressed */
        assert_int_equal(backup_pack_parse(k, &pack, file.data, file.len, &series, &pe, &pn), 0);
        assert_int_equal(series, BACKUP_SERIES_DATA);
        assert_int_equal(pn, 40);
        buf_init(&plain, 1 << 20);
        for (unsigned i = 0; i < 40; i++) {
                assert_memory_equal(pe[i].id.b, ids[i].b, 32);
                assert_int_equal(pe[i].flags, i % 2 ? 0 : BACKUP_BLOB_ZSTD);
                assert_int_equal(backup_blob_open(k, &ids[i], pe[i].flags, pe[i].raw_len, file.data + pe[i].offset,
                                                  pe[i].length, &plain),
                                 0);
                assert_int_equal(plain.len, sizeof blobs[i]);
                assert_memory_equal(plain.data, blobs[i], sizeof blobs[i]);
        }
        /* the index round trip */
        assert_int_equal(backup_index_new(&x), 0);
        assert_int_equal(backup_index_add_pack(x, &pack, BACKUP_SERIES_DATA, true, e, n), 0);
        buf_init(&idx, 1 << 20);
        assert_int_equal(backup_index_serialize_fresh(x, k, &idx, &empty), 0);
        assert_false(empty);
        backup_id iname;
        backup_content_id(idx.data, idx.len, &iname);
        assert_int_equal(backup_index_new(&y), 0);
        assert_int_equal(backup_index_load(y, k, &iname, idx.data, idx.len), 0);
        for (unsigned i = 0; i < 40; i++) {
                const struct backup_index_entry *ie = backup_index_find(y, &ids[i]);
                assert_non_null(ie);
                assert_int_equal(ie->e.offset, pe[i].offset);
                assert_int_equal(ie->e.length, pe[i].length);
                assert_memory_equal(backup_index_pack_at(y, ie->pack)->id.b, pack.b, 32);
        }
        backup_id absent;
        memset(absent.b, 0x5a, sizeof absent.b);
        assert_null(backup_index_find(y, &absent));
        /* a blob written again in a fresh pack (its old pack was lost): the new place first, the
         * old one second */
        backup_id pack2;
        memset(pack2.b, 0x77, sizeof pack2.b);
        struct backup_pack_entry again = pe[3];
        again.offset = 8;
        assert_int_equal(backup_index_add_pack(y, &pack2, BACKUP_SERIES_DATA, true, &again, 1), 0);
        const struct backup_index_entry *now = backup_index_find(y, &ids[3]),
                                        *before = backup_index_find_alt(y, &ids[3]);
        assert_non_null(now);
        assert_non_null(before);
        assert_memory_equal(backup_index_pack_at(y, now->pack)->id.b, pack2.b, 32);
        assert_memory_equal(backup_index_pack_at(y, before->pack)->id.b, pack.b, 32);
        assert_null(backup_index_find_alt(y, &ids[4]));

        /* ---- damage ---- */
        /* a flipped bit anywhere in the pack: its name no longer matches */
        file.data[file.len / 2] ^= 0x10;
        assert_int_equal(backup_pack_parse(k, &pack, file.data, file.len, &series, &pe, &pn), -EBADMSG);
        /* ...and a blob altered under a recomputed name still does not open */
        backup_id renamed;
        backup_content_id(file.data, file.len, &renamed);
        size_t hit = 0;
        for (unsigned i = 0; i < 40; i++)
                if (file.len / 2 >= pe[i].offset && file.len / 2 < pe[i].offset + pe[i].length)
                        hit = i + 1;
        if (hit)
                assert_int_equal(backup_blob_open(k, &ids[hit - 1], pe[hit - 1].flags, pe[hit - 1].raw_len,
                                                  file.data + pe[hit - 1].offset, pe[hit - 1].length, &plain),
                                 -EBADMSG);
        file.data[file.len / 2] ^= 0x10;
        /* a blob claiming another id */
        assert_int_equal(backup_blob_open(k, &ids[1], pe[0].flags, pe[0].raw_len, file.data + pe[0].offset,
                                          pe[0].length, &plain),
                         -EBADMSG);
        /* the pack under another repository's key */
        _cleanup_free_ struct backup_pack_entry *oe = NULL;
        assert_int_equal(backup_pack_parse(other, &pack, file.data, file.len, &series, &oe, &pn), -EBADMSG);
        /* a truncated index */
        _cleanup_(backup_index_freep) struct backup_index *z = NULL;
        assert_int_equal(backup_index_new(&z), 0);
        backup_id tname;
        backup_content_id(idx.data, idx.len - 7, &tname);
        assert_int_equal(backup_index_load(z, k, &tname, idx.data, idx.len - 7), -EBADMSG);
        /* an index under another key */
        assert_int_equal(backup_index_load(z, other, &iname, idx.data, idx.len), -EBADMSG);
        buf_free(&file);
        buf_free(&idx);
        buf_free(&plain);
}

static void put_u64(uint8_t *p, uint64_t v) {
        for (unsigned i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static void test_manifest_shape(void **state) {
        uint8_t h[SIGNER_MANIFEST_HEADER_SIZE] = { 0 };
        int64_t now = (int64_t) time(NULL);

        memcpy(h, SIGNER_MANIFEST_MAGIC, 8);
        h[8] = 1;
        h[12] = 1;
        put_u64(h + 16, (uint64_t) now);
        put_u64(h + 112, 4096);
        assert_int_equal(signer_manifest_check(h, sizeof h, now), 0);
        assert_int_equal(signer_manifest_check(h, sizeof h - 1, now), -EBADMSG);
        /* a date the signer's clock does not vouch for */
        assert_int_equal(signer_manifest_check(h, sizeof h, now + 2 * SIGNER_MANIFEST_SKEW_SEC), -EPERM);
        assert_int_equal(signer_manifest_check(h, sizeof h, now - 2 * SIGNER_MANIFEST_SKEW_SEC), -EPERM);
        h[12] = 3; /* no such series */
        assert_int_equal(signer_manifest_check(h, sizeof h, now), -EBADMSG);
        h[12] = 2;
        h[13] = 1; /* padding must be zero */
        assert_int_equal(signer_manifest_check(h, sizeof h, now), -EBADMSG);
        h[13] = 0;
        put_u64(h + 112, 3); /* a body too small to be sealed */
        assert_int_equal(signer_manifest_check(h, sizeof h, now), -EBADMSG);
        put_u64(h + 112, 4096);
        h[0] = 'X';
        assert_int_equal(signer_manifest_check(h, sizeof h, now), -EBADMSG);

        /* verification: a signature by another key is refused */
        uint8_t pk[32], sk[64], pk2[32], sk2[64], sig[64], m[sizeof SIGNER_MANIFEST_CONTEXT - 1 + sizeof h];
        h[0] = 'C';
        crypto_sign_keypair(pk, sk);
        crypto_sign_keypair(pk2, sk2);
        memcpy(m, SIGNER_MANIFEST_CONTEXT, sizeof SIGNER_MANIFEST_CONTEXT - 1);
        memcpy(m + sizeof SIGNER_MANIFEST_CONTEXT - 1, h, sizeof h);
        crypto_sign_detached(sig, NULL, m, sizeof m, sk);
        assert_int_equal(signer_manifest_verify(pk, h, sizeof h, sig), 0);
        assert_int_equal(signer_manifest_verify(pk2, h, sizeof h, sig), -EBADMSG);
        h[20] ^= 1;
        assert_int_equal(signer_manifest_verify(pk, h, sizeof h, sig), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vector),
                cmocka_unit_test(test_shift_resistance),
                cmocka_unit_test(test_params),
                cmocka_unit_test(test_blob_id_is_hmac_sha256),
                cmocka_unit_test(test_pack_index_round_trip),
                cmocka_unit_test(test_manifest_shape),
        };
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
