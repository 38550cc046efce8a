/* entry.c: canonical JSON audit entries (RFC 8785 for string values), their strict parser and
 * the sealing of the "details" field with AES-256-GCM under the organisation's audit key. */
#include "entry.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hex.h"
#include "basic/log.h" /* not audit/log.h */
#include "utf8.h"
#include "timeutil.h"

/* The members in RFC 8785 order (keys are ASCII, so UTF-16 order is byte order). */
static const struct {
        const char *key;
        size_t offset;
        bool required;
} fields[] = {
        { "action", offsetof(struct audit_entry, action), true },
        { "actor", offsetof(struct audit_entry, actor), true },
        { "details", offsetof(struct audit_entry, details), false },
        { "mac", offsetof(struct audit_entry, mac), false },
        { "object", offsetof(struct audit_entry, object), false },
        { "object_sha256", offsetof(struct audit_entry, object_sha256), false },
        { "org", offsetof(struct audit_entry, org), true },
        { "request_id", offsetof(struct audit_entry, request_id), true },
        { "time", offsetof(struct audit_entry, time), true },
};
#define FIELD_DETAILS 2u
#define FIELD_MAC 3u

/* What serialise() writes: the AAD of details has neither details nor mac; the input of the
 * record MAC has everything but the mac. */
#define SER_DETAILS 1u
#define SER_MAC 2u
#define SER_ALL (SER_DETAILS | SER_MAC)

static char **field_ptr(struct audit_entry *e, size_t i) {
        return (char **) ((uint8_t *) e + fields[i].offset);
}

static const char *field_get(const struct audit_entry *e, size_t i) {
        return *(char *const *) ((const uint8_t *) e + fields[i].offset);
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, no NUL. */
static bool utf8_valid(const uint8_t *s, size_t n) {
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = s[i] == 0 ? 0 : utf8_next(s + i, n - i, &cp);
                if (len == 0)
                        return false;
                i += len;
        }
        return true;
}

int audit_json_append_string(struct buf *b, const char *s, size_t n) {
        static const char hexd[] = "0123456789abcdef";
        int r;

        if (!utf8_valid((const uint8_t *) s, n))
                return -EINVAL;
        r = buf_reserve(b, n + 2);
        if (r < 0)
                return r;
        r = buf_append(b, "\"", 1);
        size_t run = 0; /* start of the pending run of bytes copied as they are */
        for (size_t i = 0; r >= 0 && i < n; i++) {
                uint8_t c = (uint8_t) s[i];
                char esc[6];
                size_t elen = 2;
                if (c == '"' || c == '\\') {
                        esc[0] = '\\', esc[1] = (char) c;
                } else if (c < 0x20) {
                        esc[0] = '\\';
                        switch (c) {
                        case '\b': esc[1] = 'b'; break;
                        case '\f': esc[1] = 'f'; break;
                        case '\n': esc[1] = 'n'; break;
                        case '\r': esc[1] = 'r'; break;
                        case '\t': esc[1] = 't'; break;
                        default:
                                memcpy(esc, "\\u00", 4);
                                esc[4] = hexd[c >> 4];
                                esc[5] = hexd[c & 0xf];
                                elen = 6;
                        }
                } else
                        continue;
                r = buf_append(b, s + run, i - run);
                if (r >= 0)
                        r = buf_append(b, esc, elen);
                run = i + 1;
        }
        if (r >= 0)
                r = buf_append(b, s + run, n - run);
        if (r >= 0)
                r = buf_append(b, "\"", 1);
        return r;
}

static bool is_lower_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static int validate_time(const char *s) {
        int64_t ms;
        char again[RFC3339_MAX];

        if (rfc3339_parse(s, &ms) < 0 || ms < 0)
                return -EINVAL;
        rfc3339_format(ms, again);
        return strcmp(again, s) == 0 ? 0 : -EINVAL;
}

static int validate_action(const char *s) {
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
                        return -EINVAL;
        return 0;
}

static int validate_details(const char *s) {
        _cleanup_free_ uint8_t *raw = NULL;
        size_t n;

        if (base64_decode(s, strlen(s), &raw, &n) < 0)
                return -EINVAL;
        return n >= AUDIT_ENTRY_NONCE_SIZE + AUDIT_ENTRY_TAG_SIZE ? 0 : -EINVAL;
}

