"""test_accounts.py: users, roles, organisations, login with a second factor, API tokens and the
audit of each account event, against a real server.

One vault for the file: the bootstrap token makes the operator, then the owner (as the harness
does), and stops working. Each test makes the users it needs. Second-factor codes come from the
server's test clock (POST /v1/_test/clock, a -Dtest_hooks=true build), moved one step per login
so that no code is a replay unless the test means it to be.
"""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SKIP, TestFailure, Vault, check, exit_status, expect_problem,  # noqa: E402
                     run_tests, ALL_SCOPES)

BINARY = sys.argv[1]
V = None
OPERATOR = {}


def post(path, obj, token=None):
    return V.json_request("POST", path, obj, token=token)


def next_step():
    """Moves the server's clock one TOTP step on: a new code, never a replay."""
    V.shift_clock(30)


def body_sans_id(resp):
    doc = resp.json()
    doc.pop("request_id", None)
    return doc


def user_ids():
    r = V.request("GET", "/v1/users")
    check(r.status == 200, "listing users: %d" % r.status, r)
    return sorted(u["id"] for u in r.json()["users"])


def check_bootstrap_token_makes_one_operator():
    r = post("/v1/users", {"email": "op2@example.com", "password": "a-long-password-2", "role": "operator"},
             token=V.bootstrap_token)
    expect_problem(r, 403, "forbidden")
    r = post("/v1/users", {"email": "op3@example.com", "password": "a-long-password-3", "role": "operator"},
             token=V.bootstrap_token)
    expect_problem(r, 403, "forbidden")


def test_bootstrap_token_stops_after_first_owner():
    r = post("/v1/users", {"email": "late@example.com", "password": "a-long-password-1", "role": "owner"},
             token=V.bootstrap_token)
    expect_problem(r, 401, "unauthorized")
    r = V.request("GET", "/v1/documents", headers=V.auth_headers(V.bootstrap_token))
    expect_problem(r, 401, "unauthorized")


def test_create_each_role():
    for role in ("owner", "admin", "accountant", "viewer", "auditor"):
        email = "Each.%s@Example.com" % role
        r = post("/v1/users", {"email": email, "password": "pw-for-%s-123456" % role, "role": role,
                               "display_name": "Zoé %s" % role.capitalize(), "phone": "+33 1 23 45 67 89"})
        check(r.status == 201, "owner creates a %s: %d" % (role, r.status), r)
        doc = r.json()
        check(doc["email"] == email and doc["role"] == role and len(doc["id"]) == 32, "201 body", doc)
        check(r.header("Location") == "/v1/users/" + doc["id"], "Location header", r)
        g = V.request("GET", "/v1/users/" + doc["id"])
        check(g.status == 200 and g.json()["display_name"] == "Zoé %s" % role.capitalize(), "get back", g)
    # the same address in another case is the same account
    r = post("/v1/users", {"email": "each.VIEWER@example.COM", "password": "another-password-1", "role": "viewer"})
    expect_problem(r, 409, "conflict")


