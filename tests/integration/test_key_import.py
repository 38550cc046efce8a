#!/usr/bin/env python3
"""test_key_import.py: `coffre key import` of seal and TSA certificates from a CA that is not the vault's.

With a root and an intermediate CA made here with openssl:
- refused, nothing changed in keys/: a TSA certificate whose timeStamping usage is not critical,
  a chain missing its intermediate, a key that is not the certificate's, a key file others may
  read, a PKCS#11 key, a seal certificate without digitalSignature/nonRepudiation, an RSA-2048
  key, an import while the server runs;
- a TSA certificate imported with its chain: `coffre key list` shows it; the built-in TSA then
  signs with it (`coffre verify --tsr` and `openssl ts -verify` against the outside root accept
  its replies), and new documents' seals carry its time-stamps;
- a seal certificate imported for the organisation: new seals are made with it and `openssl
  cms -verify` accepts them against the outside root; evidence bundles verify against both CAs.
Usage: test_key_import.py PATH/TO/coffre
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

from harness import Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None
TMP = None


def t(n):
    return os.path.join(TMP, n)


def openssl(*args, inp=None):
    r = subprocess.run(["openssl", *args], capture_output=True, timeout=60, input=inp)
    check(r.returncode == 0, "openssl %s failed" % " ".join(args[:2]), r.stderr.decode())
    return r


def ec_key(name):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", t(name + ".key"))
    os.chmod(t(name + ".key"), 0o600)


def issue(name, issuer, subj, ext, key=None):
    key = key or name
    openssl("req", "-new", "-key", t(key + ".key"), "-subj", subj, "-out", t(name + ".csr"))
    with open(t(name + ".ext"), "w") as f:
        f.write(ext)
    openssl("x509", "-req", "-in", t(name + ".csr"), "-CA", t(issuer + ".pem"), "-CAkey", t(issuer + ".key"),
            "-CAcreateserial", "-days", "365", "-extfile", t(name + ".ext"), "-out", t(name + ".pem"))


def setup():
    global V, TMP
    TMP = tempfile.mkdtemp(prefix="coffre-keyimport-")
    ec_key("root")
    openssl("req", "-x509", "-key", t("root.key"), "-subj", "/O=Outside Trust/CN=Outside Root", "-days", "3650",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", t("root.pem"))
    ec_key("inter")
    issue("inter", "root", "/O=Outside Trust/CN=Outside Issuing CA",
          "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
    ec_key("tsa")
    issue("tsa", "inter", "/O=Outside Trust/CN=Outside TSA",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n")
    issue("tsa-loose", "inter", "/CN=Loose TSA",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=timeStamping\n", key="tsa")
    ec_key("seal")
    issue("seal", "inter", "/O=Acme SAS/CN=Acme SAS qualified seal",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n")
    issue("seal-noku", "inter", "/CN=No usage", "basicConstraints=CA:FALSE\nkeyUsage=critical,keyEncipherment\n",
          key="seal")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", t("rsa.key"))
    os.chmod(t("rsa.key"), 0o600)
    issue("seal-rsa", "inter", "/CN=Small RSA", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n",
          key="rsa")
    with open(t("chain.pem"), "w") as f:
        f.write(open(t("inter.pem")).read() + open(t("root.pem")).read())
    V = Vault(BINARY).start()
    V.upload_ok(b"first document, vault keys\n")  # the organisation's seal is made at its first use
    V.stop()


def keys_snapshot():
    out = {}
    for p in sorted(glob.glob(os.path.join(V.data, "keys", "*"))):
        with open(p, "rb") as f:
            out[os.path.basename(p)] = hashlib.sha256(f.read()).hexdigest()
    return out


def org_id():
    seals = glob.glob(os.path.join(V.data, "keys", "seal-*.pem"))
    check(len(seals) == 1, "not one seal certificate", seals)
    return os.path.basename(seals[0])[5:-4]


def imp(*args):
    return subprocess.run([BINARY, "key", "import", "--data", V.data, *args], capture_output=True, timeout=60)


def refused(r, why):
    err = r.stderr.decode()
    check(r.returncode == 1 and why in err, "not refused with %r" % why, r.stdout, err)


def test_refusals():
    before = keys_snapshot()
    org = org_id()
    refused(imp("--tsa", t("tsa-loose.pem"), "--chain", t("chain.pem"), "--key", t("tsa.key")),
            "critical extended key usage timeStamping")
    refused(imp("--tsa", t("tsa.pem"), "--chain", t("root.pem"), "--key", t("tsa.key")), "the chain")
    refused(imp("--tsa", t("tsa.pem"), "--key", t("tsa.key")), "self-signed root")
    refused(imp("--tsa", t("tsa.pem"), "--chain", t("chain.pem"), "--key", t("seal.key")), "not the certificate's")
    os.chmod(t("tsa.key"), 0o644)
    refused(imp("--tsa", t("tsa.pem"), "--chain", t("chain.pem"), "--key", t("tsa.key")), "0600")
    os.chmod(t("tsa.key"), 0o600)
    refused(imp("--tsa", t("tsa.pem"), "--chain", t("chain.pem"), "--key", "pkcs11:token=x;object=y"), "PKCS#11")
    refused(imp("--seal", t("seal-noku.pem"), "--org", org, "--chain", t("chain.pem"), "--key", t("seal.key")),
            "digitalSignature or nonRepudiation")
    refused(imp("--seal", t("seal-rsa.pem"), "--org", org, "--chain", t("chain.pem"), "--key", t("rsa.key")),
            "RSA of 3072 bits")
    refused(imp("--seal", t("seal.pem"), "--org", "0" * 32, "--chain", t("chain.pem"), "--key", t("seal.key")),
            "has no seal in this vault")
    V.start()
    try:
        refused(imp("--tsa", t("tsa.pem"), "--chain", t("chain.pem"), "--key", t("tsa.key")), "stop the server")
    finally:
        V.stop()
    check(keys_snapshot() == before, "a refused import changed keys/")


def test_tsa_import():
    r = imp("--tsa", t("tsa.pem"), "--chain", t("chain.pem"), "--key", t("tsa.key"))
    check(r.returncode == 0, "the TSA import failed", r.stdout, r.stderr)
    check(os.path.exists(os.path.join(V.data, "keys", "tsa.pem.old")), "the previous certificate was not kept")
    r = subprocess.run([BINARY, "key", "list", "--data", V.data], capture_output=True, timeout=60)
    check(r.returncode == 0 and b"CN=Outside TSA" in r.stdout, "key list does not show the imported TSA", r.stdout)
    V.start()
    with open(t("data.txt"), "wb") as f:
        f.write(b"time-stamp me\n")
    openssl("ts", "-query", "-data", t("data.txt"), "-sha256", "-cert", "-out", t("q.tsq"))
    resp = V.request("POST", "/v1/tsa", body=open(t("q.tsq"), "rb").read(),
                     headers={"Content-Type": "application/timestamp-query"})
    check(resp.status == 200, "POST /v1/tsa", resp)
    with open(t("r.tsr"), "wb") as f:
        f.write(resp.body)
    r = subprocess.run([BINARY, "verify", "--tsr", t("r.tsr"), "--data", t("data.txt"), "--ca", t("root.pem"),
                        "--untrusted", t("inter.pem")], capture_output=True, timeout=60)
    check(r.returncode == 0 and b"CN=Outside TSA" in r.stdout, "coffre verify refused the imported TSA's reply",
          r.stdout, r.stderr)
    r = subprocess.run(["openssl", "ts", "-verify", "-in", t("r.tsr"), "-data", t("data.txt"), "-CAfile",
                        t("root.pem"), "-untrusted", t("inter.pem")], capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl ts -verify refused it", r.stdout, r.stderr)
    doc = V.upload_ok(b"sealed under the outside TSA\n")
    meta = V.request("GET", "/v1/documents/%s" % doc["id"]).json()
    check(meta.get("seal_level") == "B-T", "the new document is not B-T", meta)
    V.stop()


def test_seal_import():
    org = org_id()
    r = imp("--seal", t("seal.pem"), "--org", org, "--chain", t("chain.pem"), "--key", t("seal.key"))
    check(r.returncode == 0, "the seal import failed", r.stdout, r.stderr)
    V.start()
    data = b"sealed with the imported seal\n" * 10
    doc = V.upload_ok(data)
    resp = V.request("GET", "/v1/documents/%s/seal" % doc["id"])
    check(resp.status == 200, "no seal", resp)
    with open(t("s.p7s"), "wb") as f:
        f.write(resp.body)
    with open(t("s.doc"), "wb") as f:
        f.write(data)
    # the seal carries its certificate alone: openssl takes the intermediate from -CAfile
    r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", t("s.p7s"), "-content",
                        t("s.doc"), "-CAfile", t("chain.pem"), "-purpose", "any", "-out", os.devnull],
                       capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl cms -verify refused the imported seal's signature", r.stderr)
    p = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", t("s.p7s")],
                       capture_output=True, timeout=60)
    check(b"Acme SAS qualified seal" in p.stdout, "the seal is not made with the imported certificate")
    r = V.cli("evidence", doc["id"], "-o", t("e.asics"))
    check(r.returncode == 0, "evidence", r.stderr)
    V.stop()
    with open(t("both.pem"), "w") as f:
        f.write(open(t("root.pem")).read() + open(os.path.join(V.data, "keys", "ca.pem")).read())
    r = subprocess.run([BINARY, "verify", t("e.asics"), "--ca", t("both.pem")], capture_output=True, timeout=60)
    check(r.returncode == 0, "the bundle of an imported seal does not verify", r.stdout, r.stderr)


if __name__ == "__main__":
    try:
        setup()
        rc = run_tests([test_refusals, test_tsa_import, test_seal_import])
    finally:
        if V:
            V.close()
        if TMP:
            shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(exit_status(rc))
