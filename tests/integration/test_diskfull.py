#!/usr/bin/env python3
"""test_diskfull.py: a full disk gives 507, leaves nothing behind, and the vault recovers.

A vault on a 64 MiB tmpfs: one upload larger than the whole filesystem, then 1 MiB uploads
until 507. Each refused upload must answer problem+json insufficient-storage and leave DIR/tmp,
DIR/objects and the listing as they were; earlier documents still download, /healthz still
answers; after deleting a few documents uploads succeed again.
Mounts the tmpfs as root, or else (not root, or root without CAP_SYS_ADMIN) as root of a user
namespace (util-linux unshare); exits 77 (skipped) only when neither is possible.
Usage: test_diskfull.py PATH/TO/coffre
"""

import os
import subprocess
import sys
import tempfile

from harness import SKIP, TestFailure, Vault, check, exit_status, expect_problem, random_chunks

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
FS_SIZE = 64 << 20
DOC = 1 << 20


def doc_bytes(i):
    return b"".join(random_chunks(DOC, seed=1000 + i))


def assert_nothing_left(v, listing, objects, what):
    check(v.tmp_files() == [], "%s left %r in DIR/tmp" % (what, v.tmp_files()))
    check(v.object_files() == objects, "%s changed DIR/objects" % what)
    check(v.list_all() == listing, "%s changed the listing" % what)


def run(v):
    v.start()
    r = v.request("GET", "/healthz", auth=False)
    check(r.status == 200, "healthz before filling: %d" % r.status)

    # One upload bigger than the filesystem, streamed: 507 mid-body.
    listing, objects = v.list_all(), v.object_files()
    resp, sent = v.stream_upload({"name": "huge.bin"}, random_chunks(2 * FS_SIZE, seed=5), length=2 * FS_SIZE)
    check(resp is not None, "no answer to an upload larger than the disk (%d bytes sent)" % sent)
    expect_problem(resp, 507, "insufficient-storage")
    assert_nothing_left(v, listing, objects, "an upload larger than the disk")

    stored = []  # (id, index)
    full = None
    for i in range(200):
        listing, objects = v.list_all(), v.object_files()
        r = v.upload(doc_bytes(i), name="fill-%d.bin" % i, cls="fill")
        if r.status == 201:
            stored.append((r.json()["id"], i))
            continue
        full = r
        break
    check(full is not None, "200 MiB went into a 64 MiB filesystem without a 507")
    print("507 after %d documents of 1 MiB" % len(stored))
    check(len(stored) >= 20, "only %d MiB fit in a 64 MiB filesystem" % len(stored))
    expect_problem(full, 507, "insufficient-storage")
    assert_nothing_left(v, listing, objects, "the upload that got 507")

    # Small uploads may still fit; whatever fits must be whole, whatever does not must leave nothing.
    for k in range(64):
        listing, objects = v.list_all(), v.object_files()
        data = doc_bytes(2000 + k)[:64 * 1024]
        r = v.upload(data, name="small-%d.bin" % k, cls="fill")
        if r.status == 201:
            check(v.download(r.json()["id"]).body == data, "a small document on a nearly full disk is wrong")
            continue
        expect_problem(r, 507, "insufficient-storage")
        assert_nothing_left(v, listing, objects, "a small upload on a full disk")
        break
    else:
        raise TestFailure("4 MiB of small uploads fitted after the disk was full")

    check(v.request("GET", "/healthz", auth=False).status == 200, "healthz fails on a full disk")
    for doc_id, i in (stored[0], stored[len(stored) // 2], stored[-1]):
        r = v.download(doc_id)
        check(r.status == 200 and r.body == doc_bytes(i), "document %s unreadable on a full disk" % doc_id)
    check(v.request("GET", "/metrics", auth=False).status == 200, "/metrics fails on a full disk")

    for doc_id, _ in stored[:4]:
        r = v.request("DELETE", "/v1/documents/" + doc_id)
        check(r.status == 204, "DELETE on a full disk: %d" % r.status, r)
    for j in range(2):
        r = v.upload(doc_bytes(500 + j), name="after-%d.bin" % j, cls="fill")
        check(r.status == 201, "upload after freeing 4 MiB: %d" % r.status, r)
        got = v.download(r.json()["id"])
        check(got.body == doc_bytes(500 + j), "document stored after freeing space is wrong")
    check(v.stop() == 0, "SIGTERM did not exit 0")
    v.start()
    check(v.tmp_files() == [], "DIR/tmp not empty after restart")
    check(v.stop() == 0, "SIGTERM after restart did not exit 0")


IN_NAMESPACE = "COFFRE_DISKFULL_USERNS"


def reexec_in_user_namespace(why):
    """Runs this test again as root of a user namespace with a mount namespace of its own, where
    a tmpfs can be mounted without privileges outside (not root, or root without CAP_SYS_ADMIN
    as in many containers). Returns only when that is not possible."""
    if os.environ.get(IN_NAMESPACE):
        print("SKIP: cannot mount a tmpfs, even in a user namespace: %s" % why)
        return SKIP
    print("%s: running in a user namespace" % why, flush=True)
    env = dict(os.environ, **{IN_NAMESPACE: "1"})
    cmd = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
           sys.executable, os.path.abspath(__file__), os.path.abspath(BINARY)]
    try:
        return subprocess.run(cmd, env=env, timeout=280).returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        print("SKIP: cannot enter a user namespace: %s" % e)
        return SKIP


def main():
    if os.geteuid() != 0:
        return reexec_in_user_namespace("not root")
    base = tempfile.mkdtemp(prefix="coffre-diskfull-")
    mnt = os.path.join(base, "mnt")
    os.mkdir(mnt)
    mounted = False
    v = None
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % FS_SIZE, "tmpfs", mnt],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            return reexec_in_user_namespace("cannot mount a tmpfs (%s)" % r.stderr.decode(errors="replace").strip())
        mounted = True
        v = Vault(BINARY, base=mnt, serve_args=["--max-body", str(4 * FS_SIZE)])
        # The port file and the server log go outside the small filesystem.
        v.run_dir = base
        v.log_path = os.path.join(base, "server.log")
        try:
            run(v)
        except (TestFailure, AssertionError) as e:
            print("FAIL: %s\n%s" % (e, v.log_tail(30)))
            return 1
        print("ok: 507 on a full disk, nothing left behind, recovery after deletes")
        return 0
    finally:
        if v is not None:
            v.close()
        if mounted:
            r = subprocess.run(["umount", mnt], capture_output=True, timeout=60)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=60)
        subprocess.run(["rm", "-rf", "--one-file-system", base], timeout=120)


if __name__ == "__main__":
    sys.exit(exit_status(main()))
