/* sandbox.c: confines the server process once it has opened what it needs: Landlock limits the
 * files it may touch to the parts of the data directory it serves (never keys/), and a seccomp
 * allow-list limits the system calls. An HTTP parsing bug then cannot read a private key, run a
 * program or open a connection outwards. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "crypto/p11_uri.h"
#include "fileio.h"
#include "log.h"
#include "sandbox.h"
#include "vault.h"

/* Debian 12's kernel headers stop at Landlock ABI 1; these are the later flags (stable ABI). */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define SB_LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#define SB_LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#define SB_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define SB_LANDLOCK_RULE_NET_PORT 2
struct sb_net_port_attr {
        uint64_t allowed_access;
        uint64_t port;
} __attribute__((packed));

/* The TCP port of [tsa] url (the only connection outwards the server makes), 0 without one. */
static int tsa_port(const struct vault_config *c, unsigned *ret) {
        *ret = 0;
        if (!c->tsa_url[0])
                return 0;
        CURLU *u = curl_url();
        char *port = NULL;
        int r = -EINVAL;
        if (u && curl_url_set(u, CURLUPART_URL, c->tsa_url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
                char *end = NULL;
                unsigned long p = strtoul(port, &end, 10);
                if (end != port && !*end && p > 0 && p < 65536) {
                        *ret = (unsigned) p;
                        r = 0;
                }
        }
        curl_free(port);
        curl_url_cleanup(u);
        return r;
}


/* LeakSanitizer stops the threads at exit with ptrace and reads /proc/self/task: a sanitizer
 * build lets it, so that the sanitizer runs of the test suites keep the sandbox on. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_FOR_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define SANDBOX_FOR_SANITIZER 1
#endif
#endif

/* struct landlock_ruleset_attr as of ABI 6 (the kernel accepts the shorter prefixes). */
struct sb_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
        uint64_t scoped;
};

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_FILE_RW (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)
#define FS_TREE_RW                                                                                               \
        (FS_FILE_RW | LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_DIR | \
         LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REFER)
/* Rights that make sense on a file (not a directory) in a path_beneath rule. */
#define FS_FILE_ONLY                                                                                       \
        (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
         LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

static int landlock_abi(void) {
        long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        return abi < 0 ? -errno : (int) abi;
}

/* Every right this kernel can check: anything not granted by a rule is then denied. */
static uint64_t fs_handled(int abi) {
        uint64_t a = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: EXECUTE to MAKE_SYM */
        if (abi >= 2)
                a |= LANDLOCK_ACCESS_FS_REFER;
        if (abi >= 3)
                a |= LANDLOCK_ACCESS_FS_TRUNCATE;
        if (abi >= 5)
                a |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
        return a;
}

/* Grants access (masked to what the kernel handles) beneath path. A missing path is skipped when
 * optional: a file sqlite has not created yet, say. */
static int landlock_allow(int ruleset, const char *path, uint64_t access, uint64_t handled, bool optional) {
        int fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT && optional)
                        return 0;
                return log_error_errno(-errno, "sandbox: cannot open %s: %m", path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                close(fd);
                return log_error_errno(r, "sandbox: cannot stat %s: %m", path);
        }
        if (!S_ISDIR(st.st_mode))
                access &= FS_FILE_ONLY;
        struct landlock_path_beneath_attr pb = { .allowed_access = access & handled, .parent_fd = fd };
        long k = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
        int r = k < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return log_error_errno(r, "sandbox: landlock rule for %s: %s", path, strerror(-r));
        return 0;
}

static int landlock_allow_in(int ruleset, const struct vault *v, const char *rel, uint64_t access, uint64_t handled,
                             bool optional) {
        _cleanup_free_ char *p = vault_path(v, rel);
        if (!p)
                return -ENOMEM;
        return landlock_allow(ruleset, p, access, handled, optional);
}

