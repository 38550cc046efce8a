#!/usr/bin/env python3
"""test_witness.py: `coffre witness` against real vaults.

A witness run with --once cosigns the latest checkpoint and its cosignature is then served on
GET /v1/audit/checkpoint?size=N; a later run checks the consistency proof and cosigns again.
Then the witness is shown a rollback (the server restarted on an older copy of its data
directory) and two forks (a second vault with the same log key but other entries: one at the
same size, one larger): each time it exits 3, says why, cosigns nothing and keeps its state.
The state file is created 0600 and refused once others can read it.
Usage: test_witness.py PATH/TO/coffre
"""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

from harness import TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
CHECKPOINT_DEADLINE = 15.0

V = None  # the witnessed vault
STATE = None  # the witness's state file
WITNESS_VKEY = None
LOG_KEY = None  # V's DATA/keys/log.vkey, pinned by the witness
OLD_COPY = None  # V's data directory at an earlier size
COSIGNED = {}  # size -> root the witness cosigned


def set_witness(data_dir, vkey):
    """Adds `witness = vkey` under [audit] in DATA/coffre.conf."""
    path = os.path.join(data_dir, "coffre.conf")
    with open(path) as f:
        lines = f.read().split("\n")
    i = lines.index("[audit]")
    lines.insert(i + 1, "witness = " + vkey)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def witness(vault, *extra):
    args = [BINARY, "witness", "--state", STATE, "--once", *extra]
    r = subprocess.run(args, capture_output=True, timeout=120, env=vault.cli_env())
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def latest_checkpoint(vault):
    r = vault.request("GET", "/v1/audit/checkpoint")
    check(r.status == 200, "GET /v1/audit/checkpoint: %d" % r.status, r)
    return r.body.decode()


def checkpoint_size(note):
    return int(note.split("\n")[1])


def wait_checkpoint(vault, size, exact=False):
    """Polls (bounded) until the latest checkpoint covers size entries; returns the note."""
    deadline = time.monotonic() + CHECKPOINT_DEADLINE
    while True:
        note = latest_checkpoint(vault)
        got = checkpoint_size(note)
        if got == size or (got > size and not exact):
            return note
        check(got <= size, "checkpoint went past size %d (now %d)" % (size, got))
        if time.monotonic() > deadline:
            raise TestFailure("no checkpoint of size %d within %ss (latest %d)" % (size, CHECKPOINT_DEADLINE, got))
        time.sleep(0.05)  # polling interval, bounded by the deadline above


def witness_lines(note):
    name = WITNESS_VKEY.split("+")[0]
    return [l for l in note.split("\n") if l.startswith("\u2014 " + name + " ")]


def key_bytes(vkey):
    return base64.b64decode(vkey.split("+", 2)[2])


def state_text():
    with open(STATE) as f:
        return f.read()


def upload_n(vault, n, tag):
    for i in range(n):
        vault.upload_ok(b"%s %d\n" % (tag.encode(), i), name="%s-%d.txt" % (tag, i))


def cosigned_ok(rc, out, err):
    check(rc == 0, "witness --once exited %d" % rc, out, err)
    m = re.match(r"^cosigned checkpoint size (\d+) root (\S+)$", out.strip())
    check(m, "unexpected witness output", out)
    COSIGNED[int(m.group(1))] = m.group(2)
    return int(m.group(1))


def refused(vault, why, words):
    before_state = state_text()
    before_note = latest_checkpoint(vault)
    rc, out, err = witness(vault, "--log-key", LOG_KEY)
    check(rc == 3, "%s: witness exited %d, expected 3" % (why, rc), out, err)
    check("cosigned" not in out, "%s: the witness says it cosigned" % why, out)
    check(words in err, "%s: stderr does not say %r" % (why, words), err)
    check(state_text() == before_state, "%s: the state file changed" % why)
    after_note = latest_checkpoint(vault)
    check(witness_lines(after_note) == witness_lines(before_note),
          "%s: a new cosignature appeared on the server" % why, after_note)
    print("    %s -> %s" % (why, err.strip().splitlines()[-1]))


