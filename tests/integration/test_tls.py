#!/usr/bin/env python3
"""test_tls.py: the server's TLS face: versions, ciphers, certificate, HSTS, no plaintext.

TLS 1.0/1.1 refused (a control server proves the client really offers them), plaintext HTTP
gets no HTTP answer, TLS 1.2 and 1.3 work, TLS 1.2 only with ECDHE + AEAD suites, HSTS on
answers, curl refuses the self-signed certificate unless given it as CA.
Usage: test_tls.py PATH/TO/coffre
"""

import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import warnings

from harness import TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None


def s_client(port, *args, stdin=b"Q\n"):
    """openssl s_client against port; returns (exit status, combined output)."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "localhost", *args],
                       input=stdin, capture_output=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def negotiated(out):
    """(protocol, cipher) of an s_client run; cipher is None when no handshake completed (the
    SSL-Session block names the attempted protocol even on failure, so only trust it then)."""
    m = re.search(r"Cipher is (\S+)", out)
    cipher = m.group(1) if m and m.group(1) != "(NONE)" else None
    m = re.search(r"Protocol\s*:\s*(\S+)", out)
    return (m.group(1) if m and cipher else None), cipher


class OldTlsServer:
    """A control TLS server that only speaks TLS 1.1 (proves our client can offer it)."""

    def __init__(self, base):
        key = os.path.join(base, "ctl.key")
        cert = os.path.join(base, "ctl.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=localhost"], check=True,
                       capture_output=True, timeout=60)
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is the point here
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as c:
                c.recv(100)
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self.sock.close()


def test_old_tls_refused():
    old = OldTlsServer(V.base)
    try:
        rc, out = s_client(old.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        proto, cipher = negotiated(out)
        if proto != "TLSv1.1":
            raise TestFailure("control: this openssl cannot speak TLS 1.1, the check would prove "
                              "nothing (protocol %r)\n%s" % (proto, out[-800:]))
    finally:
        old.close()
    for flag in ("-tls1_1", "-tls1"):
        rc, out = s_client(V.port, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
        proto, cipher = negotiated(out)
        check(rc != 0 and cipher is None,
              "coffre accepted %s (rc %d, protocol %r)" % (flag, rc, proto), out[-800:])


def test_plaintext_http_refused():
    with socket.create_connection(("127.0.0.1", V.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        got = b""
        s.settimeout(5)
        try:
            while len(got) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    check(b"HTTP/" not in got and b"healthz" not in got,
          "plaintext request got an HTTP answer: %r" % got[:200])
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                        "http://127.0.0.1:%d/healthz" % V.port], capture_output=True, timeout=30)
    check(r.returncode != 0 or r.stdout in (b"000", b""), "curl over http got %r" % r.stdout)


def test_tls12_and_tls13_work():
    for ver, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        conn = V.connect(ctx=V.ssl_context(minimum=ver, maximum=ver))
        try:
            conn.connect()
            got = conn.sock.version()
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            check(r.status == 200, "%s: /healthz %d" % (name, r.status))
            check(got == name, "asked %s, got %s" % (name, got))
            check(r.getheader("Strict-Transport-Security"), "%s: no HSTS" % name)
        finally:
            conn.close()
    for flags, want in ((["--tlsv1.2", "--tls-max", "1.2"], b"200"), (["--tlsv1.3"], b"200")):
        r = V.curl(*flags, "-o", "/dev/null", "-w", "%{http_code}", V.url + "/healthz")
        check(r.returncode == 0 and r.stdout == want, "curl %s: rc %d %r" % (flags, r.returncode, r.stdout),
              r.stderr)


def test_tls12_cipher_is_ecdhe_aead():
    ctx = V.ssl_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
    conn = V.connect(ctx=ctx)
    try:
        conn.connect()
        name, proto, bits = conn.sock.cipher()
        conn.request("GET", "/healthz")
        check(conn.getresponse().status == 200, "/healthz over TLS 1.2 failed")
    finally:
        conn.close()
    check(proto == "TLSv1.2", "protocol %r" % proto)
    check(name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name),
          "TLS 1.2 cipher %s is not ECDHE with an AEAD" % name)
    # A client offering only weak suites must be turned away, not served.
    for weak in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256",
                 "ECDHE-RSA-AES128-SHA", "AES128-SHA", "AES256-GCM-SHA384", "DHE-RSA-AES128-SHA"):
        rc, out = s_client(V.port, "-tls1_2", "-cipher", weak + ":@SECLEVEL=0")
        _, got = negotiated(out)
        check(got is None, "coffre accepted TLS 1.2 with %s" % weak, out[-600:])


def test_certificate():
    r = subprocess.run(["openssl", "x509", "-in", V.cacert, "-noout", "-text"], capture_output=True,
                       timeout=30)
    text = r.stdout.decode()
    check(r.returncode == 0, "tls/cert.pem does not parse", r.stderr)
    check("prime256v1" in text or "P-256" in text, "certificate key is not ECDSA P-256")
    check("DNS:localhost" in text and "IP Address:127.0.0.1" in text,
          "certificate SAN lacks localhost / 127.0.0.1")
    r = V.curl("-o", "/dev/null", "-w", "%{http_code}", "https://localhost:%d/healthz" % V.port)
    check(r.returncode == 0 and r.stdout == b"200", "curl to https://localhost failed", r.stderr)
    st = os.stat(os.path.join(V.data, "tls", "key.pem"))
    check(st.st_mode & 0o077 == 0, "tls/key.pem is readable by others (mode %o)" % (st.st_mode & 0o777))


def test_curl_without_cacert_fails():
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "20", V.url + "/healthz"],
                       capture_output=True, timeout=60)
    check(r.returncode == 60, "curl without --cacert: exit %d, expected 60 (certificate refused)"
          % r.returncode, r.stderr)
    try:
        ctx = ssl.create_default_context()
        with socket.create_connection(("127.0.0.1", V.port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1"):
                pass
        raise TestFailure("python's default trust store accepted the self-signed certificate")
    except ssl.SSLCertVerificationError:
        pass


TESTS = [test_old_tls_refused, test_plaintext_http_refused, test_tls12_and_tls13_work,
         test_tls12_cipher_is_ecdhe_aead, test_certificate, test_curl_without_cacert_fails]


def main():
    global V
    with Vault(BINARY) as v:
        V = v
        v.start()
        rc = run_tests(TESTS)
        if rc:
            print(v.log_tail(40))
        check(v.stop() == 0, "SIGTERM did not exit 0")
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
