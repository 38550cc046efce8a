#!/usr/bin/env python3
"""Sums Meson testlog.json files into one closing line: 'N passed, N failed[, N skipped]'.
Exits 1 when a test failed or when no test ran."""
import json
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print("missing test log %s: %s" % (path, e), file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        r = t.get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
            print("skipped: %s (%s)" % (t.get("name"), path), file=sys.stderr)
        else:
            failed += 1
            print("failed: %s (%s): %s" % (t.get("name"), path, r), file=sys.stderr)
line = "%d passed, %d failed" % (passed, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(1 if failed or passed == 0 else 0)