/* Checks every field; details only when with_details. */
static int validate(const struct audit_entry *e, bool with_details) {
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                const char *v = field_get(e, i);
                if (i == FIELD_DETAILS && !with_details)
                        continue;
                if (!v) {
                        if (fields[i].required)
                                return -EINVAL;
                        continue;
                }
                size_t n = strlen(v);
                if (n == 0)
                        return -EINVAL;
                if (i != FIELD_DETAILS && n > AUDIT_ENTRY_FIELD_MAX)
                        return -E2BIG;
        }
        if (validate_time(e->time) < 0 || validate_action(e->action) < 0)
                return -EINVAL;
        if (e->object_sha256 && (strlen(e->object_sha256) != 64 || !is_lower_hex(e->object_sha256, 64)))
                return -EINVAL;
        if (e->mac && (strlen(e->mac) != 64 || !is_lower_hex(e->mac, 64)))
                return -EINVAL;
        if (with_details && e->details && validate_details(e->details) < 0)
                return -EINVAL;
        return 0;
}

/* Canonical JSON of e, with the members what (SER_*) asks for. */
static int serialise(const struct audit_entry *e, unsigned what, struct buf *out) {
        int r = buf_append(out, "{", 1);
        bool first = true;

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(fields); i++) {
                const char *v = field_get(e, i);
                if (!v || (i == FIELD_DETAILS && !(what & SER_DETAILS)) || (i == FIELD_MAC && !(what & SER_MAC)))
                        continue;
                if (!first)
                        r = buf_append(out, ",", 1);
                first = false;
                if (r >= 0)
                        r = audit_json_append_string(out, fields[i].key, strlen(fields[i].key));
                if (r >= 0)
                        r = buf_append(out, ":", 1);
                if (r >= 0)
                        r = audit_json_append_string(out, v, strlen(v));
        }
        if (r >= 0)
                r = buf_append(out, "}", 1);
        return r;
}

static int seal_details(const uint8_t *key, const struct buf *aad, const char *plain, char **ret) {
        size_t pn = strlen(plain);
        EVP_CIPHER_CTX *ctx = NULL;
        uint8_t *raw = NULL;
        size_t rawn = AUDIT_ENTRY_NONCE_SIZE + pn + AUDIT_ENTRY_TAG_SIZE;
        int outl, r = -EIO;

        if (pn > AUDIT_ENTRY_DETAILS_PLAIN_MAX)
                return -E2BIG;
        raw = malloc(rawn);
        ctx = EVP_CIPHER_CTX_new();
        if (!raw || !ctx) {
                r = -ENOMEM;
                goto out;
        }
        uint8_t *nonce = raw, *ct = raw + AUDIT_ENTRY_NONCE_SIZE, *tag = ct + pn;
        if (RAND_bytes(nonce, AUDIT_ENTRY_NONCE_SIZE) != 1 ||
            EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
            EVP_EncryptUpdate(ctx, NULL, &outl, aad->data, (int) aad->len) != 1 ||
            EVP_EncryptUpdate(ctx, ct, &outl, (const uint8_t *) plain, (int) pn) != 1 ||
            EVP_EncryptFinal_ex(ctx, ct + outl, &outl) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AUDIT_ENTRY_TAG_SIZE, tag) != 1) {
                /* the OpenSSL error queue ends here, as one message */
                r = log_openssl_errors(-EIO, "sealing audit entry details");
                goto out;
        }
        char *b64 = base64_encode(raw, rawn);
        if (!b64) {
                r = -ENOMEM;
                goto out;
        }
        *ret = b64;
        r = 0;
out:
        EVP_CIPHER_CTX_free(ctx);
        if (raw) {
                /* only ciphertext is left, but clear anyway: cheap, and nothing leaks on error paths */
                OPENSSL_cleanse(raw, rawn);
                free(raw);
        }
        return r;
}

