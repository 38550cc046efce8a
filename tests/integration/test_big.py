#!/usr/bin/env python3
"""test_big.py: a document past 4 GiB streamed up and down with flat server memory.

The body (4 GiB + 1 MiB, so past both 2^31 and 2^32) comes from a generator (never a buffer of
that size); the download is hashed as it arrives and compared by SHA-256; Range reads that
straddle 2^31 and 2^32, start past them and end at the last byte check 64-bit offsets byte for
byte against the generator; the server's peak RSS (VmHWM) must stay under 64 MiB.
The vault's filesystem must have room for the object (checked first: too little space is a
failure with a clear message, not a skip). COFFRE_BIG_SIZE overrides the size, for a quick run
by hand; the meson test uses the default.
Usage: test_big.py PATH/TO/coffre
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time

from harness import TestFailure, Vault, check, exit_status, random_chunks, vm_hwm_kib

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
SIZE = int(os.environ.get("COFFRE_BIG_SIZE", str((4 << 30) + (1 << 20))))
CHUNK = 1 << 20  # random_chunks' default chunk
SPACE_MARGIN = 1 << 30  # room beyond the document itself (object overhead, logs, database)
RSS_LIMIT_KIB = 64 * 1024


def sanitized(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, timeout=30)
    return b"libasan" in r.stdout


def expected_bytes(offset, length, seed):
    """Bytes [offset, offset + length) of random_chunks(SIZE, seed), computed without the rest."""
    block = hashlib.shake_256(b"coffre-itest-%d" % seed).digest(CHUNK)
    out = bytearray()
    pos = offset
    end = min(offset + length, SIZE)
    while pos < end:
        i, within = divmod(pos, CHUNK)
        n = min(CHUNK, SIZE - i * CHUNK)
        chunk = i.to_bytes(8, "little") + block[8:n] if n >= 8 else block[:n]
        take = min(end - pos, n - within)
        out += chunk[within:within + take]
        pos += take
    return bytes(out)


def main():
    with Vault(BINARY, serve_args=["--max-body", str(SIZE + (1 << 20))]) as v:
        free = shutil.disk_usage(v.base).free
        if free < SIZE + SPACE_MARGIN:
            print("FAIL: %s has %.1f GiB free, the test needs %.1f GiB for a %.2f GiB document "
                  "(set TMPDIR to a larger filesystem)" % (v.base, free / 2**30, (SIZE + SPACE_MARGIN) / 2**30,
                                                            SIZE / 2**30))
            return 1
        try:
            return run(v)
        except (TestFailure, AssertionError) as e:
            print("FAIL: %s\n%s" % (e, v.log_tail(30)))
            return 1


def check_range(v, doc_id, first, last, seed):
    r = v.download(doc_id, headers={"Range": "bytes=%d-%d" % (first, last)})
    want = expected_bytes(first, last - first + 1, seed)
    check(r.status == 206, "Range %d-%d: status %d" % (first, last, r.status), r)
    check(r.header("Content-Range") == "bytes %d-%d/%d" % (first, last, SIZE),
          "Range %d-%d: Content-Range %r" % (first, last, r.header("Content-Range")))
    check(r.body == want, "Range %d-%d: %d bytes, not the bytes uploaded there" % (first, last, len(r.body)))


def run(v):
    v.start()
    pid = v.proc.pid
    print("server idle VmHWM %d KiB; document %d bytes" % (vm_hwm_kib(pid), SIZE))
    want = hashlib.sha256()
    for c in random_chunks(SIZE, seed=2):
        want.update(c)
    want = want.hexdigest()

    t0 = time.monotonic()
    resp, sent = v.stream_upload({"name": "big.bin", "class": "big-test"},
                                 random_chunks(SIZE, seed=2), length=SIZE)
    t_up = time.monotonic() - t0
    check(resp is not None, "no answer to the upload (%d bytes sent)\n%s" % (sent, v.log_tail()))
    check(resp.status == 201, "upload: status %d" % resp.status, resp, v.log_tail())
    meta = resp.json()
    check(meta["size"] == SIZE, "size %r" % meta["size"])
    check(meta["sha256"] == want, "server sha256 %s != %s" % (meta["sha256"], want))
    print("upload: %.1f MB/s, VmHWM %d KiB" % (SIZE / t_up / 1e6, vm_hwm_kib(pid)))

    t0 = time.monotonic()
    conn = v.connect(timeout=120)
    try:
        conn.request("GET", "/v1/documents/%s/content" % meta["id"], headers=v.auth_headers())
        r = conn.getresponse()
        check(r.status == 200, "download: status %d" % r.status)
        check(r.getheader("Content-Length") == str(SIZE), "Content-Length %r" % r.getheader("Content-Length"))
        h = hashlib.sha256()
        n = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    finally:
        conn.close()
    t_down = time.monotonic() - t0
    check(n == SIZE, "downloaded %d bytes of %d" % (n, SIZE))
    check(h.hexdigest() == want, "downloaded bytes differ (sha256 %s)" % h.hexdigest())
    print("download: %.1f MB/s" % (SIZE / t_down / 1e6))

    # 64-bit offsets: ranges across and past INT32_MAX / UINT32_MAX, and the last bytes
    marks = [m for m in (1 << 31, 1 << 32) if m + 4096 < SIZE]
    check(SIZE < (4 << 30) or len(marks) == 2, "the document does not reach past 2^32")
    for m in marks:
        check_range(v, meta["id"], m - 8, m + 7, seed=2)  # straddles the mark
        check_range(v, meta["id"], m + 1, m + 4096, seed=2)  # wholly past it
    check_range(v, meta["id"], SIZE - 16, SIZE - 1, seed=2)
    r = v.download(meta["id"], headers={"Range": "bytes=%d-" % (SIZE - 16)})
    check(r.status == 206 and r.body == expected_bytes(SIZE - 16, 16, 2),
          "open-ended Range at the end: %d, %d bytes" % (r.status, len(r.body)))
    r = v.download(meta["id"], headers={"Range": "bytes=%d-" % SIZE})
    check(r.status == 416, "Range starting at the size: status %d, expected 416" % r.status, r)

    peak = vm_hwm_kib(pid)
    print("server peak RSS (VmHWM): %d KiB" % peak)
    if sanitized(v.binary):
        print("AddressSanitizer build: its shadow memory and quarantine make RSS meaningless, "
              "the %d KiB limit is not checked" % RSS_LIMIT_KIB)
    else:
        check(peak < RSS_LIMIT_KIB, "server peak RSS %d KiB >= %d KiB" % (peak, RSS_LIMIT_KIB))
    check(v.stop() == 0, "SIGTERM did not exit 0")
    print("ok: %d-byte round trip, Range past %s, peak RSS %.1f MiB"
          % (SIZE, " and ".join("2^%d" % (m.bit_length() - 1) for m in marks), peak / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
