#!/usr/bin/env python3
"""test_sandbox.py: the server process is confined once it serves (Landlock + seccomp).

With a build made with -Dtest_hooks=true ("hooks"), a request handler tries what an attacker who
took over an HTTP thread would: open every file of keys/ and coffre.conf, open /etc/passwd for
writing, make a system call outside the allow-list. Each must fail (EACCES, EPERM) while the
files the server serves stay reachable, and the same probes succeed with `[server] sandbox =
false`, which shows they can fail. With a normal build ("no-hooks") the probe routes must not
exist at all. In both, documents survive a restart of the confined server.
Usage: test_sandbox.py PATH/TO/coffre hooks|no-hooks
"""

import os
import subprocess
import sys
import urllib.parse

from harness import Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
HOOKS = (sys.argv[2] if len(sys.argv) > 2 else "hooks") == "hooks"


def probe_open(v, path, mode="read"):
    q = urllib.parse.urlencode({"path": path, "mode": mode})
    resp = v.request("GET", "/v1/_test/open?" + q)
    check(resp.status == 200, "probe of %s (%s) answered %d" % (path, mode, resp.status), resp)
    return resp.json()["error"]


def probe_syscall(v, call):
    resp = v.request("GET", "/v1/_test/syscall?call=" + call)
    check(resp.status == 200, "%s probe answered %d" % (call, resp.status), resp)
    return resp.json()["error"]


def disable_sandbox(v):
    with open(os.path.join(v.data, "coffre.conf"), "a") as f:
        f.write("\n[server]\nsandbox = false\n")


def sandbox_log_lines(v):
    return [l for l in v.log_text().decode(errors="replace").splitlines() if "sandbox" in l]


def test_keys_unreadable():
    with Vault(BINARY) as v:
        v.start()
        keys = sorted(os.listdir(os.path.join(v.data, "keys")))
        check("log.key" in keys and "master.key" in keys, "keys/ lacks log.key or master.key", keys)
        for k in keys:
            for mode in ("read", "write"):
                err = probe_open(v, "keys/" + k, mode)
                check(err == "EACCES", "keys/%s opened for %s from a handler: %s" % (k, mode, err))
        # keys/ may be listed (the data directory is, for sqlite's fsync), never opened.
        for path in ("coffre.conf", "bootstrap-token"):
            if os.path.exists(os.path.join(v.data, path)):
                err = probe_open(v, path)
                check(err == "EACCES", "%s opened from a handler: %s" % (path, err))
        check(v.stop() == 0, "SIGTERM of the confined server did not exit 0", v.log_tail())


def test_outside_data_dir_denied():
    with Vault(BINARY) as v:
        v.start()
        check(probe_open(v, "/etc/passwd", "write") == "EACCES", "/etc/passwd opened for writing")
        check(probe_open(v, "/etc/passwd") == "EACCES", "/etc/passwd opened for reading")
        check(probe_open(v, os.path.join(v.base, "server.log"), "write") == "EACCES",
              "a file beside the data directory opened for writing")
        check(v.stop() == 0, "SIGTERM did not exit 0", v.log_tail())


def test_served_files_reachable():
    """The control: the probe opens what the server needs, so EACCES above is the sandbox."""
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"facture 2026-0042\n" * 100)
        objs = v.object_files()
        check(len(objs) == 1, "expected one object file", objs)
        rel = os.path.join("objects", objs[0])
        for path, mode in ((rel, "read"), ("meta.db", "write"), ("tls/cert.pem", "read"),
                           ("/dev/urandom", "read")):
            err = probe_open(v, path, mode)
            check(err == "OK", "%s (%s) not reachable from a handler: %s" % (path, mode, err))
        check(v.download(doc["id"]).status == 200, "download failed under the sandbox")
        check(v.stop() == 0, "SIGTERM did not exit 0", v.log_tail())


def test_syscall_outside_allow_list():
    with Vault(BINARY) as v:
        v.start()
        check(probe_syscall(v, "unshare") == "EPERM", "unshare(0) went through the seccomp filter")
        check(probe_syscall(v, "fork") == "EPERM", "fork() went through the seccomp filter")
        # The server carries on after a refused call.
        v.upload_ok(b"still serving\n")
        check(v.stop() == 0, "SIGTERM did not exit 0", v.log_tail())


def test_sandbox_can_be_disabled():
    with Vault(BINARY) as v:
        disable_sandbox(v)
        v.start()
        check(any("sandbox disabled" in l for l in sandbox_log_lines(v)),
              "no warning that the sandbox is off", v.log_tail())
        check(probe_open(v, "keys/log.key") == "OK", "keys/log.key unreadable without sandbox")
        check(probe_open(v, "/etc/passwd", "write") == "OK", "/etc/passwd unwritable without sandbox")
        check(probe_syscall(v, "unshare") == "OK", "unshare(0) refused without sandbox")
        check(probe_syscall(v, "fork") == "OK", "fork() refused without sandbox")
        check(v.stop() == 0, "SIGTERM did not exit 0", v.log_tail())


def test_hooks_absent():
    with Vault(BINARY) as v:
        v.start()
        for path in ("/v1/_test/open?path=keys/log.key", "/v1/_test/syscall?call=fork"):
            resp = v.request("GET", path)
            check(resp.status == 404, "%s answered %d in a build without test hooks" % (path, resp.status),
                  resp)
        check(v.stop() == 0, "SIGTERM did not exit 0", v.log_tail())
    with open(BINARY, "rb") as f:
        check(b"/v1/_test/" not in f.read(), "the binary carries the test routes")


def test_confined_server_keeps_documents():
    """Upload, clean stop, start again (sqlite cannot delete its -wal while confined), read back."""
    with Vault(BINARY) as v:
        v.start()
        lines = sandbox_log_lines(v)
        check(any('"sandbox on"' in l for l in lines), "the server did not report its sandbox", v.log_tail())
        data = os.urandom(300000)
        doc = v.upload_ok(data)
        check(v.stop() == 0, "SIGTERM did not exit 0", v.log_tail())
        # sqlite may not delete its -wal files here: after a clean stop they must be empty, or
        # their frames would be replayed over whatever database is there at the next start
        for db in ("meta.db", "keyring.db"):
            wal = os.path.join(v.data, db + "-wal")
            check(not os.path.exists(wal) or os.path.getsize(wal) == 0,
                  "%s-wal keeps %d bytes after a clean stop" % (db, os.path.getsize(wal)))
        v.start()
        resp = v.download(doc["id"])
        check(resp.status == 200 and resp.body == data, "document changed across a confined restart")
        v.upload_ok(b"second run\n")
        check(v.stop() == 0, "SIGTERM did not exit 0", v.log_tail())


def test_bad_sandbox_setting_refused():
    with Vault(BINARY) as v:
        with open(os.path.join(v.data, "coffre.conf"), "a") as f:
            f.write("\n[server]\nsandbox = maybe\n")
        r = subprocess.run([v.binary, "serve", "--data", v.data, "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 1, "serve with sandbox = maybe exited %d, not 1" % r.returncode, r.stderr)
        check("invalid setting on line" in r.stderr, "no clear error for sandbox = maybe", r.stderr)


TESTS = ([test_keys_unreadable, test_outside_data_dir_denied, test_served_files_reachable,
          test_syscall_outside_allow_list, test_sandbox_can_be_disabled] if HOOKS
         else [test_hooks_absent]) + [test_confined_server_keeps_documents, test_bad_sandbox_setting_refused]


if __name__ == "__main__":
    sys.exit(exit_status(run_tests(TESTS)))
