/* note.c: C2SP signed notes, tlog checkpoints and Ed25519 cosignature/v1, byte-compatible with
 * golang.org/x/mod/sumdb/note and transparency-dev/formats. Every input is parsed strictly
 * and with hard size limits; the Ed25519 primitives are libsodium's. */
#include "audit/note.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "hex.h"
#include "utf8.h"

#define SIG_PREFIX "\xe2\x80\x94 " /* em dash U+2014, space */
#define SIG_PREFIX_LEN 4u
#define ED25519_SIG 64u
#define TIMESTAMP_SIZE 8u

struct note_signer {
        char name[NOTE_MAX_NAME + 1];
        enum note_alg alg;
        uint32_t key_id;
        uint8_t pk[crypto_sign_PUBLICKEYBYTES];
        uint8_t *sk; /* sodium_malloc'd, crypto_sign_SECRETKEYBYTES */
};

struct note_verifier {
        char name[NOTE_MAX_NAME + 1];
        enum note_alg alg;
        uint32_t key_id;
        uint8_t pk[crypto_sign_PUBLICKEYBYTES];
};

/* ---- text rules ---- */

/* Unicode White_Space, the set Go's unicode.IsSpace uses. */
static bool is_unicode_space(uint32_t cp) {
        return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
               (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
               cp == 0x3000;
}

static bool name_is_valid_n(const char *name, size_t len) {
        const uint8_t *p = (const uint8_t *) name;

        if (len == 0 || len > NOTE_MAX_NAME)
                return false;
        for (size_t i = 0; i < len;) {
                uint32_t cp;
                size_t n = utf8_next(p + i, len - i, &cp);
                if (n == 0 || cp < 0x20 || cp == 0x7f || cp == '+' || is_unicode_space(cp))
                        return false;
                i += n;
        }
        return true;
}

bool note_name_is_valid(const char *name) {
        return name && name_is_valid_n(name, strnlen(name, NOTE_MAX_NAME + 1));
}

/* UTF-8 with no control character other than newline (the rule for a whole signed note). */
static bool text_chars_valid(const char *text, size_t len) {
        const uint8_t *p = (const uint8_t *) text;

        for (size_t i = 0; i < len;) {
                uint32_t cp;
                size_t n = utf8_next(p + i, len - i, &cp);
                if (n == 0 || (cp < 0x20 && cp != '\n'))
                        return false;
                i += n;
        }
        return true;
}

bool note_text_is_valid(const char *text, size_t len) {
        return text && len > 0 && len <= NOTE_MAX_SIZE && text[len - 1] == '\n' && text_chars_valid(text, len);
}

/* ---- keys ---- */

static uint32_t key_id(const char *name, enum note_alg alg, const uint8_t pk[crypto_sign_PUBLICKEYBYTES]) {
        crypto_hash_sha256_state c;
        uint8_t h[crypto_hash_sha256_BYTES], a = (uint8_t) alg;

        crypto_hash_sha256_init(&c);
        crypto_hash_sha256_update(&c, (const uint8_t *) name, strlen(name));
        crypto_hash_sha256_update(&c, (const uint8_t *) "\n", 1);
        crypto_hash_sha256_update(&c, &a, 1);
        crypto_hash_sha256_update(&c, pk, crypto_sign_PUBLICKEYBYTES);
        crypto_hash_sha256_final(&c, h);
        return (uint32_t) h[0] << 24 | (uint32_t) h[1] << 16 | (uint32_t) h[2] << 8 | h[3];
}

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24), p[1] = (uint8_t) (v >> 16), p[2] = (uint8_t) (v >> 8), p[3] = (uint8_t) v;
}

