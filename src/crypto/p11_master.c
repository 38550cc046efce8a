/* p11_master.c: the master key's two secret keys on a PKCS#11 token, through the module's own
 * function list (libp11 has no secret-key operations). See p11_master.h. */
#include "p11_master.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>
#include <sodium.h>

#include "log.h"
#include "p11_uri.h"

struct p11_master {
        void *dl;
        CK_FUNCTION_LIST_PTR f;
        bool initialized; /* we called C_Initialize (and call C_Finalize) */
        CK_SESSION_HANDLE session;
        bool have_session;
        CK_OBJECT_HANDLE aes, hmac;
        pthread_mutex_t lock;
};

void p11_master_free(struct p11_master *m) {
        if (!m)
                return;
        if (m->have_session) {
                (void) m->f->C_Logout(m->session);
                (void) m->f->C_CloseSession(m->session);
        }
        if (m->initialized)
                (void) m->f->C_Finalize(NULL);
        if (m->dl)
                dlclose(m->dl);
        pthread_mutex_destroy(&m->lock);
        free(m);
}

/* Token labels are 32 bytes padded with spaces. */
static bool label_is(const unsigned char label[32], const char *want) {
        size_t n = strlen(want);
        if (n > 32)
                return false;
        if (memcmp(label, want, n) != 0)
                return false;
        for (size_t i = n; i < 32; i++)
                if (label[i] != ' ')
                        return false;
        return true;
}