int audit_entry_build(const struct audit_entry *e, const uint8_t *details_key, const char *details_plain,
                      struct buf *ret_json) {
        _cleanup_buf_ struct buf out = {};
        _cleanup_free_ char *sealed = NULL;
        int r;

        buf_init(&out, AUDIT_ENTRY_MAX);
        if (!e || !ret_json || (details_key && (!details_plain || e->details)) || (!details_key && details_plain))
                return -EINVAL;
        r = validate(e, !details_key);
        if (r < 0)
                return r;
        if (details_key) {
                struct audit_entry copy = *e;
                r = serialise(e, 0, &out);
                if (r < 0)
                        return r;
                r = seal_details(details_key, &out, details_plain, &sealed);
                if (r < 0)
                        return r;
                copy.details = sealed;
                buf_clear(&out);
                r = serialise(&copy, SER_ALL, &out);
        } else
                r = serialise(e, SER_ALL, &out);
        if (r < 0)
                return r;
        return buf_append(ret_json, out.data, out.len);
}

/* ---- strict parser ---- */

struct cursor {
        const char *p, *end;
};

static int hex4(const char *p, uint32_t *ret) {
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) {
                char c = p[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t) (c - 'A' + 10);
                else
                        return -EBADMSG;
        }
        *ret = v;
        return 0;
}

static int put_utf8(struct buf *b, uint32_t cp) {
        uint8_t u[4];
        size_t n;
        if (cp < 0x80)
                u[0] = (uint8_t) cp, n = 1;
        else if (cp < 0x800)
                u[0] = (uint8_t) (0xc0 | (cp >> 6)), u[1] = (uint8_t) (0x80 | (cp & 0x3f)), n = 2;
        else if (cp < 0x10000)
                u[0] = (uint8_t) (0xe0 | (cp >> 12)), u[1] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f)),
                u[2] = (uint8_t) (0x80 | (cp & 0x3f)), n = 3;
        else
                u[0] = (uint8_t) (0xf0 | (cp >> 18)), u[1] = (uint8_t) (0x80 | ((cp >> 12) & 0x3f)),
                u[2] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f)), u[3] = (uint8_t) (0x80 | (cp & 0x3f)), n = 4;
        return buf_append(b, u, n);
}

/* Decodes one JSON string at c->p (which must be '"') into out (NUL-terminated, NUL-free). */
static int parse_string(struct cursor *c, struct buf *out) {
        int r;

        if (c->p >= c->end || *c->p != '"')
                return -EBADMSG;
        c->p++;
        for (;;) {
                if (c->p >= c->end)
                        return -EBADMSG;
                uint8_t ch = (uint8_t) *c->p++;
                if (ch == '"')
                        break;
                if (ch < 0x20)
                        return -EBADMSG;
                if (ch != '\\') {
                        r = buf_append(out, &ch, 1);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (c->p >= c->end)
                        return -EBADMSG;
                char esc = *c->p++;
                uint32_t cp;
                switch (esc) {
                case '"': cp = '"'; break;
                case '\\': cp = '\\'; break;
                case '/': cp = '/'; break;
                case 'b': cp = '\b'; break;
                case 'f': cp = '\f'; break;
                case 'n': cp = '\n'; break;
                case 'r': cp = '\r'; break;
                case 't': cp = '\t'; break;
                case 'u':
                        if (c->end - c->p < 4 || hex4(c->p, &cp) < 0)
                                return -EBADMSG;
                        c->p += 4;
                        if (cp >= 0xdc00 && cp <= 0xdfff)
                                return -EBADMSG;
                        if (cp >= 0xd800 && cp <= 0xdbff) {
                                uint32_t lo;
                                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) < 0 ||
                                    lo < 0xdc00 || lo > 0xdfff)
                                        return -EBADMSG;
                                c->p += 6;
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        }
                        break;
                default:
                        return -EBADMSG;
                }
                if (cp == 0)
                        return -EBADMSG;
                r = put_utf8(out, cp);
                if (r < 0)
                        return r;
        }
        if (!utf8_valid(out->data, out->len)) /* also rejects NUL */
                return -EBADMSG;
        return buf_str(out) ? 0 : -ENOMEM;
}

void audit_entry_clear(struct audit_entry *e) {
        if (!e)
                return;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                free(*field_ptr(e, i));
        *e = (struct audit_entry){};
}

static inline void audit_entry_clearp(struct audit_entry *e) {
        audit_entry_clear(e);
}

