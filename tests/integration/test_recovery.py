#!/usr/bin/env python3
"""test_recovery.py: start-up recovery fails closed.

A stale, restored or edited meta.db never destroys a document the audit log proves: its row is
rebuilt from the log, its key and its object; what cannot be rebuilt stops the server with a
message naming the document and `coffre repair`. The audit log is never cut at or below its last
signed checkpoint, what is cut above it is kept whole, records added while the server was
stopped are refused, and `coffre audit verify --data` changes nothing.
Usage: test_recovery.py PATH/TO/coffre
"""

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
import time

from harness import TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def read_records(audit_dir):
    """The records of DATA/audit/entries as raw record bytes (length | entry | leaf hash)."""
    with open(os.path.join(audit_dir, "entries"), "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append(data[pos:pos + 4 + n + 32])
        pos += 4 + n + 32
    return out


def record_of(entry):
    return struct.pack("<I", len(entry)) + entry + leaf_hash(entry)


def entry_of(rec):
    (n,) = struct.unpack_from("<I", rec, 0)
    return json.loads(rec[4:4 + n])


DERIVED = ("audit/offsets", "audit/state", "audit/hashes/")


def tree_files(root, derived=True):
    """{relative path: bytes} of every file under root (for "nothing changed" checks). The SQLite
    databases are compared by content (SQLite itself folds its -wal into the file on close).
    derived=False leaves out the log's offsets and hash files, which opening the log may rebuild
    from the entries (they are an index of them, not evidence)."""
    out = {}
    for d, _, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p) or name.endswith(("-wal", "-shm")) or name == "lock":
                continue
            if not derived and rel.startswith(DERIVED):
                continue
            if name.endswith(".db"):
                with sqlite3.connect(p) as db:
                    out[rel] = "\n".join(db.iterdump()).encode()
                continue
            with open(p, "rb") as f:
                out[rel] = f.read()
    return out


def copy_meta(data, dest):
    os.makedirs(dest, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = os.path.join(data, "meta.db" + suffix)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(dest, "meta.db" + suffix))


def restore_meta(saved, data):
    for suffix in ("", "-wal", "-shm"):
        p = os.path.join(data, "meta.db" + suffix)
        if os.path.exists(p):
            os.unlink(p)
        src = os.path.join(saved, "meta.db" + suffix)
        if os.path.exists(src):
            shutil.copy2(src, p)


def dek_count(data, doc_id):
    with sqlite3.connect(os.path.join(data, "keyring.db")) as db:
        return db.execute("SELECT count(*) FROM dek WHERE hex(object_id) = upper(?)", (doc_id,)).fetchone()[0]


def object_path(data, doc_id):
    return os.path.join(data, "objects", doc_id[0:2], doc_id[2:4], doc_id)


def serve_refuses(v, timeout=45):
    """Runs coffre serve on v's data and expects it to exit non-zero at start; returns the log."""
    r = subprocess.run([v.binary, "serve", "--data", v.data, "--listen", "127.0.0.1:0",
                        "--port-file", os.path.join(v.base, "port-refused")],
                       capture_output=True, timeout=timeout)
    out = (r.stdout + r.stderr).decode(errors="replace")
    check(r.returncode != 0, "coffre serve started (exit %d) where it had to refuse" % r.returncode, out)
    return out


def doc_actions(v, doc_id):
    r = v.request("GET", "/v1/documents/%s/audit" % doc_id)
    check(r.status == 200, "document audit: status %d" % r.status, r)
    return [e["action"] if "action" in e else json.loads(e["entry"])["action"] for e in r.json()["entries"]]


# ---- meta.db that no longer knows a document ----

