#!/usr/bin/env python3
"""bench/growth.py: does a vault stay as fast when it already holds many documents?

Usage: bench/growth.py PATH/TO/coffre PATH/TO/coffre-load N [N ...]
For each N (0 included automatically, as the reference), makes a vault in a temporary directory,
fills it with N documents of 4 KiB with coffre-load (the ingest path without HTTP: keys,
objects, audit entries and rows, all durable), starts `coffre serve` on it and measures, over
HTTPS with the same client as bench/run:
  - ingest: GROWTH_DOCS (2000) uploads of 100 KiB at concurrency 16 (docs/s, and the ratio to
    the empty vault measured in the same run);
  - listing: GET /v1/documents?limit=100, the first page and pages deep in the vault by cursor,
    GROWTH_QUERIES (200) requests on one kept-alive connection: median and p99 in ms;
  - audit-trail proof: for GROWTH_QUERIES documents picked at random among the loaded ones, the
    document's trail (GET /v1/documents/{id}/audit) and an inclusion proof of each of its
    entries in the current tree: median and p99 in ms per document.
GROWTH_KEEP=DIR keeps the vaults in DIR (and reuses one already loaded to the same N).
Python 3 standard library only.
"""

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
from harness import Vault  # noqa: E402

DOCS = int(os.environ.get("GROWTH_DOCS", "2000"))
QUERIES = int(os.environ.get("GROWTH_QUERIES", "200"))


def loadgen_exe(tmp):
    exe = os.path.join(tmp, "loadgen")
    cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "libcurl"], capture_output=True,
                            check=True).stdout.decode().split()
    subprocess.run(["cc", "-O2", os.path.join(HERE, "loadgen.c"), *cflags, "-o", exe], check=True)
    return exe


def timed(fn):
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def get_json(v, path):
    r = v.request("GET", path)
    if r.status != 200:
        raise SystemExit("GET %s: %d %r" % (path, r.status, r.body[:200]))
    return json.loads(r.body)


def measure(binary, loader, exe, base, n):
    data = os.path.join(base, "vault")
    marker = os.path.join(base, "loaded")
    if not (os.path.exists(marker) and open(marker).read() == str(n)):
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        Vault(binary, base=base)  # coffre init
        t = time.monotonic()
        if n:
            r = subprocess.run([loader, data, str(n), "4096", "64"], capture_output=True)
            if r.returncode != 0:
                raise SystemExit("coffre-load failed:\n" + r.stderr.decode(errors="replace")[-2000:])
            print("  loaded %d documents in %.0f s (%s)" % (n, time.monotonic() - t,
                                                          r.stdout.decode().strip()), flush=True)
        with open(marker, "w") as f:
            f.write(str(n))
    v = Vault(binary, base=base, init=False)
    with open(os.path.join(data, "bootstrap-token")) as f:
        v.token = f.read().strip()
    v.cacert = os.path.join(data, "tls", "cert.pem")
    v.start()
    try:
        def walk(pages):
            ids, cursor = [], None
            for _ in range(pages):
                page = get_json(v, "/v1/documents?limit=100" + ("&cursor=" + cursor if cursor else ""))
                ids += [d["id"] for d in page["documents"]]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            return ids, cursor

        # the documents to prove: random ones among those loaded before the measures (in the
        # empty vault, those the ingest measure stored)
        ids, _ = walk(20)
        r = subprocess.run([exe, "upload", "--url", v.url + "/v1/documents?name=g-{n}.bin&class=growth",
                            "--count", str(DOCS), "--size", str(100 * 1024), "--concurrency", "16",
                            "--header", "Authorization: Bearer " + v.token, "--cacert", v.cacert],
                           capture_output=True, timeout=1800)
        line = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("result ")]
        if r.returncode != 0 or not line:
            raise SystemExit("loadgen failed: %s" % r.stdout.decode()[-500:])
        rate = float(dict(kv.split("=", 1) for kv in line[0].split()[1:])["docs_per_s"])
        if not ids:
            ids, _ = walk(20)
        _, deep = walk(QUERIES // 10 + 1)  # a cursor deep into the vault (when it has that many)
        first = [timed(lambda: get_json(v, "/v1/documents?limit=100")) for _ in range(QUERIES // 2)]
        deep_t = [timed(lambda: get_json(v, "/v1/documents?limit=100" + ("&cursor=" + deep if deep else "")))
                  for _ in range(QUERIES // 2)]
        size = None

        def prove(doc_id):
            nonlocal size
            trail = get_json(v, "/v1/documents/%s/audit" % doc_id)
            for e in trail["entries"]:
                p = get_json(v, "/v1/audit/proof/inclusion?index=%d&size=%d" % (e["index"], size))
                if p["index"] != e["index"]:
                    raise SystemExit("inclusion proof for the wrong entry")
        size = max(1, int(v.request("GET", "/v1/audit/checkpoint").body.decode().split("\n")[1]))
        rnd = random.Random(n)
        proofs = [timed(lambda: prove(rnd.choice(ids))) for _ in range(QUERIES)]
        lat = first + deep_t
        return {"n": n, "ingest": rate, "list_med": statistics.median(lat), "list_p99": pct(lat, 0.99),
                "proof_med": statistics.median(proofs), "proof_p99": pct(proofs, 0.99)}
    finally:
        v.stop()
        v.close()


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    binary, loader = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    sizes = [0] + [int(x) for x in sys.argv[3:] if int(x) > 0]
    keep = os.environ.get("GROWTH_KEEP")
    tmp = tempfile.mkdtemp(prefix="coffre-growth-")
    try:
        exe = loadgen_exe(tmp)
        rows = []
        for n in sizes:
            base = os.path.join(keep or tmp, "v%d" % n)
            print("vault with %d documents" % n, flush=True)
            rows.append(measure(binary, loader, exe, base, n))
        print()
        print("%12s %12s %8s %10s %10s %10s %10s" % ("documents", "ingest/s", "vs 0", "list med", "list p99",
                                                    "proof med", "proof p99"))
        for r in rows:
            print("%12d %12.1f %8.2f %8.2fms %8.2fms %8.2fms %8.2fms" % (
                r["n"], r["ingest"], r["ingest"] / rows[0]["ingest"], r["list_med"], r["list_p99"],
                r["proof_med"], r["proof_p99"]))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
