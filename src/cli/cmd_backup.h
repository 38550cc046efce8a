/* cmd_backup.h: `coffre backup` (cmd_backup.c, cmd_restore.c) and `coffre restore` (cmd_restore.c). */
#pragma once

int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
