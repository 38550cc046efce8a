#!/usr/bin/env python3
"""test_batch.py: concurrent uploads share their syncs, and a failing one spoils no batch.

Rounds of 48 uploads of 100 KiB, 24 at a time on 24 connections released together; every
fourth one carries an X-Content-SHA256 that does not match its body. Until the /metrics
counters show that group commits really carried several documents (document rows per meta.db
commit, keys per keyring.db commit and entries per audit fdatasync all above one; at most six
rounds), and then again after a restart, the test checks what a user and an operator would see:
  - every good upload answered 201 and reads back byte for byte; every bad one answered 422
    hash-mismatch;
  - the listing, DIR/objects and keyring.db's DEK table hold exactly the good documents, and
    DIR/tmp is empty (the bad ones' keys, stored in a batch with the others, were destroyed);
  - the audit log holds one document.create per good document (and no discard), and each good
    document's own audit trail (the reference committed with its metadata row) names exactly
    that creation entry.
Usage: test_batch.py PATH/TO/coffre
"""

import hashlib
import json
import os
import re
import sqlite3
import sys
import threading
import urllib.parse

from harness import Response, Vault, check, exit_status, expect_problem, random_chunks, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
SIZE = 100 * 1024
PER_ROUND = 48
WORKERS = 24
MAX_ROUNDS = 6

V = None
GOOD = {}  # id -> (name, sha256 hex)


def body_of(round_no, i):
    return b"".join(random_chunks(SIZE, seed=round_no * 1000 + i))


def metrics():
    r = V.request("GET", "/metrics")
    check(r.status == 200, "/metrics: %d" % r.status, r)
    out = {}
    for m in re.finditer(r'^coffre_group_(commits|committed)_total\{store="(\w+)"\} (\d+)$',
                         r.body.decode(), re.M):
        out[(m.group(1), m.group(2))] = int(m.group(3))
    for store in ("keyring", "audit", "meta"):
        for kind in ("commits", "committed"):
            check((kind, store) in out, "/metrics has no coffre_group_%s_total for %s" % (kind, store))
    return out


def upload_round(round_no):
    """48 uploads, 24 at a time; returns [(name, good, status, body)]."""
    jobs = list(range(PER_ROUND))
    lock = threading.Lock()
    results = []
    start = threading.Barrier(WORKERS)

    def worker():
        conn = V.connect()
        start.wait()
        try:
            while True:
                with lock:
                    if not jobs:
                        return
                    i = jobs.pop()
                data = body_of(round_no, i)
                good = i % 4 != 3
                digest = hashlib.sha256(data if good else data + b"x").hexdigest()
                name = "r%d-%s-%d.bin" % (round_no, "good" if good else "bad", i)
                h = dict(V.auth_headers())
                h.update({"Content-Type": "application/octet-stream", "X-Content-SHA256": digest})
                q = urllib.parse.urlencode({"name": name, "class": "batch"})
                conn.request("POST", "/v1/documents?" + q, body=data, headers=h)
                r = conn.getresponse()
                payload = r.read()
                with lock:
                    results.append((name, good, r.status, payload, r.getheaders()))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(len(results) == PER_ROUND, "%d answers for %d uploads" % (len(results), PER_ROUND))
    return results


def check_round(results):
    for name, good, status, payload, headers in results:
        if good:
            check(status == 201, "%s: status %d" % (name, status), payload[:300])
            d = json.loads(payload)
            check(d["name"] == name and d["size"] == SIZE, "%s: answer %r" % (name, d))
            GOOD[d["id"]] = (name, d["sha256"])
        else:
            expect_problem(Response(status, headers, payload), 422, "hash-mismatch")


def keyring_dek_count():
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(V.data, "keyring.db"), uri=True)
    try:
        return db.execute("SELECT count(*) FROM dek").fetchone()[0]
    finally:
        db.close()


