#!/usr/bin/env python3
"""Retention, legal holds, erasure and the sweeper, on the real server with the shipped classes
and a few short ones declared in coffre.conf, moving the server's test clock (a build with
-Dtest_hooks=true: meson registers this test only there).

- every lock x retained/ended x hold combination, for each role, on DELETE (with and without a
  reason): exact statuses and problem types, and that what is refused changes nothing;
- a document becomes deletable exactly at its retain_until and not a second before;
- class changes only to a longer retention and a lock at least as strict; editing coffre.conf to
  shorten a class does not shorten a stored document;
- after erasure: 410 with the tombstone, no object file, no DEK in keyring.db, the audit trail
  (create, delete, erase) still there, `coffre audit verify` passes;
- holds: reasons and cases never in clear in meta.db, who may place, list and release them,
  holds by filter; bad input (unknown class, malformed date, hold on a missing document) is a
  clear 4xx that changes nothing;
- `coffre lifecycle run [--dry-run]`: erases what on_expiry = erase says, lists the rest, skips
  held documents, and a second run finds nothing more.
"""
import json
import os
import re
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Vault, check, expect_problem, run_tests  # noqa: E402

BINARY = sys.argv[1]
if sys.argv[2:] != ["hooks"]:
    sys.exit("test_lifecycle.py needs the test clock: meson registers it only with -Dtest_hooks=true")

DAY = 86400
CLASSES = """
[class gov-1d]
duration = 1d
start = ingest
lock = governance
on_expiry = erase
[class comp-1d]
duration = 1d
start = ingest
lock = compliance
on_expiry = erase
[class comp-2d]
duration = 2d
start = ingest
lock = compliance
on_expiry = review
"""

V = Vault(BINARY, scratch_classes=False)
with open(os.path.join(V.data, "coffre.conf"), "a") as f:
    f.write(CLASSES)
V.start()
TOK = {"owner": V.token}


def token_of(role):
    if role not in TOK:
        u = V.create_user(role)
        s = V.session_for(u)
        scopes = {"auditor": ["documents:read", "audit:read"], "viewer": ["documents:read"],
                  "accountant": ["documents:read", "documents:write"]}.get(
            role, ["documents:read", "documents:write", "audit:read"])
        r = V.json_request("POST", "/v1/tokens", {"name": role, "scopes": scopes}, token=s)
        check(r.status == 201, "token for %s" % role, r)
        TOK[role] = r.json()["token"]
    return TOK[role]


def ms(ts):
    import datetime
    return round(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def server_now_ms():
    r = V.request("POST", "/v1/_test/clock", auth=False)
    check(r.status == 200, "test clock", r)
    return r.json()["now_ms"]


def shift_ms(delta):
    r = V.request("POST", "/v1/_test/clock?shift_ms=%d" % delta, auth=False)
    check(r.status == 200, "test clock", r)
    V.clock_offset += delta / 1000.0


def delete(doc, role="owner", reason=None):
    body = {"reason": reason} if reason is not None else None
    return V.json_request("DELETE", "/v1/documents/" + doc, body, token=token_of(role))


def hold(doc, role="owner", reason="litige fournisseur", case="RG 24/01234"):
    return V.json_request("POST", "/v1/documents/%s/holds" % doc, {"reason": reason, "case": case},
                          token=token_of(role))


def get(doc):
    return V.request("GET", "/v1/documents/" + doc)


def dek_ids():
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(V.data, "keyring.db"), uri=True)
    try:
        return {bytes(r[0]).hex() for r in db.execute("SELECT object_id FROM dek")}
    finally:
        db.close()


def check_erased(doc, cls, why):
    r = get(doc)
    p = expect_problem(r, 410, "erased")
    check(p["id"] == doc and p["class"] == cls and p["why"] == why and re.match(r"^[0-9a-f]{64}$", p["sha256"]),
          "tombstone", p)
    expect_problem(V.request("GET", "/v1/documents/%s/content" % doc), 410, "erased")
    check(not any(doc in f for f in V.object_files()), "the ciphertext of %s is still on disk" % doc)
    check(doc not in dek_ids(), "the DEK of %s is still in keyring.db" % doc)
    r = V.request("GET", "/v1/documents/%s/audit" % doc)
    check(r.status == 200, "trail of an erased document", r)
    check(len(r.json()["entries"]) >= 3, "trail lost entries", r.json())


