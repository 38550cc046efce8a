/* signer.c: the signer's supervisor and the server's client of the signer (the signer itself is
 * in signer_child.c). The signer keeps the log key and the memory of what it signed to itself,
 * and only signs checkpoints that pass its own checks; the server talks to it through one
 * SOCK_SEQPACKET socket, one request at a time.
 *
 * Process tree: the server forks a small supervisor once, before any thread starts; the
 * supervisor forks the signer and forks a new one, with back-off, whenever the signer dies.
 * Each signer reads keys/log.key and opens keys/log.state itself, before it locks itself down,
 * so neither the server nor the supervisor ever holds the key. The supervisor hands the server
 * the channel of each new signer over a control socket (SCM_RIGHTS). */
#include "seal/signer.h"
#include "seal/signer_backup.h"
#include "seal/signer_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
#include "seal/cades.h"
#include "seal/pki.h"
#include "seal/tsa.h"
#include "fileio.h"
#include "log.h"

#define REPLY_TIMEOUT_SEC 30

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

        /* seal requests waiting for a round trip (signer_seal_timestamped) */
        pthread_mutex_t sq_lock;
        pthread_cond_t sq_cond;
        struct seal_req *sq_head, **sq_tail;
        bool sq_leader;
};

struct seal_req {
        uint8_t item[SIGNER_SEAL_ITEM];
        int result;
        bool done;
        uint8_t *seal, *reply;
        size_t seal_len, reply_len;
        struct seal_req *next;
};

/* ---- shared helpers ---- */

