#!/usr/bin/env python3
"""test_crash.py: acknowledged documents survive kill -9 at random moments.

ROUNDS times: start the server on the same data dir, verify everything, run 8 concurrent
uploaders (0..300 KiB of random content each), kill -9 the server after a random delay. After
every restart: DIR/tmp is empty, every document ever acknowledged with 201 downloads
byte-identical, and every listed document downloads and matches its listed sha256 and size
(no corrupt or half-written object), and was one of the bodies we sent.
The delays and contents come from one seeded RNG: COFFRE_CRASH_SEED (default below) replays a
run; COFFRE_CRASH_ROUNDS changes the number of rounds, COFFRE_CRASH_MAX_DELAY the longest
time before a kill.
The test also requires that the server did its job, so that a server that fails every upload
cannot pass: the random kill moment is counted from the MIN_ACKED_PER_ROUND-th acknowledgement
of the round (waited for with a deadline), an uploader that loses its connection before the kill
is an error, and the total of acknowledged documents must reach ROUNDS * MIN_ACKED_PER_ROUND.
Usage: test_crash.py PATH/TO/coffre
"""

import concurrent.futures
import hashlib
import http.client
import json
import os
import random
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

from harness import TestFailure, Vault, check, exit_status

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
SEED = int(os.environ.get("COFFRE_CRASH_SEED", "20250101"))
ROUNDS = int(os.environ.get("COFFRE_CRASH_ROUNDS", "50"))
WORKERS = 8
MAX_SIZE = 300 * 1024
# Seconds of uploading before the kill, at most. Every round re-downloads every document, so the
# total work grows with the square of the rounds: keep the rounds short.
MAX_DELAY = float(os.environ.get("COFFRE_CRASH_MAX_DELAY", "0.3"))
# Acknowledgements each round must see before the kill moment is drawn, and the deadline for them.
MIN_ACKED_PER_ROUND = 4
ACK_DEADLINE = 60.0


