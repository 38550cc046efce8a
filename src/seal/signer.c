/* signer.c: the signer process and its parent-side client. The child is forked early, keeps the
 * log key to itself and only signs checkpoints that pass its own checks; the parent talks to
 * it through one SOCK_SEQPACKET socket, one request at a time. */
#include "seal/signer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
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
#include <unistd.h>

#include <sodium.h>

#include "audit/note.h"
#include "buf.h"
#include "fileio.h"
#include "log.h"

#define HDR 4u
#define KEY_FILE_MAX 4096u
#define REPLY_TIMEOUT_SEC 30

struct signer {
        int fd;
        pid_t pid;
        pthread_mutex_t lock;
        bool dead; /* a request timed out or the channel broke: answers may be out of step */
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

/* ---- the child ---- */

struct child_state {
        struct note_signer *key;
        const char *origin;
        bool signed_any;
        uint64_t max_size;
        merkle_hash max_root;
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

/* A deny-list seccomp filter: no sockets, no program execution, no new processes, no peeking
 * into other processes. Everything the signer needs (read/send on its socket, memory, exit)
 * stays allowed. */
static int install_seccomp(void) {
#if defined(__x86_64__)
#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
        struct sock_filter f[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xc000003e /* AUDIT_ARCH_X86_64 */, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                /* the x32 ABI shares the arch value: refuse it outright */
                BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                DENY(SYS_socket), DENY(SYS_socketpair), DENY(SYS_connect), DENY(SYS_bind), DENY(SYS_listen),
                DENY(SYS_accept), DENY(SYS_accept4), DENY(SYS_execve), DENY(SYS_execveat), DENY(SYS_fork),
                DENY(SYS_vfork), DENY(SYS_clone), DENY(SYS_clone3), DENY(SYS_ptrace), DENY(SYS_process_vm_readv),
                DENY(SYS_process_vm_writev), DENY(SYS_open), DENY(SYS_openat), DENY(SYS_creat),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
#undef DENY
        struct sock_fprog prog = { .len = ELEMENTSOF(f), .filter = f };

        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
                return negative_errno();
#endif
        return 0;
}

static int lock_down(int *fdp) {
        int keep_fd = *fdp;
        struct rlimit zero = { 0, 0 };

        /* park the channel on descriptor 0 so one close_range(3, ~0) keeps it */
        if (keep_fd != 0) {
                if (dup2(keep_fd, 0) < 0)
                        return negative_errno();
                close(keep_fd);
                keep_fd = 0;
        }
        *fdp = keep_fd;

        /* every descriptor but the channel (0) and stderr (for the log) */
        close(STDOUT_FILENO);
        if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0) {
                long max = sysconf(_SC_OPEN_MAX); /* kernels before 5.9 */
                for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
                        close((int) fd);
        }

        if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        /* RLIMIT_NOFILE 0: no new descriptor of any kind, whatever the filter allows */
        if (setrlimit(RLIMIT_CORE, &zero) < 0 || setrlimit(RLIMIT_NOFILE, &zero) < 0 ||
            setrlimit(RLIMIT_NPROC, &zero) < 0)
                return negative_errno();
        return install_seccomp();
}

static int handle_sign(struct child_state *st, const uint8_t *body, size_t len, char **ret_line) {
        _cleanup_free_ char *origin = NULL;
        uint64_t size;
        merkle_hash root;
        int r;

        r = checkpoint_parse((const char *) body, len, &origin, &size, &root);
        if (r < 0)
                return -EBADMSG;
        if (strcmp(origin, st->origin) != 0)
                return -EPERM;
        if (st->signed_any) {
                if (size < st->max_size)
                        return -EPERM; /* rollback */
                if (size == st->max_size && sodium_memcmp(root.b, st->max_root.b, MERKLE_HASH_SIZE) != 0)
                        return -EPERM; /* fork: two roots for one size */
        }
        r = note_signature_line(st->key, (const char *) body, len, ret_line);
        if (r < 0)
                return r;
        if (!st->signed_any || size > st->max_size) {
                st->max_size = size;
                st->max_root = root;
        }
        st->signed_any = true;
        return 0;
}

static _noreturn_ void child_main(int fd, const char *keys_dir, const char *origin, pid_t parent) {
        struct child_state st = { .origin = origin };
        _cleanup_free_ char *vkey = NULL;
        uint8_t *buf;
        int r;

        log_set_component("signer");
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
        r = load_key(keys_dir, &st.key);
        if (r == 0 && strcmp(note_signer_name(st.key), origin) != 0)
                r = -EINVAL; /* the log key is named after the log */
        if (r == 0)
                r = note_signer_vkey(st.key, &vkey);
        buf = malloc(SIGNER_MAX_MSG + 1);
        if (r == 0 && !buf)
                r = -ENOMEM;
        if (r == 0)
                r = lock_down(&fd);
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
                default:
                        r = send_msg(fd, -EOPNOTSUPP, NULL, 0);
                }
                if (r < 0)
                        break;
        }
        note_signer_free(st.key);
        _exit(0);
}