static uint64_t get_be64(const uint8_t *p) {
        uint64_t v = 0;
        for (unsigned i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

static bool alg_is_known(unsigned a) {
        return a == NOTE_ALG_ED25519 || a == NOTE_ALG_COSIGNATURE_V1;
}

void note_text_free_secret(char *s) {
        if (!s)
                return;
        sodium_memzero(s, strlen(s));
        free(s);
}

/* Builds "<prefix><name>+<hash8>+<base64(alg||key)>". Appends only (no printf scratch buffer)
 * into one reservation, so no copy of a secret key is left behind in freed or stack memory. */
static int format_key(const char *prefix, const char *name, uint32_t id, uint8_t alg, const uint8_t key[32],
                      char **ret) {
        uint8_t raw[33], idb[4];
        char hash16[9], *b64;
        struct buf b;
        int r;

        raw[0] = alg;
        memcpy(raw + 1, key, 32);
        b64 = base64_encode(raw, sizeof raw);
        sodium_memzero(raw, sizeof raw);
        if (!b64)
                return -ENOMEM;
        put_be32(idb, id);
        hex_encode(idb, sizeof idb, hash16);
        buf_init(&b, NOTE_MAX_KEY_TEXT);
        r = buf_reserve(&b, strlen(prefix) + strlen(name) + 1 + 8 + 1 + strlen(b64));
        if (r >= 0 && (r = buf_append_str(&b, prefix)) >= 0 && (r = buf_append_str(&b, name)) >= 0 &&
            (r = buf_append(&b, "+", 1)) >= 0 && (r = buf_append(&b, hash16, 8)) >= 0 &&
            (r = buf_append(&b, "+", 1)) >= 0)
                r = buf_append_str(&b, b64);
        sodium_memzero(b64, strlen(b64));
        free(b64);
        if (r < 0) {
                buf_free_secure(&b);
                return r;
        }
        *ret = buf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}

int note_key_generate_alg(const char *name, enum note_alg alg, char **ret_skey, char **ret_vkey) {
        _cleanup_free_ char *vkey = NULL;
        char *skey = NULL;
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], *sk, *seed;
        uint32_t id;
        int r;

        if (!note_name_is_valid(name) || !alg_is_known(alg) || !ret_skey || !ret_vkey)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        sk = sodium_malloc(crypto_sign_SECRETKEYBYTES + crypto_sign_SEEDBYTES);
        if (!sk)
                return -ENOMEM;
        seed = sk + crypto_sign_SECRETKEYBYTES;
        randombytes_buf(seed, crypto_sign_SEEDBYTES);
        if (crypto_sign_seed_keypair(pk, sk, seed) != 0) {
                sodium_free(sk);
                return -EIO;
        }
        id = key_id(name, alg, pk);
        r = format_key("PRIVATE+KEY+", name, id, (uint8_t) alg, seed, &skey);
        sodium_free(sk); /* wipes */
        if (r < 0)
                return r;
        r = format_key("", name, id, (uint8_t) alg, pk, &vkey);
        if (r < 0) {
                note_text_free_secret(skey);
                return r;
        }
        *ret_skey = skey;
        *ret_vkey = TAKE_PTR(vkey);
        return 0;
}

int note_key_generate(const char *name, char **ret_skey, char **ret_vkey) {
        return note_key_generate_alg(name, NOTE_ALG_ED25519, ret_skey, ret_vkey);
}

/* Splits "<name>+<hash8>+<base64>" (base64 may itself contain '+'), decodes it into the type
 * byte and a 32-byte key. The decoded bytes are wiped before returning. */
static int parse_key_fields(const char *s, char *ret_name, uint32_t *ret_hash, uint8_t *ret_alg, uint8_t ret_key[32]) {
        const char *p1, *p2, *b64;
        char hash16[9];
        uint8_t hb[4], *raw = NULL;
        size_t raw_len = 0;
        int r;

        p1 = strchr(s, '+');
        if (!p1)
                return -EINVAL;
        p2 = strchr(p1 + 1, '+');
        if (!p2)
                return -EINVAL;
        b64 = p2 + 1;
        if (!name_is_valid_n(s, (size_t) (p1 - s)) || p2 - p1 - 1 != 8)
                return -EINVAL;
        memcpy(hash16, p1 + 1, 8);
        hash16[8] = 0;
        for (unsigned i = 0; i < 8; i++)
                if (!((hash16[i] >= '0' && hash16[i] <= '9') || (hash16[i] >= 'a' && hash16[i] <= 'f')))
                        return -EINVAL;
        if (hex_decode(hash16, hb, 4) < 0)
                return -EINVAL;
        if (strlen(b64) != 44) /* base64 of 33 bytes */
                return -EINVAL;
        r = base64_decode(b64, 44, &raw, &raw_len);
        if (r < 0)
                return -EINVAL;
        if (raw_len != 33) {
                sodium_memzero(raw, raw_len);
                free(raw);
                return -EINVAL;
        }
        memcpy(ret_name, s, (size_t) (p1 - s));
        ret_name[p1 - s] = 0;
        *ret_hash = (uint32_t) hb[0] << 24 | (uint32_t) hb[1] << 16 | (uint32_t) hb[2] << 8 | hb[3];
        *ret_alg = raw[0];
        memcpy(ret_key, raw + 1, 32);
        sodium_memzero(raw, raw_len);
        free(raw);
        return 0;
}

void note_signer_free(struct note_signer *s) {
        if (!s)
                return;
        sodium_free(s->sk);
        sodium_memzero(s, sizeof *s);
        free(s);
}

int note_signer_from_skey(const char *skey, struct note_signer **ret) {
        _cleanup_(note_signer_freep) struct note_signer *s = NULL;
        uint8_t seed[crypto_sign_SEEDBYTES], alg = 0;
        uint32_t hash = 0;
        int r;

        if (!skey || !ret || strnlen(skey, NOTE_MAX_KEY_TEXT + 1) > NOTE_MAX_KEY_TEXT)
                return -EINVAL;
        if (strncmp(skey, "PRIVATE+KEY+", 12) != 0)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
        if (!s->sk)
                return -ENOMEM;
        r = parse_key_fields(skey + 12, s->name, &hash, &alg, seed);
        if (r < 0)
                return r;
        if (!alg_is_known(alg)) {
                sodium_memzero(seed, sizeof seed);
                return -EINVAL;
        }
        r = crypto_sign_seed_keypair(s->pk, s->sk, seed);
        sodium_memzero(seed, sizeof seed);
        if (r != 0)
                return -EIO;
        s->alg = alg;
        s->key_id = key_id(s->name, s->alg, s->pk);
        if (s->key_id != hash)
                return -EBADMSG;
        *ret = TAKE_PTR(s);
        return 0;
}

const char *note_signer_name(const struct note_signer *s) {
        return s->name;
}

int note_signer_vkey(const struct note_signer *s, char **ret_vkey) {
        return format_key("", s->name, s->key_id, (uint8_t) s->alg, s->pk, ret_vkey);
}

static int verifier_parse(const char *vkey, bool cosignature, struct note_verifier **ret) {
        _cleanup_(note_verifier_freep) struct note_verifier *v = NULL;
        uint32_t hash = 0;
        uint8_t alg = 0;
        int r;

        if (!vkey || !ret || strnlen(vkey, NOTE_MAX_KEY_TEXT + 1) > NOTE_MAX_KEY_TEXT)
                return -EINVAL;
        v = calloc(1, sizeof *v);
        if (!v)
                return -ENOMEM;
        r = parse_key_fields(vkey, v->name, &hash, &alg, v->pk);
        if (r < 0)
                return r;
        if (!alg_is_known(alg))
                return -EINVAL;
        if (key_id(v->name, alg, v->pk) != hash)
                return -EBADMSG;
        v->alg = cosignature ? NOTE_ALG_COSIGNATURE_V1 : alg;
        v->key_id = key_id(v->name, v->alg, v->pk);
        *ret = TAKE_PTR(v);
        return 0;
}

int note_verifier_from_vkey(const char *vkey, struct note_verifier **ret) {
        return verifier_parse(vkey, false, ret);
}

int note_verifier_cosignature_from_vkey(const char *vkey, struct note_verifier **ret) {
        return verifier_parse(vkey, true, ret);
}

void note_verifier_free(struct note_verifier *v) {
        free(v);
}

const char *note_verifier_name(const struct note_verifier *v) {
        return v->name;
}

uint32_t note_verifier_key_id(const struct note_verifier *v) {
        return v->key_id;
}

enum note_alg note_verifier_alg(const struct note_verifier *v) {
        return v->alg;
}

/* ---- signing and opening ---- */

static int signature_line(const char *name, uint32_t id, const uint8_t *sig, size_t sig_len, char **ret) {
        uint8_t raw[4 + TIMESTAMP_SIZE + ED25519_SIG];
        _cleanup_free_ char *b64 = NULL;
        struct buf b;
        int r;

        if (sig_len > sizeof raw - 4)
                return -EINVAL;
        put_be32(raw, id);
        memcpy(raw + 4, sig, sig_len);
        b64 = base64_encode(raw, 4 + sig_len);
        if (!b64)
                return -ENOMEM;
        buf_init(&b, NOTE_MAX_SIG_LINE);
        r = buf_printf(&b, SIG_PREFIX "%s %s\n", name, b64);
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = buf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}

int note_signature_line(const struct note_signer *s, const char *body, size_t len, char **ret_line) {
        uint8_t sig[ED25519_SIG];

        if (!s || !ret_line || s->alg != NOTE_ALG_ED25519 || !note_text_is_valid(body, len))
                return -EINVAL;
        if (crypto_sign_detached(sig, NULL, (const uint8_t *) body, len, s->sk) != 0)
                return -EIO;
        return signature_line(s->name, s->key_id, sig, sizeof sig, ret_line);
}

int note_sign(const struct note_signer *s, const char *body, size_t len, char **ret_note) {
        _cleanup_free_ char *line = NULL;
        struct buf b;
        int r;

        r = note_signature_line(s, body, len, &line);
        if (r < 0)
                return r;
        buf_init(&b, NOTE_MAX_SIZE);
        if ((r = buf_append(&b, body, len)) < 0 || (r = buf_append(&b, "\n", 1)) < 0 ||
            (r = buf_append_str(&b, line)) < 0) {
                buf_free(&b);
                return r == -E2BIG ? -EINVAL : r;
        }
        *ret_note = buf_steal(&b);
        return *ret_note ? 0 : -ENOMEM;
}

/* "cosignature/v1\ntime <t>\n" || body, the message an Ed25519 witness signs. */
static int cosignature_message(uint64_t t, const char *body, size_t len, struct buf *ret) {
        int r = buf_printf(ret, "cosignature/v1\ntime %" PRIu64 "\n", t);
        if (r < 0)
                return r;
        return buf_append(ret, body, len);
}

static int verify_one(const struct note_verifier *v, const char *text, size_t text_len, const uint8_t *sig,
                      size_t sig_len, uint64_t *ret_ts) {
        if (v->alg == NOTE_ALG_ED25519) {
                if (sig_len != ED25519_SIG ||
                    crypto_sign_verify_detached(sig, (const uint8_t *) text, text_len, v->pk) != 0)
                        return -EBADMSG;
                *ret_ts = 0;
                return 0;
        }
        if (sig_len != TIMESTAMP_SIZE + ED25519_SIG)
                return -EBADMSG;
        uint64_t t = get_be64(sig);
        if (t > INT64_MAX)
                return -EBADMSG;
        _cleanup_buf_ struct buf m = {};
        buf_init(&m, NOTE_MAX_SIZE + 64);
        int r = cosignature_message(t, text, text_len, &m);
        if (r < 0)
                return r;
        if (crypto_sign_verify_detached(sig + TIMESTAMP_SIZE, m.data, m.len, v->pk) != 0)
                return -EBADMSG;
        *ret_ts = t;
        return 0;
}

/* Finds the last "\n\n" at or before the end: the text/signature separator. */
static const char *last_blank_line(const char *s, size_t len) {
        for (size_t i = len; i >= 2; i--)
                if (s[i - 2] == '\n' && s[i - 1] == '\n')
                        return s + i - 2;
        return NULL;
}

int note_open(const char *note, size_t len, struct note_verifier *const *verifiers, size_t n_verifiers,
              char **ret_body, struct note_verified *ret_verified) {
        _cleanup_free_ struct note_verified *res = NULL;
        _cleanup_free_ bool *seen = NULL;
        const char *split, *sigs, *end;
        size_t text_len, n_sigs = 0, n_ok = 0;
        char *body;
        int r;

        if (!note || !ret_body || len == 0 || len > NOTE_MAX_SIZE || n_verifiers > NOTE_MAX_SIGNATURES ||
            (n_verifiers > 0 && !verifiers))
                return -EINVAL;
        for (size_t i = 0; i < n_verifiers; i++) {
                if (!verifiers[i])
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (verifiers[i]->key_id == verifiers[j]->key_id &&
                            strcmp(verifiers[i]->name, verifiers[j]->name) == 0)
                                return -EINVAL; /* ambiguous key */
        }
        if (sodium_init() < 0)
                return -EIO;
        if (!text_chars_valid(note, len))
                return -EINVAL;
        split = last_blank_line(note, len);
        if (!split)
                return -EINVAL;
        text_len = (size_t) (split - note) + 1;
        sigs = split + 2;
        end = note + len;
        if (sigs >= end || end[-1] != '\n')
                return -EINVAL;

        res = calloc(n_verifiers ? n_verifiers : 1, sizeof *res);
        seen = calloc(n_verifiers ? n_verifiers : 1, sizeof *seen);
        if (!res || !seen)
                return -ENOMEM;

        while (sigs < end) {
                const char *nl = memchr(sigs, '\n', (size_t) (end - sigs)), *name, *sp, *b64;
                size_t line_len = (size_t) (nl - sigs) + 1, name_len, b64_len;
                _cleanup_free_ uint8_t *raw = NULL;
                size_t raw_len = 0;
                uint32_t id;

                if (line_len > NOTE_MAX_SIG_LINE || ++n_sigs > NOTE_MAX_SIGNATURES)
                        return -EINVAL;
                if (line_len < SIG_PREFIX_LEN || memcmp(sigs, SIG_PREFIX, SIG_PREFIX_LEN) != 0)
                        return -EINVAL;
                name = sigs + SIG_PREFIX_LEN;
                sp = memchr(name, ' ', (size_t) (nl - name));
                if (!sp)
                        return -EINVAL;
                name_len = (size_t) (sp - name);
                b64 = sp + 1;
                b64_len = (size_t) (nl - b64);
                if (!name_is_valid_n(name, name_len) || b64_len == 0)
                        return -EINVAL;
                if (base64_decode(b64, b64_len, &raw, &raw_len) < 0 || raw_len < 5)
                        return -EINVAL;
                id = (uint32_t) raw[0] << 24 | (uint32_t) raw[1] << 16 | (uint32_t) raw[2] << 8 | raw[3];

                for (size_t i = 0; i < n_verifiers; i++) {
                        const struct note_verifier *v = verifiers[i];
                        if (v->key_id != id || strlen(v->name) != name_len || memcmp(v->name, name, name_len) != 0)
                                continue;
                        if (seen[i])
                                break; /* a repeated signature by one key: the first one decides */
                        seen[i] = true;
                        r = verify_one(v, note, text_len, raw + 4, raw_len - 4, &res[i].timestamp);
                        if (r < 0)
                                return r;
                        res[i].ok = true;
                        n_ok++;
                        break;
                }
                sigs = nl + 1;
        }
        if (n_ok == 0)
                return -EBADMSG;

        body = malloc(text_len + 1);
        if (!body)
                return -ENOMEM;
        memcpy(body, note, text_len);
        body[text_len] = 0;
        *ret_body = body;
        if (ret_verified && n_verifiers > 0)
                memcpy(ret_verified, res, n_verifiers * sizeof *res);
        return 0;
}

/* ---- checkpoints ---- */

int checkpoint_format(const char *origin, uint64_t size, const merkle_hash *root, const char *const *extensions,
                      size_t n_extensions, char **ret_body) {
        _cleanup_free_ char *b64 = NULL;
        struct buf b;
        int r;

        if (!note_name_is_valid(origin) || !root || !ret_body || (n_extensions > 0 && !extensions))
                return -EINVAL;
        b64 = base64_encode(root->b, MERKLE_HASH_SIZE);
        if (!b64)
                return -ENOMEM;
        buf_init(&b, NOTE_MAX_SIZE);
        r = buf_printf(&b, "%s\n%" PRIu64 "\n%s\n", origin, size, b64);
        for (size_t i = 0; r >= 0 && i < n_extensions; i++) {
                const char *e = extensions[i];
                size_t el = e ? strlen(e) : 0;
                if (el == 0 || memchr(e, '\n', el) || !text_chars_valid(e, el))
                        r = -EINVAL;
                else if ((r = buf_append(&b, e, el)) >= 0)
                        r = buf_append(&b, "\n", 1);
        }
        if (r < 0) {
                buf_free(&b);
                return r == -E2BIG ? -EINVAL : r;
        }
        *ret_body = buf_steal(&b);
        return *ret_body ? 0 : -ENOMEM;
}

int checkpoint_parse(const char *body, size_t len, char **ret_origin, uint64_t *ret_size, merkle_hash *ret_root) {
        const char *line = body, *end = body + len, *nl;
        const char *lines[3];
        size_t lens[3];
        uint64_t size = 0;
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        merkle_hash root;

        if (!note_text_is_valid(body, len))
                return -EBADMSG;
        for (unsigned i = 0; i < 3; i++) {
                if (line >= end)
                        return -EBADMSG;
                nl = memchr(line, '\n', (size_t) (end - line));
                lines[i] = line;
                lens[i] = (size_t) (nl - line);
                line = nl + 1;
        }
        /* extension lines: any number, none empty */
        while (line < end) {
                nl = memchr(line, '\n', (size_t) (end - line));
                if (nl == line)
                        return -EBADMSG;
                line = nl + 1;
        }

        if (!name_is_valid_n(lines[0], lens[0]))
                return -EBADMSG;

        if (lens[1] == 0 || lens[1] > 20 || (lens[1] > 1 && lines[1][0] == '0'))
                return -EBADMSG;
        for (size_t i = 0; i < lens[1]; i++) {
                unsigned d = (unsigned) (lines[1][i] - '0');
                if (d > 9 || size > (UINT64_MAX - d) / 10)
                        return -EBADMSG;
                size = size * 10 + d;
        }

        if (lens[2] != 44 || base64_decode(lines[2], lens[2], &raw, &raw_len) < 0)
                return -EBADMSG;
        if (raw_len != MERKLE_HASH_SIZE) {
                free(raw);
                return -EBADMSG;
        }
        memcpy(root.b, raw, MERKLE_HASH_SIZE);
        free(raw);

        if (ret_origin) {
                char *o = strndup(lines[0], lens[0]);
                if (!o)
                        return -ENOMEM;
                *ret_origin = o;
        }
        if (ret_size)
                *ret_size = size;
        if (ret_root)
                *ret_root = root;
        return 0;
}

/* ---- cosignatures ---- */

int cosignature_sign(const struct note_signer *witness, const char *checkpoint_body, size_t len, uint64_t timestamp,
                     char **ret_line) {
        uint8_t sig[TIMESTAMP_SIZE + ED25519_SIG];
        _cleanup_buf_ struct buf m = {}; /* freed on the early -EINVAL returns */
        int r;

        if (!witness || !ret_line || timestamp > INT64_MAX)
                return -EINVAL;
        r = checkpoint_parse(checkpoint_body, len, NULL, NULL, NULL);
        if (r < 0)
                return -EINVAL;
        buf_init(&m, NOTE_MAX_SIZE + 64);
        r = cosignature_message(timestamp, checkpoint_body, len, &m);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < 8; i++)
                sig[i] = (uint8_t) (timestamp >> (56 - 8 * i));
        if (crypto_sign_detached(sig + TIMESTAMP_SIZE, NULL, m.data, m.len, witness->sk) != 0)
                return -EIO;
        return signature_line(witness->name, key_id(witness->name, NOTE_ALG_COSIGNATURE_V1, witness->pk), sig,
                              sizeof sig, ret_line);
}

int cosignature_verify(const struct note_verifier *witness, const char *note, size_t len, uint64_t *ret_timestamp) {
        _cleanup_free_ char *body = NULL;
        struct note_verified res;
        struct note_verifier *const list[1] = { (struct note_verifier *) witness };
        int r;

        if (!witness || witness->alg != NOTE_ALG_COSIGNATURE_V1)
                return -EINVAL;
        r = note_open(note, len, list, 1, &body, &res);
        if (r < 0)
                return r;
        if (checkpoint_parse(body, strlen(body), NULL, NULL, NULL) < 0)
                return -EBADMSG;
        if (ret_timestamp)
                *ret_timestamp = res.timestamp;
        return 0;
}
