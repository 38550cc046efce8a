#!/usr/bin/env python3
"""test_ops.py: operations a user depends on, end to end against the real server.

- `coffre key rotate`: refused (exit 1, nothing changed) while the server holds the vault and
  for an unknown organisation; with the server stopped it moves every document key to a new KEK
  version, deletes the old version, logs one `key.rotate` entry by `system:cli` for the
  organisation, the audit log still verifies and every document downloads byte-identical.
- Token expiry: a token past its `expires_at` gets 401 problem+json; one not yet expired works.
- SIGHUP: the server stops taking requests (503 `shutting-down` on a connection it already
  had), finishes the upload in flight (201, the document survives a restart) and exits 0.
- Connection limits: with `max_connections_per_ip` / `max_connections` set to 3 in
  coffre.conf, a fourth connection gets no TLS session while three are open, and one gets
  through again once one of the three is closed.
Each test makes its own vault.
Usage: test_ops.py PATH/TO/coffre
"""

import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time

from harness import Response, TestFailure, Vault, check, exit_status, expect_problem, random_chunks, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
DEADLINE = 30.0  # seconds for an asynchronous effect (a signal taken, a closed slot freed)
CHECKPOINT_DEADLINE = 15.0


def set_conf(data_dir, section, key, value):
    """Sets key = value in [section] of DATA/coffre.conf (the key must be there already)."""
    path = os.path.join(data_dir, "coffre.conf")
    with open(path) as f:
        text = f.read()
    start = text.index("[%s]\n" % section)
    pat = re.compile(r"^%s = .*$" % re.escape(key), re.M)
    m = pat.search(text, start)
    check(m, "coffre.conf has no %s in [%s]" % (key, section))
    with open(path, "w") as f:
        f.write(text[:m.start()] + "%s = %s" % (key, value) + text[m.end():])


def keyring_rows(data_dir):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "keyring.db"), uri=True, timeout=30)
    try:
        keks = sorted(db.execute("SELECT kek_id, version, wrapped FROM kek").fetchall())
        deks = sorted(db.execute("SELECT object_id, kek_id, kek_version, wrapped FROM dek").fetchall())
    finally:
        db.close()
    return keks, deks


def wait_checkpoint(v, size):
    deadline = time.monotonic() + CHECKPOINT_DEADLINE
    while True:
        r = v.request("GET", "/v1/audit/checkpoint")
        check(r.status == 200, "GET /v1/audit/checkpoint: %d" % r.status, r)
        got = int(r.body.decode().split("\n")[1])
        if got >= size:
            return got
        if time.monotonic() > deadline:
            raise TestFailure("no checkpoint covered %d entries within %ss (latest %d)"
                              % (size, CHECKPOINT_DEADLINE, got))
        time.sleep(0.05)  # polling interval, bounded by the deadline above


def audit_entries(v):
    """Every entry of the log the server has (the size read from the entries file on disk)."""
    r = v.request("GET", "/v1/audit/checkpoint")
    size = int(r.body.decode().split("\n")[1])
    out = []
    for start in range(0, size, 1000):
        r = v.request("GET", "/v1/audit/entries?start=%d&end=%d" % (start, min(size, start + 1000)))
        check(r.status == 200, "GET /v1/audit/entries: %d" % r.status, r)
        out.extend(r.json()["entries"])
    return [json.loads(e["entry"]) for e in out if not e.get("redacted")]


def default_org(data_dir):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "meta.db"), uri=True, timeout=30)
    try:
        return db.execute("SELECT org_id FROM tokens LIMIT 1").fetchone()[0]
    finally:
        db.close()


# -- key rotation ------------------------------------------------------------------------------


