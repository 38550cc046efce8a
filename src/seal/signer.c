/* signer.c: the signer process and its parent-side client. The child is forked early, keeps the
 * log key and the memory of what it signed to itself, and only signs checkpoints that pass its
 * own checks; the parent talks to it through one SOCK_SEQPACKET socket, one request at a time.
 *
 * Process tree: the server forks a small supervisor once, before any thread starts; the
 * supervisor forks the signer and forks a new one, with back-off, whenever the signer dies.
 * Each signer reads keys/log.key and opens keys/log.state itself, before it locks itself down,
 * so neither the server nor the supervisor ever holds the key. The supervisor hands the server
 * the channel of each new signer over a control socket (SCM_RIGHTS). */
#include "seal/signer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit/note.h"
#include "buf.h"
#include "fileio.h"
#include "log.h"

#define HDR 4u
#define KEY_FILE_MAX 4096u
#define REPLY_TIMEOUT_SEC 30
#define MAX_EXTENSIONS 8

/* the descriptors of a locked-down signer */
#define CHANNEL_FD 0
#define STATE_FD 3

/* keys/log.state: two fixed-size slots written in turn, each
 * magic(8) seq(8) size(8) root(32) origin-hash(32) zero(8) | BLAKE2b-256 of the 96 bytes before */
#define STATE_SLOT 128u
#define STATE_BODY 96u
static const uint8_t state_magic[8] = { 'c', 'o', 'f', 's', 'i', 'g', '0', '1' };

/* back-off between restarts of a signer that died */
#define RESTART_MIN_MS 100
#define RESTART_MAX_MS 5000
#define RESTART_STABLE_MS 10000 /* a signer that ran this long resets the back-off */

struct signer {
        int fd;  /* channel to the current signer; -1 while there is none */
        int ctl; /* control socket to the supervisor: new channels arrive there */
        pid_t sup_pid;
        pid_t pid; /* the current signer */
        pthread_mutex_t lock;
        bool dead; /* a request timed out or the channel broke: answers may be out of step */
        char *vkey;
        struct note_verifier *verifier;
};

/* ---- shared helpers ---- */

static void put_i32(uint8_t *p, int32_t v) {
        memcpy(p, &v, sizeof v); /* same host on both ends */
}

static int32_t get_i32(const uint8_t *p) {
        int32_t v;
        memcpy(&v, p, sizeof v);
        return v;
}

