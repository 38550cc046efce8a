#!/usr/bin/env python3
"""bench/login.py: logins per second at the configured Argon2id cost, against the hash alone.

Usage: bench/login.py PATH/TO/coffre [LOGINS]
Makes a temporary vault with [auth] argon2_memory/argon2_passes/hash_slots from BENCH_MEM
(default 19M), BENCH_PASSES (2) and BENCH_SLOTS (4), rate limits raised out of the way, and
BENCH_USERS (20) users with TOTP enrolled. Then measures, with as many client threads as slots
(each on its own kept-alive connection):
  - LOGINS (200) password-only logins of one user;
  - one login with password and TOTP code for each user (a code is good once per user);
and, in the same run (before and after the logins, the ratios using the mean), the reference:
bench/pwhash-ref (built beside coffre) times libsodium's own crypto_pwhash_str_alg at that cost
on one thread, and the password pool with `slots` threads. It prints logins/s, the reference slots / t(one hash), the machine's own ceiling
min(slots, cores) / t(one hash), and the ratios. Python 3 standard library only.
"""

import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Vault  # noqa: E402

MEM = os.environ.get("BENCH_MEM", "19M")
PASSES = int(os.environ.get("BENCH_PASSES", "2"))
SLOTS = int(os.environ.get("BENCH_SLOTS", "4"))
USERS = int(os.environ.get("BENCH_USERS", "20"))


def size_bytes(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def reference(binary, rounds=10):
    ref = os.path.join(os.path.dirname(os.path.abspath(binary)), "bench", "pwhash-ref")
    out = subprocess.run([ref, str(size_bytes(MEM)), str(PASSES), str(SLOTS), str(rounds)], check=True,
                         capture_output=True, text=True).stdout
    kv = dict(line.split("=", 1) for line in out.split())
    return float(kv["one_hash_median_s"]), float(kv["pool_hashes_per_s"])


def user_with_totp(v):
    """A viewer who enrolled a second factor of their own accord; its login code is the next
    step's (this step's went to the confirmation, and a code is good once)."""
    u = v.create_user("viewer")
    tok = v.session_for(u)
    r = v.json_request("POST", "/v1/users/me/totp", token=tok)
    assert r.status == 200, "TOTP enrolment: %d" % r.status
    u["totp_secret"] = r.json()["secret"]
    r = v.json_request("POST", "/v1/users/me/totp/confirm", {"code": v.totp_code(u["totp_secret"])}, token=tok)
    assert r.status == 200, "TOTP confirmation: %d" % r.status
    return u


def timed_logins(v, bodies, threads):
    """Posts each body once to /v1/auth/login from `threads` clients; returns (seconds, statuses)."""
    lock = threading.Lock()
    todo = list(bodies)
    statuses = []

    def worker():
        w = Vault.__new__(Vault)
        w.__dict__.update(v.__dict__)
        w._conn = None  # a connection of its own
        while True:
            with lock:
                if not todo:
                    return
                body = todo.pop()
            r = w.request("POST", "/v1/auth/login", body=json.dumps(body),
                          headers={"Content-Type": "application/json"}, auth=False)
            with lock:
                statuses.append(r.status)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0, statuses


def main():
    binary = sys.argv[1]
    logins = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    before = reference(binary)
    with Vault(binary) as v:
        with open(os.path.join(v.data, "coffre.conf"), "a") as f:
            f.write("\n[auth]\nargon2_memory = %s\nargon2_passes = %d\nhash_slots = %d\nhash_wait_ms = 600000\n"
                    "login_account_burst = 1000000\nlogin_account_per_minute = 1000000\n"
                    "login_address_burst = 1000000\nlogin_address_per_minute = 1000000\n" % (MEM, PASSES, SLOTS))
        v.start()
        one = v.create_user("viewer")
        users = [user_with_totp(v) for _ in range(USERS)]

        pw_s, st = timed_logins(v, [{"email": one["email"], "password": one["password"]}] * logins, SLOTS)
        assert st.count(200) == logins, "password logins failed: %r" % sorted(set(st))
        bodies = [{"email": u["email"], "password": u["password"], "totp": v.totp_code(u["totp_secret"], v.now() + 30)}
                  for u in users]
        totp_s, st = timed_logins(v, bodies, SLOTS)
        assert st.count(200) == len(users), "2FA logins failed: %r" % sorted(set(st))

    after = reference(binary)
    # The machine is shared: the reference is measured before and after the logins, and the
    # ratios use the mean of the two.
    t_hash = (before[0] + after[0]) / 2
    pool_rate = (before[1] + after[1]) / 2
    print("libsodium one hash, before / after the logins: %.1f / %.1f ms" % (before[0] * 1000, after[0] * 1000))
    cores = os.cpu_count() or 1
    ideal = SLOTS / t_hash
    ceiling = min(SLOTS, cores) / t_hash
    print("cost: argon2_memory %s, argon2_passes %d, hash_slots %d; %d cores" % (MEM, PASSES, SLOTS, cores))
    print("libsodium, one hash on one thread: %.1f ms (mean)" % (t_hash * 1000))
    print("reference slots / t(hash):            %7.1f /s" % ideal)
    print("machine ceiling min(slots,cores)/t:   %7.1f /s" % ceiling)
    print("password pool alone, %d threads:       %7.1f hashes/s (%.2f of the reference)"
          % (SLOTS, pool_rate, pool_rate / ideal))
    for label, n, s in (("password logins", logins, pw_s), ("password + TOTP logins", len(users), totp_s)):
        rate = n / s
        print("%-24s %4d in %6.2fs: %7.1f /s = %.2f of the reference, %.2f of the machine ceiling"
              % (label, n, s, rate, rate / ideal, rate / ceiling))


if __name__ == "__main__":
    main()