# -- setup ---------------------------------------------------------------------------------


def setup():
    global V, STATE, WITNESS_VKEY, LOG_KEY
    V = Vault(BINARY)
    STATE = os.path.join(V.base, "witness.state")
    LOG_KEY = os.path.join(V.base, "log.vkey")
    shutil.copy(os.path.join(V.data, "keys", "log.vkey"), LOG_KEY)
    r = subprocess.run([BINARY, "witness", "--state", STATE, "--print-key", "--name", "witness.example"],
                       capture_output=True, timeout=60)
    check(r.returncode == 0, "--print-key exited %d" % r.returncode, r.stderr)
    WITNESS_VKEY = r.stdout.decode().strip()
    check(re.match(r"^witness\.example\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$", WITNESS_VKEY), "vkey %r" % WITNESS_VKEY)
    check(key_bytes(WITNESS_VKEY)[0] == 0x04, "the witness key is not of type cosignature/v1")
    set_witness(V.data, WITNESS_VKEY)
    V.start()


# -- tests -----------------------------------------------------------------------------------


def test_state_file_created_private():
    check(os.stat(STATE).st_mode & 0o777 == 0o600, "state file mode %o" % (os.stat(STATE).st_mode & 0o777))
    text = state_text()
    check(text.startswith("coffre-witness-state 1\nkey PRIVATE+KEY+witness.example+"), "state content")
    r = subprocess.run([BINARY, "witness", "--state", STATE, "--print-key"], capture_output=True, timeout=60)
    check(r.returncode == 0 and r.stdout.decode().strip() == WITNESS_VKEY, "--print-key is not stable")
    check(b"PRIVATE" not in r.stdout + r.stderr, "the private key was printed")


def test_cosign_once():
    upload_n(V, 3, "first")
    wait_checkpoint(V, 3)
    rc, out, err = witness(V, "--log-key", LOG_KEY)
    size = cosigned_ok(rc, out, err)
    r = V.request("GET", "/v1/audit/checkpoint?size=%d" % size)
    check(r.status == 200, "GET checkpoint?size=%d: %d" % (size, r.status), r)
    lines = witness_lines(r.body.decode())
    check(len(lines) == 1, "no cosignature of the witness on checkpoint %d" % size, r.body)
    sig = base64.b64decode(lines[0].split(" ")[2])
    check(len(sig) == 4 + 8 + 64, "a cosignature/v1 is key ID, timestamp and signature (got %d bytes)" % len(sig))
    check(sig[:4] == bytes.fromhex(WITNESS_VKEY.split("+")[1]), "the cosignature's key ID is not the witness's")
    check(abs(int.from_bytes(sig[4:12], "big") - time.time()) < 600, "cosignature timestamp is not now")
    check("checkpoint %d %s\n" % (size, COSIGNED[size]) in state_text(), "state does not hold the checkpoint")
    check("log-key " + open(LOG_KEY).read().strip() in state_text(), "state does not pin the log key")


def test_cosign_after_growth():
    global OLD_COPY
    # Keep a copy of the data directory at this size for the rollback test.
    check(V.stop() == 0, "server did not stop cleanly")
    OLD_COPY = os.path.join(V.base, "old-vault")
    shutil.copytree(V.data, OLD_COPY, symlinks=True)
    V.start()
    old = max(COSIGNED)
    upload_n(V, 4, "second")
    wait_checkpoint(V, old + 4)
    size = cosigned_ok(*witness(V, "--log-key", LOG_KEY))
    check(size >= old + 4, "cosigned size %d, expected at least %d" % (size, old + 4))
    r = V.request("GET", "/v1/audit/checkpoint?size=%d" % size)
    check(r.status == 200 and len(witness_lines(r.body.decode())) == 1, "cosignature not served", r)


