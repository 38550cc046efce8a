/* repo.c: creating and opening backup repositories (config, key wraps, MAC) and loading the
 * index files. */
#include "backup/repo.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "crypto/key_wrap.h"
#include "hex.h"
#include "log.h"

#define ARGON_OPS crypto_pwhash_OPSLIMIT_INTERACTIVE
#define ARGON_MEM crypto_pwhash_MEMLIMIT_INTERACTIVE

void backup_object_name(const char *kind, const backup_id *id, char *out, size_t n) {
        char hex[BACKUP_ID_HEX + 1];

        backup_id_hex(id, hex);
        if (strcmp(kind, "packs") == 0)
                snprintf(out, n, "packs/%.2s/%s", hex, hex);
        else
                snprintf(out, n, "%s/%s", kind, hex);
}

void backup_repo_free(struct backup_repo *r) {
        if (!r)
                return;
        backup_dest_free(r->dest);
        backup_keys_free(r->keys);
        chunker_wipe(&r->chunker);
        backup_index_free(r->index);
        free(r);
}

static size_t wrap_aad(const uint8_t id[BACKUP_REPO_ID_SIZE], const char *kind, uint8_t *aad) {
        size_t n = 0, kl = strlen(kind);
        memcpy(aad, "coffre-backup-key", 17);
        n += 17;
        memcpy(aad + n, id, BACKUP_REPO_ID_SIZE);
        n += BACKUP_REPO_ID_SIZE;
        memcpy(aad + n, kind, kl);
        return n + kl;
}

static int passphrase_key(const char *pass, const uint8_t salt[crypto_pwhash_SALTBYTES], unsigned long long ops,
                          size_t mem, uint8_t out[32]) {
        size_t pl = strlen(pass);
        if (pl == 0 || pl > BACKUP_PASSPHRASE_MAX)
                return -EINVAL;
        if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > 64 || mem < crypto_pwhash_MEMLIMIT_MIN ||
            mem > ((size_t) 4 << 30))
                return -EBADMSG; /* refuse a config that would make us burn the machine */
        if (crypto_pwhash(out, 32, pass, pl, salt, ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
                return -ENOMEM;
        return 0;
}

static int finish_open(struct backup_repo *r, const uint8_t backup_key[BACKUP_KEY_SIZE],
                       const struct chunker_params *p) {
        int k = backup_keys_new(backup_key, &r->keys);
        if (k < 0)
                return k;
        k = chunker_init(&r->chunker, p, r->keys->chunker);
        if (k < 0)
                return -EBADMSG;
        hex_encode(r->id, BACKUP_REPO_ID_SIZE, r->id_hex);
        return backup_index_new(&r->index);
}

static int config_mac(const struct backup_keys *k, const char *text, size_t n, uint8_t out[32]) {
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, k->config, BACKUP_KEY_SIZE);
        crypto_auth_hmacsha256_update(&st, (const uint8_t *) text, n);
        crypto_auth_hmacsha256_final(&st, out);
        sodium_memzero(&st, sizeof st);
        return 0;
}

