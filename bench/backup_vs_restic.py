#!/usr/bin/env python3
"""backup_vs_restic.py: coffre's backups side by side with restic on the same data and disk.

A vault is filled through the API with incompressible (random) and compressible (invoice text)
documents, 2 GiB + 1 GiB at --scale 1. With the server stopped, its data directory is then backed
up by `coffre backup run` into a directory destination and by `restic backup` into a local restic
repository (both on the same file system as the vault), then 1 % more documents are added and both
back up again (incremental), then each restores its newest snapshot into an empty directory.
Times, MiB/s and peak RSS (wait4 rusage via /usr/bin/time -f %M) are printed with the ratios and
the goals of issue 12, and beside them the machine's own limits: sequential write with fsync
(dd conv=fsync), AES-256-GCM and SHA-256 (`openssl speed`).

Documents are stored as ciphertext, so neither tool can compress what it reads from the data
directory; the compressible half only matters for the upload path. The page cache is not dropped:
both tools read the same (warm) files. Runs coffre first, then restic, for each step.

Usage: bench/backup_vs_restic.py PATH/TO/coffre [--scale S] [--doc-mib N] [--tmp DIR]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import Vault  # noqa: E402

MIB = 1 << 20

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("coffre", nargs="?", default="build/coffre")
ap.add_argument("--scale", type=float, default=1.0, help="1 = 2 GiB random + 1 GiB text")
ap.add_argument("--doc-mib", type=float, default=1.0, help="size of one document (MiB)")
ap.add_argument("--tmp", default="/var/tmp", help="where the vault, repositories and restores go")
ap.add_argument("--restic", default=shutil.which("restic") or "/usr/bin/restic")
args = ap.parse_args()
B = os.path.abspath(args.coffre)
if not os.access(args.restic, os.X_OK):
    sys.exit("restic not found (scripts/install-deps installs Debian's restic)")
doc_size = int(args.doc_mib * MIB)
n_rand = max(1, round(2048 * args.scale / args.doc_mib))
n_text = max(1, round(1024 * args.scale / args.doc_mib))
n_more = max(1, round((n_rand + n_text) / 100))
tmp = tempfile.mkdtemp(prefix="coffre-vs-restic-", dir=args.tmp)


def timed(argv, env=None):
    """Runs argv under /usr/bin/time; returns (seconds, peak RSS in KiB, CPU seconds)."""
    t = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "maxrss=%M cpu=%U+%S"] + argv, capture_output=True, env=env)
    dt = time.monotonic() - t
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        sys.exit("%s failed (exit %d): %s" % (" ".join(argv[:3]), r.returncode, err[-2000:]))
    m = re.findall(r"maxrss=(\d+) cpu=([\d.]+)\+([\d.]+)", err)[-1]
    return dt, int(m[0]), float(m[1]) + float(m[2])


def tree_size(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs
               if not os.path.islink(os.path.join(d, f)))


def text_doc(i):
    line = b"invoice %08d line %d amount %d.%02d EUR net 30 days lorem ipsum dolor sit amet\n"
    out, k = [], 0
    total = 0
    while total < doc_size:
        s = line % (i, k, (i * 7919 + k * 31) % 100000, k % 100)
        out.append(s)
        total += len(s)
        k += 1
    return b"".join(out)[:doc_size]


def machine_limits():
    lim = {}
    f = os.path.join(tmp, "dd.bin")
    r = subprocess.run(["dd", "if=/dev/zero", "of=" + f, "bs=1M", "count=256", "conv=fsync"],
                       capture_output=True, text=True)
    m = re.search(r"copied, ([\d.,]+) s", r.stderr)
    if m:
        lim["disk write + fsync"] = 256 / float(m.group(1).replace(",", "."))
    os.unlink(f)
    for name, algo in (("AES-256-GCM", ["-evp", "aes-256-gcm"]), ("SHA-256", ["-evp", "sha256"])):
        r = subprocess.run(["openssl", "speed", "-seconds", "1", "-bytes", "16384"] + algo,
                           capture_output=True, text=True)
        # last line: "<algo>  <N>k" (kB/s, 1000 bytes)
        m = re.search(r"\s([\d.]+)k\s*$", r.stdout.strip())
        if m:
            lim[name + " (1 core, 16 KiB blocks)"] = float(m.group(1)) * 1000 / MIB
    return lim


def fmt_rss(kib):
    return "%.0f MiB" % (kib / 1024)


def main():
    print("scale %.3g: %d random + %d text documents of %.2f MiB (%.0f MiB), then %d more (1 %%)"
          % (args.scale, n_rand, n_text, args.doc_mib, (n_rand + n_text) * args.doc_mib, n_more))
    print("load average before: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    v = Vault(B, base=os.path.join(tmp, "a"))
    env = dict(os.environ)
    pw = os.path.join(tmp, "restic-password")
    with open(pw, "w") as f:
        f.write("bench-only password\n")
    env["RESTIC_PASSWORD_FILE"] = pw
    env["RESTIC_CACHE_DIR"] = os.path.join(tmp, "restic-cache")
    repo = os.path.join(tmp, "restic-repo")
    dest = os.path.join(tmp, "coffre-dest")
    res = {}
    try:
        v.start()
        t = time.monotonic()
        for i in range(n_rand):
            v.upload_ok(os.urandom(doc_size), name="r%d.pdf" % i)
        for i in range(n_text):
            v.upload_ok(text_doc(i), name="t%d.txt" % i)
        print("filled through the API in %.1f s" % (time.monotonic() - t))
        v.stop()
        subprocess.run([B, "backup", "init", "--data", v.data, "--to", dest], check=True, capture_output=True)
        subprocess.run([args.restic, "init", "--repo", repo], check=True, capture_output=True, env=env)
        size_full = tree_size(v.data)

        res["full", "coffre"] = timed([B, "backup", "run", "--data", v.data])
        res["full", "restic"] = timed([args.restic, "backup", "--repo", repo, "--quiet", v.data], env=env)

        v.start()
        for i in range(n_more):
            data = os.urandom(doc_size) if i % 3 != 2 else text_doc(100000 + i)
            v.upload_ok(data, name="n%d.pdf" % i)
        v.stop()
        size_inc = tree_size(v.data)
        res["incr", "coffre"] = timed([B, "backup", "run", "--data", v.data])
        res["incr", "restic"] = timed([args.restic, "backup", "--repo", repo, "--quiet", v.data], env=env)

        mk = os.path.join(tmp, "master.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), mk)
        res["restore", "coffre"] = timed([B, "restore", "--from", dest, "--data",
                                          os.path.join(tmp, "r-coffre", "vault"), "--master-key", mk])
        res["restore", "restic"] = timed([args.restic, "restore", "latest", "--repo", repo, "--target",
                                          os.path.join(tmp, "r-restic")], env=env)
        repo_sizes = (tree_size(dest), tree_size(repo))
        limits = machine_limits()
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print("data directory: %.1f MiB, after the 1 %%: %.1f MiB; repositories: coffre %.1f MiB, restic %.1f MiB"
          % (size_full / MIB, size_inc / MIB, repo_sizes[0] / MIB, repo_sizes[1] / MIB))
    print()
    print("%-12s %-8s %9s %10s %10s %9s" % ("step", "tool", "time", "rate", "peak RSS", "CPU"))
    for step, size in (("full", size_full), ("incr", None), ("restore", size_inc)):
        for tool in ("coffre", "restic"):
            dt, rss, cpu = res[step, tool]
            rate = "%.0f MiB/s" % (size / MIB / dt) if size else "-"
            print("%-12s %-8s %8.2fs %10s %10s %8.2fs" % (step, tool, dt, rate, fmt_rss(rss), cpu))
    print()
    full = res["full", "restic"][0] / res["full", "coffre"][0]
    incr = res["incr", "coffre"][0] / res["incr", "restic"][0]
    rest = res["restore", "restic"][0] / res["restore", "coffre"][0]
    rss = max(res[s, "coffre"][1] for s in ("full", "incr", "restore"))
    rss_r = max(res[s, "restic"][1] for s in ("full", "incr", "restore"))
    goals = (("full backup speed, coffre / restic", full, ">= 1.5", full >= 1.5),
             ("incremental time, coffre / restic", incr, "<= 0.5", incr <= 0.5),
             ("restore speed, coffre / restic", rest, ">= 1.5", rest >= 1.5),
             ("peak RSS (max of steps), coffre / restic", rss / rss_r, "<= 1", rss <= rss_r))
    for what, ratio, goal, ok in goals:
        print("%-42s %6.2f  goal %s: %s" % (what, ratio, goal, "met" if ok else "NOT met"))
    print()
    print("machine limits:")
    for k, val in limits.items():
        print("  %-36s %7.0f MiB/s" % (k, val))
    print("load average after: %s" % " ".join("%.2f" % x for x in os.getloadavg()))


main()
