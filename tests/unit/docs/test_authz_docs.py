#!/usr/bin/env python3
"""test_authz_docs.py: docs/security.md shows the permission table the code enforces.

Runs `coffre --print-authz` (the table of src/http/authz.c, rendered by the binary) and
compares it with the block between the authz-table markers of docs/security.md. With --write,
replaces that block instead of comparing.
usage: test_authz_docs.py COFFRE_BINARY SOURCE_ROOT [--write]
"""
import difflib
import os
import re
import subprocess
import sys

BEGIN = re.compile(r"^<!-- authz-table:begin.*-->\n", re.M)
END = re.compile(r"^<!-- authz-table:end -->\n", re.M)


def main():
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and sys.argv[3] != "--write"):
        sys.exit(__doc__)
    binary, root = sys.argv[1], sys.argv[2]
    path = os.path.join(root, "docs", "security.md")
    r = subprocess.run([binary, "--print-authz"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not r.stdout.startswith("| route |"):
        sys.exit("coffre --print-authz failed (exit %d): %s" % (r.returncode, r.stderr))
    code = r.stdout
    with open(path, encoding="utf-8") as f:
        text = f.read()
    b, e = BEGIN.search(text), END.search(text)
    if not b or not e or e.start() < b.end():
        sys.exit("docs/security.md has no authz-table:begin/end block")
    if len(BEGIN.findall(text)) != 1 or len(END.findall(text)) != 1:
        sys.exit("docs/security.md has more than one authz-table block")
    docs = text[b.end():e.start()]
    if len(sys.argv) == 4:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text[:b.end()] + code + text[e.start():])
        print("docs/security.md: permission table rewritten (%d lines)" % code.count("\n"))
        return
    if docs != code:
        diff = difflib.unified_diff(docs.splitlines(True), code.splitlines(True), "docs/security.md",
                                    "coffre --print-authz")
        sys.stdout.writelines(diff)
        sys.exit("docs/security.md's permission table differs from the code's (see the diff above); "
                 "rewrite it with: %s %s %s --write" % (sys.argv[0], binary, root))
    rows = code.count("\n") - 2
    if rows < 10:
        sys.exit("only %d rows in the permission table" % rows)
    print("docs/security.md's permission table is the code's (%d routes)" % rows)


main()
