/* seal_bench.c: seal-bench, how fast the signer seals and timestamps.
 *
 * Usage: seal-bench DIR [SECONDS]
 * Makes a signer's keys in DIR/keys (which must not exist), starts the real (sandboxed) signer
 * and measures, each for SECONDS (default 2), one request at a time from one thread:
 *   - TSA tokens per second through the signer (signer_timestamp of a SHA-256 query with a
 *     nonce and certReq, over its socket), and the same responder in this process (tsa_respond)
 *     with the same key, without the socket;
 *   - B-B seals per second (signer_seal, answer checked) and B-T seals per second (a seal then
 *     its timestamp, checked and attached: what ingest does).
 * Prints one line `result name=value ...`. The reference loop of `openssl ts -reply` on the
 * same key is run by bench/seal_run. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "seal/cades.h"
#include "seal/pki.h"
#include "seal/signer.h"
#include "seal/tsa.h"
#include "timeutil.h"

#define ORIGIN "bench.example/log"
#define ORG "0123456789abcdef0123456789abcdef"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static const uint8_t query[] = {
        /* SEQUENCE { 1, imprint SHA-256 (32 x 0x42), nonce 8 bytes, certReq TRUE } */
        0x30, 0x43, 0x02, 0x01, 0x01, 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x02, 0x01, 0x05, 0x00, 0x04, 0x20, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x42, 0x42, 0x02, 0x08, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x01, 0xff,
};

static int tsa_cb(void *ud, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
        uint8_t *p = NULL;
        size_t n = 0;
        int r = signer_timestamp(ud, req, len, &p, &n);
        if (r < 0)
                return r;
        *ret = OPENSSL_memdup(p, n);
        free(p);
        *ret_len = n;
        return *ret ? 0 : -ENOMEM;
}

static X509_STORE *trust_of(const char *keys) {
        _cleanup_free_ char *ca = path_join(keys, PKI_CA_CERT);
        X509_STORE *st = X509_STORE_new();
        if (!st || X509_STORE_load_file(st, ca) != 1)
                return NULL;
        return st;
}

int main(int argc, char **argv) {
        double secs = argc > 2 ? atof(argv[2]) : 2.0, t0;
        struct signer *s = NULL;
        uint8_t digest[32] = { 7 };
        unsigned long n;
        int r;

        if (argc < 2) {
                fprintf(stderr, "usage: seal-bench DIR [SECONDS]\n");
                return 2;
        }
        _cleanup_free_ char *keys = path_join(argv[1], "keys");
        if (!keys || signer_init_keys(keys, ORIGIN) < 0 || signer_start(keys, ORIGIN, &s) < 0) {
                fprintf(stderr, "seal-bench: cannot start a signer in %s\n", argv[1]);
                return 1;
        }
        _cleanup_free_ char *pem = NULL;
        if (signer_seal_chain(s, ORG, "Bench SARL", &pem) < 0)
                return 1;
        X509_STORE *trust = trust_of(keys);
        if (!trust)
                return 1;

        /* tokens through the signer */
        for (n = 0, t0 = now_s(); now_s() - t0 < secs; n++) {
                uint8_t *p = NULL;
                size_t len = 0;
                if ((r = signer_timestamp(s, query, sizeof query, &p, &len)) < 0)
                        return 1;
                free(p);
        }
        double tsa_signer = (double) n / (now_s() - t0);

        /* the same responder in this process, same key */
        int dfd = open(keys, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        EVP_PKEY *ck, *tk;
        X509 *cc, *tc;
        struct tsa *t = NULL;
        if (dfd < 0 || pki_load_pair(dfd, PKI_CA_KEY, PKI_CA_CERT, &ck, &cc) < 0 ||
            pki_load_pair(dfd, PKI_TSA_KEY, PKI_TSA_CERT, &tk, &tc) < 0 ||
            tsa_new(tk, tc, cc, &(struct tsa_options){ .policy_oid = TSA_DEFAULT_POLICY, .accuracy_ms = 1000 }, &t) < 0)
                return 1;
        for (n = 0, t0 = now_s(); now_s() - t0 < secs; n++) {
                uint8_t *p = NULL;
                size_t len = 0;
                if (tsa_respond(t, query, sizeof query, &p, &len) < 0)
                        return 1;
                OPENSSL_free(p);
        }
        double tsa_inproc = (double) n / (now_s() - t0);

        /* B-B seals */
        for (n = 0, t0 = now_s(); now_s() - t0 < secs; n++) {
                uint8_t *p = NULL;
                size_t len = 0;
                digest[0] = (uint8_t) n;
                if (signer_seal(s, ORG, digest, now_ms(), &p, &len) < 0)
                        return 1;
                free(p);
        }
        double seal_bb = (double) n / (now_s() - t0);

        /* B-T seals, as ingest makes them */
        for (n = 0, t0 = now_s(); now_s() - t0 < secs; n++) {
                uint8_t *p = NULL, *bt = NULL;
                size_t len = 0, bt_len = 0;
                digest[0] = (uint8_t) n;
                if (signer_seal(s, ORG, digest, now_ms(), &p, &len) < 0 ||
                    cades_add_timestamp(p, len, tsa_cb, s, NULL, &bt, &bt_len, NULL) < 0)
                        return 1;
                free(p);
                OPENSSL_free(bt);
        }
        double seal_bt = (double) n / (now_s() - t0);

        printf("result tsa_signer_per_s=%.0f tsa_inprocess_per_s=%.0f seal_bb_per_s=%.0f seal_bt_per_s=%.0f\n",
               tsa_signer, tsa_inproc, seal_bb, seal_bt);
        tsa_free(t);
        signer_stop(s);
        X509_STORE_free(trust);
        return 0;
}