def test_role_grant_refusals():
    admin = V.create_user("admin")
    admin_session = V.session_for(admin)
    before = user_ids()
    r = post("/v1/users", {"email": "made-owner@example.com", "password": "a-long-password-2", "role": "owner"},
             token=admin_session)
    expect_problem(r, 403, "forbidden")
    for tok in (admin_session, V.token):
        r = post("/v1/users", {"email": "made-op@example.com", "password": "a-long-password-3", "role": "operator"},
                 token=tok)
        expect_problem(r, 403, "forbidden")
    # an admin may make an accountant, but not promote anyone to owner nor touch an owner
    acc = V.create_user("accountant", token=admin_session)
    r = V.json_request("PATCH", "/v1/users/" + acc["id"], {"role": "owner"}, token=admin_session)
    expect_problem(r, 403, "forbidden")
    r = V.json_request("PATCH", "/v1/users/" + V.owner_id, {"role": "viewer"}, token=admin_session)
    expect_problem(r, 403, "forbidden")
    r = V.request("DELETE", "/v1/users/" + V.owner_id, headers=V.auth_headers(admin_session))
    expect_problem(r, 403, "forbidden")
    # an accountant creates no one
    acc_session = V.session_for(acc)
    r = post("/v1/users", {"email": "by-acc@example.com", "password": "a-long-password-4", "role": "viewer"},
             token=acc_session)
    expect_problem(r, 403, "forbidden")
    check(user_ids() == sorted(before + [acc["id"]]), "a refused grant changed the users")
    # the last owner stays: the other owners go first
    for u in V.request("GET", "/v1/users").json()["users"]:
        if u["role"] == "owner" and u["id"] != V.owner_id:
            r = V.json_request("PATCH", "/v1/users/" + u["id"], {"role": "viewer"})
            check(r.status == 200, "demoting a second owner", r)
    r = V.json_request("PATCH", "/v1/users/" + V.owner_id, {"role": "admin"})
    expect_problem(r, 409, "conflict")
    r = V.request("DELETE", "/v1/users/" + V.owner_id)
    expect_problem(r, 409, "conflict")
    # a disabled owner does not count: the active one stays while the other is disabled
    second = V.create_user("owner")
    r = V.json_request("PATCH", "/v1/users/" + second["id"], {"status": "disabled"})
    check(r.status == 200 and r.json()["status"] == "disabled", "disabling a second owner", r)
    for body in ({"status": "disabled"}, {"role": "admin"}):
        expect_problem(V.json_request("PATCH", "/v1/users/" + V.owner_id, body), 409, "conflict")
    expect_problem(V.request("DELETE", "/v1/users/" + V.owner_id), 409, "conflict")
    check(V.request("GET", "/v1/users/me").status == 200, "the active owner")
    # the disabled owner itself may go (it leaves the active one)
    r = V.request("DELETE", "/v1/users/" + second["id"])
    check(r.status == 204, "removing a disabled owner", r)


def test_bad_input_names_field():
    before = user_ids()
    good = {"email": "fine@example.com", "password": "a-fine-password-9", "role": "viewer"}
    cases = [
        (dict(good, email="not-an-address"), "email"),
        (dict(good, email="a@b@example.com"), "email"),
        (dict(good, email="x" * 250 + "@example.com"), "email"),
        (dict(good, password="short"), "password"),
        (dict(good, password="Unbelievable"), "password"),  # in the common list, any case
        (dict(good, role="emperor"), "role"),
        (dict(good, role=7), "role"),
        (dict(good, display_name="x" * 129), "display_name"),
        (dict(good, display_name="bell\u0007"), "display_name"),
        (dict(good, phone="call me"), "phone"),
        (dict(good, colour="blue"), "colour"),
        ({"email": "fine@example.com", "role": "viewer"}, "password"),
    ]
    for body, field in cases:
        r = post("/v1/users", body)
        doc = expect_problem(r, 400, "bad-request")
        check("'%s'" % field in doc["detail"], "400 does not name %r" % field, body, doc)
    # an over-long password is named as too long (the message is chosen before the body is wiped)
    for path, body in (("/v1/users", dict(good, password="p" * 1025)),
                       ("/v1/auth/login", {"email": "fine@example.com", "password": "p" * 1025})):
        r = post(path, body)
        doc = expect_problem(r, 400, "bad-request")
        check("'password' is too long" in doc["detail"], "over-long password at %s" % path, doc)
    for raw in (b"{", b"[]", b'{"email":"a@example.com","email":"b@example.com"}', b"\xff\xfe"):
        r = V.request("POST", "/v1/users", body=raw, headers={"Content-Type": "application/json"})
        expect_problem(r, 400, "bad-request")
    r = V.request("POST", "/v1/users", body=b'{"email":"' + b"a" * 70000 + b'"}',
                  headers={"Content-Type": "application/json"})
    expect_problem(r, 413, "payload-too-large")
    # tokens are made in a session (docs/security.md, the permission table)
    r = V.json_request("POST", "/v1/tokens", {"name": "t", "scopes": ["documents:read", "root"]},
                       token=V.owner_session)
    doc = expect_problem(r, 400, "bad-request")
    check("'scopes'" in doc["detail"], "scopes not named", doc)
    check(user_ids() == before, "bad input changed the users")


