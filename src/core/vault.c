/* vault.c: the vault's rules over the store, blob, keyring and ledger: opening, the recovery sweep
 * at start, token authentication, names and classes, listing, deletion (crypto-shredding), key
 * rotation, and the audit record of every change. Ingest is in ingest.c, reading in reader.c. */
#include "vault.h"
#include "vault_internal.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accounts.h"
#include "accounts_internal.h"
#include "blob/blob.h"
#include "crypto/keyring.h"
#include "fields.h"
#include "fileio.h"
#include "audit/log.h"
#include "hex.h"
#include "ledger.h"
#include "seal/signer.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

struct ledger *vault_ledger(struct vault *v) {
        return v->ledger;
}

const struct vault_config *vault_get_config(const struct vault *v) {
        return &v->config;
}

const char *vault_dir(const struct vault *v) {
        return v->dir;
}

char *vault_path(const struct vault *v, const char *rel) {
        if (rel[0] == '/')
                return strdup(rel);
        return path_join(v->dir, rel);
}

bool vault_id_valid(const char *id) {
        if (!id || strlen(id) != STORE_ID_LEN)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

/* ---- audit ---- */

/* Appends an audit entry (durable on return); its index in *ret_index. details_plain (which may
 * hold personal data) is sealed under the organisation's audit key. */
void vault_document_details_key(const uint8_t dek[32], const char *id, uint8_t out[32]) {
        static const char ctx[] = "coffre document audit details v1";
        crypto_generichash_state st;
        crypto_generichash_init(&st, dek, 32, 32);
        crypto_generichash_update(&st, (const uint8_t *) ctx, sizeof ctx);
        crypto_generichash_update(&st, (const uint8_t *) id, strlen(id));
        crypto_generichash_final(&st, out, 32);
        sodium_memzero(&st, sizeof st);
}

int vault_record_entry(struct vault *v, const char *org_id, const char *actor_id, const char *action,
                       const char *object_id, const uint8_t *sha256, const char *request_id, const char *details_plain,
                       uint64_t *ret_index) {
        return vault_record_entry_keyed(v, org_id, actor_id, action, object_id, sha256, request_id, details_plain, NULL,
                                        ret_index);
}

int vault_record_entry_keyed(struct vault *v, const char *org_id, const char *actor_id, const char *action,
                             const char *object_id, const uint8_t *sha256, const char *request_id,
                             const char *details_plain, const uint8_t *details_key, uint64_t *ret_index) {
        char time[32], sha_hex[65], rid[17];
        uint8_t kek_id[KEYRING_ID_SIZE], key[KEYRING_KEY_SIZE];
        bool have_key = false;
        int r;

        if (!request_id) {
                uint8_t raw[8];
                randombytes_buf(raw, sizeof raw);
                hex_encode(raw, sizeof raw, rid);
                request_id = rid;
        }
        audit_entry_format_time(now_ms(), time);
        if (sha256)
                hex_encode(sha256, 32, sha_hex);
        struct audit_entry e = {
                .time = time,
                .org = (char *) org_id,
                .actor = (char *) actor_id,
                .action = (char *) action,
                .object = (char *) object_id,
                .object_sha256 = sha256 ? sha_hex : NULL,
                .request_id = (char *) request_id,
        };
        if (details_plain && details_key) {
                memcpy(key, details_key, sizeof key);
                have_key = true;
        } else if (details_plain && hex_decode(org_id, kek_id, sizeof kek_id) >= 0) {
                r = keyring_org_key(v->keyring, kek_id, "audit-details", key);
                if (r < 0)
                        return log_error_errno(r, "no audit key for organisation %s: %s", org_id, strerror(-r));
                have_key = true;
        }
        r = ledger_record(v->ledger, &e, have_key ? key : NULL, have_key ? details_plain : NULL, ret_index);
        sodium_memzero(key, sizeof key);
        return r;
}

int vault_record_created_sealed(struct vault *v, const struct store_document *d, const uint8_t seal_sha256[32],
                                const char *request_id, const char *details_plain, const uint8_t *details_key,
                                uint64_t *ret_first) {
        char time[32], sha_hex[65], seal_hex[65], rid[17];
        uint8_t kek_id[KEYRING_ID_SIZE], key[KEYRING_KEY_SIZE];
        int r;

        if (!request_id) {
                uint8_t raw[8];
                randombytes_buf(raw, sizeof raw);
                hex_encode(raw, sizeof raw, rid);
                request_id = rid;
        }
        audit_entry_format_time(now_ms(), time);
        hex_encode(d->sha256, 32, sha_hex);
        hex_encode(seal_sha256, 32, seal_hex);
        struct audit_entry create = {
                .time = time,
                .org = (char *) d->org_id,
                .actor = (char *) d->created_by,
                .action = (char *) "document.create",
                .object = (char *) d->id,
                .object_sha256 = sha_hex,
                .request_id = (char *) request_id,
        };
        struct audit_entry seal = create;
        seal.action = (char *) "document.seal";
        seal.object_sha256 = seal_hex;
        if (details_key)
                memcpy(key, details_key, sizeof key);
        else {
                if (hex_decode(d->org_id, kek_id, sizeof kek_id) < 0)
                        return -EINVAL;
                r = keyring_org_key(v->keyring, kek_id, "audit-details", key);
                if (r < 0)
                        return log_error_errno(r, "no audit key for organisation %s: %s", d->org_id, strerror(-r));
        }
        r = ledger_record_pair(v->ledger, &create, key, details_plain, &seal, ret_first);
        sodium_memzero(key, sizeof key);
        return r;
}

/* vault_record_entry, then the entry indexed under its object. */
int vault_record(struct vault *v, const char *org_id, const char *actor_id, const char *action, const char *object_id,
                 const uint8_t *sha256, const char *request_id, const char *details_plain) {
        uint64_t index;
        int r = vault_record_entry(v, org_id, actor_id, action, object_id, sha256, request_id, details_plain, &index);
        if (r < 0)
                return r;
        if (object_id) {
                /* the log itself is the truth; a lost reference is rebuilt at start */
                int k = v->store->ops->audit_ref_add(v->store, object_id, index);
                if (k < 0) {
                        log_warn("audit reference %llu not stored: %s", (unsigned long long) index, strerror(-k));
                        /* a gap below later references: re-indexed from here when a trail is read */
                        uint64_t cur = __atomic_load_n(&v->ref_gap, __ATOMIC_SEQ_CST);
                        while (index < cur && !__atomic_compare_exchange_n(&v->ref_gap, &cur, index, false,
                                                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                                ;
                }
        }
        return 0;
}

char *vault_details_json(const struct store_document *d) {
        json_t *o = json_pack("{s:s, s:s, s:I}", "name", d->name, "class", d->class_, "size", (json_int_t) d->size);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        return s;
}

void vault_free_secret_stringp(char **s) {
        if (*s) {
                sodium_memzero(*s, strlen(*s));
                free(*s);
        }
}

/* Reads and parses log entry i; release ret with audit_entry_clear(). */
static int load_entry(struct vault *v, uint64_t i, struct audit_entry *ret) {
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, AUDIT_ENTRY_MAX + 1);
        int r = audit_log_entry(ledger_log(v->ledger), i, &b);
        if (r < 0)
                return r;
        r = audit_entry_parse((const char *) b.data, b.len, ret);
        if (r < 0)
                return log_error_errno(r, "audit entry %llu does not parse", (unsigned long long) i);
        return 0;
}

/* Indexes the log entries that name an object but have no reference yet (lost in a crash). */
static int reindex_range(struct vault *v, uint64_t next, uint64_t size) {
        int r = 0;
        for (uint64_t i = next; i < size; i++) {
                struct audit_entry e = { 0 };
                r = load_entry(v, i, &e);
                if (r < 0)
                        return r;
                if (e.object)
                        r = v->store->ops->audit_ref_add(v->store, e.object, i);
                audit_entry_clear(&e);
                if (r < 0)
                        return r;
        }
        if (size > next)
                log_info("audit: indexed entries %llu to %llu", (unsigned long long) next, (unsigned long long) size);
        return 0;
}

int vault_reindex_audit(struct vault *v) {
        uint64_t next = 0, size = audit_log_size(ledger_log(v->ledger));
        int r = v->store->ops->audit_ref_max(v->store, &next);
        if (r < 0)
                return r;
        return reindex_range(v, next, size);
}

/* The references are complete below the log index kept in the setting audit_refs_complete:
 * written at a clean close (lowered to the first reference that could not be stored), so that
 * a crash or a full disk, which can leave a reference missing below later ones, is re-indexed
 * from there at the next start. */
#define REFS_COMPLETE_SETTING "audit_refs_complete"

int vault_reindex_audit_at_start(struct vault *v) {
        uint64_t next = 0, complete = 0, size = audit_log_size(ledger_log(v->ledger));
        _cleanup_free_ char *s = NULL;
        int r = v->store->ops->audit_ref_max(v->store, &next);
        if (r < 0)
                return r;
        r = v->store->ops->setting_get(v->store, REFS_COMPLETE_SETTING, &s);
        if (r >= 0) {
                char *end = NULL;
                unsigned long long c = strtoull(s, &end, 10);
                complete = end && *end == 0 && end != s ? (uint64_t) c : 0;
        } else if (r != -ENOENT)
                return r;
        r = reindex_range(v, MIN(MIN(next, complete), size), size);
        if (r < 0)
                return r;
        char text[24];
        snprintf(text, sizeof text, "%llu", (unsigned long long) size);
        return v->store->ops->setting_set(v->store, REFS_COMPLETE_SETTING, text);
}

static void refs_complete_store(struct vault *v) {
        if (!v->store || !v->ledger)
                return;
        uint64_t gap = __atomic_load_n(&v->ref_gap, __ATOMIC_SEQ_CST);
        uint64_t size = audit_log_size(ledger_log(v->ledger));
        char text[24];
        snprintf(text, sizeof text, "%llu", (unsigned long long) MIN(gap, size));
        if (v->store->ops->setting_set(v->store, REFS_COMPLETE_SETTING, text) < 0)
                log_warn("audit: could not record how far the audit references are complete; the next start "
                         "re-indexes more");
}

/* Whether entry i names object id; *ret_org (malloc'd) is its organisation. 0 = no, 1 = yes,
 * 2 = yes and it is its document.create. */
static int entry_names(struct vault *v, uint64_t i, const char *id, char **ret_org) {
        struct audit_entry e = { 0 };
        int r = load_entry(v, i, &e);
        if (r < 0)
                return r;
        r = e.object && strcmp(e.object, id) == 0;
        if (r && strcmp(e.action, "document.create") == 0)
                r = 2;
        if (r && ret_org) {
                *ret_org = strdup(e.org);
                if (!*ret_org)
                        r = -ENOMEM;
        }
        audit_entry_clear(&e);
        return r;
}

/* The references of id rebuilt from the log itself (a scan: only when the stored ones do not
 * add up); missing ones are stored again. */
static int rebuild_refs(struct vault *v, const char *id, uint64_t **ret, size_t *ret_n) {
        struct audit_log *log = ledger_log(v->ledger);
        uint64_t size = audit_log_size(log), *idx = NULL;
        size_t n = 0, cap = 0;
        char needle[STORE_ID_LEN + 16];
        int r = 0;

        snprintf(needle, sizeof needle, "\"object\":\"%s\"", id);
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, AUDIT_ENTRY_MAX + 1);
        for (uint64_t i = 0; i < size; i++) {
                buf_clear(&b);
                r = audit_log_entry(log, i, &b);
                if (r < 0)
                        break;
                if (!memmem(b.data, b.len, needle, strlen(needle)) || (r = entry_names(v, i, id, NULL)) <= 0) {
                        if (r < 0)
                                break;
                        continue;
                }
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        uint64_t *p = reallocarray(idx, cap, sizeof *idx);
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        idx = p;
                }
                idx[n++] = i;
                r = v->store->ops->audit_ref_add(v->store, id, i);
                if (r < 0)
                        break;
        }
        if (r < 0) {
                free(idx);
                return r;
        }
        log_warn("audit: references of %s rebuilt from the log (%zu entries)", id, n);
        *ret = idx;
        *ret_n = n;
        return 0;
}

