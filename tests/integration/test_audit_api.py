#!/usr/bin/env python3
"""test_audit_api.py: the audit API end to end over real HTTPS.

Uploads, downloads and deletes documents, then checks that each action is in the log; that the
checkpoint is a C2SP signed note whose Ed25519 signature stock `openssl pkeyutl` accepts; that
RFC 9162 inclusion and consistency proofs (verified here, in Python) tie entries and checkpoints
together; that entries of another organisation are redacted; witness cosignatures; C2SP tiles;
every error answer (400/401/403/404/413/422) as problem+json; and that docs/openapi.yaml
describes every route of src/api/routes.c.
Usage: test_audit_api.py PATH/TO/coffre
"""

import base64
import hashlib
import json
import os
import re
import secrets
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.parse

from rfc9162 import leaf_hash, verify_consistency, verify_inclusion  # noqa: E402
from harness import TestFailure, Vault, check, exit_status, expect_problem, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKPOINT_DEADLINE = 15.0  # seconds for a checkpoint to cover a given size (one a second is promised)
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
WITNESS_NAME = "witness.example/w1"

V = None  # the shared vault, started in main()
WITNESS = None  # (private key path, public key bytes) of the configured witness


# -- helpers --------------------------------------------------------------------------------


def get(path, token=None, expect=200):
    r = V.request("GET", path, headers=V.auth_headers(token) if token else None)
    if expect is not None:
        check(r.status == expect, "GET %s: status %d, expected %d" % (path, r.status, expect), r)
    return r


def get_json(path, token=None):
    r = get(path, token)
    ctype = r.header("Content-Type", "")
    check(ctype.split(";")[0].strip() == "application/json", "GET %s: Content-Type %r" % (path, ctype))
    return r.json()


def b64d(s):
    return base64.b64decode(s, validate=True)


def parse_vkey(vkey):
    """C2SP vkey "<name>+<hash8>+<base64(type||key)>": (name, key id, type, key)."""
    m = re.fullmatch(r"([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)", vkey)
    check(m is not None, "verifier key is not a C2SP vkey: %r" % vkey)
    name, hash8, blob = m.group(1), m.group(2), b64d(m.group(3))
    check(len(blob) == 33 and blob[0] == 0x01, "vkey is not an Ed25519 (type 0x01) key: %r" % vkey)
    key_id = hashlib.sha256(name.encode() + b"\n" + blob).digest()[:4]
    check(key_id.hex() == hash8, "vkey hash %s is not the key's id %s" % (hash8, key_id.hex()))
    return name, key_id, blob[0], blob[1:]


class Checkpoint:
    def __init__(self, text):
        check(text.endswith("\n"), "checkpoint note does not end with a newline", repr(text))
        i = text.find("\n\n")
        check(i > 0, "checkpoint note has no blank line before its signatures", repr(text))
        self.text = text
        self.body = text[:i + 1]
        lines = self.body.split("\n")[:-1]
        check(len(lines) >= 3, "checkpoint body has fewer than 3 lines", repr(self.body))
        self.origin = lines[0]
        check(re.fullmatch(r"[1-9][0-9]*|0", lines[1]) is not None, "checkpoint size %r" % lines[1])
        self.size = int(lines[1])
        self.root = b64d(lines[2])
        check(len(self.root) == 32, "checkpoint root is not 32 bytes")
        self.sigs = []  # (name, raw signature bytes)
        for line in text[i + 2:].split("\n")[:-1]:
            m = re.fullmatch(r"\u2014 (\S+) ([A-Za-z0-9+/=]+)", line)
            check(m is not None, "malformed signature line %r" % line)
            self.sigs.append((m.group(1), b64d(m.group(2))))
        check(self.sigs, "checkpoint note carries no signature")