def test_login_and_second_factor():
    viewer = V.create_user("viewer")
    r = V.login(viewer["email"], viewer["password"])
    check(r.status == 200 and r.json()["token"].startswith("cfr_") and r.json()["expires_at"], "viewer login", r)
    # wrong password and unknown e-mail: the same answer
    wrong = V.login(viewer["email"], "not-the-password-1")
    unknown = V.login("nobody-%s@example.com" % viewer["id"][:6], "not-the-password-1")
    expect_problem(wrong, 401, "unauthorized")
    expect_problem(unknown, 401, "unauthorized")
    check(body_sans_id(wrong) == body_sans_id(unknown), "unknown e-mail answered unlike a wrong password",
          wrong.body, unknown.body)
    # an owner must enrol: the enrol-only token can do nothing else
    owner = V.create_user("owner")
    r = V.login(owner["email"], owner["password"])
    doc = expect_problem(r, 403, "totp-enrolment-required")
    enrol = doc["token"]
    for method, path in (("GET", "/v1/documents"), ("GET", "/v1/users/me"), ("GET", "/v1/tokens"),
                         ("POST", "/v1/auth/logout-all")):
        r = V.request(method, path, headers=V.auth_headers(enrol))
        expect_problem(r, 403, "forbidden")
    r = post("/v1/tokens", {"name": "sneaky", "scopes": ["documents:read"]}, token=enrol)
    expect_problem(r, 403, "forbidden")
    r = post("/v1/users/me/totp", None, token=enrol)
    check(r.status == 200, "enrol", r)
    e = r.json()
    check(e["otpauth_uri"].startswith("otpauth://totp/") and "secret=" + e["secret"] in e["otpauth_uri"],
          "otpauth URI", e)
    import base64
    check(base64.b64decode(e["qr_png_base64"])[:8] == b"\x89PNG\r\n\x1a\n", "QR code is not a PNG")
    r = post("/v1/users/me/totp/confirm", {"code": "000000" if V.totp_code(e["secret"]) != "000000" else "111111"},
             token=enrol)
    doc = expect_problem(r, 400, "bad-request")
    check("'code'" in doc["detail"], "wrong code not named", doc)
    r = post("/v1/users/me/totp/confirm", {"code": V.totp_code(e["secret"])}, token=enrol)
    check(r.status == 200 and len(r.json()["recovery_codes"]) == 10, "confirm", r)
    codes = r.json()["recovery_codes"]
    check(len(set(codes)) == 10, "recovery codes repeat", codes)
    # the confirmation revoked the enrol-only session
    r = post("/v1/users/me/totp", None, token=enrol)
    expect_problem(r, 401, "unauthorized")
    next_step()
    r = V.login(owner["email"], owner["password"])
    expect_problem(r, 401, "totp-required")
    code = V.totp_code(e["secret"])
    r = V.login(owner["email"], owner["password"], totp=code)
    check(r.status == 200, "login with the code", r)
    session = r.json()["token"]
    r = V.request("GET", "/v1/users/me", headers=V.auth_headers(session))
    check(r.status == 200 and r.json()["id"] == owner["id"] and r.json()["totp_enabled"] is True, "me", r)
    # the same code again is a replay
    r = V.login(owner["email"], owner["password"], totp=code)
    expect_problem(r, 401, "unauthorized")
    # a recovery code works once
    r = V.login(owner["email"], owner["password"], recovery_code=codes[3].upper())
    check(r.status == 200, "login with a recovery code", r)
    r = V.login(owner["email"], owner["password"], recovery_code=codes[3])
    expect_problem(r, 401, "unauthorized")
    # disabling needs a current code and ends every session
    next_step()
    r = V.json_request("DELETE", "/v1/users/me/totp", {"code": code}, token=session)
    expect_problem(r, 400, "bad-request")
    r = V.json_request("DELETE", "/v1/users/me/totp", {"code": V.totp_code(e["secret"])}, token=session)
    check(r.status == 204, "disable", r)
    r = V.request("GET", "/v1/users/me", headers=V.auth_headers(session))
    expect_problem(r, 401, "unauthorized")
    r = V.login(owner["email"], owner["password"])
    expect_problem(r, 403, "totp-enrolment-required")


