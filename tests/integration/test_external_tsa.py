#!/usr/bin/env python3
"""test_external_tsa.py: seal timestamps from an external RFC 3161 TSA that is not coffre.

The TSA here is `openssl ts -reply` behind a small HTTP server of this test, with its own CA
made here with openssl; the vault is told of it by [tsa] url and ca_file.
- While it answers, seals are B-T through it: `openssl cms -verify` accepts the seal and
  `openssl ts -verify` accepts its token over the signature value with the test CA (and the
  vault's own CA does not).
- Stopped: uploads still get 201 with a B-B seal (seal_level "B-B", /metrics counts it queued);
  back: the background queue upgrades them to B-T (polled, with a deadline), the upgraded seal
  still verifies with openssl, and the trail has a second document.seal.
- A B-B seal left when the server stops is upgraded after the next start.
- The TSA wants HTTP basic authentication ([tsa] username, password_file): a request without
  the right credentials gets 401 and is not answered; the password never reaches the log.
- A hostile TSA (reply with another nonce, or over another imprint) is refused: the document
  stays B-B and the refusal is logged.
"""

import base64
import hashlib
import http.server
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from harness import Vault, check, exit_status, run_tests
from test_seal import children, seal_parts, tlv

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None
TSA = None
PASSWORD = "tsa-pass-" + os.urandom(6).hex()
UPGRADE_DEADLINE = 90  # seconds; [tsa] retry_max = 1 below keeps attempts a second or two apart


def openssl(*args, ok=True, cwd=None):
    r = subprocess.run(["openssl", *args], capture_output=True, timeout=60, cwd=cwd)
    if ok:
        check(r.returncode == 0, "openssl %s failed" % " ".join(args), r.stderr.decode(errors="replace"))
    return r