def latest_checkpoint(min_size=0):
    """The latest checkpoint, once it covers min_size entries (bounded wait: one a second is promised)."""
    deadline = time.monotonic() + CHECKPOINT_DEADLINE
    while True:
        r = get("/v1/audit/checkpoint", expect=None)
        if r.status == 200:
            check(r.header("Content-Type", "").startswith("text/plain"), "checkpoint Content-Type %r"
                  % r.header("Content-Type"))
            cp = Checkpoint(r.body.decode("utf-8"))
            if cp.size >= min_size:
                return cp
        else:
            check(r.status == 404, "checkpoint: status %d" % r.status, r)
        if time.monotonic() > deadline:
            raise TestFailure("no checkpoint covering %d entries within %ss" % (min_size, CHECKPOINT_DEADLINE))
        time.sleep(0.05)  # polling interval, bounded by the deadline above


def pem_public_key(raw):
    der = ED25519_SPKI_PREFIX + raw
    return "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n" % base64.b64encode(der).decode()


def openssl_verify(pub_raw, message, signature):
    """True when stock `openssl pkeyutl -verify -rawin` accepts the Ed25519 signature."""
    d = os.path.join(V.base, "ossl-" + secrets.token_hex(4))
    os.mkdir(d)
    files = {"pub.pem": pem_public_key(pub_raw).encode(), "msg": message, "sig": signature}
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", os.path.join(d, "pub.pem"),
                        "-rawin", "-in", os.path.join(d, "msg"), "-sigfile", os.path.join(d, "sig")],
                       capture_output=True, timeout=60)
    ok = r.returncode == 0 and b"Signature Verified Successfully" in r.stdout
    check(ok or r.returncode != 0, "openssl exit 0 without success message", r.stdout, r.stderr)
    return ok


def log_key():
    r = get("/v1/audit/verifier-key")
    text = r.body.decode()
    check(text.endswith("\n") and text.count("\n") == 1, "verifier key is not one line", repr(text))
    return parse_vkey(text.strip())


def check_signed(cp):
    """The checkpoint's log signature verifies with openssl, under the served verifier key."""
    name, key_id, _alg, pub = log_key()
    check(cp.origin == name, "checkpoint origin %r is not the key name %r" % (cp.origin, name))
    mine = [s for n, s in cp.sigs if n == name and s[:4] == key_id]
    check(len(mine) == 1, "expected one signature by the log key", cp.text)
    sig = mine[0]
    check(len(sig) == 68, "Ed25519 signature line holds %d bytes, not 4 + 64" % len(sig))
    check(openssl_verify(pub, cp.body.encode(), sig[4:]), "openssl rejects the checkpoint signature", cp.text)
    return pub, sig


def entries(start, end, token=None):
    return get_json("/v1/audit/entries?start=%d&end=%d" % (start, end), token)["entries"]


def doc_audit(doc_id, token=None):
    return get_json("/v1/documents/%s/audit" % doc_id, token)


def entry_of(e):
    check(isinstance(e.get("entry"), str), "entry is not a JSON string", e)
    return json.loads(e["entry"])


def all_entries(size):
    out = []
    for start in range(0, size, 1000):
        out.extend(entries(start, min(size, start + 1000)))
    return out