def test_stale_meta_db_rebuilds_row():
    with Vault(BINARY) as v:
        v.start()
        old = v.upload_ok(b"before the backup")
        v.stop()
        copy_meta(v.data, os.path.join(v.base, "saved"))
        v.start()
        body = os.urandom(200 * 1024)
        doc = v.upload_ok(body, name="facture-2026-17.pdf", cls="accounting-10y")
        v.stop()
        restore_meta(os.path.join(v.base, "saved"), v.data)
        v.start()
        r = v.download(doc["id"])
        check(r.status == 200 and r.body == body, "acknowledged document lost after meta.db was restored: %d"
              % r.status, v.log_tail())
        meta = v.request("GET", "/v1/documents/%s" % doc["id"]).json()
        check(meta["name"] == "facture-2026-17.pdf" and meta["size"] == len(body) and
              meta["sha256"] == doc["sha256"], "rebuilt row differs", meta, doc)
        check(v.download(old["id"]).status == 200, "the older document is gone")
        check("document.restore" in doc_actions(v, doc["id"]), "the rebuild is not in the log")
        check(b"rebuilt it from audit entry" in v.log_text(), "the rebuild is not reported", v.log_tail())
        # its seal was lost with the row: a new one, logged, that openssl accepts
        check(meta.get("seal_level") == "B-T", "the rebuilt document has no seal", meta)
        check(doc_actions(v, doc["id"]).count("document.seal") == 2, "the new seal is not logged",
              doc_actions(v, doc["id"]))
        seal = v.request("GET", "/v1/documents/%s/seal" % doc["id"])
        sp, dp = os.path.join(v.base, "seal.p7s"), os.path.join(v.base, "doc.bin")
        with open(sp, "wb") as f:
            f.write(seal.body)
        with open(dp, "wb") as f:
            f.write(body)
        ok = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", sp, "-content", dp,
                             "-CAfile", os.path.join(v.data, "keys", "ca.pem"), "-out", os.devnull],
                            capture_output=True)
        check(ok.returncode == 0, "openssl refuses the new seal", ok.stderr)


def test_deleted_row_rebuilds_row():
    with Vault(BINARY) as v:
        v.start()
        body = b"%PDF-1.7 invoice " * 1000
        doc = v.upload_ok(body, name="releve.pdf")
        v.stop()
        with sqlite3.connect(os.path.join(v.data, "meta.db")) as db:
            db.execute("DELETE FROM documents WHERE id = ?", (doc["id"],))
        v.start()
        r = v.download(doc["id"])
        check(r.status == 200 and r.body == body, "document lost after its row was deleted: %d" % r.status,
              v.log_tail())
        # its seal row (left behind: this sqlite3 connection does not enforce foreign keys) is kept
        meta = v.request("GET", "/v1/documents/%s" % doc["id"]).json()
        check(meta.get("seal_level") == "B-T", "the rebuilt document lost its seal", meta)
        check(doc_actions(v, doc["id"]).count("document.seal") == 1, "a kept seal was made again")


def test_unrebuildable_refuses_then_repair():
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"a contract")
        v.stop()
        with sqlite3.connect(os.path.join(v.data, "meta.db")) as db:
            db.execute("DELETE FROM documents WHERE id = ?", (doc["id"],))
        # the object is gone too: the row cannot be rebuilt from evidence
        obj = object_path(v.data, doc["id"])
        os.rename(obj, os.path.join(v.base, "object-aside"))
        before = tree_files(v.data)
        out = serve_refuses(v)
        check(doc["id"] in out and "coffre repair" in out and "document.create" in out,
              "the refusal does not name the document and the repair command", out)
        check(tree_files(v.data) == before, "a refused start changed the data directory")
        check(dek_count(v.data, doc["id"]) == 1, "the document key was destroyed")
        r = subprocess.run([v.binary, "repair", "--data", v.data, "--document", doc["id"],
                            "--reason", "object lost with disk 2"], capture_output=True, timeout=120)
        check(r.returncode == 0, "coffre repair failed (%d)" % r.returncode, r.stderr.decode(errors="replace"))
        v.start()
        check(dek_count(v.data, doc["id"]) == 1, "the key was destroyed after the repair")
        check(v.download(doc["id"]).status == 404, "a quarantined document is served")
        acts = doc_actions(v, doc["id"])
        check(acts[0] == "document.create" and "document.quarantine" in acts, "the repair is not logged", acts)
        v.stop()
        # a second repair has nothing to do
        r = subprocess.run([v.binary, "repair", "--data", v.data, "--document", doc["id"]],
                           capture_output=True, timeout=120)
        check(r.returncode == 1, "a repair of a settled document succeeded", r.stderr)


def test_unlogged_object_removed():
    """An object and key no log entry names never belonged to an acknowledged upload: they go."""
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"kept")
        v.stop()
        fake = "ab" * 16
        os.makedirs(os.path.dirname(object_path(v.data, fake)), exist_ok=True)
        shutil.copy2(object_path(v.data, doc["id"]), object_path(v.data, fake))
        v.start()
        check(not os.path.exists(object_path(v.data, fake)), "an unlogged object was kept")
        check(v.download(doc["id"]).status == 200, "the real document is gone")


# ---- an audit log older than the signer's memory (keys/log.state) ----

def replace_audit(saved, data):
    shutil.rmtree(os.path.join(data, "audit"))
    shutil.copytree(saved, os.path.join(data, "audit"), symlinks=True)


def check_signer_refusal(out, signed):
    check("the signer has signed a tree of %d entries" % signed in out and "Nothing was changed" in out,
          "the refusal does not say what is wrong and that nothing was changed", out)
    check("removed the remains" not in out, "the recovery sweep ran before the refusal", out)