int signer_send_msg(int fd, int32_t head, const void *payload, size_t len) {
        uint8_t *m;
        ssize_t n;

        if (len > SIGNER_MAX_MSG - SIGNER_HDR)
                return -EMSGSIZE;
        m = malloc(SIGNER_HDR + len);
        if (!m)
                return -ENOMEM;
        signer_put_i32(m, head);
        if (len)
                memcpy(m + SIGNER_HDR, payload, len);
        do
                n = send(fd, m, SIGNER_HDR + len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        free(m);
        if (n < 0)
                return negative_errno();
        return (size_t) n == SIGNER_HDR + len ? 0 : -EIO;
}

ssize_t signer_recv_msg(int fd, uint8_t *buf) {
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
        signer_ignore_terminal_signals();
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
                        signer_child_main(sv[1], keys_dir, origin, extensions, n_extensions, self);
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
        n = signer_recv_msg(fd, buf);
        if (n == 0)
                return -EPIPE;
        if (n < 0)
                return n == -EAGAIN ? -ETIMEDOUT : (int) n;
        if ((size_t) n < SIGNER_HDR)
                return -EBADMSG;
        r = signer_get_i32(buf);
        if (r < 0)
                return r;
        *ret_vkey = strndup((const char *) buf + SIGNER_HDR, (size_t) n - SIGNER_HDR);
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
                n = signer_recv_msg(s->fd, buf);
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
        if ((size_t) n < SIGNER_HDR)
                return -EBADMSG;
        if (ret_payload) {
                char *p = malloc((size_t) n - SIGNER_HDR + 1);
                if (!p)
                        return -ENOMEM;
                memcpy(p, buf + SIGNER_HDR, (size_t) n - SIGNER_HDR);
                p[n - SIGNER_HDR] = 0;
                *ret_payload = p;
                if (ret_len)
                        *ret_len = (size_t) n - SIGNER_HDR;
        }
        *ret_status = signer_get_i32(buf);
        return 0;
}

static int request(struct signer *s, int32_t type, const void *payload, size_t len, char **ret_payload,
                   size_t *ret_len) {
        _cleanup_free_ uint8_t *m = NULL;
        _cleanup_free_ char *p = NULL;
        int status = 0, r;

        if (len > SIGNER_MAX_MSG - SIGNER_HDR)
                return -EMSGSIZE;
        m = malloc(SIGNER_HDR + len);
        if (!m)
                return -ENOMEM;
        signer_put_i32(m, type);
        if (len)
                memcpy(m + SIGNER_HDR, payload, len);
        r = call(s, m, SIGNER_HDR + len, &p, ret_len, &status);
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
        pthread_cond_destroy(&s->sq_cond);
        pthread_mutex_destroy(&s->sq_lock);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int signer_start_ext(const char *keys_dir, const char *log_origin, char *const *extensions, size_t n_extensions,
                     struct signer **ret) {
        _cleanup_(signer_stopp) struct signer *s = NULL;
        pid_t parent = getpid();
        struct pollfd p;
        int sv[2], r;

        if (!keys_dir || !ret || !note_name_is_valid(log_origin) || n_extensions > SIGNER_MAX_EXTENSIONS ||
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
        pthread_mutex_init(&s->sq_lock, NULL);
        pthread_cond_init(&s->sq_cond, NULL);
        s->sq_tail = &s->sq_head;
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
        *ret_size = signer_get_u64((const uint8_t *) p + 1);
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
        _cleanup_buf_ struct buf vb = {}; /* freed on every return before buf_init */
        char *skey = NULL;
        struct buf sb;
        int r;

        buf_init(&vb, SIGNER_KEY_FILE_MAX);
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
        buf_init(&sb, SIGNER_KEY_FILE_MAX);
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

/* ---- seals and timestamps ---- */

static struct {
        char tsa_policy[128];
        uint32_t tsa_accuracy_ms;
        char ca_name[128];
        char tsa_name[128];
        char pkcs11_paths[SIGNER_PKCS11_PATHS_MAX][256];
        size_t n_pkcs11_paths;
} seal_options;

void signer_set_seal_options(const struct signer_seal_options *o) {
        snprintf(seal_options.tsa_policy, sizeof seal_options.tsa_policy, "%s",
                 o && o->tsa_policy ? o->tsa_policy : "");
        seal_options.tsa_accuracy_ms = o ? o->tsa_accuracy_ms : 0;
        snprintf(seal_options.ca_name, sizeof seal_options.ca_name, "%s", o && o->ca_name ? o->ca_name : "");
        snprintf(seal_options.tsa_name, sizeof seal_options.tsa_name, "%s", o && o->tsa_name ? o->tsa_name : "");
        seal_options.n_pkcs11_paths = 0;
        for (size_t i = 0; o && i < o->n_pkcs11_paths && i < SIGNER_PKCS11_PATHS_MAX; i++)
                if (o->pkcs11_paths[i] && strlen(o->pkcs11_paths[i]) < sizeof seal_options.pkcs11_paths[0])
                        snprintf(seal_options.pkcs11_paths[seal_options.n_pkcs11_paths++],
                                 sizeof seal_options.pkcs11_paths[0], "%s", o->pkcs11_paths[i]);
}

void signer_seal_options_get(struct signer_seal_options *ret) {
        ret->tsa_policy = *seal_options.tsa_policy ? seal_options.tsa_policy : TSA_DEFAULT_POLICY;
        ret->tsa_accuracy_ms = seal_options.tsa_accuracy_ms ? seal_options.tsa_accuracy_ms : TSA_DEFAULT_ACCURACY_MS;
        ret->ca_name = *seal_options.ca_name ? seal_options.ca_name : "coffre vault CA";
        ret->tsa_name = *seal_options.tsa_name ? seal_options.tsa_name : "coffre TSA";
        ret->n_pkcs11_paths = seal_options.n_pkcs11_paths;
        for (size_t i = 0; i < seal_options.n_pkcs11_paths; i++)
                ret->pkcs11_paths[i] = seal_options.pkcs11_paths[i];
}

static bool org_id_valid(const char *id) {
        if (!id || strlen(id) != 32)
                return false;
        for (size_t i = 0; i < 32; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return true;
}

int signer_seal(struct signer *s, const char *org_id, const uint8_t sha256[32], int64_t signing_time_ms, uint8_t **ret,
                size_t *ret_len) {
        uint8_t m[32 + 32 + 8];
        char *p = NULL;
        size_t n = 0;
        int r;

        if (!s || !org_id_valid(org_id) || !sha256 || !ret || !ret_len)
                return -EINVAL;
        memcpy(m, org_id, 32);
        memcpy(m + 32, sha256, 32);
        memcpy(m + 64, &signing_time_ms, 8);
        r = request(s, SIGNER_MSG_SEAL, m, sizeof m, &p, &n);
        if (r < 0)
                return r;
        /* trust, but verify: one signer, the four attributes, this digest, a valid signature */
        r = cades_check((const uint8_t *) p, n, sha256);
        if (r < 0) {
                free(p);
                return r;
        }
        *ret = (uint8_t *) p;
        *ret_len = n;
        return 0;
}

int signer_timestamp(struct signer *s, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
        char *p = NULL;
        size_t n = 0;
        int r;

        if (!s || (!req && len) || !ret || !ret_len)
                return -EINVAL;
        if (len > SIGNER_MAX_MSG - SIGNER_HDR)
                len = TSA_REQUEST_MAX + 1; /* the signer rejects it as too large, unread */
        r = request(s, SIGNER_MSG_TIMESTAMP, req, MIN(len, SIGNER_MAX_MSG - SIGNER_HDR), &p, &n);
        if (r < 0)
                return r;
        *ret = (uint8_t *) p;
        *ret_len = n;
        return 0;
}

int signer_seal_chain(struct signer *s, const char *org_id, const char *org_name, char **ret_pem) {
        _cleanup_free_ uint8_t *m = NULL;
        size_t nl = org_name ? strlen(org_name) : 0;

        if (!s || !org_id_valid(org_id) || nl == 0 || nl > PKI_ORG_NAME_MAX || !ret_pem)
                return -EINVAL;
        m = malloc(32 + nl);
        if (!m)
                return -ENOMEM;
        memcpy(m, org_id, 32);
        memcpy(m + 32, org_name, nl);
        return request(s, SIGNER_MSG_SEAL_CERT, m, 32 + nl, ret_pem, NULL);
}

int signer_tsa_chain(struct signer *s, char **ret_pem) {
        if (!s || !ret_pem)
                return -EINVAL;
        return request(s, SIGNER_MSG_TSA_CERT, NULL, 0, ret_pem, NULL);
}

/* One SEAL_BATCH round trip for the n requests of batch; sets each one's result. */
static void seal_batch_run(struct signer *s, struct seal_req **batch, size_t n) {
        _cleanup_free_ uint8_t *m = malloc(4 + n * SIGNER_SEAL_ITEM);
        _cleanup_free_ char *p = NULL;
        size_t len = 0, off = 0;
        uint32_t count = (uint32_t) n;
        int r = m ? 0 : -ENOMEM;

        if (r == 0) {
                memcpy(m, &count, 4);
                for (size_t i = 0; i < n; i++)
                        memcpy(m + 4 + i * SIGNER_SEAL_ITEM, batch[i]->item, SIGNER_SEAL_ITEM);
                r = request(s, SIGNER_MSG_SEAL_BATCH, m, 4 + n * SIGNER_SEAL_ITEM, &p, &len);
        }
        for (size_t i = 0; i < n; i++) {
                struct seal_req *q = batch[i];
                int32_t status;
                uint32_t l1, l2;

                q->result = r;
                if (r < 0)
                        continue;
                if (len - off < 4) {
                        q->result = r = -EBADMSG; /* out of step: the rest too */
                        continue;
                }
                memcpy(&status, p + off, 4);
                off += 4;
                if (status < 0) {
                        q->result = status;
                        continue;
                }
                if (status > 0 || len - off < 4 || (memcpy(&l1, p + off, 4), len - off - 4 < l1) ||
                    len - off - 4 - l1 < 4 || (memcpy(&l2, p + off + 4 + l1, 4), len - off - 8 - l1 < l2)) {
                        q->result = r = -EBADMSG;
                        continue;
                }
                q->seal = malloc(l1 ? l1 : 1);
                q->reply = malloc(l2 ? l2 : 1);
                if (!q->seal || !q->reply) {
                        free(q->seal);
                        free(q->reply);
                        q->seal = q->reply = NULL;
                        q->result = -ENOMEM;
                } else {
                        memcpy(q->seal, p + off + 4, l1);
                        memcpy(q->reply, p + off + 8 + l1, l2);
                        q->seal_len = l1;
                        q->reply_len = l2;
                        q->result = 0;
                }
                off += 8 + (size_t) l1 + l2;
        }
}

int signer_seal_timestamped(struct signer *s, const char *org_id, const uint8_t sha256[32], int64_t signing_time_ms,
                            const uint8_t nonce[8], uint8_t **ret_seal, size_t *ret_seal_len, uint8_t **ret_reply,
                            size_t *ret_reply_len) {
        struct seal_req req = { .result = -EIO };

        if (!s || !org_id_valid(org_id) || !sha256 || !nonce || !ret_seal || !ret_seal_len || !ret_reply ||
            !ret_reply_len)
                return -EINVAL;
        memcpy(req.item, org_id, 32);
        memcpy(req.item + 32, sha256, 32);
        memcpy(req.item + 64, &signing_time_ms, 8);
        memcpy(req.item + 72, nonce, 8);

        pthread_mutex_lock(&s->sq_lock);
        *s->sq_tail = &req;
        s->sq_tail = &req.next;
        while (!req.done) {
                if (s->sq_leader) {
                        pthread_cond_wait(&s->sq_cond, &s->sq_lock);
                        continue;
                }
                /* lead: everything queued so far, ours included, in batches that fit a packet */
                s->sq_leader = true;
                while (s->sq_head) {
                        struct seal_req *batch[SIGNER_SEAL_BATCH_MAX];
                        size_t n = 0;
                        while (s->sq_head && n < SIGNER_SEAL_BATCH_MAX) {
                                batch[n++] = s->sq_head;
                                s->sq_head = s->sq_head->next;
                        }
                        if (!s->sq_head)
                                s->sq_tail = &s->sq_head;
                        pthread_mutex_unlock(&s->sq_lock);
                        seal_batch_run(s, batch, n);
                        pthread_mutex_lock(&s->sq_lock);
                        for (size_t i = 0; i < n; i++)
                                batch[i]->done = true; /* each lives on its waiter's stack */
                        pthread_cond_broadcast(&s->sq_cond);
                }
                s->sq_leader = false;
                pthread_cond_broadcast(&s->sq_cond);
        }
        pthread_mutex_unlock(&s->sq_lock);
        if (req.result < 0)
                return req.result;
        *ret_seal = req.seal;
        *ret_seal_len = req.seal_len;
        *ret_reply = req.reply;
        *ret_reply_len = req.reply_len;
        return 0;
}

int signer_sign_manifest(struct signer *s, const uint8_t pub[SIGNER_BACKUP_PUB_SIZE], const uint8_t *header,
                         size_t len, uint8_t ret_sig[SIGNER_BACKUP_SIG_SIZE]) {
        _cleanup_free_ char *sig = NULL;
        size_t n = 0;
        int r;

        if (!s || !pub || !header || !ret_sig)
                return -EINVAL;
        r = request(s, SIGNER_MSG_SIGN_MANIFEST, header, len, &sig, &n);
        if (r < 0)
                return r;
        if (n != SIGNER_BACKUP_SIG_SIZE || signer_manifest_verify(pub, header, len, (const uint8_t *) sig) < 0)
                return -EBADMSG; /* not a signature by the key the repository names */
        memcpy(ret_sig, sig, SIGNER_BACKUP_SIG_SIZE);
        return 0;
}
