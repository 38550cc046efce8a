/* signer_child.c: the signer process itself: loads the log key and its state file, the CA, TSA
 * and seal keys (making those that are missing), locks itself down (descriptors, limits, a
 * seccomp allow-list) and answers requests, signing only checkpoints that extend the tree it
 * last signed, with a proof it checks, seals of a 32-byte digest at its own time, and
 * timestamps of requests that pass the TSA's checks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "audit/note.h"
#include "seal/cades.h"
#include "seal/pki.h"
#include "seal/tsa.h"
#include "timeutil.h"
#include "fileio.h"
#include "log.h"
#include "seal/signer.h"
#include "seal/signer_backup.h"
#include "seal/signer_internal.h"

/* the descriptors of a locked-down signer */
#define CHANNEL_FD 0
#define FILE_FD 1 /* the only descriptor it may open: a key file it makes or reads */
#define STATE_FD 3
#define KEYS_FD 4 /* DATA/keys, for openat/renameat */
#define SEAL_KEYS_MAX 65536
#define STORE_ORG_ID_LEN 32

/* keys/log.state: two fixed-size slots written in turn, each
 * magic(8) seq(8) size(8) root(32) origin-hash(32) zero(8) | BLAKE2b-256 of the 96 bytes before */
#define STATE_SLOT 128u
#define STATE_BODY 96u
static const uint8_t state_magic[8] = { 'c', 'o', 'f', 's', 'i', 'g', '0', '1' };

struct child_state {
        struct note_signer *key;
        const char *origin;
        uint8_t origin_hash[32];
        char *const *extensions; /* allowed extension-line prefixes */
        size_t n_extensions;
        int state_fd;
        uint64_t file_len;
        /* what it last signed, from its own file */
        bool have;
        uint64_t seq;
        uint64_t size;
        merkle_hash root;

        /* seals and timestamps */
        int keys_fd;
        EVP_PKEY *ca_key, *tsa_key;
        X509 *ca_cert, *tsa_cert;
        STACK_OF(X509) * tsa_issuers; /* an imported TSA certificate's chain (empty: the vault's CA) */
        struct tsa *tsa;
        struct seal_key *seals; /* sorted by org */
        /* PKCS#11 keys: allowed while [keys] pkcs11_path names a directory and the signer is not
         * locked down yet; how many were loaded (they need the module's file access later) */
        const char *const *pkcs11_paths;
        size_t n_pkcs11_paths;
        bool locked;
        unsigned n_token_keys;
        size_t n_seals;
        uint32_t accuracy_ms;
};

struct seal_key {
        char org[STORE_ORG_ID_LEN + 1];
        EVP_PKEY *key;
        X509 *cert;
        STACK_OF(X509) * issuers; /* an imported certificate's chain (NULL or empty: the vault's CA) */
        struct cades_signer *fast; /* its seals, assembled around one signature */
};

static int load_key(const char *keys_dir, struct note_signer **ret) {
        _cleanup_free_ char *path = path_join(keys_dir, "log.key");
        _cleanup_close_ int fd = -1;
        struct stat st;
        char *text;
        ssize_t n;
        int r;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if ((st.st_mode & 077) != 0 || st.st_uid != geteuid())
                return -EPERM; /* readable by others, or not ours: refuse to use it */
        if (st.st_size <= 0 || (uint64_t) st.st_size > SIGNER_KEY_FILE_MAX)
                return -EINVAL;
        text = sodium_malloc(SIGNER_KEY_FILE_MAX + 1);
        if (!text)
                return -ENOMEM;
        n = read_full(fd, text, SIGNER_KEY_FILE_MAX);
        if (n < 0) {
                sodium_free(text);
                return (int) n;
        }
        text[n] = 0;
        if (n > 0 && text[n - 1] == '\n')
                text[--n] = 0;
        if ((size_t) n != strlen(text))
                r = -EINVAL;
        else
                r = note_signer_from_skey(text, ret);
        sodium_free(text); /* wipes */
        return r;
}

static void state_checksum(const uint8_t *slot, uint8_t out[32]) {
        crypto_generichash(out, 32, slot, STATE_BODY, NULL, 0);
}

/* 1 and the slot's content when slot i holds a valid record for this origin, 0 when not. */
static int state_slot_read(struct child_state *st, unsigned i, uint64_t *ret_seq, uint64_t *ret_size,
                           merkle_hash *ret_root) {
        uint8_t slot[STATE_SLOT], sum[32];
        ssize_t n;

        if (st->file_len < (uint64_t) (i + 1) * STATE_SLOT)
                return 0;
        do
                n = pread(st->state_fd, slot, STATE_SLOT, (off_t) i * STATE_SLOT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != STATE_SLOT)
                return 0;
        state_checksum(slot, sum);
        if (memcmp(slot, state_magic, sizeof state_magic) != 0 || sodium_memcmp(sum, slot + STATE_BODY, 32) != 0)
                return 0;
        if (sodium_memcmp(slot + 56, st->origin_hash, 32) != 0)
                return -EXDEV; /* a state file of another log */
        *ret_seq = signer_get_u64(slot + 8);
        *ret_size = signer_get_u64(slot + 16);
        memcpy(ret_root->b, slot + 24, MERKLE_HASH_SIZE);
        return 1;
}

/* Reads keys/log.state: the newest valid slot wins. An empty file is the trust-on-first-use
 * start; so is a file holding only a torn first slot (nothing was ever answered from it: the
 * first answer waits for both slots). A longer file without a valid slot is damage: refuse to
 * start. */
