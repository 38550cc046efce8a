#!/usr/bin/env python3
"""test_s3.py: coffre's S3 client (src/s3, through tests/integration/s3_probe.c) against a real
S3 server (s3rver, which verifies SigV4 signatures) behind the recording proxy of s3fixture.py.

- put / get / head / delete round trip; head's size and ETag (the MD5 of the bytes)
- list v2 with continuation: 7 objects, 2 a page: every key once, 4 pages asked
- range reads, and a range past the end (ERANGE)
- multipart upload of 12 MiB in parts of 5 MiB: 3 parts, read back identical
- the headers sent: signed payload hash, Content-MD5 and x-amz-checksum-sha256 matching the
  bytes, If-None-Match: *, Object Lock mode and retain-until date (s3rver ignores these, so the
  proxy's record is what is checked)
- wrong secret: EACCES naming SignatureDoesNotMatch, the secret in no output; unknown access key
- unreachable endpoint: ECONNREFUSED after exactly the configured attempts
- injected 503 SlowDown: retried and then done; injected 403: not retried; 500 every time: gives
  up after the configured attempts
- a listing page that says it is truncated but gives no continuation token: EBADMSG, no loop
- virtual-host style (BUCKET.s3.localhost): put, range get, a listing of 2 pages, a wrong secret
  refused; requests carry the bucket in Host, not in the path (the fixture checks these
  signatures itself, s3rver cannot)
- the signature of a PUT verifies under the test's own SigV4 implementation
- HTTPS (a second server, with a CA of the test's own): trusted through AWS_CA_BUNDLE, in path
  and virtual-host style; without it the certificate is refused at once (EKEYREJECTED), not
  retried
Usage: test_s3.py PATH/TO/s3-probe
"""

import base64
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile

from harness import check, run_tests
from s3fixture import BUCKET, SECRET_KEY, S3Server, _parse_auth, sigv4_signature

PROBE = sys.argv[1] if len(sys.argv) > 1 else "build/tests/integration/s3-probe"
S3 = None
TMP = tempfile.mkdtemp(prefix="coffre-s3test-")


def probe(*args, env=None, **over):
    e = env if env is not None else S3.env(**over)
    return subprocess.run([os.path.abspath(PROBE)] + list(args), capture_output=True, timeout=120, env=e)


def out(r):
    return "exit %d\nstdout: %r\nstderr: %s" % (r.returncode, r.stdout[-500:], r.stderr.decode(errors="replace"))