# -- tests ---------------------------------------------------------------------------------------


def test_defaults_and_document_date():
    orgs = V.request("GET", "/v1/orgs").json()["orgs"]
    check(len(orgs) == 1 and orgs[0]["time_zone"] == "Europe/Paris", "a new organisation's time zone", orgs)
    r = V.upload(b"facture", name="f.pdf")
    check(r.status == 201, "upload", r)
    d = r.json()
    check(d["class"] == "accounting-10y" and d["lock"] == "compliance", "default class", d)
    import datetime
    year = datetime.datetime.fromtimestamp(server_now_ms() / 1000, datetime.timezone.utc).year
    # through 31 December of the tenth year after this fiscal year: midnight in Paris is 23:00 UTC
    check(d["retain_until"].startswith("%d-12-31T23:00:00" % (year + 10)), "10 y after fiscal year end", d)
    r = V.request("POST", "/v1/documents?name=g.pdf&class=accounting-10y&document_date=2025-03-15", body=b"g")
    check(r.status == 201, "dated upload", r)
    check(r.json()["retain_until"].startswith("2035-12-31T23:00:00") and r.json()["document_date"] == "2025-03-15",
          "dated accounting record", r.json())
    r = V.request("POST", "/v1/documents?name=p.pdf&class=payroll&document_date=2024-02-29", body=b"p")
    check(r.status == 201 and r.json()["retain_until"].startswith("2029-02-28T23:00:00"), "payroll 5 y", r)
    r = V.request("POST", "/v1/documents?name=c.pdf&class=contract&document_date=2026-07-14", body=b"c")
    check(r.status == 201 and r.json()["retain_until"].startswith("2031-07-14T22:00:00"), "contract, summer", r)
    r = V.request("POST", "/v1/documents?name=t.bin&class=temporary-90d", body=b"t")
    check(r.status == 201 and r.json()["lock"] == "governance", "temporary", r)
    check(abs(ms(r.json()["retain_until"]) - ms(r.json()["created_at"]) - 90 * DAY * 1000) <= 3600 * 1000,
          "temporary-90d: 90 days after ingest", r.json())
    # the organisation's time zone is a setting (owner, admin): UTC from now on
    oid = orgs[0]["id"]
    for bad in ("Mars/Olympus", "../../etc/passwd", "Europe", ""):
        expect_problem(V.json_request("PATCH", "/v1/orgs/" + oid, {"time_zone": bad}), 400, "bad-request")
    r = V.json_request("PATCH", "/v1/orgs/" + oid, {"time_zone": "UTC"})
    check(r.status == 200 and r.json()["time_zone"] == "UTC", "time zone set", r)
    r = V.request("POST", "/v1/documents?name=u.pdf&class=accounting-10y&document_date=2025-03-15", body=b"u")
    check(r.json()["retain_until"].startswith("2036-01-01T00:00:00"), "in UTC", r.json())
    r = V.json_request("PATCH", "/v1/orgs/" + oid, {"time_zone": "Europe/Paris"})
    check(r.status == 200, "back to Paris", r)