def test_sessions_revoked_on_changes():
    user = V.create_user("accountant")
    s1 = V.session_for(user)
    s2 = V.session_for(user)
    me = lambda tok: V.request("GET", "/v1/users/me", headers=V.auth_headers(tok)).status  # noqa: E731
    # logout ends one session, logout-all every one
    r = V.request("POST", "/v1/auth/logout", headers=V.auth_headers(s1))
    check(r.status == 204, "logout", r)
    check(me(s1) == 401 and me(s2) == 200, "logout ended the wrong sessions")
    s3 = V.session_for(user)
    r = V.request("POST", "/v1/auth/logout-all", headers=V.auth_headers(s3))
    check(r.status == 204, "logout-all", r)
    check(me(s2) == 401 and me(s3) == 401, "logout-all left a session")
    # a password change (with the current password) ends every session
    s4, s5 = V.session_for(user), V.session_for(user)
    r = V.json_request("POST", "/v1/users/me/password", {"current_password": "wrong-password-00",
                                                         "new_password": "a-new-password-77"}, token=s4)
    doc = expect_problem(r, 400, "bad-request")
    check("'current_password'" in doc["detail"], "wrong current password not named", doc)
    check(me(s4) == 200, "a refused password change ended the session")
    r = V.json_request("POST", "/v1/users/me/password", {"current_password": user["password"],
                                                         "new_password": "a-new-password-77"}, token=s4)
    check(r.status == 204, "password change", r)
    check(me(s4) == 401 and me(s5) == 401, "sessions survived the password change")
    expect_problem(V.login(user["email"], user["password"]), 401, "unauthorized")
    user["password"] = "a-new-password-77"
    # a role change by an owner ends every session; a token keeps the new role's rights only
    s6 = V.session_for(user)
    r = V.json_request("PATCH", "/v1/users/" + user["id"], {"role": "viewer"})
    check(r.status == 200 and r.json()["role"] == "viewer", "role change", r)
    check(me(s6) == 401, "the session survived the role change")


