#!/bin/sh
# Fails when src/ uses an unbounded string function (see STYLE.md, "Safety"), and also when the
# search itself fails (a missing directory, an unreadable file): grep exits 1 for "no match",
# 2 for an error, and only "no match" is a pass.
dir=${1:-src}
if [ ! -d "$dir" ]; then
        echo "check-banned: $dir: no such directory" >&2
        exit 2
fi
hits=$(grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok)[[:space:]]*\(' "$dir" --include='*.c' --include='*.h')
rc=$?
if [ "$rc" -gt 1 ]; then
        echo "check-banned: grep failed (exit $rc) on $dir" >&2
        exit 2
fi
if [ -n "$hits" ]; then
        echo "banned functions in use:" >&2
        echo "$hits" >&2
        exit 1
fi
exit 0