static int state_parse(struct child_state *st, const struct stat *sb) {
        uint64_t seq[2] = { 0 }, size[2] = { 0 };
        merkle_hash root[2];
        int ok[2];

        if (!S_ISREG(sb->st_mode))
                return -EINVAL;
        if (sb->st_size > (off_t) (2 * STATE_SLOT))
                return -EBADMSG;
        st->file_len = (uint64_t) sb->st_size;
        for (unsigned i = 0; i < 2; i++) {
                ok[i] = state_slot_read(st, i, &seq[i], &size[i], &root[i]);
                if (ok[i] < 0)
                        return ok[i];
        }
        if (!ok[0] && !ok[1]) {
                if (st->file_len > STATE_SLOT)
                        return -EBADMSG;
                st->have = false;
                return 0;
        }
        unsigned best = ok[0] && (!ok[1] || seq[0] > seq[1]) ? 0 : 1;
        if (seq[best] == 0)
                return -EBADMSG;
        if (ok[0] && ok[1] && seq[0] == seq[1])
                return -EBADMSG; /* two records of one generation: not written by us */
        if ((seq[best] - 1) % 2 != best)
                return -EBADMSG; /* record seq k lives in slot (k-1) % 2 */
        st->have = true;
        st->seq = seq[best];
        st->size = size[best];
        st->root = root[best];
        return 0;
}

static int state_load(struct child_state *st) {
        struct stat sb;

        if (fstat(st->state_fd, &sb) < 0)
                return negative_errno();
        if (S_ISREG(sb.st_mode) && ((sb.st_mode & 077) != 0 || sb.st_uid != geteuid()))
                return -EPERM;
        return state_parse(st, &sb);
}

int signer_state_file_read(int fd, const char *log_origin, bool *ret_have, uint64_t *ret_size, merkle_hash *ret_root) {
        struct child_state st = { .state_fd = fd };
        struct stat sb;

        if (fd < 0 || !log_origin || !ret_have || !ret_size || !ret_root)
                return -EINVAL;
        crypto_generichash(st.origin_hash, sizeof st.origin_hash, (const uint8_t *) log_origin, strlen(log_origin),
                           NULL, 0);
        if (fstat(fd, &sb) < 0)
                return negative_errno();
        int r = state_parse(&st, &sb);
        if (r < 0)
                return r;
        *ret_have = st.have;
        *ret_size = st.have ? st.size : 0;
        *ret_root = st.have ? st.root : (merkle_hash){};
        return 0;
}

/* Writes record seq into its slot ((seq - 1) % 2) and makes it durable. */
static int state_write(struct child_state *st, uint64_t seq, uint64_t size, const merkle_hash *root) {
        uint8_t slot[STATE_SLOT] = { 0 };
        unsigned i = (unsigned) ((seq - 1) % 2);
        ssize_t n;

        memcpy(slot, state_magic, sizeof state_magic);
        signer_put_u64(slot + 8, seq);
        signer_put_u64(slot + 16, size);
        memcpy(slot + 24, root->b, MERKLE_HASH_SIZE);
        memcpy(slot + 56, st->origin_hash, 32);
        state_checksum(slot, slot + STATE_BODY);
        do
                n = pwrite(st->state_fd, slot, STATE_SLOT, (off_t) i * STATE_SLOT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != STATE_SLOT)
                return -EIO;
        if (fdatasync(st->state_fd) < 0)
                return negative_errno();
        return 0;
}

/* Records a newly signed tree, durably, in the slot not holding the current record. The first
 * record is written to both slots (generations 1 and 2), so that once anything was answered the
 * file is two slots long and a file without a valid slot is always damage, never a new vault. */
static int state_store(struct child_state *st, uint64_t size, const merkle_hash *root) {
        uint64_t seq = st->seq + 1;
        int r = state_write(st, seq, size, root);

        if (r == 0 && !st->have)
                r = state_write(st, ++seq, size, root);
        if (r < 0)
                return r;
        st->seq = seq;
        st->have = true;
        st->size = size;
        st->root = *root;
        return 0;
}

int signer_state_file_create(const char *path, const char *log_origin, uint64_t size, const merkle_hash *root) {
        struct child_state st = { .state_fd = -1 };
        int r;

        if (!path || !log_origin || !root || size == 0)
                return -EINVAL;
        crypto_generichash(st.origin_hash, sizeof st.origin_hash, (const uint8_t *) log_origin, strlen(log_origin),
                           NULL, 0);
        st.state_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (st.state_fd < 0)
                return negative_errno();
        r = state_store(&st, size, root);
        close(st.state_fd);
        if (r < 0)
                (void) unlink(path);
        return r;
}

static int open_state(const char *keys_dir) {
        _cleanup_free_ char *path = path_join(keys_dir, "log.state");
        int fd;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        return fd < 0 ? negative_errno() : fd;
}

/* A PKCS#11 module signs by reading its token's files (SoftHSM2: open by absolute path, a
 * read lock, fstat, read, close, on every signature). With a token key the signer may therefore
 * also open files read-only by path, one at a time on FILE_FD, and Landlock first limits what
 * it may read to keys/ and the [keys] pkcs11_path directories. -EOPNOTSUPP without Landlock. */