def test_second_factor_rule_binds_existing_credentials():
    docs = lambda tok: V.request("GET", "/v1/documents", headers=V.auth_headers(tok))  # noqa: E731
    # (a) an accountant (no second factor) made admin: its token waits for the enrolment
    acc = V.create_user("accountant")
    tok = post("/v1/tokens", {"name": "t", "scopes": ["documents:read"]}, token=V.session_for(acc)).json()["token"]
    check(docs(tok).status == 200, "the accountant's token")
    r = V.json_request("PATCH", "/v1/users/" + acc["id"], {"role": "admin"})
    check(r.status == 200, "promote", r)
    expect_problem(docs(tok), 403, "totp-enrolment-required")
    expect_problem(V.request("GET", "/v1/users", headers=V.auth_headers(tok)), 403, "totp-enrolment-required")
    # (b) the organisation starts requiring a second factor: a viewer's token and session stop
    viewer = V.create_user("viewer")
    vs = V.session_for(viewer)
    vt = post("/v1/tokens", {"name": "v", "scopes": ["documents:read"]}, token=vs).json()["token"]
    check(docs(vt).status == 200 and docs(vs).status == 200, "the viewer's credentials")
    org = V.request("GET", "/v1/users/me").json()["org_id"]
    r = V.json_request("PATCH", "/v1/orgs/" + org, {"require_2fa": True})
    check(r.status == 200, "require_2fa", r)
    try:
        expect_problem(docs(vt), 403, "totp-enrolment-required")
        expect_problem(docs(vs), 401, "unauthorized")
        check(docs(V.owner_session).status == 200, "the enrolled owner was refused")
    finally:
        r = V.json_request("PATCH", "/v1/orgs/" + org, {"require_2fa": False})
        check(r.status == 200, "require_2fa off", r)
    # the session was revoked, not suspended; the token works again once the rule is lifted
    expect_problem(docs(vs), 401, "unauthorized")
    check(docs(vt).status == 200, "the viewer's token after the rule was lifted")


def test_own_secret_checks_limited():
    """A wrong current password or second-factor code is limited like a login and audited."""
    user = V.create_user("viewer")
    s = V.session_for(user)
    change = lambda cur: V.json_request("POST", "/v1/users/me/password",  # noqa: E731
                                        {"current_password": cur, "new_password": "another-password-88"}, token=s)
    for i in range(4):  # three free failures, the fourth starts a delay
        expect_problem(change("wrong-password-%d" % i), 400, "bad-request")
    r = change(user["password"])
    expect_problem(r, 429, "rate-limited")
    check(r.header("Retry-After") == "1", "Retry-After", r)
    V.shift_clock(1)
    check(change(user["password"]).status == 204, "the change once the delay is over")
    admin = V.create_user("admin")
    sa = V.session_for(admin)
    next_step()
    code = V.totp_code(admin["secret"])
    wrong = "%06d" % ((int(code) + 500000) % 1000000)
    disable = lambda c: V.json_request("DELETE", "/v1/users/me/totp", {"code": c}, token=sa)  # noqa: E731
    for i in range(4):
        expect_problem(disable(wrong), 400, "bad-request")
    expect_problem(disable(code), 429, "rate-limited")
    check(V.request("GET", "/v1/users/me", headers=V.auth_headers(sa)).json()["totp_enabled"] is True,
          "a refused disable changed the second factor")


def test_tokens():
    acc = V.create_user("accountant")
    s = V.session_for(acc)
    # scopes within the creator's rights
    r = post("/v1/tokens", {"name": "too much", "scopes": ["audit:read"]}, token=s)
    expect_problem(r, 403, "forbidden")
    r = post("/v1/tokens", {"name": "ci upload", "scopes": ["documents:read", "documents:write"],
                            "expires_in": 3600}, token=s)
    check(r.status == 201, "token create", r)
    t = r.json()
    check(t["token"].startswith("cfr_") and t["scopes"] == ["documents:read", "documents:write"], "201", t)
    r = V.upload(b"by token", name="t.txt", token=t["token"])
    check(r.status == 201, "upload with the token", r)
    lst = V.request("GET", "/v1/tokens", headers=V.auth_headers(s)).json()["tokens"]
    check([x["id"] for x in lst] == [t["id"]], "an accountant sees only its own tokens", lst)
    check(all("token" not in x for x in lst), "a listing shows a secret", lst)
    mine = {x["id"] for x in V.request("GET", "/v1/tokens").json()["tokens"]}
    check(t["id"] in mine, "the owner does not see the organisation's tokens")
    r = V.request("DELETE", "/v1/tokens/" + t["id"], headers=V.auth_headers(s))
    check(r.status == 204, "revoke", r)
    expect_problem(V.upload(b"x", token=t["token"]), 401, "unauthorized")
    expect_problem(V.request("DELETE", "/v1/tokens/" + t["id"], headers=V.auth_headers(s)), 404, "not-found")
    # expiry, by the test clock
    r = post("/v1/tokens", {"name": "short", "scopes": ["documents:read"], "expires_in": 60}, token=s)
    short = r.json()["token"]
    check(V.request("GET", "/v1/documents", headers=V.auth_headers(short)).status == 200, "fresh token refused")
    V.shift_clock(61)
    expect_problem(V.request("GET", "/v1/documents", headers=V.auth_headers(short)), 401, "unauthorized")
    # a removed user's tokens stop working
    r = post("/v1/tokens", {"name": "orphan", "scopes": ["documents:read"]}, token=V.session_for(acc))
    orphan = r.json()["token"]
    r = V.request("DELETE", "/v1/users/" + acc["id"])
    check(r.status == 204, "remove user", r)
    expect_problem(V.request("GET", "/v1/documents", headers=V.auth_headers(orphan)), 401, "unauthorized")


