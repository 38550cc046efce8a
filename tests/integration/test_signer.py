#!/usr/bin/env python3
"""test_signer.py: the signer process as the server's users see it.

- kill -9 of the signer (a grandchild of `coffre serve`, found through /proc) while uploads
  run: /healthz answers 503 while it is down (its restart held off by a key file it refuses),
  uploads meanwhile get 503 signer-unavailable with Retry-After, then it is restarted, /healthz
  is 200 again, checkpoints cover every acknowledged upload and each has a seal that
  `openssl cms -verify` accepts;
- with the restart held off past [audit] stall_timeout, uploads and deletes get 503 with
  Retry-After, and nothing of the refused upload is stored; once the signer is back, writes
  resume and every acknowledged document is there and covered by a checkpoint;
- the signer's memory is its own file: a server restarted on an older copy of the log (a
  rollback) gets no checkpoint signed, and a log rewritten from that copy with other entries
  (a fork) neither; a server without keys/log.state refuses to start and says so;
- the live signer runs under a seccomp filter, with no new privileges, holding only its
  channel, stderr, its state file and DATA/keys (for the key files of a new organisation).
Usage: test_signer.py PATH/TO/coffre
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

from harness import TestFailure, Vault, check, exit_status, expect_problem, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
DEADLINE = 30.0  # bound of every poll below; none is used to wait for something to happen

V = None
ACKED = {}  # name -> document id, every upload answered 201


def set_stall_timeout(data_dir, seconds):
    path = os.path.join(data_dir, "coffre.conf")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"^stall_timeout = .*\n", "", text, flags=re.M)
    text = text.replace("[audit]\n", "[audit]\nstall_timeout = %d\n" % seconds, 1)
    with open(path, "w") as f:
        f.write(text)


def set_seal(data_dir, enabled):
    path = os.path.join(data_dir, "coffre.conf")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"^enabled = .*\n", "enabled = %s\n" % ("yes" if enabled else "no"), text, flags=re.M)
    with open(path, "w") as f:
        f.write(text)


def children(pid):
    out = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def signer_pid(vault):
    """The pid of the live signer: a child of the server's child named coffre-sigsup."""
    for sup in children(vault.proc.pid):
        if comm(sup) != "coffre-sigsup":
            continue
        for c in children(sup):
            if comm(c) == "coffre-signer":
                return c
    return None


def poll(what, fn):
    deadline = time.monotonic() + DEADLINE
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestFailure("%s: not within %ss\n%s" % (what, DEADLINE, V.log_tail()))
        time.sleep(0.05)  # polling interval, bounded by the deadline above


def healthz(vault):
    return vault.request("GET", "/healthz", auth=False, fresh=True)


def checkpoint_size(vault):
    r = vault.request("GET", "/v1/audit/checkpoint", fresh=True)
    check(r.status == 200, "GET /v1/audit/checkpoint: %d" % r.status, r)
    return int(r.body.decode().split("\n")[1])


def log_size(vault):
    """Entries in the log, as the API states it when asked for entries past its end."""
    r = vault.request("GET", "/v1/audit/entries?start=0&end=%d" % (1 << 60), fresh=True)
    check(r.status == 400, "GET /v1/audit/entries past the end: %d" % r.status, r)
    m = re.search(r"<= (\d+) \(the log's size\)", r.json().get("detail", ""))
    check(m, "no log size in the answer", r)
    return int(m.group(1))


def key_file(vault):
    return os.path.join(vault.data, "keys", "log.key")


def block_restart(vault):
    os.chmod(key_file(vault), 0o640)  # a new signer refuses a key others may read


def allow_restart(vault):
    os.chmod(key_file(vault), 0o600)


def upload(vault, name):
    r = vault.upload(b"signer test %s\n" % name.encode(), name=name)
    if r.status == 201:
        ACKED[name] = r.json()["id"]
    return r


def expect_covered(vault):
    """Every acknowledged upload listed, and a checkpoint covering the whole log."""
    names = {d["name"]: d["id"] for d in vault.list_all()}
    for name, doc_id in ACKED.items():
        check(names.get(name) == doc_id, "acknowledged document %s is missing" % name)
    size = log_size(vault)
    poll("a checkpoint covering all %d entries" % size, lambda: checkpoint_size(vault) >= size)


