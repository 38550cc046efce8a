#!/usr/bin/env python3
"""test_testssl.py: Debian's testssl.sh against `coffre serve`, as a scanner sees it.

Runs protocols, cipher lists, forward secrecy, server defaults (the certificate), HTTP headers
and the known vulnerabilities, and fails on any finding of severity MEDIUM or higher, except the
two that a demo certificate must have: cert_chain_of_trust (self-signed) and cert_revocation (no
CRL or OCSP). A scan problem (severity WARN or FATAL) or a missing check also fails, so a scan
that did not happen cannot pass. testssl.sh comes from scripts/install-deps.
Usage: test_testssl.py PATH/TO/coffre
"""

import json
import os
import shutil
import subprocess
import sys

from harness import TestFailure, Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None

BAD = {"MEDIUM", "HIGH", "CRITICAL"}
# finding id -> a phrase its text must contain for the exception to apply
ALLOWED = {
    "cert_chain_of_trust": "self signed",
    "cert_revocation": "Neither CRL nor OCSP",
}
# one id per kind of check asked for: their absence means the scan skipped it
EXPECTED = ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "cipherlist_NULL",
            "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "PFS", "cert_validityPeriod",
            "cert_keySize", "cert_signatureAlgorithm", "cert_expirationStatus", "HSTS_time", "heartbleed",
            "CCS", "ticketbleed", "ROBOT", "secure_renego", "secure_client_renego", "CRIME_TLS",
            "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4"]


def scan():
    exe = shutil.which("testssl") or shutil.which("testssl.sh")
    if exe is None:
        raise TestFailure("testssl.sh is not installed (run scripts/install-deps)")
    out = os.path.join(V.base, "testssl.json")
    r = subprocess.run(["nice", exe, "--quiet", "--warnings", "off", "--color", "0", "--ip", "one",
                        "-p", "-s", "-f", "-S", "-h", "-U", "--jsonfile", out, "127.0.0.1:%d" % V.port],
                       capture_output=True, timeout=600)
    check(os.path.exists(out), "testssl wrote no JSON (exit %d)" % r.returncode, r.stdout[-3000:], r.stderr[-2000:])
    with open(out) as f:
        return json.load(f), r


def test_testssl_finds_nothing_but_the_demo_certificate():
    findings, r = scan()
    ids = {f["id"] for f in findings}
    missing = [i for i in EXPECTED if i not in ids]
    check(not missing, "testssl did not run these checks: %s" % ", ".join(missing), r.stdout[-3000:])
    problems = [f for f in findings if f["severity"] in ("WARN", "FATAL")]
    check(not problems, "testssl had scan problems", json.dumps(problems, indent=1))
    bad = []
    for f in findings:
        if f["severity"] not in BAD:
            continue
        phrase = ALLOWED.get(f["id"])
        if phrase is not None and phrase in f["finding"]:
            continue
        bad.append("%s %s: %s" % (f["severity"], f["id"], f["finding"]))
    check(not bad, "testssl findings of severity MEDIUM or higher:\n" + "\n".join(bad))
    # the exceptions are what they claim to be, not a blanket pass
    sev = {f["id"]: f for f in findings}
    check(sev["TLS1_3"]["severity"] == "OK" and sev["TLS1"]["severity"] in ("OK", "INFO"),
          "unexpected protocol findings", sev["TLS1_3"], sev["TLS1"])


TESTS = [test_testssl_finds_nothing_but_the_demo_certificate]


def main():
    global V
    with Vault(BINARY) as v:
        V = v
        v.start()
        rc = run_tests(TESTS)
        if rc:
            print(v.log_tail(20))
        check(v.stop() == 0, "SIGTERM did not exit 0")
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
