#!/usr/bin/env python3
"""test_witness.py: `coffre witness` against real vaults.

A witness run with --once cosigns the latest checkpoint and its cosignature is then served on
GET /v1/audit/checkpoint?size=N; a later run checks the consistency proof and cosigns again.
Then the witness is shown a rollback (the server restarted on an older copy of its data
directory) and two forks (a second vault with the same log key but other entries: one at the
same size, one larger): each time it exits 3, says why, cosigns nothing and keeps its state,
and it still cosigns the real log afterwards. The state file is created 0600 and refused once
others can read it. Each test makes its own vault and witness state: none depends on another.
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


class Witnessed:
    """A fresh vault configured to accept one witness, its server running, and that witness's
    state file (key made with --print-key, nothing cosigned yet)."""

    def __init__(self):
        self.vault = Vault(BINARY)
        self.state = os.path.join(self.vault.base, "witness.state")
        self.log_key = os.path.join(self.vault.base, "log.vkey")
        self.cosigned = {}  # size -> root the witness cosigned
        shutil.copy(os.path.join(self.vault.data, "keys", "log.vkey"), self.log_key)
        r = subprocess.run([BINARY, "witness", "--state", self.state, "--print-key", "--name", "witness.example"],
                           capture_output=True, timeout=60)
        check(r.returncode == 0, "--print-key exited %d" % r.returncode, r.stderr)
        self.vkey = r.stdout.decode().strip()
        check(re.match(r"^witness\.example\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$", self.vkey), "vkey %r" % self.vkey)
        check(key_bytes(self.vkey)[0] == 0x04, "the witness key is not of type cosignature/v1")
        set_witness(self.vault.data, self.vkey)
        self.vault.start()

    def close(self):
        self.vault.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def run(self, vault, *extra):
        args = [BINARY, "witness", "--state", self.state, "--once", *extra]
        r = subprocess.run(args, capture_output=True, timeout=120, env=vault.cli_env())
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def state_text(self):
        with open(self.state) as f:
            return f.read()

    def lines(self, note):
        name = self.vkey.split("+")[0]
        return [l for l in note.split("\n") if l.startswith("\u2014 " + name + " ")]

    def cosigned_ok(self, rc, out, err):
        check(rc == 0, "witness --once exited %d" % rc, out, err)
        m = re.match(r"^cosigned checkpoint size (\d+) root (\S+)$", out.strip())
        check(m, "unexpected witness output", out)
        self.cosigned[int(m.group(1))] = m.group(2)
        return int(m.group(1))

    def cosign_after(self, n, tag):
        """Uploads n documents to the vault, waits for a checkpoint over them, cosigns it."""
        before = checkpoint_size(latest_checkpoint(self.vault))
        upload_n(self.vault, n, tag)
        wait_checkpoint(self.vault, before + n)
        return self.cosigned_ok(*self.run(self.vault, "--log-key", self.log_key))

    def refused(self, vault, why, words):
        before_state = self.state_text()
        before_note = latest_checkpoint(vault)
        rc, out, err = self.run(vault, "--log-key", self.log_key)
        check(rc == 3, "%s: witness exited %d, expected 3" % (why, rc), out, err)
        check("cosigned" not in out, "%s: the witness says it cosigned" % why, out)
        check(words in err, "%s: stderr does not say %r" % (why, words), err)
        check(self.state_text() == before_state, "%s: the state file changed" % why)
        after_note = latest_checkpoint(vault)
        check(self.lines(after_note) == self.lines(before_note),
              "%s: a new cosignature appeared on the server" % why, after_note)
        print("    %s -> %s" % (why, err.strip().splitlines()[-1]))


def set_witness(data_dir, vkey):
    """Adds `witness = vkey` under [audit] in DATA/coffre.conf."""
    path = os.path.join(data_dir, "coffre.conf")
    with open(path) as f:
        lines = f.read().split("\n")
    i = lines.index("[audit]")
    lines.insert(i + 1, "witness = " + vkey)
    with open(path, "w") as f:
        f.write("\n".join(lines))


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


def key_bytes(vkey):
    return base64.b64decode(vkey.split("+", 2)[2])


def upload_n(vault, n, tag):
    for i in range(n):
        vault.upload_ok(b"%s %d\n" % (tag.encode(), i), name="%s-%d.txt" % (tag, i))


# -- tests -----------------------------------------------------------------------------------


def test_state_file_created_private():
    with Witnessed() as w:
        check(os.stat(w.state).st_mode & 0o777 == 0o600, "state file mode %o" % (os.stat(w.state).st_mode & 0o777))
        text = w.state_text()
        check(text.startswith("coffre-witness-state 1\nkey PRIVATE+KEY+witness.example+"), "state content")
        r = subprocess.run([BINARY, "witness", "--state", w.state, "--print-key"], capture_output=True, timeout=60)
        check(r.returncode == 0 and r.stdout.decode().strip() == w.vkey, "--print-key is not stable")
        check(b"PRIVATE" not in r.stdout + r.stderr, "the private key was printed")


def test_cosign_once():
    with Witnessed() as w:
        size = w.cosign_after(3, "first")
        r = w.vault.request("GET", "/v1/audit/checkpoint?size=%d" % size)
        check(r.status == 200, "GET checkpoint?size=%d: %d" % (size, r.status), r)
        lines = w.lines(r.body.decode())
        check(len(lines) == 1, "no cosignature of the witness on checkpoint %d" % size, r.body)
        sig = base64.b64decode(lines[0].split(" ")[2])
        check(len(sig) == 4 + 8 + 64, "a cosignature/v1 is key ID, timestamp and signature (got %d bytes)" % len(sig))
        check(sig[:4] == bytes.fromhex(w.vkey.split("+")[1]), "the cosignature's key ID is not the witness's")
        check(abs(int.from_bytes(sig[4:12], "big") - time.time()) < 600, "cosignature timestamp is not now")
        check("checkpoint %d %s\n" % (size, w.cosigned[size]) in w.state_text(), "state does not hold the checkpoint")
        check("log-key " + open(w.log_key).read().strip() in w.state_text(), "state does not pin the log key")


def test_cosign_after_growth():
    with Witnessed() as w:
        old = w.cosign_after(3, "first")
        size = w.cosign_after(4, "second")
        check(size >= old + 4, "cosigned size %d, expected at least %d" % (size, old + 4))
        r = w.vault.request("GET", "/v1/audit/checkpoint?size=%d" % size)
        check(r.status == 200 and len(w.lines(r.body.decode())) == 1, "cosignature not served", r)
        check("checkpoint %d %s\n" % (size, w.cosigned[size]) in w.state_text(), "the state did not advance")


def test_loose_state_permissions_refused():
    with Witnessed() as w:
        os.chmod(w.state, 0o644)
        rc, out, err = w.run(w.vault, "--log-key", w.log_key)
        check(rc == 1, "witness with a 0644 state exited %d" % rc, out, err)
        check("chmod 600" in err and "cosigned" not in out, "message", err)


def test_other_log_key_refused():
    with Witnessed() as w:
        w.cosign_after(1, "pin")  # the state now pins the vault's log key
        other = os.path.join(w.vault.base, "other.vkey")
        o = Vault(BINARY)
        try:
            shutil.copy(os.path.join(o.data, "keys", "log.vkey"), other)
        finally:
            o.close()
        rc, out, err = w.run(w.vault, "--log-key", other)
        check(rc == 1 and "pinned" in err, "a witness accepted another log key: exit %d" % rc, out, err)


def test_rollback_refused():
    with Witnessed() as w:
        V = w.vault
        w.cosign_after(3, "first")
        # a copy of the data directory at this size, then the real vault grows and is cosigned
        check(V.stop() == 0, "server did not stop cleanly")
        old_copy = os.path.join(V.base, "old-vault")
        shutil.copytree(V.data, old_copy, symlinks=True)
        V.start()
        w.cosign_after(4, "second")
        check(V.stop() == 0, "server did not stop cleanly")
        old = Vault(BINARY, init=False, base=os.path.join(V.base, "rollback-run"))
        os.makedirs(old.base, exist_ok=True)
        old.data, old.token, old.cacert = old_copy, V.token, os.path.join(old_copy, "tls", "cert.pem")
        try:
            old.start()
            check(checkpoint_size(latest_checkpoint(old)) < max(w.cosigned), "the old copy is not older")
            w.refused(old, "rollback", "rollback")
        finally:
            old.close()


def fork_vault(w):
    """A new vault that signs with w's vault's log key (and origin) but holds other entries."""
    V = w.vault
    f = Vault(BINARY)
    for name in ("log.key", "log.vkey"):
        shutil.copy(os.path.join(V.data, "keys", name), os.path.join(f.data, "keys", name))
    os.chmod(os.path.join(f.data, "keys", "log.key"), 0o600)
    origin = re.search(r"^origin = (.*)$", open(os.path.join(V.data, "coffre.conf")).read(), re.M).group(1)
    conf = os.path.join(f.data, "coffre.conf")
    text = re.sub(r"^origin = .*$", "origin = " + origin, open(conf).read(), flags=re.M)
    # one entry per upload (no document.seal), so that the fork can be brought to any size
    text = re.sub(r"^enabled = .*$", "enabled = no", text, flags=re.M)
    with open(conf, "w") as fh:
        fh.write(text)
    set_witness(f.data, w.vkey)
    # init signed its first checkpoint with the vault's own key: with another key in place the
    # vault rightly refuses to start, so the fork starts from an unsigned log
    os.remove(os.path.join(f.data, "audit", "checkpoints"))
    # and the signer's own memory (keys/log.state) is of that first checkpoint under the
    # vault's own origin: a forger holding the key starts the signer from an empty state
    state = os.path.join(f.data, "keys", "log.state")
    with open(state, "w"):
        pass
    os.chmod(state, 0o600)
    # and, as after a crash, no stop marker: its vault.init entry is then signed at start on the
    # strength of its record MAC (an entry past a clean stop's checkpoint would be refused)
    os.remove(os.path.join(f.data, "audit", "stopped"))
    return f


def test_fork_refused():
    with Witnessed() as w:
        seen = w.cosign_after(3, "first")
        f = fork_vault(w)
        try:
            f.start()
            # Same size, other root (the fork's log starts with its own vault.init entry, and the
            # audit.recover entry that records its signing at start).
            upload_n(f, seen - 2, "fork")
            wait_checkpoint(f, seen, exact=True)
            w.refused(f, "fork at the same size", "fork")
            # Larger: the consistency proof from the size seen cannot verify.
            upload_n(f, 3, "fork-more")
            wait_checkpoint(f, seen + 3)
            w.refused(f, "fork at a larger size", "fork")
        finally:
            f.close()
        # a refusal leaves the witness able to cosign the real log as it grows
        want = max(w.cosigned) + 1
        size = w.cosign_after(1, "third")
        check(size >= want, "the witness cosigned size %d, not the grown log (%d)" % (size, want))


TESTS = [test_state_file_created_private, test_cosign_once, test_cosign_after_growth,
         test_loose_state_permissions_refused, test_other_log_key_refused, test_rollback_refused,
         test_fork_refused]


def main():
    return exit_status(run_tests(TESTS))


if __name__ == "__main__":
    sys.exit(main())
