/* evidence.c: the evidence bundle of one document (ASiC-S, see evidence.h). */
#include "evidence.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <sodium.h>

#include "audit/log.h"
#include "audit/merkle.h"
#include "buf.h"
#include "ledger.h"
#include "seal/signer.h"
#include "log.h"
#include "vault_internal.h"
#include "zipw.h"

struct vault_evidence {
        struct store_document doc;
        struct vault_reader *rd;
        struct zipw *zip;
};

const struct store_document *vault_evidence_document(const struct vault_evidence *e) {
        return &e->doc;
}

uint64_t vault_evidence_size(const struct vault_evidence *e) {
        return zipw_size(e->zip);
}

ssize_t vault_evidence_read(struct vault_evidence *e, uint8_t *buf, size_t max) {
        return zipw_read(e->zip, buf, max);
}

void vault_evidence_free(struct vault_evidence *e) {
        if (!e)
                return;
        zipw_free(e->zip);
        vault_reader_free(e->rd);
        free(e);
}

void evidence_entry_name(const char *doc_name, char out[256]) {
        size_t o = 0, limit = 250; /* room for a '_' in front */
        size_t n = strlen(doc_name);
        if (n > limit) {
                n = limit;
                while (n > 0 && ((unsigned char) doc_name[n] & 0xc0) == 0x80)
                        n--; /* never cut a UTF-8 sequence in two */
        }
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) doc_name[i];
                if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f || (i == 0 && c == '.'))
                        c = '_';
                out[o++] = (char) c;
        }
        out[o] = 0;
        if (o == 0 || strcmp(out, "mimetype") == 0 || strncmp(out, "META-INF", 8) == 0) {
                char tmp[256];
                snprintf(tmp, sizeof tmp, "_%s", o ? out : "document");
                memcpy(out, tmp, strlen(tmp) + 1);
        }
}

static ssize_t doc_read(void *ud, uint64_t off, uint8_t *buf, size_t max) {
        struct vault_evidence *e = ud;
        size_t n = 0;
        int r = vault_reader_read(e->rd, off, buf, max, &n);
        if (r < 0)
                return r;
        return n ? (ssize_t) n : -EIO;
}

/* The seal certificate's chain as the signer has it (the certificate, then its imported chain or
 * the vault's CA): the seal itself carries the certificate alone. */
static int seal_chain_pem(struct vault *v, const char *org_id, struct buf *b) {
        struct store_org o;
        _cleanup_free_ char *pem = NULL;
        int r = v->store->ops->org_get(v->store, org_id, &o);
        if (r < 0)
                return r;
        r = signer_seal_chain(ledger_signer(v->ledger), org_id, *o.name ? o.name : org_id, &pem);
        if (r < 0)
                return r;
        return buf_append_str(b, pem);
}

/* The checkpoint's time-stamp: the one the checkpointer stored for that size, else one asked of
 * the vault's TSA now (imprint SHA-256 of the note as signed, a nonce, certReq). */
static int checkpoint_timestamp(struct vault *v, uint64_t size, const char *note, uint8_t **ret, size_t *ret_len) {
        int r = ledger_checkpoint_timestamp(v->ledger, size, ret, ret_len);
        if (r != -ENOENT)
                return r;
        uint8_t h[32], nonce[8];
        EVP_Digest(note, strlen(note), h, NULL, EVP_sha256(), NULL);
        randombytes_buf(nonce, sizeof nonce);
        nonce[0] &= 0x7f;
        TS_REQ *q = TS_REQ_new();
        TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
        X509_ALGOR *alg = X509_ALGOR_new();
        ASN1_INTEGER *n = ASN1_INTEGER_new();
        BIGNUM *bn = BN_bin2bn(nonce, sizeof nonce, NULL);
        unsigned char *der = NULL;
        int dl = -1;
        if (q && mi && alg && n && bn && BN_to_ASN1_INTEGER(bn, n) && TS_REQ_set_version(q, 1) &&
            X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) && TS_MSG_IMPRINT_set_algo(mi, alg) &&
            TS_MSG_IMPRINT_set_msg(mi, h, sizeof h) && TS_REQ_set_msg_imprint(q, mi) && TS_REQ_set_nonce(q, n) &&
            TS_REQ_set_cert_req(q, 1))
                dl = i2d_TS_REQ(q, &der);
        BN_free(bn);
        ASN1_INTEGER_free(n);
        X509_ALGOR_free(alg);
        TS_MSG_IMPRINT_free(mi);
        TS_REQ_free(q);
        ERR_clear_error();
        if (dl <= 0)
                return -ENOMEM;
        r = vault_tsa_respond(v, der, (size_t) dl, ret, ret_len);
        OPENSSL_free(der);
        return r;
}

