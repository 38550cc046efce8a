/* audit.c: /v1/audit/...: the signed checkpoint, the log's verifier key, RFC 9162 inclusion and
 * consistency proofs, ranges of entries (redacted outside the caller's organisation), witness
 * cosignatures, C2SP tlog-tiles, and a document's audit trail (/v1/documents/{id}/audit). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit/entry.h"
#include "audit/log.h"
#include "buf.h"
#include "core/ledger.h"
#include "hex.h"

#define ENTRIES_MAX_PER_CALL 1000u
#define COSIGNATURE_BODY_MAX ((size_t) 64 * 1024)
#define TILE_HEIGHT 8u

static int bad_request(struct http_request *r, const char *detail) {
        return http_respond_problem(r, 400, "bad-request", "Bad request", detail);
}

/* Reading the raw entries of the log is for the roles that audit the organisation. */
static bool may_read_entries(const struct vault_actor *a) {
        static const char *const roles[] = { "owner", "admin", "auditor" };
        for (size_t i = 0; a && i < ELEMENTSOF(roles); i++)
                if (strcmp(a->role, roles[i]) == 0)
                        return true;
        return false;
}

static int forbidden_entries(struct http_request *r) {
        return http_respond_problem(r, 403, "forbidden", "Forbidden",
                                    "Reading audit entries needs the owner, admin or auditor role.");
}

