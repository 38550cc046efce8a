#!/usr/bin/env python3
"""test_slow.py: clients that trickle bytes cannot hold the server's connections.

With small deadlines in coffre.conf: a TLS handshake or a header block sent one byte at a time
(each byte well within the idle timeout) is cut at header_timeout; a body that starts fast then
trickles is cut by the per-window rate check; and 500 such connections from several loopback
addresses (the per-address limit exists) are all cut at their deadline while normal requests
keep being answered.
Usage: test_slow.py PATH/TO/coffre
"""

import os
import re
import select
import socket
import ssl
import sys
import time

from harness import TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None
HEADER_TIMEOUT = 3
IDLE_TIMEOUT = 60    # far above the trickle interval: only the deadline can cut
WINDOW = 2
MIN_RATE = 20000
TRICKLE = 0.5        # seconds between two bytes of a trickle
GIVE_UP = 40         # seconds a trickle is kept up before the test declares it was never cut


def configure(v):
    conf = os.path.join(v.data, "coffre.conf")
    with open(conf) as f:
        text = f.read()
    settings = {"idle_timeout": IDLE_TIMEOUT, "header_timeout": HEADER_TIMEOUT, "body_rate_window": WINDOW,
                "body_min_rate": MIN_RATE, "max_connections": 700, "max_connections_per_ip": 120}
    for k, val in settings.items():
        text, n = re.subn(r"(?m)^%s = .*$" % k, "%s = %d" % (k, val), text)
        check(n == 1, "coffre.conf has no %s line" % k)
    with open(conf, "w") as f:
        f.write(text)


class Trickler:
    """One connection that sends a byte every TRICKLE seconds until the server closes it."""

    def __init__(self, src, tls_first=False, prefix=b""):
        self.sock = socket.socket()
        self.sock.bind((src, 0))
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", V.port))
        self.t0 = time.monotonic()
        if tls_first:
            ctx = V.ssl_context()
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.sock.setblocking(False)
        self.pending = prefix
        self.cut_at = None
        self.next_send = 0.0

    def step(self, now):
        """Sends the next byte when due; notices the close. True while still open."""
        if self.cut_at is not None:
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
            if r:
                data = self.sock.recv(4096)
                if not data:
                    raise ConnectionResetError
                if isinstance(self.sock, ssl.SSLSocket):
                    raise TestFailure("the server answered a request whose headers never ended: %r" % data[:200])
            if now >= self.next_send:
                if self.pending:
                    self.sock.send(self.pending)
                    self.pending = b""
                else:
                    self.sock.send(b"a")
                self.next_send = now + TRICKLE
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass
        except (ConnectionError, ssl.SSLError, OSError):
            self.cut_at = now
            self.sock.close()
            return False
        return True


def run_until_cut(tricklers, during=None):
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        now = time.monotonic()
        alive = [t for t in tricklers if t.step(now)]
        if not alive:
            return
        if during is not None:
            during()
        time.sleep(0.05)  # pacing of the trickle, not synchronisation: the loop ends on the close
    left = [t for t in tricklers if t.cut_at is None]
    for t in left:
        t.sock.close()
    raise TestFailure("%d of %d trickling connections still open after %ds (header_timeout is %ds)"
                      % (len(left), len(tricklers), GIVE_UP, HEADER_TIMEOUT))


def check_cut_at_deadline(tricklers):
    for t in tricklers:
        held = t.cut_at - t.t0
        check(held >= HEADER_TIMEOUT - 0.05, "a trickling connection was closed after %.2fs, before the %ds "
              "deadline (refused rather than cut?)" % (held, HEADER_TIMEOUT))


HEAD = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: "


def test_trickled_header_is_cut():
    t = Trickler("127.0.0.1", tls_first=True, prefix=HEAD)
    run_until_cut([t])
    check_cut_at_deadline([t])
    check(b"no complete request headers within the deadline" in V.log_text(), "no log line for the cut")


def test_trickled_tls_handshake_is_cut():
    # the first bytes of a TLS record, then one byte at a time: the handshake never completes
    t = Trickler("127.0.0.1", prefix=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    run_until_cut([t])
    check_cut_at_deadline([t])


def test_fast_start_then_trickled_body_is_cut():
    sock = socket.create_connection(("127.0.0.1", V.port), timeout=30)
    sock = V.ssl_context().wrap_socket(sock, server_hostname="localhost")
    total = 64 << 20
    sock.sendall(("POST /v1/documents?name=slow.bin HTTP/1.1\r\nHost: localhost\r\n"
                  "Authorization: Bearer %s\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Length: %d\r\n\r\n" % (V.token, total)).encode())
    sock.sendall(os.urandom(4 << 20))  # 4 MiB at once: on average since the start, minutes of credit
    sock.setblocking(False)
    t0 = time.monotonic()
    cut = False
    while time.monotonic() - t0 < GIVE_UP:
        try:
            r, _, _ = select.select([sock], [], [], TRICKLE)
            if r and not sock.recv(4096):
                cut = True
                break
            sock.send(b"x" * 100)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass
        except (ConnectionError, ssl.SSLError, OSError):
            cut = True
            break
    sock.close()
    check(cut, "a body trickling at 200 bytes/s after a fast start was not cut in %ds" % GIVE_UP)
    check(b"body slower than" in V.log_text(), "no log line for the slow body")
    check(re.search(rb'coffre_http_slow_connections_closed_total\{reason="body_rate"\} [1-9]',
                    V.request("GET", "/metrics").body), "/metrics does not count the slow body")
    docs = V.list_all()
    check(not any(d["name"] == "slow.bin" for d in docs), "the cut upload was stored")


def test_500_slow_connections_do_not_stop_normal_requests():
    sources = ["127.0.0.%d" % i for i in range(2, 7)]  # 100 per address, under the per-address limit
    tricklers = []
    for i in range(500):
        src = sources[i % len(sources)]
        if i % 5 == 0:
            tricklers.append(Trickler(src, tls_first=True, prefix=HEAD))
        else:
            tricklers.append(Trickler(src, prefix=b"\x16\x03\x01\x02\x00"))
    answered = []

    def normal_request():
        if len(answered) < 20:
            r = V.request("GET", "/healthz", auth=False, fresh=True, timeout=20)
            check(r.status == 200, "/healthz while 500 connections trickle: %d" % r.status)
            answered.append(r.status)

    run_until_cut(tricklers, during=normal_request)
    check_cut_at_deadline(tricklers)
    check(len(answered) >= 1, "no normal request was made while the slow connections were open")
    m = re.search(rb'coffre_http_slow_connections_closed_total\{reason="header_deadline"\} (\d+)',
                  V.request("GET", "/metrics").body)
    check(m is not None and int(m.group(1)) >= 500, "/metrics does not count the 500 cut connections",
          m.group(0) if m else None)
    doc = V.upload_ok(b"after the slow ones" * 100)
    r = V.download(doc["id"])
    check(r.status == 200 and r.body == b"after the slow ones" * 100, "download after the slow connections")


TESTS = [test_trickled_header_is_cut, test_trickled_tls_handshake_is_cut, test_fast_start_then_trickled_body_is_cut,
         test_500_slow_connections_do_not_stop_normal_requests]


def main():
    global V
    with Vault(BINARY) as v:
        V = v
        configure(v)
        v.start()
        rc = run_tests(TESTS)
        if rc:
            print(v.log_tail(30))
        check(v.stop() == 0, "SIGTERM did not exit 0")
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