def test_loose_state_permissions_refused():
    os.chmod(STATE, 0o644)
    try:
        rc, out, err = witness(V, "--log-key", LOG_KEY)
        check(rc == 1, "witness with a 0644 state exited %d" % rc, out, err)
        check("chmod 600" in err and "cosigned" not in out, "message", err)
    finally:
        os.chmod(STATE, 0o600)


def test_other_log_key_refused():
    other = os.path.join(V.base, "other.vkey")
    o = Vault(BINARY)
    try:
        shutil.copy(os.path.join(o.data, "keys", "log.vkey"), other)
    finally:
        o.close()
    rc, out, err = witness(V, "--log-key", other)
    check(rc == 1 and "pinned" in err, "a witness accepted another log key: exit %d" % rc, out, err)


def test_rollback_refused():
    check(V.stop() == 0, "server did not stop cleanly")
    old = Vault(BINARY, init=False, base=os.path.join(V.base, "rollback-run"))
    os.makedirs(old.base, exist_ok=True)
    old.data, old.token, old.cacert = OLD_COPY, V.token, os.path.join(OLD_COPY, "tls", "cert.pem")
    try:
        old.start()
        check(checkpoint_size(latest_checkpoint(old)) < max(COSIGNED), "the old copy is not older")
        refused(old, "rollback", "rollback")
    finally:
        old.close()
        V.start()


def fork_vault():
    """A new vault that signs with V's log key (and origin) but holds other entries."""
    f = Vault(BINARY)
    for name in ("log.key", "log.vkey"):
        shutil.copy(os.path.join(V.data, "keys", name), os.path.join(f.data, "keys", name))
    os.chmod(os.path.join(f.data, "keys", "log.key"), 0o600)
    origin = re.search(r"^origin = (.*)$", open(os.path.join(V.data, "coffre.conf")).read(), re.M).group(1)
    conf = os.path.join(f.data, "coffre.conf")
    text = re.sub(r"^origin = .*$", "origin = " + origin, open(conf).read(), flags=re.M)
    with open(conf, "w") as fh:
        fh.write(text)
    set_witness(f.data, WITNESS_VKEY)
    # init signed its first checkpoint with the vault's own key: with another key in place the
    # vault rightly refuses to start, so the fork starts from an unsigned log
    os.remove(os.path.join(f.data, "audit", "checkpoints"))
    # and, as after a crash, no stop marker: its vault.init entry is then signed at start on the
    # strength of its record MAC (an entry past a clean stop's checkpoint would be refused)
    os.remove(os.path.join(f.data, "audit", "stopped"))
    return f


def test_fork_refused():
    seen = max(COSIGNED)
    f = fork_vault()
    try:
        f.start()
        # Same size, other root (the fork's log starts with its own vault.init entry, and the
        # audit.recover entry that records its signing at start).
        upload_n(f, seen - 2, "fork")
        wait_checkpoint(f, seen, exact=True)
        refused(f, "fork at the same size", "fork")
        # Larger: the consistency proof from the size seen cannot verify.
        upload_n(f, 3, "fork-more")
        wait_checkpoint(f, seen + 3)
        refused(f, "fork at a larger size", "fork")
    finally:
        f.close()


def test_still_cosigns_the_real_log():
    want = max(COSIGNED) + 1
    upload_n(V, 1, "third")
    wait_checkpoint(V, want)
    size = cosigned_ok(*witness(V, "--log-key", LOG_KEY))
    check(size >= want, "the witness cosigned size %d, not the grown log (%d)" % (size, want))


def main():
    try:
        setup()
        rc = run_tests([test_state_file_created_private, test_cosign_once, test_cosign_after_growth,
                        test_loose_state_permissions_refused, test_other_log_key_refused, test_rollback_refused,
                        test_fork_refused, test_still_cosigns_the_real_log])
    finally:
        if V is not None:
            V.close()
    return exit_status(rc)


if __name__ == "__main__":
    sys.exit(main())
