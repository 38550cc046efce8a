#!/usr/bin/env python3
"""test_backup.py: `coffre backup` and `coffre restore` end to end, against the real server.

- Round trip: a vault with documents, served; `backup init` to two directories and `backup
  run` while the server runs; the data directory deleted; `coffre restore` from each
  destination alone into a new directory; a server started there serves every document
  byte-identical, and `coffre audit verify --data` passes on it.
- No plaintext: no document content, document name, or the vault's own organisation text
  anywhere in either destination.
- Incremental: with 100 documents, one more document (1 %) adds about 1 % to the repository.
- Damage (on copies of a destination): a flipped bit in a pack, a missing pack, a truncated
  index, a snapshot signed by another vault's key: each named by `backup verify` (exit 3);
  `restore --from DAMAGED --from GOOD` takes the damaged file from the other destination.
- A pack lost at the destination: the next run writes what it needs again (the index is not
  trusted blindly), verify names the lost pack only, the new snapshot restores.
- kill -9 of `backup run` once its first pack is written: `backup verify` finds the repository
  valid (the interrupted run's pack is only a note), the next run completes, a restore works.
- Prune: a snapshot whose file time disagrees with its signed date is flagged by list and
  verify, kept by prune and never takes a retention slot; the dry run shows what would go and
  why (also as of 100 days later, for the keyring retention); prune refuses while a run holds
  the destination; afterwards the repository verifies and restore takes the newest trusted
  snapshot.
- Keyring apart: with a keyring_destination the keyring series goes there only and the data
  series to the others; restore needs both (--keyring-from) and says so without.
- Schedule: with [backup] interval set, `coffre serve` runs one scheduler process that backs
  up while uploads go on; /metrics shows it; it is gone after the server stops; the scheduled
  snapshots verify and restore.
- Drill: `backup drill` restores each destination alone into a scratch directory, verifies the
  audit log and decrypts and hashes every document, with RPO and RTO figures; a damaged
  destination fails its drill (exit 3), the other passes; scratch directories are removed.
- /metrics: last run, last success, duration, bytes and overdue per destination.
- kill -9 of `backup prune` while it holds the destination: the repository verifies, the next
  prune reports the stale lock, then completes once it is removed; backups and restore go on.
- Recovery passphrase: with the data directory gone, the passphrase alone verifies and
  restores a destination (a wrong one opens nothing); the vault starts once the master key
  kept offline is put back, which no backup holds.
- Bad input: an unknown destination scheme (exit 2), a destination gone (exit 1, the other
  still written, /metrics says which), a full destination disk (a small tmpfs: exit 1, "full", the vault serving
  and verifying as before), restore into a non-empty directory (exit 1, nothing written).
Usage: test_backup.py PATH/TO/coffre
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import SKIP, TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
DEADLINE = 60.0  # seconds for an observable effect (a pack written)
MARK_CONTENT = b"PLAINTEXT-CONTENT-MARKER-7f3a"
MARK_NAME = "plaintext-name-marker-91c4"


def run(args, timeout=300, env=None):
    return subprocess.run([os.path.abspath(BINARY)] + list(args), capture_output=True, timeout=timeout,
                          env=env)


def out(r):
    return "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout.decode(errors="replace")[-3000:],
                                                 r.stderr.decode(errors="replace")[-3000:])


def doc_bytes(i, size=20000):
    # compressible text with the content marker, unique per document
    line = b"%s invoice %06d amount %d EUR\n" % (MARK_CONTENT, i, i * 37)
    return (line * (size // len(line) + 1))[:size]


def tree_bytes(root):
    """Every byte under root, file by file: (relative path, content)."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                yield os.path.relpath(p, root), fh.read()


