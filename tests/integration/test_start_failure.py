#!/usr/bin/env python3
"""test_start_failure.py: a start that fails after the HTTPS server is up releases it cleanly.

`coffre serve --port-file` into a missing directory fails once the server listens: it must exit 1
with a message naming the file, and close each descriptor once (run under strace: no close()
may fail with EBADF, the sign of a descriptor closed twice, which could close another thread's
file). strace comes from scripts/install-deps.
Usage: test_start_failure.py PATH/TO/coffre
"""

import os
import shutil
import subprocess
import sys

from harness import TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"


def traced_env():
    """LeakSanitizer cannot run under ptrace (it aborts): in a sanitizer build, the traced
    server runs without it; ASan's other checks stay on."""
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "detect_leaks=0"
    return env


def test_port_file_failure_closes_once():
    if shutil.which("strace") is None:
        raise TestFailure("strace is not installed (run scripts/install-deps)")
    with Vault(BINARY) as v:
        trace = os.path.join(v.base, "strace.txt")
        port_file = os.path.join(v.base, "no-such-dir", "port")
        r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=close", "-o", trace, v.binary, "serve", "--data",
                            v.data, "--listen", "127.0.0.1:0", "--port-file", port_file],
                           capture_output=True, timeout=120, env=traced_env())
        check(r.returncode == 1, "serve with an unwritable port file: exit %d, want 1" % r.returncode, r.stderr[-800:])
        check(("cannot write %s" % port_file).encode() in r.stderr, "no message naming the port file", r.stderr[-800:])
        with open(trace) as f:
            lines = f.read().splitlines()
        check(any("close(" in l for l in lines), "strace saw no close() at all", lines[-5:])
        bad = [l for l in lines if "EBADF" in l]
        check(not bad, "descriptors closed twice", "\n".join(bad))


if __name__ == "__main__":
    sys.exit(exit_status(run_tests([test_port_file_failure_closes_once])))
