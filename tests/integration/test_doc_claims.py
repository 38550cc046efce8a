#!/usr/bin/env python3
"""test_doc_claims.py: what docs/api.md and docs/operations.md say about connections and headers,
checked on the real server over HTTPS.

- HSTS, nosniff, no-store and a request id are on every answer coffre gives (200, 400, 401,
  404, 405), and absent from libmicrohttpd's own 431 for an oversized header block: the
  exception the documents name. If that changes, the documents must change with it.
- GET answers keep the connection open; an answer given before an upload's body was read closes
  it (`Connection: close`, then end of stream).
Each test opens its own connections; none depends on another.
Usage: test_doc_claims.py PATH/TO/coffre
"""
import socket
import ssl
import sys

from harness import TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None  # one server, started in main(); tests share no data
HSTS = "max-age=63072000; includeSubDomains"


def raw_exchange(request, timeout=60):
    """Sends bytes on a new TLS connection; returns (head as text, body bytes, closed by server)."""
    ctx = V.ssl_context()
    with socket.create_connection(("127.0.0.1", V.port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            try:
                t.sendall(request)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the server may answer and close before it has read everything
            data = b""
            closed = False
            while True:
                try:
                    chunk = t.recv(65536)
                except (ConnectionResetError, ssl.SSLEOFError):
                    closed = True
                    break
                except socket.timeout:
                    break
                if not chunk:
                    closed = True
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body, closed


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def test_security_headers_on_coffre_answers():
    cases = [("GET", "/healthz", True, 200), ("GET", "/v1/documents?limit=+5", True, 400),
             ("GET", "/v1/documents", False, 401), ("GET", "/v1/no-such-thing", True, 404),
             ("PUT", "/v1/documents", True, 405)]
    for method, path, auth, status in cases:
        r = V.request(method, path, auth=auth, fresh=True)
        check(r.status == status, "%s %s: %d, expected %d" % (method, path, r.status, status))
        check(r.header("Strict-Transport-Security") == HSTS, "%s %s: HSTS %r" %
              (method, path, r.header("Strict-Transport-Security")))
        check(r.header("X-Content-Type-Options") == "nosniff", "%s %s: no nosniff" % (method, path))
        check(r.header("Cache-Control") == "no-store", "%s %s: no no-store" % (method, path))
        check(r.header("X-Request-Id"), "%s %s: no X-Request-Id" % (method, path))


def test_oversized_header_is_libmicrohttpd_431_without_hsts():
    # 300 KiB of header, over the 256 KiB connection buffer: libmicrohttpd answers by itself.
    req = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * (300 << 10) + b"\r\n\r\n"
    head, _, closed = raw_exchange(req)
    check(head.startswith("HTTP/1.1 431"), "oversized header: %r" % head[:60])
    check(header(head, "Strict-Transport-Security") is None,
          "431 now carries HSTS: update README.md, docs/api.md and docs/security.md (they name this exception)")
    check(closed, "the connection stayed open after the 431")


def test_get_keeps_the_connection():
    conn = V.connect()
    try:
        socks = []
        for path in ("/healthz", "/v1/documents?limit=1", "/healthz"):
            conn.request("GET", path, headers=V.auth_headers())
            r = conn.getresponse()
            r.read()
            check(r.status == 200, "GET %s: %d" % (path, r.status))
            check(not r.will_close, "GET %s closed the connection (Connection: %r)" % (path, r.getheader("Connection")))
            check(conn.sock is not None, "GET %s: no socket left" % path)
            socks.append(conn.sock)
        check(all(s is socks[0] for s in socks), "the GETs did not share one connection")
    finally:
        conn.close()


def test_early_answer_to_an_upload_closes():
    # A bad token with a body announced but never sent: 401 before the body, then the end.
    req = (b"POST /v1/documents?name=a.bin HTTP/1.1\r\nHost: localhost\r\n"
           b"Authorization: Bearer cfr_not-a-valid-token\r\nContent-Length: 1000000\r\n\r\n")
    head, body, closed = raw_exchange(req)
    check(head.startswith("HTTP/1.1 401"), "early answer: %r" % head[:60])
    check((header(head, "Connection") or "").lower() == "close", "401 to an unread body without Connection: close")
    check(b"unauthorized" in body, "401 body is not the problem: %r" % body[:80])
    check(closed, "the connection stayed open after an answer given before the body")


TESTS = [test_security_headers_on_coffre_answers, test_oversized_header_is_libmicrohttpd_431_without_hsts,
         test_get_keeps_the_connection, test_early_answer_to_an_upload_closes]


def main():
    global V
    with Vault(BINARY) as v:
        V = v
        v.start()
        rc = run_tests(TESTS)
        if rc:
            print(v.log_tail(40))
        try:
            check(v.stop() == 0, "SIGTERM did not exit 0")
        except TestFailure as e:
            print("FAIL: %s" % e)
            return 1
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