/* ---- the parent ---- */

/* One request and its answer, under the lock so threads do not interleave packets. */
static int call(struct signer *s, const void *msg, size_t len, char **ret_payload, int *ret_status) {
        _cleanup_free_ uint8_t *buf = malloc(SIGNER_MAX_MSG + 1);
        ssize_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        if (s->dead) {
                pthread_mutex_unlock(&s->lock);
                return -EPIPE;
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
        if (r < 0 && r != -EMSGSIZE)
                s->dead = true;
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
        }
        *ret_status = get_i32(buf);
        return 0;
}

static int request(struct signer *s, int32_t type, const void *payload, size_t len, char **ret_payload) {
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
        r = call(s, m, HDR + len, &p, &status);
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
        return call(s, msg, len, NULL, ret_status);
}

int signer_pid(const struct signer *s) {
        return s->pid;
}

void signer_stop(struct signer *s) {
        if (!s)
                return;
        if (s->fd >= 0)
                close(s->fd); /* the child sees end of stream and exits */
        if (s->pid > 0)
                while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        note_verifier_free(s->verifier);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int signer_start(const char *keys_dir, const char *log_origin, struct signer **ret) {
        _cleanup_(signer_stopp) struct signer *s = NULL;
        struct timeval tv = { .tv_sec = REPLY_TIMEOUT_SEC };
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *vkey = NULL;
        pid_t parent = getpid();
        int sv[2], r;
        ssize_t n;

        if (!keys_dir || !ret || !note_name_is_valid(log_origin))
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        buf = malloc(SIGNER_MAX_MSG + 1);
        s = calloc(1, sizeof *s);
        if (!buf || !s)
                return -ENOMEM;
        s->fd = -1;
        pthread_mutex_init(&s->lock, NULL);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        s->pid = fork();
        if (s->pid < 0) {
                r = negative_errno();
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        if (s->pid == 0) {
                close(sv[0]);
                child_main(sv[1], keys_dir, log_origin, parent);
        }
        close(sv[1]);
        s->fd = sv[0];
        if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
                return negative_errno();

        /* the child's first packet: ready with the vkey, or why it could not start */
        n = recv_msg(s->fd, buf);
        if (n == 0)
                return -EPIPE;
        if (n < 0)
                return (int) n;
        if ((size_t) n < HDR)
                return -EBADMSG;
        r = get_i32(buf);
        if (r < 0)
                return r;
        vkey = strndup((const char *) buf + HDR, (size_t) n - HDR);
        if (!vkey)
                return -ENOMEM;
        r = note_verifier_from_vkey(vkey, &s->verifier);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int signer_log_vkey(struct signer *s, char **ret_vkey) {
        if (!s || !ret_vkey)
                return -EINVAL;
        return request(s, SIGNER_MSG_GET_LOG_VKEY, NULL, 0, ret_vkey);
}

int signer_sign_checkpoint(struct signer *s, const char *body, size_t len, char **ret_note) {
        _cleanup_free_ char *line = NULL, *opened = NULL;
        struct note_verifier *const vs[1] = { s ? s->verifier : NULL };
        struct buf b;
        int r;

        if (!s || !body || !ret_note)
                return -EINVAL;
        r = request(s, SIGNER_MSG_SIGN_CHECKPOINT, body, len, &line);
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
        _cleanup_free_ char *key_path = NULL, *vkey_path = NULL, *vkey = NULL;
        _cleanup_buf_ struct buf vb = {}; /* freed on every return before buf_init */
        char *skey = NULL;
        struct buf sb;
        int r;

        if (!keys_dir || !note_name_is_valid(log_origin))
                return -EINVAL;
        key_path = path_join(keys_dir, "log.key");
        vkey_path = path_join(keys_dir, "log.vkey");
        if (!key_path || !vkey_path)
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
        buf_init(&vb, KEY_FILE_MAX);
        if ((r = buf_append_str(&vb, vkey)) < 0 || (r = buf_append(&vb, "\n", 1)) < 0)
                return r;
        return write_file_atomic(vkey_path, vb.data, vb.len, 0644, 0);
}
