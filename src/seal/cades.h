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

/* Checks what the signer returned for digest: one signer, its signed attributes verify under the
 * certificate inside, the message digest is digest, and nothing but the four B-B attributes is
 * signed. -EBADMSG otherwise. */
int cades_check(const uint8_t *cms, size_t len, const uint8_t digest[32]) _warn_unused_;

/* Answers a DER TimeStampReq with a DER TimeStampResp (malloc'd by the callee, freed with
 * OPENSSL_free). */
typedef int (*cades_tsa_fn)(void *ud, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len);

/* B-B to B-T: asks tsa for a token over the signature value (SHA-256, a nonce, certReq), checks
 * the reply (granted, signature valid, TSA certificate chains to trust with the timeStamping
 * purpose, imprint and nonce ours) and returns the signature with the token as unsigned
 * attribute (OPENSSL_malloc'd). -EBADMSG for a reply that does not pass, -EPROTO for a
 * rejection. */
int cades_add_timestamp(const uint8_t *cms, size_t len, cades_tsa_fn tsa, void *ud, X509_STORE *trust, uint8_t **ret,
                        size_t *ret_len) _warn_unused_;

struct cades_info {
        char level[4];          /* "B-B" or "B-T" */
        int64_t signing_time;   /* ms, from the signing-time attribute */
        int64_t timestamp_time; /* ms, the token's genTime; 0 without one */
};
/* Reads the level and times of a seal (no verification). */
int cades_info(const uint8_t *cms, size_t len, struct cades_info *ret) _warn_unused_;
/* An ASN1 GeneralizedTime or UTCTime as Unix ms (fractions of a second kept to the ms). */
int cades_asn1_time_ms(const ASN1_TIME *t, int64_t *ret) _warn_unused_;