def test_organisations_and_isolation():
    op = OPERATOR["session"]
    r = post("/v1/orgs", {"name": "Other SARL"}, token=op)
    check(r.status == 201 and r.json()["name"] == "Other SARL", "org create", r)
    org_b = r.json()["id"]
    expect_problem(post("/v1/orgs", {"name": "By owner"}), 403, "forbidden")
    expect_problem(post("/v1/orgs", {"name": ""}, token=op), 400, "bad-request")
    names = [o["name"] for o in V.request("GET", "/v1/orgs", headers=V.auth_headers(op)).json()["orgs"]]
    check("Other SARL" in names and len(names) == 2, "operator's org list", names)
    mine = V.request("GET", "/v1/orgs").json()["orgs"]
    check(len(mine) == 1 and mine[0]["id"] != org_b, "an owner sees only its organisation", mine)
    # the operator makes org B's owner; that owner lives in B only
    owner_b = V.create_user("owner", token=op, org_id=org_b)
    check(owner_b["org_id"] == org_b, "owner of B in B", owner_b)
    # an address taken in B answers an owner of A exactly as one taken in A: no organisation named
    taken_b = post("/v1/users", {"email": owner_b["email"].upper(), "password": "a-probe-password-5", "role": "viewer"})
    taken_a = post("/v1/users", {"email": V.owner_email, "password": "a-probe-password-5", "role": "viewer"})
    expect_problem(taken_b, 409, "conflict")
    expect_problem(taken_a, 409, "conflict")
    check(body_sans_id(taken_b) == body_sans_id(taken_a), "a taken address tells where", taken_b.body, taken_a.body)
    # once B has an owner, the operator makes no one there (an owner it made would read B's
    # documents), nor in the instance's own organisation
    before = user_ids()
    for org, role in ((org_b, "owner"), (org_b, "viewer"), (mine[0]["id"], "owner")):
        r = post("/v1/users", {"email": "sneak-%s@example.com" % role, "password": "a-sneaky-password-7",
                               "role": role, "org_id": org}, token=op)
        expect_problem(r, 403, "forbidden")
    check(user_ids() == before, "a refused create changed the users")
    sb = V.session_for(owner_b)
    tb = post("/v1/tokens", {"name": "b", "scopes": ["documents:read"]}, token=sb).json()
    doc_b = V.upload(b"org b's", name="b.pdf", token=post("/v1/tokens", {"name": "bw", "scopes": ALL_SCOPES},
                                                            token=sb).json()["token"]).json()
    missing = "0" * 32
    pairs = [("GET", "/v1/users/%s"), ("PATCH", "/v1/users/%s"), ("DELETE", "/v1/users/%s"),
             ("DELETE", "/v1/tokens/%s"), ("GET", "/v1/orgs/%s"), ("PATCH", "/v1/orgs/%s"),
             ("GET", "/v1/documents/%s")]
    foreign_ids = {"users": owner_b["id"], "tokens": tb["id"], "orgs": org_b, "documents": doc_b["id"]}
    for method, pattern in pairs:
        kind = pattern.split("/")[2]
        body = {"name": "x"} if method == "PATCH" and kind == "orgs" else ({"display_name": "x"} if method == "PATCH"
                                                                          else None)
        a = V.json_request(method, pattern % foreign_ids[kind], body)
        b = V.json_request(method, pattern % missing, body)
        expect_problem(a, 404, "not-found")
        expect_problem(b, 404, "not-found")
        check(body_sans_id(a) == body_sans_id(b), "%s %s: a foreign id answers unlike a missing one" % (method, kind),
              a.body, b.body)
    check(V.request("GET", "/v1/users/" + owner_b["id"], headers=V.auth_headers(sb)).status == 200, "B sees B")
    # suspension: B's members and tokens are refused, A is not
    r = V.json_request("PATCH", "/v1/orgs/" + org_b, {"status": "suspended"}, token=op)
    check(r.status == 200 and r.json()["status"] == "suspended", "suspend", r)
    expect_problem(V.request("GET", "/v1/users/me", headers=V.auth_headers(sb)), 401, "unauthorized")
    expect_problem(V.request("GET", "/v1/documents", headers=V.auth_headers(tb["token"])), 401, "unauthorized")
    next_step()
    expect_problem(V.login(owner_b["email"], owner_b["password"], totp=V.totp_code(owner_b["secret"])), 401,
                   "unauthorized")
    check(V.request("GET", "/v1/users/me").status == 200, "suspending B refused A")
    # an owner may not suspend, nor the operator its own organisation
    expect_problem(V.json_request("PATCH", "/v1/orgs/" + mine[0]["id"], {"status": "suspended"}), 403, "forbidden")
    expect_problem(V.json_request("PATCH", "/v1/orgs/" + mine[0]["id"], {"status": "suspended"}, token=op), 403,
                   "forbidden")
    r = V.json_request("PATCH", "/v1/orgs/" + mine[0]["id"], {"require_2fa": True})
    check(r.status == 200 and r.json()["require_2fa"] is True, "require_2fa", r)
    viewer = V.create_user("viewer")
    expect_problem(V.login(viewer["email"], viewer["password"]), 403, "totp-enrolment-required")
    r = V.json_request("PATCH", "/v1/orgs/" + mine[0]["id"], {"require_2fa": False})
    check(r.status == 200 and r.json()["require_2fa"] is False, "require_2fa off", r)


