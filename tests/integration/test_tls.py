#!/usr/bin/env python3
"""test_tls.py: the server's TLS face: versions, ciphers, certificate, HSTS, no plaintext.

TLS 1.0/1.1 refused (a control server proves the client really offers them), plaintext HTTP
gets no HTTP answer, TLS 1.2 and 1.3 work, TLS 1.2 only with ECDHE + AEAD suites, HSTS on
answers, curl refuses the self-signed certificate unless given it as CA.
Every refusal check runs twice: against the vault's own ECDSA certificate and against a vault
made with `coffre init --tls-cert/--tls-key` and an RSA certificate made here by openssl, so that
the RSA suites are refused by the server's policy, not only for want of an RSA key. A control
server that accepts every suite, with both kinds of key, proves each weak suite is really offered.
TLS 1.3 must negotiate TLS_AES_256_GCM_SHA384 over X25519 (the server's order wins) and refuse a
client offering only CCM suites or only finite-field groups.
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
V = None  # the vault with its own ECDSA P-256 certificate
R = None  # a vault made with an RSA certificate given to coffre init

WEAK_TLS12 = ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256",
              "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384", "AES128-SHA", "AES256-GCM-SHA384",
              "DHE-RSA-AES128-SHA", "DHE-RSA-AES128-GCM-SHA256")


def make_cert(base, name, newkey):
    """A self-signed localhost/127.0.0.1 certificate made by openssl: (cert path, key path)."""
    key = os.path.join(base, name + ".key")
    cert = os.path.join(base, name + ".pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", newkey, "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, timeout=120)
    check(r.returncode == 0, "openssl req %s failed" % newkey, r.stderr)
    return cert, key


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


class WeakTls12Server:
    """A control TLS 1.2 server that accepts every suite, with an RSA and an ECDSA key (proves our
    client really offers each weak suite, so that coffre's refusal of it means something)."""

    def __init__(self, base):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        for name, newkey in (("weak-rsa", "rsa:2048"), ("weak-ec", "ec:" + ec_param_file(base))):
            ctx.load_cert_chain(*make_cert(base, name, newkey))
        dh = os.path.join(base, "dh.pem")
        r = subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                            "dh_param:ffdhe2048", "-out", dh], capture_output=True, timeout=60)
        check(r.returncode == 0, "openssl genpkey -genparam DH failed", r.stderr)
        ctx.load_dh_params(dh)
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
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


