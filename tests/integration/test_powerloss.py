#!/usr/bin/env python3
"""test_powerloss.py: what coffre acknowledged survives a power cut, not only kill -9.

kill -9 keeps the page cache, so a missing fsync never shows there. Here the vault lives on
powerfs (powerfs.py, beside this file), a FUSE filesystem that keeps everything not yet synced
in a volatile layer and drops it when unmounted. What it assumes of a disk, in short (the full
model is in powerfs.py's header): file data and size survive only up to that file's last
fsync/fdatasync, unsynced bytes are all lost; a create, rename, link or unlink survives only if
the directory holding the name was fsynced afterwards (an fsync of the file is not enough);
a file whose name survived but whose data was never synced comes back empty. This is stricter
than ext4 data=ordered, never looser, so a vault that passes here does not rely on luck there.

CUTS times (COFFRE_POWER_CUTS, 200 by default): mount powerfs on what the disk holds, start
`coffre serve --data` on it (it must start by itself: a refusal is a failure and its message is
printed), check everything acknowledged so far, then run WORKERS concurrent clients that upload
small random documents and delete acknowledged ones, and cut the power at a random moment once
at least MIN_ACKS uploads of the round were acknowledged: every process using the mount is
killed with SIGKILL at once and the filesystem is unmounted, dropping its volatile layer.
Every ROTATE_EVERY-th round the server is stopped (SIGTERM) instead and `coffre key rotate`
runs, the power cut coming just after it (every other time) or at a random moment during it.
Every RECOVERY_CUT_EVERY-th restart is itself cut at a random moment of the server's start-up,
and the checks run after the start that follows. Once, with the server running, a second
writer (`coffre key rotate`) must be refused: the locks coffre relies on work on the mount.
After each cut, through the API and the CLI only (no knowledge of the on-disk layout):
- every document acknowledged with 201 is listed with its sha256 and size, and those of the
  last round plus a random sample of older ones download byte-identical (all of them at the end);
- every delete acknowledged with 204 stays deleted (not listed, GET 404); a document whose
  delete was cut short is either gone or intact; anything else listed is one of the bodies sent;
- the audit log only grows: the entries seen before are unchanged (a consistency proof from
  the previous size, checked against the leaf hashes the test computed from the entries it read
  then; entry by entry at the end); every acknowledged upload has its document.create, every
  acknowledged delete its document.delete, every acknowledged download its document.read, and
  there are at least as many key.rotate entries as acknowledged rotations (exit 0);
- at the end (server stopped), `coffre audit verify --data` exits 0.
Before all that, a self-test on a scratch mount checks the model itself (unsynced data, names
and truncates are forgotten, synced ones kept, a shared mmap works), so a powerfs that forgot
nothing fails. The run also fails if powerfs reports an error of its own.
SQLite's WAL index (-shm) is a shared mmap: it works on FUSE because powerfs does not use
direct_io, so the kernel's page cache backs the mapping; it is never synced, so after a cut it
comes back empty and SQLite rebuilds it from the WAL, as on a disk. fusepy (libfuse 2) has no
renameat2 flags, so coffre publishes objects with its link()+unlink() fallback here.
Delays, sizes and contents come from one seeded RNG (COFFRE_POWER_SEED); what gets acknowledged
before a cut still depends on timing, so a run is not replayed exactly.
Needs /dev/fuse, root (to mount) and Debian's python3-fusepy (scripts/install-deps); without
them the test is skipped (exit 77), and under CI=true it fails instead.
Usage: test_powerloss.py PATH/TO/coffre
"""

import base64
import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import mmap
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import rfc9162
from harness import SKIP, TestFailure, Vault, check, exit_status

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
SEED = int(os.environ.get("COFFRE_POWER_SEED", "20261204"))
CUTS = int(os.environ.get("COFFRE_POWER_CUTS", "200"))
WORKERS = 3
MIN_ACKS = 2  # uploads acknowledged in a round before its cut may come
MAX_SIZE = 160 * 1024
MAX_DELAY = float(os.environ.get("COFFRE_POWER_MAX_DELAY", "0.08"))  # seconds past MIN_ACKS
ROTATE_EVERY = 10
RECOVERY_CUT_EVERY = 7  # every 7th round also cuts the power during the server's start-up
SAMPLE = 4  # older documents downloaded again after each cut
ACK_DEADLINE = 60.0  # seconds for MIN_ACKS uploads: far more than a loaded machine needs
MOUNT_DEADLINE = 30.0
POWERFS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "powerfs.py")