REQUIRED_ACTIONS = {"user.login", "user.login_failed", "user.logout", "user.logout_all", "user.totp_enrolled",
                    "user.totp_disabled", "user.recovery_code_used", "user.password_changed", "user.role_changed",
                    "user.created", "user.removed", "token.created", "token.revoked", "org.created", "org.suspended",
                    "org.updated", "user.password_change_failed", "user.totp_failed"}


def test_audit_records_every_event():
    # the log's size, which a range past it names (the latest checkpoint may lag behind)
    doc = expect_problem(V.request("GET", "/v1/audit/entries?start=0&end=999999999"), 400, "bad-request")
    m = re.search(r"<= (\d+) \(the log's size\)", doc["detail"])
    check(m is not None, "no log size in %r" % doc["detail"])
    size = int(m.group(1))
    actions = set()
    for start in range(0, size, 1000):
        r = V.request("GET", "/v1/audit/entries?start=%d&end=%d" % (start, min(size, start + 1000)))
        check(r.status == 200, "entries page", r)
        for e in r.json()["entries"]:
            if e.get("entry"):
                check("example.com" not in e["entry"].lower() and "example.org" not in e["entry"].lower(),
                      "an e-mail in clear in the audit log", e["entry"])
                actions.add(json.loads(e["entry"])["action"])
    missing = REQUIRED_ACTIONS - actions
    check(not missing, "account events missing from the audit log: %s" % sorted(missing), sorted(actions))
    V.stop()
    r = subprocess.run([BINARY, "audit", "verify", "--data", V.data], capture_output=True, timeout=300)
    check(r.returncode == 0, "coffre audit verify failed (%d)" % r.returncode, r.stdout, r.stderr)
    V.start()


