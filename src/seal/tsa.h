/* tsa.h: the built-in RFC 3161 time-stamping authority, run inside the signer process: checks a
 * TimeStampReq and answers a TimeStampResp, granted and signed with the TSA key, or a rejection
 * with the PKIFailureInfo that names what is wrong. Hostile input never makes it fail: only an
 * internal error (memory, library) does. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "macro.h"

#define TSA_REQUEST_MAX 4096u   /* a TimeStampReq is ~60 bytes; more is refused (badDataFormat) */
#define TSA_NONCE_MAX_BITS 160u /* larger nonces are refused (badRequest) */
#define TSA_DEFAULT_POLICY "2.25.142519218827957972032110117995011720546"
#define TSA_DEFAULT_ACCURACY_MS 1000u

struct tsa;

struct tsa_options {
        const char *policy_oid; /* dotted OID of the policy every token carries */
        uint32_t accuracy_ms;   /* the accuracy every token states (1 ms to 3600 s) */
};

/* A responder with the TSA key and certificate; ca (may be NULL) is sent along when the
 * request asks for certificates. Takes references, not ownership. */
int tsa_new(EVP_PKEY *key, X509 *cert, X509 *ca, const struct tsa_options *o, struct tsa **ret) _warn_unused_;
void tsa_free(struct tsa *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct tsa *, tsa_free);

/* Answers the DER TimeStampReq req with a DER TimeStampResp (OPENSSL_malloc'd: OPENSSL_free):
 * granted, or rejected with badDataFormat (not DER, trailing bytes, too large, an imprint whose
 * length is not its algorithm's), badAlg (an imprint algorithm other than SHA-256,
 * SHA-384, SHA-512), badRequest (a nonce over 160 bits or negative, a version other than 1), unacceptedPolicy or
 * unacceptedExtension. A negative errno only on internal failure. */
int tsa_respond(struct tsa *t, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) _warn_unused_;
/* Seconds, milliseconds and microseconds of an accuracy in ms (for the TSTInfo). */
void tsa_split_accuracy(uint32_t ms, unsigned *ret_s, unsigned *ret_ms);