/* The stored references of id, each checked against the log: past its end, or naming another
 * object, and they are all rebuilt from the log. */
static int document_refs(struct vault *v, const char *id, uint64_t **ret, size_t *ret_n) {
        uint64_t next = 0, size = audit_log_size(ledger_log(v->ledger)), *idx = NULL;
        size_t n = 0;
        int r = v->store->ops->audit_ref_max(v->store, &next);
        if (r >= 0 && next < size)
                r = vault_reindex_audit(v); /* the references lag the log: index the gap */
        uint64_t gap = __atomic_load_n(&v->ref_gap, __ATOMIC_SEQ_CST);
        if (r >= 0 && gap < size) {
                /* a reference could not be stored (a full disk): index again from there */
                r = reindex_range(v, gap, size);
                if (r >= 0)
                        __atomic_compare_exchange_n(&v->ref_gap, &gap, UINT64_MAX, false, __ATOMIC_SEQ_CST,
                                                    __ATOMIC_SEQ_CST);
        }
        if (r >= 0)
                r = v->store->ops->audit_ref_list(v->store, id, &idx, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *org = NULL;
                int k = idx[i] < size ? entry_names(v, idx[i], id, &org) : 0;
                if (k < 0 && k != -EBADMSG) {
                        free(idx);
                        return k;
                }
                if (k <= 0 || (i > 0 && idx[i] <= idx[i - 1])) {
                        log_warn("audit: reference %llu of %s is stale (past the log's end, or another object's)",
                                 (unsigned long long) idx[i], id);
                        free(idx);
                        return rebuild_refs(v, id, ret, ret_n);
                }
                if (i == 0 && k != 2 && strcmp(org, "system") != 0) {
                        /* a document's trail starts with its creation: a reference is missing
                         * (a trail of recovery's own entries, for an upload that never became a
                         * document, has none) */
                        log_warn("audit: the references of %s miss its document.create", id);
                        free(idx);
                        return rebuild_refs(v, id, ret, ret_n);
                }
        }
        *ret = idx;
        *ret_n = n;
        return 0;
}

