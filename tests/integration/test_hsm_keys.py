#!/usr/bin/env python3
"""test_hsm_keys.py: the signer's private keys from a PEM file or a SoftHSM2 token (seal/keyload.c).

With a token made by the test itself (softhsm.py), through keyload_tool:
- an ECDSA P-256 key generated on the token signs a self-signed certificate, a detached CMS
  SignedData (`openssl cms -verify` accepts it) and a raw SHA-256 signature (`openssl dgst
  -verify` accepts it with the certificate's public key);
- a key made by openssl and imported with softhsm2-util signs what its own public key verifies;
- a PEM key file works at 0600 and is refused at 0644; a PIN file readable by others, a wrong
  PIN, a PIN inside the URI, an unknown object and an unknown token are refused with a clear line.
Usage: test_hsm_keys.py PATH/TO/keyload_tool
"""

import os
import subprocess
import sys
import tempfile

from harness import check, run_tests
from softhsm import Token

TOOL = sys.argv[1] if len(sys.argv) > 1 else "build/tests/unit/hsm/keyload_tool"
T = None
DIR = None


def tool(*args, token=None):
    env = (token or T).env()
    return subprocess.run([TOOL, *args], capture_output=True, timeout=60, env=env)


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, timeout=60)


def path(name):
    return os.path.join(DIR, name)


def setup():
    global T, DIR
    DIR = tempfile.mkdtemp(prefix="coffre-hsmkeys-")
    T = Token(base=os.path.join(DIR, "hsm"))
    T.gen_ec("seal", "01")
    with open(path("doc.pdf"), "wb") as f:
        f.write(b"%PDF-1.7 an invoice\n" * 100)


def test_token_key_signs_cms_that_openssl_verifies():
    r = tool("cert", T.uri("seal"), "Seal test", path("seal.pem"))
    check(r.returncode == 0 and r.stdout == b"token\n", "cert with the token key failed", r.stderr)
    r = tool("cms", T.uri("seal"), path("seal.pem"), path("doc.pdf"), path("doc.p7s"))
    check(r.returncode == 0, "CMS signing with the token key failed", r.stderr)
    v = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", path("doc.p7s"), "-content",
                path("doc.pdf"), "-CAfile", path("seal.pem"), "-purpose", "any", "-out", os.devnull)
    check(v.returncode == 0, "openssl cms -verify refused the token's signature", v.stderr)
    # the same signature over other bytes must fail: the check can fail
    with open(path("other.pdf"), "wb") as f:
        f.write(b"%PDF-1.7 another invoice\n")
    v = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", path("doc.p7s"), "-content",
                path("other.pdf"), "-CAfile", path("seal.pem"), "-purpose", "any", "-out", os.devnull)
    check(v.returncode != 0, "openssl accepted the signature over other content")
    # the certificate's key is an EC P-256 key: the one on the token
    t = openssl("x509", "-in", path("seal.pem"), "-noout", "-text")
    check(b"prime256v1" in t.stdout or b"P-256" in t.stdout, "not a P-256 key", t.stdout[:400])


def test_token_key_raw_signature():
    r = tool("sig", T.uri("seal"), path("doc.pdf"), path("doc.sig"))
    check(r.returncode == 0, "raw signature failed", r.stderr)
    openssl("x509", "-in", path("seal.pem"), "-pubkey", "-noout", "-out", path("seal.pub"))
    v = openssl("dgst", "-sha256", "-verify", path("seal.pub"), "-signature", path("doc.sig"), path("doc.pdf"))
    check(v.returncode == 0 and b"Verified OK" in v.stdout, "openssl dgst refused the signature", v.stdout, v.stderr)


def test_imported_key():
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path("imp.pem"))
    openssl("pkey", "-in", path("imp.pem"), "-pubout", "-out", path("imp.pub"))
    T.import_key(path("imp.pem"), "imported", "02")
    r = tool("sig", T.uri("imported"), path("doc.pdf"), path("imp.sig"))
    check(r.returncode == 0 and r.stdout == b"token\n", "signing with the imported key failed", r.stderr)
    v = openssl("dgst", "-sha256", "-verify", path("imp.pub"), "-signature", path("imp.sig"), path("doc.pdf"))
    check(v.returncode == 0, "the imported key's signature does not verify", v.stdout, v.stderr)
    # and not with another key's public key
    v = openssl("dgst", "-sha256", "-verify", path("seal.pub"), "-signature", path("imp.sig"), path("doc.pdf"))
    check(v.returncode != 0, "a signature verified under the wrong key")


def test_file_key_mode():
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path("file.key"))
    os.chmod(path("file.key"), 0o600)
    r = tool("sig", path("file.key"), path("doc.pdf"), path("file.sig"))
    check(r.returncode == 0 and r.stdout == b"file\n", "a 0600 key file was not used", r.stderr)
    openssl("pkey", "-in", path("file.key"), "-pubout", "-out", path("file.pub"))
    v = openssl("dgst", "-sha256", "-verify", path("file.pub"), "-signature", path("file.sig"), path("doc.pdf"))
    check(v.returncode == 0, "the file key's signature does not verify", v.stderr)
    os.chmod(path("file.key"), 0o644)
    r = tool("sig", path("file.key"), path("doc.pdf"), path("file2.sig"))
    check(r.returncode == 1 and b"0600" in r.stderr, "a 0644 key file was used", r.stdout, r.stderr)
    check(not os.path.exists(path("file2.sig")), "a refused key still signed")


def test_refusals():
    cases = []
    # PIN file others may read
    loose = path("loose.pin")
    with open(loose, "w") as f:
        f.write(T.pin + "\n")
    os.chmod(loose, 0o644)
    cases.append((T.uri("seal", pin_file=loose), b"group or others may read it"))
    # wrong PIN
    wrong = path("wrong.pin")
    fd = os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"0000\n")
    os.close(fd)
    cases.append((T.uri("seal", pin_file=wrong), b"refused the PIN"))
    cases.append(("pkcs11:token=%s;object=seal;pin-value=%s" % (T.label, T.pin), b"a PIN in the PKCS#11 URI is refused"))
    cases.append((T.uri("nosuchkey"), b"no private key"))
    cases.append((T.uri("seal").replace("token=" + T.label, "token=other"), b"no PKCS#11 token"))
    cases.append(("pkcs11:token=x;object=y;pin-source=/etc/passwd", b"pin-source must be file:PATH"))
    for uri, want in cases:
        r = tool("sig", uri, path("doc.pdf"), path("refused.sig"))
        check(r.returncode == 1 and want in r.stderr, "%r was not refused with %r" % (uri, want), r.stdout, r.stderr)
        check(T.pin.encode() not in r.stderr, "the PIN appears in an error message", r.stderr)
        check(not os.path.exists(path("refused.sig")), "a refused key still signed")


if __name__ == "__main__":
    setup()
    try:
        sys.exit(run_tests([test_token_key_signs_cms_that_openssl_verifies, test_token_key_raw_signature,
                            test_imported_key, test_file_key_mode, test_refusals]))
    finally:
        subprocess.run(["rm", "-rf", DIR])
