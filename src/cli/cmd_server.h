/* cmd_server.h: server-side commands (init, serve, key, tls) that main.c dispatches to. */
#pragma once

int cmd_init(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_key(int argc, char **argv);
/* coffre tls renew --data DIR [--rotate-key] [--days N] [--force] */
int cmd_tls(int argc, char **argv);
int cmd_repair(int argc, char **argv);
/* coffre lifecycle run --data DIR [--dry-run]: one sweep of expired documents, offline */
int cmd_lifecycle(int argc, char **argv);
