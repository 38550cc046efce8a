#!/bin/sh
# Fails when src/ uses an unbounded string function (see STYLE.md, "Safety").
dir=${1:-src}
hits=$(grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok)[[:space:]]*\(' "$dir" --include='*.c' --include='*.h')
if [ -n "$hits" ]; then
        echo "banned functions in use:" >&2
        echo "$hits" >&2
        exit 1
fi
exit 0
