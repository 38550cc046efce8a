/* commands.h: the client commands main.c dispatches to. Each takes the arguments from the
 * command's name on (argv[0] = "put", ...) and returns the process exit code. */
#pragma once

enum {
        CLI_EXIT_OK = 0,
        CLI_EXIT_FAILURE = 1,
        CLI_EXIT_USAGE = 2,
        CLI_EXIT_VERIFY = 3, /* what the server holds or sent does not match its SHA-256 */
};

/* coffre put FILE... [--class C] [--name N] [--json] */
int cmd_put(int argc, char **argv);
/* coffre get ID [-o FILE] */
int cmd_get(int argc, char **argv);
/* coffre evidence ID -o FILE.asics */
int cmd_evidence(int argc, char **argv);
/* coffre ls [--class C] [--after DATE] [--before DATE] [--limit N] [--json] */
int cmd_ls(int argc, char **argv);
/* coffre rm ID... */
int cmd_rm(int argc, char **argv);

/* coffre login [--email E] [--json]: asks the password (and code) and saves the session */
int cmd_login(int argc, char **argv);
/* coffre logout [--all] */
int cmd_logout(int argc, char **argv);
/* coffre 2fa enroll|disable */
int cmd_2fa(int argc, char **argv);
/* coffre user add|ls|rm|role, coffre token create|ls|revoke, coffre org add|ls|suspend */
int cmd_user(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_org(int argc, char **argv);
/* coffre verify --tsr REPLY | --token TOKEN --data FILE --ca CA.pem (offline) */
int cmd_verify(int argc, char **argv);