def stored_hash(user_id):
    import sqlite3
    db = sqlite3.connect(os.path.join(V.data, "meta.db"), timeout=30)
    try:
        return db.execute("SELECT password_hash FROM users WHERE id = ?", (user_id,)).fetchone()[0]
    finally:
        db.close()


def test_rehash_when_cost_rises_and_pool_metrics():
    u = V.create_user("viewer")
    before = stored_hash(u["id"])
    check("$argon2id$" in before and ",t=2," in before, "hash at the default cost", before)
    V.stop()
    with open(os.path.join(V.data, "coffre.conf"), "a") as f:
        f.write("\n[auth]\nargon2_passes = 3\n")
    V.start()
    r = V.login(u["email"], u["password"])
    check(r.status == 200, "login after the cost rose", r)
    after = stored_hash(u["id"])
    check(",t=3," in after and after != before, "the login did not rehash at the new cost", after)
    check(V.login(u["email"], u["password"]).status == 200, "the rehashed password does not verify")
    m = V.request("GET", "/metrics")
    check(m.status == 200, "metrics", m)
    for name in ("coffre_password_hash_slots", "coffre_password_hash_memory_budget_bytes"):
        check(name.encode() in m.body, "/metrics has no %s" % name, m.body[-2000:])


def personal_data_on_disk():
    needles = [b"Each.owner@Example.com", b"Zo\xc3\xa9 Owner", b"+33 1 23 45 67 89", V.owner_email.encode(),
               b"Each.viewer", b"example.com", b"operator@example.org"]
    found = []
    for dirpath, _dirs, files in os.walk(V.data):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                data = fh.read().lower()
            found += [(os.path.relpath(p, V.data), n) for n in needles if n.lower() in data]
    return found


def test_no_personal_data_in_clear():
    # while serving (meta.db-wal and -shm are there), then stopped
    wal = [f for f in os.listdir(V.data) if f.endswith("-wal")]
    check("meta.db-wal" in wal, "no WAL to look into while serving", wal)
    found = personal_data_on_disk()
    check(not found, "personal data in clear under the data directory while serving", found)
    V.stop()
    found = personal_data_on_disk()
    check(not found, "personal data in clear under the data directory", found)
    V.start()


def main():
    global V
    if len(sys.argv) > 2 and sys.argv[2] == "no-hooks":
        print("needs a build with -Dtest_hooks=true (the test clock); skipped")
        return SKIP
    with Vault(BINARY, owner=False) as v:
        V = v
        V.start()
        op = V.create_user("operator", token=V.bootstrap_token, email="operator@example.org")
        OPERATOR.update(op)
        # before the owner exists (the token still works): it makes no second operator
        check_bootstrap_token_makes_one_operator()
        V.setup_owner()
        OPERATOR["session"] = V.session_for(op)
        return run_tests([
            test_bootstrap_token_stops_after_first_owner,
            test_create_each_role,
            test_role_grant_refusals,
            test_bad_input_names_field,
            test_login_and_second_factor,
            test_sessions_revoked_on_changes,
            test_second_factor_rule_binds_existing_credentials,
            test_own_secret_checks_limited,
            test_tokens,
            test_organisations_and_isolation,
            test_audit_records_every_event,
            test_rehash_when_cost_rises_and_pool_metrics,
            test_no_personal_data_in_clear,
        ])


if __name__ == "__main__":
    try:
        rc = main()
    except TestFailure as e:
        print("FAIL setup: %s" % e)
        rc = 1
    sys.exit(exit_status(rc))