int vault_document_trail(struct vault *v, const char *id, uint64_t **ret, size_t *ret_n) {
        return document_refs(v, id, ret, ret_n);
}

int vault_document_audit(struct vault *v, const struct vault_actor *a, const char *id, const uint64_t *after,
                         size_t limit, uint64_t **ret, size_t *ret_n, bool *ret_more) {
        _cleanup_free_ uint64_t *idx = NULL;
        _cleanup_free_ char *owner = NULL;
        size_t n = 0;

        if (!vault_id_valid(id) || limit == 0)
                return -ENOENT;
        int r = document_refs(v, id, &idx, &n);
        if (r < 0)
                return r;
        /* the trail outlives the document: it belongs to the organisation of its first entry
         * that is not the system's own (recovery's entries carry "system") */
        for (size_t i = 0; i < n && !owner; i++) {
                _cleanup_free_ char *org = NULL;
                r = entry_names(v, idx[i], id, &org);
                if (r < 0)
                        return r;
                if (strcmp(org, "system") != 0)
                        owner = TAKE_PTR(org);
        }
        if (!owner || strcmp(owner, a->org_id) != 0)
                return -ENOENT;
        _cleanup_free_ uint64_t *page = calloc(MIN(limit, n) + 1, sizeof *page);
        size_t k = 0;
        bool more = false;
        if (!page)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *org = NULL;
                if (after && idx[i] <= *after)
                        continue;
                if (k == limit) {
                        more = true;
                        break;
                }
                r = entry_names(v, idx[i], id, &org);
                if (r < 0)
                        return r;
                /* every entry is checked: another organisation's entry about this id is not shown */
                if (strcmp(org, owner) != 0 && strcmp(org, "system") != 0) {
                        log_warn("audit: entry %llu names %s but belongs to another organisation: not shown",
                                 (unsigned long long) idx[i], id);
                        continue;
                }
                page[k++] = idx[i];
        }
        *ret = TAKE_PTR(page);
        *ret_n = k;
        *ret_more = more;
        return 0;
}

