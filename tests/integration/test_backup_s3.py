#!/usr/bin/env python3
"""test_backup_s3.py: `coffre backup` to an S3 destination (s3://bucket/prefix) on a real S3
server (s3rver, signatures verified) behind the recording proxy of s3fixture.py, over HTTPS
(a CA of the test's own: s3_ca_file in coffre.conf, AWS_CA_BUNDLE for restore and verify).

- A served vault with documents; `backup init` to a directory and to s3://coffre-test/vault-a
  (settings in coffre.conf [backup]: endpoint, path style, access key id, secret key file);
  `backup run` writes both (a 12 MiB document's pack in a multipart upload of 5 MiB parts,
  s3_part_size_mib = 5); the data directory deleted; `coffre restore --from s3://...` alone
  (credentials from the AWS_* environment only, no coffre.conf) rebuilds a vault that serves
  every document byte-identical and passes `coffre audit verify`; the directory alone too.
- No overwrite: every PUT went after a HEAD of its key and carried If-None-Match: *, and no key
  was PUT twice over two runs; no document content or name in any object of the bucket.
- Snapshot dates are checked against the server's Last-Modified: `backup list` flags none; with
  the server's Last-Modified shifted three days back (by the proxy), every S3 snapshot's date is
  flagged as disagreeing, and none of the directory's.
- Object Lock: with object_lock = compliance, data objects carry COMPLIANCE and a retain-until
  date object_lock_days ahead, the keyring series' objects object_lock_keyring_days ahead, the
  repository's run lock none (s3rver ignores these headers: what is checked is what coffre
  sent, as the proxy recorded it).
- `backup drill` restores from each (the S3 one with the s3_* settings of coffre.conf, passed
  to the restore it runs with --s3-settings) and checks every document.
- Wrong secret: `backup run` exits 1 naming SignatureDoesNotMatch for the S3 destination and
  still writes the directory; no secret in the output.
- Unreachable endpoint: exit 1 with the connection error after the retries.
- kill -9 of `backup run` while its second multipart part is in flight (held by the proxy):
  the repository verifies (--read-data), the next run completes, a restore gives the document.
- Per-bucket settings: s3_secret_key_file[BUCKET] is used for that bucket only.
- A session token from s3_session_token_file is sent and signed on every request (and the
  environment's AWS_SESSION_TOKEN is not used with keys from coffre.conf).
Usage: test_backup_s3.py PATH/TO/coffre
"""

import calendar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import Vault, check, exit_status, run_tests
from s3fixture import ACCESS_KEY, BUCKET, OTHER_BUCKET, SECRET_KEY, S3Server, _parse_auth
import test_backup as tb
from test_backup import MARK_CONTENT, MARK_NAME, backup_run, check_restored, doc_bytes, out, restore, run

S3 = None
ST = None


def write_conf(v, lines):
    with open(os.path.join(v.data, "coffre.conf"), "a") as f:
        f.write("\n[backup]\n" + "".join(l + "\n" for l in lines))


def s3_settings(v, endpoint, secret=SECRET_KEY, extra=()):
    sk = os.path.join(v.data, "keys", "s3.secret")
    with open(sk, "w") as f:
        f.write(secret + "\n")
    os.chmod(sk, 0o600)
    write_conf(v, ["s3_endpoint = " + endpoint, "s3_path_style = true", "s3_region = us-east-1",
                   "s3_access_key_id = " + ACCESS_KEY, "s3_secret_key_file = keys/s3.secret",
                   "s3_ca_file = " + S3.ca_file] + list(extra))


def clean_env(**over):
    e = {k: val for k, val in os.environ.items() if not k.startswith("AWS_")}
    e.update(over)
    return e


