#!/usr/bin/env python3
"""test_metrics.py: who may read /metrics, and the document counters behind it.

By default ([server] metrics = token) /metrics needs an admin bearer token: none or a wrong one
gets a 401 problem. `loopback` opens it to 127.0.0.0/8 and ::1 without a token, `public` to
anyone, and a bad value stops the start. The document gauges are counted once at start and then
follow uploads and deletions. Bad values of the settings added with these checks (metrics,
header_timeout, body_rate_window, body_min_rate, cosigned_checkpoints) stop the start.
Usage: test_metrics.py PATH/TO/coffre
"""

import os
import re
import subprocess
import sys

from harness import Vault, check, exit_status, expect_problem, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"


def set_metrics(v, value):
    conf = os.path.join(v.data, "coffre.conf")
    with open(conf) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^metrics = .*$", "metrics = %s" % value, text)
    check(n == 1, "coffre.conf has no metrics line")
    with open(conf, "w") as f:
        f.write(text)


def gauge(body, name):
    m = re.search(rb"(?m)^%s (\d+)$" % name.encode(), body)
    check(m is not None, "no %s in /metrics" % name, body[:1500])
    return int(m.group(1))


def test_token_needed_by_default():
    with Vault(BINARY) as v:
        v.start()
        r = v.request("GET", "/metrics", auth=False)
        expect_problem(r, 401, "unauthorized")
        check(b"coffre_" not in r.body, "a refused /metrics leaked metrics")
        r = v.request("GET", "/metrics", auth=False, headers={"Authorization": "Bearer not-a-token"})
        expect_problem(r, 401, "unauthorized")
        r = v.request("GET", "/metrics")
        check(r.status == 200, "/metrics with the admin token: %d" % r.status)
        check(v.stop() == 0, "SIGTERM did not exit 0")


def test_loopback_and_public_modes():
    with Vault(BINARY) as v:
        for mode in ("loopback", "public"):
            set_metrics(v, mode)
            v.start()
            r = v.request("GET", "/metrics", auth=False)
            check(r.status == 200, "/metrics without token in %s mode: %d" % (mode, r.status))
            check(v.stop() == 0, "SIGTERM did not exit 0")


def test_bad_settings_refused():
    """Each new setting's bad values stop the start with the line number, and change nothing."""
    with Vault(BINARY) as v:
        conf = os.path.join(v.data, "coffre.conf")
        with open(conf) as f:
            good = f.read()
        for section, line in (("[server]", "metrics = everyone"), ("[server]", "header_timeout = 0"),
                              ("[server]", "body_rate_window = 0"), ("[server]", "body_min_rate = -1"),
                              ("[audit]", "cosigned_checkpoints = 0"), ("[audit]", "cosigned_checkpoints = 1025")):
            with open(conf, "w") as f:
                f.write(good.replace(section + "\n", section + "\n" + line + "\n", 1))
            r = subprocess.run([v.binary, "serve", "--data", v.data, "--listen", "127.0.0.1:0"],
                               capture_output=True, timeout=60)
            check(r.returncode == 1 and b"invalid setting on line" in r.stderr,
                  "serve with %s: exit %d" % (line, r.returncode), r.stderr[-500:])
        with open(conf, "w") as f:
            f.write(good)
        v.start()
        check(v.request("GET", "/healthz", auth=False).status == 200, "the vault does not start again")
        check(v.stop() == 0, "SIGTERM did not exit 0")


def test_document_counters():
    with Vault(BINARY) as v:
        v.start()
        a = v.upload_ok(b"a" * 1000)
        v.upload_ok(b"b" * 234)
        body = v.request("GET", "/metrics").body
        check(gauge(body, "coffre_documents_stored") == 2 and gauge(body, "coffre_bytes_stored") == 1234,
              "counters after two uploads", body[-400:])
        check(v.stop() == 0, "SIGTERM did not exit 0")
        v.start()  # counted again from the store at start
        body = v.request("GET", "/metrics").body
        check(gauge(body, "coffre_documents_stored") == 2 and gauge(body, "coffre_bytes_stored") == 1234,
              "counters after a restart", body[-400:])
        r = v.request("DELETE", "/v1/documents/" + a["id"])
        check(r.status == 204, "DELETE by the admin: %d" % r.status, r)
        body = v.request("GET", "/metrics").body
        check(gauge(body, "coffre_documents_stored") == 1 and gauge(body, "coffre_bytes_stored") == 234,
              "counters after a deletion", body[-400:])
        r = v.request("DELETE", "/v1/documents/" + a["id"])
        check(r.status == 410, "second DELETE: %d" % r.status)  # erased: the tombstone answers
        body = v.request("GET", "/metrics").body
        check(gauge(body, "coffre_documents_stored") == 1, "a failed deletion moved the counter")
        check(v.stop() == 0, "SIGTERM did not exit 0")


TESTS = [test_token_needed_by_default, test_loopback_and_public_modes, test_bad_settings_refused,
         test_document_counters]

if __name__ == "__main__":
    sys.exit(exit_status(run_tests(TESTS)))
