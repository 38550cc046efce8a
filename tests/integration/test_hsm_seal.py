#!/usr/bin/env python3
"""test_hsm_seal.py: seal and TSA keys on a SoftHSM2 token (the test's own), used by the signer.

- `coffre key import --seal/--tsa ... --key pkcs11:...` checks the token key against its
  certificate (refused without [keys] pkcs11_path, or for a key of another certificate) and
  writes a key file that names it; `coffre key list` shows the URIs;
- the signer loads both at its start, locks itself down (seccomp, and Landlock reads limited to
  keys/ and the token directory) and signs inside the token: seals verify with `openssl cms
  -verify` against the outside CA, the TSA's replies with `coffre verify --tsr` and `openssl ts
  -verify`, an evidence bundle with `coffre verify`; many uploads in a row all get sealed;
- with a wrong PIN the signer cannot start and the server says why.
Usage: test_hsm_seal.py PATH/TO/coffre
"""

import os
import shutil
import subprocess
import sys
import tempfile

from harness import TestFailure, Vault, check, exit_status, run_tests
from softhsm import Token

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None
TOK = None
TMP = None


def t(n):
    return os.path.join(TMP, n)


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl %s failed" % " ".join(args[:2]), r.stderr.decode())
    return r


def leaf(name, subj, ext):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", t(name + ".key"))
    openssl("req", "-new", "-key", t(name + ".key"), "-subj", subj, "-out", t(name + ".csr"))
    with open(t(name + ".ext"), "w") as f:
        f.write(ext)
    openssl("x509", "-req", "-in", t(name + ".csr"), "-CA", t("root.pem"), "-CAkey", t("root.key"), "-CAcreateserial",
            "-days", "60", "-extfile", t(name + ".ext"), "-out", t(name + ".pem"))


def imp(*args):
    return subprocess.run([BINARY, "key", "import", "--data", V.data, *args], capture_output=True, timeout=60,
                          env=TOK.env())