int vault_check_name(const char *name, const char **ret_reason) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > STORE_NAME_MAX) {
                *ret_reason = "name must be 1 to 255 bytes";
                return -EINVAL;
        }
        /* UTF-8 well-formedness (no overlongs, no surrogates) and no control characters */
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_next((const uint8_t *) name + i, n - i, &cp);
                if (len == 0) {
                        *ret_reason = "name must be valid UTF-8";
                        return -EINVAL;
                }
                if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
                        *ret_reason = "name must not contain control characters";
                        return -EINVAL;
                }
                i += len;
        }
        return 0;
}

int vault_check_class(const char *class_, const char **ret_reason) {
        size_t n = class_ ? strlen(class_) : 0;
        if (n == 0 || n > STORE_CLASS_MAX) {
                *ret_reason = "class must be 1 to 64 characters";
                return -EINVAL;
        }
        for (const char *p = class_; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
                        *ret_reason = "class may only contain a-z, 0-9 and '-'";
                        return -EINVAL;
                }
        return 0;
}

/* ---- opening ---- */

static int vault_open_parts(struct vault *v) {
        _cleanup_free_ char *meta = path_join(v->dir, "meta.db");
        _cleanup_free_ char *kr = path_join(v->dir, "keyring.db");
        struct master_key *m = NULL;
        int r;

        if (!meta || !kr)
                return -ENOMEM;
        /* the ledger first: it forks the signer, which must happen before any thread exists */
        char *witnesses[VAULT_MAX_WITNESSES];
        for (size_t i = 0; i < v->config.n_witness; i++)
                witnesses[i] = v->config.witness[i];
        struct signer_seal_options so = {
                .tsa_policy = *v->config.tsa_policy ? v->config.tsa_policy : NULL,
                .tsa_accuracy_ms = v->config.tsa_accuracy_ms,
        };
        for (size_t i = 0; i < v->config.n_pkcs11_path && i < SIGNER_PKCS11_PATHS_MAX; i++)
                so.pkcs11_paths[so.n_pkcs11_paths++] = v->config.pkcs11_path[i];
        signer_set_seal_options(&so);
        r = ledger_open(v->dir, v->config.audit_origin, witnesses, v->config.n_witness, &v->ledger);
        if (r < 0)
                return r;
        ledger_set_stall_timeout(v->ledger, (int64_t) v->config.stall_timeout * 1000);
        r = ledger_set_cosigned_checkpoints(v->ledger, v->config.cosigned_checkpoints);
        if (r < 0)
                return log_error_errno(r, "cannot bound the stored cosignatures: %s", strerror(-r));
        r = store_sqlite_open(meta, false, &v->store);
        if (r < 0)
                return log_error_errno(r, "cannot open the metadata store %s: %s", meta, strerror(-r));
        r = blob_fs_open(v->dir, false, &v->blob);
        if (r < 0)
                return log_error_errno(r, "cannot open the object store in %s: %s", v->dir, strerror(-r));
        r = master_key_load(v->config.master_key, v->dir, &m); /* a file, or a PKCS#11 URI; logs why */
        if (r < 0)
                return r;
        /* every audit entry carries a MAC under a key only this vault has: after a crash, the
         * entries no checkpoint covers are signed only if they are provably the server's own */
        uint8_t record_key[KEYRING_KEY_SIZE];
        r = master_key_derive(m, "audit record mac", record_key);
        if (r >= 0)
                r = ledger_set_record_key(v->ledger, record_key);
        sodium_memzero(record_key, sizeof record_key);
        if (r < 0) {
                master_key_free(m);
                return log_error_errno(r, "cannot derive the audit record key: %s", strerror(-r));
        }
        /* login looks users up by a blind index of their e-mail that needs no organisation:
         * its key is the instance's own */
        uint8_t login_key[KEYRING_KEY_SIZE];
        r = master_key_derive(m, "login-index", login_key);
        if (r < 0) {
                master_key_free(m);
                return log_error_errno(r, "cannot derive the login index key: %s", strerror(-r));
        }
        r = keyring_open(kr, false, m, &v->keyring);
        if (r < 0) {
                sodium_memzero(login_key, sizeof login_key);
                return log_error_errno(r, "cannot open the keyring %s: %s", kr, strerror(-r));
        }
        r = accounts_new(v, v->store, v->keyring, login_key, &v->accounts);
        sodium_memzero(login_key, sizeof login_key);
        if (r < 0)
                return r;
        r = vault_seals_open(v);
        if (r < 0)
                return r;
#ifdef COFFRE_TEST_HOOKS
        /* test builds only: the offline commands (coffre lifecycle run) on a moved clock */
        const char *shift = getenv("COFFRE_TEST_CLOCK_SHIFT_MS");
        if (shift) {
                char *end = NULL;
                long long d = strtoll(shift, &end, 10);
                if (!*shift || *end)
                        return log_error_errno(-EINVAL, "COFFRE_TEST_CLOCK_SHIFT_MS is not an integer");
                accounts_clock_shift(v->accounts, (int64_t) d);
        }
#endif
        return ledger_recover_tail(v->ledger);
}

