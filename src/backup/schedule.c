/* schedule.c: the backup scheduler process of `coffre serve` (see schedule.h). */
#include "backup/schedule.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup/prune.h"
#include "fileio.h"
#include "log.h"

struct sched_conf {
        unsigned destinations;
        int64_t interval;
        bool off;
        bool bad;
};

static int handler(void *ud, const char *section, const char *name, const char *value) {
        struct sched_conf *c = ud;
        if (strcmp(section, "backup") != 0)
                return 1;
        if (strcmp(name, "destination") == 0 || strcmp(name, "keyring_destination") == 0)
                c->destinations++;
        else if (strcmp(name, "interval") == 0) {
                if (strcmp(value, "off") == 0)
                        c->off = true;
                else if (backup_parse_duration(value, &c->interval) < 0)
                        c->bad = true;
        }
        return 1;
}

static _noreturn_ void scheduler_main(const char *data_dir, int64_t interval, pid_t parent) {
        sigset_t all;
        struct timespec now;
        int64_t next;

        log_set_component("backup-scheduler");
        (void) prctl(PR_SET_NAME, "coffre-backups");
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                _exit(1);
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        (void) signal(SIGINT, SIG_IGN); /* a Ctrl-C reaches the group: the server stops us */
        (void) signal(SIGHUP, SIG_IGN);
        if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0)
                for (int fd = 3; fd < 1024; fd++)
                        close(fd);
        (void) setpriority(PRIO_PROCESS, 0, 10);
        clock_gettime(CLOCK_MONOTONIC, &now);
        next = (int64_t) now.tv_sec + interval;
        for (;;) {
                clock_gettime(CLOCK_MONOTONIC, &now);
                if ((int64_t) now.tv_sec < next) {
                        struct timespec d = { .tv_sec = (time_t) (next - (int64_t) now.tv_sec) };
                        (void) nanosleep(&d, NULL);
                        continue;
                }
                pid_t pid = fork();
                if (pid == 0) {
                        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                        if (null >= 0)
                                (void) dup2(null, STDOUT_FILENO);
                        execl("/proc/self/exe", "coffre", "backup", "run", "--data", data_dir, (char *) NULL);
                        _exit(127);
                }
                int status = 0;
                if (pid < 0)
                        log_warn("cannot start the scheduled backup: %m");
                else {
                        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                                ;
                        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                                log_warn("the scheduled backup failed (exit %d): see the lines above; it is retried "
                                         "at the next interval",
                                         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                        else
                                log_info("scheduled backup done");
                }
                clock_gettime(CLOCK_MONOTONIC, &now);
                next += interval;
                if (next <= (int64_t) now.tv_sec)
                        next = (int64_t) now.tv_sec + interval; /* a run longer than the interval */
        }
}

int backup_schedule_start(const char *data_dir, pid_t *ret_pid) {
        _cleanup_free_ char *conf = path_join(data_dir, "coffre.conf");
        struct sched_conf c = { .interval = 3600 };
        pid_t parent = getpid(), pid;

        *ret_pid = 0;
        if (!conf)
                return -ENOMEM;
        if (ini_parse(conf, handler, &c) < 0)
                return 0; /* the vault's own loader says what is wrong with the file */
        if (c.bad)
                return log_error_errno(-EINVAL, "coffre.conf: [backup] interval wants off or a duration such "
                                                "as 30m, 1h or 1d");
        if (c.off || c.destinations == 0)
                return 0;
        pid = fork();
        if (pid < 0)
                return log_error_errno(negative_errno(), "cannot start the backup scheduler: %m");
        if (pid == 0)
                scheduler_main(data_dir, c.interval, parent);
        log_info("backups scheduled every %lld s", (long long) c.interval);
        *ret_pid = pid;
        return 0;
}

void backup_schedule_stop(pid_t pid) {
        if (pid <= 0)
                return;
        (void) kill(pid, SIGTERM);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}