TSA_CONF = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
certs = {dir}/ca.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 2.25.311972003448195870716012412917461577
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class TestTsa:
    """An RFC 3161 TSA over HTTP made of openssl ts -reply and a test CA."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="coffre-ext-tsa-")
        d = self.dir
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=External TSA test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                cwd=d)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key",
                "-out", "tsa.csr", "-subj", "/CN=External test TSA", cwd=d)
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("extendedKeyUsage = critical, timeStamping\nkeyUsage = critical, digitalSignature\n")
        openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "tsa.pem", "-days", "30", "-extfile", "ext.cnf", cwd=d)
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("01\n")
        self.conf = os.path.join(d, "tsa.cnf")
        with open(self.conf, "w") as f:
            f.write(TSA_CONF.format(dir=d))
        self.mode = "ok"  # ok, bad-nonce, bad-imprint
        self.auth = "Basic " + base64.b64encode(("coffre:" + PASSWORD).encode()).decode()
        self.unauthorized = 0
        self.requests = 0
        self.lock = threading.Lock()
        self.server = None
        self.port = None

    def ca(self):
        return os.path.join(self.dir, "ca.pem")

    def answer(self, query):
        with self.lock:
            self.requests += 1
            n = self.requests
            mode = self.mode
        qp = os.path.join(self.dir, "q%d.tsq" % n)
        rp = os.path.join(self.dir, "r%d.tsr" % n)
        with open(qp, "wb") as f:
            f.write(query)
        if mode != "ok":
            # the hostile TSA answers another query: same imprint with another nonce, or another imprint
            _, req, _, _ = tlv(query)
            imprint = children(children(req)[1][1])[1][1]
            if mode == "bad-imprint":
                imprint = hashlib.sha256(b"something else" + imprint).digest()
            openssl("ts", "-query", "-digest", imprint.hex(), "-sha256", "-cert", "-out", qp)
        with self.lock:  # openssl ts -reply updates the serial file
            openssl("ts", "-reply", "-queryfile", qp, "-config", self.conf, "-out", rp)
        with open(rp, "rb") as f:
            return f.read()

    def start(self):
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.headers.get("Authorization") != tsa.auth:
                    with tsa.lock:
                        tsa.unauthorized += 1
                    self.send_error(401)
                    return
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self.send_error(415)
                    return
                reply = tsa.answer(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, fmt, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port or 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.server = None


# -- helpers --------------------------------------------------------------------------------

def path(name):
    return os.path.join(V.base, name)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)
    return path(name)


def level(doc):
    r = V.request("GET", "/v1/documents/" + doc)
    check(r.status == 200, "GET document: %d" % r.status, r)
    return r.json().get("seal_level")


def metric(name):
    r = V.request("GET", "/metrics")
    check(r.status == 200, "GET /metrics: %d" % r.status, r)
    m = re.search(r"^%s (\d+)$" % re.escape(name), r.body.decode(), re.M)
    check(m is not None, "/metrics has no %s" % name, r.body.decode()[-800:])
    return int(m.group(1))


def wait_until(what, cond, deadline=UPGRADE_DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)  # polling interval, bounded by the deadline
    check(False, "%s within %ss" % (what, deadline), V.log_tail())


def verify_seal(doc, data, want_token=True):
    """openssl cms -verify over the document; the token (if any) checked with openssl ts -verify
    against the external TSA's CA, and refused against the vault's own CA."""
    s = V.request("GET", "/v1/documents/%s/seal" % doc)
    check(s.status == 200, "GET seal: %d" % s.status, s)
    sp = write("seal.p7s", s.body)
    dp = write("doc.bin", data)
    openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", sp, "-content", dp, "-CAfile",
            os.path.join(V.data, "keys", "ca.pem"), "-out", os.devnull)
    _, sig, token = seal_parts(s.body)
    if not want_token:
        check(token is None, "a B-B seal carries a timestamp token")
        return s.body
    check(token is not None, "no signature-time-stamp token in a B-T seal")
    tp = write("token.der", token)
    sigp = write("sig.bin", sig)
    openssl("ts", "-verify", "-data", sigp, "-in", tp, "-token_in", "-CAfile", TSA.ca())
    r = openssl("ts", "-verify", "-data", sigp, "-in", tp, "-token_in", "-CAfile",
                os.path.join(V.data, "keys", "ca.pem"), ok=False)
    check(r.returncode != 0, "the token verifies against the vault's own CA: not from the external TSA")
    text = openssl("ts", "-reply", "-in", tp, "-token_in", "-text").stdout.decode()
    check("2.25.311972003448195870716012412917461577" in text, "the token does not carry the external TSA's policy", text)
    return s.body


def seal_entries(doc):
    trail = V.request("GET", "/v1/documents/%s/audit" % doc).json()["entries"]
    return [e for e in trail if '"action":"document.seal"' in e["entry"]]


# -- tests ----------------------------------------------------------------------------------

def test_bt_through_external_tsa():
    before = TSA.requests
    data = b"%PDF-1.7 facture externe 2026-001\n"
    r = V.upload(data, name="ext-1.pdf")
    check(r.status == 201, "upload: %d" % r.status, r)
    check(r.json().get("seal_level") == "B-T", "the 201 does not say B-T", r.json())
    doc = r.json()["id"]
    check(TSA.requests == before + 1, "the external TSA was not asked once (%d)" % (TSA.requests - before))
    check(TSA.unauthorized == 0, "the vault sent requests without the TSA's credentials")
    check(level(doc) == "B-T", "GET does not say B-T")
    verify_seal(doc, data)


def test_down_then_upgraded():
    TSA.stop()
    docs = []
    for i in range(3):
        data = os.urandom(1000 + i)
        r = V.upload(data, name="down-%d.pdf" % i)
        check(r.status == 201, "upload while the TSA is down: %d" % r.status, r)
        check(r.json().get("seal_level") == "B-B", "the 201 does not say B-B", r.json())
        docs.append((r.json()["id"], data))
    check(all(level(d) == "B-B" for d, _ in docs), "GET does not say B-B while the TSA is down")
    check(metric("coffre_seal_upgrade_queued") >= 1, "/metrics shows nothing queued")
    verify_seal(docs[0][0], docs[0][1], want_token=False)
    upgraded = metric("coffre_seal_upgraded_total")
    TSA.start()
    wait_until("the B-B seals upgraded to B-T", lambda: all(level(d) == "B-T" for d, _ in docs))
    for d, data in docs:
        verify_seal(d, data)
        entries = seal_entries(d)
        check(len(entries) == 2, "the trail does not have the B-B and the B-T document.seal", entries)
    check(metric("coffre_seal_upgraded_total") >= upgraded + 3, "/metrics does not count the upgrades")
    check(metric("coffre_seal_upgrade_queued") == 0, "/metrics still shows upgrades queued")


def test_upgraded_after_restart():
    TSA.stop()
    data = b"left B-B at stop"
    r = V.upload(data, name="restart.pdf")
    check(r.status == 201 and r.json().get("seal_level") == "B-B", "upload while the TSA is down", r)
    doc = r.json()["id"]
    check(V.stop() == 0, "SIGTERM exit status not 0")
    TSA.start()
    V.start()
    wait_until("the B-B seal of the earlier run upgraded", lambda: level(doc) == "B-T")
    verify_seal(doc, data)


def test_hostile_tsa_refused():
    for mode in ("bad-nonce", "bad-imprint"):
        TSA.mode = mode
        log0 = len(V.log_text())
        data = ("hostile " + mode).encode()
        r = V.upload(data, name="hostile.pdf")
        check(r.status == 201, "upload with a hostile TSA: %d" % r.status, r)
        check(r.json().get("seal_level") == "B-B", "a %s reply was accepted" % mode, r.json())
        doc = r.json()["id"]
        # a few upgrade attempts, each refused
        f0 = metric("coffre_seal_timestamp_failures_total")
        wait_until("upgrade attempts against the hostile TSA",
                   lambda: metric("coffre_seal_timestamp_failures_total") >= f0 + 2)
        check(level(doc) == "B-B", "a %s reply upgraded the seal" % mode)
        verify_seal(doc, data, want_token=False)
        logged = V.log_text()[log0:].decode(errors="replace")
        check("external TSA: no timestamp" in logged and "seal upgrade of document" in logged,
              "the refusal is not logged", logged[-2000:])
        TSA.mode = "ok"
        wait_until("the seal upgraded once the TSA is honest", lambda: level(doc) == "B-T")
        verify_seal(doc, data)


def test_password_not_logged():
    check(PASSWORD.encode() not in V.log_text(), "the TSA password is in the server log")


def test_wrong_password_refused():
    """A wrong password: the TSA refuses (401), the document stays B-B until the right one is set."""
    right = TSA.auth
    TSA.auth = "Basic " + base64.b64encode(b"coffre:another").decode()
    try:
        u0 = TSA.unauthorized
        r = V.upload(b"wrong password", name="auth.pdf")
        check(r.status == 201 and r.json().get("seal_level") == "B-B", "a 401 of the TSA gave B-T", r)
        check(TSA.unauthorized > u0, "the TSA saw no refused request")
    finally:
        TSA.auth = right
    doc = r.json()["id"]
    wait_until("the seal upgraded once the TSA accepts the password", lambda: level(doc) == "B-T")


def main():
    global V, TSA
    TSA = TestTsa()
    TSA.start()
    with Vault(BINARY) as v:
        V = v
        pwf = os.path.join(v.base, "tsa-password")
        with open(pwf, "w") as f:
            f.write(PASSWORD + "\n")
        conf = os.path.join(v.data, "coffre.conf")
        text = open(conf).read()
        with open(conf, "w") as f:
            f.write(text.replace("[tsa]\n", "[tsa]\nurl = http://127.0.0.1:%d/tsa\nca_file = %s\n"
                                 "timeout = 5\nretry_max = 1\nusername = coffre\npassword_file = %s\n"
                                 % (TSA.port, TSA.ca(), pwf), 1))
        v.start()
        rc = run_tests([test_bt_through_external_tsa, test_down_then_upgraded, test_upgraded_after_restart,
                        test_hostile_tsa_refused, test_wrong_password_refused, test_password_not_logged])
        if v.stop() != 0:
            print("server: SIGTERM exit status not 0")
            rc = 1
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