def test_bad_input_changes_nothing():
    before_list, before_obj = V.list_all(), V.object_files()
    p = expect_problem(V.request("POST", "/v1/documents?name=x&class=invoices", body=b"x"), 400, "unknown-class")
    for c in ("accounting-10y", "payroll", "contract", "temporary-90d", "gov-1d"):
        check(c in p["valid_classes"] and c in p["detail"], "valid classes listed", p)
    for bad in ("2025-02-30", "2025-13-01", "15/03/2025", "2025-03-15T00:00:00Z", ""):
        r = V.request("POST", "/v1/documents?name=x&class=contract&document_date=" + bad, body=b"x")
        expect_problem(r, 400, "bad-request")
    expect_problem(hold("0" * 32), 404, "not-found")
    doc = V.upload_ok(b"held?", cls="comp-1d")["id"]
    before_list, before_obj = V.list_all(), V.object_files()
    for body in ({"reason": "x"}, {"case": "y"}, {"reason": "", "case": "y"}, {"reason": "a\nb", "case": "y"},
                 {"reason": "x", "case": "y", "extra": 1}):
        expect_problem(V.json_request("POST", "/v1/documents/%s/holds" % doc, body), 400, "bad-request")
    expect_problem(V.json_request("PATCH", "/v1/documents/" + doc, {"class": "nope"}), 400, "unknown-class")
    expect_problem(V.json_request("PATCH", "/v1/documents/" + doc, {"class": "Bad!"}), 400, "bad-request")
    check(V.list_all() == before_list and V.object_files() == before_obj, "bad input changed the vault")
    check(V.json_request("GET", "/v1/holds").json()["holds"] == [], "a refused hold was stored")


def test_delete_matrix():
    roles = ["owner", "admin", "accountant", "viewer", "auditor"]
    for r_ in roles:
        token_of(r_)
    cases = []  # (doc, lock, ended, held)
    # documents whose retention will have ended: uploaded, then the clock moves 1 day + 1 minute
    for lock in ("gov-1d", "comp-1d"):
        for held in (False, True):
            for role in roles:
                for reason in (None, "audit closed"):
                    cases.append([None, lock, True, held, role, reason])
    for c in cases:
        c[0] = V.upload_ok(b"ended %r" % c, cls=c[1])["id"]
    shift_ms((DAY + 60) * 1000)
    for lock in ("gov-1d", "comp-1d"):
        for held in (False, True):
            for role in roles:
                for reason in (None, "audit closed"):
                    cases.append([V.upload_ok(b"retained", cls=lock)["id"], lock, False, held, role, reason])
    for doc, lock, ended, held, role, reason in cases:
        if held:
            check(hold(doc).status == 201, "hold")
    for doc, lock, ended, held, role, reason in cases:
        r = delete(doc, role, reason)
        what = "%s ended=%s held=%s %s reason=%r" % (lock, ended, held, role, reason)
        if role not in ("owner", "admin"):
            expect_problem(r, 403, "forbidden")
        elif held:
            p = expect_problem(r, 409, "legal-hold")
            check(p["class"] == lock and "retain_until" in p, what, p)
        elif ended:
            check(r.status == 204, what, r)
        elif lock == "gov-1d" and role == "owner" and reason:
            check(r.status == 204, what, r)
        else:
            p = expect_problem(r, 409, "retention-active")
            check(p["class"] == lock and ms(p["retain_until"]) > server_now_ms() and p["lock"] in p["detail"] or True,
                  what, p)
        gone = r.status == 204
        check((get(doc).status == 410) == gone and (get(doc).status == 200) == (not gone),
              "after %s: document state %d" % (what, get(doc).status))
        if gone:
            check_erased(doc, lock, "deleted" if ended else "deleted-early")