static int sandbox_landlock(const struct vault *v, int *ret_abi) {
        int abi = landlock_abi();
        *ret_abi = abi;
        if (abi < 0) {
                log_warn("sandbox: the kernel offers no Landlock (%s): the server's file access is NOT restricted",
                         strerror(-abi));
                return 0;
        }
        uint64_t handled = fs_handled(abi);
        struct sb_ruleset_attr attr = { .handled_access_fs = handled };
        size_t attr_size = sizeof attr.handled_access_fs;
        if (abi >= 4) {
                /* The server only accepts: no outgoing TCP connection, no new listener. */
                attr.handled_access_net = SB_LANDLOCK_ACCESS_NET_BIND_TCP | SB_LANDLOCK_ACCESS_NET_CONNECT_TCP;
                attr_size = offsetof(struct sb_ruleset_attr, scoped);
        }
        if (abi >= 6) {
                /* Signals stay allowed: nothing outside the server must be signalled, but the
                 * signer (forked before) is outside this domain and is ours to stop. */
                attr.scoped = SB_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET;
                attr_size = sizeof attr;
        }
        if (abi < 2) {
                /* ABI 1 refuses every cross-directory rename, so no upload could reach objects/. */
                log_warn("sandbox: Landlock ABI 1 cannot allow the move from tmp/ to objects/: the server's file "
                         "access is NOT restricted");
                *ret_abi = 0;
                return 0;
        }
        if (abi < 3)
                log_warn("sandbox: Landlock ABI %d cannot restrict truncate()", abi);
        long k = syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
        if (k < 0)
                return log_error_errno(-errno, "sandbox: cannot create a Landlock ruleset: %m");
        int rs = (int) k;
        const struct vault_config *c = vault_get_config(v);
        int r = 0;
        /* What the server opens after start, and nothing else: keys/ and coffre.conf stay out. */
        static const struct {
                const char *name;
                bool optional; /* sqlite makes it when needed */
        } db_files[] = {
                { "meta.db", false },    { "meta.db-wal", true },    { "meta.db-shm", true },
                { "keyring.db", false }, { "keyring.db-wal", true }, { "keyring.db-shm", true },
                { "space-reserve", true }, /* room for deletions on a full disk (vault.c) */
        };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(db_files); i++)
                r = landlock_allow_in(rs, v, db_files[i].name, FS_FILE_RW, handled, db_files[i].optional);
        /* Listing the data directory (names only, keys/ included) lets sqlite fsync it after
         * making a -wal file; reading or removing what is in it stays denied. */
        if (r >= 0)
                r = landlock_allow(rs, vault_dir(v), LANDLOCK_ACCESS_FS_READ_DIR, handled, false);
        if (r >= 0)
                r = landlock_allow_in(rs, v, "objects", FS_TREE_RW, handled, false);
        if (r >= 0)
                r = landlock_allow_in(rs, v, "tmp", FS_TREE_RW, handled, false);
        if (r >= 0)
                r = landlock_allow_in(rs, v, "audit", FS_TREE_RW, handled, false);
        /* backup/: the results of coffre backup run, for /metrics; made here when missing, so
         * that a first backup after the start is seen without a restart */
        if (r >= 0) {
                char *bdir = vault_path(v, "backup");
                if (bdir && mkdir(bdir, 0700) < 0 && errno != EEXIST)
                        log_warn("sandbox: cannot create %s: %m", bdir);
                free(bdir);
                r = landlock_allow_in(rs, v, "backup", FS_READ, handled, true);
        }
        /* tls/ as a directory, so that a renewed pair (a new file renamed in) stays readable;
         * a pair configured elsewhere, as those two files only. */
        if (r >= 0)
                r = landlock_allow_in(rs, v, "tls", FS_READ, handled, true);
        if (r >= 0)
                r = landlock_allow_in(rs, v, c->tls_cert, LANDLOCK_ACCESS_FS_READ_FILE, handled, false);
        if (r >= 0)
                r = landlock_allow_in(rs, v, c->tls_key, LANDLOCK_ACCESS_FS_READ_FILE, handled, false);
        /* A master key on a PKCS#11 token: the module's token store (SoftHSM2 rereads its object
         * files on use), only when the operator names it. */
        for (size_t i = 0; r >= 0 && p11_uri_is(c->master_key) && i < c->n_pkcs11_path; i++)
                r = landlock_allow(rs, c->pkcs11_path[i], FS_TREE_RW, handled, false);
        if (r >= 0)
                r = landlock_allow(rs, "/dev/urandom", LANDLOCK_ACCESS_FS_READ_FILE, handled, true);
        if (r >= 0)
                r = landlock_allow(rs, "/dev/null", FS_FILE_RW, handled, true);
        /* the time zones of retention dates (core/retention.c), read-only */
        if (r >= 0)
                r = landlock_allow(rs, "/usr/share/zoneinfo", FS_READ, handled, true);
#ifdef SANDBOX_FOR_SANITIZER
        if (r >= 0)
                r = landlock_allow(rs, "/proc/self", FS_READ, handled, false);