/* ---- room for deletions on a full disk ---- */

#define VAULT_RESERVE_BYTES (1 << 20)

/* A deletion must log, then rewrite the keyring (whose WAL is emptied after every key
 * destruction, so it needs fresh pages), before it frees anything: on a full disk it could
 * never start. A little room is kept aside for it in DATA/space-reserve. */
static void reserve_take(struct vault *v) {
        if (__atomic_load_n(&v->reserve_held, __ATOMIC_SEQ_CST))
                return;
        _cleanup_free_ char *p = path_join(v->dir, "space-reserve");
        if (!p)
                return;
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0 && posix_fallocate(fd, 0, VAULT_RESERVE_BYTES) == 0)
                __atomic_store_n(&v->reserve_held, true, __ATOMIC_SEQ_CST);
}

/* true when the reserve was given back (so that the caller may try again). */
static bool reserve_release(struct vault *v) {
        if (!__atomic_exchange_n(&v->reserve_held, false, __ATOMIC_SEQ_CST))
                return false;
        _cleanup_free_ char *p = path_join(v->dir, "space-reserve");
        /* emptied, not removed: the sandbox lets the server write this one file of DATA/, but
         * remove none */
        if (!p || truncate(p, 0) < 0)
                return false;
        log_warn("the disk is full: the space kept for deletions is now used");
        return true;
}

