#!/usr/bin/env python3
"""test_hsm_master.py: the master key on a SoftHSM2 token (the test's own, softhsm.py).

- `coffre init --master-key pkcs11:...` makes an AES-256 key and an HMAC key on the token, both
  sensitive and never extractable, writes no keys/master.key; uploads and downloads work under
  the sandbox, across a restart and a kill -9 (the record MACs, derived inside the token, let
  recovery sign the tail), and `coffre audit verify` accepts the log; accounts work on it: the
  owner set up at the first start and a viewer log in after a restart and after a kill -9 (the
  login blind index is derived inside the token), a wrong password is refused;
- a wrong PIN, a PIN file others may read and a token the sandbox was not told about are refused
  at start with a clear line, and nothing is changed;
- `coffre key migrate-master` moves a file master key to the token: documents uploaded before
  read back, keys/master.key is gone, coffre.conf names the URI, users made under the file key
  still log in (the token derives the same login index), names are still found; it refuses while the server
  runs and refuses a token whose HMAC key is another vault's (nothing changed); interrupted
  after the rewrap (state rebuilt from copies), the server refuses to start and a rerun finishes.
Usage: test_hsm_master.py PATH/TO/coffre
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

from harness import TestFailure, Vault, check, exit_status, expect_problem, run_tests
from softhsm import Token

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
TOK = None
BASE = None


def snapshot(path):
    """name -> sha256 of every file under path (to show nothing changed)."""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def conf_text(v):
    with open(os.path.join(v.data, "coffre.conf")) as f:
        return f.read()


def set_conf(v, text):
    with open(os.path.join(v.data, "coffre.conf"), "w") as f:
        f.write(text)


def start_fails(v, want):
    try:
        v.start()
    except TestFailure as e:
        check(want in str(e), "start-up refused without saying %r" % want, str(e)[-1500:])
        return
    v.stop()
    raise TestFailure("the server started (%r expected)" % want)


def check_logins(v, viewer, where):
    """viewer (from create_user) logs in with its password and sees itself; the owner logs in
    with one of its recovery codes; a wrong password is refused like an unknown address."""
    r = v.login(viewer["email"], viewer["password"])
    check(r.status == 200, "%s: the viewer's login: status %d" % (where, r.status), r)
    me = v.json_request("GET", "/v1/users/me", token=r.json()["token"])
    check(me.status == 200 and me.json()["email"] == viewer["email"], "%s: /v1/users/me of the viewer" % where, me)
    r = v.login(v.owner_email, v.owner_password, recovery_code=v.recovery_codes.pop())
    check(r.status == 200, "%s: the owner's login with a recovery code: status %d" % (where, r.status), r)
    r = v.login(viewer["email"], viewer["password"] + "x")
    expect_problem(r, 401, "unauthorized")


def hsm_vault(label):
    v = Vault(BINARY, base=tempfile.mkdtemp(dir=BASE), init=False)
    v.init("--master-key", TOK.uri(label), "--pkcs11-path", TOK.tokendir)
    return v


def test_init_with_token_master_key():
    v = hsm_vault("m-init")
    try:
        check(not os.path.exists(os.path.join(v.data, "keys", "master.key")), "a master.key file was written")
        check("master = " + TOK.uri("m-init") in conf_text(v), "coffre.conf does not name the URI", conf_text(v))
        objs = TOK.objects()
        for label in ("m-init", "m-init-hmac"):
            block = re.search(r"Secret Key Object;[^\n]*\n\s+label:\s+%s\n(?:\s+\S.*\n)*" % re.escape(label), objs)
            check(block is not None, "no secret key %s on the token" % label, objs)
            check("sensitive" in block.group(0) and "never extractable" in block.group(0),
                  "%s may leave the token" % label, block.group(0))
        v.start()
        docs = {}
        for i in range(5):
            data = os.urandom(1000 + i * 70000)
            docs[v.upload_ok(data, name="inv-%d.pdf" % i)["id"]] = data
        for doc_id, data in docs.items():
            r = v.download(doc_id)
            check(r.status == 200 and r.body == data, "download differs", r.status)
        viewer = v.create_user("viewer")
        check(v.stop() == 0, "the server did not stop cleanly")
        v.start()
        for doc_id, data in docs.items():
            check(v.download(doc_id).body == data, "download differs after a restart")
        check_logins(v, viewer, "after a restart")
        more = os.urandom(5000)
        mid = v.upload_ok(more, name="after-restart.pdf")["id"]
        v.kill()  # entries past the last checkpoint: recovery needs the record MAC key (from the token)
        v.start()
        check(v.download(mid).body == more, "download differs after kill -9")
        check_logins(v, viewer, "after kill -9")
        v.stop()
        r = v.cli("audit", "verify", "--data", v.data)
        check(r.returncode == 0, "audit verify refused the log", r.stdout, r.stderr)
    finally:
        v.close()


def test_refusals_at_start():
    v = hsm_vault("m-refuse")
    try:
        v.start()
        data = os.urandom(3000)
        doc = v.upload_ok(data)["id"]
        v.stop()
        before = snapshot(v.data)
        good_pin = open(TOK.pin_file).read()
        try:
            with open(TOK.pin_file, "w") as f:
                f.write("9999\n")
            start_fails(v, "refused the PIN")
            with open(TOK.pin_file, "w") as f:
                f.write(good_pin)
            os.chmod(TOK.pin_file, 0o640)
            start_fails(v, "group or others may read it")
        finally:
            with open(TOK.pin_file, "w") as f:
                f.write(good_pin)
            os.chmod(TOK.pin_file, 0o600)
        text = conf_text(v)
        set_conf(v, text.replace("pkcs11_path = %s\n" % TOK.tokendir, ""))
        start_fails(v, "[keys] pkcs11_path")
        set_conf(v, text)
        after = snapshot(v.data)
        # sqlite's shared-memory index (-shm) is rebuilt at each open: not data
        changed = [k for k in before if before.get(k) != after.get(k) and not k.endswith("-shm")]
        check(not changed, "a refused start changed files", changed)
        v.start()
        check(v.download(doc).body == data, "the document is not readable after the refusals")
        v.stop()
    finally:
        v.close()


def file_vault_with_docs(n=4):
    v = Vault(BINARY, base=tempfile.mkdtemp(dir=BASE))
    v.start()
    docs = {}
    for i in range(n):
        data = os.urandom(2000 + 30000 * i)
        docs[v.upload_ok(data, name="old-%d.pdf" % i)["id"]] = data
    return v, docs


def migrate(v, label, env=None):
    return subprocess.run([BINARY, "key", "migrate-master", "--data", v.data, "--to", TOK.uri(label),
                           "--pkcs11-path", TOK.tokendir], capture_output=True, timeout=120)


def test_migration():
    v, docs = file_vault_with_docs()
    try:
        r = migrate(v, "m-mig")
        check(r.returncode == 1 and b"stop the server" in r.stderr, "migration ran beside the server", r.stderr)
        check(os.path.exists(os.path.join(v.data, "keys", "master.key")), "a refused migration removed the key")
        viewer = v.create_user("viewer")
        v.stop()
        r = migrate(v, "m-mig")
        check(r.returncode == 0, "migration failed", r.stdout, r.stderr)
        check(not os.path.exists(os.path.join(v.data, "keys", "master.key")), "keys/master.key is still there")
        check("master = " + TOK.uri("m-mig") in conf_text(v), "coffre.conf does not name the URI")
        v.start()
        for doc_id, data in docs.items():
            r = v.download(doc_id)
            check(r.status == 200 and r.body == data, "a document from before the migration differs", r.status)
        check_logins(v, viewer, "after the migration")
        r = v.request("GET", "/v1/documents?name=old-1.pdf")
        found = r.json()["documents"] if r.status == 200 else None
        check(found is not None and [d["name"] for d in found] == ["old-1.pdf"],
              "a name from before the migration is not found by name", r)
        new = os.urandom(10000)
        nid = v.upload_ok(new)["id"]
        v.kill()
        v.start()  # recovery of the tail needs the same record MAC key as before the migration
        check(v.download(nid).body == new, "a document from after the migration differs")
        v.stop()
        r = v.cli("audit", "verify", "--data", v.data)
        check(r.returncode == 0, "audit verify refused the migrated vault's log", r.stdout, r.stderr)
        # another vault cannot migrate onto this token key: its HMAC key is this vault's
        w, wdocs = file_vault_with_docs(1)
        try:
            w.stop()
            before = snapshot(w.data)
            r = migrate(w, "m-mig")
            check(r.returncode == 1 and b"not the one being migrated" in r.stderr,
                  "a migration onto another vault's token key was not refused", r.stderr)
            check(snapshot(w.data) == before, "the refused migration changed the vault")
        finally:
            w.close()
    finally:
        v.close()


def test_interrupted_migration():
    v, docs = file_vault_with_docs(2)
    try:
        v.stop()
        keep = os.path.join(BASE, "keep-interrupted")
        os.makedirs(keep)
        shutil.copy2(os.path.join(v.data, "coffre.conf"), keep)
        shutil.copy2(os.path.join(v.data, "keys", "master.key"), keep)
        r = migrate(v, "m-int")
        check(r.returncode == 0, "migration failed", r.stderr)
        # the state of a run stopped after the rewrap was committed: the settings and the key
        # file of before, keyring.db under the token's key
        shutil.copy2(os.path.join(keep, "coffre.conf"), os.path.join(v.data, "coffre.conf"))
        shutil.copy2(os.path.join(keep, "master.key"), os.path.join(v.data, "keys", "master.key"))
        start_fails(v, "cannot open the keyring")
        r = migrate(v, "m-int")
        check(r.returncode == 0, "the rerun did not finish the migration", r.stdout, r.stderr)
        check(not os.path.exists(os.path.join(v.data, "keys", "master.key")), "keys/master.key is still there")
        v.start()
        for doc_id, data in docs.items():
            check(v.download(doc_id).body == data, "a document differs after the finished migration")
        v.stop()
        # a third run has nothing left to do and says so
        r = migrate(v, "m-int")
        check(r.returncode == 0 and b"already on the token" in r.stderr, "rerun after the end", r.stderr)
    finally:
        v.close()


if __name__ == "__main__":
    BASE = tempfile.mkdtemp(prefix="coffre-hsmmaster-")
    try:
        TOK = Token(base=os.path.join(BASE, "hsm"))
        os.environ["SOFTHSM2_CONF"] = TOK.conf
        rc = run_tests([test_init_with_token_master_key, test_refusals_at_start, test_migration,
                        test_interrupted_migration])
    finally:
        shutil.rmtree(BASE, ignore_errors=True)
    sys.exit(exit_status(rc))
