#!/usr/bin/env python3
"""test_authz_matrix.py: the server enforces the permission table, route by route.

The table comes from the binary (`coffre --print-authz --json`: every route of src/api/routes.c
with its rule from src/http/authz.c), not from a copy. For every route, it calls the running
server with every kind of credential: a session of each role (owner, admin, accountant,
viewer, auditor of organisation A, and the operator), an API token of the owner with each single
scope, a token of each other role with every scope that role may hold, an enrol-only session
and the bootstrap token; and, for routes that name an object, with
an object of its own organisation and one of organisation B. It asserts the exact status:
  - refused by the table: 403 problem `forbidden`;
  - admitted: what the handler answers a well-formed request (2xx), or the 4xx of the harmless
    request the matrix sends to routes that would end the credential or change a secret (a body
    missing its fields: 400), and for another organisation's object 404 with the same body as a
    missing one.
A route of the binary's table without a rule, or without a request in this file, fails the test.
usage: test_authz_matrix.py COFFRE_BINARY
"""
import hashlib
import json
import secrets
import subprocess
import sys
import time

from harness import ALL_SCOPES, TestFailure, Vault, check, expect_problem

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
ROLES = ["owner", "admin", "accountant", "viewer", "auditor", "operator"]
TWO_FACTOR_ROLES = ("owner", "admin", "operator")
MISSING_ID = "0" * 32
CHECKPOINT_DEADLINE = 15.0  # seconds for the first checkpoint timestamp (checkpoints come every second)
# an RFC 3161 TimeStampReq (version 1, a SHA-256 imprint, no nonce) for POST /v1/tsa
TSA_QUERY = (bytes.fromhex("3034020101302f300b0609608648016503040201" "0420")
             + hashlib.sha256(b"matrix").digest())


def load_table():
    r = subprocess.run([BINARY, "--print-authz", "--json"], capture_output=True, timeout=60)
    check(r.returncode == 0, "coffre --print-authz --json exited %d" % r.returncode, r.stderr)
    doc = json.loads(r.stdout)
    routes = {}
    for rt in doc["routes"]:
        check(rt["rule"] is not None, "route %s (%s %s) has no rule in the permission table"
              % (rt["name"], rt["method"], rt["pattern"]))
        if rt["rule"]["test_only"]:
            continue
        routes.setdefault(rt["name"], dict(rt))  # audit.tile has three patterns, one rule
    check(len(routes) >= 30, "only %d routes in the table" % len(routes))
    check(doc["roles"] == ROLES, "the table's roles are %r" % doc["roles"])
    check(doc["scopes"] == ALL_SCOPES, "the table's scopes are %r" % doc["scopes"])
    return routes


class Cred:
    """A credential of the matrix: kind (token, session, enrol, bootstrap), the role it acts
    with, its scopes (tokens), its bearer, and its user (for the objects it owns)."""

    def __init__(self, label, kind, role, bearer, scopes=(), user=None, second=None, enrolled=False, maker=None):
        self.label, self.kind, self.role, self.bearer = label, kind, role, bearer
        self.scopes = list(scopes)
        self.user = user
        self.maker = maker  # a session of the user, which makes the tokens the credential may revoke
        self.second = second  # a second session of the same user, for logout_all
        self.enrolled = enrolled  # the user has a second factor

    def admitted(self, rule):
        """What the table says for this credential (computed here from the JSON rule)."""
        if rule["public"]:
            return True
        if self.kind not in rule["credentials"]:
            return False
        if self.kind == "bootstrap":
            return True
        if self.role not in rule["roles"]:
            return False
        return self.kind != "token" or bool(set(self.scopes) & set(rule["scopes"]))