static int landlock_reads(const char *keys_dir, const char *const *paths, size_t n) {
        struct landlock_ruleset_attr attr = { .handled_access_fs =
                                                      LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR };
        long rs = syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
        if (rs < 0)
                return log_error_errno(-EOPNOTSUPP, "PKCS#11 keys need Landlock to confine the signer's reads (%s)",
                                       strerror(errno));
        int r = 0;
        for (size_t i = 0; r == 0 && i <= n; i++) {
                const char *p = i < n ? paths[i] : keys_dir;
                int fd = open(p, O_PATH | O_CLOEXEC | O_DIRECTORY);
                if (fd < 0) {
                        r = log_error_errno(negative_errno(), "[keys] pkcs11_path %s: %m", p);
                        break;
                }
                struct landlock_path_beneath_attr pb = { .allowed_access = attr.handled_access_fs, .parent_fd = fd };
                if (syscall(SYS_landlock_add_rule, (int) rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
                        r = negative_errno();
                close(fd);
        }
        if (r == 0 && syscall(SYS_landlock_restrict_self, (int) rs, 0) < 0)
                r = negative_errno();
        close((int) rs);
        return r;
}

static int seccomp_install(bool token_keys);

int signer_seccomp_install(void) {
        return seccomp_install(false);
}

static int seccomp_install(bool token_keys) {
        /* everything else kills the process: the signer has no reason to call it */
        static const struct {
                int nr;
                int fd; /* -1: any argument */
        } allow[] = {
                { SCMP_SYS(recvfrom), CHANNEL_FD },   { SCMP_SYS(sendto), CHANNEL_FD },
                { SCMP_SYS(recvmsg), CHANNEL_FD },    { SCMP_SYS(sendmsg), CHANNEL_FD },
                { SCMP_SYS(read), CHANNEL_FD },       { SCMP_SYS(write), STDERR_FILENO },
                { SCMP_SYS(pwrite64), STATE_FD },     { SCMP_SYS(fdatasync), STATE_FD },
                { SCMP_SYS(mmap), -1 },               { SCMP_SYS(munmap), -1 },
                { SCMP_SYS(mremap), -1 },             { SCMP_SYS(brk), -1 },
                { SCMP_SYS(madvise), -1 },            { SCMP_SYS(mprotect), -1 },
                { SCMP_SYS(mlock), -1 },              { SCMP_SYS(munlock), -1 },
                { SCMP_SYS(clock_gettime), -1 },      { SCMP_SYS(gettimeofday), -1 },
                { SCMP_SYS(getrandom), -1 },          { SCMP_SYS(futex), -1 },
                { SCMP_SYS(rt_sigreturn), -1 },       { SCMP_SYS(exit_group), -1 },
                { SCMP_SYS(exit), -1 },               { SCMP_SYS(sched_yield), -1 },
                { SCMP_SYS(getpid), -1 },             { SCMP_SYS(gettid), -1 },
                { SCMP_SYS(sigaltstack), -1 }, /* sanitizers, at exit */
                { SCMP_SYS(geteuid), -1 },
                /* the key files of a new organisation's seal: made in DATA/keys (KEYS_FD), one
                 * at a time on the one descriptor it may open (FILE_FD) */
                { SCMP_SYS(openat), KEYS_FD },
                { SCMP_SYS(renameat), KEYS_FD },
                { SCMP_SYS(renameat2), KEYS_FD },
                { SCMP_SYS(unlinkat), KEYS_FD },
                { SCMP_SYS(faccessat), KEYS_FD },
                { SCMP_SYS(faccessat2), KEYS_FD },
                { SCMP_SYS(fsync), KEYS_FD },
                { SCMP_SYS(read), FILE_FD },
                { SCMP_SYS(write), FILE_FD },
                { SCMP_SYS(fdatasync), FILE_FD },
                { SCMP_SYS(fstat), FILE_FD },
                { SCMP_SYS(newfstatat), FILE_FD },
                { SCMP_SYS(close), FILE_FD },
                /* the names some 32-bit architectures use for the same calls */
                { SCMP_SYS(mmap2), -1 },              { SCMP_SYS(clock_gettime64), -1 },
                { SCMP_SYS(futex_time64), -1 },
        };
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
        int r;

        if (!ctx)
                return -ENOMEM;
        /* a call of a foreign architecture (or the x32 ABI) kills as well */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        for (size_t i = 0; r == 0 && i < ELEMENTSOF(allow); i++) {
                if (allow[i].fd < 0)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow[i].nr, 0);
                else
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow[i].nr, 1,
                                             SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) allow[i].fd));
                if (r == -EDOM || r == -EOPNOTSUPP)
                        r = 0; /* cannot be filtered that way on this architecture */
        }
        if (r == 0 && token_keys) {
                /* read-only opens by path (Landlock decides which), on FILE_FD: RLIMIT_NOFILE */
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 2,
                                     SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, (uint32_t) AT_FDCWD),
                                     SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, O_RDONLY));
                if (r == 0)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                                             SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) FILE_FD));
        }
        if (r == 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}

static int lock_down(int *fdp, int *state_fdp, int *keys_fdp, const char *keys_dir, struct child_state *st) {
        struct rlimit zero = { 0, 0 }, one_file = { FILE_FD + 1, FILE_FD + 1 };

        /* park the channel on descriptor 0 and the state file on 3 */
        if (*fdp != CHANNEL_FD) {
                if (*state_fdp == CHANNEL_FD) {
                        int k = fcntl(*state_fdp, F_DUPFD_CLOEXEC, 4);
                        if (k < 0)
                                return negative_errno();
                        *state_fdp = k;
                }
                if (dup2(*fdp, CHANNEL_FD) < 0)
                        return negative_errno();
                close(*fdp);
                *fdp = CHANNEL_FD;
        }
        if (*state_fdp != STATE_FD) {
                if (dup2(*state_fdp, STATE_FD) < 0)
                        return negative_errno();
                close(*state_fdp);
                *state_fdp = STATE_FD;
        }

        if (*keys_fdp != KEYS_FD) {
                if (dup2(*keys_fdp, KEYS_FD) < 0)
                        return negative_errno();
                close(*keys_fdp);
                *keys_fdp = KEYS_FD;
        }

        /* every descriptor but the channel, stderr (for the log), the state file and keys/ */
        close(STDOUT_FILENO);
        if (syscall(SYS_close_range, KEYS_FD + 1u, ~0u, 0u) < 0) {
                long max = sysconf(_SC_OPEN_MAX); /* kernels before 5.9 */
                for (long fd = KEYS_FD + 1; fd < (max > 0 ? max : 65536); fd++)
                        close((int) fd);
        }

        if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        /* before the descriptor limit: it opens the directories it allows */
        if (st->n_token_keys > 0) {
                int r = landlock_reads(keys_dir, st->pkcs11_paths, st->n_pkcs11_paths);
                if (r < 0)
                        return r;
        }
        /* RLIMIT_NOFILE 2: no new descriptor but FILE_FD (0 is taken), whatever the filter allows */
        if (setrlimit(RLIMIT_CORE, &zero) < 0 || setrlimit(RLIMIT_NOFILE, &one_file) < 0 ||
            setrlimit(RLIMIT_NPROC, &zero) < 0)
                return negative_errno();
        st->locked = true;
        return seccomp_install(st->n_token_keys > 0);
}

