/* cades.h: the document seal, a detached CMS SignedData of ETSI EN 319 122-1 baseline B-B
 * (signed attributes content-type id-data, message-digest, signing-time, signing-certificate-v2)
 * raised to B-T by an RFC 3161 token over its signature value (unsigned attribute
 * id-aa-signatureTimeStampToken). cades_sign() runs in the signer; the rest in the server. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "macro.h"

#define CADES_MAX ((size_t) 16 * 1024) /* a sealed B-T signature with its certificates: ~3 KB */

/* Signs: a detached SignedData over a document whose SHA-256 is digest, signing time
 * signing_time (Unix seconds), with the seal certificate and, when not NULL, the CA certificate
 * in it. *ret OPENSSL_malloc'd. */
int cades_sign(EVP_PKEY *key, X509 *cert, X509 *ca, const uint8_t digest[32], int64_t signing_time, uint8_t **ret,
               size_t *ret_len) _warn_unused_;

/* The signer's fast path: a seal assembled around one ECDSA signature, byte for byte what
 * cades_sign() makes without the CA (cades_check() and openssl accept it). EC keys only. */
struct cades_signer;
int cades_signer_new(EVP_PKEY *key, X509 *cert, struct cades_signer **ret) _warn_unused_;
void cades_signer_free(struct cades_signer *cs);
#define CADES_SIG_MAX 80 /* an ECDSA P-256 signature, DER */
/* ret_sig (may be NULL): the signature value, for a timestamp over it. */
int cades_signer_sign(struct cades_signer *cs, const uint8_t digest[32], int64_t signing_time, uint8_t **ret,
                      size_t *ret_len, uint8_t ret_sig[CADES_SIG_MAX], size_t *ret_sig_len) _warn_unused_;

/* Checks what the signer returned for digest: one signer, its signed attributes verify under the
 * certificate inside, the message digest is digest, and nothing but the four B-B attributes is
 * signed. -EBADMSG otherwise. */
int cades_check(const uint8_t *cms, size_t len, const uint8_t digest[32]) _warn_unused_;

/* Answers a DER TimeStampReq with a DER TimeStampResp (malloc'd by the callee, freed with
 * OPENSSL_free). */
typedef int (*cades_tsa_fn)(void *ud, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len);

/* A DER TimeStampReq over data (SHA-256, this nonce, no certReq), for the signer to answer itself. */
int cades_ts_query_der(const uint8_t *data, size_t len, const uint8_t nonce[8], uint8_t **ret, size_t *ret_len)
        _warn_unused_;

struct cades_info {
        char level[4];          /* "B-B" or "B-T" */
        int64_t signing_time;   /* ms, from the signing-time attribute */
        int64_t timestamp_time; /* ms, the token's genTime; 0 without one */
};

/* B-B to B-T: asks tsa for a token over the signature value (SHA-256, a nonce, certReq only with
 * trust: without, the token carries no certificate and verifiers take the TSA chain from
 * GET /v1/tsa/certificate), checks
 * the reply (granted, version, imprint and nonce ours; with trust, also its signature and that
 * the TSA's certificate chains to trust with the timeStamping purpose; trust NULL is for the
 * vault's own signer, whose tokens the tests verify with openssl) and returns the signature with
 * the token as unsigned attribute (OPENSSL_malloc'd), and in *ret_info (may be NULL) its level
 * and times. -EBADMSG for a reply that does not pass, -EPROTO for a rejection. */
int cades_add_timestamp(const uint8_t *cms, size_t len, cades_tsa_fn tsa, void *ud, X509_STORE *trust, uint8_t **ret,
                        size_t *ret_len, struct cades_info *ret_info) _warn_unused_;
/* B-B to B-T from a seal and the signer's reply to cades_ts_query_der() over its signature
 * value with nonce: checks the seal as cades_check() does and the reply (granted, version, that
 * query's imprint and nonce; the signer's own reply: no chain check), attaches the token, on one
 * parse. *ret OPENSSL_malloc'd; *ret_info (may be NULL) its level and times. -EBADMSG, -EPROTO
 * for a rejection. */
int cades_attach_reply(const uint8_t *cms, size_t len, const uint8_t digest[32], const uint8_t *reply, size_t reply_len,
                       const uint8_t nonce[8], uint8_t **ret, size_t *ret_len, struct cades_info *ret_info)
        _warn_unused_;

/* A checked RFC 3161 reply (DER, OPENSSL_malloc'd) over data, as cades_add_timestamp() checks it
 * (trust NULL: no signature check), with certReq: the token carries the TSA certificate. */
int cades_timestamp_data(const uint8_t *data, size_t len, cades_tsa_fn tsa, void *ud, X509_STORE *trust, uint8_t **ret,
                         size_t *ret_len) _warn_unused_;

/* Reads the level and times of a seal (no verification). */
int cades_info(const uint8_t *cms, size_t len, struct cades_info *ret) _warn_unused_;
/* An ASN1 GeneralizedTime or UTCTime as Unix ms (fractions of a second kept to the ms). */
int cades_asn1_time_ms(const ASN1_TIME *t, int64_t *ret) _warn_unused_;
