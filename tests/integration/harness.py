"""harness.py: shared helpers for coffre's integration tests.

Makes a temporary vault with `coffre init`, starts `coffre serve` on a random port (read back
from --port-file), waits for /healthz with a bounded deadline, talks HTTPS to it trusting the
vault's own certificate, and always stops the server and removes the temporary directory.
Python 3 standard library only.
"""

import atexit
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import select
import shutil
import secrets
import signal
import socket
import struct
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

SKIP = 77  # meson's "skipped" exit status

START_DEADLINE = 30.0  # seconds for the server to answer /healthz
STOP_DEADLINE = 30.0  # seconds for the server to exit after SIGTERM


# Sanitizer reports found in the logs of every server this process ran (see exit_status()).
SANITIZER_FINDINGS = []
SANITIZER_MARKERS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:",
                     b"WARNING: ThreadSanitizer")


class TestFailure(AssertionError):
    pass


def check(cond, msg, *details):
    """Fails the current test with msg (and details) when cond is false."""
    if not cond:
        extra = "".join("\n    " + str(d) for d in details)
        raise TestFailure(msg + extra)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def _on_sigterm(signum, frame):
    # meson sends SIGTERM on timeout: turn it into an exception so that finally blocks run.
    raise SystemExit("terminated by signal %d" % signum)


signal.signal(signal.SIGTERM, _on_sigterm)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise TestFailure("response body is not JSON (%s): %r" % (e, self.body[:300]))

    def __repr__(self):
        return "<Response %d %s %r>" % (self.status, dict(self.headers), self.body[:200])


def expect_problem(resp, status, name):
    """Checks an RFC 9457 problem answer: status, content type, type URN, title/status/detail."""
    check(resp.status == status, "expected status %d, got %d" % (status, resp.status), resp)
    ctype = resp.header("Content-Type", "")
    check(ctype.split(";")[0].strip().lower() == "application/problem+json",
          "problem answer has Content-Type %r" % ctype, resp)
    doc = resp.json()
    check(isinstance(doc, dict), "problem body is not an object", resp)
    check(doc.get("type") == "urn:coffre:problem:" + name,
          "problem type %r, expected urn:coffre:problem:%s" % (doc.get("type"), name), resp)
    check(doc.get("status") == status, "problem status field %r" % doc.get("status"), resp)
    check(isinstance(doc.get("title"), str) and doc["title"], "problem title missing", resp)
    check(isinstance(doc.get("detail"), str), "problem detail missing", resp)
    check(resp.header("Strict-Transport-Security"), "no HSTS on an error answer", resp)
    return doc