def test_killed_during_uploads():
    settled(V)
    results = []
    started = threading.Event()

    def uploader():
        for i in range(40):
            r = upload(V, "during-%d.txt" % i)
            results.append(r)
            if i == 5:
                started.set()

    old = signer_pid(V)
    check(old is not None, "no signer process under the server")
    t = threading.Thread(target=uploader)
    t.start()
    check(started.wait(DEADLINE), "the uploads did not start")
    block_restart(V)
    try:
        os.kill(old, 9)
        r = poll("/healthz 503 while the signer is down", lambda: (lambda h: h if h.status == 503 else None)(healthz(V)))
        expect_problem(r, 503, "unhealthy")
        check(r.header("Retry-After"), "no Retry-After on an unhealthy /healthz", r)
    finally:
        allow_restart(V)
    t.join()
    for r in results:
        check(r.status in (201, 503), "upload answered %d" % r.status, r)
        if r.status == 503:
            check(r.json().get("type") in ("urn:coffre:problem:signer-unavailable",
                                           "urn:coffre:problem:checkpoint-stalled"),
                  "an upload refused for another reason", r)
            check(r.header("Retry-After"), "no Retry-After on a refused upload", r)
    poll("/healthz 200 once the signer is back", lambda: healthz(V).status == 200)
    new = signer_pid(V)
    check(new is not None and new != old, "the signer was not restarted (pid %s, was %d)" % (new, old))
    upload(V, "after-restart.txt")
    check("after-restart.txt" in ACKED, "no upload after the restart")
    expect_covered(V)
    # every acknowledged document carries a seal stock openssl accepts
    ca = os.path.join(V.data, "keys", "ca.pem")
    for name, doc_id in ACKED.items():
        seal = V.request("GET", "/v1/documents/%s/seal" % doc_id)
        check(seal.status == 200, "no seal for acknowledged %s" % name, seal)
        sp = os.path.join(V.base, "seal.p7s")
        dp = os.path.join(V.base, "doc.txt")
        with open(sp, "wb") as f:
            f.write(seal.body)
        with open(dp, "wb") as f:
            f.write(b"signer test %s\n" % name.encode())
        v = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", sp, "-content", dp,
                            "-CAfile", ca, "-out", os.devnull], capture_output=True)
        check(v.returncode == 0, "openssl cms -verify refuses the seal of %s" % name, v.stderr)


def settled(vault):
    """Each test starts from a healthy server whose log is covered by a checkpoint."""
    poll("/healthz 200", lambda: healthz(vault).status == 200)
    expect_covered(vault)


def test_stall_refuses_writes():
    settled(V)
    check(V.stop() == 0, "server did not stop cleanly")
    set_stall_timeout(V.data, 1)
    # without seals, so that uploads need the signer only through checkpoints (sealed uploads
    # are refused at once while it is down: test_killed_during_uploads)
    set_seal(V.data, False)
    V.start()
    victim = upload(V, "to-delete.txt")
    check(victim.status == 201, "upload: %d" % victim.status, victim)
    del ACKED["to-delete.txt"]
    expect_covered(V)
    block_restart(V)
    try:
        os.kill(signer_pid(V), 9)
        # uploads are acknowledged until no checkpoint has been possible for 1 s
        n = [0]

        def refused():
            n[0] += 1
            r = upload(V, "stall-%d.txt" % n[0])
            return r if r.status == 503 else None
        r = poll("an upload refused with 503", refused)
        expect_problem(r, 503, "checkpoint-stalled")
        check(r.header("Retry-After"), "no Retry-After on 503", r)
        objects = sorted(V.object_files())
        refused_name = "stall-refused.txt"
        r = upload(V, refused_name)
        expect_problem(r, 503, "checkpoint-stalled")
        d = V.request("DELETE", "/v1/documents/" + victim.json()["id"])
        expect_problem(d, 503, "checkpoint-stalled")
        check(d.header("Retry-After"), "no Retry-After on a refused delete", d)
        expect_problem(healthz(V), 503, "unhealthy")
        # nothing of the refused requests was stored
        check(sorted(V.object_files()) == objects, "a refused upload left an object")
        names = [x["name"] for x in V.list_all()]
        check(refused_name not in names, "the refused upload is listed")
        check("to-delete.txt" in names, "the refused delete deleted")
    finally:
        allow_restart(V)
    poll("/healthz 200 once the signer is back", lambda: healthz(V).status == 200)
    poll("uploads accepted again", lambda: upload(V, "resumed-%f.txt" % time.monotonic()).status == 201)
    expect_covered(V)
    check(V.stop() == 0, "server did not stop cleanly")
    set_seal(V.data, True)
    V.start()


