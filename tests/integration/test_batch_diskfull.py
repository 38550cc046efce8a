#!/usr/bin/env python3
"""test_batch_diskfull.py: concurrent uploads into a disk that fills up mid-batch.

A vault (objects, keyring.db, meta.db and the audit log) on a 48 MiB tmpfs; 16 connections
upload 256 KiB documents at once until each has had a 507. With the group commits batching
concurrent uploads, the disk runs out in the middle of batches (an object, a WAL commit or an
audit append). Every answer must be 201 or 507 insufficient-storage, and afterwards:
  - the listing, DIR/objects and keyring.db's DEK table hold exactly the acknowledged documents,
    and DIR/tmp is empty (before the restart, the DEK table may also hold keys whose destruction
    the full disk refused, no more than the server logged as left to the next start);
  - each acknowledged document has its document.create entry; an entry for any other upload is
    followed by its document.discard;
  - /metrics shows keyring commits that carried several keys, so batches did form (the keys of
    uploads that then failed were stored in batches with others, and destroyed);
  - after the filesystem is grown and the server restarted, the same holds, with no key left
    over and every acknowledged document reading back (on the full disk a read may be refused
    with 507, as its audit entry cannot be written).
Needs root (to mount the tmpfs): exits 77 (skipped) otherwise.
Usage: test_batch_diskfull.py PATH/TO/coffre
"""

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import urllib.parse

from harness import SKIP, Response, TestFailure, Vault, check, exit_status, expect_problem, random_chunks

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
FS_SIZE = 48 << 20
SIZE = 256 * 1024
WORKERS = 16
MAX_UPLOADS = 600


def body_of(i):
    return b"".join(random_chunks(SIZE, seed=7000 + i))


def fill(v):
    """16 connections upload until each got a 507; returns {id: sha256} of the 201s."""
    lock = threading.Lock()
    counter = [0]
    acked, failures, refused = {}, [], [0]
    start = threading.Barrier(WORKERS)

    def worker():
        conn = v.connect()
        start.wait()
        try:
            while True:
                with lock:
                    if counter[0] >= MAX_UPLOADS:
                        return
                    i = counter[0]
                    counter[0] += 1
                data = body_of(i)
                h = dict(v.auth_headers())
                h["Content-Type"] = "application/octet-stream"
                conn.request("POST", "/v1/documents?" + urllib.parse.urlencode({"name": "f%d.bin" % i, "class": "fill"}),
                             body=data, headers=h)
                r = conn.getresponse()
                payload = r.read()
                with lock:
                    if r.status == 201:
                        d = json.loads(payload)
                        acked[d["id"]] = hashlib.sha256(data).hexdigest()
                        check(d["sha256"] == acked[d["id"]], "201 with the wrong sha256")
                    else:
                        refused[0] += 1
                        failures.append(Response(r.status, r.getheaders(), payload))
                if r.status != 201:
                    return  # this connection saw the disk full
                if r.will_close:
                    conn.close()
                    conn = v.connect()
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in failures:
        expect_problem(f, 507, "insufficient-storage")
    check(failures, "%d uploads of %d KiB into %d MiB without a 507" % (counter[0], SIZE >> 10, FS_SIZE >> 20))
    check(len(acked) >= 20, "only %d documents fitted" % len(acked))
    print("%d acknowledged, %d refused with 507" % (len(acked), len(failures)), flush=True)
    return acked