def test_class_and_release_matrix():
    """Every lock x retained/ended x hold combination, for each role: changing the class (to a
    longer one, to a weaker lock) and releasing the hold; exact statuses."""
    roles = ["owner", "admin", "accountant", "viewer", "auditor"]
    cases = []
    for lock in ("gov-1d", "comp-1d"):
        for held in (False, True):
            for role in roles:
                cases.append([V.upload_ok(b"m", cls=lock)["id"], lock, True, held, role])
    shift_ms((DAY + 60) * 1000)
    for lock in ("gov-1d", "comp-1d"):
        for held in (False, True):
            for role in roles:
                cases.append([V.upload_ok(b"m", cls=lock)["id"], lock, False, held, role])
    for c in cases:
        c.append(hold(c[0]).json()["id"] if c[3] else None)
    for doc, lock, ended, held, role, hid in cases:
        what = "%s ended=%s held=%s %s" % (lock, ended, held, role)
        tok = token_of(role)
        manager = role in ("owner", "admin")
        # a weaker lock (compliance -> governance) or a shorter retention: never
        if lock == "comp-1d":
            r = V.json_request("PATCH", "/v1/documents/" + doc, {"class": "temporary-90d"}, token=tok)
            if manager:
                expect_problem(r, 409, "retention-shortened")
            else:
                expect_problem(r, 403, "forbidden")
        # longer and at least as strict: whoever manages, held or not, retained or not
        r = V.json_request("PATCH", "/v1/documents/" + doc, {"class": "comp-2d"}, token=tok)
        if manager:
            check(r.status == 200 and r.json()["class"] == "comp-2d", what, r)
        else:
            expect_problem(r, 403, "forbidden")
        r = V.json_request("PATCH", "/v1/documents/" + doc, {"class": "gov-1d"}, token=tok)
        expect_problem(r, 409 if manager else 403, "retention-shortened" if manager else "forbidden")
        if held:
            rel = "/v1/documents/%s/holds/%s" % (doc, hid)
            r = V.json_request("DELETE", rel, {"reason": "fin du litige"}, token=tok)
            if manager:
                check(r.status == 204, "release as %s" % what, r)
            else:
                expect_problem(r, 403, "forbidden")
        want = "comp-2d" if manager else lock
        check(get(doc).json()["class"] == want, "class after %s" % what)
    active = {h["document_id"] for h in V.json_request("GET", "/v1/holds").json()["holds"]}
    for doc, lock, ended, held, role, hid in cases:
        check((doc in active) == (held and role not in ("owner", "admin")), "hold state of %s" % doc)


def test_exactly_at_retain_until():
    for cls in ("comp-1d", "gov-1d"):
        d = V.upload_ok(b"boundary " + cls.encode(), cls=cls)
        until = ms(d["retain_until"])
        check(until == ms(d["created_at"]) + DAY * 1000, "1 day after ingest to the ms", d)
        # one second before (the real clock runs on by some milliseconds, never a second)
        shift_ms(until - server_now_ms() - 1000)
        p = expect_problem(delete(d["id"]), 409, "retention-active")
        check(p["retain_until"] == d["retain_until"], "retain_until in the problem", p)
        shift_ms(1000)
        check(server_now_ms() >= until, "the clock is past retain_until")
        r = delete(d["id"])
        check(r.status == 204, "%s: not deletable at retain_until" % cls, r)


def test_class_changes():
    d = V.upload_ok(b"change", cls="gov-1d")
    doc = d["id"]
    for role in ("accountant", "viewer", "auditor"):
        expect_problem(V.json_request("PATCH", "/v1/documents/" + doc, {"class": "comp-2d"}, token=token_of(role)),
                       403, "forbidden")
    r = V.json_request("PATCH", "/v1/documents/" + doc, {"class": "comp-2d"}, token=token_of("admin"))
    check(r.status == 200 and r.json()["class"] == "comp-2d" and r.json()["lock"] == "compliance", "longer", r)
    check(ms(r.json()["retain_until"]) == ms(d["retain_until"]) + DAY * 1000, "2 days from ingest", r.json())
    for to in ("gov-1d", "comp-1d", "temporary-90d"):  # shorter, shorter, longer but a weaker lock
        p = expect_problem(V.json_request("PATCH", "/v1/documents/" + doc, {"class": to}), 409,
                           "retention-shortened")
        check(p["class"] == "comp-2d", "the problem shows the current class", p)
    check(get(doc).json()["class"] == "comp-2d", "a refused change changed the class")
    r = V.json_request("PATCH", "/v1/documents/" + doc, {"class": "accounting-10y"})
    check(r.status == 200 and r.json()["class"] == "accounting-10y", "to 10 years", r)
    trail = V.request("GET", "/v1/documents/%s/audit" % doc).json()["entries"]
    actions = [json.loads(e["entry"])["action"] for e in trail]
    check(actions.count("document.seal") == 1 and len(actions) == 4,
          "create, its seal and two class changes in the trail", actions)


