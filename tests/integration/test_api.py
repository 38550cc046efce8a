#!/usr/bin/env python3
"""test_api.py: the documents API end to end over real HTTPS, with curl and the coffre CLI.

Round trips of edge sizes, metadata and paged/filtered listing, Range requests,
Content-Disposition, every error answer of the contract, encryption at rest, the bootstrap
token file mode, secret-free logs, /metrics counters and SIGTERM during an upload.
Usage: test_api.py PATH/TO/coffre
"""

import datetime
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import threading
import urllib.parse

from harness import (SCRATCH_CLASSES, TestFailure, Vault, check, exit_status, expect_problem, random_chunks,
                     run_tests, sha256_hex)

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
MAX_BODY = 4 * 1024 * 1024
SIZES = [0, 1, 65536, 65537, 3 * 1024 * 1024]

V = None  # the shared vault, started in main()


_CLASSES = iter(c for c in SCRATCH_CLASSES if c.startswith("t-"))


def new_class(prefix="t"):
    """A class of its own (one the harness declares), so that a test's listing is not disturbed
    by the others."""
    return next(_CLASSES)


def parse_time(s):
    check(isinstance(s, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", s),
          "not an RFC 3339 date-time: %r" % (s,))
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def rfc3339(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_meta(meta, data, name, cls):
    for k in ("id", "name", "class", "size", "sha256", "created_at"):
        check(k in meta, "metadata lacks %r" % k, meta)
    check(meta["name"] == name, "name %r != %r" % (meta["name"], name))
    check(meta["class"] == cls, "class %r != %r" % (meta["class"], cls))
    check(meta["size"] == len(data), "size %r != %d" % (meta["size"], len(data)))
    check(meta["sha256"] == sha256_hex(data), "sha256 %r is not the content's" % meta["sha256"])
    check(isinstance(meta["id"], str) and re.match(r"^[A-Za-z0-9_-]{8,128}$", meta["id"]),
          "id %r is not URL-safe" % (meta["id"],))
    parse_time(meta["created_at"])


def write_tmp(data, name="f.bin"):
    path = os.path.join(V.base, "%s-%s" % (secrets.token_hex(4), name))
    with open(path, "wb") as f:
        f.write(data)
    return path


def data_of_size(n):
    return b"".join(random_chunks(n, seed=n)) if n else b""


# -- round trips -------------------------------------------------------------------------


def test_roundtrip_curl():
    cls = new_class("curl")
    for n in SIZES:
        data = data_of_size(n)
        src = write_tmp(data)
        hdr = src + ".hdr"
        out = src + ".out"
        url = V.url + "/v1/documents?" + urllib.parse.urlencode({"name": "c%d.bin" % n, "class": cls})
        r = V.curl("-X", "POST", "-H", "Authorization: Bearer " + V.token,
                   "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + src,
                   "-D", hdr, "-o", out, "-w", "%{http_code}", url)
        check(r.returncode == 0 and r.stdout == b"201", "curl upload of %d bytes: rc %d code %r"
              % (n, r.returncode, r.stdout), r.stderr)
        with open(out, "rb") as f:
            meta = json.loads(f.read())
        check_meta(meta, data, "c%d.bin" % n, cls)
        with open(hdr, "rb") as f:
            headers = f.read().decode()
        check(re.search(r"(?im)^location: /v1/documents/%s\r?$" % re.escape(meta["id"]), headers),
              "no Location: /v1/documents/%s" % meta["id"], headers)
        r = V.curl("-H", "Authorization: Bearer " + V.token, "-D", hdr, "-o", out,
                   "-w", "%{http_code}", V.url + "/v1/documents/%s/content" % meta["id"])
        check(r.returncode == 0 and r.stdout == b"200", "curl download: rc %d code %r"
              % (r.returncode, r.stdout), r.stderr)
        with open(out, "rb") as f:
            got = f.read()
        check(got == data, "downloaded %d bytes differ from the %d uploaded" % (len(got), n))
        with open(hdr, "rb") as f:
            headers = f.read().decode()
        check(re.search(r'(?im)^etag: "%s"\r?$' % meta["sha256"], headers), "ETag is not the sha256",
              headers)
        check(re.search(r"(?im)^accept-ranges: bytes\r?$", headers), "no Accept-Ranges: bytes", headers)


def test_roundtrip_cli():
    cls = new_class("cli")
    for n in SIZES:
        data = data_of_size(n)
        src = write_tmp(data, "cli%d.bin" % n)
        r = V.cli("put", src, "--class", cls, "--json")
        check(r.returncode == 0, "coffre put (%d bytes): exit %d" % (n, r.returncode), r.stderr)
        lines = [l for l in r.stdout.decode().splitlines() if l.strip()]
        check(len(lines) == 1, "put --json printed %d lines" % len(lines), r.stdout)
        meta = json.loads(lines[0])
        check_meta(meta, data, os.path.basename(src), cls)
        out = src + ".out"
        r = V.cli("get", meta["id"], "-o", out)
        check(r.returncode == 0, "coffre get: exit %d" % r.returncode, r.stderr)
        with open(out, "rb") as f:
            check(f.read() == data, "coffre get wrote other bytes (%d uploaded)" % n)
    # Several files at once: one JSON line each, in order.
    files = [write_tmp(b"multi %d" % i, "m%d.txt" % i) for i in range(3)]
    r = V.cli("put", *files, "--class", cls, "--json")
    check(r.returncode == 0, "put of 3 files: exit %d" % r.returncode, r.stderr)
    metas = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    check([m["name"] for m in metas] == [os.path.basename(f) for f in files],
          "put of 3 files printed %r" % [m.get("name") for m in metas])
    # ls shows them; rm removes one.
    r = V.cli("ls", "--json")
    check(r.returncode == 0, "coffre ls --json: exit %d" % r.returncode, r.stderr)
    check(metas[0]["id"] in r.stdout.decode(), "ls --json does not show %s" % metas[0]["id"])
    r = V.cli("ls")
    check(r.returncode == 0 and metas[1]["id"] in r.stdout.decode(), "coffre ls does not show it",
          r.stdout[:500])
    r = V.cli("rm", metas[0]["id"])
    check(r.returncode == 0, "coffre rm: exit %d" % r.returncode, r.stderr)
    check(V.request("GET", "/v1/documents/" + metas[0]["id"]).status == 410, "rm did not delete")


def test_cli_exit_codes():
    r = V.cli("get")
    check(r.returncode == 2, "coffre get without ID: exit %d, expected 2 (usage)" % r.returncode)
    r = V.cli("frobnicate")
    check(r.returncode == 2, "unknown command: exit %d, expected 2" % r.returncode)
    meta = V.upload_ok(b"x", cls=new_class())
    V.request("DELETE", "/v1/documents/" + meta["id"])
    r = V.cli("get", meta["id"], "-o", os.path.join(V.base, "gone.out"))
    check(r.returncode == 1, "get of a deleted document: exit %d, expected 1" % r.returncode)
    r = V.cli("ls", env=V.cli_env(token="not-the-token-" + secrets.token_hex(8)))
    check(r.returncode == 1, "ls with a bad token: exit %d, expected 1" % r.returncode)
    r = V.cli("put", os.path.join(V.base, "does-not-exist"))
    check(r.returncode in (1, 2), "put of a missing file: exit %d" % r.returncode)


def test_cli_get_detects_wrong_bytes():
    """A server that sends bytes other than the announced sha256: coffre get exits 3."""
    import http.server

    good = b"the real invoice"
    doc_id = "0123456789abcdef0123456789abcdef"
    meta = {"id": doc_id, "name": "x.pdf", "class": "accounting-10y", "size": len(good),
            "sha256": sha256_hex(good), "created_at": "2024-01-01T00:00:00Z"}
    bad = b"the fake invoice"  # same length, other bytes

    class Liar(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path.endswith("/content"):
                body, ctype = bad, "application/octet-stream"
                etag = '"%s"' % meta["sha256"]
            else:
                body, ctype, etag = json.dumps(meta).encode(), "application/json", None
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(V.data, "tls", "cert.pem"), os.path.join(V.data, "tls", "key.pem"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        env = V.cli_env()
        env["COFFRE_URL"] = "https://127.0.0.1:%d" % srv.server_address[1]
        out = os.path.join(V.base, "liar.out")
        r = V.cli("get", doc_id, "-o", out, env=env)
        check(r.returncode == 3, "coffre get of mismatching bytes: exit %d, expected 3"
              % r.returncode, r.stderr)
    finally:
        srv.shutdown()
        srv.server_close()


# -- metadata and listing ----------------------------------------------------------------


def test_metadata_and_default_class():
    data = b"%PDF-1.7 facture"
    r = V.upload(data, name="facture.pdf")
    check(r.status == 201, "upload without class: %d" % r.status, r)
    meta = r.json()
    # the harness's default class (the shipped one, accounting-10y, is test_lifecycle's)
    check_meta(meta, data, "facture.pdf", "scratch")
    check(r.header("Location") == "/v1/documents/" + meta["id"], "Location %r" % r.header("Location"))
    check(r.header("Content-Type", "").startswith("application/json"), "201 is not JSON")
    g = V.request("GET", "/v1/documents/" + meta["id"])
    check(g.status == 200, "metadata GET: %d" % g.status, g)
    check(g.json() == meta, "metadata GET differs from the 201 answer", g.json(), meta)
    now = datetime.datetime.now(datetime.timezone.utc)
    age = abs((now - parse_time(meta["created_at"])).total_seconds())
    check(age < 300, "created_at is %ds away from now" % age)


def test_listing_paging_and_filters():
    cls = new_class("list")
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    ids = [V.upload_ok(b"listed %d" % i, name="l%d" % i, cls=cls)["id"] for i in range(7)]
    other = V.upload_ok(b"other class", cls=new_class("other"))["id"]
    seen = []
    cursor = None
    pages = 0
    while True:
        q = {"class": cls, "limit": "3"}
        if cursor:
            q["cursor"] = cursor
        r = V.request("GET", "/v1/documents?" + urllib.parse.urlencode(q))
        check(r.status == 200, "listing page: %d" % r.status, r)
        page = r.json()
        check(set(page) >= {"documents", "next_cursor"}, "listing keys %r" % list(page))
        check(len(page["documents"]) <= 3, "limit=3 gave %d" % len(page["documents"]))
        seen.extend(page["documents"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        check(pages < 10, "paging does not end")
    got = [d["id"] for d in seen]
    check(sorted(got) == sorted(ids), "paged listing of 7 gave %d (dups or missing)" % len(got), got)
    check(pages >= 3, "7 documents with limit=3 came in %d pages" % pages)
    check(other not in got, "class filter let another class through")
    times = [parse_time(d["created_at"]) for d in seen]
    check(times == sorted(times, reverse=True), "listing is not newest first", times)
    for d in seen:
        check(d["class"] == cls and d["size"] == len(b"listed 0"), "listed metadata wrong", d)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    cases = [({"created_after": rfc3339(before)}, 7), ({"created_after": rfc3339(future)}, 0),
             ({"created_before": rfc3339(future)}, 7), ({"created_before": rfc3339(before)}, 0),
             ({"created_after": rfc3339(before), "created_before": rfc3339(future)}, 7)]
    for q, want in cases:
        q["class"] = cls
        n = len(V.list_all(q))
        check(n == want, "listing with %r gave %d, expected %d" % (q, n, want))
    # limit is plain decimal digits (docs/api.md), like the audit parameters
    for lim in ("+5", " 5", "5 ", "0x10", "1e2", "", "0", "1001", "99999999999999999999999"):
        r = V.request("GET", "/v1/documents?" + urllib.parse.urlencode({"class": cls, "limit": lim}))
        expect_problem(r, 400, "bad-request")
    r = V.request("GET", "/v1/documents?" + urllib.parse.urlencode({"class": cls, "limit": "0002"}))
    check(r.status == 200 and len(r.json()["documents"]) == 2, "limit=0002: %d" % r.status, r)
    for bad in ({"limit": "abc"}, {"limit": "-1"}, {"created_after": "yesterday"},
                {"created_before": "2024-13-45T99:00:00Z"}, {"class": "No Such/Class"},
                {"cursor": "%%%garbage%%%"}):
        r = V.request("GET", "/v1/documents?" + urllib.parse.urlencode(bad))
        expect_problem(r, 400, "bad-request")


# -- Range and Content-Disposition -------------------------------------------------------


def test_range_requests():
    n = 200000  # three 64 KiB segments and a partial one
    data = data_of_size(n)
    doc = V.upload_ok(data, cls=new_class())["id"]
    cases = [("bytes=0-0", 0, 0), ("bytes=65530-65545", 65530, 65545), ("bytes=199990-", 199990, n - 1),
             ("bytes=-5", n - 5, n - 1), ("bytes=0-", 0, n - 1), ("bytes=131071-131072", 131071, 131072),
             ("bytes=199999-300000", 199999, n - 1), ("bytes=-300000", 0, n - 1)]
    for rng, a, b in cases:
        r = V.download(doc, headers={"Range": rng})
        check(r.status == 206, "%s: status %d" % (rng, r.status), r)
        check(r.header("Content-Range") == "bytes %d-%d/%d" % (a, b, n),
              "%s: Content-Range %r" % (rng, r.header("Content-Range")))
        check(r.body == data[a:b + 1], "%s: wrong bytes (%d returned)" % (rng, len(r.body)))
        check(int(r.header("Content-Length")) == b - a + 1, "%s: Content-Length" % rng)
    for rng in ("bytes=200000-", "bytes=300000-300010"):
        r = V.download(doc, headers={"Range": rng})
        expect_problem(r, 416, "range-not-satisfiable")
        check(r.header("Content-Range") == "bytes */%d" % n, "416 Content-Range %r"
              % r.header("Content-Range"))
    empty = V.upload_ok(b"", cls=new_class())["id"]
    expect_problem(V.download(empty, headers={"Range": "bytes=0-0"}), 416, "range-not-satisfiable")
    r = V.download(doc)
    check(r.status == 200 and r.body == data, "plain GET after ranges failed")


def test_content_disposition():
    name = 'Fac"ture\\ été; n°1 \u00e9\u20ac.pdf'
    meta = V.upload_ok(b"tricky", name=name, cls=new_class())
    check(meta["name"] == name, "name came back as %r" % meta["name"])
    r = V.download(meta["id"])
    cd = r.header("Content-Disposition", "")
    check(cd.startswith("attachment;"), "Content-Disposition %r" % cd)
    check(all(32 <= ord(c) < 127 for c in cd), "Content-Disposition is not plain ASCII: %r" % cd)
    m = re.search(r"filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+)", cd)
    check(m, "no filename*=UTF-8'' in %r" % cd)
    check(urllib.parse.unquote(m.group(1), errors="strict") == name,
          "filename* decodes to %r" % urllib.parse.unquote(m.group(1)))
    m = re.search(r'filename="((?:[^"\\]|\\.)*)"', cd)
    check(m, "no quoted ASCII filename in %r" % cd)
    # The fallback must survive header parsing: no bare quote, no CR/LF.
    check("\r" not in cd and "\n" not in cd, "CR/LF in Content-Disposition")
    for bad in ("a\r\nX-Injected: 1", "a\nb", "a\x01b", "tab\there", "", "x" * 256, "caf\udce9"):
        q = "name=" + urllib.parse.quote(bad.encode("utf-8", "surrogateescape"), safe="")
        r = V.request("POST", "/v1/documents?" + q, body=b"x",
                      headers={"Content-Type": "application/octet-stream"})
        expect_problem(r, 400, "bad-request")
        check(r.header("X-Injected") is None, "header injection through the name")
    ok = "é" * 127 + "x"  # 255 bytes of UTF-8
    check(V.upload(b"x", name=ok, cls=new_class()).status == 201, "a 255-byte name was refused")


# -- errors ------------------------------------------------------------------------------


def test_errors_auth():
    for headers in ({}, {"Authorization": "Bearer wrong-" + secrets.token_hex(16)},
                    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer " + V.token + "x"}):
        for method, path in (("GET", "/v1/documents"), ("POST", "/v1/documents?name=a")):
            r = V.request(method, path, headers=headers, auth=False, body=b"x" if method == "POST" else None)
            expect_problem(r, 401, "unauthorized")
            check(r.header("WWW-Authenticate", "").startswith("Bearer"),
                  "401 without WWW-Authenticate: Bearer", r)
    r = V.request("GET", "/healthz", auth=False)
    check(r.status == 200, "/healthz needs no token (got %d)" % r.status)


def test_errors_routes_and_methods():
    expect_problem(V.request("GET", "/v1/nope"), 404, "not-found")
    expect_problem(V.request("GET", "/v1/documents/abc/def/ghi"), 404, "not-found")
    r = V.request("PUT", "/v1/documents", body=b"x")
    expect_problem(r, 405, "method-not-allowed")
    allow = {m.strip() for m in r.header("Allow", "").split(",")}
    check({"GET", "POST"} <= allow, "Allow on /v1/documents is %r" % r.header("Allow"))
    doc = V.upload_ok(b"m", cls=new_class())["id"]
    r = V.request("PUT", "/v1/documents/" + doc, body=b"{}")
    expect_problem(r, 405, "method-not-allowed")
    allow = {m.strip() for m in r.header("Allow", "").split(",")}
    check({"GET", "DELETE", "PATCH"} <= allow, "Allow on a document is %r" % r.header("Allow"))
    r = V.request("POST", "/v1/documents/%s/content" % doc, body=b"x")
    expect_problem(r, 405, "method-not-allowed")


def test_errors_bad_parameters():
    for q in ({"name": "a", "class": "Upper"}, {"name": "a", "class": "a_b"}, {"name": "a", "class": ""},
              {"name": "a", "class": "x" * 65}, {"class": "fine"}):
        r = V.request("POST", "/v1/documents?" + urllib.parse.urlencode(q), body=b"x")
        expect_problem(r, 400, "bad-request")
    # 64 characters are a well-formed class name; this one is not configured
    expect_problem(V.upload(b"x", cls="a" * 64), 400, "unknown-class")
    r = V.upload(b"x", cls=new_class(), headers={"X-Content-SHA256": "zz" * 32})
    expect_problem(r, 400, "bad-request")


def test_error_hash_mismatch_stores_nothing():
    cls = new_class("hash")
    data = b"a document whose hash is announced"
    ok = V.upload(data, cls=cls, headers={"X-Content-SHA256": sha256_hex(data)})
    check(ok.status == 201, "upload with the right X-Content-SHA256: %d" % ok.status, ok)
    listing = V.list_all()
    objects = V.object_files()
    r = V.upload(data, cls=cls, headers={"X-Content-SHA256": sha256_hex(data + b"!")})
    expect_problem(r, 422, "hash-mismatch")
    big = b"".join(random_chunks(1 << 20, seed=9))
    resp, _ = V.stream_upload({"name": "big", "class": cls}, random_chunks(1 << 20, seed=9, chunk=65536),
                              length=None, headers={"X-Content-SHA256": sha256_hex(big[:-1])})
    check(resp is not None, "no answer to a chunked upload with a wrong hash")
    expect_problem(resp, 422, "hash-mismatch")
    check(V.list_all() == listing, "a hash-mismatch upload changed the listing")
    check(V.object_files() == objects, "a hash-mismatch upload changed DIR/objects")
    check(V.tmp_files() == [], "a hash-mismatch upload left %r in DIR/tmp" % V.tmp_files())


def test_error_too_large_stores_nothing():
    listing = V.list_all()
    objects = V.object_files()
    src = write_tmp(b"\0" * (MAX_BODY + 1), "big.bin")
    r = V.curl("-X", "POST", "-H", "Authorization: Bearer " + V.token, "--data-binary", "@" + src,
               "-w", "\n%{http_code}", V.url + "/v1/documents?name=big")
    code = r.stdout.rsplit(b"\n", 1)[-1]
    check(code == b"413", "upload of max-body+1 bytes: %r (curl rc %d)" % (code, r.returncode), r.stderr)
    body = json.loads(r.stdout.rsplit(b"\n", 1)[0])
    check(body.get("type") == "urn:coffre:problem:payload-too-large", "413 type %r" % body.get("type"))
    # Chunked: no length announced, the limit must hold while streaming.
    resp, sent = V.stream_upload({"name": "chunked-big"}, random_chunks(MAX_BODY + (1 << 20), seed=3,
                                                                         chunk=65536))
    check(resp is not None, "no answer to a chunked upload over max-body (%d sent)" % sent)
    expect_problem(resp, 413, "payload-too-large")
    check(V.list_all() == listing, "a 413 upload changed the listing")
    check(V.object_files() == objects, "a 413 upload changed DIR/objects")
    check(V.tmp_files() == [], "a 413 upload left %r in DIR/tmp" % V.tmp_files())
    check(V.upload(b"x" * MAX_BODY, cls=new_class()).status == 201, "exactly max-body was refused")


def test_errors_unknown_document():
    meta = V.upload_ok(b"to delete", cls=new_class())
    doc = meta["id"]
    r = V.request("DELETE", "/v1/documents/" + doc)
    check(r.status == 204 and r.body == b"", "DELETE: %d %r" % (r.status, r.body[:100]))
    # erased: the tombstone answers 410 (test_lifecycle checks its body)
    for method, path in (("GET", "/v1/documents/" + doc), ("GET", "/v1/documents/%s/content" % doc),
                         ("DELETE", "/v1/documents/" + doc)):
        expect_problem(V.request(method, path), 410, "erased")
    fake = "".join("0" if c.isalnum() else c for c in doc)
    expect_problem(V.request("GET", "/v1/documents/" + fake), 404, "not-found")
    r = V.request("GET", "/v1/documents/..%2F..%2Fmeta.db")
    expect_problem(r, r.status if r.status in (400, 404) else 404,
                   "bad-request" if r.status == 400 else "not-found")


def test_hsts_everywhere():
    for method, path, auth in (("GET", "/healthz", False), ("GET", "/metrics", False),
                               ("GET", "/v1/documents", True), ("GET", "/v1/documents", False),
                               ("GET", "/nope", True)):
        r = V.request(method, path, auth=auth)
        hsts = r.header("Strict-Transport-Security", "")
        m = re.search(r"max-age=(\d+)", hsts)
        check(m and int(m.group(1)) > 0, "%s %s (%d): HSTS %r" % (method, path, r.status, hsts))


# -- at rest, token file, logs, metrics --------------------------------------------------


def test_objects_encrypted_at_rest():
    marker = b"COFFRE-PLAINTEXT-" + secrets.token_hex(8).encode()
    data = (marker + b" invoice line; ") * 20000
    meta = V.upload_ok(data, cls=new_class())
    paths = [p for p in V.object_files() if os.path.basename(p) == meta["id"]]
    check(len(paths) == 1, "object %s not found once under objects/xx/yy/" % meta["id"], V.object_files()[:10])
    parts = paths[0].split(os.sep)
    check(len(parts) == 3 and len(parts[0]) == 2 and len(parts[1]) == 2,
          "object path %r is not xx/yy/ID" % paths[0])
    size = os.path.getsize(os.path.join(V.data, "objects", paths[0]))
    check(size >= len(data), "object holds %d bytes for %d of plaintext" % (size, len(data)))
    token = V.token.encode()
    for rel in _all_files(V.data):
        if rel == "bootstrap-token":
            continue
        with open(os.path.join(V.data, rel), "rb") as f:
            blob = f.read()
        check(marker not in blob, "document plaintext found in %s" % rel)
        check(token not in blob, "the bearer token is stored in clear in %s" % rel)


def _all_files(root):
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return out


def test_bootstrap_token_file():
    st = os.stat(os.path.join(V.data, "bootstrap-token"))
    check(st.st_mode & 0o777 == 0o600, "bootstrap-token mode %o" % (st.st_mode & 0o777))
    with Vault(BINARY) as other:
        r = subprocess.run([BINARY, "init", "--data", other.data], capture_output=True, timeout=60)
        check(r.returncode == 1, "init over an existing vault: exit %d, expected 1" % r.returncode)
        with open(os.path.join(other.data, "bootstrap-token")) as f:
            check(f.read().strip() == other.token, "init over an existing vault changed the token")


def test_logs_hold_no_secrets():
    marker = b"LOG-CANARY-" + secrets.token_hex(8).encode()
    bad_token = "bad-" + secrets.token_hex(16)
    meta = V.upload_ok(marker * 100, name="canary.txt", cls=new_class())
    V.download(meta["id"])
    V.request("GET", "/v1/documents", headers={"Authorization": "Bearer " + bad_token}, auth=False)
    V.upload(marker, headers={"X-Content-SHA256": "00" * 32}, cls=new_class())
    log = V.log_text()
    check(len(log) > 0, "the server logged nothing at all")
    check(V.token.encode() not in log, "the bearer token appears in the server log")
    check(bad_token.encode() not in log, "a presented (wrong) token appears in the server log")
    check(marker not in log, "document bytes appear in the server log")
    for i, line in enumerate(log.splitlines()):
        if line.strip():
            try:
                check(isinstance(json.loads(line), dict), "log line %d is not a JSON object" % i)
            except ValueError:
                raise TestFailure("log line %d is not JSON: %r" % (i, line[:200]))


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        check(m, "bad metrics line %r" % line)
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metric_sum(metrics, name, **labels):
    total = 0.0
    found = False
    for key, val in metrics.items():
        base = key.split("{")[0]
        if base != name:
            continue
        ok = all(('%s="%s"' % (k, v)) in key for k, v in labels.items())
        if ok:
            total += val
            found = True
    return total if found else None


def test_metrics_move():
    def snap():
        r = V.request("GET", "/metrics")
        check(r.status == 200, "/metrics: %d" % r.status)
        check(r.header("Content-Type", "").startswith("text/plain"), "/metrics Content-Type %r"
              % r.header("Content-Type"))
        return parse_metrics(r.body.decode())
    a = snap()
    for name in ("coffre_http_requests_total", "coffre_http_request_duration_seconds_bucket",
                 "coffre_http_request_duration_seconds_sum", "coffre_http_request_duration_seconds_count",
                 "coffre_http_bytes_received_total", "coffre_http_bytes_sent_total",
                 "coffre_documents_stored", "coffre_bytes_stored"):
        check(metric_sum(a, name) is not None, "metric %s missing" % name)
    check(metric_sum(a, "coffre_http_request_duration_seconds_bucket", le="+Inf") is not None,
          "histogram has no le=\"+Inf\" bucket")
    n = 300000
    data = data_of_size(n)
    meta = V.upload_ok(data, cls=new_class())
    check(V.download(meta["id"]).body == data, "download for metrics failed")
    b = snap()
    d = lambda name, **l: (metric_sum(b, name, **l) or 0) - (metric_sum(a, name, **l) or 0)
    check(d("coffre_http_requests_total", code="201") >= 1, "no 201 counted")
    check(d("coffre_http_requests_total") >= 3, "requests_total moved by %g" % d("coffre_http_requests_total"))
    check(d("coffre_http_request_duration_seconds_count") >= 2, "duration histogram did not count")
    check(d("coffre_http_bytes_received_total") >= n, "bytes_received moved by %g" % d("coffre_http_bytes_received_total"))
    check(d("coffre_http_bytes_sent_total") >= n, "bytes_sent moved by %g" % d("coffre_http_bytes_sent_total"))
    check(d("coffre_documents_stored") == 1, "documents_stored moved by %g" % d("coffre_documents_stored"))
    check(d("coffre_bytes_stored") >= n, "bytes_stored moved by %g" % d("coffre_bytes_stored"))
    expect_problem(V.request("GET", "/v1/nope"), 404, "not-found")
    V.request("DELETE", "/v1/documents/" + meta["id"])
    c = snap()
    check((metric_sum(c, "coffre_http_requests_total", code="404") or 0)
          > (metric_sum(b, "coffre_http_requests_total", code="404") or 0), "404 not counted")
    check((metric_sum(c, "coffre_documents_stored") - metric_sum(b, "coffre_documents_stored")) == -1,
          "documents_stored did not go down on DELETE")


# -- restart and SIGTERM (vaults of their own) -------------------------------------------


def test_start_removes_leftovers():
    with Vault(BINARY) as v:
        os.makedirs(os.path.join(v.data, "tmp"), exist_ok=True)
        with open(os.path.join(v.data, "tmp", "upload-leftover"), "wb") as f:
            f.write(b"half an upload")
        v.start()
        check(v.tmp_files() == [], "DIR/tmp not emptied at start: %r" % v.tmp_files())
        meta = v.upload_ok(b"survives restarts")
        check(v.stop() == 0, "SIGTERM of an idle server did not exit 0")
        v.start()
        check(v.download(meta["id"]).body == b"survives restarts", "document lost across restart")
        check(v.stop() == 0, "second SIGTERM did not exit 0")


def _upload_in_thread(v, total, gate, finish, result):
    """Streams total bytes; after 16 MiB sets gate and then waits for finish (True: send the
    rest, False: drop the connection)."""
    def chunks():
        sent = 0
        for c in random_chunks(total, seed=77, chunk=1 << 20):
            yield c
            sent += len(c)
            if sent == 16 << 20:
                gate.set()
                finish_ev, mode = finish
                finish_ev.wait(60)
                if not mode[0]:
                    raise ConnectionAbortedError("client gives up")
    try:
        result.append(v.stream_upload({"name": "sigterm.bin"}, chunks(), length=total))
    except ConnectionAbortedError:
        result.append((None, -1))


def test_sigterm_finishes_inflight_upload():
    total = 48 << 20
    with Vault(BINARY, serve_args=["--max-body", str(1 << 30)]) as v:
        v.start()
        gate, finish_ev, result = threading.Event(), threading.Event(), []
        t = threading.Thread(target=_upload_in_thread, args=(v, total, gate, (finish_ev, [True]), result))
        t.start()
        check(gate.wait(60), "upload did not get 16 MiB through")
        v.proc.send_signal(15)
        finish_ev.set()
        t.join(120)
        rc = v.proc.wait(timeout=60)
        v.proc = None
        check(rc == 0, "SIGTERM during an upload: exit %s\n%s" % (rc, v.log_tail()))
        resp, sent = result[0]
        check(resp is not None and resp.status == 201, "in-flight upload was not finished", resp)
        v.start()
        check(v.tmp_files() == [], "DIR/tmp not empty after restart: %r" % v.tmp_files())
        body = v.download(resp.json()["id"]).body
        check(len(body) == total and body == b"".join(random_chunks(total, seed=77)),
              "the finished upload did not survive")
        check(v.stop() == 0, "final SIGTERM did not exit 0")


def test_sigterm_with_abandoned_upload():
    total = 48 << 20
    with Vault(BINARY, serve_args=["--max-body", str(1 << 30)]) as v:
        v.start()
        before_list = v.list_all()
        before_obj = v.object_files()
        gate, finish_ev, result = threading.Event(), threading.Event(), []
        t = threading.Thread(target=_upload_in_thread, args=(v, total, gate, (finish_ev, [False]), result))
        t.start()
        check(gate.wait(60), "upload did not get 16 MiB through")
        v.proc.send_signal(15)
        finish_ev.set()  # the client drops the connection half-way
        t.join(120)
        try:
            rc = v.proc.wait(timeout=60)
        except Exception:
            raise TestFailure("server still running 60 s after SIGTERM with an abandoned upload")
        v.proc = None
        check(rc == 0, "SIGTERM with an abandoned upload: exit %s\n%s" % (rc, v.log_tail()))
        v.start()
        check(v.tmp_files() == [], "DIR/tmp not empty after restart: %r" % v.tmp_files())
        check(v.list_all() == before_list, "an abandoned upload shows in the listing")
        check(v.object_files() == before_obj, "an abandoned upload left an object")
        check(v.stop() == 0, "final SIGTERM did not exit 0")


TESTS = [test_roundtrip_curl, test_roundtrip_cli, test_cli_exit_codes, test_cli_get_detects_wrong_bytes,
         test_metadata_and_default_class, test_listing_paging_and_filters, test_range_requests,
         test_content_disposition, test_errors_auth, test_errors_routes_and_methods,
         test_errors_bad_parameters, test_error_hash_mismatch_stores_nothing,
         test_error_too_large_stores_nothing, test_errors_unknown_document, test_hsts_everywhere,
         test_objects_encrypted_at_rest, test_bootstrap_token_file, test_logs_hold_no_secrets,
         test_metrics_move, test_start_removes_leftovers, test_sigterm_finishes_inflight_upload,
         test_sigterm_with_abandoned_upload]


def main():
    global V
    with Vault(BINARY, serve_args=["--max-body", str(MAX_BODY)]) as v:
        V = v
        v.start()
        rc = run_tests(TESTS)
        if rc:
            print(v.log_tail(60))
        stop_rc = v.stop()
        if stop_rc != 0:
            print("shared server: SIGTERM exit status %r" % stop_rc)
            rc = 1
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