/* Every extension line must start with a configured prefix, each prefix at most once. */
static int check_extensions(const struct child_state *st, const char *body, size_t len) {
        const char *p = body, *end = body + len;
        bool used[SIGNER_MAX_EXTENSIONS] = { false };

        for (unsigned line = 0; p < end; line++) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl)
                        return -EBADMSG;
                if (line >= 3) {
                        size_t k, n = (size_t) (nl - p);
                        for (k = 0; k < st->n_extensions; k++) {
                                size_t pl = strlen(st->extensions[k]);
                                if (!used[k] && n >= pl && memcmp(p, st->extensions[k], pl) == 0)
                                        break;
                        }
                        if (k == st->n_extensions)
                                return -EPERM;
                        used[k] = true;
                }
                p = nl + 1;
        }
        return 0;
}

/* Payload: body length (u32), the checkpoint body, then the consistency proof from the tree the
 * signer last signed to this one (32-byte hashes). */
static int handle_sign(struct child_state *st, const uint8_t *msg, size_t msg_len, char **ret_line) {
        _cleanup_free_ char *origin = NULL;
        uint32_t body_len;
        const char *body;
        const merkle_hash *proof;
        size_t proof_len;
        uint64_t size;
        merkle_hash root;
        int r;

        if (msg_len < 4)
                return -EBADMSG;
        memcpy(&body_len, msg, 4);
        if (body_len > msg_len - 4 || (msg_len - 4 - body_len) % MERKLE_HASH_SIZE != 0)
                return -EBADMSG;
        body = (const char *) msg + 4;
        proof_len = (msg_len - 4 - body_len) / MERKLE_HASH_SIZE;
        if (proof_len > MERKLE_MAX_PROOF)
                return -EBADMSG;
        merkle_hash proof_buf[MERKLE_MAX_PROOF];
        if (proof_len)
                memcpy(proof_buf, body + body_len, proof_len * MERKLE_HASH_SIZE);
        proof = proof_buf;

        r = checkpoint_parse(body, body_len, &origin, &size, &root);
        if (r < 0)
                return -EBADMSG;
        if (strcmp(origin, st->origin) != 0)
                return -EPERM;
        r = check_extensions(st, body, body_len);
        if (r < 0)
                return r;
        if (st->have) {
                if (size < st->size)
                        return -EPERM; /* rollback */
                if (size == st->size) {
                        if (proof_len != 0 || sodium_memcmp(root.b, st->root.b, MERKLE_HASH_SIZE) != 0)
                                return -EPERM; /* fork: two roots for one size */
                } else if (st->size > 0 &&
                           merkle_verify_consistency(st->size, size, &st->root, &root, proof, proof_len) < 0)
                        return -EPERM; /* the new tree does not extend the one it signed */
        } else if (proof_len != 0)
                return -EPERM; /* first checkpoint: nothing to prove against */

        /* on disk before the answer: a restarted signer remembers it */
        if (!st->have || size > st->size) {
                r = state_store(st, size, &root);
                if (r < 0)
                        return r;
        }
        return note_signature_line(st->key, body, body_len, ret_line);
}

static int handle_state(const struct child_state *st, int fd) {
        uint8_t out[1 + 8 + MERKLE_HASH_SIZE] = { 0 };

        out[0] = st->have;
        if (st->have) {
                signer_put_u64(out + 1, st->size);
                memcpy(out + 9, st->root.b, MERKLE_HASH_SIZE);
        }
        return signer_send_msg(fd, 0, out, sizeof out);
}

/* ---- seals and timestamps ---- */

static int seal_cmp(const void *a, const void *b) {
        return strcmp(((const struct seal_key *) a)->org, ((const struct seal_key *) b)->org);
}

static struct seal_key *seal_find(struct child_state *st, const char *org) {
        struct seal_key k;
        if (st->n_seals == 0)
                return NULL;
        snprintf(k.org, sizeof k.org, "%s", org);
        return bsearch(&k, st->seals, st->n_seals, sizeof *st->seals, seal_cmp);
}

static int seal_add(struct child_state *st, const char *org, EVP_PKEY *key, X509 *cert, STACK_OF(X509) * issuers) {
        struct seal_key *v;

        struct cades_signer *fast = NULL;
        int r;

        if (st->n_seals >= SEAL_KEYS_MAX)
                return -ENOSPC;
        r = cades_signer_new(key, cert, &fast);
        if (r < 0)
                return r;
        v = realloc(st->seals, (st->n_seals + 1) * sizeof *v);
        if (!v) {
                cades_signer_free(fast);
                return -ENOMEM;
        }
        st->seals = v;
        v[st->n_seals] = (struct seal_key){ .key = key, .cert = cert, .issuers = issuers, .fast = fast };
        snprintf(v[st->n_seals].org, sizeof v[st->n_seals].org, "%s", org);
        st->n_seals++;
        qsort(st->seals, st->n_seals, sizeof *st->seals, seal_cmp);
        return 0;
}