int vault_check_master(struct vault *v) {
        int r = keyring_master_probe(v->keyring);
        if (r < 0 && keyring_master_is_token(v->keyring))
                return log_error_errno(r, "the master key's PKCS#11 token does not answer%s: %s",
                                       v->config.sandbox ? " inside the sandbox (name the directory the module keeps "
                                                           "its tokens in with [keys] pkcs11_path)"
                                                         : "",
                                       strerror(-r));
        if (r < 0)
                return log_error_errno(r, "the master key does not open the keyring: %s", strerror(-r));
        return 0;
}

int vault_open(const char *dir, struct vault **ret) {
        _cleanup_free_ char *conf = path_join(dir, "coffre.conf");
        _cleanup_(vault_closep) struct vault *v = calloc(1, sizeof *v);
        int r;

        if (!v || !conf)
                return -ENOMEM;
        v->dir = strdup(dir);
        if (!v->dir)
                return -ENOMEM;
        v->ref_gap = UINT64_MAX;
        r = vault_config_load(conf, &v->config);
        if (r == -ENOENT)
                return log_error_errno(r, "%s is not a coffre vault (no coffre.conf); create one with coffre init",
                                       dir);
        if (r < 0)
                return r;
        r = vault_open_parts(v);
        if (r < 0)
                return r;
        r = vault_field_keys_init(v);
        if (r < 0)
                return r;
        r = vault_seal_clear_names(v);
        if (r < 0)
                return r;
        reserve_take(v);
        v->opened = true;
        *ret = TAKE_PTR(v);
        return 0;
}

void vault_close(struct vault *v) {
        if (!v)
                return;
        if (v->opened)
                refs_complete_store(v);
        accounts_free(v->accounts);
        ledger_close(v->ledger);
        vault_field_keys_free(v);
        vault_seals_close(v);
        keyring_free(v->keyring);
        blob_close(v->blob);
        store_close(v->store);
        free(v->dir);
        free(v);
}

/* The recovery sweep at start (vault_recover) is in recovery.c. */

/* ---- authentication ---- */