static json_t *b64(const void *p, size_t n) {
        size_t l = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
        char *s = malloc(l);
        if (!s)
                return NULL;
        sodium_bin2base64(s, l, p, n, sodium_base64_VARIANT_ORIGINAL);
        json_t *j = json_string(s);
        free(s);
        return j;
}

/* audit.json: the document's entries under the checkpoint, each with its inclusion proof. */
static int audit_json(struct vault *v, const struct vault_actor *a, const char *id, const struct audit_checkpoint *cp,
                      struct buf *out) {
        _cleanup_free_ uint64_t *idx = NULL;
        size_t n = 0;
        bool more = false;
        struct audit_log *log = ledger_log(v->ledger);
        int r = vault_document_audit(v, a, id, NULL, EVIDENCE_MAX_ENTRIES, &idx, &n, &more);
        if (r < 0)
                return r;
        json_t *arr = json_array();
        json_t *root =
                json_pack("{s:s, s:I, s:o, s:o}", "log_origin", ledger_origin(v->ledger), "checkpoint_size",
                          (json_int_t) cp->size, "checkpoint_root", b64(cp->root.b, MERKLE_HASH_SIZE), "entries", arr);
        if (!root)
                return -ENOMEM;
        _cleanup_buf_ struct buf e = {};
        buf_init(&e, AUDIT_LOG_ENTRY_MAX + 1);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                merkle_hash proof[MERKLE_MAX_PROOF];
                size_t pl = 0;
                if (idx[i] >= cp->size)
                        continue; /* after the checkpoint (none: one is signed first) */
                buf_clear(&e);
                r = audit_log_entry(log, idx[i], &e);
                if (r >= 0)
                        r = audit_log_inclusion_proof(log, idx[i], cp->size, proof, &pl);
                if (r < 0)
                        break;
                json_t *pa = json_array();
                for (size_t k = 0; pa && k < pl; k++)
                        json_array_append_new(pa, b64(proof[k].b, MERKLE_HASH_SIZE));
                json_t *o = json_pack("{s:I, s:o, s:o}", "index", (json_int_t) idx[i], "entry", b64(e.data, e.len),
                                      "inclusion_proof", pa);
                if (!o || json_array_append_new(arr, o) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0) {
                char *s = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
                r = s ? buf_append_str(out, s) : -ENOMEM;
                if (r >= 0)
                        r = buf_append_str(out, "\n");
                free(s);
        }
        json_decref(root);
        return r;
}

static int verify_text(const char *name, struct buf *b) {
        return buf_printf(
                b,
                "Evidence bundle of one document, made by coffre (ASiC-S, ETSI EN 319 162-1).\n"
                "Everything here can be checked offline, with `coffre verify THIS.asics` or with openssl\n"
                "alone. Unzip it first (unzip -d ev THIS.asics; cd ev). DOC below is the document: \"%s\".\n"
                "\n"
                "1. The seal (CAdES-B-T, a detached CMS signature over DOC) and its certificate chain:\n"
                "     openssl cms -verify -binary -inform DER -in META-INF/signature.p7s -content DOC \\\n"
                "         -CAfile META-INF/seal-chain.pem -purpose any -out /dev/null\n"
                "   Use your own copy of the vault's CA certificate as -CAfile where you have one: the chain\n"
                "   in the bundle proves the key, not who owns the CA.\n"
                "2. Its signing time and certificate binding:\n"
                "     openssl cms -cmsout -print -inform DER -in META-INF/signature.p7s\n"
                "   shows signingTime, messageDigest (the SHA-256 of DOC: openssl dgst -sha256 DOC) and\n"
                "   id-smime-aa-signingCertificateV2 (the SHA-256 of the seal certificate:\n"
                "   openssl x509 -in META-INF/seal-chain.pem -outform DER | openssl dgst -sha256).\n"
                "3. The time-stamp (unsigned attribute id-smime-aa-timeStampToken, an RFC 3161 token over the\n"
                "   signature value): the same print shows it; `coffre verify` checks it against\n"
                "   META-INF/tsa-chain.pem (openssl ts -verify -token_in -in TOKEN -data SIGVALUE -CAfile\n"
                "   META-INF/tsa-chain.pem -untrusted META-INF/tsa-chain.pem, with TOKEN and SIGVALUE cut out\n"
                "   of signature.p7s with\n"
                "   openssl asn1parse -inform DER -in META-INF/signature.p7s -strparse OFFSET -out FILE).\n"
                "4. The audit log: META-INF/checkpoint.txt is a C2SP signed checkpoint of the vault's log,\n"
                "   signed with the key in META-INF/log.vkey (Ed25519), and time-stamped:\n"
                "     openssl ts -verify -in META-INF/checkpoint.tsr -data META-INF/checkpoint.txt \\\n"
                "         -CAfile META-INF/tsa-chain.pem -untrusted META-INF/tsa-chain.pem\n"
                "   META-INF/audit.json holds this\n"
                "   document's log entries (base64 of their exact bytes, canonical JSON) and for each an\n"
                "   RFC 9162 inclusion proof against the checkpoint's tree (leaf = SHA-256(0x00 || entry),\n"
                "   node = SHA-256(0x01 || left || right)). The entries name the document by id and SHA-256.\n",
                name);
}

