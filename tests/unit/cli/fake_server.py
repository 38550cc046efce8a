#!/usr/bin/env python3
"""fake_server.py: a stand-in for `coffre serve` for the CLI tests: the documents API over HTTPS
(stdlib only), with a few deliberate faults the client must catch. test_cli.c runs most of its
tests against the real server; this one serves only what the real server cannot be made to do.

Usage: fake_server.py --cert PEM --key PEM --token TOKEN --dir DIR [--page N]
Prints "PORT <n>" on stdout once it listens on 127.0.0.1, then serves until killed.
Every request is appended to DIR/requests.log as one JSON line (method, path, query, a few
headers; never the token itself, only whether it matched).

Faults, chosen by the document's name at upload:
  lie-*      the answer to the upload carries a wrong sha256
  corrupt-*  the content is served with one byte flipped
  short-*    the content is served one byte short
"""
import argparse
import datetime
import hashlib
import json
import os
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024


class Store:
    def __init__(self, root):
        self.root = root
        self.docs = []  # in creation order
        self.lock = threading.Lock()
        self.counter = 0

    def add(self, meta):
        with self.lock:
            self.docs.append(meta)

    def new_id(self):
        with self.lock:
            self.counter += 1
            n = self.counter
        return "doc%04d-%s" % (n, os.urandom(4).hex()), n

    def get(self, doc_id):
        with self.lock:
            for d in self.docs:
                if d["id"] == doc_id:
                    return d
        return None

    def remove(self, doc_id):
        with self.lock:
            self.docs = [d for d in self.docs if d["id"] != doc_id]


def make_handler(store, token, page, log_path):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def record(self, auth_ok):
            u = urllib.parse.urlsplit(self.path)
            entry = {
                "method": self.command,
                "path": u.path,
                "query": u.query,
                "auth_ok": auth_ok,
                "content_type": self.headers.get("Content-Type"),
                "x_content_sha256": self.headers.get("X-Content-SHA256"),
                "content_length": self.headers.get("Content-Length"),
            }
            with open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

        def send_json(self, status, obj, ctype="application/json"):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def problem(self, status, title, detail):
            self.send_json(status, {"type": "urn:coffre:problem:test", "title": title, "status": status,
                                    "detail": detail}, "application/problem+json")

        def check_auth(self):
            got = self.headers.get("Authorization", "")
            ok = got == "Bearer " + token
            self.record(ok)
            if not ok:
                # the client must not send a body we never read: close the connection
                self.close_connection = True
                self.problem(401, "Unauthorized", "missing or invalid bearer token")
            return ok

        def route(self):
            u = urllib.parse.urlsplit(self.path)
            parts = [p for p in u.path.split("/") if p]
            return parts, urllib.parse.parse_qs(u.query, keep_blank_values=True)

        def do_POST(self):
            if not self.check_auth():
                return
            parts, q = self.route()
            if parts != ["v1", "documents"]:
                return self.problem(404, "Not Found", "no such endpoint")
            if self.headers.get("Content-Type") != "application/octet-stream":
                return self.problem(415, "Unsupported Media Type", "send application/octet-stream")
            length = int(self.headers.get("Content-Length", "-1"))
            if length < 0:
                return self.problem(411, "Length Required", "send Content-Length")
            name = q.get("name", [""])[0]
            cls = q.get("class", ["accounting-10y"])[0]
            doc_id, n = store.new_id()
            path = os.path.join(store.root, doc_id)
            h = hashlib.sha256()
            left = length
            with open(path, "wb") as f:
                while left > 0:
                    b = self.rfile.read(min(CHUNK, left))
                    if not b:
                        break
                    h.update(b)
                    f.write(b)
                    left -= len(b)
            if left:
                os.unlink(path)
                self.close_connection = True
                return
            digest = h.hexdigest()
            if self.headers.get("X-Content-SHA256") != digest:
                os.unlink(path)
                return self.problem(400, "Checksum mismatch", "X-Content-SHA256 does not match the body")
            created = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(days=n)
            meta = {"id": doc_id, "name": name, "class": cls, "size": length, "sha256": digest,
                    "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ")}
            store.add(meta)
            answer = dict(meta)
            if name.startswith("lie-"):
                answer["sha256"] = hashlib.sha256(b"something else").hexdigest()
            self.send_json(201, answer)

        def do_GET(self):
            if not self.check_auth():
                return
            parts, q = self.route()
            if parts == ["v1", "documents"]:
                return self.list_documents(q)
            if len(parts) in (3, 4) and parts[:2] == ["v1", "documents"]:
                d = store.get(parts[2])
                if d is None:
                    return self.problem(404, "Not Found", "no document %s" % parts[2])
                if len(parts) == 3:
                    return self.send_json(200, d)
                if parts[3] == "content":
                    return self.send_content(d)
            return self.problem(404, "Not Found", "no such endpoint")

        def send_content(self, d):
            path = os.path.join(store.root, d["id"])
            size = d["size"]
            if d["name"].startswith("short-"):
                size -= 1
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("ETag", '"%s"' % d["sha256"])
            self.end_headers()
            sent = 0
            with open(path, "rb") as f:
                while sent < size:
                    b = f.read(min(CHUNK, size - sent))
                    if not b:
                        break
                    if sent == 0 and d["name"].startswith("corrupt-"):
                        b = bytes([b[0] ^ 1]) + b[1:]
                    self.wfile.write(b)
                    sent += len(b)

        def list_documents(self, q):
            docs = [d for d in store.docs]
            if "class" in q:
                docs = [d for d in docs if d["class"] == q["class"][0]]
            if "created_after" in q:
                docs = [d for d in docs if d["created_at"] > q["created_after"][0]]
            if "created_before" in q:
                docs = [d for d in docs if d["created_at"] < q["created_before"][0]]
            start = int(q.get("cursor", ["0"])[0])
            limit = min(int(q.get("limit", [str(page)])[0]), page)
            chunk = docs[start:start + limit]
            nxt = str(start + limit) if start + limit < len(docs) else None
            self.send_json(200, {"documents": chunk, "next_cursor": nxt})

        def do_DELETE(self):
            if not self.check_auth():
                return
            parts, _ = self.route()
            if len(parts) != 3 or parts[:2] != ["v1", "documents"]:
                return self.problem(404, "Not Found", "no such endpoint")
            d = store.get(parts[2])
            if d is None:
                return self.problem(404, "Not Found", "no document %s" % parts[2])
            store.remove(d["id"])
            os.unlink(os.path.join(store.root, d["id"]))
            self.send_response(204)
            self.end_headers()

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--page", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    store = Store(a.dir)
    handler = make_handler(store, a.token, a.page, os.path.join(a.dir, "requests.log"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    print("PORT %d" % httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