def totp_code(secret_b32, t=None, step=30, digits=6):
    """RFC 6238 TOTP (HMAC-SHA-1) of a base32 secret at Unix time t (default: now)."""
    s = secret_b32.upper().replace(" ", "")
    key = base64.b32decode(s + "=" * (-len(s) % 8))
    counter = int((time.time() if t is None else t) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return "%0*d" % (digits, value)


ALL_SCOPES = ["documents:read", "documents:write", "audit:read", "witness", "accounts"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def list_files(root):
    """Sorted relative paths of the regular files under root (missing root: empty)."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            out.append(os.path.relpath(os.path.join(dirpath, f), root))
    return sorted(out)


def vm_hwm_kib(pid):
    """Peak resident set size of pid in KiB (VmHWM), or None if unknown."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# Classes without retention that the harness declares (see Vault.scratch_classes).
SCRATCH_CLASSES = (["scratch", "fill", "a", "batch", "power", "crash", "big-test", "bench", "bench-big", "growth"]
                   + ["t-%02d" % i for i in range(48)])


class Vault:
    """A temporary vault and its server. Use as a context manager."""

    def __init__(self, binary, base=None, serve_args=(), init=True, owner=True, scratch_classes=True):
        self.binary = os.path.abspath(binary)
        self.owns_base = base is None
        self.base = base or tempfile.mkdtemp(prefix="coffre-itest-")
        self.data = os.path.join(self.base, "vault")
        self.serve_args = list(serve_args)
        self.proc = None
        self.port = None
        self.run_dir = self.base  # port file and server log
        self.log_path = os.path.join(self.run_dir, "server.log")
        self.log_file = None
        self.runs = 0
        self._conn = None
        # Accounts: after the first start of a vault this object made, an owner is set up and
        # self.token becomes the owner's API token with every scope (owner=False: left to the test).
        self.auto_owner = owner
        self.needs_owner = False
        self.bootstrap_token = None
        self.owner_email = self.owner_password = self.totp_secret = None
        self.owner_id = self.owner_session = None
        self.recovery_codes = []
        self.log_base = 0  # audit entries the owner set-up added (see setup_owner)
        self.clock_offset = 0.0  # seconds the server's test clock was moved (shift_clock)
        self._users = 0
        # Retention: coffre refuses to delete a retained document and to take an unknown class.
        # Tests that are not about retention get classes without any (scratch, the default, and
        # the ones they name), declared in coffre.conf; scratch_classes=False keeps the shipped
        # defaults alone (test_lifecycle.py).
        self.scratch_classes = scratch_classes
        atexit.register(self.close)
        if init:
            self.init()

    # -- lifecycle --------------------------------------------------------------------------

    def init(self, *extra):
        r = subprocess.run([self.binary, "init", "--data", self.data, *extra],
                           capture_output=True, timeout=120)
        check(r.returncode == 0, "coffre init failed (exit %d)" % r.returncode,
              r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
        if self.scratch_classes:
            with open(os.path.join(self.data, "coffre.conf"), "a") as f:
                for name in SCRATCH_CLASSES:
                    f.write("\n[class %s]\nduration = 0d\nstart = ingest\nlock = governance\n"
                            "on_expiry = review\n" % name)
                f.write("\n[vault]\ndefault_class = scratch\n")
        with open(os.path.join(self.data, "bootstrap-token")) as f:
            content = f.read()
        check(content.endswith("\n") and content.count("\n") == 1 and len(content) > 16,
              "bootstrap-token is not one token line", repr(content[:8] + "..."))
        self.token = content.strip()
        self.bootstrap_token = self.token
        self.needs_owner = True
        self.cacert = os.path.join(self.data, "tls", "cert.pem")
        check(os.path.exists(self.cacert), "no tls/cert.pem after init")
        return r

    def start(self, *extra):
        """Starts coffre serve; returns once /healthz answers 200."""
        check(self.proc is None, "server already running")
        port_file = os.path.join(self.run_dir, "port")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(port_file)
        if self.log_file is None:
            self.log_file = open(self.log_path, "ab")
        self.runs += 1
        args = [self.binary, "serve", "--data", self.data, "--listen", "127.0.0.1:0",
                "--port-file", port_file, *self.serve_args, *extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file)
        deadline = time.monotonic() + START_DEADLINE
        self.port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise TestFailure("coffre serve exited with %d during start-up\n%s"
                                  % (rc, self.log_tail()))
            if self.port is None:
                with contextlib.suppress(OSError, ValueError):
                    with open(port_file) as f:
                        text = f.read().strip()
                    if text:
                        self.port = int(text)
            if self.port is not None:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if self.request("GET", "/healthz", auth=False, fresh=True).status == 200:
                        if self.needs_owner and self.auto_owner:
                            self.needs_owner = False
                            self.setup_owner()
                        return self
            time.sleep(0.02)  # polling interval, bounded by the deadline above
        self.kill()
        raise TestFailure("coffre serve did not answer /healthz within %ss\n%s"
                          % (START_DEADLINE, self.log_tail()))

    def stop(self, deadline=STOP_DEADLINE):
        """SIGTERM, wait for exit; returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        self.drop_connection()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.proc = None
        return rc

    def kill(self):
        """kill -9 the server."""
        if self.proc is None:
            return
        self.drop_connection()
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def close(self):
        try:
            if self.proc is not None:
                self.kill()
            self.collect_sanitizer_reports()
        finally:
            if self.log_file is not None:
                self.log_file.close()
                self.log_file = None
            if self.owns_base and os.path.isdir(self.base):
                shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def collect_sanitizer_reports(self):
        lines = self.log_text().splitlines()
        for i, line in enumerate(lines):
            if any(m in line for m in SANITIZER_MARKERS):
                SANITIZER_FINDINGS.append(b"\n".join(lines[i:i + 12]).decode(errors="replace"))

    def log_text(self):
        if self.log_file is not None:
            self.log_file.flush()
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def log_tail(self, n=40):
        lines = self.log_text().decode(errors="replace").splitlines()
        return "--- server log (last %d lines) ---\n%s" % (n, "\n".join(lines[-n:]))

    # -- HTTPS --------------------------------------------------------------------------

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def ssl_context(self, minimum=None, maximum=None, ciphers=None):
        ctx = ssl.create_default_context(cafile=self.cacert)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
        return ctx

    def connect(self, ctx=None, timeout=60, host="127.0.0.1"):
        return http.client.HTTPSConnection(host, self.port, context=ctx or self.ssl_context(),
                                           timeout=timeout)

    def drop_connection(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def auth_headers(self, token=None):
        return {"Authorization": "Bearer " + (token or self.token)}

    def request(self, method, path, body=None, headers=None, auth=True, fresh=False,
                timeout=60):
        """One request on a kept-alive connection (reconnects once if it was closed)."""
        h = dict(self.auth_headers() if auth else {})
        h.update(headers or {})
        if body is not None and not hasattr(body, "read") and not isinstance(body, (bytes, bytearray)):
            body = body.encode()
        for attempt in (0, 1):
            if fresh:
                conn = self.connect(timeout=timeout)
            else:
                if self._conn is None:
                    self._conn = self.connect(timeout=timeout)
                conn = self._conn
            try:
                conn.request(method, path, body=body, headers=h)
                r = conn.getresponse()
                data = r.read()
                resp = Response(r.status, r.getheaders(), data)
                if fresh or r.will_close:
                    conn.close()
                    if not fresh:
                        self._conn = None
                return resp
            except (ConnectionError, http.client.RemoteDisconnected, ssl.SSLEOFError,
                    http.client.CannotSendRequest, BrokenPipeError):
                conn.close()
                if not fresh:
                    self._conn = None
                if attempt == 1 or fresh:
                    raise

    def upload(self, data, name="doc.bin", cls=None, headers=None, token=None):
        q = {"name": name}
        if cls is not None:
            q["class"] = cls
        h = dict(headers or {})
        h["Content-Type"] = "application/octet-stream"
        if token is not None:
            h.update(self.auth_headers(token))
        return self.request("POST", "/v1/documents?" + urllib.parse.urlencode(q), body=data,
                            headers=h)

    def upload_ok(self, data, name="doc.bin", cls=None):
        r = self.upload(data, name=name, cls=cls)
        check(r.status == 201, "upload of %d bytes: status %d" % (len(data), r.status), r)
        return r.json()

    def download(self, doc_id, headers=None):
        return self.request("GET", "/v1/documents/%s/content" % doc_id, headers=headers)

    def list_all(self, query=None, limit=100):
        """Follows next_cursor; returns every document of the listing (newest first)."""
        q = dict(query or {})
        q["limit"] = str(limit)
        out = []
        for _ in range(100000):
            r = self.request("GET", "/v1/documents?" + urllib.parse.urlencode(q))
            check(r.status == 200, "listing: status %d" % r.status, r)
            page = r.json()
            out.extend(page["documents"])
            cur = page.get("next_cursor")
            if cur is None:
                return out
            q["cursor"] = cur
        raise TestFailure("listing never ended")

    def stream_upload(self, query, chunks, length=None, headers=None, token=None):
        """Uploads an iterator of byte chunks without holding them (chunked if length is None).

        Stops sending as soon as the server answers early (e.g. 413, 507) and returns
        (Response or None, bytes_sent)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        sock = self.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
        try:
            head = ["POST /v1/documents?%s HTTP/1.1" % urllib.parse.urlencode(query),
                    "Host: 127.0.0.1:%d" % self.port,
                    "Content-Type: application/octet-stream",
                    "Authorization: Bearer %s" % (token or self.token)]
            if length is None:
                head.append("Transfer-Encoding: chunked")
            else:
                head.append("Content-Length: %d" % length)
            for k, v in (headers or {}).items():
                head.append("%s: %s" % (k, v))
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            sent = 0
            try:
                for chunk in chunks:
                    readable, _, _ = select.select([sock], [], [], 0)
                    if readable or sock.pending():
                        break  # the server answered before the body ended
                    if length is None:
                        if chunk:
                            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    else:
                        sock.sendall(chunk)
                    sent += len(chunk)
                else:
                    if length is None:
                        sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass
            try:
                r = http.client.HTTPResponse(sock, method="POST")
                r.begin()
                return Response(r.status, r.getheaders(), r.read()), sent
            except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError):
                return None, sent
        finally:
            sock.close()

    # -- accounts --------------------------------------------------------------------------

    def json_request(self, method, path, obj=None, token=None, auth=True):
        """A request with a JSON body (obj, or none) as token (default self.token)."""
        h = {}
        body = None
        if obj is not None:
            body = json.dumps(obj)
            h["Content-Type"] = "application/json"
        if token is not None:
            h.update(self.auth_headers(token))
        return self.request(method, path, body=body, headers=h, auth=auth and token is None)

    def now(self):
        """The server's accounts clock (Unix seconds) as far as this object moved it."""
        return time.time() + self.clock_offset

    def shift_clock(self, seconds):
        """Moves the server's accounts clock (test builds only: /v1/_test/clock)."""
        r = self.request("POST", "/v1/_test/clock?shift_ms=%d" % int(seconds * 1000), auth=False)
        check(r.status == 200, "the test clock needs a build with -Dtest_hooks=true", r)
        self.clock_offset += seconds
        return r.json()["now_ms"] / 1000.0

    def has_test_clock(self):
        return self.request("POST", "/v1/_test/clock", auth=False).status == 200

    def totp_code(self, secret, t=None):
        """The TOTP code of secret at t (default: the server's clock)."""
        return totp_code(secret, self.now() if t is None else t)

    def login(self, email, password, totp=None, recovery_code=None):
        body = {"email": email, "password": password}
        if totp is not None:
            body["totp"] = totp
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        return self.json_request("POST", "/v1/auth/login", body, auth=False)

    def enrol(self, email, password):
        """Logs in a user who must enrol a second factor, enrols and confirms it, and logs in
        again with a code; returns (session token, secret, recovery codes)."""
        r = self.login(email, password)
        doc = expect_problem(r, 403, "totp-enrolment-required")
        enrol_token = doc["token"]
        r = self.json_request("POST", "/v1/users/me/totp", token=enrol_token)
        check(r.status == 200, "TOTP enrolment: status %d" % r.status, r)
        secret = r.json()["secret"]
        r = self.json_request("POST", "/v1/users/me/totp/confirm", {"code": self.totp_code(secret)},
                              token=enrol_token)
        check(r.status == 200, "TOTP confirmation: status %d" % r.status, r)
        codes = r.json()["recovery_codes"]
        # the confirmation used this step's code: the next step's is accepted (one step ahead)
        r = self.login(email, password, totp=self.totp_code(secret, self.now() + 30))
        check(r.status == 200, "login with a TOTP code: status %d" % r.status, r)
        return r.json()["token"], secret, codes

    def setup_owner(self):
        """bootstrap token -> owner -> login -> TOTP enrolment -> login with a code -> an API
        token with every scope, which becomes self.token."""
        self.owner_email = "owner-%s@example.com" % secrets.token_hex(4)
        self.owner_password = "owner-pass-" + secrets.token_hex(8)
        r = self.json_request("POST", "/v1/users", {"email": self.owner_email, "password": self.owner_password,
                                                    "role": "owner"}, token=self.bootstrap_token)
        check(r.status == 201, "creating the owner with the bootstrap token: status %d" % r.status, r)
        self.owner_id = r.json()["id"]
        self.owner_session, self.totp_secret, self.recovery_codes = self.enrol(self.owner_email,
                                                                               self.owner_password)
        r = self.json_request("POST", "/v1/tokens", {"name": "tests", "scopes": ALL_SCOPES},
                              token=self.owner_session)
        check(r.status == 201, "creating the owner's API token: status %d" % r.status, r)
        self.token = r.json()["token"]
        # the audit entries this set-up added after vault.init, for tests that count entries
        self.log_base = self.log_size() - 1
        self.drop_connection()  # leaves no connection open that a test does not know of
        return self.token

    def log_size(self):
        """The audit log's size, as the entries route names it for a range past the end."""
        r = self.request("GET", "/v1/audit/entries?start=0&end=999999999")
        check(r.status == 400, "entries past the end: status %d" % r.status, r)
        import re
        m = re.search(r"<= (\d+) \(the log's size\)", r.json().get("detail", ""))
        check(m is not None, "no log size in the answer", r)
        return int(m.group(1))

    def create_user(self, role, email=None, password=None, token=None, **fields):
        """Creates a user (as token, default the owner's API token); returns the API's JSON
        of the user plus "password"."""
        self._users += 1
        email = email or "%s-%d-%s@example.com" % (role, self._users, secrets.token_hex(3))
        password = password or "pass-%s-%s" % (role, secrets.token_hex(8))
        body = {"email": email, "password": password, "role": role}
        body.update(fields)
        r = self.json_request("POST", "/v1/users", body, token=token)
        check(r.status == 201, "creating a %s: status %d" % (role, r.status), r)
        u = r.json()
        u["password"] = password
        return u

    def session_for(self, user):
        """A full session of a user from create_user (enrolling a second factor when the role
        requires one); sets user["secret"] for those."""
        if user["role"] in ("owner", "admin", "operator"):
            tok, user["secret"], user["recovery_codes"] = self.enrol(user["email"], user["password"])
            return tok
        r = self.login(user["email"], user["password"])
        check(r.status == 200, "login of a %s: status %d" % (user["role"], r.status), r)
        return r.json()["token"]

    # -- CLI --------------------------------------------------------------------------

    def cli_env(self, token=None):
        env = dict(os.environ)
        env["COFFRE_URL"] = self.url
        env["COFFRE_TOKEN"] = token or self.token
        env["COFFRE_CACERT"] = self.cacert
        return env

    def cli(self, *args, env=None, timeout=120):
        return subprocess.run([self.binary, *args], capture_output=True, timeout=timeout,
                              env=env or self.cli_env())

    def curl(self, *args, timeout=120):
        return subprocess.run(["curl", "-sS", "--cacert", self.cacert, *args],
                              capture_output=True, timeout=timeout)

    # -- data dir --------------------------------------------------------------------------

    def tmp_files(self):
        return list_files(os.path.join(self.data, "tmp"))

    def object_files(self):
        return list_files(os.path.join(self.data, "objects"))


def random_chunks(total, seed=0, chunk=1 << 20):
    """Yields total bytes of reproducible pseudo-random data in chunks, without keeping them."""
    block = hashlib.shake_256(b"coffre-itest-%d" % seed).digest(chunk)
    i = 0
    left = total
    while left > 0:
        n = min(chunk, left)
        # Distinct chunks: the first 8 bytes carry the index, so no two segments repeat.
        yield i.to_bytes(8, "little") + block[8:n] if n >= 8 else block[:n]
        left -= n
        i += 1


def exit_status(rc):
    """rc, or 1 when a server reported a sanitizer error (printed here)."""
    for f in SANITIZER_FINDINGS:
        print("SANITIZER REPORT in the server log:\n" + f)
    return 1 if SANITIZER_FINDINGS else rc


def run_tests(tests, setup=None):
    """Runs test functions in order, reports each one, exits 0 if all pass, 1 otherwise."""
    failed = []
    only = os.environ.get("COFFRE_ITEST_ONLY")  # run only the tests whose name contains this
    if only:
        tests = [fn for fn in tests if only in fn.__name__]
        if not tests:  # a filter that leaves nothing is a mistake, not a pass
            print("COFFRE_ITEST_ONLY=%r matches no test of this file" % only)
            print("0 passed, 1 failed: no test ran")
            return 1
    for fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Exception:
            failed.append(fn.__name__)
            print("FAIL %s (%.2fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
        else:
            print("ok   %s (%.2fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
    print("%d passed, %d failed%s" % (len(tests) - len(failed), len(failed),
                                      (": " + ", ".join(failed)) if failed else ""))
    return 1 if failed else 0