int vault_authenticate(struct vault *v, const char *token, struct vault_actor *ret) {
        int r = accounts_authenticate(v->accounts, token, accounts_now_ms(v->accounts), ret);
        return r == -ENOKEY ? -EACCES : r; /* a token waiting for its user's enrolment */
}

/* ---- reading ---- */

/* The clear name of a row read from the store; a name that does not open is damage (or a row
 * moved from elsewhere), said once in the log without the name, and the document not shown. */
static int open_name(struct vault *v, struct store_document *d) {
        int r = vault_name_open(v, d);
        if (r < 0)
                log_error("document %s: its stored name does not decrypt (%s): refused", d->id, strerror(-r));
        return r < 0 ? -EBADMSG : 0;
}

int vault_document_get(struct vault *v, const struct vault_actor *a, const char *id, struct store_document *ret) {
        struct store_document d;
        if (!vault_id_valid(id))
                return -ENOENT;
        int r = v->store->ops->document_get(v->store, a->org_id, id, &d);
        if (r >= 0)
                r = open_name(v, &d);
        if (r >= 0)
                *ret = d;
        sodium_memzero(&d, sizeof d);
        return r;
}

int vault_document_list(struct vault *v, const struct vault_actor *a, struct store_document_filter *f, const char *name,
                        struct store_document **ret, size_t *ret_n, char **ret_cursor) {
        uint8_t index[STORE_NAME_INDEX_SIZE];
        struct store_document *docs = NULL;
        size_t n = 0;
        char *cursor = NULL;
        int r;

        f->org_id = a->org_id;
        f->name_index = NULL;
        if (name) {
                r = vault_name_index(v, a->org_id, name, index);
                if (r == -ENOENT) { /* an organisation without keys has no document */
                        *ret = NULL;
                        *ret_n = 0;
                        *ret_cursor = NULL;
                        return 0;
                }
                if (r < 0)
                        return r;
                f->name_index = index;
        }
        r = v->store->ops->document_list(v->store, f, &docs, &n, &cursor);
        f->name_index = NULL;
        if (r < 0)
                return r;
        size_t failed = 0;
        r = vault_names_open(v, docs, n, &failed);
        if (r < 0) {
                log_error("document %s: its stored name does not decrypt (%s): listing refused", docs[failed].id,
                          strerror(-r));
                r = -EBADMSG;
                vault_document_list_free(docs, n);
                free(cursor);
                return r;
        }
        *ret = docs;
        *ret_n = n;
        *ret_cursor = cursor;
        return 0;
}

void vault_document_list_free(struct store_document *docs, size_t n) {
        /* the clear names are the only personal data of a row; the rest of the array is not
         * wiped, which on a page of 1000 would cost more than their decryption */
        for (size_t i = 0; docs && i < n; i++)
                sodium_memzero(docs[i].name, strnlen(docs[i].name, sizeof docs[i].name));
        free(docs);
}

int vault_stats_load(struct vault *v) {
        uint64_t count, bytes;
        int r = v->store->ops->document_stats(v->store, &count, &bytes);
        if (r < 0)
                return r;
        atomic_store(&v->n_documents, count);
        atomic_store(&v->n_bytes, bytes);
        return 0;
}

void vault_stats(struct vault *v, uint64_t *ret_count, uint64_t *ret_bytes) {
        *ret_count = atomic_load(&v->n_documents);
        *ret_bytes = atomic_load(&v->n_bytes);
}

int vault_prepare_writes(struct vault *v) {
        if (!v->blob->ops->prepare_writes)
                return 0;
        int r = v->blob->ops->prepare_writes(v->blob);
        if (r < 0)
                log_error("cannot prepare the object directories: %s", strerror(-r));
        return r;
}

void vault_durability_stats(struct vault *v, struct vault_durability_stats *ret) {
        keyring_group_stats(v->keyring, &ret->keyring_commits, &ret->keyring_keys);
        audit_log_group_stats(ledger_log(v->ledger), &ret->audit_groups, &ret->audit_entries);
        v->store->ops->commit_stats(v->store, &ret->meta_commits, &ret->meta_rows);
}

/* ---- deletion and keys ---- */