/* 32 lower-case hex characters. */
static bool org_id_ok(const uint8_t *p) {
        for (size_t i = 0; i < STORE_ORG_ID_LEN; i++)
                if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
                        return false;
        return true;
}

/* The organisation's seal key: in memory, else from its files. -ENOKEY when it has none yet. */
static int seal_get(struct child_state *st, const char *org, struct seal_key **ret) {
        char kn[64], cn[64];
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        int r;

        *ret = seal_find(st, org);
        if (*ret)
                return 0;
        r = pki_seal_names(org, kn, cn);
        if (r < 0)
                return r;
        bool token = false;
        r = pki_load_pair_ex(st->keys_fd, kn, cn, st->n_pkcs11_paths > 0 && !st->locked, &key, &cert, &token);
        if (r == -ENOENT)
                return -ENOKEY;
        if (r == -EOPNOTSUPP)
                log_error(
                        "keys/%s names a PKCS#11 key: the signer loads those at its start, with [keys] pkcs11_path set",
                        kn);
        if (r < 0) {
                log_error("keys/%s cannot be used: %s", kn, strerror(-r));
                return r;
        }
        st->n_token_keys += token;
        STACK_OF(X509) *issuers = NULL;
        r = pki_load_issuers(st->keys_fd, cn, &issuers);
        if (r >= 0)
                r = seal_add(st, org, key, cert, issuers);
        if (r < 0) {
                EVP_PKEY_free(key);
                X509_free(cert);
                sk_X509_pop_free(issuers, X509_free);
                return r;
        }
        *ret = seal_find(st, org);
        return 0;
}

/* Payload: organisation id (32 hex), SHA-256 of the document (32), signing time (i64 ms, the
 * server's clock: refused unless within the TSA accuracy of the signer's own). Answer: DER. */
static int handle_seal(struct child_state *st, const uint8_t *msg, size_t len, uint8_t **ret, size_t *ret_len) {
        char org[STORE_ORG_ID_LEN + 1];
        struct seal_key *k;
        int64_t asked, now = now_ms();
        int r;

        if (len != STORE_ORG_ID_LEN + 32 + 8 || !org_id_ok(msg))
                return -EBADMSG;
        memcpy(org, msg, STORE_ORG_ID_LEN);
        org[STORE_ORG_ID_LEN] = 0;
        memcpy(&asked, msg + STORE_ORG_ID_LEN + 32, 8);
        if (asked < now - (int64_t) st->accuracy_ms || asked > now + (int64_t) st->accuracy_ms)
                return -ERANGE;
        r = seal_get(st, org, &k);
        if (r < 0)
                return r;
        /* the seal certificate only: verifiers bring the CA (keys/ca.pem), and each upload parses less */
        return cades_signer_sign(k->fast, msg + STORE_ORG_ID_LEN, now / 1000, ret, ret_len, NULL, NULL);
}

/* Payload: count (u32, 1..SIGNER_SEAL_BATCH_MAX), then per document the 72 bytes of a seal
 * request and a nonce (8). Answer, per document: status (i32), then when 0 the seal (u32 length,
 * DER) and the TSA's reply (u32 length, DER) to a query over its signature value with that nonce:
 * a B-T seal's parts in one round trip, each request checked as a lone one would be. */