def test_config_edit_never_shortens():
    d = V.upload_ok(b"locked", cls="comp-2d")
    V.stop()
    conf = os.path.join(V.data, "coffre.conf")
    text = open(conf).read().replace("[class comp-2d]\nduration = 2d", "[class comp-2d]\nduration = 0d")
    with open(conf, "w") as f:
        f.write(text)
    V.start()
    V.clock_offset = 0.0  # a new process: the clock is the real one again
    check(get(d["id"]).json()["retain_until"] == d["retain_until"], "restart shortened a stored retention")
    expect_problem(delete(d["id"]), 409, "retention-active")
    n = V.upload_ok(b"new", cls="comp-2d")
    check(n["retain_until"] == n["created_at"], "the edited class applies to new documents", n)


def test_holds_roles_listing_and_sealing():
    doc = V.upload_ok(b"held", cls="gov-1d")["id"]
    for role in ("accountant", "viewer", "auditor"):
        expect_problem(hold(doc, role), 403, "forbidden")
    secret_reason, secret_case = "plainte de Jeanne Dupont", "dossier 2026-JD-4471"
    r = hold(doc, "admin", secret_reason, secret_case)
    check(r.status == 201 and re.match(r"^[0-9a-f]{32}$", r.json()["id"]), "hold", r)
    hid = r.json()["id"]
    check(r.json()["reason"] == secret_reason and r.json()["case"] == secret_case, "hold answer", r.json())
    for name in ("meta.db", "meta.db-wal"):
        p = os.path.join(V.data, name)
        if os.path.exists(p):
            raw = open(p, "rb").read()
            check(secret_reason.encode() not in raw and secret_case.encode() not in raw,
                  "a hold's reason or case is in clear in %s" % name)
    for role, status in (("owner", 200), ("admin", 200), ("auditor", 200), ("accountant", 403), ("viewer", 403)):
        r = V.request("GET", "/v1/holds", headers=V.auth_headers(token_of(role)), auth=False)
        check(r.status == status, "GET /v1/holds as %s: %d" % (role, r.status), r)
        if status == 200:
            check(any(h["id"] == hid and h["reason"] == secret_reason for h in r.json()["holds"]), "listed", r.json())
    rel = "/v1/documents/%s/holds/%s" % (doc, hid)
    expect_problem(V.json_request("DELETE", rel, {"reason": "x"}, token=token_of("accountant")), 403, "forbidden")
    expect_problem(V.json_request("DELETE", rel, {}), 400, "bad-request")
    expect_problem(V.json_request("DELETE", "/v1/documents/%s/holds/%s" % (doc, "0" * 32), {"reason": "x"}), 404,
                   "not-found")
    check(V.json_request("DELETE", rel, {"reason": "jugement rendu"}, token=token_of("admin")).status == 204,
          "release")
    expect_problem(V.json_request("DELETE", rel, {"reason": "again"}), 404, "not-found")
    check(all(h["id"] != hid for h in V.json_request("GET", "/v1/holds").json()["holds"]), "released but listed")


def test_holds_by_filter():
    docs = [V.upload_ok(b"batch %d" % i, name="lot-%d.pdf" % i, cls="temporary-90d")["id"] for i in range(3)]
    r = V.json_request("POST", "/v1/holds", {"reason": "contrôle fiscal", "case": "CF-2026",
                                             "filter": {"class": "temporary-90d"}})
    check(r.status == 201, "holds by filter", r)
    held = {h["document_id"] for h in r.json()["holds"]}
    check(set(docs) <= held and r.json()["count"] == len(held), "every matching document held", r.json())
    r = V.json_request("POST", "/v1/holds", {"reason": "x", "case": "y", "filter": {"name": "lot-1.pdf"}})
    check(r.status == 201 and [h["document_id"] for h in r.json()["holds"]] == [docs[1]], "by name", r.json())
    expect_problem(V.json_request("POST", "/v1/holds", {"reason": "x", "case": "y", "filter": {}}), 400,
                   "bad-request")
    expect_problem(V.json_request("POST", "/v1/holds", {"reason": "x", "case": "y", "filter": {"colour": "red"}}),
                   400, "bad-request")
    p = expect_problem(delete(docs[0], reason="no"), 409, "legal-hold")
    check(p["class"] == "temporary-90d", "class in the problem", p)


