/* tsr_check.h: offline verification of RFC 3161 time-stamp replies and tokens (coffre verify),
 * whoever the TSA: strict DER, status, the token's CMS signature and the TSA certificate chain
 * (OpenSSL's TS_VERIFY_CTX: ESS signing-certificate binding, critical timeStamping EKU), and that
 * the message imprint is the hash of the given data. Each check made is printed as one line
 * ("ok   ..." or "FAIL ...: reason"); the first failure stops the checks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/bio.h>

#include "macro.h"

#define TSR_MAX_SIZE (1u << 20)

struct tsr_check_options {
        const char *ca_file;        /* trusted certificates (PEM); each one is a trust anchor */
        const char *ca_pem;         /* or the same in memory (NUL-terminated), when ca_file is NULL */
        const char *untrusted_file; /* more certificates to build the chain with (PEM), or NULL */
        const char *untrusted_pem;  /* or the same in memory (NUL-terminated) */
        bool at_now;                /* check the chain now rather than at the token's genTime */
        const uint8_t *digest;      /* instead of data (NULL then): the hash that was time-stamped */
        size_t digest_len;
};

struct tsr_check_result {
        char reason[256]; /* the first failure, for the caller's last line */
        int64_t gen_time; /* seconds since the epoch, once the token is parsed */
};

/* A TimeStampResp (DER). data: the time-stamped bytes (read to the end; the callee frees it,
 * also on failure), or NULL with o->digest. 0 when every check passed; -EBADMSG when one failed (reason set); another
 * negative errno when the check could not be made (reason set). */
int tsr_check_reply(const uint8_t *der, size_t len, BIO *data, const struct tsr_check_options *o, FILE *out,
                    struct tsr_check_result *ret) _warn_unused_;
/* The same for a bare TimeStampToken (a CMS ContentInfo, DER), e.g. the signature-time-stamp of a
 * CAdES signature over its signature value. */
int tsr_check_token(const uint8_t *der, size_t len, BIO *data, const struct tsr_check_options *o, FILE *out,
                    struct tsr_check_result *ret) _warn_unused_;