static int handle_seal_batch(struct child_state *st, const uint8_t *msg, size_t len, struct buf *out) {
        uint32_t n;
        int r;

        if (len < 4)
                return -EBADMSG;
        memcpy(&n, msg, 4);
        if (n == 0 || n > SIGNER_SEAL_BATCH_MAX || len != 4 + (size_t) n * SIGNER_SEAL_ITEM)
                return -EBADMSG;
        for (uint32_t i = 0; i < n; i++) {
                const uint8_t *item = msg + 4 + (size_t) i * SIGNER_SEAL_ITEM;
                uint8_t *cms = NULL, *query = NULL, *reply = NULL, sig[CADES_SIG_MAX];
                size_t cms_len = 0, query_len = 0, reply_len = 0, sig_len = 0;
                char org[STORE_ORG_ID_LEN + 1];
                struct seal_key *k;
                int64_t asked, now = now_ms();
                int32_t status = 0;

                memcpy(&asked, item + STORE_ORG_ID_LEN + 32, 8);
                if (!org_id_ok(item))
                        status = -EBADMSG;
                else if (asked < now - (int64_t) st->accuracy_ms || asked > now + (int64_t) st->accuracy_ms)
                        status = -ERANGE;
                else {
                        memcpy(org, item, STORE_ORG_ID_LEN);
                        org[STORE_ORG_ID_LEN] = 0;
                        status = seal_get(st, org, &k);
                }
                if (status == 0)
                        status = cades_signer_sign(k->fast, item + STORE_ORG_ID_LEN, now / 1000, &cms, &cms_len, sig,
                                                   &sig_len);
                if (status == 0)
                        status = cades_ts_query_der(sig, sig_len, item + STORE_ORG_ID_LEN + 40, &query, &query_len);
                if (status == 0)
                        status = tsa_respond(st->tsa, query, query_len, &reply, &reply_len);
                uint32_t l1 = (uint32_t) cms_len, l2 = (uint32_t) reply_len;
                r = buf_append(out, &status, 4);
                if (r >= 0 && status == 0 && (r = buf_append(out, &l1, 4)) >= 0 && (r = buf_append(out, cms, cms_len)) >= 0 &&
                    (r = buf_append(out, &l2, 4)) >= 0)
                        r = buf_append(out, reply, reply_len);
                OPENSSL_free(cms);
                OPENSSL_free(query);
                OPENSSL_free(reply);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* PEM of cert then its imported chain, or else the vault's CA certificate. */
static int chain_pem(struct child_state *st, X509 *cert, STACK_OF(X509) * issuers, struct buf *b) {
        int r = pki_cert_pem(cert, b);
        if (!issuers || sk_X509_num(issuers) == 0)
                return r < 0 ? r : pki_cert_pem(st->ca_cert, b);
        for (int i = 0; r >= 0 && i < sk_X509_num(issuers); i++)
                r = pki_cert_pem(sk_X509_value(issuers, i), b);
        return r;
}

/* Payload: organisation id (32 hex) then its name (for a new certificate's subject). Answer:
 * the seal certificate chain (PEM), made first when the organisation has none. */
static int handle_seal_cert(struct child_state *st, const uint8_t *msg, size_t len, struct buf *out) {
        char org[STORE_ORG_ID_LEN + 1], name[PKI_ORG_NAME_MAX + 1], kn[64], cn[64];
        struct seal_key *k;
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        int r;

        if (len <= STORE_ORG_ID_LEN || !org_id_ok(msg) ||
            !pki_org_name_is_valid((const char *) msg + STORE_ORG_ID_LEN, len - STORE_ORG_ID_LEN))
                return -EBADMSG;
        memcpy(org, msg, STORE_ORG_ID_LEN);
        org[STORE_ORG_ID_LEN] = 0;
        memcpy(name, msg + STORE_ORG_ID_LEN, len - STORE_ORG_ID_LEN);
        name[len - STORE_ORG_ID_LEN] = 0;
        r = seal_get(st, org, &k);
        if (r == -ENOKEY) {
                r = pki_seal_names(org, kn, cn);
                if (r >= 0)
                        r = pki_make_leaf(PKI_LEAF_SEAL, name, name, st->ca_key, st->ca_cert, PKI_LEAF_DAYS, &key,
                                          &cert);
                if (r >= 0)
                        r = pki_store_pair(st->keys_fd, kn, cn, key, cert);
                if (r >= 0)
                        r = seal_add(st, org, key, cert, NULL);
                if (r < 0) {
                        EVP_PKEY_free(key);
                        X509_free(cert);
                        return r;
                }
                log_info("made the seal key and certificate of organisation %s (keys/%s)", org, cn);
                k = seal_find(st, org);
        }
        if (r < 0)
                return r;
        return chain_pem(st, k->cert, k->issuers, out);
}

/* With [keys] pkcs11_path: every organisation's seal key now, before the lock-down, as a token
 * key cannot be loaded after it (the module must be loaded and logged in first). */
static int preload_seals(struct child_state *st) {
        int dfd = fcntl(st->keys_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        struct dirent *e;
        int r = 0;
        if (!d) {
                if (dfd >= 0)
                        close(dfd);
                return negative_errno();
        }
        while (r == 0 && (e = readdir(d))) {
                size_t n = strlen(e->d_name);
                char org[STORE_ORG_ID_LEN + 1];
                struct seal_key *k;
                if (n != 5 + STORE_ORG_ID_LEN + 4 || strncmp(e->d_name, "seal-", 5) != 0 ||
                    strcmp(e->d_name + n - 4, ".key") != 0 || !org_id_ok((const uint8_t *) e->d_name + 5))
                        continue;
                memcpy(org, e->d_name + 5, STORE_ORG_ID_LEN);
                org[STORE_ORG_ID_LEN] = 0;
                r = seal_get(st, org, &k);
                if (r == -ENOKEY)
                        r = 0;
        }
        closedir(d);
        return r;
}

/* The CA and TSA pairs: loaded, or made when the vault has none yet (a new vault, or one made
 * before seals existed). */
static int pki_setup(struct child_state *st, const struct signer_seal_options *o) {
        int r = pki_load_pair(st->keys_fd, PKI_CA_KEY, PKI_CA_CERT, &st->ca_key, &st->ca_cert);
        if (r == -ENOENT) {
                r = pki_make_ca(o->ca_name, &st->ca_key, &st->ca_cert);
                if (r >= 0)
                        r = pki_store_pair(st->keys_fd, PKI_CA_KEY, PKI_CA_CERT, st->ca_key, st->ca_cert);
                if (r >= 0)
                        log_info("made the vault's CA (keys/%s)", PKI_CA_CERT);
        }
        if (r < 0)
                return log_error_errno(r, "keys/%s: %s", PKI_CA_KEY, strerror(-r));
        bool tsa_token = false;
        r = pki_load_pair_ex(st->keys_fd, PKI_TSA_KEY, PKI_TSA_CERT, st->n_pkcs11_paths > 0, &st->tsa_key,
                             &st->tsa_cert, &tsa_token);
        st->n_token_keys += tsa_token;
        if (r == -ENOENT) {
                r = pki_make_leaf(PKI_LEAF_TSA, o->tsa_name, NULL, st->ca_key, st->ca_cert, PKI_LEAF_DAYS, &st->tsa_key,
                                  &st->tsa_cert);
                if (r >= 0)
                        r = pki_store_pair(st->keys_fd, PKI_TSA_KEY, PKI_TSA_CERT, st->tsa_key, st->tsa_cert);
                if (r >= 0)
                        log_info("made the TSA certificate (keys/%s)", PKI_TSA_CERT);
        }
        if (r >= 0)
                r = pki_load_issuers(st->keys_fd, PKI_TSA_CERT, &st->tsa_issuers);
        if (r < 0)
                return log_error_errno(r, "keys/%s: %s", PKI_TSA_KEY, strerror(-r));
        st->accuracy_ms = o->tsa_accuracy_ms;
        /* certReq puts the TSA certificate in the token, not the CA: verifiers bring it */
        r = tsa_new(st->tsa_key, st->tsa_cert, NULL,
                    &(struct tsa_options){ .policy_oid = o->tsa_policy, .accuracy_ms = o->tsa_accuracy_ms }, &st->tsa);
        if (r < 0)
                return log_error_errno(r, "the TSA cannot start (policy %s): %s", o->tsa_policy, strerror(-r));
        return 0;
}

/* Runs once, before the seccomp filter, every library path a request takes later, so that none
 * loads a configuration file or a provider once the filter forbids opening files. */
static int warm_up(struct child_state *st) {
        static const uint8_t query[] = {
                0x30, 0x36, 0x02, 0x01, 0x01, 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20
        }; /* SHA-256 imprint of 32 zero bytes follows */
        uint8_t req[sizeof query + 32] = { 0 }, digest[32] = { 0 }, *out = NULL;
        size_t n = 0;
        EVP_PKEY *k = NULL;
        X509 *c = NULL;
        BIO *bio;
        int r;

        memcpy(req, query, sizeof query);
        r = tsa_respond(st->tsa, req, sizeof req, &out, &n);
        if (r >= 0) {
                /* granted, or the TSA cannot sign: refuse to start rather than reject every query */
                const unsigned char *p = out;
                TS_RESP *resp = d2i_TS_RESP(NULL, &p, (long) n);
                if (!resp || ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp))) !=
                                     TS_STATUS_GRANTED)
                        r = -EINVAL;
                TS_RESP_free(resp);
        }
        OPENSSL_free(out);
        if (r >= 0) {
                struct cades_signer *fast = NULL;
                r = cades_signer_new(st->tsa_key, st->tsa_cert, &fast); /* runs cades_sign() too */
                if (r >= 0)
                        r = cades_signer_sign(fast, digest, 0, &out, &n, NULL, NULL);
                OPENSSL_free(out);
                cades_signer_free(fast);
        }
        if (r >= 0)
                r = pki_make_leaf(PKI_LEAF_SEAL, "warm-up", "warm-up", st->ca_key, st->ca_cert, 1, &k, &c);
        if (r >= 0) {
                bio = BIO_new(BIO_s_secmem());
                if (!bio || PEM_write_bio_PKCS8PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1 ||
                    PEM_write_bio_X509(bio, c) != 1)
                        r = -ENOMEM;
                else {
                        (void) BIO_reset(bio);
                        (void) BIO_puts(bio, "x");
                        EVP_PKEY *k2 = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL); /* fails, as wanted */
                        EVP_PKEY_free(k2);
                        (void) X509_check_private_key(c, k);
                }
                BIO_free(bio);
        }
        EVP_PKEY_free(k);
        X509_free(c);
        ERR_clear_error();
        return r;
}