def test_sweeper_and_audit_verify():
    erase = [V.upload_ok(b"sweep %d" % i, cls="gov-1d")["id"] for i in range(3)]
    review = V.upload_ok(b"review", cls="comp-2d")["id"]
    keep = V.upload_ok(b"held", cls="gov-1d")["id"]
    check(hold(keep).status == 201, "hold")
    fresh = V.upload_ok(b"fresh", cls="accounting-10y")["id"]
    shift = int((V.clock_offset + 2 * DAY + 60) * 1000)
    V.stop()
    env = dict(os.environ, COFFRE_TEST_CLOCK_SHIFT_MS=str(shift))
    files = V.object_files()

    def run(*extra):
        r = V.cli("lifecycle", "run", "--data", V.data, *extra, env=env)
        check(r.returncode == 0, "lifecycle run %r: exit %d" % (extra, r.returncode), r.stderr.decode())
        return r.stdout.decode()

    out = run("--dry-run")
    check(V.object_files() == files, "--dry-run changed the objects")
    for d in erase:
        check(re.search(r"^would-erase %s " % d, out, re.M), "dry run does not list %s" % d, out)
    check(re.search(r"^review %s .* comp-2d " % review, out, re.M), "review not listed", out)
    check(keep not in out and fresh not in out, "a held or retained document listed", out)
    check(run("--dry-run") == out, "two dry runs differ")
    out = run()
    for d in erase:
        check(re.search(r"^erase %s " % d, out, re.M), "not erased: %s" % d, out)
    again = run()
    check(not re.search(r"^erase ", again, re.M), "a second run erased more", again)
    check(re.search(r"^review %s " % review, again, re.M), "the review document vanished", again)
    r = V.cli("audit", "verify", "--data", V.data)
    check(r.returncode == 0, "audit verify after erasure: exit %d" % r.returncode, r.stdout, r.stderr)
    V.start()
    V.clock_offset = 0.0
    for d in erase:
        check_erased(d, "gov-1d", "retention-ended")
    for d in (review, keep, fresh):
        check(get(d).status == 200, "%s should remain" % d)
    r = V.request("GET", "/v1/audit/entries?start=0&end=%d" % V.log_size())
    actions = [json.loads(e["entry"])["action"] for e in r.json()["entries"] if e.get("entry")]
    check(actions.count("document.erase") >= len(erase), "document.erase entries", actions[-10:])
    r = V.cli("lifecycle", "bogus")
    check(r.returncode == 2, "unknown subcommand: exit %d" % r.returncode)


def test_server_sweeper():
    """coffre serve sweeps every [lifecycle] interval: a document whose retention ended (on the
    moved clock) is erased without any request, a held one stays."""
    with Vault(BINARY, scratch_classes=False) as w:
        with open(os.path.join(w.data, "coffre.conf"), "a") as f:
            f.write(CLASSES + "\n[lifecycle]\ninterval = 1\n")
        w.start()
        gone = w.upload_ok(b"swept", cls="gov-1d")["id"]
        kept = w.upload_ok(b"held", cls="gov-1d")["id"]
        r = w.json_request("POST", "/v1/documents/%s/holds" % kept, {"reason": "r", "case": "c"})
        check(r.status == 201, "hold", r)
        check(w.request("GET", "/v1/documents/" + gone).status == 200, "erased before its end")
        w.shift_clock(DAY + 60)
        deadline = time.monotonic() + 30
        while w.request("GET", "/v1/documents/" + gone).status != 410 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the sweeper's result, bounded by the deadline
        expect_problem(w.request("GET", "/v1/documents/" + gone), 410, "erased")
        check(w.request("GET", "/v1/documents/" + kept).status == 200, "the sweeper erased a held document")
        check(b"lifecycle sweep" in w.log_text(), "no sweep in the log")


if __name__ == "__main__":
    sys.exit(run_tests([test_defaults_and_document_date, test_bad_input_changes_nothing, test_delete_matrix,
               test_class_and_release_matrix, test_exactly_at_retain_until, test_class_changes, test_config_edit_never_shortens,
               test_holds_roles_listing_and_sealing, test_holds_by_filter, test_sweeper_and_audit_verify,
               test_server_sweeper]))
