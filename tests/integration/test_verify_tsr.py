#!/usr/bin/env python3
"""test_verify_tsr.py: `coffre verify --tsr/--token` on RFC 3161 replies of TSAs that are not coffre.

- replies of other TSAs (tests/data/tsp: rfc3161-client's test TSA, sigstage's, a GlobalSign
  reply of 2017 checked at its genTime, and against a given hash) are verified, each check printed;
- refused with exit 3 and the reason: another TSA's chain, an altered signature, other data,
  a rejection, a truncated reply, trailing bytes, granted without a token, an expired chain
  checked now; an injected certificate does not become the signer;
- a TSA made here with `openssl ts -reply` (ECDSA P-256): its reply verifies, a TSA certificate
  of another CA is refused, a reply over other data is refused.
Usage: test_verify_tsr.py PATH/TO/coffre
"""

import os
import shutil
import subprocess
import sys
import tempfile

from harness import check, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tsp")
TMP = None


def d(*p):
    return os.path.join(DATA, *p)


def t(name):
    return os.path.join(TMP, name)


def verify(*args):
    return subprocess.run([BINARY, "verify", *args], capture_output=True, timeout=60)


def ok(r, *lines):
    out = r.stdout.decode()
    check(r.returncode == 0, "verification failed (exit %d)" % r.returncode, out, r.stderr.decode())
    for line in lines:
        check(line in out, "missing check %r" % line, out)
    check(out.rstrip().endswith("verified"), "no closing line", out)


def refused(r, reason):
    out, err = r.stdout.decode(), r.stderr.decode()
    check(r.returncode == 3, "not refused with exit 3 (exit %d)" % r.returncode, out, err)
    check(reason in err, "the refusal does not say %r" % reason, err)
    check("verified" not in out, "says verified while refusing", out)


def test_other_tsas():
    ok(verify("--tsr", d("rfc3161-client", "test_tsa", "response.tsr"), "--data", t("hello"),
              "--ca", d("rfc3161-client", "test_tsa", "ts_chain.pem")),
       "ok   status: granted", "signer /O=local/CN=Test TSA Timestamping", "sha512 of the data")
    for h in ("sha256", "sha384"):
        ok(verify("--tsr", d("rfc3161-client", "sigstage", "response-%s.tsr" % h), "--data", t("hello"),
                  "--ca", d("rfc3161-client", "sigstage", "ts_chain.pem")), "%s of the data" % h,
           "CN=sigstore-tsa")
    # RSA, a real TSA of 2017: its certificate expired in 2022, it was valid at genTime
    ok(verify("--tsr", d("digitorus", "response_nonce.tsr"), "--digest",
              "f487d88164bde223b7fd3c71b3e9c624c8a0cb559c853b49558e7e5ef4ce55f0",
              "--ca", d("digitorus", "tsa_chain_extracted.pem")),
       "genTime 2017-04-19T06:29:53Z", "GlobalSign TSA for Adobe CDS - G2", "checked at genTime")
    # the injected certificate is not taken for the signer
    r = verify("--tsr", d("rfc3161-client", "test_tsa", "response-injected-certs.tsr"), "--data", t("hello"),
               "--ca", d("rfc3161-client", "test_tsa", "ts_chain.pem"))
    ok(r, "signer /O=local/CN=Test TSA Timestamping")
    check(b"Spoofed" not in r.stdout, "the spoofed certificate was named", r.stdout)