def fuse_python():
    """A Python that can import fusepy (Debian's package lands in the system Python), or None."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if exe and os.path.exists(exe) and subprocess.run(
                [exe, "-c", "import fusepy"], capture_output=True).returncode == 0:
            return exe
    return None


def descendants(root):
    """Pids of root's descendants (from /proc/*/stat), root included."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    stat = f.read()
            except OSError:
                continue
            parent[int(name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    out = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in out and pid not in out:
                out.add(pid)
                grew = True
    return out


def users_of(mnt):
    """Pids of the processes with a file, a directory or a mapping open under mnt.

    Every process is looked at, not only the test's descendants: when the server is killed, its
    signer supervisor and signer are re-parented away from the test while they still hold files
    on the mount (they die of PR_SET_PDEATHSIG a moment later). Only this test's own processes
    can have the private mount open."""
    pids = []
    me = os.getpid()
    prefix = mnt + "/"
    for pid in [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != me]:
        base = "/proc/%d" % pid
        try:
            links = [os.readlink(base + "/cwd")]
            links += [os.readlink(base + "/fd/" + fd) for fd in os.listdir(base + "/fd")]
            with open(base + "/maps") as f:
                links += [line.split(None, 5)[-1].strip() for line in f if "/" in line]
        except OSError:
            continue  # gone
        if any(p == mnt or p.startswith(prefix) for p in links):
            pids.append(pid)
    return pids


class Disk:
    """powerfs mounted at MNT over STATE; unmount() is the power cut."""

    def __init__(self, python, state, mnt, seed):
        self.python, self.state, self.mnt, self.seed = python, state, mnt, seed
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(state), "powerfs.log")
        self.cuts = []  # stats of each cut

    def mount(self):
        # powerfs runs anew at every mount: from a copy taken once, so that the whole run uses one
        # version of it
        own = os.path.join(os.path.dirname(self.state), "powerfs.py")
        if not os.path.exists(own):
            shutil.copyfile(POWERFS, own)
        args = [self.python, own]
        if not os.path.exists(os.path.join(self.state, "durable.json")):
            args += ["--seed", self.seed]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args + [self.state, self.mnt], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + MOUNT_DEADLINE
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise TestFailure("powerfs did not mount (exit %r)\n%s" % (self.proc.poll(), self.log_tail()))
            time.sleep(0.01)  # polling interval, bounded by the deadline above

    def cut(self, extra_procs=()):
        """Power cut: SIGKILL everything using the mount at once, then drop the volatile layer."""
        for p in extra_procs:
            if p is not None and p.poll() is None:
                p.kill()
        for pid in users_of(self.mnt):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for p in extra_procs:
            if p is not None:
                p.wait()
        deadline = time.monotonic() + 30
        while users_of(self.mnt):
            check(time.monotonic() < deadline, "processes still use the mount 30 s after SIGKILL: %r"
                  % users_of(self.mnt))
            time.sleep(0.01)  # polling interval, bounded by the deadline above
        self.unmount()
        with open(os.path.join(self.state, "durable.json")) as f:
            stats = json.load(f)["stats"]
        self.cuts.append(stats)
        return stats

    def unmount(self):
        # A killed process can still hold the mount for a moment after /proc stops showing its
        # descriptors (its files are released as it exits): retry "busy" within a deadline.
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run(["umount", self.mnt], capture_output=True, timeout=60)
            if r.returncode == 0 or b"busy" not in r.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # polling interval, bounded by the deadline above
        check(r.returncode == 0, "umount %s: exit %d" % (self.mnt, r.returncode), r.stderr.decode(errors="replace"))
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise TestFailure("powerfs did not exit after umount\n" + self.log_tail())
        self.proc = None
        check(rc == 0, "powerfs exited with %d (an error inside the filesystem model)\n%s" % (rc, self.log_tail()))

    def close(self):
        """Best-effort teardown after a failure."""
        if self.proc is not None:
            for pid in users_of(self.mnt):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        return "--- powerfs log (last %d lines) ---\n%s" % (n, "\n".join(lines[-n:]))


class Ledger:
    """What the clients were told: acknowledged uploads, deletes, downloads and rotations."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.acked = {}  # id -> (sha256, size, round)
        self.sent = set()  # sha256 of every body sent
        self.deleted = set()  # ids whose DELETE answered 204
        self.delete_unsure = set()  # ids whose DELETE got no answer: gone or intact, both fine
        self.reads = {}  # id -> downloads answered 200 with the full, right body
        self.rotations = 0  # `coffre key rotate` runs that exited 0
        self.rotate_time = 0.5  # seconds the last whole rotation took
        self.errors = []
        self.round_acks = 0
        self.running = 0


def client(v, ledger, rng, stop, round_no, worker):
    conn = http.client.HTTPSConnection("127.0.0.1", v.port, context=v.ssl_context(), timeout=60)
    headers = dict(v.auth_headers())
    n = 0
    try:
        while not stop.is_set():
            n += 1
            victim = None
            if worker == 0 and n % 3 == 0:
                with ledger.lock:
                    live = sorted(i for i in ledger.acked if i not in ledger.deleted and i not in ledger.delete_unsure)
                    if live:
                        victim = rng.choice(live)
                        ledger.delete_unsure.add(victim)
            if victim is not None:
                try:
                    conn.request("DELETE", "/v1/documents/" + victim, headers=headers)
                    r = conn.getresponse()
                    body = r.read()
                except (OSError, http.client.HTTPException, ssl.SSLError):
                    return  # the power went
                with ledger.lock:
                    if r.status == 204:
                        ledger.delete_unsure.discard(victim)
                        ledger.deleted.add(victim)
                    else:
                        ledger.errors.append("round %d: DELETE %s got %d %r" % (round_no, victim, r.status, body[:200]))
                        return
                continue
            # mostly small documents, some over a 64 KiB segment
            size = rng.randint(0, 8192) if rng.random() < 0.85 else rng.randint(8193, MAX_SIZE)
            data = rng.randbytes(size)
            digest = hashlib.sha256(data).hexdigest()
            with ledger.lock:
                ledger.sent.add(digest)
            q = urllib.parse.urlencode({"name": "p%d-w%d-%d.bin" % (round_no, worker, n), "class": "power"})
            h = dict(headers)
            h["Content-Type"] = "application/octet-stream"
            try:
                conn.request("POST", "/v1/documents?" + q, body=data, headers=h)
                r = conn.getresponse()
                body = r.read()
            except (OSError, http.client.HTTPException, ssl.SSLError):
                return  # the power went
            if r.status != 201:
                with ledger.lock:
                    ledger.errors.append("round %d: upload got %d %r" % (round_no, r.status, body[:200]))
                return
            meta = json.loads(body)
            with ledger.cond:
                if meta.get("sha256") != digest or meta.get("size") != size:
                    ledger.errors.append("round %d: 201 with wrong sha256/size %r" % (round_no, meta))
                ledger.acked[meta["id"]] = (digest, size, round_no)
                ledger.round_acks += 1
                ledger.cond.notify_all()
    finally:
        conn.close()
        with ledger.cond:
            ledger.running -= 1
            ledger.cond.notify_all()


class Reader:
    """Downloads on a pool of threads, one kept-alive connection each."""

    def __init__(self, v):
        self.v = v
        self.local = threading.local()

    def get(self, path):
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None)
            if conn is None or conn.port != self.v.port:
                conn = self.local.conn = self.v.connect(timeout=60)
            try:
                conn.request("GET", path, headers=self.v.auth_headers())
                r = conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise


def log_size(v, known=0):
    """The audit log's size: the largest E that /v1/audit/entries?start=E&end=E accepts.

    known is a size it had before; a log smaller than that fails the test."""
    def ok(e):
        r = v.request("GET", "/v1/audit/entries?start=%d&end=%d" % (e, e))
        check(r.status in (200, 400), "audit entries: status %d" % r.status, r)
        return r.status == 200
    check(ok(known), "the audit log is shorter than the %d entries it had before the cut" % known)
    lo, step = known, 64
    while ok(lo + step):
        lo, step = lo + step, step * 2
    hi = lo + step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def audit_entries(v, start, size):
    """Entries start..size-1 as (entry text or None when redacted, leaf hash)."""
    out = []
    while start + len(out) < size:
        lo = start + len(out)
        end = min(size, lo + 1000)
        r = v.request("GET", "/v1/audit/entries?start=%d&end=%d" % (lo, end))
        check(r.status == 200, "audit entries %d..%d: status %d" % (lo, end, r.status), r)
        page = r.json()["entries"]
        check([e["index"] for e in page] == list(range(lo, end)), "audit entries out of order")
        for e in page:
            if e.get("entry") is not None:
                out.append((e["entry"], rfc9162.leaf_hash(e["entry"].encode())))
            else:  # another organisation's entry comes redacted, as its leaf hash
                out.append((None, base64.b64decode(e["leaf_hash"])))
    return out


class AuditView:
    """The audit log as seen after the previous cuts: its leaf hashes and what the entries say."""

    def __init__(self):
        self.leaves = []
        self.actions = {}  # (action, object) -> count
        self.rotations = 0

    def update(self, v, full=False):
        """Reads the entries added since the last call; checks the older ones did not change."""
        old = len(self.leaves)
        size = log_size(v, old)
        check(size >= old, "the audit log shrank from %d to %d entries" % (old, size))
        if full:
            seen = audit_entries(v, 0, old)
            for k, (a, b) in enumerate(zip(self.leaves, seen)):
                check(a == b[1], "audit entry %d changed after the cuts" % k, b[0])
        new = audit_entries(v, old, size)
        leaves = self.leaves + [h for _, h in new]
        if old > 0:
            r = v.request("GET", "/v1/audit/proof/consistency?old=%d&new=%d" % (old, size))
            check(r.status == 200, "consistency proof %d -> %d: status %d" % (old, size, r.status), r)
            p = r.json()
            old_root, new_root = base64.b64decode(p["old_root"]), base64.b64decode(p["new_root"])
            check(old_root == rfc9162.root_of(self.leaves),
                  "the first %d audit entries changed after the cut (their root is not the one seen before)" % old)
            check(new_root == rfc9162.root_of(leaves), "the consistency proof's new root is not that of the entries")
            check(rfc9162.verify_consistency(old, size, old_root, new_root,
                                             [base64.b64decode(x) for x in p["proof"]]),
                  "the consistency proof %d -> %d does not verify" % (old, size))
        for text, _ in new:
            if text is None:
                continue
            o = json.loads(text)
            if o["action"] == "key.rotate":
                self.rotations += 1
            elif "object" in o:
                k = (o["action"], o["object"])
                self.actions[k] = self.actions.get(k, 0) + 1
        self.leaves = leaves


def verify(v, ledger, audit, pool, reader, rng, round_no, everything=False):
    listing = v.list_all(limit=1000)
    listed = {d["id"]: d for d in listing}
    check(len(listed) == len(listing), "the listing repeats documents")
    live = [i for i in ledger.acked if i not in ledger.deleted and i not in ledger.delete_unsure]
    missing = [i for i in live if i not in listed]
    check(not missing, "%d acknowledged documents are not listed after the cut, e.g. %s (uploaded in round %s)"
          % (len(missing), missing[:3], [ledger.acked[i][2] for i in missing[:3]]))
    back = sorted(i for i in ledger.deleted if i in listed)
    check(not back, "%d acknowledged deletes came back after the cut: %s" % (len(back), back[:3]))
    for i, d in listed.items():
        if i in ledger.acked:
            digest, size, r = ledger.acked[i]
            check((d["sha256"], d["size"]) == (digest, size),
                  "%s (round %d) is listed with another sha256/size: %r" % (i, r, d))
        else:
            check(d["sha256"] in ledger.sent, "%s is listed but is none of the bodies sent: %r" % (i, d))

    # downloads: the documents of the last round, a sample of older ones, the unsure deletes
    if everything:
        ids = sorted(listed)
    else:
        ids = [i for i in listed if i not in ledger.acked or ledger.acked[i][2] >= round_no - 1]
        older = sorted(i for i in live if ledger.acked[i][2] < round_no - 1)
        ids += rng.sample(older, min(SAMPLE, len(older)))
        ids += [i for i in ledger.delete_unsure if i in listed and i not in ids]
    results = pool.map(lambda i: reader.get("/v1/documents/%s/content" % i), ids)
    bad = []
    for i, (status, body) in zip(ids, results):
        if status != 200:
            how = "acknowledged in round %d" % ledger.acked[i][2] if i in ledger.acked else "never acknowledged"
            if i in ledger.delete_unsure:
                how += ", its delete cut short: it must be gone or intact"
            bad.append("%s (%s): GET content %d %r" % (i, how, status, body[:200]))
        elif hashlib.sha256(body).hexdigest() != listed[i]["sha256"] or len(body) != listed[i]["size"]:
            bad.append("%s: content (%d bytes) does not match its sha256/size" % (i, len(body)))
        else:
            with ledger.lock:
                ledger.reads[i] = ledger.reads.get(i, 0) + 1
    check(not bad, "%d documents fail after the cut:\n  %s" % (len(bad), "\n  ".join(bad[:10])))
    gone = sorted(ledger.deleted)
    for i in rng.sample(gone, min(3, len(gone))):
        status, body = reader.get("/v1/documents/%s/content" % i)
        # 410 with its tombstone; 404 where recovery finished a deletion the cut interrupted
        # (that path keeps no tombstone yet)
        check(status in (404, 410), "deleted document %s: GET content %d, expected 410 or 404" % (i, status))

    # the audit log: only grows, and holds every acknowledged action
    audit.update(v, full=everything)
    actions = audit.actions
    lost = [i for i in ledger.acked if ("document.create", i) not in actions]
    check(not lost, "%d acknowledged uploads have no document.create entry, e.g. %s" % (len(lost), lost[:3]))
    lost = [i for i in ledger.deleted if ("document.delete", i) not in actions]
    check(not lost, "%d acknowledged deletes have no document.delete entry, e.g. %s" % (len(lost), lost[:3]))
    lost = [i for i, n in ledger.reads.items() if actions.get(("document.read", i), 0) < n]
    check(not lost, "%d documents have fewer document.read entries than acknowledged downloads, e.g. %s"
          % (len(lost), lost[:3]))
    check(audit.rotations >= ledger.rotations, "%d key.rotate entries for %d acknowledged rotations"
          % (audit.rotations, ledger.rotations))
    return len(ids)


def run_round(v, disk, ledger, rng, round_no, rotate):
    """Load, then the cut. Returns a description of the round."""
    stop = threading.Event()
    with ledger.lock:
        ledger.round_acks = 0
        ledger.running = WORKERS
    threads = [threading.Thread(target=client, args=(v, ledger, random.Random(rng.getrandbits(64)), stop,
                                                     round_no, w)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    with ledger.cond:
        ledger.cond.wait_for(lambda: ledger.round_acks >= MIN_ACKS or ledger.running == 0, ACK_DEADLINE)
        acks = ledger.round_acks
    if acks < MIN_ACKS:
        stop.set()
        raise TestFailure("round %d: only %d uploads acknowledged (%d needed), uploaders: %s\n%s"
                          % (round_no, acks, MIN_ACKS, ledger.errors[:5], v.log_tail(20)))
    delay = rng.uniform(0.0, MAX_DELAY)
    rotate_proc = None
    if rotate:
        stop.wait(delay)
        stop.set()
        for t in threads:
            t.join(60)
        rc = v.stop()
        check(rc == 0, "round %d: SIGTERM before key rotate: exit %r\n%s" % (round_no, rc, v.log_tail(20)))
        rotate_proc = subprocess.Popen([BINARY, "key", "rotate", "--data", v.data], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
        # every other rotation runs to its end (then the cut), the others are cut at a random
        # moment within the time the last whole one took
        full = (round_no // ROTATE_EVERY) % 2 == 0
        delay = 120.0 if full else rng.uniform(0.0, ledger.rotate_time)
        t_rotate = time.monotonic()
        try:
            out, err = rotate_proc.communicate(timeout=delay)  # the random cut moment, not a synchronisation
        except subprocess.TimeoutExpired:
            pass
        else:
            check(rotate_proc.returncode == 0, "round %d: key rotate: exit %d" % (round_no, rotate_proc.returncode),
                  out.decode(errors="replace"), err.decode(errors="replace"))
            ledger.rotations += 1
            rotate_proc = None
            if full:
                ledger.rotate_time = time.monotonic() - t_rotate
                delay = ledger.rotate_time
    else:
        stop.wait(delay)  # the random cut moment (not a synchronisation)
    procs = [v.proc, rotate_proc]
    v.proc = None
    v.drop_connection()
    stats = disk.cut(procs)
    stop.set()
    for t in threads:
        t.join(60)
        check(not t.is_alive(), "round %d: a client hung after the cut" % round_no)
    what = ("key rotate %s" % ("cut short" if rotate_proc else "done")) if rotate else "uploads"
    return "%s, cut after %.3fs, %d uploads acknowledged, lost %d bytes in %d files and %d names" % (
        what, delay, ledger.round_acks, stats["lost_bytes"], stats["lost_files"], stats["lost_names"])


def cut_during_start(v, disk, rng, round_no):
    """A second cut while the server recovers from the first: start it, cut at a random moment."""
    port_file = os.path.join(v.run_dir, "port")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(port_file)
    proc = subprocess.Popen([v.binary, "serve", "--data", v.data, "--listen", "127.0.0.1:0", "--port-file",
                             port_file, *v.serve_args], stdin=subprocess.DEVNULL, stdout=v.log_file,
                            stderr=v.log_file)
    delay = rng.uniform(0.0, 0.3)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(delay)  # the random cut moment, not a synchronisation
    exited = proc.poll()
    check(exited is None, "round %d: coffre serve exited with %r during start-up\n%s" % (round_no, exited,
                                                                                     v.log_tail(20)))
    disk.cut([proc])
    disk.mount()
    return delay


def check_locking(v):
    """Locks work on powerfs (the kernel keeps them): a second writer of the audit log is refused."""
    r = subprocess.run([BINARY, "key", "rotate", "--data", v.data], capture_output=True, timeout=120)
    check(r.returncode == 1 and b"in use" in r.stderr,
          "key rotate with the server running on powerfs: exit %d (expected 1, 'in use': is locking broken "
          "on the FUSE mount?)" % r.returncode, r.stderr.decode(errors="replace"))


def selftest_powerfs(python, base):
    """powerfs forgets what it should and keeps what it should, on a scratch mount of its own."""
    seed = os.path.join(base, "selftest-seed")
    mnt = os.path.join(base, "selftest-mnt")
    os.mkdir(seed)
    os.mkdir(mnt)
    disk = Disk(python, os.path.join(base, "selftest-state"), mnt, seed)

    def p(name):
        return os.path.join(mnt, name)

    def put(name, data, sync):
        fd = os.open(p(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, data)
        if sync:
            os.fsync(fd)
        os.close(fd)

    def sync_dir():
        fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)

    def read(name):
        try:
            with open(p(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    try:
        disk.mount()
        put("kept", b"one", True)
        put("moved", b"m", True)
        put("gone", b"g", True)
        put("mapped", b"\0" * 4096, True)
        put("empty", b"", False)
        sync_dir()
        put("never", b"x", True)  # data synced, name never
        with open(p("kept"), "ab") as f:
            f.write(b"two")
            f.flush()
            os.fsync(f.fileno())
        os.truncate(p("kept"), 0)  # not synced
        put("empty", b"data", False)
        os.rename(p("moved"), p("moved2"))
        os.unlink(p("gone"))
        fd = os.open(p("mapped"), os.O_RDWR)
        with mmap.mmap(fd, 4096) as m:  # a shared mapping, as SQLite's -shm
            m[:6] = b"mapped"
            m.flush()
        os.fsync(fd)
        os.close(fd)
        disk.cut()
        disk.mount()
        got = {n: read(n) for n in ("kept", "never", "empty", "moved", "moved2", "gone")}
        got["mapped"] = (read("mapped") or b"")[:6]
        want = {"kept": b"onetwo", "never": None, "empty": b"", "moved": b"m", "moved2": None, "gone": b"g",
                "mapped": b"mapped"}
        check(got == want, "powerfs self-test: after the cut %r, expected %r" % (got, want))
        disk.unmount()
    finally:
        disk.close()


def main():
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0 or fuse_python() is None:
        why = "needs /dev/fuse, root and python3-fusepy (scripts/install-deps)"
        if os.environ.get("CI") == "true":
            print("FAIL: " + why)
            return 1
        print("SKIP: " + why)
        return SKIP
    print("power-loss test: seed %d (set COFFRE_POWER_SEED=%d to replay), %d cuts" % (SEED, SEED, CUTS), flush=True)
    rng = random.Random(SEED)
    # powerfs rebuilds its live tree from the durable state at every mount: on tmpfs that takes
    # milliseconds, on a busy disk seconds (COFFRE_POWER_TMP chooses another place)
    tmp = os.environ.get("COFFRE_POWER_TMP") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    base = tempfile.mkdtemp(prefix="coffre-power-", dir=tmp)
    ledger = Ledger()
    failed = True
    t_start = time.monotonic()
    disk = None
    v = None
    try:
        selftest_powerfs(fuse_python(), base)
        seed = os.path.join(base, "seed")
        mnt = os.path.join(base, "mnt")
        os.mkdir(seed)
        os.mkdir(mnt)
        # The vault is made on an ordinary disk and is the powerfs disk's starting content.
        v = Vault(BINARY, base=base, init=False, serve_args=["--max-body", str(1 << 20)])
        v.data = os.path.join(seed, "vault")
        v.init()
        v.cacert = os.path.join(base, "cert.pem")  # outside the mount: the client's own copy
        shutil.copyfile(os.path.join(v.data, "tls", "cert.pem"), v.cacert)
        v.data = os.path.join(mnt, "vault")
        disk = Disk(fuse_python(), os.path.join(base, "state"), mnt, seed)
        audit = AuditView()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            reader = Reader(v)
            for round_no in range(CUTS + 1):
                t0 = time.monotonic()
                disk.mount()
                twice = ""
                if round_no % RECOVERY_CUT_EVERY == RECOVERY_CUT_EVERY - 1:
                    twice = "start-up cut after %.3fs, then " % cut_during_start(v, disk, rng, round_no)
                t_mount = time.monotonic()
                try:
                    v.start()
                except TestFailure as e:
                    raise TestFailure("round %d: the server did not start by itself after a power cut: %s"
                                      % (round_no, e))
                t_up = time.monotonic()
                if round_no == 0:
                    check_locking(v)
                last = round_no == CUTS
                downloads = verify(v, ledger, audit, pool, reader, rng, round_no, everything=last)
                check(not ledger.errors, "clients saw errors:\n  " + "\n  ".join(ledger.errors[:10]))
                if last:
                    rc = v.stop()
                    check(rc == 0, "final SIGTERM: exit %r" % rc)
                    r = subprocess.run([BINARY, "audit", "verify", "--data", v.data], capture_output=True,
                                       timeout=600)
                    check(r.returncode == 0, "audit verify after %d power cuts: exit %d" % (CUTS, r.returncode),
                          r.stdout.decode(errors="replace")[-3000:], r.stderr.decode(errors="replace")[-3000:])
                    disk.unmount()
                    break
                t_check = time.monotonic()
                rotate = round_no % ROTATE_EVERY == ROTATE_EVERY - 1
                what = run_round(v, disk, ledger, rng, round_no, rotate)
                print("cut %3d: %s%s; checked %d downloads, %d audit entries; %.1fs (mount %.1f, start %.1f, "
                      "check %.1f, load and cut %.1f)"
                      % (round_no + 1, twice, what, downloads, len(audit.leaves), time.monotonic() - t0, t_mount - t0,
                         t_up - t_mount, t_check - t_up, time.monotonic() - t_check), flush=True)
        lossy = sum(1 for s in disk.cuts if s["lost_bytes"] or s["lost_names"])
        check(lossy > 0, "no power cut found anything unsynced to drop: the filesystem model did nothing")
        check(ledger.deleted, "no delete was acknowledged in the whole run")
        check(ledger.rotations > 0 or CUTS < ROTATE_EVERY, "no key rotation finished in the whole run")
        print("ok: %d power cuts (%d dropped unsynced data), %d uploads, %d deletes, %d downloads, %d key "
              "rotations acknowledged and intact; audit verify passed; %.0fs"
              % (CUTS, lossy, len(ledger.acked), len(ledger.deleted), sum(ledger.reads.values()),
                 ledger.rotations, time.monotonic() - t_start))
        failed = False
        return 0
    except (TestFailure, AssertionError) as e:
        print("FAIL: %s" % e)
        if v is not None:
            print("seed %d; %s" % (SEED, v.log_tail(30)))
        if disk is not None:
            print(disk.log_tail(10))
        return 1
    finally:
        if v is not None:
            v.kill()
            v.close()
        if disk is not None:
            disk.close()
        if failed and os.environ.get("COFFRE_POWER_KEEP"):
            print("kept for inspection: %s (powerfs state in state/, server log in server.log)" % base)
        elif not os.path.ismount(os.path.join(base, "mnt")):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(exit_status(main()))