def setup():
    global V, TOK, TMP
    TMP = tempfile.mkdtemp(prefix="coffre-hsmseal-")
    TOK = Token(base=os.path.join(TMP, "hsm"))
    os.environ["SOFTHSM2_CONF"] = TOK.conf  # the server and its signer see the token
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", t("root.key"))
    openssl("req", "-x509", "-key", t("root.key"), "-subj", "/CN=HSM Test Root", "-days", "365", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", "-out", t("root.pem"))
    leaf("seal", "/O=Acme/CN=Acme seal in an HSM", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n")
    leaf("tsa", "/CN=TSA in an HSM", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
         "extendedKeyUsage=critical,timeStamping\n")
    TOK.import_key(t("seal.key"), "seal", "01")
    TOK.import_key(t("tsa.key"), "tsa", "02")
    for n in ("seal.key", "tsa.key"):
        os.unlink(t(n))  # from now on the keys exist on the token only
    V = Vault(BINARY).start()
    V.upload_ok(b"made before the import\n")
    V.stop()


def org_id():
    names = [n for n in os.listdir(os.path.join(V.data, "keys")) if n.startswith("seal-") and n.endswith(".pem")]
    check(len(names) == 1, "not one seal", names)
    return names[0][5:-4]


def test_import_token_keys():
    org = org_id()
    r = imp("--seal", t("seal.pem"), "--org", org, "--chain", t("root.pem"), "--key", TOK.uri("seal"))
    check(r.returncode == 1 and b"pkcs11_path" in r.stderr, "a token key was taken without [keys] pkcs11_path",
          r.stderr)
    conf = os.path.join(V.data, "coffre.conf")
    text = open(conf).read()
    with open(conf, "w") as f:
        f.write(text.replace("[keys]\n", "[keys]\npkcs11_path = %s\n" % TOK.tokendir, 1))
    r = imp("--seal", t("seal.pem"), "--org", org, "--chain", t("root.pem"), "--key", TOK.uri("tsa"))
    check(r.returncode == 1 and b"not the certificate's" in r.stderr, "another token key was taken", r.stderr)
    r = imp("--seal", t("seal.pem"), "--org", org, "--chain", t("root.pem"), "--key", TOK.uri("seal"))
    check(r.returncode == 0, "the seal import failed", r.stderr)
    r = imp("--tsa", t("tsa.pem"), "--chain", t("root.pem"), "--key", TOK.uri("tsa"))
    check(r.returncode == 0, "the TSA import failed", r.stderr)
    with open(os.path.join(V.data, "keys", "seal-%s.key" % org)) as f:
        check(f.read().strip() == TOK.uri("seal"), "the key file does not name the token key")
    r = subprocess.run([BINARY, "key", "list", "--data", V.data], capture_output=True, timeout=60)
    check(r.returncode == 0 and r.stdout.count(b"pkcs11:token=") >= 2, "key list does not show the URIs", r.stdout)


def test_signer_signs_in_the_token():
    V.start()
    try:
        docs = {}
        for i in range(20):
            data = b"invoice %d sealed in the HSM\n" % i
            docs[V.upload_ok(data, name="inv-%d.txt" % i)["id"]] = data
        for k, (doc_id, data) in enumerate(list(docs.items())[:3]):
            resp = V.request("GET", "/v1/documents/%s/seal" % doc_id)
            check(resp.status == 200, "no seal", resp)
            with open(t("s%d.p7s" % k), "wb") as f:
                f.write(resp.body)
            with open(t("s%d.txt" % k), "wb") as f:
                f.write(data)
            r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", t("s%d.p7s" % k),
                                "-content", t("s%d.txt" % k), "-CAfile", t("root.pem"), "-purpose", "any", "-out",
                                os.devnull], capture_output=True, timeout=60)
            check(r.returncode == 0, "openssl cms -verify refused a seal made in the token", r.stderr)
        openssl("ts", "-query", "-data", t("s0.txt"), "-sha256", "-cert", "-out", t("q.tsq"))
        resp = V.request("POST", "/v1/tsa", body=open(t("q.tsq"), "rb").read(),
                         headers={"Content-Type": "application/timestamp-query"})
        check(resp.status == 200, "POST /v1/tsa", resp)
        with open(t("r.tsr"), "wb") as f:
            f.write(resp.body)
        r = subprocess.run([BINARY, "verify", "--tsr", t("r.tsr"), "--data", t("s0.txt"), "--ca", t("root.pem")],
                           capture_output=True, timeout=60)
        check(r.returncode == 0 and b"CN=TSA in an HSM" in r.stdout, "coffre verify --tsr", r.stdout, r.stderr)
        r = subprocess.run(["openssl", "ts", "-verify", "-in", t("r.tsr"), "-data", t("s0.txt"), "-CAfile",
                            t("root.pem")], capture_output=True, timeout=60)
        check(r.returncode == 0, "openssl ts -verify refused the token-signed reply", r.stdout, r.stderr)
        doc_id = next(iter(docs))
        r = V.cli("evidence", doc_id, "-o", t("e.asics"))
        check(r.returncode == 0, "evidence", r.stderr)
        with open(t("both.pem"), "w") as f:
            f.write(open(t("root.pem")).read() + open(os.path.join(V.data, "keys", "ca.pem")).read())
        r = subprocess.run([BINARY, "verify", t("e.asics"), "--ca", t("both.pem")], capture_output=True, timeout=60)
        check(r.returncode == 0, "the bundle of a token-sealed document does not verify", r.stdout[-1500:], r.stderr)
        check(V.request("GET", "/healthz", auth=False).status == 200, "the server is not healthy after the seals")
        check(b"signer" not in V.log_text() or b"died" not in V.log_text(), "the signer died", V.log_tail())
    finally:
        V.stop()


def test_wrong_pin_refused():
    good = open(TOK.pin_file).read()
    try:
        with open(TOK.pin_file, "w") as f:
            f.write("0000\n")
        try:
            V.start()
        except TestFailure as e:
            check("refused the PIN" in str(e), "the start-up refusal does not say why", str(e)[-1500:])
        else:
            V.stop()
            raise TestFailure("the server started with a wrong token PIN")
    finally:
        with open(TOK.pin_file, "w") as f:
            f.write(good)


if __name__ == "__main__":
    try:
        setup()
        rc = run_tests([test_import_token_keys, test_signer_signs_in_the_token, test_wrong_pin_refused])
    finally:
        if V:
            V.close()
        if TMP:
            shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(exit_status(rc))