def write(name, data):
    p = os.path.join(TMP, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def test_put_get_head_delete():
    data = os.urandom(100000)
    p = write("a", data)
    r = probe("put", "t1/obj", p)
    check(r.returncode == 0, "put failed", out(r))
    r = probe("get", "t1/obj")
    check(r.returncode == 0 and r.stdout == data, "get did not return the bytes put", out(r))
    r = probe("head", "t1/obj")
    check(r.returncode == 0, "head failed", out(r))
    lines = dict(l.split(" ", 1) for l in r.stdout.decode().splitlines())
    check(lines["size"] == "100000", "head size", lines)
    check(lines["etag"] == hashlib.md5(data).hexdigest(), "head ETag is not the MD5 of the bytes", lines)
    check(int(lines["mtime"]) > 1700000000, "head Last-Modified missing", lines)
    r = probe("delete", "t1/obj")
    check(r.returncode == 0, "delete failed", out(r))
    r = probe("get", "t1/obj")
    check(r.returncode == 1 and r.stderr.startswith(b"ENOENT") and b"NoSuchKey" in r.stderr,
          "a deleted object did not read as ENOENT/NoSuchKey", out(r))


def test_list_with_continuation():
    p = write("small", b"x" * 10)
    keys = ["t2/k%02d+ é" % i for i in range(7)]
    for k in keys:
        r = probe("put", k, p)
        check(r.returncode == 0, "put failed", out(r))
    probe("put", "t2x/outside", p)
    S3.take_requests()
    r = probe("list", "t2/", "2")
    check(r.returncode == 0, "list failed", out(r))
    listed = [l.rsplit(" ", 2)[0] for l in r.stdout.decode().splitlines()]
    check(listed == keys, "list with 2 keys a page did not give every key once, in order", listed)
    reqs = [q for q in S3.take_requests() if "list-type=2" in q["path"]]
    check(len(reqs) == 4, "7 keys at 2 a page should take 4 pages", [q["path"] for q in reqs])
    check(sum("continuation-token=" in q["path"] for q in reqs) == 3, "pages 2-4 must carry the token",
          [q["path"] for q in reqs])


def test_range_reads():
    data = bytes(range(256)) * 4096  # 1 MiB
    p = write("r", data)
    check(probe("put", "t3/r", p).returncode == 0, "put failed")
    # (s3rver answers "bytes=0-0" with the whole object, so no 1-byte range at offset 0 here)
    for off, ln in ((0, 2), (1, 1), (1, 100), (4095, 2), (len(data) - 10, 10), (123456, 500000)):
        r = probe("get", "t3/r", str(off), str(ln))
        check(r.returncode == 0 and r.stdout == data[off:off + ln], "range %d+%d read wrong" % (off, ln), out(r))
    rq = [q for q in S3.take_requests() if q["method"] == "GET"]
    check(rq[-1]["headers"].get("range") == "bytes=123456-623455", "Range header", rq[-1]["headers"])
    r = probe("get", "t3/r", str(len(data) + 5), "10")
    check(r.returncode == 1 and r.stderr.startswith(b"ERANGE"), "a range past the end must fail ERANGE", out(r))


def test_multipart_three_parts():
    data = os.urandom(12 * 1024 * 1024)
    p = write("big", data)
    S3.take_requests()
    r = probe("put", "t4/big", p, "--part-size", str(5 * 1024 * 1024))
    check(r.returncode == 0, "multipart put failed", out(r))
    reqs = S3.take_requests()
    parts = [q for q in reqs if q["method"] == "PUT" and "partNumber=" in q["path"]]
    check(len(parts) == 3, "12 MiB in 5 MiB parts must be 3 parts", [q["path"] for q in reqs])
    check([q["body_len"] for q in parts] == [5 << 20, 5 << 20, 2 << 20], "part sizes",
          [q["body_len"] for q in parts])
    check(any(q["method"] == "POST" and "uploads=" in q["path"] for q in reqs), "no CreateMultipartUpload")
    check(any(q["method"] == "POST" and "uploadId=" in q["path"] for q in reqs), "no CompleteMultipartUpload")
    for q in parts:
        check("content-md5" in q["headers"], "a part without Content-MD5", q["headers"])
    r = probe("get", "t4/big")
    check(r.returncode == 0 and hashlib.sha256(r.stdout).digest() == hashlib.sha256(data).digest(),
          "the multipart object does not read back identical", out(r))
    r = probe("put", "t4/bad", p, "--part-size", str(1024 * 1024))
    check(r.returncode == 1 and r.stderr.startswith(b"EINVAL"), "a part size under 5 MiB must be refused", out(r))


def test_headers_sent():
    data = b"headers test " * 1000
    p = write("h", data)
    S3.take_requests()
    r = probe("put", "t5/h", p, "--if-none-match", "--lock", "compliance", "1924992000")
    check(r.returncode == 0, "put failed", out(r))
    q = [q for q in S3.take_requests() if q["method"] == "PUT"][-1]
    h = q["headers"]
    check(h.get("content-md5") == base64.b64encode(hashlib.md5(data).digest()).decode(), "Content-MD5", h)
    check(h.get("x-amz-checksum-sha256") == base64.b64encode(hashlib.sha256(data).digest()).decode(),
          "x-amz-checksum-sha256", h)
    check(h.get("x-amz-content-sha256") == hashlib.sha256(data).hexdigest(), "signed payload hash", h)
    check(h.get("if-none-match") == "*", "If-None-Match", h)
    check(h.get("x-amz-object-lock-mode") == "COMPLIANCE", "lock mode", h)
    check(h.get("x-amz-object-lock-retain-until-date") == "2031-01-01T00:00:00Z", "retain-until", h)
    auth = h.get("authorization", "")
    check(auth.startswith("AWS4-HMAC-SHA256 Credential="), "not SigV4", auth)
    signed = re.search(r"SignedHeaders=([^,]+)", auth).group(1).split(";")
    for name in ("host", "x-amz-date", "x-amz-content-sha256", "content-md5", "x-amz-object-lock-mode",
                 "x-amz-object-lock-retain-until-date"):
        check(name in signed, "header %s not signed" % name, signed)
    # the signature, recomputed by an implementation of our own
    check(sigv4_signature(SECRET_KEY, q["method"], q["path"], h, _parse_auth(auth)) == _parse_auth(auth)[5],
          "the signature does not verify under the test's own SigV4", auth)
    # the same key again with If-None-Match: refused as an existing object (412 -> EEXIST)
    r = probe("put", "t5/h", p, "--if-none-match")
    check(r.returncode == 1 and r.stderr.startswith(b"EEXIST"), "If-None-Match on an existing key", out(r))


def test_wrong_credentials():
    p = write("w", b"secret test")
    r = probe("put", "t6/w", p, AWS_SECRET_ACCESS_KEY="not-the-secret-at-all")
    check(r.returncode == 1 and r.stderr.startswith(b"EACCES") and b"SignatureDoesNotMatch" in r.stderr,
          "a wrong secret must fail EACCES naming SignatureDoesNotMatch", out(r))
    check(b"after 1 attempt" in r.stderr, "a 403 must not be retried", out(r))
    check(b"not-the-secret-at-all" not in r.stderr + r.stdout, "the secret appears in the output", out(r))
    r = probe("get", "t6/w", AWS_ACCESS_KEY_ID="AKIAUNKNOWN0000")
    check(r.returncode == 1 and r.stderr.startswith(b"EACCES") and b"InvalidAccessKeyId" in r.stderr,
          "an unknown access key must fail EACCES", out(r))
    check(SECRET_KEY.encode() not in r.stderr, "the secret appears in the output", out(r))
    r = probe("get", "t6/w")
    check(r.returncode == 1 and r.stderr.startswith(b"ENOENT"), "the refused put must have stored nothing", out(r))


def test_unreachable_endpoint():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = probe("head", "x", AWS_ENDPOINT_URL="http://127.0.0.1:%d" % port, S3_ATTEMPTS="3")
    check(r.returncode == 1 and r.stderr.startswith(b"ECONNREFUSED"), "unreachable endpoint", out(r))
    check(b"after 3 attempts" in r.stderr, "not the configured number of attempts", out(r))


def test_server_errors_retried():
    p = write("e", b"retry me")
    S3.take_requests()
    S3.inject(503, "SlowDown", count=2)
    r = probe("put", "t7/e", p, S3_ATTEMPTS="4")
    check(r.returncode == 0, "two 503 then success must succeed", out(r))
    puts = [q for q in S3.take_requests() if q["method"] == "PUT"]
    check(len(puts) == 3, "two retries expected", len(puts))
    r = probe("get", "t7/e")
    check(r.returncode == 0 and r.stdout == b"retry me", "the retried put did not store", out(r))
    # a gateway's 502 with a page that is no S3 error: retried on the status alone
    S3.inject(502, body=b"<html><body>Bad Gateway</body></html>", count=1)
    r = probe("get", "t7/e", S3_ATTEMPTS="2")
    check(r.returncode == 0 and r.stdout == b"retry me", "a 502 must be retried", out(r))
    S3.inject(403, "AccessDenied", count=1)
    r = probe("get", "t7/e", S3_ATTEMPTS="4")
    check(r.returncode == 1 and r.stderr.startswith(b"EACCES") and b"after 1 attempt" in r.stderr,
          "a 403 must not be retried", out(r))
    S3.take_requests()
    S3.inject(500, "InternalError", count=10)
    r = probe("get", "t7/e", S3_ATTEMPTS="3")
    check(r.returncode == 1 and r.stderr.startswith(b"EIO") and b"after 3 attempts" in r.stderr,
          "500 every time must give up after 3 attempts", out(r))
    check(len(S3.take_requests()) == 3, "3 requests expected")
    with S3.lock:
        S3.injections.clear()


def test_malformed_listing():
    body = (b'<?xml version="1.0"?><ListBucketResult><IsTruncated>true</IsTruncated>'
            b'<Contents><Key>a</Key><Size>1</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified>'
            b'</Contents></ListBucketResult>')
    S3.inject(200, body=body)
    r = probe("list", "t8/")
    check(r.returncode == 1 and r.stderr.startswith(b"EBADMSG"), "a truncated page without a token", out(r))
    S3.inject(200, body=b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><ListBucketResult>'
              b'<IsTruncated>false</IsTruncated></ListBucketResult>')
    r = probe("list", "t8/")
    check(r.returncode == 1 and r.stderr.startswith(b"EBADMSG"), "a listing with a DTD must be refused", out(r))


def test_virtual_host_style():
    env = dict(S3_PATH_STYLE="0", AWS_ENDPOINT_URL=S3.vhost_endpoint)
    data = os.urandom(3000)
    p = write("v", data)
    S3.take_requests()
    for i in range(3):
        r = probe("put", "t9/v%d" % i, p, **env)
        check(r.returncode == 0, "virtual-host put failed", out(r))
    r = probe("get", "t9/v1", "10", "100", **env)
    check(r.returncode == 0 and r.stdout == data[10:110], "virtual-host range get", out(r))
    r = probe("list", "t9/", "2", **env)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 3, "virtual-host list of 2 pages", out(r))
    reqs = S3.take_requests()
    want = "%s.s3.localhost:%d" % (BUCKET, S3.port)
    check(all(q["headers"].get("host") == want for q in reqs), "not virtual-host requests", [q["headers"].get("host") for q in reqs])
    check(all(not q["path"].startswith("/" + BUCKET) for q in reqs), "the bucket is in the path", [q["path"] for q in reqs])
    r = probe("get", "t9/v1", AWS_SECRET_ACCESS_KEY="wrong", **env)
    check(r.returncode == 1 and r.stderr.startswith(b"EACCES") and b"SignatureDoesNotMatch" in r.stderr,
          "a wrong secret in virtual-host style", out(r))