def test_older_audit_and_meta_db_refused():
    """F1: older audit/ and meta.db beside current objects/, keyring.db and keys/log.state: the
    log proves nothing about what it no longer holds; nothing is shredded, the start refused."""
    with Vault(BINARY) as v:
        v.start()
        v.upload_ok(b"before the backup")
        v.stop()
        saved = os.path.join(v.base, "saved")
        copy_meta(v.data, saved)
        shutil.copytree(os.path.join(v.data, "audit"), os.path.join(saved, "audit"), symlinks=True)
        v.start()
        doc = v.upload_ok(b"acknowledged after the backup", name="p.pdf")
        v.stop()
        signed = len(read_records(os.path.join(v.data, "audit")))
        restore_meta(saved, v.data)
        replace_audit(os.path.join(saved, "audit"), v.data)
        before = tree_files(v.data)
        out = serve_refuses(v)
        check_signer_refusal(out, signed)
        check(tree_files(v.data) == before, "a refused start changed the data directory")
        check(os.path.exists(object_path(v.data, doc["id"])), "the acknowledged document's object is gone")
        check(dek_count(v.data, doc["id"]) == 1, "the acknowledged document's key was destroyed")


def test_emptied_audit_and_rows_refused():
    """F1, worse: audit/ emptied and every documents row deleted: nothing is shredded."""
    with Vault(BINARY) as v:
        v.start()
        docs = [v.upload_ok(b"document %d" % i) for i in range(3)]
        v.stop()
        audit = os.path.join(v.data, "audit")
        signed = len(read_records(audit))
        for name in ("entries", "offsets"):
            os.truncate(os.path.join(audit, name), 0)
        for name in os.listdir(os.path.join(audit, "hashes")):
            os.truncate(os.path.join(audit, "hashes", name), 0)
        for name in ("state", "checkpoints", "stopped"):
            os.unlink(os.path.join(audit, name))
        with sqlite3.connect(os.path.join(v.data, "meta.db")) as db:
            db.execute("DELETE FROM documents")
        before = tree_files(v.data)
        out = serve_refuses(v)
        check_signer_refusal(out, signed)
        check(tree_files(v.data) == before, "a refused start changed the data directory")
        for d in docs:
            check(os.path.exists(object_path(v.data, d["id"])) and dek_count(v.data, d["id"]) == 1,
                  "document %s was shredded" % d["id"])


def test_damaged_without_checkpoints_file_refused():
    """F2: audit/checkpoints gone, a bit flipped below the size the signer signed: the signer's
    size is the floor, nothing is cut."""
    with Vault(BINARY) as v:
        recs = make_log(v)
        audit = os.path.join(v.data, "audit")
        flip_bit(os.path.join(audit, "entries"), sum(len(r) for r in recs[:3]) + 4 + 2)
        os.unlink(os.path.join(audit, "state"))
        os.unlink(os.path.join(audit, "checkpoints"))
        before = tree_files(v.data)
        out = serve_refuses(v)
        check_signer_refusal(out, len(recs))
        check("record 3" in out, "the refusal does not name the damaged record", out)
        check("while the server was stopped" not in out, "a wrong reason is given", out)
        check(tree_files(v.data) == before, "a refused start changed the data directory")
        check(not os.path.exists(os.path.join(audit, "torn")), "records were moved to torn/")


def test_rolled_back_audit_refused():
    """F4: an older audit/ alone is never served (no 201 for entries that can never be signed);
    verify --data compares with keys/log.state. So is a log grown past it with other entries."""
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"an invoice")
        v.stop()
        saved = os.path.join(v.base, "audit-saved")
        shutil.copytree(os.path.join(v.data, "audit"), saved, symlinks=True)
        v.start()
        for i in range(2):
            v.upload_ok(b"later %d" % i)
        v.stop()
        signed = len(read_records(os.path.join(v.data, "audit")))
        replace_audit(saved, v.data)
        before = tree_files(v.data)
        out = serve_refuses(v)
        check_signer_refusal(out, signed)
        check(tree_files(v.data) == before, "a refused start changed the data directory")
        rc, vout = audit_verify(v)
        check(rc == 3 and "keys/log.state" in vout and "%d" % signed in vout,
              "verify --data accepted a log older than the signer's memory (exit %d)" % rc, vout)
        check(tree_files(v.data) == before, "audit verify --data changed the data directory")
        # the same size as the signed tree, other entries: another root
        recs = read_records(os.path.join(v.data, "audit"))
        with open(os.path.join(v.data, "audit", "entries"), "ab") as f:
            for _ in range(signed - len(recs)):
                f.write(forged_delete(recs, doc["id"]))
        before = tree_files(v.data, derived=False)
        out = serve_refuses(v)
        check("root at size %d" % signed in out and "Nothing was changed" in out,
              "the refusal does not say the roots differ", out)
        check(tree_files(v.data, derived=False) == before, "a refused start changed the data directory")
        rc, vout = audit_verify(v)
        check(rc == 3 and "keys/log.state" in vout, "verify --data accepted another tree (exit %d)" % rc, vout)