static void put_u64(uint8_t *p, uint64_t v) {
        for (unsigned i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
        uint64_t v = 0;
        for (unsigned i = 0; i < 8; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

static int send_msg(int fd, int32_t head, const void *payload, size_t len) {
        uint8_t *m;
        ssize_t n;

        if (len > SIGNER_MAX_MSG - HDR)
                return -EMSGSIZE;
        m = malloc(HDR + len);
        if (!m)
                return -ENOMEM;
        put_i32(m, head);
        if (len)
                memcpy(m + HDR, payload, len);
        do
                n = send(fd, m, HDR + len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        free(m);
        if (n < 0)
                return negative_errno();
        return (size_t) n == HDR + len ? 0 : -EIO;
}

/* Receives one packet into buf (SIGNER_MAX_MSG + 1 bytes); returns its length, 0 at end of
 * stream, -EMSGSIZE when it was longer than allowed. */
static ssize_t recv_msg(int fd, uint8_t *buf) {
        ssize_t n;

        do
                n = recv(fd, buf, SIGNER_MAX_MSG + 1, MSG_TRUNC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if ((size_t) n > SIGNER_MAX_MSG)
                return -EMSGSIZE;
        return n;
}

static int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the child ---- */

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
        if (st.st_size <= 0 || (uint64_t) st.st_size > KEY_FILE_MAX)
                return -EINVAL;
        text = sodium_malloc(KEY_FILE_MAX + 1);
        if (!text)
                return -ENOMEM;
        n = read_full(fd, text, KEY_FILE_MAX);
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
        *ret_seq = get_u64(slot + 8);
        *ret_size = get_u64(slot + 16);
        memcpy(ret_root->b, slot + 24, MERKLE_HASH_SIZE);
        return 1;
}

/* Reads keys/log.state: the newest valid slot wins. An empty file is the trust-on-first-use
 * start; so is a file holding only a torn first slot (nothing was ever answered from it: the
 * first answer waits for both slots). A longer file without a valid slot is damage: refuse to
 * start. */
static int state_load(struct child_state *st) {
        uint64_t seq[2] = { 0 }, size[2] = { 0 };
        merkle_hash root[2];
        int ok[2];
        struct stat sb;

        if (fstat(st->state_fd, &sb) < 0)
                return negative_errno();
        if (!S_ISREG(sb.st_mode))
                return -EINVAL;
        if ((sb.st_mode & 077) != 0 || sb.st_uid != geteuid())
                return -EPERM;
        if (sb.st_size > (off_t) (2 * STATE_SLOT))
                return -EBADMSG;
        st->file_len = (uint64_t) sb.st_size;
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

/* Writes record seq into its slot ((seq - 1) % 2) and makes it durable. */
static int state_write(struct child_state *st, uint64_t seq, uint64_t size, const merkle_hash *root) {
        uint8_t slot[STATE_SLOT] = { 0 };
        unsigned i = (unsigned) ((seq - 1) % 2);
        ssize_t n;

        memcpy(slot, state_magic, sizeof state_magic);
        put_u64(slot + 8, seq);
        put_u64(slot + 16, size);
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

static int open_state(const char *keys_dir) {
        _cleanup_free_ char *path = path_join(keys_dir, "log.state");
        int fd;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        return fd < 0 ? negative_errno() : fd;
}

int signer_seccomp_install(void) {
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
        if (r == 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}

static int lock_down(int *fdp, int *state_fdp) {
        struct rlimit zero = { 0, 0 };

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

        /* every descriptor but the channel, stderr (for the log) and the state file */
        close(STDOUT_FILENO);
        if (syscall(SYS_close_range, STATE_FD + 1u, ~0u, 0u) < 0) {
                long max = sysconf(_SC_OPEN_MAX); /* kernels before 5.9 */
                for (long fd = STATE_FD + 1; fd < (max > 0 ? max : 65536); fd++)
                        close((int) fd);
        }

        if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        /* RLIMIT_NOFILE 0: no new descriptor of any kind, whatever the filter allows */
        if (setrlimit(RLIMIT_CORE, &zero) < 0 || setrlimit(RLIMIT_NOFILE, &zero) < 0 ||
            setrlimit(RLIMIT_NPROC, &zero) < 0)
                return negative_errno();
        return signer_seccomp_install();
}

/* Every extension line must start with a configured prefix, each prefix at most once. */
static int check_extensions(const struct child_state *st, const char *body, size_t len) {
        const char *p = body, *end = body + len;
        bool used[MAX_EXTENSIONS] = { false };

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
                put_u64(out + 1, st->size);
                memcpy(out + 9, st->root.b, MERKLE_HASH_SIZE);
        }
        return send_msg(fd, 0, out, sizeof out);
}

/* A Ctrl-C in the terminal reaches the whole process group: the server stops cleanly and
 * signs a last checkpoint, so the signer and its supervisor leave only with it. */
static void ignore_terminal_signals(void) {
        (void) signal(SIGINT, SIG_IGN);
        (void) signal(SIGQUIT, SIG_IGN);
        (void) signal(SIGHUP, SIG_IGN);
}

static _noreturn_ void child_main(int fd, const char *keys_dir, const char *origin, char *const *extensions,
                                  size_t n_extensions, pid_t parent) {
        struct child_state st = { .origin = origin, .extensions = extensions, .n_extensions = n_extensions,
                                  .state_fd = -1 };
        _cleanup_free_ char *vkey = NULL;
        uint8_t *buf;
        int r;

        log_set_component("signer");
        (void) prctl(PR_SET_NAME, "coffre-signer");
        ignore_terminal_signals();
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
        buf = malloc(SIGNER_MAX_MSG + 1);
        if (r == 0 && !buf)
                r = -ENOMEM;
        if (r == 0)
                r = lock_down(&fd, &st.state_fd);
        if (r < 0) {
                (void) send_msg(fd, r, NULL, 0);
                _exit(1);
        }
        if (send_msg(fd, 0, vkey, strlen(vkey)) < 0)
                _exit(1);

        for (;;) {
                ssize_t n = recv_msg(fd, buf);
                char *line = NULL;
                int32_t type;

                /* n == 0 is an empty packet or the end of the stream: either way the answer
                 * below is refused (EPIPE) once the parent is gone, which ends the loop */
                if (n == -EMSGSIZE || (n >= 0 && (size_t) n < HDR)) {
                        if (send_msg(fd, n < 0 ? -EMSGSIZE : -EBADMSG, NULL, 0) < 0)
                                break;
                        continue;
                }
                if (n < 0)
                        break;
                type = get_i32(buf);
                switch (type) {
                case SIGNER_MSG_GET_LOG_VKEY:
                        r = n == HDR ? send_msg(fd, 0, vkey, strlen(vkey)) : send_msg(fd, -EBADMSG, NULL, 0);
                        break;
                case SIGNER_MSG_SIGN_CHECKPOINT:
                        r = handle_sign(&st, buf + HDR, (size_t) n - HDR, &line);
                        r = r < 0 ? send_msg(fd, r, NULL, 0) : send_msg(fd, 0, line, strlen(line));
                        free(line);
                        break;
                case SIGNER_MSG_GET_STATE:
                        r = n == HDR ? handle_state(&st, fd) : send_msg(fd, -EBADMSG, NULL, 0);
                        break;
                default:
                        r = send_msg(fd, -EOPNOTSUPP, NULL, 0);
                }
                if (r < 0)
                        break;
        }
        note_signer_free(st.key);
        _exit(0);
}

/* ---- the supervisor ---- */

/* Hands the parent a new channel and the pid of the signer behind it. */
static int send_channel(int ctl, int fd, pid_t pid) {
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(sizeof(int))];
        } u;
        struct iovec iov = { .iov_base = &pid, .iov_len = sizeof pid };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.space, .msg_controllen = sizeof u.space };
        struct cmsghdr *c;
        ssize_t n;

        memset(&u, 0, sizeof u);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
        do
                n = sendmsg(ctl, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? negative_errno() : 0;
}

/* 1 when the parent closed the control socket (it never writes to it). */
static int parent_gone(int ctl, int timeout_ms) {
        struct pollfd p = { .fd = ctl, .events = POLLIN };
        int n = poll(&p, 1, timeout_ms);
        return n > 0;
}

static _noreturn_ void supervisor_main(int ctl, const char *keys_dir, const char *origin, char *const *extensions,
                                       size_t n_extensions, pid_t parent) {
        int64_t delay = RESTART_MIN_MS;
        pid_t self;

        log_set_component("signer");
        (void) prctl(PR_SET_NAME, "coffre-sigsup");
        ignore_terminal_signals();
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
        (void) prctl(PR_SET_DUMPABLE, 0);
        /* nothing of the server but the control socket and stderr */
        if (ctl > 3)
                (void) syscall(SYS_close_range, 3u, (unsigned) ctl - 1, 0u);
        (void) syscall(SYS_close_range, (unsigned) ctl + 1, ~0u, 0u);
        self = getpid();
        for (bool first = true;; first = false) {
                int sv[2];
                pid_t pid;

                if (!first) {
                        /* wait out the back-off, or leave when the parent has gone */
                        if (parent_gone(ctl, (int) delay))
                                _exit(0);
                        delay = MIN(delay * 2, RESTART_MAX_MS);
                }
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                        continue;
                pid = fork();
                if (pid < 0) {
                        close(sv[0]);
                        close(sv[1]);
                        continue;
                }
                if (pid == 0) {
                        close(ctl);
                        close(sv[0]);
                        child_main(sv[1], keys_dir, origin, extensions, n_extensions, self);
                }
                close(sv[1]);
                int r = send_channel(ctl, sv[0], pid);
                close(sv[0]);
                if (r < 0) {
                        kill(pid, SIGKILL);
                        _exit(0); /* the parent is gone */
                }
                int64_t started = mono_ms();
                int status;
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
                if (parent_gone(ctl, 0))
                        _exit(0);
                if (mono_ms() - started >= RESTART_STABLE_MS)
                        delay = RESTART_MIN_MS;
                if (WIFSIGNALED(status))
                        log_error("the signer (pid %d) was killed by signal %d; restarting it", (int) pid,
                                  WTERMSIG(status));
                else
                        log_error("the signer (pid %d) exited with status %d; restarting it", (int) pid,
                                  WEXITSTATUS(status));
        }
}

/* ---- the parent ---- */

/* A new channel from the supervisor, if one is waiting (-EAGAIN when not). */
static int recv_channel(int ctl, int *ret_fd, pid_t *ret_pid) {
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(sizeof(int))];
        } u;
        pid_t pid = 0;
        struct iovec iov = { .iov_base = &pid, .iov_len = sizeof pid };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.space, .msg_controllen = sizeof u.space };
        struct cmsghdr *c;
        ssize_t n;
        int fd = -1;

        do
                n = recvmsg(ctl, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if (n == 0)
                return -EPIPE; /* the supervisor is gone: no more signers */
        for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
                        memcpy(&fd, CMSG_DATA(c), sizeof fd);
        if (fd < 0 || n != sizeof pid || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
                if (fd >= 0)
                        close(fd);
                return -EBADMSG;
        }
        *ret_fd = fd;
        *ret_pid = pid;
        return 0;
}

/* The first packet of a new signer: ready with its vkey, or why it could not start. */
static int await_ready(int fd, char **ret_vkey) {
        struct timeval tv = { .tv_sec = REPLY_TIMEOUT_SEC };
        _cleanup_free_ uint8_t *buf = malloc(SIGNER_MAX_MSG + 1);
        ssize_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
                return negative_errno();
        n = recv_msg(fd, buf);
        if (n == 0)
                return -EPIPE;
        if (n < 0)
                return n == -EAGAIN ? -ETIMEDOUT : (int) n;
        if ((size_t) n < HDR)
                return -EBADMSG;
        r = get_i32(buf);
        if (r < 0)
                return r;
        *ret_vkey = strndup((const char *) buf + HDR, (size_t) n - HDR);
        return *ret_vkey ? 0 : -ENOMEM;
}

/* Under the lock, with no live channel: takes the newest signer the supervisor started. */
static int reconnect_locked(struct signer *s) {
        int r = -EPIPE;

        for (;;) {
                _cleanup_free_ char *vkey = NULL;
                pid_t pid;
                int fd, k = recv_channel(s->ctl, &fd, &pid);

                if (k == -EAGAIN)
                        return r; /* none waiting: the supervisor is backing off */
                if (k < 0)
                        return k;
                k = await_ready(fd, &vkey);
                if (k == 0 && strcmp(vkey, s->vkey) != 0)
                        k = -EBADMSG; /* a signer with another key: not ours */
                if (k < 0) {
                        close(fd);
                        r = k == -EPIPE ? -EPIPE : k;
                        continue; /* it failed to start; maybe a newer one waits */
                }
                if (s->fd >= 0)
                        close(s->fd);
                s->fd = fd;
                s->pid = pid;
                s->dead = false;
                log_info("the signer is back (pid %d)", (int) pid);
                return 0;
        }
}

/* One request and its answer, under the lock so threads do not interleave packets. */
static int call(struct signer *s, const void *msg, size_t len, char **ret_payload, size_t *ret_len,
                int *ret_status) {
        _cleanup_free_ uint8_t *buf = malloc(SIGNER_MAX_MSG + 1);
        ssize_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        if (s->dead && (r = reconnect_locked(s)) < 0) {
                pthread_mutex_unlock(&s->lock);
                return r;
        }
        do
                n = send(s->fd, msg, len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                r = errno == ECONNRESET ? -EPIPE : negative_errno();
        else if ((size_t) n != len)
                r = -EIO;
        else {
                n = recv_msg(s->fd, buf);
                r = n == 0 || n == -ECONNRESET ? -EPIPE : n < 0 ? (int) n : 0;
        }
        if (r < 0 && r != -EMSGSIZE) {
                /* out of step or gone: drop this signer; the supervisor starts another */
                s->dead = true;
                if (r == -EAGAIN && s->pid > 0)
                        (void) kill(s->pid, SIGKILL); /* silent for too long */
                close(s->fd);
                s->fd = -1;
        }
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
                return r == -EAGAIN ? -ETIMEDOUT : r;
        if ((size_t) n < HDR)
                return -EBADMSG;
        if (ret_payload) {
                char *p = malloc((size_t) n - HDR + 1);
                if (!p)
                        return -ENOMEM;
                memcpy(p, buf + HDR, (size_t) n - HDR);
                p[n - HDR] = 0;
                *ret_payload = p;
                if (ret_len)
                        *ret_len = (size_t) n - HDR;
        }
        *ret_status = get_i32(buf);
        return 0;
}

static int request(struct signer *s, int32_t type, const void *payload, size_t len, char **ret_payload,
                   size_t *ret_len) {
        _cleanup_free_ uint8_t *m = NULL;
        _cleanup_free_ char *p = NULL;
        int status = 0, r;

        if (len > SIGNER_MAX_MSG - HDR)
                return -EMSGSIZE;
        m = malloc(HDR + len);
        if (!m)
                return -ENOMEM;
        put_i32(m, type);
        if (len)
                memcpy(m + HDR, payload, len);
        r = call(s, m, HDR + len, &p, ret_len, &status);
        if (r < 0)
                return r;
        if (status < 0)
                return status;
        *ret_payload = TAKE_PTR(p);
        return 0;
}

int signer_send_raw(struct signer *s, const void *msg, size_t len, int *ret_status) {
        if (!s || (!msg && len))
                return -EINVAL;
        return call(s, msg, len, NULL, NULL, ret_status);
}

int signer_pid(struct signer *s) {
        pthread_mutex_lock(&s->lock);
        int pid = s->pid;
        pthread_mutex_unlock(&s->lock);
        return pid;
}

void signer_stop(struct signer *s) {
        if (!s)
                return;
        /* the supervisor first, so that it does not start another signer */
        if (s->ctl >= 0)
                close(s->ctl);
        if (s->fd >= 0)
                close(s->fd); /* the signer sees end of stream and exits */
        if (s->sup_pid > 0)
                while (waitpid(s->sup_pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        note_verifier_free(s->verifier);
        free(s->vkey);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int signer_start_ext(const char *keys_dir, const char *log_origin, char *const *extensions, size_t n_extensions,
                     struct signer **ret) {
        _cleanup_(signer_stopp) struct signer *s = NULL;
        pid_t parent = getpid();
        struct pollfd p;
        int sv[2], r;

        if (!keys_dir || !ret || !note_name_is_valid(log_origin) || n_extensions > MAX_EXTENSIONS ||
            (n_extensions && !extensions))
                return -EINVAL;
        for (size_t i = 0; i < n_extensions; i++)
                if (!extensions[i] || !*extensions[i] || strchr(extensions[i], '\n'))
                        return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->fd = -1;
        s->ctl = -1;
        pthread_mutex_init(&s->lock, NULL);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        s->sup_pid = fork();
        if (s->sup_pid < 0) {
                r = negative_errno();
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        if (s->sup_pid == 0) {
                close(sv[0]);
                supervisor_main(sv[1], keys_dir, log_origin, extensions, n_extensions, parent);
        }
        close(sv[1]);
        s->ctl = sv[0];

        /* the first signer: wait for its channel, then for its first packet */
        p = (struct pollfd){ .fd = s->ctl, .events = POLLIN };
        do
                r = poll(&p, 1, REPLY_TIMEOUT_SEC * 1000);
        while (r < 0 && errno == EINTR);
        if (r <= 0)
                return r < 0 ? negative_errno() : -ETIMEDOUT;
        r = recv_channel(s->ctl, &s->fd, &s->pid);
        if (r < 0)
                return r;
        r = await_ready(s->fd, &s->vkey);
        if (r < 0)
                return r;
        r = note_verifier_from_vkey(s->vkey, &s->verifier);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int signer_start(const char *keys_dir, const char *log_origin, struct signer **ret) {
        return signer_start_ext(keys_dir, log_origin, NULL, 0, ret);
}

int signer_log_vkey(struct signer *s, char **ret_vkey) {
        if (!s || !ret_vkey)
                return -EINVAL;
        return request(s, SIGNER_MSG_GET_LOG_VKEY, NULL, 0, ret_vkey, NULL);
}

int signer_state(struct signer *s, bool *ret_have, uint64_t *ret_size, merkle_hash *ret_root) {
        _cleanup_free_ char *p = NULL;
        size_t len = 0;
        int r;

        if (!s || !ret_have || !ret_size || !ret_root)
                return -EINVAL;
        r = request(s, SIGNER_MSG_GET_STATE, NULL, 0, &p, &len);
        if (r < 0)
                return r;
        if (len != 1 + 8 + MERKLE_HASH_SIZE || (uint8_t) p[0] > 1)
                return -EBADMSG;
        *ret_have = p[0] == 1;
        *ret_size = get_u64((const uint8_t *) p + 1);
        memcpy(ret_root->b, p + 9, MERKLE_HASH_SIZE);
        return 0;
}

int signer_sign_checkpoint(struct signer *s, const char *body, size_t len, const merkle_hash *proof, size_t proof_len,
                           char **ret_note) {
        _cleanup_free_ char *line = NULL, *opened = NULL;
        _cleanup_free_ uint8_t *m = NULL;
        struct note_verifier *const vs[1] = { s ? s->verifier : NULL };
        struct buf b;
        uint32_t blen;
        int r;

        if (!s || !body || !ret_note || (proof_len && !proof) || proof_len > MERKLE_MAX_PROOF ||
            len > SIGNER_MAX_MSG)
                return -EINVAL;
        blen = (uint32_t) len;
        m = malloc(4 + len + proof_len * MERKLE_HASH_SIZE);
        if (!m)
                return -ENOMEM;
        memcpy(m, &blen, 4);
        memcpy(m + 4, body, len);
        if (proof_len)
                memcpy(m + 4 + len, proof, proof_len * MERKLE_HASH_SIZE);
        r = request(s, SIGNER_MSG_SIGN_CHECKPOINT, m, 4 + len + proof_len * MERKLE_HASH_SIZE, &line, NULL);
        if (r < 0)
                return r;
        buf_init(&b, NOTE_MAX_SIZE);
        if ((r = buf_append(&b, body, len)) < 0 || (r = buf_append(&b, "\n", 1)) < 0 ||
            (r = buf_append_str(&b, line)) < 0) {
                buf_free(&b);
                return r;
        }
        /* trust, but verify: what comes back must be a valid signature over this body */
        r = note_open((const char *) b.data, b.len, vs, 1, &opened, NULL);
        if (r < 0 || strlen(opened) != len || memcmp(opened, body, len) != 0) {
                buf_free(&b);
                return -EBADMSG;
        }
        *ret_note = buf_steal(&b);
        return *ret_note ? 0 : -ENOMEM;
}

int signer_init_keys(const char *keys_dir, const char *log_origin) {
        _cleanup_free_ char *key_path = NULL, *vkey_path = NULL, *state_path = NULL, *vkey = NULL;
        _cleanup_buf_ struct buf vb;
        char *skey = NULL;
        struct buf sb;
        int r;

        buf_init(&vb, KEY_FILE_MAX);
        if (!keys_dir || !note_name_is_valid(log_origin))
                return -EINVAL;
        key_path = path_join(keys_dir, "log.key");
        vkey_path = path_join(keys_dir, "log.vkey");
        state_path = path_join(keys_dir, "log.state");
        if (!key_path || !vkey_path || !state_path)
                return -ENOMEM;
        r = mkdir_p(keys_dir, 0700);
        if (r < 0)
                return r;
        if (access(key_path, F_OK) == 0)
                return -EEXIST;
        r = note_key_generate(log_origin, &skey, &vkey);
        if (r < 0)
                return r;
        buf_init(&sb, KEY_FILE_MAX);
        r = buf_reserve(&sb, strlen(skey) + 1); /* one allocation: no stray copy of the key */
        if (r >= 0 && (r = buf_append_str(&sb, skey)) >= 0)
                r = buf_append(&sb, "\n", 1);
        note_text_free_secret(skey);
        if (r >= 0)
                r = write_file_atomic(key_path, sb.data, sb.len, 0600, 1);
        buf_free_secure(&sb);
        if (r < 0)
                return r;
        /* an empty state: the first checkpoint the signer is asked for starts its memory */
        r = write_file_atomic(state_path, "", 0, 0600, 1);
        if (r < 0)
                return r;
        if ((r = buf_append_str(&vb, vkey)) < 0 || (r = buf_append(&vb, "\n", 1)) < 0)
                return r;
        return write_file_atomic(vkey_path, vb.data, vb.len, 0644, 0);
}