def test_tls():
    with S3Server(tls=True) as t:
        data = os.urandom(70000)
        p = write("tls", data)
        r = probe("put", "t10/x", p, env=t.env())
        check(r.returncode == 0, "put over HTTPS with AWS_CA_BUNDLE", out(r))
        r = probe("get", "t10/x", env=t.env())
        check(r.returncode == 0 and r.stdout == data, "get over HTTPS", out(r))
        r = probe("get", "t10/x", "5", "10", env=t.env(S3_PATH_STYLE="0", AWS_ENDPOINT_URL=t.vhost_endpoint))
        check(r.returncode == 0 and r.stdout == data[5:15], "virtual-host over HTTPS (*.s3.localhost)", out(r))
        e = t.env()
        del e["AWS_CA_BUNDLE"]
        r = probe("get", "t10/x", env=dict(e, S3_ATTEMPTS="4"))
        check(r.returncode == 1 and r.stderr.startswith(b"EKEYREJECTED") and b"after 1 attempt" in r.stderr,
              "an untrusted certificate must be refused at once, not retried", out(r))


def main():
    global S3
    with S3Server() as s:
        S3 = s
        return run_tests([
            test_put_get_head_delete,
            test_list_with_continuation,
            test_range_reads,
            test_multipart_three_parts,
            test_headers_sent,
            test_wrong_credentials,
            test_unreachable_endpoint,
            test_server_errors_retried,
            test_malformed_listing,
            test_virtual_host_style,
            test_tls,
        ])


if __name__ == "__main__":
    sys.exit(main())