# ---- the audit log: never cut below its checkpoint, nothing added while stopped ----

def make_log(v, n_docs=8):
    """A stopped vault whose last checkpoint covers everything (vault.init, the owner's set-up,
    two entries per upload: document.create and document.seal); returns the records."""
    v.start()
    for i in range(n_docs):
        v.upload_ok(b"document %d" % i)
    v.stop()
    recs = read_records(os.path.join(v.data, "audit"))
    want = 2 * n_docs + 1 + v.log_base
    check(len(recs) == want, "expected %d entries, found %d" % (want, len(recs)))
    return recs


def audit_verify(v):
    r = subprocess.run([v.binary, "audit", "verify", "--data", v.data], capture_output=True, timeout=120)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def flip_bit(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def test_damaged_below_checkpoint_refused():
    with Vault(BINARY) as v:
        recs = make_log(v)
        audit = os.path.join(v.data, "audit")
        os.unlink(os.path.join(audit, "state"))
        flip_bit(os.path.join(audit, "entries"), sum(len(r) for r in recs[:3]) + 4 + 2)
        before = tree_files(v.data)
        out = serve_refuses(v)
        check("record 3" in out and "checkpoint" in out, "the refusal does not say what and where", out)
        check(tree_files(v.data) == before, "a refused start changed the data directory")
        rc, vout = audit_verify(v)
        check(rc == 3 and "index 3" in vout, "verify --data does not report entry 3 (exit %d)" % rc, vout)
        check(tree_files(v.data) == before, "audit verify --data changed the data directory")


def test_log_cut_below_checkpoint_refused():
    for lose_state in (False, True):
        with Vault(BINARY) as v:
            recs = make_log(v)
            audit = os.path.join(v.data, "audit")
            os.truncate(os.path.join(audit, "entries"), sum(len(r) for r in recs[:5]))
            if lose_state:
                os.unlink(os.path.join(audit, "state"))
            before = tree_files(v.data)
            out = serve_refuses(v)
            check("records were removed" in out and ("checkpoint covers %d" % len(recs) in out or
                                                      "durable index" in out),
                  "the refusal does not say what is wrong (state lost: %s)" % lose_state, out)
            check(tree_files(v.data) == before, "a refused start changed the data directory")
            rc, vout = audit_verify(v)
            check(rc == 3, "verify --data accepted a cut log (exit %d)" % rc, vout)


def test_foreign_tail_refused():
    """Bytes past the last whole record that no write cut short leaves (random bytes, not a
    short record): refused like damage, nothing cut or moved."""
    with Vault(BINARY) as v:
        recs = make_log(v, n_docs=2)
        with open(os.path.join(v.data, "audit", "entries"), "ab") as f:
            f.write(b"\xff\xff\x00\x01" + os.urandom(1 << 20))
        before = tree_files(v.data)
        out = serve_refuses(v)
        check("record %d" % len(recs) in out and "damaged" in out, "the refusal does not name the record", out)
        check(tree_files(v.data) == before, "a refused start changed the data directory")
        rc, vout = audit_verify(v)
        check(rc == 3, "verify --data accepted foreign bytes (exit %d)" % rc, vout)


def crash_image(v, n_acked=4):
    """A vault killed (kill -9) while uploads were in flight, with entries above its last
    checkpoint: n_acked acknowledged uploads, the checkpoints file left as a crash before the
    next checkpoint leaves it. Returns (records, last checkpoint size, acknowledged ids)."""
    v.start()
    v.upload_ok(b"checkpointed")
    acked, stop = [], threading.Event()

    def uploader(k):
        i = 0
        while not stop.is_set():
            i += 1
            with contextlib.suppress(Exception):  # the kill cuts the requests in flight
                r = v.request("POST", "/v1/documents?name=f%d-%d.bin" % (k, i), body=b"in flight %d.%d" % (k, i),
                              headers={"Content-Type": "application/octet-stream"}, fresh=True)
                if r.status == 201:
                    acked.append(r.json()["id"])

    threads = [threading.Thread(target=uploader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while len(acked) < n_acked:
        time.sleep(0.01)  # polling the uploaders' progress
    v.kill()
    stop.set()
    for t in threads:
        t.join()
    audit = os.path.join(v.data, "audit")
    floor = 2  # vault.init and the first upload
    drop_checkpoints_after(audit, floor)
    recs = read_records(audit)
    check(len(recs) >= floor + n_acked, "the log holds %d records" % len(recs))
    return recs, floor, acked


def test_damage_above_checkpoint_refused():
    """A flipped bit in a record above the checkpoint that is not the last: no torn write
    (that leaves only a short last record) but damage. Refused, nothing cut, and verify
    --data reports it; the acknowledged entries after it are not given away."""
    with Vault(BINARY) as v:
        recs, floor, _ = crash_image(v)
        bad = floor + 1
        check(bad < len(recs) - 1, "no record above the checkpoint before the last one")
        flip_bit(os.path.join(v.data, "audit", "entries"), sum(len(r) for r in recs[:bad]) + 4 + 3)
        before = tree_files(v.data)
        out = serve_refuses(v)
        check("record %d" % bad in out and "damaged" in out, "the refusal does not name record %d" % bad, out)
        check(tree_files(v.data) == before, "a refused start changed the data directory")
        check(not os.path.exists(os.path.join(v.data, "audit", "torn")), "records were moved to torn/")
        rc, vout = audit_verify(v)
        check(rc == 3 and "index %d" % bad in vout, "verify --data does not report record %d (exit %d)"
              % (bad, rc), vout)
        check(tree_files(v.data) == before, "audit verify --data changed the data directory")


def test_torn_last_record_recovered():
    """A short last record (a write cut short) above the checkpoint is still moved whole to
    torn/ and cut; the records before it stay, and the server starts."""
    with Vault(BINARY) as v:
        recs, floor, _ = crash_image(v)
        path = os.path.join(v.data, "audit", "entries")
        keep = sum(len(r) for r in recs[:-1])
        tail = recs[-1][:len(recs[-1]) - 7]
        os.truncate(path, keep + len(tail))
        os.unlink(os.path.join(v.data, "audit", "state"))
        v.start()
        v.stop()
        torn = [os.path.join(v.data, "audit", "torn", n) for n in os.listdir(os.path.join(v.data, "audit", "torn"))
                if n.startswith("entries-")]
        check(len(torn) == 1, "expected one torn file", torn)
        with open(torn[0], "rb") as f:
            check(f.read() == tail, "the torn record was not kept whole")
        check(read_records(os.path.join(v.data, "audit"))[:len(recs) - 1] == recs[:-1],
              "entries before the torn record changed")
        os.unlink(torn[0])
        rc, out = audit_verify(v)
        check(rc == 0, "the log does not verify after recovery (exit %d)" % rc, out)


def test_verify_data_is_read_only():
    with Vault(BINARY) as v:
        make_log(v, n_docs=1)
        with open(os.path.join(v.data, "audit", "entries"), "ab") as f:
            f.write(b"\x07\x00\x00\x00garbage")
        os.unlink(os.path.join(v.data, "audit", "state"))
        before = tree_files(v.data)
        rc, out = audit_verify(v)
        check(rc == 3, "verify --data accepted a log with trailing garbage (exit %d)" % rc, out)
        check(tree_files(v.data) == before, "audit verify --data changed the data directory")
        check(not os.path.exists(os.path.join(v.data, "audit", "torn")), "verify moved records to torn/")


def forged_delete(recs, doc_id):
    e = entry_of(recs[-1])
    forged = {"action": "document.delete", "actor": e["actor"], "object": doc_id, "org": e["org"],
              "request_id": "f0f0f0f0f0f0f0f0", "time": e["time"]}
    return record_of(json.dumps(forged, sort_keys=True, separators=(",", ":")).encode())


def test_forged_record_after_clean_stop_refused():
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"an invoice")
        v.stop()
        audit = os.path.join(v.data, "audit")
        recs = read_records(audit)
        with open(os.path.join(audit, "entries"), "ab") as f:
            f.write(forged_delete(recs, doc["id"]))
        before = tree_files(v.data, derived=False)
        out = serve_refuses(v)
        check("while the server was stopped" in out and "%d" % len(recs) in out,
              "the refusal does not say what was added", out)
        check(tree_files(v.data, derived=False) == before, "a refused start changed the data directory")
        rc, vout = audit_verify(v)
        check(rc == 3, "audit verify --data accepted the forged record (exit %d)" % rc, vout)


def test_forged_record_after_crash_refused():
    """Without the stop marker (as after kill -9), a record without this server's MAC is refused."""
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"an invoice")
        v.stop()
        audit = os.path.join(v.data, "audit")
        os.unlink(os.path.join(audit, "stopped"))
        recs = read_records(audit)
        with open(os.path.join(audit, "entries"), "ab") as f:
            f.write(forged_delete(recs, doc["id"]))
        before = tree_files(v.data, derived=False)
        out = serve_refuses(v)
        check("entry %d" % len(recs) in out and "record MAC" in out, "the refusal does not name the entry", out)
        check(tree_files(v.data, derived=False) == before, "a refused start changed the data directory")


def test_replayed_record_after_crash_refused():
    """A copy of one of the server's own records carries a valid MAC: refused as a copy."""
    with Vault(BINARY) as v:
        v.start()
        v.upload_ok(b"an invoice")
        v.stop()
        audit = os.path.join(v.data, "audit")
        os.unlink(os.path.join(audit, "stopped"))
        recs = read_records(audit)
        macd = [r for r in recs if "mac" in entry_of(r)]
        check(macd, "no entry carries a record MAC")
        with open(os.path.join(audit, "entries"), "ab") as f:
            f.write(macd[0])
        out = serve_refuses(v)
        check("copy" in out, "the refusal does not say the record is a copy", out)


def drop_checkpoints_after(audit, keep_size):
    """Leaves in audit/checkpoints only the records for sizes <= keep_size: the state a crash
    leaves when entries were durable but their checkpoint was not yet written."""
    path = os.path.join(audit, "checkpoints")
    with open(path, "rb") as f:
        data = f.read()
    out, pos = b"", 0
    while pos < len(data):
        n, size = struct.unpack_from("<IQ", data, pos)
        end = pos + 4 + 8 + 32 + n + 32
        if size <= keep_size:
            out += data[pos:end]
        pos = end
    with open(path, "wb") as f:
        f.write(out)
    # their timestamps, appended only once a checkpoint is durable, were not written either
    ts = os.path.join(audit, "checkpoint-timestamps")
    if os.path.exists(ts):
        with open(ts, "rb") as f:
            lines = [l for l in f.read().splitlines(keepends=True) if int(l.split(b" ", 1)[0]) <= keep_size]
        with open(ts, "wb") as f:
            f.write(b"".join(lines))


def test_crash_tail_signed_and_recorded():
    """Entries a crashed server left past its last checkpoint carry its MACs: signed at start,
    and the recovery is itself an entry of the log."""
    with Vault(BINARY) as v:
        v.start()
        docs = [v.upload_ok(b"before the crash %d" % i) for i in range(3)]
        v.stop()
        audit = os.path.join(v.data, "audit")
        recs = read_records(audit)
        os.unlink(os.path.join(audit, "stopped"))
        drop_checkpoints_after(audit, 1)
        v.start()
        for d in docs:
            check(v.download(d["id"]).status == 200, "a document is gone")
        v.stop()
        check(b"carry valid record MACs: signing them now" in v.log_text(), "the tail was not checked",
              v.log_tail())
        acts = [entry_of(r)["action"] for r in read_records(audit)]
        check("audit.recover" in acts[len(recs):], "the recovery is not recorded in the log", acts)
        rc, out = audit_verify(v)
        check(rc == 0, "the log does not verify after the recovery (exit %d)" % rc, out)

def test_checkpoint_header_forged_refused():
    """The size stored beside the last signed note is not authenticated: the ledger takes the
    signed note's own size, and refuses a record whose stored size disagrees with it."""
    with Vault(BINARY) as v:
        recs = make_log(v, n_docs=3)
        path = os.path.join(v.data, "audit", "checkpoints")
        with open(path, "rb") as f:
            data = f.read()
        pos, last = 0, 0
        while pos < len(data):
            (n,) = struct.unpack_from("<I", data, pos)
            last = pos
            pos += 4 + 8 + 32 + n + 32
        (n, size) = struct.unpack_from("<IQ", data, last)
        check(size == len(recs), "the last checkpoint is not at the log's size")
        # one below the size it signs (and above any earlier checkpoint's: an upload adds two entries)
        head = struct.pack("<IQ", n, size - 1) + data[last + 12:last + 12 + 32 + n]
        forged = data[:last] + head + hashlib.sha256(head).digest()
        with open(path, "wb") as f:
            f.write(forged)
        out = serve_refuses(v)
        check("not stored at the size it signs" in out, "the forged header was not refused", out)


# ---- a document's audit trail: every entry checked, references rebuilt, pages ----

def trail(v, doc_id, limit=None):
    """Every entry of the document's trail, following next_cursor; returns (entries, pages)."""
    out, pages, cursor = [], 0, None
    while True:
        q = []
        if limit:
            q.append("limit=%d" % limit)
        if cursor:
            q.append("cursor=" + cursor)
        r = v.request("GET", "/v1/documents/%s/audit%s" % (doc_id, "?" + "&".join(q) if q else ""))
        check(r.status == 200, "document audit: status %d" % r.status, r)
        body = r.json()
        check(limit is None or len(body["entries"]) <= limit, "a page is longer than its limit", body)
        out += body["entries"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return out, pages
        check(pages < 100, "too many pages")


def test_document_audit_paged():
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"read me")
        for _ in range(6):
            check(v.download(doc["id"]).status == 200, "download failed")
        entries, pages = trail(v, doc["id"], limit=3)
        acts = [json.loads(e["entry"])["action"] for e in entries]
        check(acts == ["document.create", "document.seal"] + ["document.read"] * 6, "trail", acts)
        check(pages == 3, "expected 3 pages of at most 3, got %d" % pages)
        idx = [e["index"] for e in entries]
        check(idx == sorted(set(idx)), "indexes repeat or are out of order", idx)
        for bad in ("limit=0", "limit=1001", "limit=x", "cursor=abc"):
            r = v.request("GET", "/v1/documents/%s/audit?%s" % (doc["id"], bad))
            check(r.status == 400 and r.header("Content-Type", "").startswith("application/problem+json"),
                  "%s: status %d" % (bad, r.status), r)


def test_document_audit_stale_references():
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"a statement")
        other = v.upload_ok(b"another")
        v.stop()
        n = len(read_records(os.path.join(v.data, "audit")))
        with sqlite3.connect(os.path.join(v.data, "meta.db")) as db:
            first_other = db.execute("SELECT min(log_index) FROM audit_refs WHERE object_id = ?",
                                     (other["id"],)).fetchone()[0]
            # a reference to another document's entry, and one past the log's end
            db.execute("INSERT INTO audit_refs VALUES (?, ?)", (doc["id"], first_other))
            db.execute("INSERT INTO audit_refs VALUES (?, ?)", (doc["id"], n + 5))
        v.start()
        entries, _ = trail(v, doc["id"])
        objs = [json.loads(e["entry"])["object"] for e in entries]
        check(objs and all(o == doc["id"] for o in objs), "the trail shows another object's entries", objs)
        check(all(e["index"] < n + 5 for e in entries), "a reference past the log's end was served", entries)
        check(b"rebuilt from the log" in v.log_text(), "the references were not rebuilt", v.log_tail())