class Setup:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-backup-s3-")
        self.v = Vault(tb.BINARY, base=os.path.join(self.tmp, "a"))
        self.dir = os.path.join(self.tmp, "dest-dir")
        self.url = "s3://%s/vault-a" % BUCKET
        self.master = os.path.join(self.tmp, "master.key")
        shutil.copy(os.path.join(self.v.data, "keys", "master.key"), self.master)
        os.chmod(self.master, 0o600)
        s3_settings(self.v, S3.endpoint, extra=["s3_part_size_mib = 5"])
        self.v.start()
        self.docs = []
        for i in range(10):
            data = doc_bytes(i)
            meta = self.v.upload_ok(data, name="%s-%d.pdf" % (MARK_NAME, i))
            self.docs.append((meta["id"], data))
        # incompressible: a pack over 10 MiB, so a multipart upload of 3 parts of at most 5 MiB
        big = os.urandom(12 << 20)
        self.docs.append((self.v.upload_ok(big, name="scan.pdf")["id"], big))
        S3.take_requests()
        for dest in (self.dir, self.url):
            r = run(["backup", "init", "--data", self.v.data, "--to", dest], env=clean_env())
            check(r.returncode == 0, "backup init --to %s" % dest, out(r))
        r = run(["backup", "run", "--data", self.v.data, "--json"], env=clean_env())
        check(r.returncode == 0, "backup run", out(r))
        self.result = json.loads(r.stdout)
        self.requests = S3.take_requests()

    def close(self):
        self.v.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def setup():
    global ST
    if ST is None:
        ST = Setup()
    return ST