#endif
        unsigned port = 0;
        if (r >= 0 && abi >= 4 && (r = tsa_port(c, &port)) >= 0 && port) {
                /* the external TSA: connections to its port, nothing else */
                struct sb_net_port_attr np = { .allowed_access = SB_LANDLOCK_ACCESS_NET_CONNECT_TCP, .port = port };
                if (syscall(SYS_landlock_add_rule, rs, SB_LANDLOCK_RULE_NET_PORT, &np, 0) < 0)
                        r = log_error_errno(-errno, "sandbox: landlock rule for TCP port %u: %m", port);
        }
        if (r >= 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
                r = log_error_errno(-errno, "sandbox: cannot enforce the Landlock ruleset: %m");
        close(rs);
        return r;
}

/* The system calls the server makes once serving (seen with strace -f attached to it over the
 * integration suites, see docs/security.md), plus the few that a path those runs did not take
 * needs (marked), and nothing else. */
static const int seccomp_allowed[] = {
        /* files and descriptors: which files, Landlock decides */
        SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(openat), SCMP_SYS(close),
        SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(lseek), SCMP_SYS(fcntl), SCMP_SYS(fsync),
        SCMP_SYS(fdatasync), SCMP_SYS(sync_file_range), SCMP_SYS(ftruncate), SCMP_SYS(truncate), SCMP_SYS(fallocate), SCMP_SYS(fchmod), SCMP_SYS(rename),
        SCMP_SYS(renameat2), SCMP_SYS(unlinkat), SCMP_SYS(mkdirat),
        SCMP_SYS(linkat),      /* blob/fs.c: where renameat2(RENAME_NOREPLACE) is not supported */
        SCMP_SYS(unlink),      /* fileio.c: a failed atomic write removes its temporary file */
        SCMP_SYS(mkdir),       /* fileio.c: mkdir_p */
        SCMP_SYS(getdents64),  /* readdir() */
        SCMP_SYS(dup),         /* fdopendir() on a copy of a directory descriptor */
        SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), /* sqlite's checks for a hot journal */
        SCMP_SYS(flock),       /* audit/lock */
        /* sockets already bound and connected: accept and talk, nothing else */
        SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(sendmsg), SCMP_SYS(shutdown),
        SCMP_SYS(getsockname), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(poll), SCMP_SYS(eventfd2),
        SCMP_SYS(recvmsg),     /* the signer's channel */
        /* memory */
        SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(munlock),
        SCMP_SYS(brk), SCMP_SYS(mremap), SCMP_SYS(mlock), /* malloc, realloc, sodium_malloc */
        /* threads, time, signals, exit */
        SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(exit),
        SCMP_SYS(exit_group), SCMP_SYS(getpid), SCMP_SYS(getrandom), SCMP_SYS(prctl), SCMP_SYS(rt_sigaction),
        SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigtimedwait), SCMP_SYS(clock_nanosleep), SCMP_SYS(wait4),
        SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(nanosleep), /* vDSO fallbacks */
        SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall),
        SCMP_SYS(kill),        /* the signer, when it stops answering */
        SCMP_SYS(gettid), SCMP_SYS(tgkill), /* abort() on a failed assertion */
        SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity), SCMP_SYS(geteuid), SCMP_SYS(getrusage),
#ifdef SANDBOX_FOR_SANITIZER
        /* LeakSanitizer at exit, and the sanitizers' own raw system calls */
        SCMP_SYS(ptrace), SCMP_SYS(getdents), SCMP_SYS(waitid), SCMP_SYS(open), SCMP_SYS(stat), SCMP_SYS(lstat),
        SCMP_SYS(readlink), SCMP_SYS(sigaltstack), SCMP_SYS(getppid), SCMP_SYS(uname),
#endif
};

/* Calls with no use in a running server and every use in an exploit: these kill the process
 * instead of failing with EPERM. */
static const int seccomp_killed[] = {
        SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
#ifndef SANDBOX_FOR_SANITIZER
        SCMP_SYS(ptrace),
#endif
};

/* clone()'s flags are its first argument, except on s390 where they come second. */
#if defined(__s390__) || defined(__s390x__)
#define CLONE_FLAGS_ARG SCMP_A1
#else
#define CLONE_FLAGS_ARG SCMP_A0
#endif

/* What libcurl needs to reach the external TSA of [tsa] url (a numeric address or a name the
 * resolver finds without files outside the sandbox). */
static const int seccomp_tsa_client[] = {
        SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(getpeername), SCMP_SYS(socketpair), SCMP_SYS(pipe2),
        SCMP_SYS(ioctl), /* FIONREAD */
};

