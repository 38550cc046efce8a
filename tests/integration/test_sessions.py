"""test_sessions.py: login sessions expire when idle ([auth] session_idle, 30 min by default)
and at the end of their lifetime ([auth] session_lifetime, 12 h) however busy they are; the
enrol-only session too. Time is moved with the server's test clock (POST /v1/_test/clock, a
-Dtest_hooks=true build), never slept.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, TestFailure, Vault, check, exit_status, expect_problem, run_tests  # noqa: E402

BINARY = sys.argv[1]
V = None


def me(token):
    return V.request("GET", "/v1/users/me", headers=V.auth_headers(token))


def test_idle_expiry():
    u = V.create_user("viewer")
    s = V.session_for(u)
    V.shift_clock(29 * 60)
    check(me(s).status == 200, "a session idle 29 min was refused")
    V.shift_clock(29 * 60)  # 58 min old, but used 29 min ago
    check(me(s).status == 200, "use did not restart the idle time")
    V.shift_clock(30 * 60 + 1)
    expect_problem(me(s), 401, "unauthorized")


def test_absolute_expiry():
    u = V.create_user("accountant")
    s = V.session_for(u)
    for _ in range(24):  # used every 29 min: never idle, 11 h 36 min in all
        V.shift_clock(29 * 60)
        check(me(s).status == 200, "a busy session ended before its lifetime")
    V.shift_clock(25 * 60)  # 12 h 1 min
    expect_problem(me(s), 401, "unauthorized")
    r = V.login(u["email"], u["password"])
    check(r.status == 200, "a new login after the lifetime", r)


def test_expires_at_is_the_lifetime():
    u = V.create_user("viewer")
    r = V.login(u["email"], u["password"])
    check(r.status == 200, "login", r)
    import datetime
    exp = datetime.datetime.fromisoformat(r.json()["expires_at"].replace("Z", "+00:00")).timestamp()
    check(abs(exp - (V.now() + 12 * 3600)) < 120, "expires_at is not 12 h ahead", r.json(), V.now())


def test_enrol_session_expires():
    u = V.create_user("admin")
    r = V.login(u["email"], u["password"])
    enrol = expect_problem(r, 403, "totp-enrolment-required")["token"]
    V.shift_clock(31 * 60)
    expect_problem(V.json_request("POST", "/v1/users/me/totp", token=enrol), 401, "unauthorized")


def test_configured_idle():
    V.stop()
    with open(os.path.join(V.data, "coffre.conf"), "a") as f:
        f.write("\n[auth]\nsession_idle = 600\n")
    V.start()
    u = V.create_user("viewer")
    s = V.session_for(u)
    V.shift_clock(9 * 60)
    check(me(s).status == 200, "refused before the configured idle time")
    V.shift_clock(10 * 60 + 1)
    expect_problem(me(s), 401, "unauthorized")


def main():
    global V
    if len(sys.argv) > 2 and sys.argv[2] == "no-hooks":
        print("needs a build with -Dtest_hooks=true (the test clock); skipped")
        return SKIP
    with Vault(BINARY) as v:
        V = v
        V.start()
        return run_tests([test_idle_expiry, test_absolute_expiry, test_expires_at_is_the_lifetime,
                          test_enrol_session_expires, test_configured_idle])


if __name__ == "__main__":
    try:
        rc = main()
    except TestFailure as e:
        print("FAIL setup: %s" % e)
        rc = 1
    sys.exit(exit_status(rc))