class Ledger:
    """What the uploaders learnt: acknowledged documents and the hashes of every body sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}  # id -> (sha256, size)
        self.sent = set()  # sha256 of every body we tried to upload
        self.errors = []
        self.round_acked = 0  # acknowledgements in the current round
        self.acked_cond = threading.Condition(self.lock)


def uploader(v, ledger, rng, stop, round_no, worker):
    conn = http.client.HTTPSConnection("127.0.0.1", v.port, context=v.ssl_context(), timeout=30)
    headers = dict(v.auth_headers())
    headers["Content-Type"] = "application/octet-stream"
    n = 0
    try:
        while not stop.is_set():
            size = rng.randint(0, MAX_SIZE)
            data = rng.randbytes(size)
            digest = hashlib.sha256(data).hexdigest()
            with ledger.lock:
                ledger.sent.add(digest)
            q = urllib.parse.urlencode({"name": "r%d-w%d-%d.bin" % (round_no, worker, n), "class": "crash"})
            try:
                conn.request("POST", "/v1/documents?" + q, body=data, headers=headers)
                r = conn.getresponse()
                body = r.read()
            except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                if not stop.is_set():
                    with ledger.lock:
                        ledger.errors.append("round %d: upload failed before the kill: %r" % (round_no, e))
                return  # the server is gone
            n += 1
            if r.status != 201:
                with ledger.lock:
                    ledger.errors.append("round %d: upload got %d %r" % (round_no, r.status, body[:200]))
                return
            meta = json.loads(body)
            with ledger.lock:
                if meta.get("sha256") != digest or meta.get("size") != size:
                    ledger.errors.append("round %d: 201 with wrong sha256/size %r" % (round_no, meta))
                ledger.acked[meta["id"]] = (digest, size)
                ledger.round_acked += 1
                ledger.acked_cond.notify_all()
    finally:
        conn.close()


class Verifier:
    """Downloads documents on a pool of threads, one kept-alive connection each."""

    def __init__(self, v):
        self.v = v
        self.local = threading.local()

    def fetch_digest(self, doc_id):
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None)
            if conn is None or conn.port != self.v.port:
                conn = self.local.conn = self.v.connect(timeout=60)
            try:
                conn.request("GET", "/v1/documents/%s/content" % doc_id, headers=self.v.auth_headers())
                r = conn.getresponse()
                body = r.read()
                return r.status, hashlib.sha256(body).hexdigest(), len(body)
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise


def verify(v, ledger, pool, verifier, round_no):
    check(v.tmp_files() == [], "round %d: DIR/tmp not empty after restart: %r" % (round_no, v.tmp_files()[:5]))
    listing = v.list_all(limit=100)
    listed = {d["id"]: d for d in listing}
    check(len(listed) == len(listing), "round %d: the listing repeats documents" % round_no)
    missing = [i for i in ledger.acked if i not in listed]
    check(not missing, "round %d: %d acknowledged documents are not listed, e.g. %s"
          % (round_no, len(missing), missing[:3]))
    ids = list(listed)
    results = dict(zip(ids, pool.map(verifier.fetch_digest, ids)))
    bad = []
    for doc_id, (status, digest, size) in results.items():
        d = listed[doc_id]
        if status != 200:
            bad.append("%s: GET content %d" % (doc_id, status))
        elif digest != d["sha256"] or size != d["size"]:
            bad.append("%s: content (%d bytes) does not match its listed sha256/size" % (doc_id, size))
        elif doc_id in ledger.acked and ledger.acked[doc_id] != (digest, size):
            bad.append("%s: acknowledged content changed" % doc_id)
        elif digest not in ledger.sent:
            bad.append("%s: content is none of the bodies we sent" % doc_id)
    check(not bad, "round %d: %d documents fail verification:\n  %s" % (round_no, len(bad), "\n  ".join(bad[:10])))
    objects = len(v.object_files())
    return len(listed), objects


def main():
    print("crash test: seed %d (set COFFRE_CRASH_SEED=%d to replay), %d rounds" % (SEED, SEED, ROUNDS),
          flush=True)
    rng = random.Random(SEED)
    ledger = Ledger()
    t_start = time.monotonic()
    with Vault(BINARY, serve_args=["--max-body", str(1 << 20)]) as v, \
            concurrent.futures.ThreadPoolExecutor(8) as pool:
        verifier = Verifier(v)
        try:
            for round_no in range(ROUNDS + 1):
                t0 = time.monotonic()
                v.start()
                listed, objects = verify(v, ledger, pool, verifier, round_no)
                check(not ledger.errors, "uploaders saw errors:\n  " + "\n  ".join(ledger.errors[:10]))
                if round_no == ROUNDS:
                    rc = v.stop()
                    check(rc == 0, "final SIGTERM: exit %r" % rc)
                    # 50 kills in the middle of appends: the audit log still verifies, every
                    # entry covered by a signed checkpoint
                    r = subprocess.run([BINARY, "audit", "verify", "--data", v.data], capture_output=True,
                                       timeout=300)
                    check(r.returncode == 0, "audit verify after the crashes: exit %d" % r.returncode,
                          r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
                    break
                before = len(ledger.acked)
                with ledger.lock:
                    ledger.round_acked = 0
                stop = threading.Event()
                delay = rng.uniform(0.0, MAX_DELAY)
                threads = [threading.Thread(target=uploader, args=(
                    v, ledger, random.Random(rng.getrandbits(64)), stop, round_no, w)) for w in range(WORKERS)]
                for t in threads:
                    t.start()
                with ledger.lock:
                    got = ledger.acked_cond.wait_for(
                        lambda: ledger.round_acked >= MIN_ACKED_PER_ROUND or ledger.errors, ACK_DEADLINE)
                if not got or ledger.errors:
                    stop.set()
                    v.kill()
                    for t in threads:
                        t.join(60)
                    check(not ledger.errors, "uploaders saw errors:\n  " + "\n  ".join(ledger.errors[:10]))
                    check(False, "round %d: fewer than %d uploads acknowledged within %.0fs"
                          % (round_no, MIN_ACKED_PER_ROUND, ACK_DEADLINE))
                stop.wait(delay)  # the random kill moment (not a synchronisation)
                stop.set()  # first, so that the uploaders take the coming errors for the kill
                v.kill()
                for t in threads:
                    t.join(60)
                    check(not t.is_alive(), "an uploader hung after the kill")
                check(len(ledger.acked) - before >= MIN_ACKED_PER_ROUND,
                      "round %d: only %d uploads acknowledged" % (round_no, len(ledger.acked) - before))
                print("round %2d: killed after %.3fs, %d acknowledged (%d total), %d listed, %d objects, %.1fs"
                      % (round_no, delay, len(ledger.acked) - before, len(ledger.acked), listed, objects,
                         time.monotonic() - t0), flush=True)
        except (TestFailure, AssertionError) as e:
            print("FAIL: %s" % e)
            print("seed %d; %s" % (SEED, v.log_tail(30)))
            return 1
    if len(ledger.acked) < ROUNDS * MIN_ACKED_PER_ROUND:
        print("FAIL: %d documents acknowledged over %d rounds, fewer than %d"
              % (len(ledger.acked), ROUNDS, ROUNDS * MIN_ACKED_PER_ROUND))
        return 1
    print("ok: %d rounds, %d documents acknowledged and intact, %.0fs"
          % (ROUNDS, len(ledger.acked), time.monotonic() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