def test_older_meta_db_finishes_logged_deletion():
    """An older meta.db brings back the row of a document deleted since: the log says it was
    deleted, so the deletion is finished (not served from a row without a key)."""
    with Vault(BINARY) as v:
        v.start()
        gone = v.upload_ok(b"deleted later")
        kept = v.upload_ok(b"kept")
        v.stop()
        copy_meta(v.data, os.path.join(v.base, "saved"))
        v.start()
        r = v.request("DELETE", "/v1/documents/" + gone["id"])
        check(r.status == 204, "DELETE: %d" % r.status, r)
        v.stop()
        restore_meta(os.path.join(v.base, "saved"), v.data)
        v.start()
        check(v.request("GET", "/v1/documents/" + gone["id"]).status == 404, "a deleted document is back")
        check(v.download(kept["id"]).status == 200, "the other document is gone")
        check(b"finishing the deletion" in v.log_text(), "the finished deletion is not reported", v.log_tail())


def test_crash_after_key_destroyed_finishes_deletion():
    """A crash between the destruction of a document's key and the removal of its row leaves the
    row, its audit references included (the delete's too): the state after a DELETE with the row
    put back. The start finishes the deletion: 404, not a listed document whose content is 500."""
    with Vault(BINARY) as v:
        v.start()
        gone = v.upload_ok(b"deleted, then a crash")
        kept = v.upload_ok(b"kept")
        v.stop()
        meta = os.path.join(v.data, "meta.db")
        with sqlite3.connect(meta) as db:
            db.row_factory = None
            cols = [r[1] for r in db.execute("PRAGMA table_info(documents)")]
            row = db.execute("SELECT * FROM documents WHERE id = ?", (gone["id"],)).fetchone()
        check(row is not None, "no documents row for the upload")
        v.start()
        r = v.request("DELETE", "/v1/documents/" + gone["id"])
        check(r.status == 204, "DELETE: %d" % r.status, r)
        v.stop()
        with sqlite3.connect(meta) as db:
            refs = db.execute("SELECT count(*) FROM audit_refs WHERE object_id = ?", (gone["id"],)).fetchone()[0]
            db.execute("INSERT INTO documents (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))), row)
        check(refs >= 2, "the delete's audit reference is not stored", refs)
        check(dek_count(v.data, gone["id"]) == 0, "the key survived the deletion")
        v.start()
        # the DELETE left its tombstone (the row put back is the crash): erased, 410
        check(v.request("GET", "/v1/documents/" + gone["id"]).status == 410, "the deleted document is back")
        r = v.download(gone["id"])
        check(r.status == 410, "content of the deleted document: %d" % r.status, r)
        check(gone["id"] not in [d["id"] for d in v.list_all()], "the deleted document is listed")
        check(v.download(kept["id"]).status == 200, "the other document is gone")
        check(b"finishing the deletion" in v.log_text(), "the finished deletion is not reported", v.log_tail())
        v.stop()
        with sqlite3.connect(meta) as db:
            left = db.execute("SELECT count(*) FROM documents WHERE id = ?", (gone["id"],)).fetchone()[0]
        check(left == 0, "the row is still in meta.db")


def test_logged_deletion_with_intact_key_kept():
    """meta.db, keyring.db and the object all put back from before a deletion: as if it had been
    cut short before it destroyed anything; the document is kept and the log says so."""
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"still here")
        v.stop()
        saved = os.path.join(v.base, "saved")
        copy_meta(v.data, saved)
        shutil.copy2(os.path.join(v.data, "keyring.db"), os.path.join(saved, "keyring.db"))
        shutil.copy2(object_path(v.data, doc["id"]), os.path.join(saved, "object"))
        v.start()
        check(v.request("DELETE", "/v1/documents/" + doc["id"]).status == 204, "DELETE failed")
        v.stop()
        restore_meta(saved, v.data)
        shutil.copy2(os.path.join(saved, "object"), object_path(v.data, doc["id"]))
        for suffix in ("-wal", "-shm"):
            p = os.path.join(v.data, "keyring.db" + suffix)
            if os.path.exists(p):
                os.unlink(p)
        shutil.copy2(os.path.join(saved, "keyring.db"), os.path.join(v.data, "keyring.db"))
        v.start()
        r = v.download(doc["id"])
        check(r.status == 200 and r.body == b"still here", "the document is gone: %d" % r.status, v.log_tail())
        acts = doc_actions(v, doc["id"])
        check("document.delete_cancelled" in acts and
              acts.index("document.delete_cancelled") > acts.index("document.delete"),
              "the cancelled deletion is not logged after the deletion", acts)


