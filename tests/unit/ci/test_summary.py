#!/usr/bin/env python3
"""test_summary.py: scripts/test-summary.py counts what this run did, and nothing else.

Feeds it hand-made Meson testlog.json files (cmocka and harness output, a truncated line, an old
log, a short log, skips with and without CI=true) and checks its closing line and exit status.
usage: test_summary.py PATH/TO/scripts/test-summary.py
"""
import json
import os
import subprocess
import sys
import tempfile
import time

SCRIPT = sys.argv[1]
T0 = time.time()
failures = []

CMOCKA_OK = ("[==========] Running 2 test(s).\n[ RUN      ] test_a\n[       OK ] test_a\n"
             "[ RUN      ] test_b\n[       OK ] test_b\n[==========] 2 test(s) run.\n")
CMOCKA_FAIL = ("[ RUN      ] test_a\n[       OK ] test_a\n[ RUN      ] test_b\n[  FAILED  ] test_b\n"
               "[==========] 2 test(s) run.\n")
CMOCKA_FAIL_ERR = "[  ERROR   ] --- 0x1 != 0x2\n[  FAILED  ] 1 test(s), listed below:\n[  FAILED  ] test_b\n"
CMOCKA_SKIP = ("[ RUN      ] test_a\n[       OK ] test_a\n[ RUN      ] test_throughput\n"
               "[  SKIPPED ] test_throughput\n[==========] 2 test(s) run.\n")
CMOCKA_SKIP_ERR = "[  SKIPPED ] 1 test(s), listed below:\n[  SKIPPED ] test_throughput\n"
CMOCKA_CRASH = "[ RUN      ] test_a\n[       OK ] test_a\n[ RUN      ] test_b\n"
HARNESS = "ok   test_one (0.10s)\nFAIL test_two (0.20s)\nok   test_three (1.00s)\n2 passed, 1 failed\n"


def entry(name, result, stdout="", stderr=None, start=None, rc=0):
    t = {"name": "coffre:unit / " + name, "result": result, "stdout": stdout,
         "starttime": T0 + 1 if start is None else start, "returncode": rc}
    if stderr is not None:
        t["stderr"] = stderr
    return json.dumps(t)


def run(lines, min_tests=None, ci=False, mtime=None, since=True, extra_logs=()):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "testlog.json")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        args = [sys.executable, SCRIPT]
        if since:
            args += ["--since", "%f" % T0]
        args += ["--log", path, str(len(lines) if min_tests is None else min_tests)]
        for p in extra_logs:
            args += ["--log", os.path.join(d, p), "1"]
        env = dict(os.environ)
        env.pop("CI", None)
        if ci:
            env["CI"] = "true"
        r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
        out = r.stdout.strip().splitlines()
        return (out[-1] if out else ""), r.returncode, r.stderr


def expect(what, got, line, rc):
    if (got[0], got[1]) != (line, rc):
        failures.append("%s: got %r exit %d, want %r exit %d\n%s" % (what, got[0], got[1], line, rc, got[2]))
    else:
        print("ok   %s" % what)


expect("cmocka cases are counted one by one",
       run([entry("a", "OK", CMOCKA_OK)]), "2 passed, 0 failed", 0)
expect("a failed cmocka case counts once, even listed again in the summary",
       run([entry("a", "FAIL", CMOCKA_FAIL, CMOCKA_FAIL_ERR, rc=1)]), "1 passed, 1 failed", 1)
expect("a case that never finished (crash) is a failure",
       run([entry("a", "FAIL", CMOCKA_CRASH, rc=-11)]), "1 passed, 1 failed", 1)
expect("a failing exit after passing cases is a failure (sanitizer report at exit)",
       run([entry("a", "FAIL", CMOCKA_OK, rc=1)]), "2 passed, 1 failed", 1)
expect("harness cases are counted one by one",
       run([entry("h", "FAIL", HARNESS, rc=1)]), "2 passed, 1 failed", 1)
expect("a test without case output counts as one",
       run([entry("plain", "OK", "all good\n")]), "1 passed, 0 failed", 0)
expect("a truncated line is a failure and the rest is still counted",
       run([entry("a", "OK", CMOCKA_OK), entry("b", "OK", CMOCKA_OK)[:40]], min_tests=1),
       "2 passed, 1 failed", 1)
expect("fewer tests than expected is a failure",
       run([entry("a", "OK", CMOCKA_OK)], min_tests=5), "2 passed, 1 failed", 1)
expect("a log written before the run started is not counted",
       run([entry("a", "OK", CMOCKA_OK)], mtime=T0 - 3600), "0 passed, 1 failed", 1)
expect("a test started before the run is not counted",
       run([entry("a", "OK", CMOCKA_OK, start=T0 - 60), entry("b", "OK", "fine\n")]), "1 passed, 1 failed", 1)
expect("a missing log is a failure",
       run([entry("a", "OK", CMOCKA_OK)], extra_logs=["nope.json"]), "2 passed, 1 failed", 1)
expect("an empty log is a failure, not 0 passed 0 failed",
       run([], min_tests=1), "0 passed, 1 failed", 1)
expect("exit 77 outside CI is a skip, not a pass",
       run([entry("diskfull", "SKIP", "SKIP: no tmpfs\n", rc=77), entry("b", "OK", "x\n")]),
       "1 passed, 0 failed", 0)
expect("exit 77 in CI is a failure",
       run([entry("diskfull", "SKIP", "SKIP: no tmpfs\n", rc=77), entry("b", "OK", "x\n")], ci=True),
       "1 passed, 1 failed", 1)
expect("a cmocka skip() in CI is a failure",
       run([entry("store", "OK", CMOCKA_SKIP.replace("test_throughput", "test_x"),
                  CMOCKA_SKIP_ERR.replace("test_throughput", "test_x"))], ci=True), "1 passed, 1 failed", 1)
expect("an allowed cmocka skip in CI is not a failure",
       run([entry("crypto-object-stream", "OK", CMOCKA_SKIP, CMOCKA_SKIP_ERR)], ci=True), "1 passed, 0 failed", 0)
expect("nothing passed is an error even with nothing failed",
       run([entry("diskfull", "SKIP", "", rc=77)]), "0 passed, 0 failed", 1)

if failures:
    print("\n".join("FAIL " + f for f in failures))
    sys.exit(1)
print("all %s checks passed" % "test-summary")