static void pki_free(struct child_state *st) {
        for (size_t i = 0; i < st->n_seals; i++) {
                cades_signer_free(st->seals[i].fast);
                EVP_PKEY_free(st->seals[i].key);
                X509_free(st->seals[i].cert);
                sk_X509_pop_free(st->seals[i].issuers, X509_free);
        }
        sk_X509_pop_free(st->tsa_issuers, X509_free);
        free(st->seals);
        tsa_free(st->tsa);
        EVP_PKEY_free(st->ca_key);
        EVP_PKEY_free(st->tsa_key);
        X509_free(st->ca_cert);
        X509_free(st->tsa_cert);
}

static int send_owned(int fd, int r, uint8_t *p, size_t n) {
        int k = r < 0 ? signer_send_msg(fd, r, NULL, 0) : signer_send_msg(fd, 0, p, n);
        OPENSSL_free(p);
        return k;
}

static int send_buf(int fd, int r, struct buf *b) {
        int k = r < 0 ? signer_send_msg(fd, r, NULL, 0) : signer_send_msg(fd, 0, b->data, b->len);
        buf_free(b);
        return k;
}

/* A Ctrl-C in the terminal reaches the whole process group: the server stops cleanly and
 * signs a last checkpoint, so the signer and its supervisor leave only with it. */
void signer_ignore_terminal_signals(void) {
        (void) signal(SIGINT, SIG_IGN);
        (void) signal(SIGQUIT, SIG_IGN);
        (void) signal(SIGHUP, SIG_IGN);
}