int backup_repo_create(struct backup_dest *dest, const struct master_key *master, const char *passphrase,
                       const uint8_t verifier[32], const char *vault_id, const char *audit_origin,
                       const struct chunker_params *params, struct backup_repo **ret) {
        _cleanup_(backup_repo_freep) struct backup_repo *r = calloc(1, sizeof *r);
        uint8_t *key = NULL, wk[32], wrapped[KEY_WRAP_SIZE], aad[64], mac[32];
        char hex[2 * KEY_WRAP_SIZE + 1], vhex[65], idhex[33], machex[65];
        _cleanup_free_ char *text = NULL;
        json_t *keys = NULL, *cfg = NULL;
        uint64_t size;
        int64_t mtime;
        int rc;

        if (!r) {
                backup_dest_free(dest);
                return -ENOMEM;
        }
        r->dest = dest;
        if (!master || !verifier || !vault_id || !audit_origin || chunker_params_check(params) < 0)
                return -EINVAL;
        rc = dest->ops->stat(dest, "config", &size, &mtime);
        if (rc == 0)
                return -EEXIST;
        if (rc != -ENOENT)
                return rc;
        key = sodium_malloc(BACKUP_KEY_SIZE);
        if (!key)
                return -ENOMEM;
        randombytes_buf(key, BACKUP_KEY_SIZE);
        randombytes_buf(r->id, sizeof r->id);
        memcpy(r->verifier, verifier, 32);
        snprintf(r->vault_id, sizeof r->vault_id, "%s", vault_id);
        snprintf(r->audit_origin, sizeof r->audit_origin, "%s", audit_origin);
        hex_encode(r->id, sizeof r->id, idhex);
        hex_encode(verifier, 32, vhex);

        keys = json_array();
        rc = master_key_derive(master, BACKUP_MASTER_LABEL, wk);
        if (rc == 0)
                rc = key_wrap(wk, aad, wrap_aad(r->id, "master", aad), key, wrapped);
        if (rc == 0) {
                hex_encode(wrapped, sizeof wrapped, hex);
                json_array_append_new(keys, json_pack("{s:s,s:s}", "kind", "master", "wrapped", hex));
        }
        if (rc == 0 && passphrase) {
                uint8_t salt[crypto_pwhash_SALTBYTES];
                char shex[2 * crypto_pwhash_SALTBYTES + 1];
                randombytes_buf(salt, sizeof salt);
                rc = passphrase_key(passphrase, salt, ARGON_OPS, ARGON_MEM, wk);
                if (rc == 0)
                        rc = key_wrap(wk, aad, wrap_aad(r->id, "passphrase", aad), key, wrapped);
                if (rc == 0) {
                        hex_encode(wrapped, sizeof wrapped, hex);
                        hex_encode(salt, sizeof salt, shex);
                        json_array_append_new(keys,
                                              json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "kind", "passphrase", "kdf",
                                                        "argon2id13", "salt", shex, "opslimit", (json_int_t) ARGON_OPS,
                                                        "memlimit", (json_int_t) ARGON_MEM, "wrapped", hex));
                }
        }
        sodium_memzero(wk, sizeof wk);
        if (rc == 0) {
                cfg = json_pack("{s:s,s:i,s:s,s:I,s:{s:I,s:I,s:I},s:s,s:s,s:s,s:o}", "format", "coffre-backup",
                                "version", BACKUP_REPO_VERSION, "id", idhex, "created", (json_int_t) time(NULL),
                                "chunker", "min", (json_int_t) params->min_size, "avg", (json_int_t) params->avg_size,
                                "max", (json_int_t) params->max_size, "verifier_key", vhex, "vault_id", vault_id,
                                "audit_origin", audit_origin, "keys", keys);
                keys = NULL;
                text = cfg ? json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
                if (!text)
                        rc = -ENOMEM;
        }
        json_decref(keys);
        json_decref(cfg);
        if (rc == 0)
                rc = finish_open(r, key, params);
        sodium_free(key);
        if (rc < 0)
                return rc;
        config_mac(r->keys, text, strlen(text), mac);
        hex_encode(mac, sizeof mac, machex);
        {
                _cleanup_buf_ struct buf b = {};
                buf_init(&b, BACKUP_CONFIG_MAX);
                rc = buf_printf(&b, "%s\nhmac-sha256 %s\n", text, machex);
                if (rc >= 0)
                        rc = dest->ops->put(dest, "config", b.data, b.len);
                if (rc < 0)
                        return rc;
        }
        *ret = TAKE_PTR(r);
        return 0;
}

int backup_repo_open(struct backup_dest *dest, const struct master_key *master, const char *passphrase,
                     struct backup_repo **ret) {
        _cleanup_(backup_repo_freep) struct backup_repo *r = calloc(1, sizeof *r);
        _cleanup_buf_ struct buf b = {};
        uint8_t *key = NULL, wk[32], wrapped[KEY_WRAP_SIZE], aad[64], mac[32], want[32];
        struct chunker_params p;
        json_t *cfg = NULL, *keys, *k;
        const char *idhex = NULL, *vhex = NULL, *vid = NULL, *origin = NULL, *format = NULL;
        json_int_t version = 0, cmin = 0, cavg = 0, cmax = 0;
        char *nl;
        size_t i;
        int rc;

        if (!r) {
                backup_dest_free(dest);
                return -ENOMEM;
        }
        r->dest = dest;
        if (!master && !passphrase)
                return -EINVAL;
        buf_init(&b, BACKUP_CONFIG_MAX);
        rc = dest->ops->get(dest, "config", 0, BACKUP_DEST_WHOLE, &b);
        if (rc < 0)
                return rc;
        if (!buf_str(&b))
                return -ENOMEM;
        nl = strchr((char *) b.data, '\n');
        if (!nl || strncmp(nl + 1, "hmac-sha256 ", 12) != 0 || strlen(nl + 13) != 65 || nl[13 + 64] != '\n')
                return -EBADMSG;
        nl[13 + 64] = 0;
        if (hex_decode(nl + 13, want, sizeof want) < 0)
                return -EBADMSG;
        cfg = json_loadb((const char *) b.data, (size_t) (nl - (char *) b.data), JSON_REJECT_DUPLICATES, NULL);
        if (!cfg)
                return -EBADMSG;
        rc = json_unpack(cfg, "{s:s,s:I,s:s,s:{s:I,s:I,s:I},s:s,s:s,s:s,s:o}", "format", &format, "version", &version,
                         "id", &idhex, "chunker", "min", &cmin, "avg", &cavg, "max", &cmax, "verifier_key", &vhex,
                         "vault_id", &vid, "audit_origin", &origin, "keys", &keys);
        if (rc < 0 || strcmp(format, "coffre-backup") != 0 || !json_is_array(keys) || cmin < 0 || cavg < 0 ||
            cmax < 0 || cmax > (json_int_t) CHUNKER_MAX_CEILING || strlen(vid) >= sizeof r->vault_id ||
            strlen(origin) >= sizeof r->audit_origin || hex_decode(idhex, r->id, sizeof r->id) < 0 ||
            hex_decode(vhex, r->verifier, 32) < 0) {
                json_decref(cfg);
                return -EBADMSG;
        }
        if (version != BACKUP_REPO_VERSION) {
                json_decref(cfg);
                return -EPROTONOSUPPORT;
        }
        p = (struct chunker_params){ .min_size = (uint32_t) cmin,
                                     .avg_size = (uint32_t) cavg,
                                     .max_size = (uint32_t) cmax };
        snprintf(r->vault_id, sizeof r->vault_id, "%s", vid);
        snprintf(r->audit_origin, sizeof r->audit_origin, "%s", origin);
        key = sodium_malloc(BACKUP_KEY_SIZE);
        rc = key ? -EKEYREJECTED : -ENOMEM;
        json_array_foreach(keys, i, k) {
                const char *kind = NULL, *whex = NULL, *shex = NULL;
                json_int_t ops = 0, mem = 0;
                uint8_t salt[crypto_pwhash_SALTBYTES];
                int q;

                if (!key || json_unpack(k, "{s:s,s:s}", "kind", &kind, "wrapped", &whex) < 0 ||
                    hex_decode(whex, wrapped, sizeof wrapped) < 0)
                        continue;
                if (master && strcmp(kind, "master") == 0)
                        q = master_key_derive(master, BACKUP_MASTER_LABEL, wk);
                else if (!master && passphrase && strcmp(kind, "passphrase") == 0) {
                        if (json_unpack(k, "{s:s,s:I,s:I}", "salt", &shex, "opslimit", &ops, "memlimit", &mem) < 0 ||
                            hex_decode(shex, salt, sizeof salt) < 0 || ops < 0 || mem < 0)
                                continue;
                        q = passphrase_key(passphrase, salt, (unsigned long long) ops, (size_t) mem, wk);
                } else
                        continue;
                if (q == 0)
                        q = key_unwrap(wk, aad, wrap_aad(r->id, kind, aad), wrapped, sizeof wrapped, key);
                sodium_memzero(wk, sizeof wk);
                if (q == 0) {
                        rc = 0;
                        break;
                }
        }
        json_decref(cfg);
        if (rc == 0)
                rc = finish_open(r, key, &p);
        sodium_free(key);
        if (rc < 0)
                return rc;
        config_mac(r->keys, (const char *) b.data, (size_t) (nl - (char *) b.data), mac);
        if (sodium_memcmp(mac, want, sizeof mac) != 0)
                return -EBADMSG; /* altered config (e.g. another verifier key) */
        *ret = TAKE_PTR(r);
        return 0;
}