/* A decimal uint64: digits only (no sign, no space), at most 20 of them, no overflow. */
static int parse_u64(const char *s, uint64_t *ret) {
        uint64_t v = 0;
        size_t n = 0;
        if (!s || !*s)
                return -EINVAL;
        for (; s[n]; n++) {
                if (s[n] < '0' || s[n] > '9' || n >= 20)
                        return -EINVAL;
                unsigned d = (unsigned) (s[n] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* A required query parameter as a uint64; answers 400 itself when missing or malformed. */
static int query_u64(struct http_request *r, const char *name, uint64_t *ret) {
        char detail[128];
        const char *s = http_query(r, name);
        if (parse_u64(s, ret) >= 0)
                return 0;
        snprintf(detail, sizeof detail, "The query parameter '%s' must be a non-negative integer.", name);
        bad_request(r, detail);
        return -EINVAL;
}

static json_t *json_b64(const uint8_t *p, size_t n) {
        _cleanup_free_ char *s = base64_encode(p, n);
        return s ? json_string(s) : NULL;
}

static json_t *json_proof(const merkle_hash *proof, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_b64(proof[i].b, MERKLE_HASH_SIZE)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static struct audit_log *log_of(struct http_request *r) {
        return ledger_log(vault_ledger(http_vault(r)));
}

/* ---- checkpoint and key ---- */

int api_audit_checkpoint(struct http_request *r) {
        _cleanup_free_ char *note = NULL;
        uint64_t size = 0;

        if (http_query(r, "size")) {
                if (query_u64(r, "size", &size) < 0)
                        return 0;
                if (size == 0)
                        return bad_request(r, "size must be at least 1 (leave it out for the latest checkpoint).");
        }
        int k = ledger_checkpoint_note(vault_ledger(http_vault(r)), size, &note);
        if (k == -ENOENT)
                return http_respond_problem(r, 404, "not-found", "Not found",
                                            size ? "No checkpoint was stored for that tree size."
                                                 : "The log has no checkpoint yet.");
        if (k < 0)
                return http_respond_errno(r, k, "cannot read the checkpoint");
        return http_respond_text(r, 200, "text/plain; charset=utf-8", note, strlen(note));
}

int api_audit_checkpoint_timestamp(struct http_request *r) {
        uint8_t *reply = NULL;
        size_t len = 0;
        uint64_t size = 0;

        if (http_query(r, "size")) {
                if (query_u64(r, "size", &size) < 0)
                        return 0;
                if (size == 0)
                        return bad_request(r, "size must be at least 1 (leave it out for the latest timestamp).");
        }
        int k = ledger_checkpoint_timestamp(vault_ledger(http_vault(r)), size, &reply, &len);
        if (k == -ENOENT)
                return http_respond_problem(r, 404, "not-found", "Not found",
                                            size ? "No timestamp is kept for the checkpoint of that tree size."
                                                 : "No checkpoint has been timestamped yet.");
        if (k < 0)
                return http_respond_errno(r, k, "cannot read the checkpoint timestamp");
        k = http_respond_text(r, 200, "application/timestamp-reply", (const char *) reply, len);
        free(reply);
        return k;
}

int api_audit_verifier_key(struct http_request *r) {
        _cleanup_buf_ struct buf b = {};
        const char *vkey = ledger_vkey(vault_ledger(http_vault(r)));
        buf_init(&b, 4096);
        if (!vkey)
                return http_respond_errno(r, -EIO, "the log has no verifier key");
        int k = buf_printf(&b, "%s\n", vkey);
        if (k < 0)
                return k;
        return http_respond_text(r, 200, "text/plain; charset=utf-8", (const char *) b.data, b.len);
}

/* ---- proofs ---- */

int api_audit_proof_inclusion(struct http_request *r) {
        struct audit_log *log = log_of(r);
        merkle_hash proof[MERKLE_MAX_PROOF], leaf, root;
        uint64_t index, size;
        size_t n = 0;
        char detail[160];

        if (query_u64(r, "index", &index) < 0 || query_u64(r, "size", &size) < 0)
                return 0;
        uint64_t log_size = audit_log_size(log);
        if (size == 0 || size > log_size || index >= size) {
                snprintf(detail, sizeof detail, "Need 0 <= index < size <= %" PRIu64 " (the log's size).", log_size);
                return bad_request(r, detail);
        }
        int k = audit_log_leaf_hash(log, index, &leaf);
        if (k >= 0)
                k = audit_log_root(log, size, &root);
        if (k >= 0)
                k = audit_log_inclusion_proof(log, index, size, proof, &n);
        if (k < 0)
                return http_respond_errno(r, k == -EINVAL || k == -ENOENT ? -EIO : k,
                                          "cannot build the inclusion proof");
        json_t *o = json_pack("{s:I, s:I, s:o, s:o, s:o}", "index", (json_int_t) index, "size", (json_int_t) size,
                              "leaf_hash", json_b64(leaf.b, MERKLE_HASH_SIZE), "root",
                              json_b64(root.b, MERKLE_HASH_SIZE), "proof", json_proof(proof, n));
        return http_respond_json(r, 200, o);
}

int api_audit_proof_consistency(struct http_request *r) {
        struct audit_log *log = log_of(r);
        merkle_hash proof[MERKLE_MAX_PROOF], old_root, new_root;
        uint64_t m, n;
        size_t len = 0;
        char detail[160];

        if (query_u64(r, "old", &m) < 0 || query_u64(r, "new", &n) < 0)
                return 0;
        uint64_t log_size = audit_log_size(log);
        if (m == 0 || m > n || n > log_size) {
                snprintf(detail, sizeof detail, "Need 0 < old <= new <= %" PRIu64 " (the log's size).", log_size);
                return bad_request(r, detail);
        }
        int k = audit_log_root(log, m, &old_root);
        if (k >= 0)
                k = audit_log_root(log, n, &new_root);
        if (k >= 0)
                k = audit_log_consistency_proof(log, m, n, proof, &len);
        if (k < 0)
                return http_respond_errno(r, k == -EINVAL || k == -ENOENT ? -EIO : k,
                                          "cannot build the consistency proof");
        json_t *o = json_pack("{s:I, s:I, s:o, s:o, s:o}", "old", (json_int_t) m, "new", (json_int_t) n, "old_root",
                              json_b64(old_root.b, MERKLE_HASH_SIZE), "new_root",
                              json_b64(new_root.b, MERKLE_HASH_SIZE), "proof", json_proof(proof, len));
        return http_respond_json(r, 200, o);
}

/* ---- entries ---- */

/* {"index":i,"entry":"..."} for an entry of the caller's organisation; for any other (or one that
 * does not parse, so whose organisation is unknown) {"index":i,"entry":null,"redacted":true,
 * "leaf_hash":b64}: the leaf hash lets a client still rebuild the tree without the content. */
static int entry_json(struct audit_log *log, const struct vault_actor *a, uint64_t index, struct buf *scratch,
                      json_t **ret) {
        struct audit_entry e = {};
        merkle_hash leaf;
        json_t *o;

        buf_clear(scratch);
        int k = audit_log_entry(log, index, scratch);
        if (k < 0)
                return k;
        bool mine =
                audit_entry_parse((const char *) scratch->data, scratch->len, &e) >= 0 && strcmp(e.org, a->org_id) == 0;
        audit_entry_clear(&e);
        if (mine)
                o = json_pack("{s:I, s:s%}", "index", (json_int_t) index, "entry", (const char *) scratch->data,
                              scratch->len);
        else {
                merkle_leaf_hash(scratch->data, scratch->len, &leaf);
                o = json_pack("{s:I, s:n, s:b, s:o}", "index", (json_int_t) index, "entry", "redacted", 1, "leaf_hash",
                              json_b64(leaf.b, MERKLE_HASH_SIZE));
        }
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* Appends the JSON of each index to arr. */
static int entries_append(struct http_request *r, const uint64_t *idx, uint64_t start, size_t n, json_t *arr) {
        struct audit_log *log = log_of(r);
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, AUDIT_LOG_ENTRY_MAX + 1);
        for (size_t i = 0; i < n; i++) {
                json_t *o = NULL;
                int k = entry_json(log, http_actor(r), idx ? idx[i] : start + i, &b, &o);
                if (k < 0)
                        return k;
                if (json_array_append_new(arr, o) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int api_audit_entries(struct http_request *r) {
        uint64_t start, end;
        char detail[160];

        if (!may_read_entries(http_actor(r)))
                return forbidden_entries(r);
        if (query_u64(r, "start", &start) < 0 || query_u64(r, "end", &end) < 0)
                return 0;
        uint64_t log_size = audit_log_size(log_of(r));
        if (start > end || end > log_size) {
                snprintf(detail, sizeof detail, "Need 0 <= start <= end <= %" PRIu64 " (the log's size).", log_size);
                return bad_request(r, detail);
        }
        if (end - start > ENTRIES_MAX_PER_CALL) {
                snprintf(detail, sizeof detail, "At most %u entries per call (end - start).", ENTRIES_MAX_PER_CALL);
                return bad_request(r, detail);
        }
        json_t *arr = json_array();
        if (!arr)
                return -ENOMEM;
        int k = entries_append(r, NULL, start, (size_t) (end - start), arr);
        if (k < 0) {
                json_decref(arr);
                return http_respond_errno(r, k == -ENOENT || k == -EINVAL ? -EIO : k, "cannot read the audit entries");
        }
        return http_respond_json(r, 200, json_pack("{s:o}", "entries", arr));
}

#define DOCUMENT_AUDIT_LIMIT_DEFAULT 100u
#define DOCUMENT_AUDIT_LIMIT_MAX 1000u

int api_documents_audit(struct http_request *r) {
        const char *id = http_param(r, "id");
        const char *lim = http_query(r, "limit"), *cur = http_query(r, "cursor");
        _cleanup_free_ uint64_t *idx = NULL;
        uint64_t limit = DOCUMENT_AUDIT_LIMIT_DEFAULT, after = 0;
        size_t n = 0;
        bool more = false;

        if (!may_read_entries(http_actor(r)))
                return forbidden_entries(r);
        if (lim && (parse_u64(lim, &limit) < 0 || limit < 1 || limit > DOCUMENT_AUDIT_LIMIT_MAX))
                return bad_request(r, "limit must be between 1 and 1000.");
        /* the cursor is the index of the last entry of the previous page */
        if (cur && parse_u64(cur, &after) < 0)
                return bad_request(r, "The cursor is not valid.");
        int k = vault_document_audit(http_vault(r), http_actor(r), id, cur ? &after : NULL, (size_t) limit, &idx, &n,
                                     &more);
        if (k == -ENOENT)
                return http_respond_problem(r, 404, "not-found", "Not found", "There is no such document.");
        if (k < 0)
                return http_respond_errno(r, k, "cannot read the document's audit trail");
        json_t *arr = json_array();
        if (!arr)
                return -ENOMEM;
        k = entries_append(r, idx, 0, n, arr);
        if (k < 0) {
                json_decref(arr);
                return http_respond_errno(r, k == -ENOENT || k == -EINVAL ? -EIO : k, "cannot read the audit entries");
        }
        char next[24];
        if (more)
                snprintf(next, sizeof next, "%" PRIu64, idx[n - 1]);
        return http_respond_json(r, 200, json_pack("{s:s, s:o, s:o}", "document", id, "entries", arr, "next_cursor",
                                                   more ? json_string(next) : json_null()));
}

/* ---- witness cosignatures ---- */

int api_audit_cosignature_begin(struct http_request *r) {
        int64_t cl = http_content_length(r);
        if (cl > (int64_t) COSIGNATURE_BODY_MAX)
                return http_respond_problem(r, 413, "payload-too-large", "Payload too large",
                                            "A cosigned checkpoint is at most 64 KiB.");
        struct buf *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        buf_init(b, COSIGNATURE_BODY_MAX + 1); /* + the NUL of buf_str */
        http_set_state(r, b);
        return 0;
}

int api_audit_cosignature_body(struct http_request *r, const uint8_t *p, size_t n) {
        struct buf *b = http_state(r);
        if (!b)
                return -EIO;
        if (n > COSIGNATURE_BODY_MAX - b->len)
                return -E2BIG; /* answered 413 at the end of the body */
        return buf_append(b, p, n);
}

int api_audit_cosignature_end(struct http_request *r) {
        struct buf *b = http_state(r);
        unsigned added = 0;

        if (!b)
                return -EIO;
        const char *note = buf_str(b);
        if (!note || b->len == 0 || memchr(b->data, 0, b->len))
                return bad_request(r, "The body must be a checkpoint note with cosignature lines.");
        int k = ledger_add_cosignatures(vault_ledger(http_vault(r)), note, b->len, &added);
        switch (k) {
        case -EINVAL:
                return bad_request(r, "The body is not a well-formed signed checkpoint note.");
        case -ENOENT:
                return http_respond_problem(r, 404, "not-found", "Not found",
                                            "The note's body is not a checkpoint this log has published.");
        case -EBADMSG:
                return http_respond_problem(r, 422, "no-valid-cosignature", "No valid cosignature",
                                            "No cosignature in the note verifies under a configured witness key.");
        default:
                if (k < 0)
                        return http_respond_errno(r, k, "cannot store the cosignatures");
        }
        return http_respond_json(r, 200, json_pack("{s:i}", "added", (int) added));
}

void api_audit_cosignature_cleanup(struct http_request *r) {
        struct buf *b = http_state(r);
        if (b) {
                http_set_state(r, NULL);
                buf_free(b);
                free(b);
        }
}

/* ---- C2SP tlog-tiles ---- */

/* Parses the path elements after tile/<L>/ (c2sp.org/tlog-tiles): the tile index as 3-digit
 * groups, all but the last prefixed with 'x' and no leading x000 group, the last one possibly
 * followed by ".p" and then the width of a partial tile (1..255). */
static int parse_tile_path(const char *const *seg, size_t n, uint64_t *ret_index, unsigned *ret_width) {
        uint64_t index = 0, w = AUDIT_LOG_TILE_WIDTH;
        size_t groups = n;

        if (n == 0)
                return -EINVAL;
        /* the last group is "ddd", or "ddd.p" followed by the width */
        size_t last_len = 3;
        if (n >= 2 && strlen(seg[n - 2]) == 5 && strcmp(seg[n - 2] + 3, ".p") == 0) {
                const char *ws = seg[n - 1];
                if (parse_u64(ws, &w) < 0 || w < 1 || w >= AUDIT_LOG_TILE_WIDTH || ws[0] == '0')
                        return -EINVAL;
                groups = n - 1;
                last_len = 5;
        }
        for (size_t i = 0; i < groups; i++) {
                const char *g = seg[i];
                bool last = i == groups - 1;
                if (!last) {
                        if (strlen(g) != 4 || g[0] != 'x' || (i == 0 && strncmp(g + 1, "000", 3) == 0))
                                return -EINVAL;
                        g++;
                } else if (strlen(g) != last_len)
                        return -EINVAL;
                for (size_t j = 0; j < 3; j++)
                        if (g[j] < '0' || g[j] > '9')
                                return -EINVAL;
                if (index > (UINT64_MAX - 999) / 1000)
                        return -EINVAL;
                index = index * 1000 + (uint64_t) ((g[0] - '0') * 100 + (g[1] - '0') * 10 + (g[2] - '0'));
        }
        *ret_index = index;
        *ret_width = (unsigned) w;
        return 0;
}

/* Entry bundles carry raw entries: served only when every one is the caller's organisation's. */
static int bundle_is_callers(struct http_request *r, uint64_t index, unsigned width) {
        struct audit_log *log = log_of(r);
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, AUDIT_LOG_ENTRY_MAX + 1);
        for (unsigned i = 0; i < width; i++) {
                struct audit_entry e = {};
                buf_clear(&b);
                int k = audit_log_entry(log, index * AUDIT_LOG_TILE_WIDTH + i, &b);
                if (k < 0)
                        return k;
                bool mine = audit_entry_parse((const char *) b.data, b.len, &e) >= 0 &&
                            strcmp(e.org, http_actor(r)->org_id) == 0;
                audit_entry_clear(&e);
                if (!mine)
                        return 0;
        }
        return 1;
}

int api_audit_tile(struct http_request *r) {
        static const char *const names[] = { "a", "b", "c" };
        const char *seg[ELEMENTSOF(names)];
        const char *level_s = http_param(r, "l");
        uint64_t index, level = 0;
        unsigned width;
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(names) && http_param(r, names[i]); i++)
                seg[n++] = http_param(r, names[i]);
        bool entries = level_s && strcmp(level_s, "entries") == 0;
        if (!entries && (parse_u64(level_s, &level) < 0 || level > 63 || (level_s[0] == '0' && level_s[1])))
                return http_respond_problem(r, 404, "not-found", "Not found", "There is no such tile.");
        if (parse_tile_path(seg, n, &index, &width) < 0)
                return http_respond_problem(r, 404, "not-found", "Not found", "There is no such tile.");

        _cleanup_buf_ struct buf b = {};
        buf_init(&b, (size_t) AUDIT_LOG_TILE_WIDTH * (AUDIT_LOG_ENTRY_MAX + 2) + 1);
        int k;
        if (entries) {
                if (!may_read_entries(http_actor(r)))
                        return forbidden_entries(r);
                if (index > (UINT64_MAX - width) / AUDIT_LOG_TILE_WIDTH ||
                    index * AUDIT_LOG_TILE_WIDTH + width > audit_log_size(log_of(r)))
                        return http_respond_problem(r, 404, "not-found", "Not found",
                                                    "The log is too small for that bundle.");
                k = bundle_is_callers(r, index, width);
                if (k == 0)
                        return http_respond_problem(r, 403, "forbidden", "Forbidden",
                                                    "This bundle holds entries of other organisations; use "
                                                    "/v1/audit/entries, which redacts them.");
                if (k > 0)
                        k = audit_log_entry_bundle(log_of(r), index, width, &b);
        } else
                k = audit_log_tile(log_of(r), (unsigned) level, index, width, &b);
        if (k == -ENOENT || k == -EINVAL)
                return http_respond_problem(r, 404, "not-found", "Not found", "The log is too small for that tile.");
        if (k < 0)
                return http_respond_errno(r, k, "cannot read the tile");
        return http_respond_text(r, 200, "application/octet-stream", (const char *) b.data, b.len);
}