def add_token(role, org=None):
    """An API token (every scope) of a new user of the given role (and organisation, created if
    new) written straight into meta.db: no login needed, and an organisation of no operator.
    The user's personal fields are placeholders no one reads here."""
    token = "cfr_" + secrets.token_hex(24)
    user = secrets.token_hex(16)
    now = int(time.time() * 1000)
    db = sqlite3.connect(os.path.join(V.data, "meta.db"), timeout=30)
    try:
        with db:
            if org is None:
                org = db.execute("SELECT org_id FROM users WHERE id = ?", (V.owner_id,)).fetchone()[0]
            else:
                db.execute("INSERT OR IGNORE INTO orgs (id, name, created_at) VALUES (?, ?, ?)",
                           (org, "Other SARL", now))
            # owners, admins and operators must have a second factor for their tokens to work:
            # marked enrolled (no secret; nothing here logs in)
            enrolled = 1 if role in ("owner", "admin", "operator") else 0
            db.execute("INSERT INTO users (id, org_id, role, email_index, email, password_hash, created_at, "
                       "totp_enabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (user, org, role, secrets.token_bytes(32), b"placeholder", "placeholder", now, enrolled))
            db.execute("INSERT INTO tokens (hash, id, org_id, role, created_at, expires_at, kind, user_id, name, scopes) "
                       "VALUES (?, ?, ?, ?, ?, 0, 'api', ?, 'test', 31)",
                       (hashlib.sha256(token.encode()).digest(), secrets.token_hex(16), org, role, now, user))
    finally:
        db.close()
    return token


def openssl(*args, data=None):
    r = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl %s failed" % " ".join(args), r.stderr.decode(errors="replace"))
    return r.stdout


def make_witness(directory, name):
    """An Ed25519 witness key made by openssl: (private key path, raw public key, vkey text)."""
    path = os.path.join(directory, "witness-%s.pem" % secrets.token_hex(4))
    openssl("genpkey", "-algorithm", "ed25519", "-out", path)
    der = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")
    check(der.startswith(ED25519_SPKI_PREFIX) and len(der) == 44, "unexpected Ed25519 SPKI from openssl")
    pub = der[-32:]
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    vkey = "%s+%s+%s" % (name, key_id.hex(), base64.b64encode(b"\x04" + pub).decode())
    return path, pub, vkey


def cosignature_line(key_path, pub, name, body, ts):
    """A c2sp.org/tlog-cosignature (cosignature/v1) line over a checkpoint body, signed by openssl."""
    msg_path = key_path + ".msg"
    with open(msg_path, "wb") as f:
        f.write(b"cosignature/v1\ntime %d\n" % ts + body.encode())
    sig = openssl("pkeyutl", "-sign", "-rawin", "-inkey", key_path, "-in", msg_path)
    check(len(sig) == 64, "openssl gave a %d-byte Ed25519 signature" % len(sig))
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    return "\u2014 %s %s\n" % (name, base64.b64encode(key_id + struct.pack(">Q", ts) + sig).decode())


def post_cosignature(note):
    data = note.encode() if isinstance(note, str) else note
    return V.request("POST", "/v1/audit/checkpoint/cosignature", body=data,
                     headers={"Content-Type": "text/plain; charset=utf-8"})


# -- tests ----------------------------------------------------------------------------------


def test_every_action_is_logged():
    docs = [V.upload_ok(b"invoice %d " % i + secrets.token_bytes(100 * i), name="inv-%d.pdf" % i) for i in range(3)]
    r = V.download(docs[0]["id"])
    check(r.status == 200, "download: %d" % r.status, r)
    r = V.request("DELETE", "/v1/documents/%s" % docs[2]["id"])
    check(r.status == 204, "delete: %d" % r.status, r)

    # each document's trail: exactly its own actions, in order, with the document's hash
    want = {0: ["document.create", "document.seal", "document.read"], 1: ["document.create", "document.seal"],
            2: ["document.create", "document.seal", "document.delete", "document.erase"]}
    top = 0
    for i, d in enumerate(docs):
        trail = doc_audit(d["id"])
        check(trail["document"] == d["id"], "trail names document %r" % trail["document"])
        idx = [e["index"] for e in trail["entries"]]
        check(idx == sorted(set(idx)), "trail indexes not ascending and distinct: %r" % idx)
        got = [entry_of(e) for e in trail["entries"]]
        check([g["action"] for g in got] == want[i], "document %d trail %r, expected %r"
              % (i, [g["action"] for g in got], want[i]))
        for g in got:
            check(g["object"] == d["id"], "trail entry about %r" % g["object"])
            if g["action"] == "document.seal":  # names the seal's own SHA-256
                seal = V.request("GET", "/v1/documents/%s/seal" % d["id"])
                if seal.status == 200:
                    check(g["object_sha256"] == hashlib.sha256(seal.body).hexdigest(), "seal entry hash")
                continue
            check(g["object_sha256"] == d["sha256"], "trail entry has sha256 %r" % g.get("object_sha256"))
            check("name" not in g and d["name"] not in json.dumps(g), "entry shows the document's name in clear", g)
        top = max(top, idx[-1] + 1)

    # the whole log agrees with the trails: every entry naming a document is in its trail
    cp = latest_checkpoint(top)
    log = all_entries(cp.size)
    check([e["index"] for e in log] == list(range(cp.size)), "entries are not indexed 0..size-1")
    for d in docs:
        from_log = [e["index"] for e in log if not e.get("redacted") and entry_of(e).get("object") == d["id"]]
        check(from_log == [e["index"] for e in doc_audit(d["id"])["entries"]],
              "the document's trail is not exactly the log's entries about it", d["id"], from_log)
    # the deleted document's trail outlives it
    check(V.request("GET", "/v1/documents/%s" % docs[2]["id"]).status == 410, "deleted document still there")


def test_checkpoint_is_signed_note():
    V.upload_ok(b"one more entry", name="cp.txt")
    cp = latest_checkpoint(1)
    pub, sig = check_signed(cp)
    # a changed body or a changed signature does not verify: the check can fail
    forged = cp.body.replace("\n%d\n" % cp.size, "\n%d\n" % (cp.size + 1), 1).encode()
    check(not openssl_verify(pub, forged, sig[4:]), "openssl accepted a forged checkpoint size")
    bad = bytearray(sig[4:])
    bad[10] ^= 1
    check(not openssl_verify(pub, cp.body.encode(), bytes(bad)), "openssl accepted a flipped signature bit")
    # the same checkpoint by its size, and its root is the log's root at that size
    r = get("/v1/audit/checkpoint?size=%d" % cp.size)
    check(Checkpoint(r.body.decode()).body == cp.body, "checkpoint?size=N is another checkpoint")
    check(r.header("Content-Type", "").lower().replace(" ", "") == "text/plain;charset=utf-8",
          "Content-Type %r" % r.header("Content-Type"))
    proof = get_json("/v1/audit/proof/inclusion?index=0&size=%d" % cp.size)
    check(b64d(proof["root"]) == cp.root, "the proof's root is not the checkpoint's root")


def test_inclusion_proofs_verify():
    V.upload_ok(b"for inclusion", name="incl.txt")
    cp = latest_checkpoint(2)
    check_signed(cp)
    log = all_entries(cp.size)
    # every index of a small log, or a spread of them
    indexes = sorted(set([0, cp.size - 1, cp.size // 2] + list(range(min(cp.size, 40)))))
    for i in indexes:
        p = get_json("/v1/audit/proof/inclusion?index=%d&size=%d" % (i, cp.size))
        check(p["index"] == i and p["size"] == cp.size, "proof for the wrong leaf or size", p)
        leaf = leaf_hash(log[i]["entry"].encode())
        check(b64d(p["leaf_hash"]) == leaf, "leaf_hash of entry %d is not SHA-256(0x00 || entry)" % i)
        check(b64d(p["root"]) == cp.root, "proof root is not the signed root")
        proof = [b64d(h) for h in p["proof"]]
        check(all(len(h) == 32 for h in proof), "proof hashes are not 32 bytes")
        check(verify_inclusion(leaf, i, cp.size, proof, cp.root), "inclusion proof of %d fails" % i, p)
        if proof:  # a tampered proof must fail, or the verification proves nothing
            bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:]] + proof[1:]
            check(not verify_inclusion(leaf, i, cp.size, bad, cp.root), "tampered proof verified")
        other = leaf_hash(b"not the entry")
        check(not verify_inclusion(other, i, cp.size, proof, cp.root), "a proof verified another leaf")


def test_consistency_between_checkpoints():
    old = latest_checkpoint(1)
    for i in range(5):
        V.upload_ok(b"growing %d" % i, name="grow-%d.txt" % i)
    new = latest_checkpoint(old.size + 5)
    check_signed(old)
    check_signed(new)
    p = get_json("/v1/audit/proof/consistency?old=%d&new=%d" % (old.size, new.size))
    check(p["old"] == old.size and p["new"] == new.size, "consistency proof for other sizes", p)
    check(b64d(p["old_root"]) == old.root and b64d(p["new_root"]) == new.root,
          "consistency proof roots are not the checkpoints' roots")
    proof = [b64d(h) for h in p["proof"]]
    check(verify_consistency(old.size, new.size, old.root, new.root, proof), "consistency proof fails", p)
    check(not verify_consistency(old.size, new.size, old.root, hashlib.sha256(b"x").digest(), proof),
          "a consistency proof verified a wrong new root")
    # every prefix of the new tree is consistent with it
    for m in range(1, new.size + 1):
        q = get_json("/v1/audit/proof/consistency?old=%d&new=%d" % (m, new.size))
        check(verify_consistency(m, new.size, b64d(q["old_root"]), new.root, [b64d(h) for h in q["proof"]]),
              "consistency %d -> %d fails" % (m, new.size), q)


def test_redaction_across_organisations():
    doc = V.upload_ok(b"org A only", name="a.txt")
    cp = latest_checkpoint(1)
    other_org = secrets.token_hex(16)
    tok_b = add_token("admin", org=other_org)
    mine = entries(0, cp.size)
    theirs = entries(0, cp.size, token=tok_b)
    check(len(theirs) == cp.size, "redacted listing lost entries")
    own_org = {entry_of(a)["org"] for a in mine if not a.get("redacted")}
    check(len(own_org) == 1, "the default organisation sees entries of %d organisations" % len(own_org))
    for a, b in zip(mine, theirs):
        check(b["index"] == a["index"], "redacted listing changed the indexes")
        check(b.get("redacted") is True and b["entry"] is None, "another organisation sees an entry", b)
        check(set(b) == {"index", "entry", "redacted", "leaf_hash"}, "redacted entry has fields %r" % sorted(b))
        if a.get("redacted"):  # not the default organisation's either (a system entry, say)
            check(a["leaf_hash"] == b["leaf_hash"], "two callers see different leaf hashes")
        else:
            check(b64d(b["leaf_hash"]) == leaf_hash(a["entry"].encode()), "redacted leaf_hash is not the entry's")
    # the other organisation cannot see the first organisation's document trail either
    expect_problem(get("/v1/documents/%s/audit" % doc["id"], token=tok_b, expect=None), 404, "not-found")


def test_roles():
    member = add_token("viewer")
    doc = V.upload_ok(b"for the roles", name="roles.txt")
    expect_problem(get("/v1/audit/entries?start=0&end=1", token=member, expect=None), 403, "forbidden")
    expect_problem(get("/v1/documents/%s/audit" % doc["id"], token=member, expect=None), 403, "forbidden")
    expect_problem(get("/v1/audit/tile/entries/000.p/1", token=member, expect=None), 403, "forbidden")
    # proofs, checkpoints and keys are for everyone with a token
    cp = latest_checkpoint(1)
    get("/v1/audit/checkpoint", token=member)
    get("/v1/audit/verifier-key", token=member)
    get("/v1/audit/proof/inclusion?index=0&size=%d" % cp.size, token=member)
    auditor = add_token("auditor")
    check(len(entries(0, 1, token=auditor)) == 1, "an auditor cannot read entries")
    for path in ("/v1/audit/checkpoint", "/v1/audit/verifier-key", "/v1/audit/entries?start=0&end=1",
                 "/v1/audit/proof/inclusion?index=0&size=1", "/v1/documents/%s/audit" % doc["id"]):
        r = V.request("GET", path, auth=False)
        expect_problem(r, 401, "unauthorized")


def test_bad_parameters():
    V.upload_ok(b"for the parameters", name="params.txt")
    cp = latest_checkpoint(1)
    n = cp.size
    bad = [
        "/v1/audit/proof/inclusion", "/v1/audit/proof/inclusion?size=%d" % n,
        "/v1/audit/proof/inclusion?index=0", "/v1/audit/proof/inclusion?index=abc&size=%d" % n,
        "/v1/audit/proof/inclusion?index=-1&size=%d" % n, "/v1/audit/proof/inclusion?index=+0&size=%d" % n,
        "/v1/audit/proof/inclusion?index=0x1&size=%d" % n, "/v1/audit/proof/inclusion?index=1.0&size=%d" % n,
        "/v1/audit/proof/inclusion?index=%d&size=%d" % (n, n),
        "/v1/audit/proof/inclusion?index=0&size=0", "/v1/audit/proof/inclusion?index=0&size=99999999999",
        "/v1/audit/proof/inclusion?index=0&size=18446744073709551616",
        "/v1/audit/proof/consistency?old=0&new=%d" % n, "/v1/audit/proof/consistency?old=%d&new=1" % (n + 1),
        "/v1/audit/proof/consistency?old=1&new=%d" % (n + 100000), "/v1/audit/proof/consistency?old=1",
        "/v1/audit/entries?start=0", "/v1/audit/entries?start=2&end=1", "/v1/audit/entries?start=0&end=1001",
        "/v1/audit/entries?start=0&end=%d" % (n + 100000), "/v1/audit/entries?start=x&end=1",
        "/v1/audit/checkpoint?size=0", "/v1/audit/checkpoint?size=abc",
    ]
    for path in bad:
        expect_problem(get(path, expect=None), 400, "bad-request")
    # the edges that are allowed
    check(entries(n, n) == [], "an empty range is not empty")
    check(len(entries(0, n)) == n, "entries 0..size")


def test_not_found():
    V.upload_ok(b"for not-found", name="nf.txt")
    cp = latest_checkpoint(1)
    expect_problem(get("/v1/audit/checkpoint?size=%d" % (cp.size + 1000000), expect=None), 404, "not-found")
    expect_problem(get("/v1/documents/%s/audit" % secrets.token_hex(16), expect=None), 404, "not-found")
    expect_problem(get("/v1/documents/not-an-id/audit", expect=None), 404, "not-found")
    expect_problem(get("/v1/audit/tile/0/x999/999", expect=None), 404, "not-found")
    expect_problem(get("/v1/audit/tile/0/1", expect=None), 404, "not-found")


def test_cosignatures():
    key_path, pub, _vkey = WITNESS
    V.upload_ok(b"to be witnessed", name="w.txt")
    cp = latest_checkpoint(1)
    ts = int(time.time())
    line = cosignature_line(key_path, pub, WITNESS_NAME, cp.body, ts)
    r = post_cosignature(cp.text + line)
    check(r.status == 200, "cosignature: status %d" % r.status, r)
    check(r.json() == {"added": 1}, "cosignature answer %r" % r.json())
    r = post_cosignature(cp.text + line)
    check(r.status == 200 and r.json() == {"added": 0}, "the same cosignature twice was added again", r)
    served = get("/v1/audit/checkpoint?size=%d" % cp.size).body.decode()
    check(served.endswith(line), "the checkpoint does not carry the witness's cosignature", served)
    check(Checkpoint(served).body == cp.body, "cosigning changed the checkpoint body")

    # a key nobody configured: 422; a checkpoint this log never signed: 404; junk: 400; too big: 413
    stranger = make_witness(V.base, "stranger.example/w")
    r = post_cosignature(cp.text + cosignature_line(stranger[0], stranger[1], "stranger.example/w", cp.body, ts))
    expect_problem(r, 422, "no-valid-cosignature")
    head, sig = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(b64d(sig))
    raw[-1] ^= 1  # one bit of the Ed25519 signature
    bad_line = "%s %s\n" % (head, base64.b64encode(bytes(raw)).decode())
    expect_problem(post_cosignature(cp.text + bad_line), 422, "no-valid-cosignature")
    unknown = cp.body.replace("\n%d\n" % cp.size, "\n%d\n" % (cp.size + 1000000), 1)
    r = post_cosignature(unknown + "\n" + cosignature_line(key_path, pub, WITNESS_NAME, unknown, ts))
    expect_problem(r, 404, "not-found")
    expect_problem(post_cosignature("hello"), 400, "bad-request")
    expect_problem(post_cosignature(""), 400, "bad-request")
    expect_problem(post_cosignature(b"\x00\xff\n\n"), 400, "bad-request")
    # The server refuses an oversized body before reading it and closes the connection;
    # http.client cannot read an answer sent while it still writes, curl can.
    big = os.path.join(V.base, "big-cosignature.txt")
    with open(big, "w") as f:
        f.write("x" * (64 * 1024 + 1))
    r = V.curl("-X", "POST", "-H", "Authorization: Bearer " + V.token, "-H", "Content-Type: text/plain",
               "--data-binary", "@" + big, "-w", "\n%{http_code} %{content_type}",
               V.url + "/v1/audit/checkpoint/cosignature")
    body, _, tail = r.stdout.rpartition(b"\n")
    check(tail.startswith(b"413 application/problem+json"), "oversized cosignature: %r" % tail, r.stderr)
    check(json.loads(body)["type"] == "urn:coffre:problem:payload-too-large", "413 type", body)


def test_tiles():
    V.upload_ok(b"tile", name="tile.txt")
    cp = latest_checkpoint(1)
    n = min(cp.size, 255)
    log = all_entries(n)
    r = get("/v1/audit/tile/0/000.p/%d" % n)
    check(r.header("Content-Type") == "application/octet-stream", "tile Content-Type %r" % r.header("Content-Type"))
    check(len(r.body) == 32 * n, "a partial tile of width %d holds %d bytes" % (n, len(r.body)))
    for i in range(n):
        check(r.body[32 * i:32 * i + 32] == leaf_hash(log[i]["entry"].encode()), "tile hash %d is not the leaf" % i)
    r = get("/v1/audit/tile/entries/000.p/%d" % n)
    out, p = [], 0
    while p < len(r.body):
        ln = struct.unpack(">H", r.body[p:p + 2])[0]
        out.append(r.body[p + 2:p + 2 + ln])
        p += 2 + ln
    check(out == [e["entry"].encode() for e in log], "entry bundle is not the entries")
    for path in ("/v1/audit/tile/0/000.p/0", "/v1/audit/tile/0/000.p/256", "/v1/audit/tile/0/000.p/01",
                 "/v1/audit/tile/0/x000/000", "/v1/audit/tile/00/000", "/v1/audit/tile/64/000",
                 "/v1/audit/tile/0/00", "/v1/audit/tile/0/000.p/%d" % (cp.size + 300)):
        expect_problem(get(path, expect=None), 404, "not-found")


def routes_of_source():
    with open(os.path.join(SOURCE_ROOT, "src", "api", "routes.c")) as f:
        text = f.read()
    return re.findall(r'\{\s*"(GET|POST|PUT|PATCH|DELETE)",\s*"([^"]+)"', text)


def test_openapi_describes_every_route():
    with open(os.path.join(SOURCE_ROOT, "docs", "openapi.yaml")) as f:
        yaml = f.read()
    check(yaml.startswith("openapi: 3.1"), "docs/openapi.yaml is not OpenAPI 3.1")
    lines = yaml.split("\n")
    routes = routes_of_source()
    check(len(routes) >= 15, "found only %d routes in routes.c" % len(routes))
    for method, path in routes:
        try:
            start = lines.index("  %s:" % path)
        except ValueError:
            raise TestFailure("docs/openapi.yaml has no path %s" % path)
        block = []
        for line in lines[start + 1:]:
            if line.strip() and not line.startswith("   "):
                break
            block.append(line)
        check("    %s:" % method.lower() in block, "docs/openapi.yaml: %s has no %s" % (path, method.lower()))
    # the server publishes the same description
    r = V.request("GET", "/v1/openapi.yaml", auth=False)
    check(r.status == 200 and r.body.decode() == yaml, "/v1/openapi.yaml is not docs/openapi.yaml")


TESTS = [test_every_action_is_logged, test_checkpoint_is_signed_note, test_inclusion_proofs_verify,
         test_consistency_between_checkpoints, test_redaction_across_organisations, test_roles,
         test_bad_parameters, test_not_found, test_cosignatures, test_tiles, test_openapi_describes_every_route]


def main():
    global V, WITNESS
    with Vault(BINARY) as v:
        V = v
        key_path, pub, vkey = make_witness(v.base, WITNESS_NAME)
        WITNESS = (key_path, pub, vkey)
        conf = os.path.join(v.data, "coffre.conf")
        with open(conf) as f:
            text = f.read()
        check("\n[audit]\n" in text, "coffre.conf has no [audit] section")
        with open(conf, "w") as f:
            f.write(text.replace("\n[audit]\n", "\n[audit]\nwitness = %s\n" % vkey, 1))
        v.start()
        rc = run_tests(TESTS)
        if rc:
            print(v.log_tail(60))
        stop_rc = v.stop()
        if stop_rc != 0:
            print("shared server: SIGTERM exit status %r" % stop_rc)
            rc = 1
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