def test_state_survives_and_refuses_rollback():
    # a copy of the data directory now, then more entries signed
    settled(V)
    check(V.stop() == 0, "server did not stop cleanly")
    old = os.path.join(V.base, "old-copy")
    shutil.copytree(V.data, old, symlinks=True)
    V.start()
    for i in range(3):
        check(upload(V, "later-%d.txt" % i).status == 201, "upload failed")
    expect_covered(V)
    signed = checkpoint_size(V)
    check(V.stop() == 0, "server did not stop cleanly")
    r = subprocess.run([BINARY, "audit", "verify", "--data", V.data], capture_output=True, timeout=120)
    check(r.returncode == 0, "audit verify --data: exit %d" % r.returncode, r.stdout, r.stderr)
    state = os.path.join(V.data, "keys", "log.state")
    shutil.copy(state, os.path.join(old, "keys", "log.state"))

    # the old log with the signer's current memory: a rollback. The server refuses to start on
    # it (no 201 for entries that could never be signed), and verify --data reports it
    rb = Vault(BINARY, init=False, base=os.path.join(V.base, "rollback-run"))
    os.makedirs(rb.base, exist_ok=True)
    rb.data, rb.token, rb.cacert = old, V.token, os.path.join(old, "tls", "cert.pem")
    try:
        entries_before = open(os.path.join(old, "audit", "entries"), "rb").read()
        try:
            rb.start()
        except TestFailure:
            pass
        else:
            raise TestFailure("the server started on a log older than the signer's memory")
        text = rb.log_text()
        check(b"the signer has signed a tree of %d entries" % signed in text, "no refusal naming the sizes",
              rb.log_tail())
        check(b"Nothing was changed" in text, "the refusal does not say nothing was changed", rb.log_tail())
        check(open(os.path.join(old, "audit", "entries"), "rb").read() == entries_before,
              "the refused start changed audit/entries")
        r = subprocess.run([BINARY, "audit", "verify", "--data", old], capture_output=True, timeout=120)
        check(r.returncode == 3, "audit verify --data on the rolled-back log: exit %d" % r.returncode, r.stdout,
              r.stderr)
        check(b"keys/log.state" in r.stderr, "verify does not name the signer's state", r.stderr)
    finally:
        rb.close()
    # the real vault, on its own state: still serving and signing
    V.start()
    check(upload(V, "after-rollback.txt").status == 201, "upload failed")
    expect_covered(V)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def test_signer_locked_down():
    settled(V)
    st = proc_status(signer_pid(V))
    check(st.get("Seccomp") == "2", "the signer runs without a seccomp filter", st.get("Seccomp"))
    check(st.get("NoNewPrivs") == "1", "the signer may gain privileges", st.get("NoNewPrivs"))
    fds = sorted(int(x) for x in os.listdir("/proc/%d/fd" % signer_pid(V)))
    check(fds == [0, 2, 3, 4], "the signer holds descriptors %r, not just its channel, stderr, state and keys/"
          % fds)
    target = os.readlink("/proc/%d/fd/3" % signer_pid(V))
    check(target.endswith("/keys/log.state"), "fd 3 of the signer is %s" % target)


def test_missing_state_refused():
    settled(V)
    check(V.stop() == 0, "server did not stop cleanly")
    state = os.path.join(V.data, "keys", "log.state")
    os.rename(state, state + ".away")
    try:
        try:
            V.start()
        except TestFailure:
            pass
        else:
            raise TestFailure("the server started without keys/log.state")
        check(b"log.state is missing" in V.log_text(), "no clear message about keys/log.state", V.log_tail())
    finally:
        os.rename(state + ".away", state)
    V.start()
    check(upload(V, "after-missing-state.txt").status == 201, "upload failed")
    expect_covered(V)


def main():
    global V
    V = Vault(BINARY)
    set_stall_timeout(V.data, 30)
    try:
        V.start()
        return run_tests([test_killed_during_uploads, test_stall_refuses_writes,
                          test_state_survives_and_refuses_rollback, test_signer_locked_down,
                          test_missing_state_refused])
    finally:
        V.close()


if __name__ == "__main__":
    sys.exit(exit_status(main()))