int vault_document_evidence(struct vault *v, const struct vault_actor *a, const char *id, const char *request_id,
                            struct vault_evidence **ret) {
        _cleanup_free_ uint8_t *seal = NULL;
        size_t seal_len = 0;
        char name[256];
        int r;

        r = vault_document_seal(v, a, id, &seal, &seal_len);
        if (r == -ENOENT) {
                struct store_document d;
                return vault_document_get(v, a, id, &d) < 0 ? -ENOENT : -ENOKEY;
        }
        if (r < 0)
                return r;
        _cleanup_(vault_evidence_freep) struct vault_evidence *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        r = vault_document_open_as(v, a, id, request_id, "document.evidence", &e->doc, &e->rd);
        if (r < 0)
                return r;
        /* a checkpoint covering every entry of the document, the one just logged included */
        r = ledger_checkpoint_now(v->ledger);
        if (r < 0)
                return log_error_errno(r, "evidence: cannot sign a checkpoint: %s", strerror(-r));
        struct audit_checkpoint cp = {};
        r = audit_log_checkpoint_latest(ledger_log(v->ledger), &cp);
        if (r < 0)
                return r;
        /* the note as the log signed it (no cosignature lines): what its time-stamp covers */
        _cleanup_free_ char *note = cp.note ? strdup(cp.note) : NULL;
        _cleanup_free_ uint8_t *cts = NULL;
        size_t cts_len = 0;
        r = note ? checkpoint_timestamp(v, cp.size, note, &cts, &cts_len) : -ENOMEM;
        _cleanup_buf_ struct buf chain = {}, audit = {}, verify = {};
        buf_init(&chain, 0);
        buf_init(&audit, 0);
        buf_init(&verify, 0);
        if (r >= 0)
                r = seal_chain_pem(v, e->doc.org_id, &chain);
        if (r >= 0)
                r = audit_json(v, a, id, &cp, &audit);
        audit_checkpoint_clear(&cp);
        evidence_entry_name(e->doc.name, name);
        if (r >= 0)
                r = verify_text(name, &verify);
        const char *tsa = vault_tsa_chain(v);
        const char *vkey = ledger_vkey(v->ledger);
        if (r >= 0 && (!tsa || !vkey))
                r = -ENOKEY;
        if (r >= 0)
                r = zipw_new(&e->zip);
        if (r >= 0)
                r = zipw_add_mem(e->zip, "mimetype", EVIDENCE_MIMETYPE, strlen(EVIDENCE_MIMETYPE));
        if (r >= 0)
                r = zipw_add_mem(e->zip, EVIDENCE_SIGNATURE, seal, seal_len);
        if (r >= 0)
                r = zipw_add_mem(e->zip, EVIDENCE_SEAL_CHAIN, chain.data, chain.len);
        if (r >= 0)
                r = zipw_add_mem(e->zip, EVIDENCE_TSA_CHAIN, tsa, strlen(tsa));
        if (r >= 0)
                r = zipw_add_mem(e->zip, EVIDENCE_CHECKPOINT, note, strlen(note));
        if (r >= 0)
                r = zipw_add_mem(e->zip, EVIDENCE_CHECKPOINT_TS, cts, cts_len);
        if (r >= 0)
                r = zipw_add_mem(e->zip, EVIDENCE_LOG_KEY, vkey, strlen(vkey));
        if (r >= 0)
                r = zipw_add_mem(e->zip, EVIDENCE_AUDIT, audit.data, audit.len);
        if (r >= 0)
                r = zipw_add_mem(e->zip, EVIDENCE_VERIFY, verify.data, verify.len);
        /* the document last: the only entry that streams */
        if (r >= 0)
                r = zipw_add_stream(e->zip, name, e->doc.size, doc_read, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(e);
        return 0;
}