def test_refusals():
    tt = ("rfc3161-client", "test_tsa")
    refused(verify("--tsr", d(*tt, "other_response.tsr"), "--data", t("hello"), "--ca", d(*tt, "ts_chain.pem")),
            "unable to get local issuer certificate")
    refused(verify("--tsr", d("rfc3161-client", "sigstage", "response-invalid-signature.tsr"), "--data", t("hello"),
                   "--ca", d("rfc3161-client", "sigstage", "ts_chain.pem")), "signature failure")
    refused(verify("--tsr", d(*tt, "response.tsr"), "--data", t("other"), "--ca", d(*tt, "ts_chain.pem")),
            "message imprint: the hash is not the one time-stamped")
    refused(verify("--tsr", d(*tt, "response.tsr"), "--data", t("hello"),
                   "--ca", d("rfc3161-client", "sigstage", "ts_chain.pem")), "unable to get local issuer")
    refused(verify("--tsr", d("digitorus", "response_rejection.tsr"), "--data", t("hello"),
                   "--ca", d(*tt, "ts_chain.pem")), "status 2, failure addInfoNotAvailable")
    refused(verify("--tsr", d("derived", "truncated_response.tsr"), "--data", t("hello"), "--ca",
                   d(*tt, "ts_chain.pem")), "not a DER TimeStampResp")
    refused(verify("--tsr", d("derived", "trailing_garbage_response.tsr"), "--data", t("hello"), "--ca",
                   d(*tt, "ts_chain.pem")), "data after the DER TimeStampResp")
    refused(verify("--tsr", d("derived", "status_granted_without_token.tsr"), "--data", t("hello"), "--ca",
                   d(*tt, "ts_chain.pem")), "reply")
    refused(verify("--tsr", d("digitorus", "response_nonce.tsr"), "--digest",
                   "f487d88164bde223b7fd3c71b3e9c624c8a0cb559c853b49558e7e5ef4ce55f0", "--ca",
                   d("digitorus", "tsa_chain_extracted.pem"), "--at-now"), "certificate has expired")
    r = verify("--tsr", d(*tt, "response.tsr"), "--ca", d(*tt, "ts_chain.pem"))
    check(r.returncode == 2, "a usage error is not exit 2", r.returncode)
    r = verify("--tsr", t("missing.tsr"), "--data", t("hello"), "--ca", d(*tt, "ts_chain.pem"))
    check(r.returncode == 1, "an unreadable reply is not exit 1", r.returncode)


def openssl(*args, cwd=None, inp=None):
    r = subprocess.run(["openssl", *args], capture_output=True, timeout=60, cwd=cwd, input=inp)
    check(r.returncode == 0, "openssl %s failed" % args[0], r.stderr.decode())
    return r


def make_tsa(name):
    """A root CA and a TSA certificate signed by it, with an openssl ts config."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            t(name + "-ca.key"), "-out", t(name + "-ca.pem"), "-subj", "/CN=%s root" % name, "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", t(name + ".key"),
            "-out", t(name + ".csr"), "-subj", "/CN=%s TSA" % name)
    with open(t(name + ".ext"), "w") as f:
        f.write("extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", t(name + ".csr"), "-CA", t(name + "-ca.pem"), "-CAkey", t(name + "-ca.key"),
            "-CAcreateserial", "-out", t(name + ".pem"), "-days", "10", "-extfile", t(name + ".ext"))
    with open(t(name + ".cnf"), "w") as f:
        f.write("""[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = %s
serial = $dir/%s.serial
crypto_device = builtin
signer_cert = $dir/%s.pem
certs = $dir/%s-ca.pem
signer_key = $dir/%s.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""" % (TMP, name, name, name, name))
    with open(t(name + ".serial"), "w") as f:
        f.write("01\n")


def ts_reply(name, data_file, out):
    openssl("ts", "-query", "-data", data_file, "-sha256", "-cert", "-out", t(name + ".tsq"))
    openssl("ts", "-reply", "-config", t(name + ".cnf"), "-queryfile", t(name + ".tsq"), "-out", out)


def test_openssl_tsa():
    make_tsa("good")
    ts_reply("good", t("hello"), t("good.tsr"))
    ok(verify("--tsr", t("good.tsr"), "--data", t("hello"), "--ca", t("good-ca.pem")),
       "signer /CN=good TSA", "sha256 of the data")
    ok(verify("--tsr", t("good.tsr"), "--data", t("hello"), "--ca", t("good-ca.pem"), "--at-now"))
    refused(verify("--tsr", t("good.tsr"), "--data", t("other"), "--ca", t("good-ca.pem")), "message imprint")
    # the bare token inside the reply
    openssl("ts", "-reply", "-in", t("good.tsr"), "-token_out", "-out", t("good.tok"))
    ok(verify("--token", t("good.tok"), "--data", t("hello"), "--ca", t("good-ca.pem")), "signer /CN=good TSA")
    # a TSA of another CA (openssl ts -reply itself refuses a TSA certificate whose timeStamping
    # key usage is not critical, so such a reply cannot be made here)
    make_tsa("other")
    refused(verify("--tsr", t("good.tsr"), "--data", t("hello"), "--ca", t("other-ca.pem")),
            "self-signed certificate in certificate chain")  # the reply carries its own root: not trusted
    # and the token's own certificate alone is not a CA: trusting it as an anchor works, as said
    ok(verify("--tsr", t("good.tsr"), "--data", t("hello"), "--ca", t("good.pem")))


if __name__ == "__main__":
    TMP = tempfile.mkdtemp(prefix="coffre-tsr-")
    try:
        with open(t("hello"), "wb") as f:
            f.write(b"hello")
        with open(t("other"), "wb") as f:
            f.write(b"hellO")
        sys.exit(run_tests([test_other_tsas, test_refusals, test_openssl_tsa]))
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
