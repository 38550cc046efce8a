#!/usr/bin/env python3
"""test_audit_cli.py: `coffre audit verify` and `coffre audit proof` against a real vault.

After uploads, downloads and a delete over two server runs, the stopped vault's log verifies
(exit 0); copies of the data directory with an edited, deleted, swapped or appended entry, or
with the latest checkpoint replaced by an older one, each fail with exit 3 naming the index.
`audit verify --url` and `audit proof` against the running server exit 0, and 3 with the log
key of another vault; `audit verify --state` moves its checkpoint forward as the log grows and
refuses (exit 3, state unchanged) a copy of the vault rolled back to an older log.
Usage: test_audit_cli.py PATH/TO/coffre
"""

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import time

from rfc9162 import leaf_hash, root_of, verify_inclusion  # noqa: E402
from harness import TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
CHECKPOINT_DEADLINE = 15.0  # seconds for a checkpoint to cover the latest entries

V = None  # the vault under test
OTHER = None  # another vault, for a wrong log key
DOCS = []  # ids of the documents still present
SNAPSHOT = None  # a copy of V's data directory, taken with the server stopped
N_ENTRIES = 0  # entries in SNAPSHOT's log


# -- the on-disk layout of DATA/audit (docs/audit.md) ------------------------------------


def read_records(audit_dir):
    """The records of DATA/audit/entries as (entry bytes, raw record bytes)."""
    with open(os.path.join(audit_dir, "entries"), "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        rec = data[pos:pos + 4 + n + 32]
        check(len(rec) == 4 + n + 32, "torn record in a cleanly stopped log at offset %d" % pos)
        entry = rec[4:4 + n]
        check(rec[4 + n:] == leaf_hash(entry), "record hash mismatch in an untouched log")
        out.append((entry, rec))
        pos += len(rec)
    return out


def write_records(audit_dir, recs):
    with open(os.path.join(audit_dir, "entries"), "wb") as f:
        f.write(b"".join(recs))


def record_of(entry):
    return struct.pack("<I", len(entry)) + entry + leaf_hash(entry)


def read_checkpoints(audit_dir):
    """Records of DATA/audit/checkpoints as (size, raw record bytes)."""
    with open(os.path.join(audit_dir, "checkpoints"), "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        n, size = struct.unpack_from("<IQ", data, pos)
        end = pos + 4 + 8 + 32 + n + 32
        rec = data[pos:end]
        check(hashlib.sha256(rec[:-32]).digest() == rec[-32:], "checkpoint record %d damaged" % len(out))
        out.append((size, rec))
        pos = end
    return out


# -- helpers -------------------------------------------------------------------------------


def coffre(*args, env=None):
    return V.cli(*args, env=env)


def verify_data(data_dir, *extra):
    r = coffre("audit", "verify", "--data", data_dir, *extra)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def expect_failure_at(data_dir, index, why):
    rc, out, err = verify_data(data_dir)
    check(rc == 3, "%s: audit verify exited %d, expected 3" % (why, rc), out, err)
    m = re.search(r"audit log verification failed at index (\d+): ", err)
    check(m, "%s: no 'verification failed at index N' line" % why, err)
    check(int(m.group(1)) == index, "%s: reported index %s, expected %d" % (why, m.group(1), index), err)
    print("    %s -> %s" % (why, err.strip().splitlines()[-1]))
    rc, out, err = verify_data(data_dir, "--json")
    check(rc == 3, "%s (--json): exit %d" % (why, rc), out, err)
    doc = json.loads(out)
    check(doc.get("ok") is False and doc.get("index") == index and doc.get("reason"),
          "%s: --json says %r" % (why, doc))


def tampered_copy(name):
    dst = os.path.join(V.base, "copy-" + name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(SNAPSHOT, dst, symlinks=True)
    return dst


def wait_checkpoint_covers(size):
    """Polls the latest checkpoint (bounded) until it covers size entries; returns its size."""
    deadline = time.monotonic() + CHECKPOINT_DEADLINE
    while True:
        r = V.request("GET", "/v1/audit/checkpoint")
        check(r.status == 200, "GET /v1/audit/checkpoint: %d" % r.status, r)
        got = int(r.body.decode().split("\n")[1])
        if got >= size:
            return got
        if time.monotonic() > deadline:
            raise TestFailure("no checkpoint covered %d entries within %ss (latest: %d)"
                              % (size, CHECKPOINT_DEADLINE, got))
        time.sleep(0.05)  # polling interval, bounded by the deadline above


def doc_entries(doc):
    r = V.request("GET", "/v1/documents/%s/audit" % doc)
    check(r.status == 200, "GET the document's audit trail: %d" % r.status, r)
    return r.json()["entries"]


# -- setup ---------------------------------------------------------------------------------


def setup():
    global V, OTHER, SNAPSHOT, N_ENTRIES
    V = Vault(BINARY)
    OTHER = Vault(BINARY)
    V.start()
    for i in range(4):
        DOCS.append(V.upload_ok(b"invoice %d\n" % i * (i + 1), name="inv-%d.txt" % i)["id"])
    for d in DOCS[:2]:
        check(V.download(d).status == 200, "download failed")
    r = V.request("DELETE", "/v1/documents/" + DOCS[3])
    check(r.status == 204, "DELETE: %d" % r.status, r)
    DOCS.pop()
    check(V.stop() == 0, "the server did not stop cleanly")
    # A second run, so that the log holds checkpoints of two final sizes.
    V.start()
    for i in range(3):
        DOCS.append(V.upload_ok(b"receipt %d\n" % i, name="rct-%d.txt" % i)["id"])
    check(V.download(DOCS[-1]).status == 200, "download failed")
    check(V.stop() == 0, "the server did not stop cleanly")
    SNAPSHOT = os.path.join(V.base, "snapshot")
    shutil.copytree(V.data, SNAPSHOT, symlinks=True)
    N_ENTRIES = len(read_records(os.path.join(SNAPSHOT, "audit")))
    check(N_ENTRIES >= 10, "expected at least 10 log entries, found %d" % N_ENTRIES)


# -- tests -----------------------------------------------------------------------------------


def test_verify_stopped_vault():
    rc, out, err = verify_data(V.data)
    check(rc == 0, "audit verify of an untouched vault exited %d" % rc, out, err)
    recs = read_records(os.path.join(V.data, "audit"))
    root = base64.b64encode(root_of([leaf_hash(e) for e, _ in recs])).decode()
    m = re.match(r"audit log OK: (\d+) entries, (\d+) checkpoints, root (\S+) ", out)
    check(m, "unexpected summary line", out)
    check(int(m.group(1)) == len(recs), "summary says %s entries, the log has %d" % (m.group(1), len(recs)))
    check(int(m.group(2)) >= 2, "expected checkpoints of both runs", out)
    check(m.group(3) == root, "summary root %s is not the RFC 9162 root %s" % (m.group(3), root))
    rc, out, _ = verify_data(V.data, "--json")
    doc = json.loads(out)
    check(rc == 0 and doc["ok"] is True and doc["entries"] == len(recs) and doc["root"] == root,
          "--json summary %r" % doc)


def test_edited_entry():
    d = tampered_copy("edit")
    recs = read_records(os.path.join(d, "audit"))
    k = 3
    entry, rec = recs[k]
    pos = 4 + entry.index(b'"time":"') + len(b'"time":"2')  # a digit of the year
    bad = bytearray(rec)
    bad[pos] = ord("1") if bad[pos] != ord("1") else ord("2")
    write_records(os.path.join(d, "audit"), [r for _, r in recs[:k]] + [bytes(bad)] + [r for _, r in recs[k + 1:]])
    expect_failure_at(d, k, "edited entry")


def test_deleted_entry():
    d = tampered_copy("delete")
    recs = read_records(os.path.join(d, "audit"))
    k = 4
    write_records(os.path.join(d, "audit"), [r for i, (_, r) in enumerate(recs) if i != k])
    expect_failure_at(d, k, "deleted entry")


def test_swapped_entries():
    d = tampered_copy("swap")
    recs = [r for _, r in read_records(os.path.join(d, "audit"))]
    k = 2
    recs[k], recs[k + 1] = recs[k + 1], recs[k]
    write_records(os.path.join(d, "audit"), recs)
    expect_failure_at(d, k, "swapped entries")


def test_appended_entry():
    # A well-formed record with its hash recomputed: crash recovery takes it in, but no
    # checkpoint signed by the server covers it.
    d = tampered_copy("append")
    recs = read_records(os.path.join(d, "audit"))
    forged = recs[-1][0].replace(b'"document.read"', b'"document.create"')
    if forged == recs[-1][0]:
        forged = recs[-1][0].replace(b'"actor":"', b'"actor":"x', 1)
    with open(os.path.join(d, "audit", "entries"), "ab") as f:
        f.write(record_of(forged))
    expect_failure_at(d, len(recs), "appended entry")


def test_older_checkpoint_replaces_latest():
    d = tampered_copy("ckpt")
    path = os.path.join(d, "audit", "checkpoints")
    ckpts = read_checkpoints(os.path.join(d, "audit"))
    check(len(ckpts) >= 2, "expected at least two stored checkpoints, found %d" % len(ckpts))
    check(ckpts[-1][0] == N_ENTRIES, "the last checkpoint (size %d) does not cover the log (%d)"
          % (ckpts[-1][0], N_ENTRIES))
    previous = ckpts[-2][0]
    check(previous < N_ENTRIES, "the checkpoint before the last already covers everything")
    with open(path, "wb") as f:
        f.write(b"".join(r for _, r in ckpts[:-1]) + ckpts[0][1])
    expect_failure_at(d, previous, "older checkpoint in place of the latest")


def test_wrong_log_key_data():
    other_key = os.path.join(OTHER.data, "keys", "log.vkey")
    rc, out, err = verify_data(V.data, "--log-key", other_key)
    check(rc == 3, "audit verify --data with another vault's key exited %d" % rc, out, err)
    check("not signed by the log key" in err, "no signature failure reported", err)


def test_server_holds_log():
    V.start()
    try:
        rc, out, err = verify_data(V.data)
        check(rc == 1, "audit verify --data on a running vault exited %d" % rc, out, err)
        check("the server holds the log: stop it or use --url" in err, "wrong message", err)
    finally:
        V.stop()


def test_verify_url_and_proof():
    V.start()
    try:
        log_key = os.path.join(V.data, "keys", "log.vkey")
        other_key = os.path.join(OTHER.data, "keys", "log.vkey")
        doc = DOCS[0]
        entries = doc_entries(doc)
        check(len(entries) >= 2, "expected create and read entries for the document", entries)
        wait_checkpoint_covers(max(e["index"] for e in entries) + 1)

        r = coffre("audit", "verify", "--log-key", log_key)
        check(r.returncode == 0, "audit verify --url exited %d" % r.returncode, r.stdout, r.stderr)
        check(b"audit log OK" in r.stdout and b"warning" not in r.stderr, "output", r.stdout, r.stderr)
        r = coffre("audit", "verify")
        check(r.returncode == 0 and b"warning: trusting the log key the server sent" in r.stderr,
              "audit verify --url without --log-key: exit %d" % r.returncode, r.stderr)
        r = coffre("audit", "verify", "--log-key", other_key)
        check(r.returncode == 3, "audit verify --url with another vault's key exited %d" % r.returncode,
              r.stdout, r.stderr)

        r = coffre("audit", "proof", doc, "--log-key", log_key)
        check(r.returncode == 0, "audit proof exited %d" % r.returncode, r.stdout, r.stderr)
        lines = r.stdout.decode().splitlines()
        check(any(re.match(r"^%d  document\.create  \S+Z  verified$" % entries[0]["index"], l) for l in lines),
              "no verified document.create line", lines)
        check(sum(l.endswith("  verified") for l in lines) == len(entries), "one line per entry", lines)

        r = coffre("audit", "proof", doc, "--log-key", log_key, "--json")
        check(r.returncode == 0, "audit proof --json exited %d" % r.returncode, r.stderr)
        out = json.loads(r.stdout)
        root = base64.b64decode(out["root"])
        check(out["document"] == doc and out["checkpoint"].split("\n")[2] == out["root"], "json head", out)
        check(len(out["entries"]) == len(entries), "json entries", out)
        for e in out["entries"]:  # a third party's check, from the printed data alone
            leaf = leaf_hash(e["entry"].encode())
            check(base64.b64encode(leaf).decode() == e["leaf_hash"], "leaf hash of entry %d" % e["index"])
            proof = [base64.b64decode(p) for p in e["proof"]]
            check(verify_inclusion(leaf, e["index"], out["size"], proof, root),
                  "the printed proof of entry %d does not verify" % e["index"])

        r = coffre("audit", "proof", doc, "--log-key", other_key)
        check(r.returncode == 3, "audit proof with another vault's key exited %d" % r.returncode,
              r.stdout, r.stderr)
        check(b"audit log verification failed" in r.stderr, "message", r.stderr)
    finally:
        V.stop()


def state_checkpoint(path):
    """(size, root) of the checkpoint line of an `audit verify --state` file."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"^checkpoint (\d+) (\S+)$", text, re.M)
    check(m, "no checkpoint line in the state file", text)
    return int(m.group(1)), m.group(2)


def test_verify_state_advances_and_refuses_rollback():
    """--state remembers the verified checkpoint, moves forward with the log, and refuses a
    server whose log is older than the remembered checkpoint (a rolled-back vault)."""
    V.stop()
    old_copy = os.path.join(V.base, "rolled-back")
    shutil.rmtree(old_copy, ignore_errors=True)
    shutil.copytree(V.data, old_copy, symlinks=True)  # the vault as it is now, server stopped
    V.start()
    try:
        log_key = os.path.join(V.data, "keys", "log.vkey")
        state = os.path.join(V.base, "verify-advance.state")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(state)
        r = coffre("audit", "verify", "--log-key", log_key, "--state", state)
        check(r.returncode == 0, "audit verify --state (first) exited %d" % r.returncode, r.stderr)
        check(os.stat(state).st_mode & 0o777 == 0o600, "state file mode %o" % (os.stat(state).st_mode & 0o777))
        size1, root1 = state_checkpoint(state)
        V.upload_ok(b"one more\n", name="more.txt")
        wait_checkpoint_covers(size1 + 1)
        r = coffre("audit", "verify", "--state", state)
        check(r.returncode == 0, "audit verify --state (second) exited %d" % r.returncode, r.stdout, r.stderr)
        size2, root2 = state_checkpoint(state)
        check(size2 > size1, "the state did not advance: checkpoint %d, then %d" % (size1, size2))
        check(root2 != root1, "the state's root did not change with the log")
    finally:
        V.stop()

    # the same vault, rolled back to before the upload: a checkpoint older than the state's
    with open(state, "rb") as f:
        state_before = f.read()
    old = Vault(BINARY, base=os.path.join(V.base, "rollback-run"), init=False)
    try:
        os.makedirs(old.base, exist_ok=True)
        old.data = old_copy
        old.token = V.token
        old.cacert = os.path.join(old_copy, "tls", "cert.pem")
        old.start()
        served = int(old.request("GET", "/v1/audit/checkpoint").body.decode().split("\n")[1])
        check(served < size2, "the rolled-back vault serves checkpoint %d, not older than %d" % (served, size2))
        r = old.cli("audit", "verify", "--state", state)
        check(r.returncode == 3, "audit verify --state against a rolled-back log exited %d, expected 3"
              % r.returncode, r.stdout, r.stderr)
        check(b"audit log verification failed" in r.stderr, "no failure message", r.stderr)
        with open(state, "rb") as f:
            check(f.read() == state_before, "a refused verification changed the state file")
    finally:
        old.close()
        shutil.rmtree(old_copy, ignore_errors=True)


def test_usage_errors():
    for args in (["audit"], ["audit", "frobnicate"], ["audit", "proof"], ["audit", "proof", "a/b"],
                 ["audit", "verify", "--data", V.data, "--url", "https://127.0.0.1:1"]):
        r = coffre(*args)
        check(r.returncode == 2, "%r exited %d, expected 2" % (args, r.returncode), r.stderr)


def main():
    try:
        setup()
        rc = run_tests([test_verify_stopped_vault, test_edited_entry, test_deleted_entry, test_swapped_entries,
                        test_appended_entry, test_older_checkpoint_replaces_latest, test_wrong_log_key_data,
                        test_server_holds_log, test_verify_url_and_proof,
                        test_verify_state_advances_and_refuses_rollback, test_usage_errors])
    finally:
        for v in (V, OTHER):
            if v is not None:
                v.close()
    return exit_status(rc)


if __name__ == "__main__":
    sys.exit(main())
