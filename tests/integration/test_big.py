#!/usr/bin/env python3
"""test_big.py: a 2 GiB document streamed up and down with flat server memory.

The body comes from a generator (never a 2 GiB buffer); the download is hashed as it arrives
and compared by SHA-256; a Range read past the 2^31 mark checks 64-bit offsets; the server's
peak RSS (VmHWM) must stay under 64 MiB.
Usage: test_big.py PATH/TO/coffre
"""

import hashlib
import subprocess
import sys
import time

from harness import TestFailure, Vault, check, exit_status, random_chunks, vm_hwm_kib

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
SIZE = 2 << 30
RSS_LIMIT_KIB = 64 * 1024


def sanitized(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, timeout=30)
    return b"libasan" in r.stdout


def main():
    with Vault(BINARY, serve_args=["--max-body", str(SIZE + (1 << 20))]) as v:
        try:
            return run(v)
        except (TestFailure, AssertionError) as e:
            print("FAIL: %s\n%s" % (e, v.log_tail(30)))
            return 1


def run(v):
    v.start()
    pid = v.proc.pid
    print("server idle VmHWM %d KiB" % vm_hwm_kib(pid))
    want = hashlib.sha256()
    for c in random_chunks(SIZE, seed=2):
        want.update(c)
    want = want.hexdigest()
    tail = c[-16:]

    t0 = time.monotonic()
    resp, sent = v.stream_upload({"name": "big.bin", "class": "big-test"},
                                 random_chunks(SIZE, seed=2), length=SIZE)
    t_up = time.monotonic() - t0
    check(resp is not None, "no answer to the 2 GiB upload (%d bytes sent)\n%s" % (sent, v.log_tail()))
    check(resp.status == 201, "2 GiB upload: status %d" % resp.status, resp, v.log_tail())
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

    # 64-bit offsets: the size is exactly 2^31, so the last bytes sit past INT32_MAX.
    r = v.download(meta["id"], headers={"Range": "bytes=%d-" % (SIZE - 16)})
    check(r.status == 206 and r.body == tail, "Range at the end of 2 GiB: %d, %d bytes"
          % (r.status, len(r.body)))
    check(r.header("Content-Range") == "bytes %d-%d/%d" % (SIZE - 16, SIZE - 1, SIZE),
          "Content-Range %r" % r.header("Content-Range"))

    peak = vm_hwm_kib(pid)
    print("server peak RSS (VmHWM): %d KiB" % peak)
    if sanitized(v.binary):
        print("AddressSanitizer build: its shadow memory and quarantine make RSS meaningless, "
              "the %d KiB limit is not checked" % RSS_LIMIT_KIB)
    else:
        check(peak < RSS_LIMIT_KIB, "server peak RSS %d KiB >= %d KiB" % (peak, RSS_LIMIT_KIB))
    check(v.stop() == 0, "SIGTERM did not exit 0")
    print("ok: 2 GiB round trip, peak RSS %.1f MiB" % (peak / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