def audit_log_size():
    """The log's current size: the largest E that /v1/audit/entries?start=E&end=E accepts (the
    signed checkpoint may lag behind the last appends)."""
    def ok(n):
        r = V.request("GET", "/v1/audit/entries?start=%d&end=%d" % (n, n))
        check(r.status in (200, 400), "audit entries at %d: %d" % (n, r.status), r)
        return r.status == 200
    hi = 1
    while ok(hi):
        hi *= 2
    lo = hi // 2  # ok(lo), not ok(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def audit_entries():
    size = audit_log_size()
    out = []
    for start in range(0, size, 1000):
        r = V.request("GET", "/v1/audit/entries?start=%d&end=%d" % (start, min(size, start + 1000)))
        check(r.status == 200, "audit entries: %d" % r.status, r)
        for e in r.json()["entries"]:
            out.append((e["index"], json.loads(e["entry"])))
    return out


def check_vault_holds_exactly_the_good_ones():
    listing = {d["id"]: d for d in V.list_all({"class": "batch"})}
    check(set(listing) == set(GOOD), "listing has %d documents, %d were acknowledged"
          % (len(listing), len(GOOD)))
    for doc_id, (name, sha) in GOOD.items():
        check(listing[doc_id]["name"] == name and listing[doc_id]["sha256"] == sha,
              "listing of %s: %r" % (name, listing[doc_id]))
        r = V.download(doc_id)
        check(r.status == 200 and hashlib.sha256(r.body).hexdigest() == sha,
              "%s does not read back (status %d)" % (name, r.status))
    objects = {os.path.basename(p) for p in V.object_files()}
    check(objects == set(GOOD), "DIR/objects holds %d objects for %d documents" % (len(objects), len(GOOD)))
    check(V.tmp_files() == [], "DIR/tmp holds %r" % V.tmp_files())
    n = keyring_dek_count()
    check(n == len(GOOD), "keyring.db holds %d DEKs for %d documents: a failed upload's key was kept"
          % (n, len(GOOD)))
    created = {}
    sealed = set()
    for index, e in audit_entries():
        check(e.get("action") in ("document.create", "document.seal", "document.read")
              or not e.get("action", "").startswith("document."),
              "unexpected audit action %r (an upload discarded after its creation entry?)" % e.get("action"), e)
        if e.get("action") == "document.create":
            check(e["object"] not in created, "two document.create entries for %s" % e["object"])
            created[e["object"]] = index
        if e.get("action") == "document.seal":  # right after its creation, never without one
            check(e["object"] in created and e["object"] not in sealed, "document.seal of %s out of place"
                  % e["object"])
            sealed.add(e["object"])
    check(set(created) == set(GOOD), "the audit log records %d creations for %d documents"
          % (len(created), len(GOOD)))
    check(sealed == set(GOOD), "the audit log records %d seals for %d documents" % (len(sealed), len(GOOD)))
    for doc_id, index in created.items():
        r = V.request("GET", "/v1/documents/%s/audit" % doc_id)
        check(r.status == 200, "audit trail of %s: %d" % (doc_id, r.status), r)
        trail = r.json()
        creations = [x["index"] for x in trail.get("entries", [])
                     if json.loads(x["entry"]).get("action") == "document.create"]
        check(creations == [index], "audit trail of %s names creations %r, expected [%d]"
              % (doc_id, creations, index), trail)


def test_failed_uploads_spoil_no_batch():
    GOOD.clear()
    before = metrics()
    formed = False
    rounds = 0
    while not formed and rounds < MAX_ROUNDS:
        check_round(upload_round(rounds))
        rounds += 1
        m = metrics()
        per = {s: (m[("committed", s)] - before[("committed", s)], m[("commits", s)] - before[("commits", s)])
               for s in ("keyring", "audit", "meta")}
        print("after round %d: items/syncs %r" % (rounds, per), flush=True)
        formed = all(items > syncs > 0 for items, syncs in per.values())
    check(formed, "no group commit carried more than one document in %d rounds of %d uploads at %d at a time"
          % (rounds, PER_ROUND, WORKERS))
    check_vault_holds_exactly_the_good_ones()


def test_restart_keeps_exactly_the_good_ones():
    check(GOOD, "the batch test acknowledged nothing")
    check(V.stop() == 0, "SIGTERM exit status")
    V.start()
    check_vault_holds_exactly_the_good_ones()


def main():
    global V
    with Vault(BINARY) as v:
        V = v
        v.start()
        rc = run_tests([test_failed_uploads_spoil_no_batch, test_restart_keeps_exactly_the_good_ones])
        if rc:
            print(v.log_tail(60))
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
