/* entry.h: audit log entries as canonical JSON (RFC 8785 subset: string values only, keys sorted,
 * compact), with the optional "details" field sealed under the organisation's audit key.
 *
 * No personal data may appear in clear in an entry: ids are opaque and everything personal goes
 * into details, which is AES-256-GCM encrypted (nonce || ciphertext || tag, base64) with the
 * canonical JSON of the other fields as AAD, so details cannot be moved to another entry. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

#define AUDIT_ENTRY_MAX 65535u           /* whole serialised entry (fits a C2SP entry bundle) */
#define AUDIT_ENTRY_FIELD_MAX 1024u      /* every field but details, in bytes */
#define AUDIT_ENTRY_DETAILS_PLAIN_MAX 32768u
#define AUDIT_ENTRY_KEY_SIZE 32u
#define AUDIT_ENTRY_NONCE_SIZE 12u
#define AUDIT_ENTRY_TAG_SIZE 16u

/* Every field is a NUL-terminated UTF-8 string. Required: time, org, actor, action, request_id.
 * Optional (NULL = absent): object, object_sha256, details, mac. */
struct audit_entry {
        char *time;          /* RFC 3339 UTC with milliseconds: "2026-11-27T11:22:33.123Z" */
        char *org;           /* opaque organisation id */
        char *actor;         /* opaque user / token / system id */
        char *action;        /* "document.create", "document.read", "key.rotate", ... */
        char *object;        /* object id */
        char *object_sha256; /* 64 lower-case hex digits */
        char *request_id;
        char *details;       /* base64(nonce || ciphertext || tag) */
        char *mac;           /* record MAC: 64 lower-case hex digits (see audit_entry_mac_input) */
};

/* Serialises e canonically and appends it to ret_json (an initialised buf) on success.
 * With details_key (32 bytes) and details_plain, seals details_plain as the details field
 * (e->details must then be NULL); without a key, e->details (if set) is copied as is.
 * -EINVAL on a missing or malformed field, -E2BIG past the size limits. */
int audit_entry_build(const struct audit_entry *e, const uint8_t *details_key, const char *details_plain,
                      struct buf *ret_json) _warn_unused_;

/* Strict parse: exactly the canonical serialisation of a valid entry is accepted (unknown,
 * duplicate or missing fields, whitespace, other escapes or key orders all give -EBADMSG).
 * On success ret owns its strings: release them with audit_entry_clear(). */
int audit_entry_parse(const char *json, size_t len, struct audit_entry *ret) _warn_unused_;

/* Decrypts e->details with the organisation's audit key; appends the plaintext to ret_plain
 * (free it with buf_free_secure: it may hold personal data). -ENOENT without details,
 * -EBADMSG when the key is wrong or anything in the entry was changed. */
int audit_entry_open_details(const struct audit_entry *e, const uint8_t *details_key,
                             struct buf *ret_plain) _warn_unused_;

/* The bytes a record MAC covers: the canonical JSON of every field of e but mac (details
 * included), appended to ret. The server puts HMAC-SHA-256 of it, under a key derived from its
 * master key, in the mac field, so that after a crash it can tell its own unsigned entries from
 * records written by someone else (docs/audit.md). */
int audit_entry_mac_input(const struct audit_entry *e, struct buf *ret) _warn_unused_;

/* Formats a time in milliseconds since the epoch as the "time" field wants it. */
void audit_entry_format_time(int64_t ms, char out[32]);

/* Frees the strings of a parsed entry and zeroes it. */
void audit_entry_clear(struct audit_entry *e);

/* Appends s as an RFC 8785 JSON string (quotes included); -EINVAL on invalid UTF-8. */
int audit_json_append_string(struct buf *b, const char *s, size_t n) _warn_unused_;
