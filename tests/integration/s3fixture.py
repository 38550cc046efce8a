"""s3fixture.py: a real S3 server for the integration tests.

Starts @20minutes/s3rver (tests/tools, installed by scripts/install-test-tools; run here when
missing) on 127.0.0.1 with a random port, a temporary directory and one key pair whose SigV4
signatures it verifies, and puts a small recording proxy of our own in front of it:

- every request is recorded (method, path with query, headers) so that tests can check what
  the client sent where s3rver ignores it (Object Lock, x-amz-checksum-sha256, If-None-Match
  on PUT);
- errors can be injected: the next N requests answered with a given status and S3 error code
  (or a given body), without reaching s3rver;
- hook: a test may hold a request (to kill the client while it waits on it);
- rewrite: a test may change the answers s3rver gives (the objects' Last-Modified, say);
- virtual-host style (BUCKET.s3.localhost:PORT, which curl resolves to 127.0.0.1): s3rver
  checks such a request's signature against the wrong path, so the proxy checks it itself
  (sigv4_signature(), our own implementation) and sends it on in path style, signed again;
- put_refuses_existing: answers a PUT with If-None-Match: * on an existing key with 412
  PreconditionFailed, as AWS S3 does (s3rver overwrites).

With S3Server(tls=True) the proxy speaks HTTPS with a certificate of a CA the test makes
(ca_file). The proxy forwards the Host header unchanged, so the signature s3rver checks is the client's.
Python 3 standard library only.
"""

import hashlib
import hmac
import http.client
import http.server
import os
import select
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(ROOT, "tests", "tools")
START_DEADLINE = 30.0

ACCESS_KEY = "AKIACOFFRETEST0001"
SECRET_KEY = "coffre-test-secret-4b1d9e0a7c2f"
BUCKET = "coffre-test"
OTHER_BUCKET = "coffre-other"


