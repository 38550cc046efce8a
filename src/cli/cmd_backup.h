/* cmd_backup.h: `coffre backup init | run | list | verify` and `coffre restore`. */
#pragma once

int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
