/* tsa_fuzz.c: libFuzzer target for the built-in TSA's request handling (tsa_respond): any input
 * must give a well-formed TimeStampResp, granted or rejected, never a crash or an error. A
 * granted reply must carry a token over the request's own imprint. The TSA key is made once, in
 * memory. The same entry point replays fuzz/corpus/tsa/ in the unit tests. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/ts.h>

#include "fuzz.h"
#include "seal/pki.h"
#include "seal/tsa.h"

/* accepted: the reply grants a token */
int fuzz_verdict;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct tsa *t;
        uint8_t *out = NULL;
        size_t n = 0;

        if (!t) {
                EVP_PKEY *ca_key, *key;
                X509 *ca, *cert;
                if (pki_make_ca("fuzz CA", &ca_key, &ca) < 0 ||
                    pki_make_leaf(PKI_LEAF_TSA, "fuzz TSA", NULL, ca_key, ca, 30, &key, &cert) < 0 ||
                    tsa_new(key, cert, ca,
                            &(struct tsa_options){ .policy_oid = TSA_DEFAULT_POLICY, .accuracy_ms = 1000 }, &t) < 0)
                        abort(); /* kept for the process's life, like the signer's */
        }
        if (tsa_respond(t, data, size, &out, &n) < 0)
                abort(); /* hostile input must never be an internal error */
        const unsigned char *p = out;
        TS_RESP *resp = d2i_TS_RESP(NULL, &p, (long) n);
        if (!resp || p != out + n)
                abort();
        long status = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp)));
        fuzz_verdict = status == TS_STATUS_GRANTED;
        if (fuzz_verdict) {
                /* the token's imprint is the request's */
                const unsigned char *q = data;
                TS_REQ *req = d2i_TS_REQ(NULL, &q, (long) size);
                TS_TST_INFO *tst = TS_RESP_get_tst_info(resp);
                if (!req || !tst ||
                    ASN1_OCTET_STRING_cmp(TS_MSG_IMPRINT_get_msg(TS_REQ_get_msg_imprint(req)),
                                          TS_MSG_IMPRINT_get_msg(TS_TST_INFO_get_msg_imprint(tst))) != 0)
                        abort();
                TS_REQ_free(req);
        } else if (TS_RESP_get_token(resp))
                abort(); /* a rejection carries no token */
        TS_RESP_free(resp);
        OPENSSL_free(out);
        return 0;
}