int vault_document_erase(struct vault *v, const char *actor_id, const struct store_document *d, const char *why,
                         const char *reason, int64_t now, const char *request_id) {
        uint8_t raw[16];
        int r;

        if (hex_decode(d->id, raw, sizeof raw) < 0)
                return -EINVAL;
        /* logged before it happens: a deletion is never unrecorded, even if cut short. No name
         * here: the creation entry has it already. */
        json_t *o = json_pack("{s:s, s:I, s:s}", "class", d->class_, "size", (json_int_t) d->size, "why", why);
        if (o && reason && json_object_set_new(o, "reason", json_string(reason)) < 0)
                json_decref(TAKE_PTR(o));
        _cleanup_(vault_free_secret_stringp) char *details = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        r = details ? vault_record(v, d->org_id, actor_id, "document.delete", d->id, d->sha256, request_id, details)
                    : -ENOMEM;
        if (r == -ENOSPC && reserve_release(v))
                r = vault_record(v, d->org_id, actor_id, "document.delete", d->id, d->sha256, request_id, details);
        if (r < 0)
                return r;
        /* Crypto-shredding first: once the DEK is gone the ciphertext is noise, even in backups. */
        r = keyring_dek_destroy(v->keyring, raw);
        if (r == -ENOSPC && reserve_release(v))
                r = keyring_dek_destroy(v->keyring, raw);
        if (r < 0 && r != -ENOENT) {
                /* nothing destroyed: the log must not say the document is gone (best effort; the
                 * next start records it otherwise) */
                if (vault_record(v, d->org_id, actor_id, "document.delete_cancelled", d->id, NULL, request_id, NULL) <
                    0)
                        log_warn("document %s: cancelled deletion not logged; the next start logs it", d->id);
                return r;
        }
        struct store_tombstone t = { .created_at = d->created_at, .retain_until = d->retain_until, .erased_at = now };
        snprintf(t.id, sizeof t.id, "%s", d->id);
        snprintf(t.org_id, sizeof t.org_id, "%s", d->org_id);
        snprintf(t.class_, sizeof t.class_, "%s", d->class_);
        snprintf(t.why, sizeof t.why, "%s", why);
        memcpy(t.sha256, d->sha256, sizeof t.sha256);
        r = v->store->ops->document_erase(v->store, &t);
        if (r < 0)
                return r;
        atomic_fetch_sub(&v->n_documents, 1);
        atomic_fetch_sub(&v->n_bytes, d->size);
        r = v->blob->ops->remove(v->blob, d->id);
        if (r < 0 && r != -ENOENT)
                log_warn("document %s: object not removed (%s); its key is destroyed", d->id, strerror(-r));
        char done[96];
        snprintf(done, sizeof done, "{\"why\":\"%s\"}", why);
        if (vault_record(v, d->org_id, actor_id, "document.erase", d->id, d->sha256, request_id, done) < 0)
                log_warn("document %s: erased, but its document.erase entry is not logged", d->id);
        reserve_take(v); /* again, now that there may be room */
        return 0;
}

struct rotate_ctx {
        struct vault *v;
        const char *only;
        int rotated;
};

static int rotate_cb(const struct store_org *o, void *ud) {
        struct rotate_ctx *c = ud;
        uint8_t kek_id[KEYRING_ID_SIZE];
        uint32_t version = 0;

        if (c->only && strcmp(c->only, o->id) != 0)
                return 0;
        if (hex_decode(o->id, kek_id, sizeof kek_id) < 0)
                return -EINVAL;
        int r = keyring_rotate(c->v->keyring, kek_id, &version);
        if (r < 0)
                return log_error_errno(r, "organisation %s: key rotation failed: %s", o->id, strerror(-r));
        log_info("organisation %s: key encryption key now at version %u", o->id, version);
        char details[32];
        snprintf(details, sizeof details, "{\"version\":%u}", version);
        r = vault_record(c->v, o->id, "system:cli", "key.rotate", NULL, NULL, NULL, details);
        if (r < 0)
                return r;
        c->rotated++;
        return 0;
}

int vault_rotate_keys(struct vault *v, const char *org_id) {
        struct rotate_ctx c = { .v = v, .only = org_id };
        int r = v->store->ops->org_foreach(v->store, rotate_cb, &c);
        if (r < 0)
                return r;
        if (org_id && c.rotated == 0)
                return -ENOENT;
        return 0;
}