def test_key_rotate():
    with Vault(BINARY) as v:
        v.start()
        docs = []
        for i in range(5):
            data = b"invoice %d\n" % i + secrets.token_bytes(1000 * i)
            docs.append((v.upload_ok(data, name="inv-%d.pdf" % i), data))
        org = default_org(v.data)

        # the server holds the vault: refused, nothing changed
        before = keyring_rows(v.data)
        r = subprocess.run([BINARY, "key", "rotate", "--data", v.data], capture_output=True, timeout=120)
        check(r.returncode == 1, "key rotate with the server running exited %d" % r.returncode, r.stderr)
        check(b"in use by another coffre process" in r.stderr, "no clear message", r.stderr)
        check(keyring_rows(v.data) == before, "a refused rotation changed keyring.db")
        check(v.stop() == 0, "SIGTERM did not exit 0")

        # an unknown organisation: refused, nothing changed
        r = subprocess.run([BINARY, "key", "rotate", "--data", v.data, "--org", secrets.token_hex(16)],
                           capture_output=True, timeout=120)
        check(r.returncode == 1 and b"no such organisation" in r.stderr,
              "key rotate --org UNKNOWN exited %d" % r.returncode, r.stderr)
        check(keyring_rows(v.data) == before, "a rotation of an unknown organisation changed keyring.db")

        r = subprocess.run([BINARY, "key", "rotate", "--data", v.data], capture_output=True, timeout=300)
        check(r.returncode == 0, "key rotate exited %d" % r.returncode, r.stdout, r.stderr)
        keks0, deks0 = before
        keks1, deks1 = keyring_rows(v.data)
        old_versions = {(k[0], k[1]) for k in keks0}
        check(not old_versions & {(k[0], k[1]) for k in keks1}, "an old KEK version is still in keyring.db")
        check(len(keks1) == len(keks0), "KEK rows: %d before, %d after" % (len(keks0), len(keks1)))
        check([d[0] for d in deks1] == [d[0] for d in deks0], "the set of document keys changed")
        newest = {k[0]: k[1] for k in keks1}
        for a, b in zip(deks0, deks1):
            check(b[2] == newest[b[1]] and b[2] > a[2], "a document key is still under KEK version %d" % b[2])
            check(b[3] != a[3], "a document key was not rewrapped")
        r = subprocess.run([BINARY, "audit", "verify", "--data", v.data], capture_output=True, timeout=300)
        check(r.returncode == 0, "audit verify after the rotation exited %d" % r.returncode, r.stdout, r.stderr)

        v.start()
        for meta, data in docs:
            got = v.download(meta["id"])
            check(got.status == 200 and got.body == data, "document %s changed by the rotation" % meta["id"])
        entries = audit_entries(v)
        rot = [e for e in entries if e.get("action") == "key.rotate"]
        check(len(rot) == 1, "expected one key.rotate entry, found %d" % len(rot), rot)
        check(rot[0].get("actor") == "system:cli" and rot[0].get("org") == org,
              "the key.rotate entry says actor %r org %r" % (rot[0].get("actor"), rot[0].get("org")))
        # a second rotation moves on again and is logged again
        check(v.stop() == 0, "SIGTERM did not exit 0")
        r = subprocess.run([BINARY, "key", "rotate", "--data", v.data, "--org", org], capture_output=True,
                           timeout=300)
        check(r.returncode == 0, "key rotate --org exited %d" % r.returncode, r.stderr)
        check({k[1] for k in keyring_rows(v.data)[0]} == {k[1] + 1 for k in keks1}, "second rotation: versions")
        v.start()
        check(sum(e.get("action") == "key.rotate" for e in audit_entries(v)) == 2, "second key.rotate not logged")
        for meta, data in docs:
            check(v.download(meta["id"]).body == data, "document %s changed by the second rotation" % meta["id"])
        check(v.stop() == 0, "SIGTERM did not exit 0")


# -- tokens ------------------------------------------------------------------------------------


def add_token(v, expires_at_ms):
    """An API token of the vault's owner with every scope, written straight into meta.db with the
    given expiry (the API's own expiry is tested in test_accounts.py)."""
    token = "cfr_" + secrets.token_hex(24)
    db = sqlite3.connect(os.path.join(v.data, "meta.db"), timeout=30)
    try:
        with db:
            org = db.execute("SELECT org_id FROM users WHERE id = ?", (v.owner_id,)).fetchone()[0]
            db.execute("INSERT INTO tokens (hash, id, org_id, role, created_at, expires_at, kind, user_id, scopes) "
                       "VALUES (?, ?, ?, ?, ?, ?, 'api', ?, 31)",
                       (hashlib.sha256(token.encode()).digest(), secrets.token_hex(16), org, "owner",
                        int(time.time() * 1000) - 3600_000, expires_at_ms, v.owner_id))
    finally:
        db.close()
    return token


def test_token_expiry():
    with Vault(BINARY) as v:
        v.start()
        now = int(time.time() * 1000)
        expired = add_token(v, now - 1000)
        valid = add_token(v, now + 3600_000)
        for path in ("/v1/documents", "/v1/audit/checkpoint"):
            r = v.request("GET", path, headers=v.auth_headers(expired), auth=False)
            expect_problem(r, 401, "unauthorized")
            r = v.request("GET", path, headers=v.auth_headers(valid), auth=False)
            check(r.status == 200, "a token valid for another hour got %d on %s" % (r.status, path), r)
        r = v.upload(b"not with an expired token", token=expired)
        expect_problem(r, 401, "unauthorized")
        check(v.list_all() == [], "an upload with an expired token stored something")
        check(expired.encode() not in v.log_text() and valid.encode() not in v.log_text(), "a token is in the log")
        check(v.stop() == 0, "SIGTERM did not exit 0")


