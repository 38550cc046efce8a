/* prompt.c: reading a line from the user, without echo for secrets (termios), into secure memory. */
#include "prompt.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "progress.h"

static struct termios saved;
static volatile sig_atomic_t echo_off;

static void restore_echo(void) {
        if (echo_off) {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
                echo_off = 0;
        }
}

/* A signal while echo is off: put the terminal back, then die of the signal as usual. */
static void on_signal(int sig) {
        restore_echo();
        signal(sig, SIG_DFL);
        raise(sig);
}

bool prompt_interactive(void) {
        return isatty(STDIN_FILENO) == 1;
}

void prompt_free(char *line) {
        if (line)
                sodium_free(line);
}

int prompt_line(const char *prompt, bool secret, size_t max, char **ret) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
        struct sigaction sa = { .sa_handler = on_signal }, old[3];
        bool tty = prompt_interactive();
        size_t n = 0;
        bool too_long = false, got_newline = false, handlers = false;
        int r = 0;

        char *line = sodium_malloc(max + 1);
        if (!line)
                return -ENOMEM;
        if (tty) {
                /* echo off before the prompt, as getpass does: what was typed ahead is dropped,
                 * and what is typed once the prompt shows is never echoed */
                if (secret && tcgetattr(STDIN_FILENO, &saved) == 0) {
                        struct termios t = saved;
                        t.c_lflag &= ~(tcflag_t) (ECHO | ECHONL);
                        for (size_t i = 0; i < 3; i++)
                                sigaction(sigs[i], &sa, &old[i]);
                        handlers = true;
                        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
                                echo_off = 1;
                }
                fputs(prompt, stderr);
                fflush(stderr);
        }
        /* one byte at a time: nothing beyond this line is read (the next prompt's) or buffered */
        for (;;) {
                char ch;
                ssize_t k = read(STDIN_FILENO, &ch, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0)
                        break;
                if (ch == '\n') {
                        got_newline = true;
                        break;
                }
                if (n < max)
                        line[n++] = ch;
                else
                        too_long = true;
        }
        if (tty && secret) {
                restore_echo();
                for (size_t i = 0; i < 3 && handlers; i++)
                        sigaction(sigs[i], &old[i], NULL);
                fputc('\n', stderr); /* the newline the user typed was not echoed */
        }
        if (n > 0 && line[n - 1] == '\r')
                n--;
        line[n] = 0;
        if (r == 0 && too_long) {
                cli_error("the input is longer than %zu bytes", max);
                r = -E2BIG;
        } else if (r == 0 && n == 0 && !got_newline) {
                cli_error("no input: the end of standard input came first");
                r = -ENODATA;
        } else if (r < 0)
                cli_error("cannot read standard input: %s", strerror(-r));
        if (r < 0) {
                sodium_free(line);
                return r;
        }
        *ret = line;
        return 0;
}
