#!/usr/bin/env python3
"""check-paths.py: fails when a file of the repository refers to something outside the checkout.

A clone of coffre must build and pass its tests wherever it is put, so no test, script, build
file or document may name the directory beside the repository that held the original test data,
nor an absolute path of somebody's machine (home directories, build hosts). System paths that
exist everywhere (/usr, /dev, /proc, /tmp as a temporary base) are fine.

usage: check-paths.py SOURCE_ROOT      exit 0: clean, 1: a reference was found, 2: usage error
"""
import os
import re
import subprocess
import sys

# Spelled in two halves so this file does not match itself.
FORBIDDEN = re.compile(
    r"\.\./" + r"shared\b"                            # the data folder beside the repository
    r"|(?<![\w.-])/" + r"(?:work|root|home|Users)/"   # home directories and build hosts
    r"|COFFRE_" + r"SHARED")
# Third-party vectors and fuzz seeds are data, not instructions: their bytes are not read as paths.
SKIP_PREFIXES = ("tests/data/", "fuzz/corpus/", "fuzz/crashes/")


def tracked_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], check=True,
                             capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f]
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []   # not a git checkout (a release tarball): walk it, leaving build trees out
    for d, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs if x != ".git"
                   and not os.path.exists(os.path.join(d, x, "meson-private"))]
        files += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return files


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    root = sys.argv[1]
    found = 0
    checked = 0
    for rel in sorted(tracked_files(root)):
        if rel.startswith(SKIP_PREFIXES):
            continue
        try:
            with open(os.path.join(root, rel), "rb") as f:
                data = f.read()
        except OSError:
            continue   # listed by git but deleted in the work tree
        if b"\0" in data:
            continue   # binary
        checked += 1
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                print("%s:%d: refers outside the checkout: %s" % (rel, n, line.strip()))
                found += 1
    if checked == 0:
        print("check-paths: no file checked under %s" % root, file=sys.stderr)
        return 1
    print("check-paths: %d files checked, %d references outside the checkout" % (checked, found))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
