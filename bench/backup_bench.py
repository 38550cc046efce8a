#!/usr/bin/env python3
"""backup_bench.py: times `coffre backup run` (full, then with nothing changed) and `coffre
restore` on a vault of 32 random and 16 text documents of 4 MiB (192 MiB), with peak RSS from
/usr/bin/time. Figures in docs/performance.md ("Backups").
Usage: bench/backup_bench.py PATH/TO/coffre [TMPDIR]
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import Vault  # noqa: E402

B = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/coffre")
tmp = tempfile.mkdtemp(prefix="coffre-backup-bench-", dir=sys.argv[2] if len(sys.argv) > 2 else "/var/tmp")


def timed(args):
    t = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, capture_output=True)
    if r.returncode != 0:
        sys.exit("%s failed: %s" % (args[1:3], r.stderr.decode(errors="replace")))
    return time.monotonic() - t, r.stderr.decode().strip().splitlines()[-1]


v = Vault(B, base=os.path.join(tmp, "a"))
try:
    v.start()
    for i in range(32):
        v.upload_ok(os.urandom(4 << 20), name="r%d" % i)
    line = b"invoice line %d amount EUR lorem ipsum dolor sit amet\n"
    for i in range(16):
        v.upload_ok(b"".join(line % (i * 100000 + k) for k in range(80000))[:4 << 20], name="t%d" % i)
    dest = os.path.join(tmp, "dest")
    subprocess.run([B, "backup", "init", "--data", v.data, "--to", dest], check=True, capture_output=True)
    t1, rss1 = timed([B, "backup", "run", "--data", v.data])
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(dest) for f in fs)
    t2, _ = timed([B, "backup", "run", "--data", v.data])
    mk = os.path.join(tmp, "master.key")
    shutil.copy(os.path.join(v.data, "keys", "master.key"), mk)
    v.stop()
    t3, rss3 = timed([B, "restore", "--from", dest, "--data", os.path.join(tmp, "r", "vault"), "--master-key", mk])
    print("192 MiB: full backup %.1f s (%.0f MiB/s, peak RSS %s KiB), repository %.1f MiB; unchanged %.2f s; "
          "restore %.1f s (%.0f MiB/s, peak RSS %s KiB)" % (t1, 192 / t1, rss1, size / 2**20, t2, t3, 192 / t3, rss3))
finally:
    v.close()
    shutil.rmtree(tmp, ignore_errors=True)
