#!/usr/bin/env python3
"""bench/disk_latency.py [DIR]: the disk's own limits that coffre's durability pays for.

Measures, in a temporary directory under DIR (default: the current directory), the median and
p90 latency of: a 256-byte append + fdatasync (an audit entry), a 100 KiB write + fdatasync of a
new file (a small object), a directory fsync after a rename, and an 8 KiB overwrite + fdatasync
(a SQLite WAL commit). Python 3 standard library only.
"""
import os
import statistics
import sys
import tempfile
import time

ROUNDS = int(os.environ.get("DISK_ROUNDS", "200"))


def timed(fn, rounds=ROUNDS):
    out = []
    for i in range(rounds):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1e3)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.9)]


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else "."
    with tempfile.TemporaryDirectory(dir=base, prefix="disk-latency-") as d:
        fd = os.open(os.path.join(d, "append"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        rec = b"x" * 256

        def append(_):
            os.write(fd, rec)
            os.fdatasync(fd)
        res = [("256 B append + fdatasync", timed(append))]
        os.close(fd)

        body = os.urandom(100 * 1024)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)

        def small(i):
            p = os.path.join(d, "o%d" % i)
            f = os.open(p + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(f, body)
            os.fdatasync(f)
            os.close(f)
            os.rename(p + ".tmp", p)
        res.append(("100 KiB new file + fdatasync", timed(small)))

        def dirsync(i):
            p = os.path.join(d, "r%d" % i)
            open(p, "wb").close()
            os.fsync(dfd)
        res.append(("create + directory fsync", timed(dirsync)))

        fd = os.open(os.path.join(d, "wal"), os.O_WRONLY | os.O_CREAT, 0o600)
        page = os.urandom(8192)

        def wal(i):
            os.pwrite(fd, page, (i % 16) * 8192)
            os.fdatasync(fd)
        res.append(("8 KiB overwrite + fdatasync", timed(wal)))
        os.close(fd)
        os.close(dfd)
    for name, (med, p90) in res:
        print("%-32s median %6.3f ms  p90 %6.3f ms" % (name, med, p90))
    print("result append_fdatasync_ms=%.4f" % res[0][1][0])


if __name__ == "__main__":
    main()