struct load_ctx {
        struct backup_repo *r;
        backup_damage_fn damage;
        void *ud;
};

static int load_one(const char *name, uint64_t size, int64_t mtime, void *ud) {
        struct load_ctx *c = ud;
        _cleanup_buf_ struct buf b = {};
        backup_id id;
        int r;

        if (backup_id_parse(name + strlen("index/"), &id) < 0) {
                if (c->damage)
                        c->damage(name, "not an index name", c->ud);
                return 0;
        }
        buf_init(&b, BACKUP_OBJECT_MAX);
        r = c->r->dest->ops->get(c->r->dest, name, 0, BACKUP_DEST_WHOLE, &b);
        if (r == 0)
                r = backup_index_load(c->r->index, c->r->keys, &id, b.data, b.len);
        if (r == -EBADMSG || r == -EFBIG) {
                if (c->damage)
                        c->damage(name, "damaged (truncated or altered): skipped", c->ud);
                return 0;
        }
        return r;
}

struct named {
        char *name;
        int64_t mtime;
};

struct name_list {
        struct named *v;
        size_t n, cap;
};

static int collect_name(const char *name, uint64_t size, int64_t mtime, void *ud) {
        struct name_list *l = ud;
        if (l->n == l->cap) {
                size_t cap = l->cap ? 2 * l->cap : 32;
                struct named *v = realloc(l->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        l->v[l->n].name = strdup(name);
        if (!l->v[l->n].name)
                return -ENOMEM;
        l->v[l->n++].mtime = mtime;
        return 0;
}

static int newest_first(const void *a, const void *b) {
        const struct named *x = a, *y = b;
        if (x->mtime != y->mtime)
                return x->mtime > y->mtime ? -1 : 1;
        return strcmp(x->name, y->name);
}

int backup_repo_load_index(struct backup_repo *r, backup_damage_fn damage, void *ud) {
        struct load_ctx c = { .r = r, .damage = damage, .ud = ud };
        struct name_list l = {};
        int q;

        backup_index_free(r->index);
        r->index = NULL;
        q = backup_index_new(&r->index);
        if (q < 0)
                return q;
        q = r->dest->ops->list(r->dest, "index/", collect_name, &l);
        /* newest first: where a blob was written again (its pack had gone), the newer place wins */
        if (q >= 0 && l.n)
                qsort(l.v, l.n, sizeof *l.v, newest_first);
        for (size_t i = 0; q >= 0 && i < l.n; i++)
                q = load_one(l.v[i].name, 0, l.v[i].mtime, &c);
        for (size_t i = 0; i < l.n; i++)
                free(l.v[i].name);
        free(l.v);
        return q < 0 ? q : 0;
}