def test_document_audit_missing_reference_rebuilt():
    """A reference missing below later ones (a crash or a full disk between the entry and its
    reference, or an edited meta.db): the trail is rebuilt from the log, creation included."""
    with Vault(BINARY) as v:
        v.start()
        doc = v.upload_ok(b"a payslip")
        check(v.download(doc["id"]).status == 200, "download failed")
        v.upload_ok(b"a later document")
        v.stop()
        with sqlite3.connect(os.path.join(v.data, "meta.db")) as db:
            first = db.execute("SELECT min(log_index) FROM audit_refs WHERE object_id = ?",
                               (doc["id"],)).fetchone()[0]
            db.execute("DELETE FROM audit_refs WHERE object_id = ? AND log_index = ?", (doc["id"], first))
        v.start()
        entries, _ = trail(v, doc["id"])
        acts = [json.loads(e["entry"])["action"] for e in entries]
        check(acts[:3] == ["document.create", "document.seal", "document.read"], "the creation is missing from the trail",
              acts)


if __name__ == "__main__":
    sys.exit(exit_status(run_tests([
        test_stale_meta_db_rebuilds_row,
        test_deleted_row_rebuilds_row,
        test_unrebuildable_refuses_then_repair,
        test_unlogged_object_removed,
        test_older_meta_db_finishes_logged_deletion,
        test_logged_deletion_with_intact_key_kept,
        test_crash_after_key_destroyed_finishes_deletion,
        test_damaged_below_checkpoint_refused,
        test_log_cut_below_checkpoint_refused,
        test_older_audit_and_meta_db_refused,
        test_emptied_audit_and_rows_refused,
        test_damaged_without_checkpoints_file_refused,
        test_rolled_back_audit_refused,
        test_foreign_tail_refused,
        test_damage_above_checkpoint_refused,
        test_torn_last_record_recovered,
        test_verify_data_is_read_only,
        test_forged_record_after_clean_stop_refused,
        test_forged_record_after_crash_refused,
        test_replayed_record_after_crash_refused,
        test_crash_tail_signed_and_recorded,
        test_checkpoint_header_forged_refused,
        test_document_audit_paged,
        test_document_audit_stale_references,
        test_document_audit_missing_reference_rebuilt,
    ])))