def tree_size(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def backup_init(v, dest, *extra):
    r = run(["backup", "init", "--data", v.data, "--to", dest, *extra])
    check(r.returncode == 0, "backup init --to %s failed" % dest, out(r))


def backup_run(v, expect=0, env=None):
    r = run(["backup", "run", "--data", v.data, "--json"], env=env)
    check(r.returncode == expect, "backup run: exit %d, expected %d" % (r.returncode, expect), out(r))
    return json.loads(r.stdout)


def verify(dest, master, *extra):
    return run(["backup", "verify", "--from", dest, "--master-key", master, "--json", *extra])


def restore(froms, target, master, *extra):
    args = ["restore", "--data", target, "--master-key", master, "--json", *extra]
    for f in froms:
        args += ["--from", f]
    return run(args)


def start_restored(base, token):
    """A Vault on base/vault (restored there), with the original token."""
    v = Vault(BINARY, base=base, init=False)
    v.token = token
    v.cacert = os.path.join(v.data, "tls", "cert.pem")
    return v


def check_restored(target_base, token, docs, what, names=None, user=None):
    """The restored vault verifies and serves docs [(id, bytes)] byte-identical; with names
    {id: name}, each name is served (sealed names decrypt) and found by name (blind index);
    with user (create_user's JSON), that user logs in with their password (accounts restored)."""
    r = run(["audit", "verify", "--data", os.path.join(target_base, "vault")])
    check(r.returncode == 0, "%s: coffre audit verify on the restored vault failed" % what, out(r))
    v = start_restored(target_base, token)
    try:
        v.start()
        for doc_id, data in docs:
            resp = v.download(doc_id)
            check(resp.status == 200, "%s: document %s: status %d" % (what, doc_id, resp.status), resp)
            check(resp.body == data, "%s: document %s is not byte-identical" % (what, doc_id))
        for doc_id, name in (names or {}).items():
            resp = v.request("GET", "/v1/documents/%s" % doc_id)
            check(resp.status == 200 and resp.json()["name"] == name,
                  "%s: document %s: its name is not served" % (what, doc_id), resp)
            found = v.list_all({"name": name})
            check([d["id"] for d in found] == [doc_id], "%s: %s not found by its name" % (what, doc_id), found)
        if user is not None:
            resp = v.login(user["email"], user["password"])
            check(resp.status == 200, "%s: the %s does not log in: status %d" % (what, user["role"], resp.status),
                  resp)
            me = v.request("GET", "/v1/documents/%s" % docs[0][0],
                           headers=v.auth_headers(resp.json()["token"]), auth=False)
            check(me.status == 200, "%s: the %s's session reads no document" % (what, user["role"]), me)
            resp = v.login(user["email"], user["password"] + "x")
            check(resp.status == 401, "%s: a wrong password logs in" % what, resp)
        check(v.stop() == 0, "%s: the restored server did not stop cleanly" % what)
    finally:
        v.close()
    r = run(["audit", "verify", "--data", os.path.join(target_base, "vault")])
    check(r.returncode == 0, "%s: audit verify after serving the restored vault failed" % what, out(r))


class Setup:
    """One served vault with documents, backed up to two destinations while serving."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-backup-")
        self.v = Vault(BINARY, base=os.path.join(self.tmp, "a"))
        self.d1 = os.path.join(self.tmp, "dest1")
        self.d2 = os.path.join(self.tmp, "dest2")
        self.master = os.path.join(self.tmp, "master.key")
        shutil.copy(os.path.join(self.v.data, "keys", "master.key"), self.master)
        os.chmod(self.master, 0o600)
        self.v.start()
        self.docs = []
        self.names = {}
        for i in range(12):
            data = doc_bytes(i)
            meta = self.v.upload_ok(data, name="%s-%d.pdf" % (MARK_NAME, i))
            self.docs.append((meta["id"], data))
            self.names[meta["id"]] = "%s-%d.pdf" % (MARK_NAME, i)
        # an account beside the owner: logs in with its password alone (no second factor)
        self.user = self.v.create_user("viewer")
        backup_init(self.v, self.d1)
        backup_init(self.v, self.d2)
        self.result = backup_run(self.v)  # while the server runs

    def close(self):
        self.v.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


S = None


def setup():
    global S
    if S is None:
        S = Setup()
    return S


def test_run_reports_each_destination():
    s = setup()
    dests = s.result["destinations"]
    check([d["destination"] for d in dests] == [s.d1, s.d2], "both destinations reported", s.result)
    for d in dests:
        check(d["ok"] and len(d["snapshot"]) == 64 and len(d["keyring_snapshot"]) == 64,
              "destination %s not written" % d["destination"], d)
    check(s.result["audit_size"] >= 13, "the snapshot covers the uploads' log entries", s.result)
    m = s.v.request("GET", "/metrics")
    check(m.status == 200, "metrics", m)
    text = m.body.decode()
    for d in (s.d1, s.d2):
        check('coffre_backup_last_run_ok{destination="%s"} 1' % d in text, "/metrics: last run ok for " + d, text[-2000:])
        check('coffre_backup_overdue{destination="%s"} 0' % d in text, "/metrics: not overdue: " + d)
        ts = [l for l in text.splitlines() if l.startswith('coffre_backup_last_success_timestamp_seconds{destination="%s"}' % d)]
        check(ts and abs(int(ts[0].split()[-1]) - time.time()) < 600, "/metrics: last success time", ts)
    # the accounts' password-pool lines are there beside the backup gauges
    for name in ("coffre_password_hash_slots ", "coffre_password_hash_slots_busy ", "coffre_password_hashes_total "):
        check(any(l.startswith(name) for l in text.splitlines()), "/metrics: no %s line" % name.strip(), text[-2000:])
    r = run(["backup", "list", "--data", s.v.data, "--json"])
    check(r.returncode == 0, "backup list", out(r))
    listed = json.loads(r.stdout)
    for d, want in zip(listed, dests):
        ids = {x["id"] for x in d["snapshots"]}
        check(want["snapshot"] in ids and want["keyring_snapshot"] in ids, "list shows the run's snapshots", d)
        check(d["problems"] == [], "no problems listed", d)


def test_no_plaintext_in_destinations():
    s = setup()
    needles = [MARK_CONTENT, MARK_NAME.encode(), b"invoice 000003", b"SQLite format",
               s.v.owner_email.encode(), s.user["email"].encode()]
    for dest in (s.d1, s.d2):
        for rel, data in tree_bytes(dest):
            for n in needles:
                check(n not in data, "%r found in %s/%s" % (n, dest, rel))
    r = verify(s.d1, s.master, "--read-data")
    check(r.returncode == 0, "fresh destination verifies", out(r))


def test_round_trip_each_destination_alone():
    s = setup()
    # the original data directory goes away; keep only what the docs say to keep apart
    token = s.v.token
    check(s.v.stop() == 0, "server did not stop cleanly")
    shutil.rmtree(s.v.data)
    for dest in (s.d1, s.d2):
        base = tempfile.mkdtemp(prefix="restored-", dir=s.tmp)
        target = os.path.join(base, "vault")
        r = restore([dest], target, s.master)
        check(r.returncode == 0, "restore from %s alone failed" % dest, out(r))
        info = json.loads(r.stdout)
        check(info["fallbacks"] == [], "nothing taken from elsewhere", info)
        check(not os.path.exists(os.path.join(target, "keys", "backup.key")), "backup.key is not restored")
        check(not os.path.exists(os.path.join(target, "bootstrap-token")), "bootstrap-token is not restored")
        check_restored(base, token, s.docs, "restore from %s" % dest, names=s.names, user=s.user)


def test_restore_refuses_non_empty_target():
    s = setup()
    target = os.path.join(s.tmp, "busy")
    os.makedirs(target)
    with open(os.path.join(target, "keep.txt"), "w") as f:
        f.write("mine")
    r = restore([s.d1], target, s.master)
    check(r.returncode == 1 and b"not empty" in r.stderr, "restore into a non-empty directory", out(r))
    check(os.listdir(target) == ["keep.txt"], "nothing written into it")
    # and a wrong master key opens nothing
    bad = os.path.join(s.tmp, "other.key")
    with open(bad, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(bad, 0o600)
    r = restore([s.d1], os.path.join(s.tmp, "never"), bad)
    check(r.returncode == 1 and b"does not open" in r.stderr, "a wrong master key is refused", out(r))
    check(not os.path.exists(os.path.join(s.tmp, "never")), "nothing created with a wrong key")


def copy_dest(s, name):
    dst = os.path.join(s.tmp, name)
    shutil.copytree(s.d1, dst)
    return dst


def packs(dest):
    root = os.path.join(dest, "packs")
    return sorted((os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs),
                  key=os.path.getsize)


def problems(r):
    check(r.returncode == 3, "verify should find damage (exit 3)", out(r))
    return json.loads(r.stdout)[0]["problems"]


def named(probs, obj_part, what_part):
    return any(obj_part in p["object"] and what_part in p["problem"] for p in probs)


def test_damage_flipped_bit_in_pack():
    s = setup()
    d = copy_dest(s, "flip")
    big = packs(d)[-1]  # the data pack (documents and metadata)
    with open(big, "r+b") as f:
        f.seek(os.path.getsize(big) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x04]))
    name = os.path.basename(big)
    r = verify(d, s.master)
    check(r.returncode == 0, "without --read-data a flipped bit is not seen (the pack is there)", out(r))
    probs = problems(verify(d, s.master, "--read-data"))
    check(named(probs, name, "damaged"), "the flipped pack is named", probs)
    check(any("incomplete" in p["problem"] for p in probs), "the snapshots using it are named", probs)
    # restore takes the damaged files from the other destination
    base = tempfile.mkdtemp(prefix="fallback-", dir=s.tmp)
    r = restore([d, s.d2], os.path.join(base, "vault"), s.master)
    check(r.returncode == 0, "restore with a fallback destination", out(r))
    info = json.loads(r.stdout)
    check(info["fallbacks"] and all(f["from"] == s.d2 for f in info["fallbacks"]),
          "the damaged files came from the second destination", info)
    check_restored(base, S.v.token, s.docs, "restore with fallback")
    # alone, the damaged destination cannot restore everything: refused, exit 3
    r = restore([d], os.path.join(s.tmp, "alone"), s.master)
    check(r.returncode == 3 and b"cannot be restored intact" in r.stderr, "damaged destination alone", out(r))


def test_damage_missing_pack():
    s = setup()
    d = copy_dest(s, "missing")
    p = packs(d)[-1]
    os.unlink(p)
    probs = problems(verify(d, s.master))
    check(named(probs, os.path.basename(p), "missing"), "the missing pack is named", probs)


def test_damage_truncated_index():
    s = setup()
    d = copy_dest(s, "truncidx")
    idx = [os.path.join(d, "index", f) for f in os.listdir(os.path.join(d, "index"))]
    check(len(idx) >= 1, "an index file")
    with open(idx[0], "r+b") as f:
        f.truncate(os.path.getsize(idx[0]) - 10)
    probs = problems(verify(d, s.master))
    check(named(probs, os.path.basename(idx[0]), "damaged"), "the truncated index is named", probs)


def test_damage_snapshot_signed_by_another_key():
    s = setup()
    d = copy_dest(s, "forged")
    # another vault, its own signer key: its snapshot copied into this repository
    other = Vault(BINARY, base=os.path.join(s.tmp, "other"))
    try:
        od = os.path.join(s.tmp, "other-dest")
        backup_init(other, od)
        res = backup_run(other)
        sid = res["destinations"][0]["snapshot"]
        shutil.copy(os.path.join(od, "snapshots", sid), os.path.join(d, "snapshots", sid))
    finally:
        other.close()
    probs = problems(verify(d, s.master))
    check(named(probs, sid, "signature does not verify"), "the foreign snapshot is named as such", probs)
    r = run(["backup", "list", "--from", d, "--master-key", s.master, "--json"])
    listed = json.loads(r.stdout)[0]
    check(sid not in {x["id"] for x in listed["snapshots"]}, "the foreign snapshot is not listed as usable")


def test_kill_during_run_then_next_run_completes():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-kill-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        master = os.path.join(tmp, "master.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), master)
        v.start()
        docs = []
        for i in range(6):  # random, so incompressible: about three 16 MiB packs
            data = os.urandom(8 << 20)
            docs.append((v.upload_ok(data, name="big-%d" % i)["id"], data))
        dest = os.path.join(tmp, "dest")
        backup_init(v, dest)
        staging = os.path.join(tmp, "staging")
        os.makedirs(staging)
        senv = dict(os.environ, TMPDIR=staging)
        p = subprocess.Popen([os.path.abspath(BINARY), "backup", "run", "--data", v.data],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=senv)
        deadline = time.monotonic() + DEADLINE
        killed = False
        while time.monotonic() < deadline and p.poll() is None:
            if os.path.isdir(os.path.join(dest, "packs")) and packs(dest):
                os.kill(p.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)  # polling for the first pack, bounded by the deadline
        p.wait()
        check(killed and p.returncode == -signal.SIGKILL, "the run was killed mid-way (rc %s)" % p.returncode)
        check(not os.listdir(os.path.join(dest, "snapshots")) if os.path.isdir(os.path.join(dest, "snapshots"))
              else True, "the killed run wrote no snapshot")
        r = verify(dest, master, "--read-data")
        check(r.returncode == 0, "the repository is valid after kill -9", out(r))
        check(len(os.listdir(staging)) == 1, "the killed run left its staging copy", os.listdir(staging))
        res = backup_run(v, env=senv)
        check(res["destinations"][0]["ok"], "the next run completes", res)
        check(os.listdir(staging) == [], "the next run removed the killed run's copies of meta.db and keyring.db",
              os.listdir(staging))
        r = verify(dest, master, "--read-data")
        check(r.returncode == 0, "valid after the next run", out(r))
        token = v.token
        check(v.stop() == 0, "server stop")
        base = os.path.join(tmp, "restored")
        os.makedirs(base)
        r = restore([dest], os.path.join(base, "vault"), master)
        check(r.returncode == 0, "restore after an interrupted run", out(r))
        check_restored(base, token, docs, "after kill -9")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_incremental_one_percent():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-incr-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        v.start()
        size = 256 << 10
        for i in range(100):
            v.upload_ok(os.urandom(size), name="d%d" % i)
        dest = os.path.join(tmp, "dest")
        backup_init(v, dest)
        backup_run(v)
        before = tree_size(dest)
        check(before > 100 * size, "the repository holds the documents (%d bytes)" % before)
        v.upload_ok(os.urandom(size), name="new")  # 1 % more documents
        res = backup_run(v)
        added = tree_size(dest) - before
        ratio = added / before
        print("incremental: %d bytes added to %d (%.2f %%), reported %d" % (
            added, before, 100 * ratio, res["destinations"][0]["added_bytes"]))
        check(0.009 <= ratio <= 0.02, "one more document in 100 added %.2f %% to the repository" % (100 * ratio))
        # nothing changed: the next run adds next to nothing (the metadata is the same)
        before = tree_size(dest)
        res = backup_run(v)
        check(tree_size(dest) - before < 0.002 * before, "an unchanged vault adds almost nothing", res)
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_bad_destinations():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-bad-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        r = run(["backup", "init", "--data", v.data, "--to", "ftp://example.org/x"])
        check(r.returncode == 2 and b"unknown destination scheme" in r.stderr, "unknown scheme", out(r))
        noaws = {k: val for k, val in os.environ.items() if not k.startswith("AWS_")}
        r = run(["backup", "init", "--data", v.data, "--to", "s3://bucket/prefix"], env=noaws)
        check(r.returncode == 1 and b"no S3 credentials" in r.stderr, "s3 without credentials", out(r))
        r = run(["backup", "init", "--data", v.data, "--to", "s3://a/prefix"], env=noaws)
        check(r.returncode == 2 and b"malformed destination" in r.stderr, "s3 with a bad bucket name", out(r))
        r = run(["backup", "run", "--data", v.data])
        check(r.returncode == 1 and b"no backup destination" in r.stderr, "no destination configured", out(r))
        with open(os.path.join(v.data, "coffre.conf")) as f:
            check("[backup]" not in f.read(), "refused inits changed nothing in coffre.conf")
        gone = os.path.join(tmp, "gone")
        good = os.path.join(tmp, "good")
        backup_init(v, gone)
        backup_init(v, good)
        shutil.rmtree(gone)
        res = backup_run(v, expect=1)
        by = {d["destination"]: d for d in res["destinations"]}
        check(not by[gone]["ok"] and "does not exist" in by[gone]["error"], "the missing one is named", res)
        check(by[good]["ok"], "the other destination is still written", res)
        r = run(["backup", "run", "--data", v.data])
        check(r.returncode == 1 and gone.encode() in r.stderr and b"does not exist" in r.stderr,
              "the text report names the missing destination", out(r))
        v.start()
        text = v.request("GET", "/metrics").body.decode()
        check('coffre_backup_last_run_ok{destination="%s"} 0' % gone in text, "/metrics: the failed one", text[-1500:])
        check('coffre_backup_overdue{destination="%s"} 1' % gone in text, "/metrics: never succeeded: overdue")
        check('coffre_backup_last_run_ok{destination="%s"} 1' % good in text, "/metrics: the good one")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def prune(args, expect=0):
    r = run(["backup", "prune", *args, "--json"])
    check(r.returncode == expect, "backup prune %s: exit %d, expected %d" % (args, r.returncode, expect), out(r))
    return json.loads(r.stdout)[0] if r.stdout.strip() else None


def test_prune_forged_date_never_drives_it():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-prune-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        master = os.path.join(tmp, "master.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), master)
        v.start()
        a = v.upload_ok(b"first document " * 100, name="a")["id"]
        dest = os.path.join(tmp, "dest")
        backup_init(v, dest)
        s1 = backup_run(v)["destinations"][0]["snapshot"]
        check(v.request("DELETE", "/v1/documents/%s" % a).status in (200, 204), "delete a")
        b_data = b"second document " * 100
        b = v.upload_ok(b_data, name="b")["id"]
        s2 = backup_run(v)["destinations"][0]["snapshot"]
        s3 = backup_run(v)["destinations"][0]["snapshot"]
        # the newest snapshot's file now says it was stored two days ago: its date disagrees
        p3 = os.path.join(dest, "snapshots", s3)
        old = time.time() - 2 * 86400
        os.utime(p3, (old, old))
        plan = prune(["--data", v.data, "--dry-run"])
        by = {x["id"]: x for x in plan["snapshots"]}
        check(by[s3]["keep"] and "date not trusted" in by[s3]["why"], "the disagreeing snapshot is flagged", by[s3])
        check(by[s2]["keep"] and "newest of its series" in by[s2]["why"],
              "the newest trusted snapshot takes the slot, not the flagged one", by[s2])
        check(not by[s1]["keep"], "the older one in the same hour goes", by[s1])
        r = run(["backup", "list", "--data", v.data])
        check(b"FLAGGED" in r.stdout, "backup list flags it", out(r))
        probs = problems(verify(dest, master))
        check(named(probs, s3, "disagrees"), "verify names the disagreeing date", probs)
        # as of 100 days later: the keyring retention (90 d) drops all but the newest keyring snapshot
        plan = prune(["--data", v.data, "--dry-run", "--now", str(int(time.time()) + 100 * 86400)])
        kr = [x for x in plan["snapshots"] if x["series"] == "keyring"]
        check(sum(1 for x in kr if x["keep"]) == 1 and all("keyring retention" in x["why"]
                                                            for x in kr if not x["keep"]),
              "keyring retention as of +100 d", kr)
        check(os.path.exists(os.path.join(dest, "snapshots", s1)), "a dry run deletes nothing")
        # a run holding the destination: prune refuses and deletes nothing
        with open(os.path.join(dest, "locks", "run-" + "0" * 32), "w") as f:
            f.write("run\n")
        res = prune(["--data", v.data], expect=1)
        check("backup run holds" in res["error"], "refused while a run holds it", res)
        check(os.path.exists(os.path.join(dest, "snapshots", s1)), "nothing deleted while refused")
        os.unlink(os.path.join(dest, "locks", "run-" + "0" * 32))
        res = prune(["--data", v.data])
        check(res["ok"] and res["snapshots_deleted"] == 1, "prune deletes the one that goes", res)
        check(not os.path.exists(os.path.join(dest, "snapshots", s1)), "s1 is gone")
        check(os.path.exists(p3), "the flagged snapshot is kept")
        r = verify(dest, master, "--read-data")
        probs = json.loads(r.stdout)[0]["problems"]
        check(all(s3 in p["object"] for p in probs if not p["problem"].startswith("note:")),
              "after prune only the flagged date is a problem", probs)
        token = v.token
        check(v.stop() == 0, "stop")
        base = os.path.join(tmp, "restored")
        os.makedirs(base)
        r = restore([dest], os.path.join(base, "vault"), master)
        check(r.returncode == 0, "restore after prune", out(r))
        check(json.loads(r.stdout)["snapshot"] == s2, "restore takes the newest trusted snapshot, not the flagged one")
        check_restored(base, token, [(b, b_data)], "after prune")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_keyring_apart():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-keyring-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        master = os.path.join(tmp, "master.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), master)
        v.start()
        data = b"kept apart " * 1000
        doc = v.upload_ok(data, name="k")["id"]
        dd = os.path.join(tmp, "data-dest")
        kd = os.path.join(tmp, "keyring-dest")
        backup_init(v, dd)
        backup_init(v, kd, "--keyring")
        res = backup_run(v)
        by = {d["destination"]: d for d in res["destinations"]}
        check(by[dd]["ok"] and by[dd]["snapshot"] and not by[dd]["keyring_snapshot"], "data only to dd", res)
        check(by[kd]["ok"] and by[kd]["keyring_snapshot"] and not by[kd]["snapshot"], "keyring only to kd", res)
        for dest, want in ((dd, "data"), (kd, "keyring")):
            r = run(["backup", "list", "--from", dest, "--master-key", master, "--json"])
            series = {x["series"] for x in json.loads(r.stdout)[0]["snapshots"]}
            check(series == {want}, "%s holds only the %s series" % (dest, want), series)
        token = v.token
        check(v.stop() == 0, "stop")
        r = restore([dd], os.path.join(tmp, "nokeys", "vault"), master)
        check(r.returncode == 1 and b"no intact keyring snapshot" in r.stderr, "data alone cannot restore", out(r))
        base = os.path.join(tmp, "restored")
        os.makedirs(base)
        r = restore([dd], os.path.join(base, "vault"), master, "--keyring-from", kd)
        check(r.returncode == 0, "restore with --keyring-from", out(r))
        check_restored(base, token, [(doc, data)], "keyring apart")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_lost_pack_written_again_by_next_run():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-lost-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        master = os.path.join(tmp, "master.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), master)
        v.start()
        docs = [(v.upload_ok(os.urandom(300000), name="l%d" % i)["id"], None) for i in range(3)]
        dest = os.path.join(tmp, "dest")
        backup_init(v, dest)
        s1 = backup_run(v)["destinations"][0]["snapshot"]
        lost = packs(dest)[-1]
        os.unlink(lost)
        s2 = backup_run(v)["destinations"][0]["snapshot"]
        probs = problems(verify(dest, master))
        check(named(probs, os.path.basename(lost), "missing"), "the lost pack is named", probs)
        # nothing changed in between: the blobs written again make the older snapshot whole too
        check(not any("snapshots/" in p["object"] for p in probs), "both snapshots are whole", probs)
        token = v.token
        data = {}
        for doc_id, _ in docs:
            data[doc_id] = v.download(doc_id).body
        check(v.stop() == 0, "stop")
        base = os.path.join(tmp, "restored")
        os.makedirs(base)
        r = restore([dest], os.path.join(base, "vault"), master, "--snapshot", s2)
        check(r.returncode == 0, "the new snapshot restores", out(r))
        check_restored(base, token, list(data.items()), "after a lost pack")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def children_named(ppid, comm):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        if name == comm and int(fields[1]) == ppid:
            found.append(int(pid))
    return found


def test_scheduled_backups_while_serving():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-sched-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        master = os.path.join(tmp, "master.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), master)
        dest = os.path.join(tmp, "dest")
        backup_init(v, dest)
        with open(os.path.join(v.data, "coffre.conf"), "a") as f:
            f.write("interval = 1s\n")  # [backup] is the last section
        v.start()
        sched = children_named(v.proc.pid, "coffre-backups")
        check(len(sched) == 1, "coffre serve runs one backup scheduler", sched)
        status = os.path.join(v.data, "backup", "status")
        docs = []
        deadline = time.monotonic() + DEADLINE
        seen = 0
        while time.monotonic() < deadline:
            # uploads go on meanwhile
            data = os.urandom(50000)
            docs.append((v.upload_ok(data, name="s%d" % len(docs))["id"], data))
            if os.path.exists(status):
                with open(status) as f:
                    st = json.load(f)["destinations"].get(dest)
                if st and st["last_ok"] and st["last_success"] > 0:
                    seen += 1
                    if seen >= 2 and len(os.listdir(os.path.join(dest, "snapshots"))) >= 4:
                        break
            time.sleep(0.2)  # polling the status file, bounded by the deadline
        check(seen >= 2, "scheduled backups succeeded while serving", v.log_tail(20))
        text = v.request("GET", "/metrics").body.decode()
        check('coffre_backup_last_run_ok{destination="%s"} 1' % dest in text, "/metrics shows the scheduled run")
        token = v.token
        check(v.stop() == 0, "the server stops cleanly with its scheduler")
        check(not [p for p in sched if os.path.exists("/proc/%d" % p) and
                   open("/proc/%d/stat" % p).read().split()[2] != "Z"], "the scheduler is gone after the stop")
        r = verify(dest, master, "--read-data")
        check(r.returncode == 0, "the scheduled backups verify", out(r))
        base = os.path.join(tmp, "restored")
        os.makedirs(base)
        r = restore([dest], os.path.join(base, "vault"), master)
        check(r.returncode == 0, "restore a scheduled snapshot", out(r))
        info = json.loads(r.stdout)
        restored = sqlite_ids(os.path.join(base, "vault", "meta.db"))
        check(restored, "the restored vault has documents")
        check_restored(base, token, [d for d in docs if d[0] in restored], "scheduled")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def sqlite_ids(path):
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {r[0] for r in db.execute("SELECT id FROM documents")}
    finally:
        db.close()


def test_drill_each_destination():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-drill-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        v.start()
        for i in range(5):
            v.upload_ok(doc_bytes(100 + i, 70000), name="drill-%d" % i)
        d1, d2 = os.path.join(tmp, "d1"), os.path.join(tmp, "d2")
        backup_init(v, d1)
        backup_init(v, d2)
        backup_run(v)
        r = run(["backup", "drill", "--data", v.data, "--json"])
        check(r.returncode == 0, "drill of two good destinations", out(r))
        res = json.loads(r.stdout)
        for d in res:
            check(d["ok"] and d["documents"] == 5 and d["bad"] == 0 and d["rpo_seconds"] >= 0 and
                  d["rto_seconds"] > 0, "drill figures for %s" % d["destination"], d)
        r = run(["backup", "drill", "--data", v.data])
        check(r.returncode == 0 and b"RPO" in r.stdout and b"RTO" in r.stdout, "text drill report", out(r))
        # damage in one destination: that drill fails (exit 3), the other passes
        big = packs(d1)[-1]
        with open(big, "r+b") as f:
            f.seek(os.path.getsize(big) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x01]))
        scratch = os.path.join(tmp, "scratch")
        os.makedirs(scratch)
        r = run(["backup", "drill", "--data", v.data, "--json"], env=dict(os.environ, TMPDIR=scratch))
        check(r.returncode == 3, "a damaged destination fails its drill (exit 3)", out(r))
        by = {d["destination"]: d for d in json.loads(r.stdout)}
        check(not by[d1]["ok"] and by[d2]["ok"], "the damaged one is named, the other passes", by)
        check(os.listdir(scratch) == [], "the scratch directories are removed", os.listdir(scratch))
        # an object damaged in the vault itself before a destination's first backup: copied
        # faithfully, and the drill's decryption of every document names it (destinations that
        # hold it already keep their intact copy: an object is not read again)
        d3 = os.path.join(tmp, "d3")
        backup_init(v, d3)
        objs = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(v.data, "objects")) for f in fs]
        victim = sorted(objs)[0]
        with open(victim, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x80]))
        backup_run(v)
        r = run(["backup", "drill", "--data", v.data, "--json"])
        check(r.returncode == 3, "a damaged document fails the drill", out(r))
        by = {d["destination"]: d for d in json.loads(r.stdout)}
        check(by[d3]["bad"] == 1 and os.path.basename(victim) in by[d3]["problems"][0]["document"]
              and "does not decrypt" in by[d3]["problems"][0]["problem"], "the document is named", by[d3])
        check(by[d2]["ok"], "the destination that had it already keeps it intact", by[d2])
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_kill_during_prune():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-killprune-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        master = os.path.join(tmp, "master.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), master)
        v.start()
        dest = os.path.join(tmp, "dest")
        backup_init(v, dest)
        for i in range(30):  # 30 runs in one hour: prune keeps only the newest
            v.upload_ok(os.urandom(20000), name="p%d" % i)
            backup_run(v)
        lock = os.path.join(dest, "locks", "prune")
        snaps = os.path.join(dest, "snapshots")
        before = len(os.listdir(snaps))
        p = subprocess.Popen([os.path.abspath(BINARY), "backup", "prune", "--data", v.data],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + DEADLINE
        # kill it once it has started deleting snapshots (and so holds the destination)
        while time.monotonic() < deadline and p.poll() is None and not (
                os.path.exists(lock) and len(os.listdir(snaps)) < before):
            time.sleep(0.0002)  # polling the destination, bounded by the deadline
        p.kill()
        p.wait()
        left = len(os.listdir(snaps))
        check(p.returncode == -signal.SIGKILL and os.path.exists(lock) and left < before,
              "the prune was killed while deleting (rc %s, %d of %d snapshots left)" % (p.returncode, left, before))
        print("killed prune with %d of %d snapshots left" % (left, before))
        r = verify(dest, master, "--read-data")
        check(r.returncode == 0, "the repository is valid after kill -9 of prune", out(r))
        res = prune(["--data", v.data], expect=1)
        check("another prune" in res["error"], "the killed prune's lock is reported", res)
        os.unlink(lock)
        res = prune(["--data", v.data])
        check(res["ok"], "the next prune completes", res)
        r = verify(dest, master, "--read-data")
        check(r.returncode == 0, "valid after the next prune", out(r))
        r = run(["backup", "list", "--from", dest, "--master-key", master, "--json"])
        data_snaps = [x for x in json.loads(r.stdout)[0]["snapshots"] if x["series"] == "data"]
        check(len(data_snaps) == 1, "one data snapshot is left", data_snaps)
        backup_run(v)  # and backups go on
        token = v.token
        check(v.stop() == 0, "stop")
        base = os.path.join(tmp, "restored")
        os.makedirs(base)
        r = restore([dest], os.path.join(base, "vault"), master)
        check(r.returncode == 0, "restore after the interrupted prune", out(r))
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_recovery_passphrase():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-pass-")
    v = Vault(BINARY, base=os.path.join(tmp, "a"))
    try:
        v.start()
        data = b"read with the passphrase alone " * 500
        doc = v.upload_ok(data, name="p")["id"]
        dest = os.path.join(tmp, "dest")
        pf = os.path.join(tmp, "pass")
        with open(pf, "w") as f:
            f.write("correct horse battery staple\n")
        backup_init(v, dest, "--passphrase-file", pf)
        backup_run(v)
        master = os.path.join(tmp, "kept-offline.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), master)
        token = v.token
        check(v.stop() == 0, "stop")
        shutil.rmtree(v.data)  # the machine is gone
        bad = os.path.join(tmp, "bad")
        with open(bad, "w") as f:
            f.write("wrong horse\n")
        r = run(["backup", "verify", "--from", dest, "--passphrase-file", bad])
        check(r.returncode == 1 and b"does not open" in r.stderr, "a wrong passphrase opens nothing", out(r))
        r = run(["backup", "verify", "--from", dest, "--passphrase-file", pf, "--read-data"])
        check(r.returncode == 0, "the passphrase alone verifies the destination", out(r))
        base = os.path.join(tmp, "restored")
        os.makedirs(base)
        target = os.path.join(base, "vault")
        r = run(["restore", "--from", dest, "--data", target, "--passphrase-file", pf])
        check(r.returncode == 0 and b"master key" in r.stdout, "restore with the passphrase says what is missing",
              out(r))
        check(not os.path.exists(os.path.join(target, "keys", "master.key")), "no master key came from the backup")
        shutil.copy(master, os.path.join(target, "keys", "master.key"))
        os.chmod(os.path.join(target, "keys", "master.key"), 0o600)
        check_restored(base, token, [(doc, data)], "passphrase restore")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


IN_NAMESPACE = "COFFRE_BACKUP_USERNS"


def diskfull_main():
    """Run inside a namespace where a tmpfs can be mounted (see test_diskfull.py)."""
    base = tempfile.mkdtemp(prefix="coffre-backup-full-")
    mnt = os.path.join(base, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % (4 << 20), "tmpfs", mnt],
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        print("SKIP: cannot mount a tmpfs: %s" % r.stderr.decode(errors="replace"))
        return SKIP
    v = Vault(BINARY, base=os.path.join(base, "a"))
    try:
        v.start()
        docs = [(v.upload_ok(os.urandom(3 << 20), name="f%d" % i)["id"], None) for i in range(3)]
        backup_init(v, mnt)
        res = backup_run(v, expect=1)
        d = res["destinations"][0]
        check(not d["ok"] and "full" in d["error"], "a full destination is reported as such", res)
        r = run(["backup", "run", "--data", v.data])
        check(r.returncode == 1 and b"full" in r.stderr, "text report on a full disk", out(r))
        # the vault is unaffected: it serves, takes uploads, and its log verifies
        for doc_id, _ in docs:
            check(v.download(doc_id).status == 200, "the vault still serves")
        v.upload_ok(b"after the full backup disk", name="after")
        check(v.stop() == 0, "clean stop")
        r = run(["audit", "verify", "--data", v.data])
        check(r.returncode == 0, "the vault's log verifies", out(r))
        print("ok   full destination disk")
        return 0
    except TestFailure as e:
        print("FAIL full destination disk: %s" % e)
        return 1
    finally:
        v.close()
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_full_destination_disk():
    if os.geteuid() == 0 and subprocess.run(["true"]).returncode == 0 and os.environ.get(IN_NAMESPACE):
        rc = diskfull_main()
    else:
        env = dict(os.environ, **{IN_NAMESPACE: "1"})
        cmd = [sys.executable, os.path.abspath(__file__), os.path.abspath(BINARY), "--diskfull"]
        if os.geteuid() != 0:
            cmd = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"] + cmd
        else:
            cmd = ["unshare", "--mount", "--propagation", "private"] + cmd
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=280)
        sys.stdout.write(p.stdout.decode(errors="replace"))
        rc = p.returncode
        if rc != 0 and rc != SKIP and os.geteuid() == 0:
            # root without CAP_SYS_ADMIN: a user namespace of its own
            cmd = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
                   sys.executable, os.path.abspath(__file__), os.path.abspath(BINARY), "--diskfull"]
            p = subprocess.run(cmd, env=env, capture_output=True, timeout=280)
            sys.stdout.write(p.stdout.decode(errors="replace"))
            rc = p.returncode
    check(rc == 0, "the full-disk test did not pass (exit %d; 77 = could not mount a tmpfs)" % rc)


def main():
    if "--diskfull" in sys.argv:
        return diskfull_main()
    try:
        return run_tests([
            test_run_reports_each_destination,
            test_no_plaintext_in_destinations,
            test_restore_refuses_non_empty_target,
            test_damage_flipped_bit_in_pack,
            test_damage_missing_pack,
            test_damage_truncated_index,
            test_damage_snapshot_signed_by_another_key,
            test_round_trip_each_destination_alone,
            test_incremental_one_percent,
            test_kill_during_run_then_next_run_completes,
            test_bad_destinations,
            test_prune_forged_date_never_drives_it,
            test_keyring_apart,
            test_lost_pack_written_again_by_next_run,
            test_scheduled_backups_while_serving,
            test_drill_each_destination,
            test_kill_during_prune,
            test_recovery_passphrase,
            test_full_destination_disk,
        ])
    finally:
        if S is not None:
            S.close()


if __name__ == "__main__":
    sys.exit(exit_status(main()))