# -- SIGHUP ------------------------------------------------------------------------------------


def open_kept_alive(v):
    """A connection the server has accepted and answered once, kept open."""
    conn = v.connect(timeout=60)
    conn.request("GET", "/v1/documents?limit=1", headers=v.auth_headers())
    r = conn.getresponse()
    r.read()
    check(r.status == 200, "GET /v1/documents: %d" % r.status)
    check(not r.will_close, "the server closed a GET connection: no kept-alive connection to test with")
    return conn


def refused_connect(v):
    try:
        with socket.create_connection(("127.0.0.1", v.port), timeout=5) as s:
            with v.ssl_context().wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return not t.recv(1)
    except (OSError, ssl.SSLError):
        return True


def test_sighup_503_and_finishes_upload():
    total = 8 << 20
    with Vault(BINARY, serve_args=["--max-body", str(1 << 30)]) as v:
        v.start()
        idle = open_kept_alive(v)
        # an upload that is half-way when the signal comes, and finishes after
        gate, go_on, result = threading.Event(), threading.Event(), []

        def chunks():
            for i, c in enumerate(random_chunks(total, seed=5)):
                if i == 4:
                    gate.set()
                    go_on.wait(120)
                yield c

        t = threading.Thread(target=lambda: result.append(
            v.stream_upload({"name": "hup.bin"}, chunks(), length=total)))
        t.start()
        check(gate.wait(60), "the upload did not start")
        v.proc.send_signal(signal.SIGHUP)
        # the listening socket closes once the server is stopping: that is the evidence to wait for
        deadline = time.monotonic() + DEADLINE
        while not refused_connect(v):
            check(time.monotonic() < deadline, "the server still takes new connections %ss after SIGHUP" % DEADLINE)
            time.sleep(0.05)  # polling interval, bounded by the deadline
        idle.request("GET", "/v1/documents", headers=v.auth_headers())
        r = idle.getresponse()
        resp = Response(r.status, r.getheaders(), r.read())
        idle.close()
        expect_problem(resp, 503, "shutting-down")
        check((resp.header("Connection") or "").lower() == "close", "503 without Connection: close", resp)
        go_on.set()
        t.join(120)
        check(not t.is_alive(), "the upload did not end")
        rc = v.proc.wait(timeout=60)
        v.proc = None
        check(rc == 0, "SIGHUP: exit %s\n%s" % (rc, v.log_tail()))
        up, _sent = result[0]
        check(up is not None and up.status == 201, "the upload in flight at SIGHUP was not finished", up)
        v.start()
        body = v.download(up.json()["id"]).body
        check(body == b"".join(random_chunks(total, seed=5)), "the upload finished at SIGHUP did not survive")
        check(v.stop() == 0, "final SIGTERM did not exit 0")


# -- connection limits ---------------------------------------------------------------------------


def limit_check(setting):
    with Vault(BINARY) as v:
        set_conf(v.data, "server", setting, "3")
        if setting == "max_connections":
            set_conf(v.data, "server", "max_connections_per_ip", "64")
        v.start()
        held = [open_kept_alive(v) for _ in range(3)]
        try:
            check(refused_connect(v), "%s = 3: a fourth connection was served" % setting)
            held.pop().close()
            deadline = time.monotonic() + DEADLINE
            while True:
                try:
                    held.append(open_kept_alive(v))
                    break
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    check(time.monotonic() < deadline,
                          "%s = 3: no connection got through %ss after one of three closed" % (setting, DEADLINE))
                    time.sleep(0.05)  # polling interval, bounded by the deadline
            check(refused_connect(v), "%s = 3: a fourth connection was served after the swap" % setting)
        finally:
            for c in held:
                c.close()
        check(v.stop() == 0, "SIGTERM did not exit 0")


def test_per_ip_connection_limit():
    limit_check("max_connections_per_ip")


def test_connection_limit():
    limit_check("max_connections")


TESTS = [test_key_rotate, test_token_expiry, test_sighup_503_and_finishes_upload, test_per_ip_connection_limit,
         test_connection_limit]


if __name__ == "__main__":
    sys.exit(exit_status(run_tests(TESTS)))