def audit_log_size(v):
    def ok(n):
        r = v.request("GET", "/v1/audit/entries?start=%d&end=%d" % (n, n))
        check(r.status in (200, 400), "audit entries at %d: %d" % (n, r.status), r)
        return r.status == 200
    hi = 1
    while ok(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def check_exactly(v, acked, after_restart):
    listing = {d["id"]: d for d in v.list_all({"class": "fill"})}
    check(set(listing) == set(acked), "listing has %d documents, %d were acknowledged" % (len(listing), len(acked)))
    objects = {os.path.basename(p) for p in v.object_files()}
    check(objects == set(acked), "DIR/objects holds %d objects for %d documents" % (len(objects), len(acked)))
    check(v.tmp_files() == [], "DIR/tmp holds %r" % v.tmp_files())
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(v.data, "keyring.db"), uri=True)
    try:
        n = db.execute("SELECT count(*) FROM dek").fetchone()[0]
    finally:
        db.close()
    if after_restart:
        check(n == len(acked), "keyring.db holds %d DEKs for %d documents after the restart" % (n, len(acked)))
    else:
        # Destroying a key needs room in keyring.db's WAL too: on a full disk it may fail, and
        # the server says so and leaves it to the next start (checked after the restart).
        deferred = v.log_text().count(b"could not destroy the key of an abandoned upload")
        check(len(acked) <= n <= len(acked) + deferred,
              "keyring.db holds %d DEKs for %d documents (%d destructions deferred)" % (n, len(acked), deferred))
    created, discarded = {}, set()
    size = audit_log_size(v)
    for start in range(0, size, 1000):
        r = v.request("GET", "/v1/audit/entries?start=%d&end=%d" % (start, min(size, start + 1000)))
        check(r.status == 200, "audit entries: %d" % r.status, r)
        for e in r.json()["entries"]:
            if e.get("redacted"):
                # an entry of no organisation (an audit.recover after a stop that the full disk
                # kept from being recorded as clean, say): none of this vault's documents
                continue
            entry = json.loads(e["entry"])
            if entry.get("action") == "document.create":
                created[entry["object"]] = e["index"]
            elif entry.get("action") == "document.discard":
                check(entry["object"] in created, "discard before create for %s" % entry["object"])
                discarded.add(entry["object"])
    check(set(acked) <= set(created), "%d acknowledged documents have no document.create entry"
          % len(set(acked) - set(created)))
    check(not (set(acked) & discarded), "an acknowledged document was discarded")
    check(set(created) - set(acked) == discarded, "%d creation entries of unacknowledged uploads have no discard"
          % len(set(created) - set(acked) - discarded))
    print("%d creation entries, %d discarded" % (len(created), len(discarded)), flush=True)
    for doc_id, sha in acked.items():
        r = v.download(doc_id)
        if r.status == 507 and not after_restart:
            expect_problem(r, 507, "insufficient-storage")  # no room for its document.read entry
            continue
        check(r.status == 200 and hashlib.sha256(r.body).hexdigest() == sha,
              "acknowledged document %s does not read back (status %d)" % (doc_id, r.status))


def batches_formed(v):
    r = v.request("GET", "/metrics")  # [server] metrics = token (the default): an admin token
    check(r.status == 200, "/metrics: %d" % r.status, r)
    m = {(k, s): int(n) for k, s, n in re.findall(r'^coffre_group_(commits|committed)_total\{store="(\w+)"\} (\d+)$',
                                                     r.body.decode(), re.M)}
    # On a tmpfs a sync costs nothing, so the audit and meta groups rarely wait long enough to
    # grow; the keys, queued when an upload begins and committed when any upload finishes, are
    # batched with those of the uploads in flight, the failing ones among them.
    print("group commits (syncs, items): %r" % m, flush=True)
    check(m.get(("committed", "keyring"), 0) > m.get(("commits", "keyring"), 0) > 0,
          "no keyring group commit carried more than one key: %r" % m)


def run(v, mnt):
    v.start()
    acked = fill(v)
    batches_formed(v)
    check_exactly(v, acked, False)
    check(v.stop() == 0, "SIGTERM on a full disk did not exit 0")
    # More room, so that every read can append its audit entry.
    r = subprocess.run(["mount", "-o", "remount,size=%d" % (2 * FS_SIZE), mnt], capture_output=True, timeout=30)
    check(r.returncode == 0, "cannot grow the tmpfs: %s" % r.stderr.decode(errors="replace"))
    v.start()
    check_exactly(v, acked, True)
    check(v.stop() == 0, "SIGTERM after restart did not exit 0")


def main():
    if os.geteuid() != 0:
        print("SKIP: test_batch_diskfull needs root to mount a tmpfs")
        return SKIP
    base = tempfile.mkdtemp(prefix="coffre-batchfull-")
    mnt = os.path.join(base, "mnt")
    os.mkdir(mnt)
    mounted = False
    v = None
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % FS_SIZE, "tmpfs", mnt],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            print("SKIP: cannot mount a tmpfs: %s" % r.stderr.decode(errors="replace").strip())
            return SKIP
        mounted = True
        v = Vault(BINARY, base=mnt)
        v.run_dir = base  # the port file and the server log go outside the small filesystem
        v.log_path = os.path.join(base, "server.log")
        try:
            run(v, mnt)
        except (TestFailure, AssertionError) as e:
            print("FAIL: %s\n%s" % (e, v.log_tail(30)))
            return 1
        print("ok: a disk filling up mid-batch acknowledged only whole documents and left nothing else")
        return 0
    finally:
        if v is not None:
            v.close()
        if mounted:
            r = subprocess.run(["umount", mnt], capture_output=True, timeout=60)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=60)
        subprocess.run(["rm", "-rf", "--one-file-system", base], timeout=120)


if __name__ == "__main__":
    sys.exit(exit_status(main()))
