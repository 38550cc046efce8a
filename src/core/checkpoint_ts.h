/* checkpoint_ts.h: RFC 3161 timestamps of audit checkpoints, kept beside them in
 * DATA/audit/checkpoint-timestamps: one line per timestamp, "<tree size> <base64 of the DER
 * TimeStampResp>\n", appended and synced. The token's imprint is the SHA-256 of the checkpoint
 * note as the log signed it (without witness cosignature lines). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "macro.h"

#define CHECKPOINT_TS_FILE "checkpoint-timestamps"
#define CHECKPOINT_TS_REPLY_MAX 8192u

struct checkpoint_ts {
        uint64_t size;
        uint8_t *reply; /* DER TimeStampResp */
        size_t len;
};

/* Appends one timestamp durably (fdatasync; the directory synced when the file is new). */
int checkpoint_ts_append(const char *audit_dir, uint64_t size, const uint8_t *reply, size_t len) _warn_unused_;
/* Every stored timestamp, in file order (*ret_n 0 and *ret NULL when there is no file).
 * -EBADMSG for a line that is not "<size> <base64>"; a last line without its newline (a torn
 * append) is left out. */
int checkpoint_ts_load(const char *audit_dir, struct checkpoint_ts **ret, size_t *ret_n) _warn_unused_;
void checkpoint_ts_free(struct checkpoint_ts *v, size_t n);
/* Checks a reply against the note it should stamp: granted, signature valid, the TSA's
 * certificate chains to trust with the timeStamping purpose, imprint = SHA-256(note). Its
 * genTime in *ret_time_ms. -EBADMSG when it does not hold. */
int checkpoint_ts_verify(const uint8_t *reply, size_t len, const char *note, X509_STORE *trust, int64_t *ret_time_ms)
        _warn_unused_;