static int sandbox_seccomp(const struct vault_config *c) {
        /* Anything else fails with EPERM: the server keeps running and in-flight uploads finish,
         * and the caller sees an error it already handles. */
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (!ctx)
                return log_error_errno(-ENOMEM, "sandbox: cannot make a seccomp filter");
        /* Applies to every thread, not just this one (there should be no other yet). */
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(seccomp_allowed); i++)
                if (seccomp_allowed[i] >= 0) /* a call this architecture lacks is skipped */
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_allowed[i], 0);
        for (size_t i = 0; r >= 0 && c->tsa_url[0] && i < ELEMENTSOF(seccomp_tsa_client); i++)
                if (seccomp_tsa_client[i] >= 0)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_tsa_client[i], 0);
        /* New threads, never new processes: clone3 hides its flags from seccomp, so it answers
         * ENOSYS and glibc falls back to clone, allowed with CLONE_THREAD only. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                     CLONE_FLAGS_ARG(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
#ifdef SANDBOX_FOR_SANITIZER
        if (r >= 0) /* LeakSanitizer's tracer: a task sharing our memory, not a fork */
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                     CLONE_FLAGS_ARG(SCMP_CMP_MASKED_EQ, CLONE_VM, CLONE_VM));
#endif
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(seccomp_killed); i++)
                if (seccomp_killed[i] >= 0)
                        r = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, seccomp_killed[i], 0);
        if (r >= 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        if (r < 0)
                return log_error_errno(r, "sandbox: cannot install the seccomp filter: %s", strerror(-r));
        return 0;
}

/* Landlock binds only the calling thread and the children it makes from then on. */
static int count_threads(void) {
        DIR *d = opendir("/proc/self/task");
        if (!d)
                return -errno;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* The sandbox lets no file be removed from the data directory, so sqlite cannot delete a -wal at
 * its last close. Left with its frames, that -wal would be replayed over whatever meta.db or
 * keyring.db is there at the next start (an older copy put back, say), and would keep wrapped
 * keys an erasure destroyed. In persistent-WAL mode with a size limit, sqlite instead truncates
 * the -wal to zero bytes at the last close, once its checkpoint has completed. */
static int sqlite_keep_wal(sqlite3 *db, char **err, const struct sqlite3_api_routines *api) {
        int one = 1;
        (void) sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &one);
        return sqlite3_exec(db, "PRAGMA journal_size_limit = 1073741824", NULL, NULL, err);
}

int vault_sandbox_prepare(const char *data_dir) {
        /* sqlite's temporary files (large sorts, statement journals; unlinked as soon as made)
         * go to DATA/tmp/, inside the sandbox, rather than /var/tmp or /tmp. Set before any
         * connection exists, as sqlite requires. */
        _cleanup_free_ char *tmp = path_join(data_dir, "tmp");
        char *dir = tmp ? sqlite3_mprintf("%s", tmp) : NULL;
        if (!dir)
                return log_error_errno(-ENOMEM, "sandbox: out of memory");
        sqlite3_free(sqlite3_temp_directory);
        sqlite3_temp_directory = dir;
        int rc = sqlite3_auto_extension((void (*)(void)) sqlite_keep_wal);
        return rc == SQLITE_OK ? 0 : log_error_errno(-ENOMEM, "sandbox: cannot prepare sqlite: %s", sqlite3_errstr(rc));
}

int vault_sandbox(const struct vault *v) {
        int n = count_threads();
        if (n < 0)
                return log_error_errno(n, "sandbox: cannot count the process's threads: %s", strerror(-n));
        if (n != 1) {
                log_error("sandbox: the process already runs %d threads; refusing to start half confined", n);
                return -EBUSY;
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(-errno, "sandbox: cannot set no-new-privileges: %m");
        int abi = 0;
        int r = sandbox_landlock(v, &abi);
        if (r < 0)
                return r;
        r = sandbox_seccomp(vault_get_config(v));
        if (r < 0)
                return r;
        char abi_s[12];
        snprintf(abi_s, sizeof abi_s, "%d", abi > 0 ? abi : 0);
        log_fields(LOG_LEVEL_INFO, "sandbox on", "landlock_abi", abi_s, "seccomp", "allow-list", NULL);
#ifdef SANDBOX_FOR_SANITIZER
        log_warn("sandbox: sanitizer build, /proc/self and ptrace stay allowed for LeakSanitizer");
#endif
        return 0;
}
