#!/usr/bin/env python3
"""bench/field_list.py: what encrypted document names cost GET /v1/documents?limit=1000.

Usage: bench/field_list.py COFFRE COFFRE_LOAD COFFRE_FIELD_BENCH [OLD_COFFRE OLD_COFFRE_LOAD]

Makes a vault in a temporary directory, fills it with FIELD_DOCS (1000) documents of 512 bytes
with coffre-load (the ingest path without HTTP), then:
  1. runs coffre-field-bench on it (server stopped): the metadata query and answer JSON with and
     without the names' decryption, in-process, alternating (ratio = with / without);
  2. starts `coffre serve` and times FIELD_QUERIES (200) requests GET /v1/documents?limit=1000 on
     one kept-alive HTTPS connection: median and p90 in ms.
With OLD_COFFRE and OLD_COFFRE_LOAD (a build of the version that stored names in clear), step 2
is also run on a vault of the same size filled by that version, requests alternating between the
two servers in the same run, and `http_ratio` = encrypted / clear (medians).
Python 3 standard library only.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Vault  # noqa: E402

DOCS = int(os.environ.get("FIELD_DOCS", "1000"))
QUERIES = int(os.environ.get("FIELD_QUERIES", "200"))
ROUNDS = os.environ.get("FIELD_ROUNDS", "200")


def load(loader, v):
    r = subprocess.run([loader, v.data, str(DOCS), "512", "8"], capture_output=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit("coffre-load failed:\n%s" % r.stderr.decode(errors="replace"))


def timed_list(v):
    t0 = time.perf_counter()
    r = v.request("GET", "/v1/documents?limit=1000")
    dt = time.perf_counter() - t0
    if r.status != 200 or len(r.json()["documents"]) != min(DOCS, 1000):
        raise SystemExit("listing failed: %r" % r)
    return dt * 1000


def summary(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[int(0.9 * (len(xs) - 1) + 0.5)], xs[0]


def main():
    if len(sys.argv) not in (4, 6):
        raise SystemExit(__doc__)
    coffre, loader, fbench = sys.argv[1:4]
    old = sys.argv[4:6] if len(sys.argv) == 6 else None
    with tempfile.TemporaryDirectory(prefix="coffre-field-bench-") as tmp:
        v = Vault(coffre, base=os.path.join(tmp, "new"))
        load(loader, v)
        r = subprocess.run([fbench, v.data, ROUNDS], capture_output=True, timeout=600, text=True)
        if r.returncode != 0:
            raise SystemExit("coffre-field-bench failed:\n" + r.stderr)
        print("in-process (coffre-field-bench, %s rounds):" % ROUNDS)
        print("  " + r.stdout.strip().replace("\n", "\n  "))
        v.start()
        w = None
        if old:
            w = Vault(old[0], base=os.path.join(tmp, "old"))
            load(old[1], w)
            w.start()
        try:
            for s in (v, w):  # warm up: connection, page cache, statement caches
                if s:
                    for _ in range(5):
                        timed_list(s)
            tn, to = [], []
            for _ in range(QUERIES):
                tn.append(timed_list(v))
                if w:
                    to.append(timed_list(w))
            mn, pn, minn = summary(tn)
            print("https GET /v1/documents?limit=1000, %d requests, %d documents:" % (QUERIES, DOCS))
            print("  encrypted names median_ms=%.2f p90_ms=%.2f min_ms=%.2f" % (mn, pn, minn))
            if w:
                mo, po, mino = summary(to)
                print("  clear names     median_ms=%.2f p90_ms=%.2f min_ms=%.2f" % (mo, po, mino))
                print("result http_ratio=%.3f min_ratio=%.3f" % (mn / mo, minn / mino))
        finally:
            v.close()
            if w:
                w.close()


if __name__ == "__main__":
    main()