def shift_last_modified(delta):
    def fmt(t, http):
        return time.strftime("%a, %d %b %Y %H:%M:%S GMT" if http else "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))

    def rewrite(method, path, headers, body):
        out = []
        for k, v in headers:
            if k.lower() == "last-modified":
                v = fmt(calendar.timegm(time.strptime(v, "%a, %d %b %Y %H:%M:%S GMT")) + delta, True)
            out.append((k, v))
        if b"<ListBucketResult" in body:
            body = re.sub(rb"<LastModified>([^<.]+)(\.\d+)?Z</LastModified>",
                          lambda m: b"<LastModified>%s</LastModified>" % fmt(
                              calendar.timegm(time.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S")) + delta,
                              False).encode(), body)
        return out, body
    return rewrite


def key_of(q):
    return q["path"].split("?", 1)[0]


def test_run_writes_both():
    s = setup()
    by = {d["destination"]: d for d in s.result["destinations"]}
    check(set(by) == {s.dir, s.url}, "both destinations reported", s.result)
    for d in by.values():
        check(d["ok"] and len(d["snapshot"]) == 64, "destination not written", d)
    puts = [q for q in s.requests if q["method"] == "PUT"]
    check(any("/vault-a/packs/" in key_of(q) for q in puts), "no pack PUT under the prefix", [key_of(q) for q in puts])
    check(any("/vault-a/snapshots/" in key_of(q) for q in puts), "no snapshot PUT", [key_of(q) for q in puts])
    starts = [key_of(q) for q in s.requests if q["method"] == "POST" and "uploads=" in q["path"]]
    check(len(starts) >= 1 and all("/vault-a/packs/" in k for k in starts), "the big pack went up in parts", starts)
    parts = [q for q in s.requests if q["method"] == "PUT" and "partNumber=" in q["path"]]
    check(len(parts) >= 3 and max(q["body_len"] for q in parts) <= 5 << 20, "parts of at most 5 MiB",
          [(key_of(q), q["body_len"]) for q in parts])
    check(all(q["headers"].get("if-none-match") == "*" for q in s.requests
              if q["method"] == "POST" and "uploadId=" in q["path"]), "a completion without If-None-Match")


def test_no_overwrite():
    s = setup()
    puts = [q for q in s.requests if q["method"] == "PUT" and "partNumber=" not in q["path"]]
    heads = set(key_of(q) for q in s.requests if q["method"] == "HEAD")
    for q in puts:
        check(q["headers"].get("if-none-match") == "*", "a PUT without If-None-Match: *", q)
        check(key_of(q) in heads, "a PUT without a HEAD of its key first", key_of(q))
        check("content-md5" in q["headers"] and "x-amz-checksum-sha256" in q["headers"], "a PUT without checksums",
              q["headers"])
    # a second run writes new objects only
    r = run(["backup", "run", "--data", s.v.data, "--json"], env=clean_env())
    check(r.returncode == 0, "second backup run", out(r))
    second = [key_of(q) for q in S3.take_requests() if q["method"] == "PUT"]
    first = set(key_of(q) for q in puts)
    check(second and not (set(second) & first), "the second run PUT an existing key again",
          sorted(set(second) & first))
    check(len(second) == len(set(second)), "a key PUT twice in one run", second)
    # no plaintext in the bucket (s3rver keeps objects as files under its directory)
    store = os.path.join(S3.tmp, "store")
    for dirpath, _, files in os.walk(store):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                data = fh.read()
            for needle in (MARK_CONTENT, MARK_NAME.encode(), b"SQLite format"):
                check(needle not in data, "%r found in the bucket (%s)" % (needle, f))


def test_dates_from_last_modified():
    s = setup()
    r = run(["backup", "list", "--data", s.v.data, "--json"], env=clean_env())
    check(r.returncode == 0, "backup list", out(r))
    listed = {d.get("destination", str(i)): d for i, d in enumerate(json.loads(r.stdout))}
    check(any(s.url in k for k in listed), "the S3 destination is listed", listed.keys())
    for k, d in listed.items():
        check(d["problems"] == [], "problems listed for %s" % k, d)
        check(len(d["snapshots"]) >= 2, "snapshots listed for %s" % k, d)
        check(all(x["date_problem"] is None for x in d["snapshots"]), "a date flagged for %s" % k, d)
    # the server's time is what the dates are checked against: shift its Last-Modified back
    # three days and the S3 snapshots' dates disagree (the directory's do not)
    S3.rewrite = shift_last_modified(-3 * 86400)
    try:
        r = run(["backup", "list", "--data", s.v.data, "--json"], env=clean_env())
    finally:
        S3.rewrite = None
    check(r.returncode in (0, 1, 3), "backup list", out(r))
    for d in json.loads(r.stdout):
        flagged = [x["date_problem"] for x in d["snapshots"] if x["date_problem"]]
        if d["destination"] == s.url:
            check(flagged and all("disagrees" in f for f in flagged),
                  "a Last-Modified three days earlier must flag the snapshots' dates", d)
        else:
            check(not flagged, "the directory's dates do not depend on the S3 server", d)
    r = run(["backup", "verify", "--from", s.url, "--master-key", s.master, "--read-data", "--json"],
            env=clean_env(AWS_ENDPOINT_URL=S3.endpoint, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                          AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_S3_FORCE_PATH_STYLE="true",
                          AWS_CA_BUNDLE=S3.ca_file))
    check(r.returncode == 0, "backup verify --read-data of the S3 destination", out(r))


def test_drill_with_s3():
    s = setup()
    r = run(["backup", "drill", "--data", s.v.data, "--json"], env=clean_env())
    check(r.returncode == 0, "drill of the directory and the S3 destination (settings from coffre.conf)", out(r))
    by = {d["destination"]: d for d in json.loads(r.stdout)}
    check(set(by) == {s.dir, s.url}, "both drilled", by)
    for d in by.values():
        check(d["ok"] and d["documents"] == len(s.docs) and d["bad"] == 0, "drill of %s" % d["destination"], d)


def test_round_trip_from_s3_alone_and_from_dir():
    s = setup()
    token = s.v.token
    check(s.v.stop() == 0, "server did not stop cleanly")
    shutil.rmtree(s.v.data)
    env = clean_env(AWS_ENDPOINT_URL=S3.endpoint, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                    AWS_S3_FORCE_PATH_STYLE="true", AWS_REGION="us-east-1", AWS_CA_BUNDLE=S3.ca_file)
    for dest in (s.url, s.dir):
        base = tempfile.mkdtemp(prefix="restored-", dir=s.tmp)
        target = os.path.join(base, "vault")
        args = ["restore", "--data", target, "--master-key", s.master, "--json", "--from", dest]
        r = run(args, env=env)
        check(r.returncode == 0, "restore from %s alone failed" % dest, out(r))
        check(json.loads(r.stdout)["fallbacks"] == [], "nothing taken from elsewhere", r.stdout)
        check_restored(base, token, s.docs, "restore from %s" % dest)


def test_object_lock_headers():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-s3lock-")
    v = Vault(tb.BINARY, base=os.path.join(tmp, "a"))
    try:
        s3_settings(v, S3.endpoint, extra=["object_lock = compliance", "object_lock_days = 30",
                                           "object_lock_keyring_days = 20"])
        v.start()
        v.upload_ok(doc_bytes(1), name="lock.pdf")
        r = run(["backup", "init", "--data", v.data, "--to", "s3://%s/locked" % BUCKET], env=clean_env())
        check(r.returncode == 0, "backup init", out(r))
        S3.take_requests()
        t0 = time.time()
        r = run(["backup", "run", "--data", v.data, "--json"], env=clean_env())
        check(r.returncode == 0, "backup run", out(r))
        res = json.loads(r.stdout)["destinations"][0]
        puts = [q for q in S3.take_requests() if q["method"] == "PUT"]

        def days(q):
            h = q["headers"]
            until = h.get("x-amz-object-lock-retain-until-date")
            if until is None:
                return None
            check(h.get("x-amz-object-lock-mode") == "COMPLIANCE", "lock mode", h)
            return (calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ")) - t0) / 86400.0

        by_key = {key_of(q): days(q) for q in puts}
        snap = [d for k, d in by_key.items() if k.endswith("/snapshots/" + res["snapshot"])]
        ksnap = [d for k, d in by_key.items() if k.endswith("/snapshots/" + res["keyring_snapshot"])]
        check(snap and 29.9 < snap[0] < 30.1, "the data snapshot is locked 30 days", by_key)
        check(ksnap and 19.9 < ksnap[0] < 20.1, "the keyring snapshot is locked 20 days", by_key)
        pk = [d for k, d in by_key.items() if "/packs/" in k]
        check(any(d is not None and 19.9 < d < 20.1 for d in pk), "a keyring pack locked 20 days", by_key)
        check(any(d is not None and 29.9 < d < 30.1 for d in pk), "a data pack locked 30 days", by_key)
        locks = [d for k, d in by_key.items() if "/locks/" in k]
        check(locks and all(d is None for d in locks), "the run lock must not be locked", by_key)
        check(all(d is not None for k, d in by_key.items() if "/locks/" not in k), "an object without a lock",
              by_key)
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_wrong_secret_and_unreachable():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-s3bad-")
    v = Vault(tb.BINARY, base=os.path.join(tmp, "a"))
    try:
        s3_settings(v, S3.endpoint)
        good = os.path.join(tmp, "dir")
        url = "s3://%s/bad" % BUCKET
        for dest in (good, url):
            r = run(["backup", "init", "--data", v.data, "--to", dest], env=clean_env())
            check(r.returncode == 0, "backup init", out(r))
        with open(os.path.join(v.data, "keys", "s3.secret"), "w") as f:
            f.write("wrong-secret-0123456789\n")
        r = run(["backup", "run", "--data", v.data, "--json"], env=clean_env())
        check(r.returncode == 1, "a wrong secret must fail the run", out(r))
        by = {d["destination"]: d for d in json.loads(r.stdout)["destinations"]}
        check(not by[url]["ok"] and "SignatureDoesNotMatch" in by[url]["error"], "the S3 error is named", by)
        check(by[good]["ok"], "the directory is still written", by)
        check(b"wrong-secret-0123456789" not in r.stdout + r.stderr, "the secret appears in the output")
        # unreachable: nothing listens on the endpoint's port
        sk = socket.socket()
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
        sk.close()
        r = run(["backup", "init", "--data", v.data, "--to", "s3://%s/x" % BUCKET],
                env=clean_env(AWS_ENDPOINT_URL="http://127.0.0.1:%d" % port))
        # coffre.conf's s3_endpoint wins over the environment: still the wrong secret
        check(r.returncode == 1 and b"SignatureDoesNotMatch" in r.stderr, "init with a wrong secret", out(r))
        conf = os.path.join(v.data, "coffre.conf")
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("s3_endpoint = " + S3.endpoint, "s3_endpoint = http://127.0.0.1:%d" % port))
        r = run(["backup", "run", "--data", v.data, "--json"], env=clean_env())
        check(r.returncode == 1, "an unreachable endpoint must fail the run", out(r))
        by = {d["destination"]: d for d in json.loads(r.stdout)["destinations"]}
        check(not by[url]["ok"] and "connect" in by[url]["error"].lower() and "attempts" in by[url]["error"],
              "the connection error is named, after retries", by)
        check(by[good]["ok"], "the directory is still written", by)
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_per_bucket_settings():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-s3bucket-")
    v = Vault(tb.BINARY, base=os.path.join(tmp, "a"))
    try:
        # every S3 destination gets the good settings, except coffre-other: another secret
        s3_settings(v, S3.endpoint, extra=["s3_secret_key_file[%s] = keys/other.secret" % OTHER_BUCKET])
        with open(os.path.join(v.data, "keys", "other.secret"), "w") as f:
            f.write("the-other-bucket-secret\n")
        v.start()
        v.upload_ok(doc_bytes(3), name="x.pdf")
        good, other = "s3://%s/pb" % BUCKET, "s3://%s/pb" % OTHER_BUCKET
        r = run(["backup", "init", "--data", v.data, "--to", good], env=clean_env())
        check(r.returncode == 0, "init of the bucket with the common settings", out(r))
        r = run(["backup", "init", "--data", v.data, "--to", other], env=clean_env())
        check(r.returncode == 1 and b"SignatureDoesNotMatch" in r.stderr,
              "the other bucket takes its own (wrong) secret", out(r))
        check(b"the-other-bucket-secret" not in r.stdout + r.stderr, "the secret appears in the output")
        with open(os.path.join(v.data, "keys", "other.secret"), "w") as f:
            f.write(SECRET_KEY + "\n")
        r = run(["backup", "init", "--data", v.data, "--to", other], env=clean_env())
        check(r.returncode == 0, "with the right secret for that bucket", out(r))
        r = run(["backup", "run", "--data", v.data, "--json"], env=clean_env())
        check(r.returncode == 0 and all(d["ok"] for d in json.loads(r.stdout)["destinations"]),
              "both buckets written", out(r))
        r = run(["backup", "init", "--data", v.data, "--to", "s3://coffre-missing/pb"], env=clean_env())
        check(r.returncode == 1 and b"NoSuchBucket" in r.stderr and b"create the bucket first" in r.stderr,
              "a bucket that does not exist is named", out(r))
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_session_token_sent_and_signed():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-s3token-")
    v = Vault(tb.BINARY, base=os.path.join(tmp, "a"))
    try:
        s3_settings(v, S3.endpoint, extra=["s3_session_token_file = keys/s3.token"])
        with open(os.path.join(v.data, "keys", "s3.token"), "w") as f:
            f.write("FQoGZXIvYXdzEXAMPLETOKEN0123456789\n")
        S3.take_requests()
        r = run(["backup", "init", "--data", v.data, "--to", "s3://%s/tok" % BUCKET],
                env=clean_env(AWS_SESSION_TOKEN="from-the-environment"))
        check(r.returncode == 0, "init with a session token", out(r))
        reqs = S3.take_requests()
        check(reqs and all(q["headers"].get("x-amz-security-token") == "FQoGZXIvYXdzEXAMPLETOKEN0123456789"
                           for q in reqs), "the token of s3_session_token_file on every request",
              [q["headers"].get("x-amz-security-token") for q in reqs])
        for q in reqs:
            auth = _parse_auth(q["headers"]["authorization"])
            check("x-amz-security-token" in auth[4], "the token is signed", auth[4])
        check(b"FQoGZXIvYXdzEXAMPLETOKEN" not in r.stdout + r.stderr, "the token appears in the output")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_kill_during_multipart_then_next_run_completes():
    tmp = tempfile.mkdtemp(prefix="coffre-backup-s3kill-")
    v = Vault(tb.BINARY, base=os.path.join(tmp, "a"))
    seen, release = threading.Event(), threading.Event()

    def hold_second_part(method, path):
        if method == "PUT" and "partNumber=2" in path and not release.is_set():
            seen.set()
            release.wait(120)
    try:
        master = os.path.join(tmp, "master.key")
        shutil.copy(os.path.join(v.data, "keys", "master.key"), master)
        os.chmod(master, 0o600)
        s3_settings(v, S3.endpoint, extra=["s3_part_size_mib = 5"])
        v.start()
        big = os.urandom(11 << 20)
        big_id = v.upload_ok(big, name="big.pdf")["id"]
        url = "s3://%s/killed" % BUCKET
        r = run(["backup", "init", "--data", v.data, "--to", url], env=clean_env())
        check(r.returncode == 0, "backup init", out(r))
        S3.hook = hold_second_part
        p = subprocess.Popen([os.path.abspath(tb.BINARY), "backup", "run", "--data", v.data, "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        try:
            check(seen.wait(120), "the run never reached its second part")
            p.kill()  # SIGKILL while the second part is in flight
            p.communicate(timeout=60)
        finally:
            release.set()
            S3.hook = None
        env = clean_env(AWS_ENDPOINT_URL=S3.endpoint, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                        AWS_S3_FORCE_PATH_STYLE="true", AWS_CA_BUNDLE=S3.ca_file)
        r = run(["backup", "verify", "--from", url, "--master-key", master, "--read-data", "--json"], env=env)
        check(r.returncode == 0, "the repository verifies after kill -9 mid-upload", out(r))
        r = run(["backup", "run", "--data", v.data, "--json"], env=clean_env())
        check(r.returncode == 0, "the next run completes", out(r))
        r = run(["backup", "verify", "--from", url, "--master-key", master, "--read-data", "--json"], env=env)
        check(r.returncode == 0, "and verifies", out(r))
        token = v.token
        check(v.stop() == 0, "server did not stop cleanly")
        base = tempfile.mkdtemp(prefix="restored-", dir=tmp)
        r = run(["restore", "--data", os.path.join(base, "vault"), "--master-key", master, "--json", "--from", url],
                env=env)
        check(r.returncode == 0, "restore after the interrupted run", out(r))
        check_restored(base, token, [(big_id, big)], "restore after kill -9")
    finally:
        v.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    global S3
    try:
        with S3Server(tls=True) as s:
            S3 = s
            return run_tests([
                test_run_writes_both,
                test_no_overwrite,
                test_dates_from_last_modified,
                test_drill_with_s3,
                test_round_trip_from_s3_alone_and_from_dir,
                test_object_lock_headers,
                test_wrong_secret_and_unreachable,
                test_per_bucket_settings,
                test_session_token_sent_and_signed,
                test_kill_during_multipart_then_next_run_completes,
            ])
    finally:
        if ST is not None:
            ST.close()


if __name__ == "__main__":
    sys.exit(exit_status(main()))