static int find_slot(struct p11_master *m, const char *token, CK_SLOT_ID *ret) {
        CK_ULONG n = 0;
        if (m->f->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n == 0)
                return log_error_errno(-ENOENT, "the PKCS#11 module shows no token");
        if (n > 256)
                n = 256;
        CK_SLOT_ID slots[256];
        if (m->f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
                return log_error_errno(-EIO, "cannot list the PKCS#11 slots");
        for (CK_ULONG i = 0; i < n; i++) {
                CK_TOKEN_INFO ti;
                if (m->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
                        continue;
                if (!token[0] || label_is(ti.label, token)) {
                        *ret = slots[i];
                        return 0;
                }
        }
        return log_error_errno(-ENOENT, "no PKCS#11 token labelled \"%s\"", token);
}

/* The one secret key of this label and type; -ENOENT when there is none, -EINVAL for several. */
static int find_key(struct p11_master *m, const char *label, CK_KEY_TYPE type, CK_OBJECT_HANDLE *ret) {
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_ATTRIBUTE tmpl[] = {
                { CKA_CLASS, &cls, sizeof cls },
                { CKA_KEY_TYPE, &type, sizeof type },
                { CKA_LABEL, (void *) label, strlen(label) },
        };
        CK_OBJECT_HANDLE h[2];
        CK_ULONG n = 0;
        if (m->f->C_FindObjectsInit(m->session, tmpl, ELEMENTSOF(tmpl)) != CKR_OK)
                return -EIO;
        CK_RV rv = m->f->C_FindObjects(m->session, h, 2, &n);
        (void) m->f->C_FindObjectsFinal(m->session);
        if (rv != CKR_OK)
                return -EIO;
        if (n == 0)
                return -ENOENT;
        if (n > 1)
                return log_error_errno(-EINVAL, "more than one key labelled \"%s\" on the PKCS#11 token", label);
        *ret = h[0];
        return 0;
}

/* A key that may leave the token, in clear or wrapped, is no master key. */
static int check_key(struct p11_master *m, CK_OBJECT_HANDLE h, const char *label) {
        CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
        CK_ATTRIBUTE a[] = {
                { CKA_SENSITIVE, &sensitive, sizeof sensitive },
                { CKA_EXTRACTABLE, &extractable, sizeof extractable },
        };
        if (m->f->C_GetAttributeValue(m->session, h, a, ELEMENTSOF(a)) != CKR_OK)
                return log_error_errno(-EIO, "cannot read the attributes of the key \"%s\"", label);
        if (sensitive != CK_TRUE || extractable != CK_FALSE)
                return log_error_errno(-EPERM,
                                       "the key \"%s\" on the PKCS#11 token can leave it (it must be sensitive and "
                                       "not extractable)",
                                       label);
        return 0;
}

static int make_key(struct p11_master *m, const char *label, bool aes, const uint8_t *value, CK_OBJECT_HANDLE *ret) {
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE type = aes ? CKK_AES : CKK_GENERIC_SECRET;
        CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
        CK_ULONG len = 32;
        CK_ATTRIBUTE tmpl[] = {
                { CKA_CLASS, &cls, sizeof cls },
                { CKA_KEY_TYPE, &type, sizeof type },
                { CKA_LABEL, (void *) label, strlen(label) },
                { CKA_TOKEN, &yes, sizeof yes },
                { CKA_PRIVATE, &yes, sizeof yes },
                { CKA_SENSITIVE, &yes, sizeof yes },
                { CKA_EXTRACTABLE, &no, sizeof no },
                { CKA_MODIFIABLE, &no, sizeof no },
                { aes ? CKA_ENCRYPT : CKA_SIGN, &yes, sizeof yes },
                { aes ? CKA_DECRYPT : CKA_VERIFY, &yes, sizeof yes },
                { CKA_WRAP, &no, sizeof no },
                { CKA_UNWRAP, &no, sizeof no },
                { value ? CKA_VALUE : CKA_VALUE_LEN, value ? (void *) value : (void *) &len, value ? 32 : sizeof len },
        };
        CK_RV rv;
        if (value)
                rv = m->f->C_CreateObject(m->session, tmpl, ELEMENTSOF(tmpl), ret);
        else {
                CK_MECHANISM mech = { aes ? CKM_AES_KEY_GEN : CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 };
                /* CKA_KEY_TYPE is implied by the mechanism; some modules refuse it in the template */
                rv = m->f->C_GenerateKey(m->session, &mech, tmpl, ELEMENTSOF(tmpl), ret);
        }
        if (rv != CKR_OK)
                return log_error_errno(-EIO, "the PKCS#11 token could not make the key \"%s\" (CKR 0x%lx)", label,
                                       (unsigned long) rv);
        log_info("made the master key \"%s\" on the PKCS#11 token", label);
        return 0;
}

static int hmac_locked(struct p11_master *m, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                       uint8_t out[32]) {
        CK_MECHANISM mech = { CKM_SHA256_HMAC, NULL, 0 };
        CK_ULONG n = 32;
        if (m->f->C_SignInit(m->session, &mech, m->hmac) != CKR_OK)
                return -EIO;
        if (m->f->C_SignUpdate(m->session, (CK_BYTE_PTR) a, a_len) != CKR_OK ||
            (b && b_len && m->f->C_SignUpdate(m->session, (CK_BYTE_PTR) b, b_len) != CKR_OK)) {
                uint8_t junk[64];
                CK_ULONG jl = sizeof junk;
                (void) m->f->C_SignFinal(m->session, junk, &jl); /* ends the operation */
                sodium_memzero(junk, sizeof junk);
                return -EIO;
        }
        if (m->f->C_SignFinal(m->session, out, &n) != CKR_OK || n != 32)
                return -EIO;
        return 0;
}

int p11_master_hmac(struct p11_master *m, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                    uint8_t out[32]) {
        if (!m || !a || !out)
                return -EINVAL;
        pthread_mutex_lock(&m->lock);
        int r = hmac_locked(m, a, a_len, b, b_len, out);
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int check_imported_hmac(struct p11_master *m, const uint8_t *value) {
        static const char probe[] = "coffre master key migration check";
        uint8_t mine[crypto_auth_hmacsha256_BYTES], theirs[32];
        crypto_auth_hmacsha256(mine, (const uint8_t *) probe, sizeof probe - 1, value);
        int r = hmac_locked(m, (const uint8_t *) probe, sizeof probe - 1, NULL, 0, theirs);
        if (r >= 0 && sodium_memcmp(mine, theirs, 32) != 0)
                r = log_error_errno(-EBADMSG, "the HMAC key on the PKCS#11 token is not the one being migrated");
        sodium_memzero(mine, sizeof mine);
        return r;
}

int p11_master_open(const char *uri, bool create, const uint8_t *hmac_import, struct p11_master **ret) {
        struct p11_uri u;
        const char *why = NULL;
        char hmac_label[P11_LABEL_MAX + sizeof P11_MASTER_HMAC_SUFFIX];
        int r;

        if (!uri || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        r = p11_uri_parse(uri, &u, &why);
        if (r < 0)
                return log_error_errno(r, "bad master key URI: %s", why);
        if (!u.object[0])
                return log_error_errno(-EINVAL, "the master key URI must name its key with object=LABEL");
        if (u.type[0] && strcmp(u.type, "secret-key") != 0)
                return log_error_errno(-EINVAL, "the master key URI names a %s object, not a secret key", u.type);
        memcpy(hmac_label, u.object, strlen(u.object));
        memcpy(hmac_label + strlen(u.object), P11_MASTER_HMAC_SUFFIX, sizeof P11_MASTER_HMAC_SUFFIX);

        _cleanup_(p11_master_freep) struct p11_master *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        m->dl = dlopen(p11_uri_module(&u), RTLD_NOW | RTLD_LOCAL);
        if (!m->dl)
                return log_error_errno(-ENOENT, "cannot load the PKCS#11 module %s", p11_uri_module(&u));
        CK_C_GetFunctionList gfl = (CK_C_GetFunctionList) dlsym(m->dl, "C_GetFunctionList");
        if (!gfl || gfl(&m->f) != CKR_OK || !m->f)
                return log_error_errno(-EINVAL, "%s is not a PKCS#11 module", p11_uri_module(&u));
        CK_C_INITIALIZE_ARGS init = { .flags = CKF_OS_LOCKING_OK };
        CK_RV rv = m->f->C_Initialize(&init);
        if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
                return log_error_errno(-EIO, "the PKCS#11 module failed to start (CKR 0x%lx)", (unsigned long) rv);
        m->initialized = rv == CKR_OK;

        CK_SLOT_ID slot;
        r = find_slot(m, u.token, &slot);
        if (r < 0)
                return r;
        if (m->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &m->session) != CKR_OK)
                return log_error_errno(-EIO, "cannot open a session on the PKCS#11 token");
        m->have_session = true;

        char *pin = NULL;
        r = p11_uri_read_pin(&u, &pin);
        if (r < 0)
                return log_error_errno(r, "cannot read the PIN file %s: %s", u.pin_source[0] ? u.pin_source : "(none)",
                                       r == -EPERM        ? "group or others may read it, or it is not ours"
                                       : r == -EBADMSG    ? "empty or too long"
                                       : !u.pin_source[0] ? "the URI has no pin-source"
                                                          : strerror(-r));
        rv = m->f->C_Login(m->session, CKU_USER, (CK_UTF8CHAR_PTR) pin, strlen(pin));
        sodium_free(pin); /* wipes */
        if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE)
                return log_error_errno(-EACCES, "the PKCS#11 token \"%s\" refused the PIN%s", u.token,
                                       rv == CKR_PIN_LOCKED ? " (it is locked)" : "");
        if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
                return log_error_errno(-EIO, "cannot log in to the PKCS#11 token (CKR 0x%lx)", (unsigned long) rv);

        r = find_key(m, u.object, CKK_AES, &m->aes);
        if (r == -ENOENT && create)
                r = make_key(m, u.object, true, NULL, &m->aes);
        if (r == -ENOENT)
                return log_error_errno(r, "no AES master key \"%s\" on the PKCS#11 token", u.object);
        if (r < 0 || (r = check_key(m, m->aes, u.object)) < 0)
                return r;
        bool made = false;
        r = find_key(m, hmac_label, CKK_GENERIC_SECRET, &m->hmac);
        if (r == -ENOENT && create) {
                r = make_key(m, hmac_label, false, hmac_import, &m->hmac);
                made = true;
        }
        if (r == -ENOENT)
                return log_error_errno(r, "no HMAC master key \"%s\" on the PKCS#11 token", hmac_label);
        if (r < 0 || (r = check_key(m, m->hmac, hmac_label)) < 0)
                return r;
        if (hmac_import && !made && (r = check_imported_hmac(m, hmac_import)) < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int gcm(struct p11_master *m, bool enc, const uint8_t nonce[P11_MASTER_NONCE], const uint8_t *aad,
               size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t expect) {
        CK_GCM_PARAMS p = {
                .pIv = (CK_BYTE_PTR) nonce,
                .ulIvLen = P11_MASTER_NONCE,
                .ulIvBits = P11_MASTER_NONCE * 8,
                .pAAD = (CK_BYTE_PTR) aad,
                .ulAADLen = aad_len,
                .ulTagBits = P11_MASTER_TAG * 8,
        };
        CK_MECHANISM mech = { CKM_AES_GCM, &p, sizeof p };
        CK_ULONG n = out_cap;
        CK_RV rv;
        pthread_mutex_lock(&m->lock);
        if (enc) {
                rv = m->f->C_EncryptInit(m->session, &mech, m->aes);
                if (rv == CKR_OK)
                        rv = m->f->C_Encrypt(m->session, (CK_BYTE_PTR) in, in_len, out, &n);
        } else {
                rv = m->f->C_DecryptInit(m->session, &mech, m->aes);
                if (rv == CKR_OK)
                        rv = m->f->C_Decrypt(m->session, (CK_BYTE_PTR) in, in_len, out, &n);
        }
        pthread_mutex_unlock(&m->lock);
        if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE)
                return -EBADMSG;
        if (rv != CKR_OK)
                return log_error_errno(-EIO, "the PKCS#11 token failed to %s a key (CKR 0x%lx)",
                                       enc ? "wrap" : "unwrap", (unsigned long) rv);
        return n == expect ? 0 : -EIO;
}

int p11_master_seal(struct p11_master *m, const uint8_t nonce[P11_MASTER_NONCE], const uint8_t *aad, size_t aad_len,
                    const uint8_t *in, size_t len, uint8_t *out) {
        if (!m || !nonce || !in || !out)
                return -EINVAL;
        return gcm(m, true, nonce, aad, aad_len, in, len, out, len + P11_MASTER_TAG, len + P11_MASTER_TAG);
}

int p11_master_open_sealed(struct p11_master *m, const uint8_t nonce[P11_MASTER_NONCE], const uint8_t *aad,
                           size_t aad_len, const uint8_t *in, size_t len, uint8_t *out) {
        if (!m || !nonce || !in || !out)
                return -EINVAL;
        uint8_t tmp[256];
        if (len + P11_MASTER_TAG > sizeof tmp)
                return -EINVAL;
        int r = gcm(m, false, nonce, aad, aad_len, in, len + P11_MASTER_TAG, tmp, sizeof tmp, len);
        if (r == 0)
                memcpy(out, tmp, len);
        sodium_memzero(tmp, sizeof tmp);
        return r;
}
