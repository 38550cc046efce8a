/* testhook.c: /v1/_test/ routes, built only with -Dtest_hooks=true. They let the integration tests
 * see the sandbox from inside a request handler, where an HTTP parsing bug would run: what an
 * open() of a key file or a system call outside the allow-list gives. Never in a release build. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "core/accounts.h"

static json_t *errno_json(const char *what, int err) {
        return json_pack("{s:s, s:i, s:s}", "call", what, "errno", err, "error", err ? strerrorname_np(err) : "OK");
}

/* GET /v1/_test/open?path=P&mode=read|write: P relative to the data directory, or absolute. */
int api_test_open(struct http_request *r) {
        const char *path = http_query(r, "path"), *mode = http_query(r, "mode");
        if (!path || !path[0])
                return http_respond_problem(r, 400, "bad-request", "path is required", NULL);
        if (!mode)
                mode = "read";
        int flags;
        if (strcmp(mode, "read") == 0)
                flags = O_RDONLY;
        else if (strcmp(mode, "write") == 0)
                flags = O_WRONLY | O_APPEND; /* opens for writing, writes nothing */
        else
                return http_respond_problem(r, 400, "bad-request", "mode is read or write", NULL);
        _cleanup_free_ char *p = vault_path(http_vault(r), path);
        if (!p)
                return http_respond_errno(r, -ENOMEM, "out of memory");
        int fd = open(p, flags | O_CLOEXEC | O_NOCTTY);
        int err = fd < 0 ? errno : 0;
        if (fd >= 0)
                close(fd);
        return http_respond_json(r, 200, errno_json("open", err));
}

/* GET /v1/_test/syscall?call=unshare|fork: unshare(0), a no-op, or fork() with a child that exits
 * at once; the seccomp allow-list lets neither through. */
int api_test_syscall(struct http_request *r) {
        const char *call = http_query(r, "call");
        int err = 0;
        if (call && strcmp(call, "unshare") == 0) {
                if (syscall(SYS_unshare, 0) < 0)
                        err = errno;
        } else if (call && strcmp(call, "fork") == 0) {
                pid_t pid = fork();
                if (pid == 0)
                        _exit(0);
                if (pid < 0)
                        err = errno;
                else
                        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                                ;
        } else
                return http_respond_problem(r, 400, "bad-request", "call is unshare or fork", NULL);
        return http_respond_json(r, 200, errno_json(call, err));
}

/* POST /v1/_test/clock?shift_ms=N: moves the accounts' clock (sessions, TOTP steps, rate limits)
 * by N milliseconds (may be negative) and answers the clock's time, so that expiry is tested
 * without sleeping. */
int api_test_clock(struct http_request *r) {
        const char *v = http_query(r, "shift_ms");
        struct accounts *a = vault_accounts(http_vault(r));
        if (v) {
                char *end = NULL;
                errno = 0;
                long long d = strtoll(v, &end, 10);
                if (errno || !*v || *end)
                        return http_respond_problem(r, 400, "bad-request", "shift_ms is an integer", NULL);
                accounts_clock_shift(a, (int64_t) d);
        }
        return http_respond_json(r, 200, json_pack("{s:I}", "now_ms", (json_int_t) accounts_now_ms(a)));
}
