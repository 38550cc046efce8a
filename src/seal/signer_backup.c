/* signer_backup.c: the backup manifest key: its files, the shape check the signer applies,
 * signing inside the signer process and verification. */
#include "seal/signer_backup.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "hex.h"
#include "seal/signer.h"

#define CTX_LEN (sizeof SIGNER_MANIFEST_CONTEXT - 1)

int signer_backup_key_init(const char *keys_dir) {
        _cleanup_free_ char *kp = path_join(keys_dir, "backup.key"), *pp = path_join(keys_dir, "backup.pub");
        uint8_t seed[32], pk[32], *sk;
        char hex[65];
        int r;

        if (!kp || !pp)
                return -ENOMEM;
        if (access(kp, F_OK) == 0)
                return -EEXIST;
        sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
        if (!sk)
                return -ENOMEM;
        randombytes_buf(seed, sizeof seed);
        crypto_sign_seed_keypair(pk, sk, seed);
        sodium_free(sk);
        r = write_file_atomic(kp, seed, sizeof seed, 0600, 1);
        sodium_memzero(seed, sizeof seed);
        if (r < 0)
                return r;
        hex_encode(pk, sizeof pk, hex);
        hex[64] = '\n';
        return write_file_atomic(pp, hex, 65, 0644, 0);
}

int signer_backup_pub(const char *keys_dir, uint8_t ret_pub[SIGNER_BACKUP_PUB_SIZE]) {
        _cleanup_free_ char *pp = path_join(keys_dir, "backup.pub");
        _cleanup_buf_ struct buf b = {};
        int r;

        if (!pp)
                return -ENOMEM;
        buf_init(&b, 256);
        r = read_file(pp, 256, &b);
        if (r < 0)
                return r;
        if (b.len < 64 || (b.len > 64 && (b.len != 65 || b.data[64] != '\n')))
                return -EBADMSG;
        b.data[64] = 0;
        return hex_decode((const char *) b.data, ret_pub, SIGNER_BACKUP_PUB_SIZE) < 0 ? -EBADMSG : 0;
}

/* header: magic (8) | version u32 | series u8 | 3 zero bytes | time u64 | audit size u64 |
 * audit root (32) | repository id (16) | body id (32) | body length u64, all LE */
int signer_manifest_check(const uint8_t *h, size_t len, int64_t now) {
        static const uint8_t zero[3] = { 0 };
        uint64_t t = 0, body = 0;
        uint32_t version = 0;

        if (!h || len != SIGNER_MANIFEST_HEADER_SIZE || memcmp(h, SIGNER_MANIFEST_MAGIC, 8) != 0)
                return -EBADMSG;
        for (unsigned i = 0; i < 4; i++)
                version |= (uint32_t) h[8 + i] << (8 * i);
        for (unsigned i = 0; i < 8; i++) {
                t |= (uint64_t) h[16 + i] << (8 * i);
                body |= (uint64_t) h[112 + i] << (8 * i);
        }
        if (version != SIGNER_MANIFEST_VERSION || (h[12] != 1 && h[12] != 2) || memcmp(h + 13, zero, 3) != 0)
                return -EBADMSG;
        if (body < 28 || body > SIGNER_MANIFEST_BODY_MAX)
                return -EBADMSG;
        if (t > (uint64_t) INT64_MAX || (int64_t) t > now + SIGNER_MANIFEST_SKEW_SEC ||
            (int64_t) t < now - SIGNER_MANIFEST_SKEW_SEC)
                return -EPERM; /* a date the signer's clock does not vouch for */
        return 0;
}

static int signed_message(const uint8_t *header, size_t len, uint8_t *out) {
        if (len != SIGNER_MANIFEST_HEADER_SIZE)
                return -EINVAL;
        memcpy(out, SIGNER_MANIFEST_CONTEXT, CTX_LEN);
        memcpy(out + CTX_LEN, header, len);
        return 0;
}

int signer_manifest_verify(const uint8_t pub[SIGNER_BACKUP_PUB_SIZE], const uint8_t *header, size_t len,
                           const uint8_t sig[SIGNER_BACKUP_SIG_SIZE]) {
        uint8_t m[CTX_LEN + SIGNER_MANIFEST_HEADER_SIZE];

        if (signed_message(header, len, m) < 0)
                return -EBADMSG;
        return crypto_sign_verify_detached(sig, m, sizeof m, pub) == 0 ? 0 : -EBADMSG;
}

int signer_backup_child_load(const char *keys_dir, uint8_t **ret_sk) {
        _cleanup_free_ char *kp = path_join(keys_dir, "backup.key");
        _cleanup_close_ int fd = -1;
        uint8_t pk[32], *seed, *sk;
        struct stat st;
        ssize_t n;

        if (!kp)
                return -ENOMEM;
        *ret_sk = NULL;
        fd = open(kp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_size != 32)
                return -EINVAL;
        if ((st.st_mode & 077) != 0 || st.st_uid != geteuid())
                return -EPERM;
        seed = sodium_malloc(32);
        sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
        if (!seed || !sk) {
                sodium_free(seed);
                sodium_free(sk);
                return -ENOMEM;
        }
        n = read_full(fd, seed, 32);
        if (n != 32) {
                sodium_free(seed);
                sodium_free(sk);
                return n < 0 ? (int) n : -EINVAL;
        }
        crypto_sign_seed_keypair(pk, sk, seed);
        sodium_free(seed);
        *ret_sk = sk;
        return 0;
}

int signer_backup_child_sign(const uint8_t *sk, const uint8_t *msg, size_t len,
                             uint8_t ret_sig[SIGNER_BACKUP_SIG_SIZE]) {
        uint8_t m[CTX_LEN + SIGNER_MANIFEST_HEADER_SIZE];
        struct timespec ts;
        int r;

        if (!sk)
                return -ENOKEY;
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -EIO;
        r = signer_manifest_check(msg, len, (int64_t) ts.tv_sec);
        if (r < 0)
                return r == -EBADMSG ? -EBADMSG : -EPERM;
        r = signed_message(msg, len, m);
        if (r < 0)
                return r;
        crypto_sign_detached(ret_sig, NULL, m, sizeof m, sk);
        return 0;
}

void signer_backup_child_free(uint8_t *sk) {
        sodium_free(sk);
}
