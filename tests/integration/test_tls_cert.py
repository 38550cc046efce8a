#!/usr/bin/env python3
"""test_tls_cert.py: the lifetime of the TLS certificate and `coffre tls renew`.

init makes a certificate valid at most 397 days; renew re-issues it (same key, or a new one with
--rotate-key), refuses a certificate an operator installed unless --force, and rejects bad
arguments; a certificate close to its end is reported in the log at start and by the
coffre_tls_certificate_expiry_seconds gauge of /metrics.
Usage: test_tls_cert.py PATH/TO/coffre
"""

import datetime
import os
import re
import subprocess
import sys

from harness import Vault, check, exit_status, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"


def x509(path, *what):
    r = subprocess.run(["openssl", "x509", "-in", path, "-noout", *what], capture_output=True, timeout=30)
    check(r.returncode == 0, "openssl x509 %s failed" % " ".join(what), r.stderr)
    return r.stdout.decode()


def validity_days(path):
    out = x509(path, "-startdate", "-enddate")
    fmt = "%b %d %H:%M:%S %Y GMT"
    nb = datetime.datetime.strptime(re.search(r"notBefore=(.*)", out).group(1).strip().replace("  ", " "), fmt)
    na = datetime.datetime.strptime(re.search(r"notAfter=(.*)", out).group(1).strip().replace("  ", " "), fmt)
    return (na - nb).total_seconds() / 86400


def pubkey(path):
    return x509(path, "-pubkey")


def serial(path):
    return x509(path, "-serial")


def renew(v, *args):
    return subprocess.run([v.binary, "tls", "renew", "--data", v.data, *args], capture_output=True, timeout=60)


def test_init_certificate_at_most_397_days():
    with Vault(BINARY) as v:
        d = validity_days(v.cacert)
        check(d <= 397 and d > 396, "init made a certificate valid %.2f days (want at most 397)" % d)


def test_renew_keeps_or_rotates_the_key():
    with Vault(BINARY) as v:
        key0, ser0 = pubkey(v.cacert), serial(v.cacert)
        r = renew(v)
        check(r.returncode == 0, "tls renew: exit %d" % r.returncode, r.stderr)
        check(serial(v.cacert) != ser0, "renew left the same certificate")
        check(pubkey(v.cacert) == key0, "renew without --rotate-key changed the key")
        check(validity_days(v.cacert) <= 397, "renewed certificate too long")
        r = renew(v, "--rotate-key")
        check(r.returncode == 0, "tls renew --rotate-key: exit %d" % r.returncode, r.stderr)
        check(pubkey(v.cacert) != key0, "--rotate-key kept the key")
        # the pair still serves: the server starts and answers over it
        v.start()
        check(v.request("GET", "/healthz", auth=False).status == 200, "no /healthz after renewal")
        check(v.stop() == 0, "SIGTERM did not exit 0")


def test_renew_refuses_an_operator_certificate():
    with Vault(BINARY) as v:
        cert = v.cacert
        key = os.path.join(v.data, "tls", "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "90", "-subj",
                            "/O=Example SARL/CN=localhost"], capture_output=True, timeout=60)
        check(r.returncode == 0, "openssl req failed", r.stderr)
        with open(cert, "rb") as f:
            before = f.read()
        r = renew(v)
        check(r.returncode == 1, "renew over an operator's certificate: exit %d, want 1" % r.returncode)
        check(b"--force" in r.stderr, "the refusal does not tell about --force", r.stderr)
        with open(cert, "rb") as f:
            check(f.read() == before, "a refused renew changed the certificate")
        r = renew(v, "--force")
        check(r.returncode == 0, "renew --force: exit %d" % r.returncode, r.stderr)
        check("O = coffre vault" in x509(cert, "-subject"), "--force did not install coffre's certificate")


def test_renew_bad_arguments():
    with Vault(BINARY) as v:
        with open(v.cacert, "rb") as f:
            before = f.read()
        for args in (["--days", "398"], ["--days", "0"], ["--days", "ten"], ["--bogus"]):
            r = renew(v, *args)
            check(r.returncode == 2, "tls renew %s: exit %d, want 2" % (" ".join(args), r.returncode), r.stderr)
        r = subprocess.run([BINARY, "tls", "renew", "--data", os.path.join(v.base, "nothing")],
                           capture_output=True, timeout=60)
        check(r.returncode == 1, "tls renew on a missing vault: exit %d, want 1" % r.returncode)
        with open(v.cacert, "rb") as f:
            check(f.read() == before, "a refused renew changed the certificate")


def test_expiry_warning_and_gauge():
    with Vault(BINARY) as v:
        r = renew(v, "--days", "10")
        check(r.returncode == 0, "tls renew --days 10: exit %d" % r.returncode, r.stderr)
        v.start()
        resp = v.request("GET", "/metrics")
        check(resp.status == 200, "/metrics: status %d" % resp.status, resp)
        m = re.search(rb"^coffre_tls_certificate_expiry_seconds (-?\d+)$", resp.body, re.M)
        check(m is not None, "no coffre_tls_certificate_expiry_seconds gauge", resp.body[:2000])
        left = int(m.group(1))
        check(9 * 86400 < left <= 10 * 86400, "gauge says %d s to expiry, want about 10 days" % left)
        log = v.log_text()
        check(b"TLS certificate expires soon" in log and b"coffre tls renew" in log,
              "no expiry warning in the log at start", v.log_tail())
        check(v.stop() == 0, "SIGTERM did not exit 0")
    with Vault(BINARY) as v:  # a fresh certificate: no warning
        v.start()
        check(b"TLS certificate expires soon" not in v.log_text(), "warning for a fresh certificate")
        check(v.stop() == 0, "SIGTERM did not exit 0")


TESTS = [test_init_certificate_at_most_397_days, test_renew_keeps_or_rotates_the_key,
         test_renew_refuses_an_operator_certificate, test_renew_bad_arguments, test_expiry_warning_and_gauge]

if __name__ == "__main__":
    sys.exit(exit_status(run_tests(TESTS)))
