/* selfsigned.h: a self-signed ECDSA P-256 TLS certificate for a vault tried out on one machine. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Browsers refuse server certificates valid longer than 398 days. */
#define SELFSIGNED_MAX_DAYS 397
/* The organisation in the subject of every certificate coffre makes: how renew recognises one. */
#define SELFSIGNED_ORG "coffre vault"

/* Writes key_path (0600) and cert_path (0644) for CN=localhost with subjectAltName
 * DNS:localhost, IP:127.0.0.1, IP:::1, valid for days days (1 to SELFSIGNED_MAX_DAYS). */
int selfsigned_tls_create(const char *cert_path, const char *key_path, int days) _warn_unused_;

struct selfsigned_renew_options {
        int days;        /* 0: SELFSIGNED_MAX_DAYS */
        bool rotate_key; /* a new key pair instead of the one in key_path */
        bool force;      /* replace a certificate coffre did not make */
};
/* Re-issues the self-signed certificate in cert_path. Refuses (-EEXIST, logged) a certificate
 * that coffre did not make unless o->force. Errors are logged. */
int selfsigned_tls_renew(const char *cert_path, const char *key_path, const struct selfsigned_renew_options *o)
        _warn_unused_;
/* notAfter of the first certificate in a PEM text, in seconds since the epoch. -EBADMSG if none. */
int selfsigned_cert_not_after(const char *pem, size_t len, int64_t *ret) _warn_unused_;