_noreturn_ void signer_child_main(int fd, const char *keys_dir, const char *origin, char *const *extensions,
                                  size_t n_extensions, pid_t parent) {
        struct child_state st = { .origin = origin, .extensions = extensions, .n_extensions = n_extensions,
                                  .state_fd = -1, .keys_fd = -1 };
        struct signer_seal_options so;
        _cleanup_free_ char *vkey = NULL;
        uint8_t *buf, *backup_sk = NULL;
        int r;

        log_set_component("signer");
        (void) prctl(PR_SET_NAME, "coffre-signer");
        signer_ignore_terminal_signals();
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
        crypto_generichash(st.origin_hash, sizeof st.origin_hash, (const uint8_t *) origin, strlen(origin), NULL, 0);
        r = load_key(keys_dir, &st.key);
        if (r == 0 && strcmp(note_signer_name(st.key), origin) != 0)
                r = -EINVAL; /* the log key is named after the log */
        if (r == 0)
                r = note_signer_vkey(st.key, &vkey);
        if (r == 0) {
                st.state_fd = open_state(keys_dir);
                if (st.state_fd < 0) {
                        r = st.state_fd;
                        log_error("cannot open %s/log.state: %s", keys_dir, strerror(-r));
                } else if ((r = state_load(&st)) < 0)
                        log_error("%s/log.state is not a state file of this log (%s): refusing to sign", keys_dir,
                                  strerror(-r));
        }
        if (r == 0) {
                signer_seal_options_get(&so);
                st.pkcs11_paths = so.pkcs11_paths;
                st.n_pkcs11_paths = so.n_pkcs11_paths;
                st.keys_fd = open(keys_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                r = st.keys_fd < 0 ? negative_errno() : 0;
                if (r == 0 && OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1)
                        r = -EIO;
                if (r == 0)
                        r = pki_setup(&st, &so);
                if (r == 0 && (r = warm_up(&st)) < 0)
                        log_error("the seal and TSA keys do not work: %s", strerror(-r));
                if (r == 0 && st.n_pkcs11_paths > 0)
                        r = preload_seals(&st);
        }
        if (r == 0 && (r = signer_backup_child_load(keys_dir, &backup_sk)) < 0)
                log_error("cannot load %s/backup.key: %s", keys_dir, strerror(-r));
        buf = malloc(SIGNER_MAX_MSG + 1);
        if (r == 0 && !buf)
                r = -ENOMEM;
        /* the log lines are JSON objects, and jansson seeds its hash tables from /dev/urandom at
         * the first object of a process: seeded here, before the filter forbids that open (a
         * parent that made no JSON object before the fork left it unseeded) */
        json_object_seed(0);
        if (r == 0)
                r = lock_down(&fd, &st.state_fd, &st.keys_fd, keys_dir, &st);
        if (r < 0) {
                (void) signer_send_msg(fd, r, NULL, 0);
                _exit(1);
        }
        if (signer_send_msg(fd, 0, vkey, strlen(vkey)) < 0)
                _exit(1);

        for (;;) {
                ssize_t n = signer_recv_msg(fd, buf);
                char *line = NULL;
                int32_t type;

                /* n == 0 is an empty packet or the end of the stream: either way the answer
                 * below is refused (EPIPE) once the parent is gone, which ends the loop */
                if (n == -EMSGSIZE || (n >= 0 && (size_t) n < SIGNER_HDR)) {
                        if (signer_send_msg(fd, n < 0 ? -EMSGSIZE : -EBADMSG, NULL, 0) < 0)
                                break;
                        continue;
                }
                if (n < 0)
                        break;
                type = signer_get_i32(buf);
                switch (type) {
                case SIGNER_MSG_GET_LOG_VKEY:
                        r = n == SIGNER_HDR ? signer_send_msg(fd, 0, vkey, strlen(vkey)) : signer_send_msg(fd, -EBADMSG, NULL, 0);
                        break;
                case SIGNER_MSG_SIGN_CHECKPOINT:
                        r = handle_sign(&st, buf + SIGNER_HDR, (size_t) n - SIGNER_HDR, &line);
                        r = r < 0 ? signer_send_msg(fd, r, NULL, 0) : signer_send_msg(fd, 0, line, strlen(line));
                        free(line);
                        break;
                case SIGNER_MSG_SIGN_MANIFEST: {
                        uint8_t sig[SIGNER_BACKUP_SIG_SIZE];
                        r = signer_backup_child_sign(backup_sk, buf + SIGNER_HDR, (size_t) n - SIGNER_HDR, sig);
                        r = r < 0 ? signer_send_msg(fd, r, NULL, 0) : signer_send_msg(fd, 0, sig, sizeof sig);
                        break;
                }
                case SIGNER_MSG_GET_STATE:
                        r = n == SIGNER_HDR ? handle_state(&st, fd) : signer_send_msg(fd, -EBADMSG, NULL, 0);
                        break;
                case SIGNER_MSG_SEAL: {
                        uint8_t *out = NULL;
                        size_t out_len = 0;
                        r = handle_seal(&st, buf + SIGNER_HDR, (size_t) n - SIGNER_HDR, &out, &out_len);
                        r = send_owned(fd, r, out, out_len);
                        break;
                }
                case SIGNER_MSG_TIMESTAMP: {
                        uint8_t *out = NULL;
                        size_t out_len = 0;
                        r = tsa_respond(st.tsa, buf + SIGNER_HDR, (size_t) n - SIGNER_HDR, &out, &out_len);
                        r = send_owned(fd, r, out, out_len);
                        break;
                }
                case SIGNER_MSG_SEAL_CERT: {
                        struct buf b;
                        buf_init(&b, SIGNER_MAX_MSG);
                        r = handle_seal_cert(&st, buf + SIGNER_HDR, (size_t) n - SIGNER_HDR, &b);
                        r = send_buf(fd, r, &b);
                        break;
                }
                case SIGNER_MSG_SEAL_BATCH: {
                        struct buf b;
                        buf_init(&b, SIGNER_MAX_MSG - SIGNER_HDR);
                        r = handle_seal_batch(&st, buf + SIGNER_HDR, (size_t) n - SIGNER_HDR, &b);
                        r = send_buf(fd, r, &b);
                        break;
                }
                case SIGNER_MSG_TSA_CERT: {
                        struct buf b;
                        buf_init(&b, SIGNER_MAX_MSG);
                        r = n == SIGNER_HDR ? chain_pem(&st, st.tsa_cert, st.tsa_issuers, &b) : -EBADMSG;
                        r = send_buf(fd, r, &b);
                        break;
                }
                default:
                        r = signer_send_msg(fd, -EOPNOTSUPP, NULL, 0);
                }
                if (r < 0)
                        break;
        }
        note_signer_free(st.key);
        pki_free(&st);
        signer_backup_child_free(backup_sk);
        _exit(0);
}
