/* cmd_server.h: server-side commands (init, serve, key) that main.c dispatches to. */
#pragma once

int cmd_init(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_repair(int argc, char **argv);
