/* selfsigned.h: a self-signed ECDSA P-256 TLS certificate for a vault tried out on one machine. */
#pragma once

#include "macro.h"

/* Writes key_path (0600) and cert_path (0644) for CN=localhost with subjectAltName
 * DNS:localhost, IP:127.0.0.1, IP:::1, valid for days days. */
int selfsigned_tls_create(const char *cert_path, const char *key_path, int days) _warn_unused_;
