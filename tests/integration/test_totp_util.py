#!/usr/bin/env python3
"""test_totp_util.py: the tests' own authenticator (totp_util.py) gives the RFC 4226 appendix D
and RFC 6238 appendix B values (tests/data/totp) and the codes oathtool gives, so that a login
refused in an integration test means coffre refused a right code.
Usage: test_totp_util.py TESTS_DATA_DIR
"""

import os
import shutil
import subprocess
import sys

from harness import check, run_tests
import totp_util

DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data")


def rows(name):
    with open(os.path.join(DATA, "totp", name)) as f:
        lines = [ln.rstrip("\n").split("\t") for ln in f if ln.strip() and not ln.startswith("#")]
    header, body = lines[0], lines[1:]
    return [dict(zip(header, r)) for r in body]


def test_rfc4226_hotp():
    vec = rows("rfc4226_appendix_d.tsv")
    check(len(vec) == 10, "expected the 10 rows of RFC 4226 appendix D", len(vec))
    for v in vec:
        key = bytes.fromhex(v["secret_hex"])
        got = totp_util.hotp(key, int(v["counter"]))
        check(got == v["expected"], "HOTP of counter %s" % v["counter"], got, v["expected"])


def test_rfc6238_totp_sha1():
    vec = [v for v in rows("rfc6238_appendix_b.tsv") if v["algorithm"] == "SHA1"]
    check(len(vec) == 6, "expected the 6 SHA1 rows of RFC 6238 appendix B", len(vec))
    for v in vec:
        key = bytes.fromhex(v["secret_hex"])
        t = int(v["unix_time"])
        check(totp_util.step_of(t) == int(v["counter_hex"], 16), "step of %d" % t)
        got = totp_util.totp(key, t, digits=8)
        check(got == v["expected"], "TOTP at %d" % t, got, v["expected"])
        check(totp_util.totp(key, t) == v["expected"][2:], "6-digit TOTP at %d" % t)


def test_agrees_with_oathtool():
    tool = shutil.which("oathtool")
    check(tool is not None, "oathtool not found (Debian package oathtool, see scripts/install-deps)")
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    for t in (59, 1111111109, 1764800000, 2000000000, 4102444800):
        out = subprocess.run([tool, "--totp", "-b", secret, "--now=@%d" % t], capture_output=True,
                             text=True, timeout=30, check=True).stdout.strip()
        check(totp_util.totp(secret, t) == out, "code at %d" % t, totp_util.totp(secret, t), out)
        # the same secret as people type it
        check(totp_util.totp("jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp", t) == out, "lower case, grouped")


def test_next_code_follows_the_replay_rule():
    key = b"12345678901234567890"
    t = 1764800007
    now = t // 30
    code, s = totp_util.next_code(key, 0, t)
    check(s == now - 1 and code == totp_util.hotp(key, now - 1), "first code is the oldest step allowed", s)
    code, s = totp_util.next_code(key, now - 1, t)
    check(s == now and code == totp_util.totp(key, t), "then now", s)
    code, s = totp_util.next_code(key, now, t)
    check(s == now + 1, "then now+1", s)
    try:
        totp_util.next_code(key, now + 1, t)
    except LookupError:
        pass
    else:
        check(False, "a fourth code within one step must not exist")


def test_parse_otpauth_and_recovery_codes():
    uri = ("otpauth://totp/Soci%C3%A9t%C3%A9%20%26%20Co:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
           "&issuer=Soci%C3%A9t%C3%A9%20%26%20Co&algorithm=SHA1&digits=6&period=30")
    p = totp_util.parse_otpauth(uri)
    check(p["label_issuer"] == p["issuer"] == "Société & Co", "issuer", p)
    check(p["account"] == "alice@example.com", "account", p)
    check(totp_util.b32_secret(p["secret"]) == b"12345678901234567890", "secret", p)
    check((p["algorithm"], p["digits"], p["period"]) == ("SHA1", "6", "30"), "parameters", p)
    for bad in ("otpauth://hotp/A:b?secret=GE", "otpauth://totp/nocolon?secret=GE", "https://totp/A:b?secret=GE"):
        try:
            totp_util.parse_otpauth(bad)
        except ValueError:
            continue
        check(False, "accepted %r" % bad)
    check(totp_util.RECOVERY_CODE_RE.match("abcd-efgh-2345-wxyz"), "recovery code shape")
    check(not totp_util.RECOVERY_CODE_RE.match("abcd-efgh-2345-wxy0"), "0 is not base32")
    check(totp_util.recovery_code_hash("ABCD EFGH 2345 WXYZ") == totp_util.recovery_code_hash("abcd-efgh-2345-wxyz"),
          "normalised like coffre")


if __name__ == "__main__":
    sys.exit(run_tests([test_rfc4226_hotp, test_rfc6238_totp_sha1, test_agrees_with_oathtool,
                        test_next_code_follows_the_replay_rule, test_parse_otpauth_and_recovery_codes]))