class _Proxy(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _handle(self):
        fx = self.server.fixture
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        headers = [(k, v) for k, v in self.headers.items()]
        if fx.hook:
            fx.hook(self.command, self.path)  # may block: a test holds a request there
        with fx.lock:
            fx.requests.append({"method": self.command, "path": self.path,
                                "headers": {k.lower(): v for k, v in headers}, "body_len": len(body)})
            inj = fx.injections.pop(0) if fx.injections else None
        if inj is None and fx.put_refuses_existing and self.command == "PUT" and \
                self.headers.get("If-None-Match") == "*" and "uploadId=" not in self.path:
            if fx.exists(self.path):
                inj = (412, _error_xml("PreconditionFailed", "At least one of the pre-conditions you "
                                       "specified did not hold"))
        if inj is not None:
            status, payload = inj
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        path = self.path
        host = self.headers.get("Host", "")
        vhost = host.split(":")[0]
        if vhost.endswith(".s3.localhost"):
            # s3rver checks a virtual-host request against the wrong path: check it here, then
            # send it on in path style, signed again for that path
            lower = {k.lower(): v for k, v in headers}
            auth = _parse_auth(lower.get("authorization", ""))
            if not auth or auth[0] != ACCESS_KEY or \
                    sigv4_signature(SECRET_KEY, self.command, path, lower, auth) != auth[5]:
                payload = _error_xml("SignatureDoesNotMatch", "The request signature we calculated does not "
                                     "match the signature you provided (checked by the test proxy).")
                self.send_response(403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                return
            rest = path[1:]
            path = "/" + vhost[:-len(".s3.localhost")] + ("/" + rest if rest and not rest.startswith("?") else rest)
            lower["host"] = "127.0.0.1:%d" % fx.backend_port
            sig = sigv4_signature(SECRET_KEY, self.command, path, lower, auth)
            a = lower["authorization"]
            lower["authorization"] = a[:a.rindex("Signature=") + len("Signature=")] + sig
            headers = [(k, lower[k.lower()]) if k.lower() in ("host", "authorization") else (k, v)
                       for k, v in headers]
        conn = http.client.HTTPConnection("127.0.0.1", fx.backend_port, timeout=60)
        try:
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                if k.lower() in ("expect", "connection", "transfer-encoding"):
                    continue
                conn.putheader(k, v)
            if "content-length" not in (k.lower() for k, _ in headers):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            rheaders = resp.getheaders()
            if fx.rewrite:
                rheaders, data = fx.rewrite(self.command, self.path, rheaders, data)
            self.send_response(resp.status)
            for k, v in rheaders:
                if k.lower() in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                    continue
                self.send_header(k, v)
            if self.command == "HEAD":
                cl = dict((k.lower(), v) for k, v in rheaders).get("content-length")
                self.send_header("Content-Length", cl if cl is not None else "0")
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _parse_auth(auth):
    """(access key, date, region, service, signed header names, signature) of a SigV4 header."""
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return None
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    ak, date, region, service, term = parts["Credential"].split("/")
    return ak, date, region, service, parts["SignedHeaders"].split(";"), parts["Signature"]


def sigv4_signature(secret, method, path, headers, auth):
    """The SigV4 signature of a request as S3 computes it (an implementation of our own, apart
    from libcurl's and s3rver's): path is the raw request target, headers a dict with lower-case
    names, auth the parsed Authorization header."""
    ak, date, region, service, signed, _ = auth
    target, _, query = path.partition("?")
    pairs = sorted(tuple(q.split("=", 1)) if "=" in q else (q, "") for q in query.split("&") if q)
    cquery = "&".join("%s=%s" % kv for kv in pairs)
    cheaders = "".join("%s:%s\n" % (h, " ".join(headers.get(h, "").split())) for h in signed)
    creq = "\n".join([method, target, cquery, cheaders, ";".join(signed), headers["x-amz-content-sha256"]])
    scope = "%s/%s/%s/aws4_request" % (date, region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", headers["x-amz-date"], scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request")
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()


def _error_xml(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<RequestId>0</RequestId></Error>' % (code, message)).encode()


class S3Server:
    """with S3Server() as s3: s3.endpoint, s3.env(), s3.requests, s3.inject(...)."""

    def __init__(self, tls=False):
        self.tls = tls
        self.tmp = tempfile.mkdtemp(prefix="coffre-s3-")
        self.lock = threading.Lock()
        self.requests = []
        self.injections = []
        self.put_refuses_existing = True
        self.rewrite = None  # fn(method, path, headers, body) -> (headers, body) on forwarded answers
        self.hook = None  # fn(method, path) called as each request arrives; may block it
        self.proc = None
        self.proxy = None
        self.backend_port = None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        run = os.path.join(TOOLS, "s3rver-run.js")
        if not os.path.isdir(os.path.join(TOOLS, "node_modules", "@20minutes", "s3rver")):
            subprocess.run([os.path.join(ROOT, "scripts", "install-test-tools")], check=True, timeout=600)
        store = os.path.join(self.tmp, "store")
        os.mkdir(store)
        # s3rver's continuation tokens use DES, which OpenSSL 3 keeps in its legacy provider
        self.proc = subprocess.Popen(["node", "--openssl-legacy-provider", run, store, ACCESS_KEY, SECRET_KEY,
                                      BUCKET, OTHER_BUCKET],
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(self.tmp, "s3rver.log"), "wb"),
                                     cwd=TOOLS)
        deadline = time.monotonic() + START_DEADLINE
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError("s3rver did not start: %s" % self.log())
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                c = os.read(self.proc.stdout.fileno(), 1)
                if not c:
                    raise RuntimeError("s3rver exited: %s" % self.log())
                line += c
        word, port = line.decode().split()
        assert word == "port"
        self.backend_port = int(port)
        self.proxy = _Proxy(("127.0.0.1", 0), _Handler)
        self.proxy.fixture = self
        scheme = "http"
        if self.tls:
            # HTTPS on the proxy, with a CA of the test's own: ca_file is what clients trust
            self.ca_file, cert, key = self._make_certs()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.proxy.socket = ctx.wrap_socket(self.proxy.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.port = self.proxy.server_address[1]
        self.endpoint = "%s://127.0.0.1:%d" % (scheme, self.port)
        self.backend_endpoint = "http://127.0.0.1:%d" % self.backend_port
        self.vhost_endpoint = "%s://s3.localhost:%d" % (scheme, self.port)  # BUCKET.s3.localhost

    def _make_certs(self):
        d = os.path.join(self.tmp, "tls")
        os.mkdir(d)
        ca_key, ca, key, csr, cert, ext = (os.path.join(d, n) for n in
                                           ("ca.key", "ca.pem", "key.pem", "req.csr", "cert.pem", "ext.cnf"))
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:s3.localhost,DNS:*.s3.localhost\n")

        def ossl(*args):
            subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
             "-out", ca, "-days", "2", "-subj", "/CN=coffre test S3 CA")
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
             "-subj", "/CN=127.0.0.1")
        ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
             "-extfile", ext)
        return ca, cert, key

    def log(self):
        try:
            with open(os.path.join(self.tmp, "s3rver.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def exists(self, path):
        """Whether the object of a path-style request path exists (asked of s3rver directly)."""
        p = urllib.parse.urlsplit(path).path
        conn = http.client.HTTPConnection("127.0.0.1", self.backend_port, timeout=30)
        try:
            conn.request("HEAD", p)  # anonymous: s3rver serves it, as to the bucket's owner
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def env(self, **over):
        """The environment of a client of this server (AWS_CA_BUNDLE set when it speaks TLS)."""
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("AWS_"):
                del e[k]
        e.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                  "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint,
                  "S3_BUCKET": BUCKET, "S3_PATH_STYLE": "1", "S3_BACKOFF_MS": "20"})
        if self.tls:
            e["AWS_CA_BUNDLE"] = self.ca_file
        e.update(over)
        return e

    def inject(self, status, code=None, count=1, body=None):
        payload = body if body is not None else _error_xml(code or "InternalError", "injected by the test")
        with self.lock:
            self.injections.extend([(status, payload)] * count)

    def take_requests(self):
        with self.lock:
            r, self.requests = self.requests, []
            return r

    def close(self):
        if self.proxy:
            self.proxy.shutdown()
            self.proxy.server_close()
            self.proxy = None
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)
