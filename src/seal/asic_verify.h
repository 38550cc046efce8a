/* asic_verify.h: offline verification of a coffre evidence bundle (ASiC-S, docs/formats.md
 * "Evidence bundle"): the container (ZIP structure, mimetype first and stored, every CRC, exactly
 * the expected files), the CAdES seal over the document (CMS signature, signing-certificate-v2
 * binding, certificate chain), its time-stamp token over the signature value, and the audit
 * entries' inclusion proofs against the checkpoint and the checkpoint's signature. Reads the
 * file, never writes it; memory does not grow with the document. Each check is printed as
 * "ok   ..." or "FAIL ...: reason"; the first failure stops. */
#pragma once

#include <stdio.h>

#include "macro.h"

#define ASIC_MAX_ENTRIES 16u
#define ASIC_MAX_SMALL (1u << 20) /* any META-INF file */

struct asic_verify_options {
        const char *document; /* a copy of the document to compare with the bundled one, or NULL */
        const char *ca_file;  /* the trusted CA (seal and TSA chains); NULL: the bundled chains */
        const char *log_key;  /* the trusted log verifier key (vkey file); NULL: the bundled one */
};

/* 0 when every check passed; -EBADMSG at the first failure (reason in ret_reason, size bytes);
 * another negative errno when a file cannot be read. */
int asic_verify_file(const char *path, const struct asic_verify_options *o, FILE *out, char *ret_reason,
                     size_t reason_size) _warn_unused_;
/* The same on an open descriptor (for the fuzz target). */
int asic_verify_fd(int fd, const struct asic_verify_options *o, FILE *out, char *ret_reason, size_t reason_size)
        _warn_unused_;
