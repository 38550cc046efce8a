#!/usr/bin/env python3
"""test_slow_body.py: an upload body that trickles in is cut off; a slow but steady one is not.

Two uploads run side by side for longer than the server's grace period for slow bodies (30 s,
docs/operations.md): one sends 64 bytes a second (far under the 1024 bytes/s floor) and must
see its connection closed, with a warning in the log and nothing stored; the other sends
32 KiB a second and must be stored (201) and download byte-identical, so the cut-off is about
the rate, not about the time taken. The client paces its writes with sleeps: that is the
trickle itself, not a synchronisation; every wait for the server has a deadline.
Usage: test_slow_body.py PATH/TO/coffre
"""

import hashlib
import http.client
import socket
import ssl
import sys
import threading
import time
import urllib.parse

from harness import Response, TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
CUT_DEADLINE = 120.0  # seconds by which the trickling upload must have been cut off


def upload_paced(v, name, total, rate, stop_after, out):
    """Sends a total-byte body at about rate bytes/s in 16 pieces a second; stores in out what
    happened: ("answer", Response) or ("closed", seconds, bytes sent)."""
    data = hashlib.shake_256(name.encode()).digest(total)
    sock = socket.create_connection(("127.0.0.1", v.port), timeout=60)
    sock = v.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
    t0 = time.monotonic()
    sent = 0
    try:
        head = ("POST /v1/documents?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                % (urllib.parse.urlencode({"name": name}), v.token, total))
        sock.sendall(head.encode())
        piece = max(1, rate // 16)
        try:
            while sent < total:
                if time.monotonic() - t0 > stop_after:
                    out.append(("gave-up", time.monotonic() - t0, sent))
                    return
                n = min(piece, total - sent)
                sock.sendall(data[sent:sent + n])
                sent += n
                time.sleep(1 / 16)  # the pacing of the trickle
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            out.append(("closed", time.monotonic() - t0, sent))
            return
        try:
            r = http.client.HTTPResponse(sock, method="POST")
            r.begin()
            out.append(("answer", Response(r.status, r.getheaders(), r.read()), data))
        except (http.client.HTTPException, OSError, ssl.SSLError):
            out.append(("closed", time.monotonic() - t0, sent))
    finally:
        sock.close()


def test_trickle_cut_off_steady_kept():
    with Vault(BINARY) as v:
        v.start()
        slow, steady = [], []
        ts = threading.Thread(target=upload_paced, args=(v, "trickle.bin", 1 << 20, 64, CUT_DEADLINE, slow))
        tk = threading.Thread(target=upload_paced, args=(v, "steady.bin", 32768 * 40, 32768, CUT_DEADLINE, steady))
        ts.start()
        tk.start()
        ts.join(CUT_DEADLINE + 60)
        tk.join(CUT_DEADLINE + 60)
        check(not ts.is_alive() and not tk.is_alive(), "an upload thread did not end")

        check(slow and slow[0][0] == "closed",
              "the 64 bytes/s upload was not cut off within %ss: %s" % (CUT_DEADLINE, repr(slow and slow[0][:3])))
        print("    trickle cut after %.1fs and %d bytes" % (slow[0][1], slow[0][2]))
        check(b"body slower than" in v.log_text(), "no warning about the slow body in the log")

        check(steady and steady[0][0] == "answer", "the 32 KiB/s upload got no answer: %s" % repr(steady and steady[0][:3]))
        resp, data = steady[0][1], steady[0][2]
        check(resp.status == 201, "the 32 KiB/s upload: status %d" % resp.status, resp)
        doc = resp.json()
        check(v.download(doc["id"]).body == data, "the steady upload does not download byte-identical")

        names = [d["name"] for d in v.list_all()]
        check(names == ["steady.bin"], "stored documents: %r (the cut upload must store nothing)" % names)
        check(v.tmp_files() == [], "the cut upload left files in DIR/tmp: %r" % v.tmp_files())
        check(v.stop() == 0, "SIGTERM did not exit 0")


if __name__ == "__main__":
    sys.exit(exit_status(run_tests([test_trickle_cut_off_steady_kept])))