def ec_param_file(base):
    p = os.path.join(base, "p256.param")
    if not os.path.exists(p):
        r = subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-out", p], capture_output=True,
                           timeout=30)
        check(r.returncode == 0, "openssl ecparam failed", r.stderr)
    return p


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
    for vault, kind in ((V, "ECDSA"), (R, "RSA")):
        for flag in ("-tls1_1", "-tls1"):
            rc, out = s_client(vault.port, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
            proto, cipher = negotiated(out)
            check(rc != 0 and cipher is None,
                  "coffre (%s certificate) accepted %s (rc %d, protocol %r)" % (kind, flag, rc, proto), out[-800:])


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
    for vault, kind in ((V, "ECDSA"), (R, "RSA")):
        for ver, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            conn = vault.connect(ctx=vault.ssl_context(minimum=ver, maximum=ver))
            try:
                conn.connect()
                got = conn.sock.version()
                conn.request("GET", "/healthz")
                r = conn.getresponse()
                r.read()
                check(r.status == 200, "%s, %s certificate: /healthz %d" % (name, kind, r.status))
                check(got == name, "asked %s, got %s" % (name, got))
                check(r.getheader("Strict-Transport-Security"), "%s: no HSTS" % name)
            finally:
                conn.close()
        for flags, want in ((["--tlsv1.2", "--tls-max", "1.2"], b"200"), (["--tlsv1.3"], b"200")):
            r = vault.curl(*flags, "-o", "/dev/null", "-w", "%{http_code}", vault.url + "/healthz")
            check(r.returncode == 0 and r.stdout == want,
                  "curl %s (%s certificate): rc %d %r" % (flags, kind, r.returncode, r.stdout), r.stderr)


def test_tls12_cipher_is_ecdhe_aead():
    control = WeakTls12Server(V.base)
    try:
        for weak in WEAK_TLS12:
            rc, out = s_client(control.port, "-tls1_2", "-cipher", weak + ":@SECLEVEL=0")
            _, got = negotiated(out)
            if got != weak:
                raise TestFailure("control: this openssl did not negotiate %s with a server that accepts "
                                  "it (got %r): the refusal check would prove nothing\n%s" % (weak, got, out[-600:]))
    finally:
        control.close()
    for vault, kind, kx in ((V, "ECDSA", "ECDHE-ECDSA-"), (R, "RSA", "ECDHE-RSA-")):
        ctx = vault.ssl_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
        conn = vault.connect(ctx=ctx)
        try:
            conn.connect()
            name, proto, bits = conn.sock.cipher()
            conn.request("GET", "/healthz")
            check(conn.getresponse().status == 200, "/healthz over TLS 1.2 (%s certificate) failed" % kind)
        finally:
            conn.close()
        check(proto == "TLSv1.2", "protocol %r" % proto)
        check(name.startswith(kx) and ("GCM" in name or "CHACHA20" in name),
              "TLS 1.2 cipher %s with the %s certificate is not %s with an AEAD" % (name, kind, kx))
        # A client offering only weak suites must be turned away, not served.
        for weak in WEAK_TLS12:
            rc, out = s_client(vault.port, "-tls1_2", "-cipher", weak + ":@SECLEVEL=0")
            _, got = negotiated(out)
            check(got is None, "coffre (%s certificate) accepted TLS 1.2 with %s" % (kind, weak), out[-600:])


def test_tls13_negotiation():
    for vault, kind in ((V, "ECDSA"), (R, "RSA")):
        # whatever order the client prefers, the server's wins: AES-256-GCM over X25519
        for extra in ([], ["-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384",
                           "-groups", "P-256:P-384:X25519"]):
            rc, out = s_client(vault.port, "-tls1_3", *extra)
            m = re.search(r"New, (\S+), Cipher is (\S+)", out)  # the SSL-Session block may come later
            proto, cipher = (m.group(1), m.group(2)) if m else (None, None)
            check(rc == 0 and proto == "TLSv1.3", "TLS 1.3 (%s certificate, %r) failed: %r" % (kind, extra, proto),
                  out[-800:])
            check(cipher == "TLS_AES_256_GCM_SHA384", "TLS 1.3 (%s certificate, %r) negotiated %s"
                  % (kind, extra, cipher), out[-800:])
            m = re.search(r"(?:Server Temp Key|Negotiated TLS1\.3 group):\s*([A-Za-z0-9-]+)", out)
            check(m and m.group(1) == "X25519", "TLS 1.3 (%s certificate) key exchange %r, expected X25519"
                  % (kind, m and m.group(1)), out[-800:])
        for extra, why in ((["-ciphersuites", "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256"], "only CCM suites"),
                           (["-groups", "ffdhe2048:ffdhe3072"], "only finite-field groups")):
            rc, out = s_client(vault.port, "-tls1_3", *extra)
            _, cipher = negotiated(out)
            check(cipher is None, "coffre (%s certificate) accepted TLS 1.3 with %s (%s)" % (kind, why, cipher),
                  out[-600:])


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


def test_init_with_rsa_certificate():
    """coffre init --tls-cert/--tls-key installs the given pair (key 0600) and serves it; a half
    pair, an unreadable file or a key that is not the certificate's is refused, creating nothing."""
    given = open(os.path.join(R.base, "rsa.pem")).read()
    check(open(R.cacert).read() == given, "tls/cert.pem is not the certificate given to init")
    st = os.stat(os.path.join(R.data, "tls", "key.pem"))
    check(st.st_mode & 0o777 == 0o600, "tls/key.pem mode %o, expected 600" % (st.st_mode & 0o777))
    served = ssl.get_server_certificate(("127.0.0.1", R.port))
    check(ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(given),
          "the server does not present the certificate given to init")
    r = R.curl("-o", "/dev/null", "-w", "%{http_code}", R.url + "/healthz")
    check(r.returncode == 0 and r.stdout == b"200", "curl with the RSA certificate as CA failed", r.stderr)
    # one without the other is a usage error and creates nothing
    for args in (["--tls-cert", os.path.join(R.base, "rsa.pem")], ["--tls-key", os.path.join(R.base, "rsa.key")]):
        d = os.path.join(R.base, "half-pair")
        r = subprocess.run([BINARY, "init", "--data", d, *args], capture_output=True, timeout=60)
        check(r.returncode != 0, "init %r succeeded" % args)
        check(b"--tls-cert and --tls-key go together" in r.stderr, "no clear message for %r" % args, r.stderr)
        check(not os.path.exists(d), "init %r created %s" % (args, d))
    # a pair that cannot serve is refused before anything is created
    other_cert, other_key = make_cert(R.base, "other-rsa", "rsa:2048")
    cert, key = os.path.join(R.base, "rsa.pem"), os.path.join(R.base, "rsa.key")
    missing = os.path.join(R.base, "no-such-cert.pem")
    for c, k, words in ((missing, key, "cannot read %s" % missing),
                        (cert, other_key, "is not the key of the certificate"),
                        (cert, cert, "is not an unencrypted PEM private key"),
                        (key, key, "is not a PEM certificate")):
        d = os.path.join(R.base, "bad-pair")
        r = subprocess.run([BINARY, "init", "--data", d, "--tls-cert", c, "--tls-key", k], capture_output=True,
                           timeout=60)
        check(r.returncode == 1, "init with %s / %s exited %d, expected 1" % (c, k, r.returncode), r.stderr)
        check(words.encode() in r.stderr, "init with %s / %s: no %r in the message" % (c, k, words), r.stderr)
        check(not os.path.exists(d), "init with %s / %s left %s behind" % (c, k, d))


TESTS = [test_old_tls_refused, test_plaintext_http_refused, test_tls12_and_tls13_work,
         test_tls12_cipher_is_ecdhe_aead, test_tls13_negotiation, test_certificate,
         test_curl_without_cacert_fails, test_init_with_rsa_certificate]


def main():
    global V, R
    with Vault(BINARY) as v, Vault(BINARY, init=False) as rv:
        V, R = v, rv
        cert, key = make_cert(rv.base, "rsa", "rsa:2048")
        rv.init("--tls-cert", cert, "--tls-key", key)
        v.start()
        rv.start()
        rc = run_tests(TESTS)
        if rc:
            print(v.log_tail(40))
            print(rv.log_tail(40))
        check(v.stop() == 0, "SIGTERM did not exit 0")
        check(rv.stop() == 0, "SIGTERM (RSA vault) did not exit 0")
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