class Matrix:
    def __init__(self, v, routes):
        self.v = v
        self.routes = routes
        self.calls = 0
        self.checked = set()
        # until set_up() makes them (the bootstrap token's calls are refused before they matter)
        self.foreign = {"document": MISSING_ID, "user": MISSING_ID, "token": MISSING_ID, "org": MISSING_ID}
        self.own_doc = self.own_user = self.org_a = self.org_b = MISSING_ID
        self.log_size = 1

    # -- set-up ------------------------------------------------------------------------

    def upload(self, token, name="m.txt"):
        r = self.v.request("POST", "/v1/documents?name=%s" % name, body=b"matrix " + secrets.token_bytes(8),
                           headers=self.v.auth_headers(token), auth=False)
        check(r.status == 201, "upload: %d" % r.status, r)
        return r.json()["id"]

    def api(self, method, path, obj=None, token=None, status=200):
        r = self.v.json_request(method, path, obj, token=token or self.v.token)
        check(r.status == status, "%s %s: %d, expected %d" % (method, path, r.status, status), r)
        return r.json() if r.body else None

    def new_token(self, session, scopes):
        return self.api("POST", "/v1/tokens", {"name": "m-" + secrets.token_hex(3), "scopes": scopes},
                        token=session, status=201)

    def second_session(self, user):
        if user.get("recovery_codes"):
            r = self.v.login(user["email"], user["password"], recovery_code=user["recovery_codes"].pop())
        else:
            r = self.v.login(user["email"], user["password"])
        check(r.status == 200, "second login of a %s: %d" % (user["role"], r.status), r)
        return r.json()["token"]

    def set_up(self, bootstrap):
        v = self.v
        self.operator = v.create_user("operator", token=bootstrap)
        v.setup_owner()
        r = v.json_request("GET", "/v1/users/me", token=bootstrap)
        expect_problem(r, 401, "unauthorized")  # the bootstrap token's job is done
        self.org_a = self.api("GET", "/v1/users/me")["org_id"]
        owner = {"id": v.owner_id, "email": v.owner_email, "password": v.owner_password, "role": "owner",
                 "recovery_codes": list(v.recovery_codes)}
        sessions = {"owner": (owner, v.owner_session)}
        for role in ROLES[1:]:
            u = self.operator if role == "operator" else v.create_user(role)
            sessions[role] = (u, v.session_for(u))
        op_session = sessions["operator"][1]
        # organisation B, its owner, a document, a user and a token of its own
        self.org_b = self.api("POST", "/v1/orgs", {"name": "Org B"}, token=op_session, status=201)["id"]
        b_owner = v.create_user("owner", token=op_session, org_id=self.org_b)
        b_session = v.session_for(b_owner)
        b_token = self.new_token(b_session, ALL_SCOPES)["token"]
        self.foreign = {
            "document": self.upload(b_token),
            "user": v.create_user("viewer", token=b_token)["id"],
            "token": self.new_token(b_session, ["documents:read"])["id"],
            "org": self.org_b,
        }
        self.own_doc = self.upload(v.token)
        self.own_user = v.create_user("viewer")["id"]
        cp = v.request("GET", "/v1/audit/checkpoint")
        check(cp.status == 200, "checkpoint: %d" % cp.status, cp)
        self.log_size = int(cp.body.decode().split("\n")[1])
        check(self.log_size >= 2, "the log has %d entries" % self.log_size)
        # the first checkpoint of the set-up is timestamped (bounded poll: it is signed apart)
        deadline = time.monotonic() + CHECKPOINT_DEADLINE
        while v.request("GET", "/v1/audit/checkpoint/timestamp").status != 200:
            check(time.monotonic() < deadline, "no checkpoint timestamp within %ss" % CHECKPOINT_DEADLINE)
            time.sleep(0.05)  # polling interval, bounded by the deadline above

        creds = []
        for scope in ALL_SCOPES:
            creds.append(Cred("owner token " + scope, "token", "owner",
                              self.new_token(v.owner_session, [scope])["token"], scopes=[scope], user=owner,
                              maker=v.owner_session))
        # and a token of each other role, with every scope that role may give it
        role_scopes = {"admin": ALL_SCOPES, "accountant": ["documents:read", "documents:write"],
                       "viewer": ["documents:read"], "auditor": ["documents:read", "audit:read", "witness"],
                       "operator": ["accounts"]}
        for role, scopes in role_scopes.items():
            u, s = sessions[role]
            creds.append(Cred("%s token %s" % (role, ",".join(scopes)), "token", role,
                              self.new_token(s, scopes)["token"], scopes=scopes, user=u, maker=s))
        enrolling = v.create_user("admin")
        doc = expect_problem(v.login(enrolling["email"], enrolling["password"]), 403, "totp-enrolment-required")
        creds.append(Cred("enrol-only session", "enrol", "admin", doc["token"], user=enrolling))
        # sessions last, the owner's at the very end: logout_all ends v.owner_session, which
        # makes the owner's tokens until then
        for role in ROLES[1:] + ROLES[:1]:
            u, s = sessions[role]
            creds.append(Cred(role + " session", "session", role, s, user=u, second=self.second_session(u),
                              enrolled=role in TWO_FACTOR_ROLES))
        self.sessions = sessions
        return creds

    def listings_stay_home(self):
        """No listing of organisation A shows, or counts, an object of organisation B."""
        f = self.foreign
        docs = self.api("GET", "/v1/documents?limit=1000")["documents"]
        check(f["document"] not in {d["id"] for d in docs} and self.own_doc in {d["id"] for d in docs},
              "documents.list crosses organisations")
        users = self.api("GET", "/v1/users")["users"]
        check(f["user"] not in {u["id"] for u in users} and {u["org_id"] for u in users} == {self.org_a},
              "users.list crosses organisations", users)
        tokens = self.api("GET", "/v1/tokens")["tokens"]
        check(f["token"] not in {t["id"] for t in tokens}, "tokens.list crosses organisations")
        orgs = self.api("GET", "/v1/orgs")["orgs"]
        check([o["id"] for o in orgs] == [self.org_a], "orgs.list of an owner shows %r" % orgs)
        q = self.api("GET", "/v1/documents?name=m.txt")["documents"]
        check(f["document"] not in {d["id"] for d in q}, "a name lookup found organisation B's document")

    # -- requests ----------------------------------------------------------------------

    def own_token_id(self, cred):
        """A fresh token the credential may revoke: one its user made (an owner's tokens make
        theirs with the owner's session)."""
        session = cred.bearer if cred.kind == "session" else cred.maker
        return self.new_token(session, ["accounts"] if cred.role == "operator" else ["documents:read"])["id"]

    def request_for(self, name, cred, foreign, admitted):
        """dict(method, path, body (JSON object or bytes), want (status when admitted), obj (the
        object's id in the path or body, for the missing-id comparison)). foreign is None for a
        route that names no object, else whether the object is organisation B's. Objects a call
        would use up are made only for admitted calls (a refused call reaches no handler)."""
        own = not foreign
        fid = self.foreign
        operator = cred.role == "operator"

        def obj(kind, make_own):
            if foreign:
                return fid[kind]
            return make_own() if admitted else MISSING_ID

        def req(method, path, want, body=None, o=None, ctype=None):
            return {"method": method, "path": path, "body": body, "want": want, "obj": o, "ctype": ctype}

        def doc_route(suffix, want_own):
            d = obj("document", lambda: self.own_doc)
            return req("GET", "/v1/documents/%s%s" % (d, suffix), want_own if own else 404, o=d)

        def users_create():
            body = {"email": "m-%s@example.com" % secrets.token_hex(4), "password": "matrix-" + secrets.token_hex(8),
                    "role": "viewer"}
            if operator or foreign:
                body["org_id"] = self.org_a if own else self.org_b
            # the operator makes people only in an organisation it made that has no owner yet:
            # org A is the instance's own, org B has its owner
            want = 403 if operator else (201 if own else 404)
            return req("POST", "/v1/users", want, body, body.get("org_id"))

        def with_id(method, prefix, kind, make_own, want_own, body=None):
            i = obj(kind, make_own)
            return req(method, prefix + i, want_own if own else 404, body, i)

        def hold_delete():
            def make():
                d = self.upload(self.v.token)
                r = self.v.json_request("POST", "/v1/documents/%s/holds" % d, {"reason": "m", "case": "c"})
                check(r.status == 201, "a hold to release", r)
                return d, r.json()["id"]
            d, h = (fid["document"], MISSING_ID) if foreign else make() if admitted else (MISSING_ID, MISSING_ID)
            return req("DELETE", "/v1/documents/%s/holds/%s" % (d, h), 204 if own else 404, {"reason": "r"}, d)

        def org(method, body=None):
            o = self.org_a if own else self.org_b
            return req(method, "/v1/orgs/" + o, 200 if own or operator else 404, body, o)

        scope = {"auditor": "audit:read", "operator": "accounts"}.get(cred.role, "documents:read")
        # [tsa] access = token (the default): any API token or session; not enrol-only, not bootstrap
        tsa = 200 if cred.kind in ("token", "session") else 403
        table = {
            "healthz": lambda: req("GET", "/healthz", 200),
            "openapi": lambda: req("GET", "/v1/openapi.yaml", 200),
            "ui.index": lambda: req("GET", "/", 200),
            "ui.file": lambda: req("GET", "/ui/app.js", 200),
            # its own [server] metrics rule (default: token): the role decides
            "metrics": lambda: req("GET", "/metrics", 200 if cred.role in ("owner", "admin", "operator") else 403),
            "auth.login": lambda: req("POST", "/v1/auth/login", 400, {}),
            "auth.logout": lambda: req("POST", "/v1/auth/logout", 204),
            "auth.logout_all": lambda: req("POST", "/v1/auth/logout-all", 204),
            "documents.create": lambda: req("POST", "/v1/documents?name=n.txt", 201, b"matrix upload"),
            "documents.list": lambda: req("GET", "/v1/documents", 200),
            "documents.get": lambda: doc_route("", 200),
            "documents.content": lambda: doc_route("/content", 200),
            "documents.audit": lambda: doc_route("/audit", 200),
            "documents.seal": lambda: doc_route("/seal", 200),
            "documents.evidence": lambda: doc_route("/evidence", 200),
            "tsa.timestamp": lambda: req("POST", "/v1/tsa", tsa, TSA_QUERY, ctype="application/timestamp-query"),
            "tsa.certificate": lambda: req("GET", "/v1/tsa/certificate", tsa),
            "documents.delete": lambda: with_id("DELETE", "/v1/documents/", "document",
                                                lambda: self.upload(self.v.token), 204),
            "documents.update": lambda: with_id("PATCH", "/v1/documents/", "document",
                                                lambda: self.upload(self.v.token), 200, {"class": "accounting-10y"}),
            "holds.create": lambda: (lambda d: req("POST", "/v1/documents/%s/holds" % d, 201 if own else 404,
                                                   {"reason": "m", "case": "c"}, d))(
                obj("document", lambda: self.upload(self.v.token))),
            "holds.delete": hold_delete,
            "holds.list": lambda: req("GET", "/v1/holds", 200),
            "holds.create_many": lambda: req("POST", "/v1/holds", 201,
                                             {"reason": "m", "case": "c", "filter": {"name": "no-such.pdf"}}),
            "audit.checkpoint": lambda: req("GET", "/v1/audit/checkpoint", 200),
            "audit.checkpoint_timestamp": lambda: req("GET", "/v1/audit/checkpoint/timestamp", 200),
            "audit.verifier_key": lambda: req("GET", "/v1/audit/verifier-key", 200),
            "audit.proof.inclusion": lambda: req("GET", "/v1/audit/proof/inclusion?index=0&size=%d" % self.log_size,
                                                 200),
            "audit.proof.consistency": lambda: req("GET", "/v1/audit/proof/consistency?old=1&new=%d" % self.log_size,
                                                   200),
            "audit.tile": lambda: req("GET", "/v1/audit/tile/0/000.p/1", 200),
            "audit.entries": lambda: req("GET", "/v1/audit/entries?start=0&end=1", 200),
            "audit.cosignature": lambda: req("POST", "/v1/audit/checkpoint/cosignature", 400, b"not a note"),
            "users.create": users_create,
            "users.list": lambda: req("GET", "/v1/users", 200),
            "users.me": lambda: req("GET", "/v1/users/me", 200),
            "users.password": lambda: req("POST", "/v1/users/me/password", 400, {}),
            "users.get": lambda: with_id("GET", "/v1/users/", "user", lambda: self.own_user, 200),
            "users.update": lambda: with_id("PATCH", "/v1/users/", "user", lambda: self.own_user, 200, {}),
            "users.delete": lambda: with_id("DELETE", "/v1/users/", "user", lambda: self.v.create_user("viewer")["id"],
                                            204),
            "totp.enroll": lambda: req("POST", "/v1/users/me/totp", 409 if cred.enrolled else 200),
            "totp.confirm": lambda: req("POST", "/v1/users/me/totp/confirm", 400, {}),
            "totp.disable": lambda: req("DELETE", "/v1/users/me/totp", 400, {}),
            "tokens.create": lambda: req("POST", "/v1/tokens", 201, {"name": "m", "scopes": [scope]}),
            "tokens.list": lambda: req("GET", "/v1/tokens", 200),
            "tokens.delete": lambda: with_id("DELETE", "/v1/tokens/", "token", lambda: self.own_token_id(cred), 204),
            "orgs.create": lambda: req("POST", "/v1/orgs", 201, {"name": "Org " + secrets.token_hex(3)}),
            "orgs.list": lambda: req("GET", "/v1/orgs", 200),
            "orgs.get": lambda: org("GET"),
            "orgs.update": lambda: org("PATCH", {}),
        }
        check(name in table, "route %s has no request in test_authz_matrix.py: add one" % name)
        return table[name]()

    # routes that name an object of an organisation (own and foreign variants)
    WITH_OBJECT = {"documents.get", "documents.content", "documents.audit", "documents.seal", "documents.evidence",
                   "documents.delete", "documents.update", "holds.create", "holds.delete", "users.get",
                   "users.update", "users.delete", "tokens.delete", "orgs.get", "orgs.update", "users.create"}
    # last, in this order: they end the credential
    ENDING = ["auth.logout", "auth.logout_all"]

    def send(self, method, path, body, bearer, ctype=None):
        headers = {"Authorization": "Bearer " + bearer}
        if ctype:
            headers["Content-Type"] = ctype
        if isinstance(body, dict):
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.calls += 1
        return self.v.request(method, path, body=body, headers=headers, auth=False)

    def one(self, name, cred, foreign):
        admitted = cred.admitted(self.routes[name]["rule"])
        q = self.request_for(name, cred, foreign, admitted)
        bearer = cred.second if name == "auth.logout_all" and cred.kind == "session" else cred.bearer
        r = self.send(q["method"], q["path"], q["body"], bearer, q["ctype"])
        where = "%s %s as %s%s" % (q["method"], q["path"].split("?")[0], cred.label,
                                   "" if foreign is None else (" (organisation B)" if foreign else " (own)"))
        if not admitted:
            check(r.status == 403, "%s: %d, but the table refuses it (403)" % (where, r.status), r)
            expect_problem(r, 403, "forbidden")
        else:
            check(r.status == q["want"], "%s: %d, expected %d" % (where, r.status, q["want"]), r)
            if q["want"] == 404:
                expect_problem(r, 404, "not-found")
                # exactly like a missing one (same status, same body but for the request id)
                body = q["body"]
                if isinstance(body, dict):
                    body = {k: (MISSING_ID if v == q["obj"] else v) for k, v in body.items()}
                m = self.send(q["method"], q["path"].replace(q["obj"], MISSING_ID), body, bearer, q["ctype"])
                a, b = r.json(), m.json()
                a.pop("request_id", None)
                b.pop("request_id", None)
                check(m.status == 404 and a == b, "%s: the answer differs from a missing id's" % where, r, m)
        self.checked.add((name, cred.label, foreign))

    def run(self, creds):
        for cred in creds:
            # those that end the credential last, after the refused ones, logout before logout_all
            ending = sorted(self.ENDING, key=lambda n: (cred.admitted(self.routes[n]["rule"]), self.ENDING.index(n)))
            order = [n for n in sorted(self.routes) if n not in self.ENDING] + ending
            for name in order:
                variants = [False, True] if name in self.WITH_OBJECT else [None]
                if cred.kind == "bootstrap":
                    variants = variants[:1]  # organisation B does not exist yet
                for foreign in variants:
                    self.one(name, cred, foreign)


def main():
    routes = load_table()
    with Vault(BINARY, owner=False) as v:
        v.start()
        m = Matrix(v, routes)
        # the bootstrap token first, while it works; its one admitted call, users.create, makes
        # the operator in set_up()
        bootstrap = Cred("bootstrap token", "bootstrap", "bootstrap", v.bootstrap_token)
        order = [n for n in sorted(routes) if n != "users.create"]
        for name in order:
            m.one(name, bootstrap, False if name in Matrix.WITH_OBJECT else None)
        creds = m.set_up(v.bootstrap_token)
        m.listings_stay_home()
        m.run(creds)
        called = {n for n, _c, _f in m.checked} | {"users.create"}
        missing = set(routes) - called
        check(not missing, "routes never called: %s" % ", ".join(sorted(missing)))
        rc = v.stop()
        check(rc == 0, "coffre serve exited %r" % rc, v.log_tail())
    print("ok: %d routes, %d credentials, %d calls" % (len(routes), len(creds) + 1, m.calls))


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