int audit_entry_parse(const char *json, size_t len, struct audit_entry *ret) {
        _cleanup_(audit_entry_clearp) struct audit_entry e = {};
        _cleanup_buf_ struct buf again = {};
        struct cursor c = { json, json + len };
        int r;

        buf_init(&again, AUDIT_ENTRY_MAX);
        if (!json || !ret)
                return -EINVAL;
        if (len > AUDIT_ENTRY_MAX || len < 2 || json[0] != '{')
                return -EBADMSG;
        c.p++;
        for (;;) {
                _cleanup_buf_ struct buf key, val;
                buf_init(&key, 64);
                buf_init(&val, AUDIT_ENTRY_MAX);
                r = parse_string(&c, &key);
                if (r < 0)
                        return -EBADMSG;
                if (c.p >= c.end || *c.p++ != ':')
                        return -EBADMSG;
                r = parse_string(&c, &val);
                if (r < 0)
                        return -EBADMSG;
                size_t i;
                for (i = 0; i < ELEMENTSOF(fields); i++)
                        if (strcmp(fields[i].key, buf_str(&key)) == 0)
                                break;
                if (i == ELEMENTSOF(fields) || *field_ptr(&e, i))
                        return -EBADMSG; /* unknown or duplicate */
                *field_ptr(&e, i) = buf_steal(&val);
                if (!*field_ptr(&e, i))
                        return -ENOMEM;
                if (c.p >= c.end)
                        return -EBADMSG;
                char sep = *c.p++;
                if (sep == '}')
                        break;
                if (sep != ',')
                        return -EBADMSG;
        }
        if (c.p != c.end)
                return -EBADMSG;
        r = validate(&e, true);
        if (r < 0)
                return -EBADMSG;
        r = serialise(&e, SER_ALL, &again);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        if (again.len != len || memcmp(again.data, json, len) != 0)
                return -EBADMSG;
        *ret = e;
        e = (struct audit_entry){};
        return 0;
}

int audit_entry_open_details(const struct audit_entry *e, const uint8_t *details_key, struct buf *ret_plain) {
        _cleanup_buf_ struct buf aad = {};
        _cleanup_free_ uint8_t *raw = NULL;
        uint8_t *plain = NULL;
        size_t rawn = 0, pn = 0;
        EVP_CIPHER_CTX *ctx = NULL;
        int outl, r;

        buf_init(&aad, AUDIT_ENTRY_MAX);
        if (!e || !details_key || !ret_plain)
                return -EINVAL;
        if (!e->details)
                return -ENOENT;
        r = validate(e, false);
        if (r < 0)
                return r;
        r = serialise(e, 0, &aad);
        if (r < 0)
                return r;
        if (base64_decode(e->details, strlen(e->details), &raw, &rawn) < 0 ||
            rawn < AUDIT_ENTRY_NONCE_SIZE + AUDIT_ENTRY_TAG_SIZE)
                return -EBADMSG;
        pn = rawn - AUDIT_ENTRY_NONCE_SIZE - AUDIT_ENTRY_TAG_SIZE;
        plain = malloc(pn + 1);
        ctx = EVP_CIPHER_CTX_new();
        r = -ENOMEM;
        if (!plain || !ctx)
                goto out;
        const uint8_t *ct = raw + AUDIT_ENTRY_NONCE_SIZE;
        r = -EBADMSG;
        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, details_key, raw) != 1 ||
            EVP_DecryptUpdate(ctx, NULL, &outl, aad.data, (int) aad.len) != 1 ||
            EVP_DecryptUpdate(ctx, plain, &outl, ct, (int) pn) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AUDIT_ENTRY_TAG_SIZE, (void *) (ct + pn)) != 1 ||
            EVP_DecryptFinal_ex(ctx, plain + outl, &outl) != 1) {
                /* not authentic (or another key): the answer is -EBADMSG, the queue is dropped */
                ERR_clear_error();
                goto out;
        }
        r = buf_append(ret_plain, plain, pn);
out:
        EVP_CIPHER_CTX_free(ctx);
        if (plain) {
                OPENSSL_cleanse(plain, pn + 1);
                free(plain);
        }
        return r;
}

void audit_entry_format_time(int64_t ms, char out[32]) {
        rfc3339_format(ms, out);
}

int audit_entry_mac_input(const struct audit_entry *e, struct buf *ret) {
        if (!e || !ret)
                return -EINVAL;
        return serialise(e, SER_DETAILS, ret);
}
