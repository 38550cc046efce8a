#!/usr/bin/env python3
"""bench/checkpoint_latency.py: time from an acknowledged action to a signed checkpoint covering it.

Usage: bench/checkpoint_latency.py PATH/TO/coffre [ROUNDS]
Starts a vault, and for each round uploads a document (its 201 means the document.create entry
is durable), finds that entry's index in the document's audit trail, then polls
GET /v1/audit/checkpoint every 2 ms until the checkpoint's size covers the index. Prints the
median, 90th percentile and maximum in milliseconds. A light background load of uploads runs
in a second thread so that the checkpointer works as it does under traffic.
"""

import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Vault  # noqa: E402


def checkpoint_size(v):
    r = v.request("GET", "/v1/audit/checkpoint")
    if r.status != 200:
        return -1
    return int(r.body.decode().split("\n")[1])


def main():
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    v = Vault(binary)
    stop = threading.Event()
    try:
        v.start()

        def background():
            bg = Vault.__new__(Vault)
            bg.__dict__.update(v.__dict__)
            bg._conn = None  # a connection of its own
            while not stop.is_set():
                bg.upload(b"x" * 1024, name="background.bin")
                time.sleep(0.01)

        t = threading.Thread(target=background, daemon=True)
        t.start()
        lat = []
        for i in range(rounds):
            doc = v.upload_ok(os.urandom(1024), name="probe-%d.bin" % i)
            t0 = time.monotonic()
            trail = v.request("GET", "/v1/documents/%s/audit" % doc["id"]).json()
            index = trail["entries"][0]["index"]
            while checkpoint_size(v) <= index:
                time.sleep(0.002)
            lat.append((time.monotonic() - t0) * 1000)
        stop.set()
        t.join(timeout=10)
        lat.sort()
        print("append -> covering checkpoint over %d rounds: median %.0f ms, p90 %.0f ms, max %.0f ms"
              % (rounds, statistics.median(lat), lat[int(len(lat) * 0.9) - 1], lat[-1]))
    finally:
        stop.set()
        v.close()


if __name__ == "__main__":
    main()
