"""test_web.py: the web interface as served by `coffre serve`, and its browser sessions.

Over plain HTTPS (Python): the pages and their files come from the binary with the strict
security headers, an ETag and 304 on revalidation, and integrity= values that match what is
served; a browser login sets the __Host- session cookie and answers a CSRF token instead of the
bearer; with the cookie, a call that changes something without the right X-CSRF-Token is refused
403 csrf and changes nothing; logout clears the cookie and ends the session; bearer tokens keep
working.

In a real Chromium (tests/web/ui.test.mjs, playwright-core driving Debian's chromium): first
login and TOTP enrolment of an admin, recovery codes downloaded, login with a code the test
computes, upload of three files and of a dropped one, download compared byte for byte, filters,
login with a recovery code (once), axe-core on each page, a viewer without an upload button who
gets a readable refusal when forcing one, password change and "log out everywhere" ending the
other browser's session, an ended session back at the login page, logout. Any CSP
violation, console error or request to another origin fails it.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TestFailure, Vault, check, exit_status, expect_problem, run_tests  # noqa: E402

BINARY = sys.argv[1]
WEB_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "web")
V = None

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
COOKIE = "__Host-coffre_session"


def get(path, headers=None):
    return V.request("GET", path, headers=headers, auth=False)


def check_ui_headers(r, what):
    check(r.header("Content-Security-Policy") == CSP, "%s: CSP" % what, r.header("Content-Security-Policy"))
    check(r.header("Referrer-Policy") == "no-referrer", "%s: Referrer-Policy" % what, r)
    check(r.header("Cross-Origin-Opener-Policy") == "same-origin", "%s: COOP" % what, r)
    check(r.header("X-Content-Type-Options") == "nosniff", "%s: nosniff" % what, r)
    pp = r.header("Permissions-Policy", "")
    check("camera=()" in pp and "geolocation=()" in pp, "%s: Permissions-Policy" % what, pp)


def test_pages_and_headers():
    r = get("/")
    check(r.status == 200, "GET / status %d" % r.status, r)
    check(r.header("Content-Type", "").startswith("text/html"), "GET / is not HTML", r)
    check_ui_headers(r, "GET /")
    html = r.body.decode()
    check("unsafe-inline" not in (r.header("Content-Security-Policy") or ""), "unsafe-inline in the CSP")
    tags = re.findall(r'<(?:script|link)\b[^>]*>', html)
    refs = [t for t in tags if 'src=' in t or 'rel="stylesheet"' in t]
    check(len(refs) >= 2, "the page loads no script or style", html[:400])
    for t in refs:
        url = re.search(r'(?:src|href)="([^"]+)"', t).group(1)
        m = re.search(r'integrity="sha384-([^"]+)"', t)
        check(m is not None, "no integrity= on %s" % t)
        f = get(url)
        check(f.status == 200, "%s: status %d" % (url, f.status), f)
        check_ui_headers(f, url)
        want = base64.b64encode(hashlib.sha384(f.body).digest()).decode()
        check(m.group(1) == want, "integrity of %s does not match what is served" % url, m.group(1), want)
    check(not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script in the page")
    check("<style" not in html and not re.search(r"\sstyle=", html), "an inline style in the page")
    check(not re.search(r"\son[a-z]+=", html), "an inline event handler in the page")
    js = get("/ui/app.js")
    check(js.header("Content-Type", "").startswith("text/javascript"), "app.js type", js)
    css = get("/ui/style.css")
    check(css.header("Content-Type", "").startswith("text/css"), "style.css type", css)


def test_etag_revalidation():
    r = get("/ui/app.js")
    etag = r.header("ETag")
    check(etag and re.fullmatch(r'"[0-9a-f]{32}"', etag), "no strong ETag", r)
    check(r.header("Cache-Control") == "no-cache", "Cache-Control of a UI file", r.header("Cache-Control"))
    check(etag[1:-1] == hashlib.sha256(r.body).hexdigest()[:32], "the ETag is not the content's hash")
    r2 = get("/ui/app.js", headers={"If-None-Match": etag})
    check(r2.status == 304 and r2.body == b"", "If-None-Match with the ETag: status %d" % r2.status, r2)
    r3 = get("/ui/app.js", headers={"If-None-Match": '"0000"'})
    check(r3.status == 200 and r3.body == r.body, "another ETag: status %d" % r3.status, r3)
    # the API's answers stay uncacheable
    check(get("/healthz").header("Cache-Control") == "no-store", "the API lost Cache-Control: no-store")


def test_unknown_files():
    for path in ("/ui/nope.js", "/ui/..%2fcoffre.conf", "/ui/", "/ui/index.html/x"):
        r = get(path)
        check(r.status == 404, "%s: status %d" % (path, r.status), r)
    expect_problem(get("/ui/secret.txt"), 404, "not-found")


def cookie_login(user):
    r = V.json_request("POST", "/v1/auth/login", {"email": user["email"], "password": user["password"],
                                                  "cookie": True}, auth=False)
    check(r.status == 200, "cookie login: status %d" % r.status, r)
    sc = r.header_all("Set-Cookie")
    check(len(sc) == 1, "one Set-Cookie expected", sc)
    parts = [p.strip() for p in sc[0].split(";")]
    name, _, value = parts[0].partition("=")
    check(name == COOKIE and len(value) > 20, "cookie name/value", parts[0][:30])
    attrs = {p.split("=")[0].lower(): p for p in parts[1:]}
    for a in ("secure", "httponly"):
        check(a in attrs, "cookie without %s" % a, sc[0].split(";", 1)[1])
    check(attrs.get("samesite", "").lower() == "samesite=strict", "cookie not SameSite=Strict", sc)
    check(attrs.get("path") == "Path=/", "cookie Path", sc)
    check("domain" not in attrs, "a __Host- cookie has no Domain", sc)
    body = r.json()
    check(set(body) == {"csrf_token", "expires_at"}, "the cookie login answer", sorted(body))
    check(re.fullmatch(r"[0-9a-f]{64}", body["csrf_token"]), "csrf token form", body["csrf_token"])
    check(value not in r.body.decode(), "the session bearer is in the body of a cookie login")
    # the documented construction (docs/security.md): keyed BLAKE2b-256 of the bearer
    want = hashlib.blake2b(value.encode(), key=b"coffre csrf token v1", digest_size=32).hexdigest()
    check(body["csrf_token"] == want, "the CSRF token is not the documented hash of the session")
    return value, body["csrf_token"]


def with_cookie(method, path, cookie, csrf=None, obj=None):
    h = {"Cookie": "%s=%s" % (COOKIE, cookie)}
    if csrf is not None:
        h["X-CSRF-Token"] = csrf
    body = None
    if obj is not None:
        body = json.dumps(obj)
        h["Content-Type"] = "application/json"
    return V.request(method, path, body=body, headers=h, auth=False)


def token_names(cookie):
    r = with_cookie("GET", "/v1/tokens", cookie)
    check(r.status == 200, "token list with the cookie: status %d" % r.status, r)
    return sorted(t["name"] for t in r.json()["tokens"])


def test_cookie_session_and_csrf():
    u = V.create_user("accountant")
    cookie, csrf = cookie_login(u)
    r = with_cookie("GET", "/v1/users/me", cookie)
    check(r.status == 200 and r.json()["email"] == u["email"], "GET with the cookie", r)
    before = token_names(cookie)
    new = {"name": "from-cookie", "scopes": ["documents:read"]}
    expect_problem(with_cookie("POST", "/v1/tokens", cookie, obj=new), 403, "csrf")
    expect_problem(with_cookie("POST", "/v1/tokens", cookie, csrf="0" * 64, obj=new), 403, "csrf")
    expect_problem(with_cookie("POST", "/v1/tokens", cookie, csrf=csrf[:-1], obj=new), 403, "csrf")
    r = V.request("POST", "/v1/documents?name=x.txt", body=b"abc",
                  headers={"Cookie": "%s=%s" % (COOKIE, cookie), "Content-Type": "application/octet-stream"},
                  auth=False)
    expect_problem(r, 403, "csrf")
    check(token_names(cookie) == before, "a refused call changed something", before, token_names(cookie))
    # another session's CSRF token is no good either
    other_cookie, other_csrf = cookie_login(u)
    expect_problem(with_cookie("POST", "/v1/tokens", cookie, csrf=other_csrf, obj=new), 403, "csrf")
    r = with_cookie("POST", "/v1/tokens", cookie, csrf=csrf, obj=new)
    check(r.status == 201, "POST with the cookie and its CSRF token: status %d" % r.status, r)
    check(token_names(cookie) == sorted(before + ["from-cookie"]), "the token was not made")
    # a bearer header wins over a cookie and needs no CSRF token
    r = V.request("POST", "/v1/documents?name=b.txt", body=b"bearer",
                  headers={"Cookie": "%s=%s" % (COOKIE, cookie), "Content-Type": "application/octet-stream",
                           "Authorization": "Bearer " + V.token}, auth=False)
    check(r.status == 201, "bearer upload with a cookie beside: status %d" % r.status, r)
    # logout: needs the CSRF token too, clears the cookie, ends the session
    expect_problem(with_cookie("POST", "/v1/auth/logout", cookie), 403, "csrf")
    r = with_cookie("POST", "/v1/auth/logout", cookie, csrf=csrf)
    check(r.status == 204, "logout: status %d" % r.status, r)
    sc = " ".join(r.header_all("Set-Cookie"))
    check(sc.startswith(COOKIE + "=;") and "Max-Age=0" in sc, "logout does not clear the cookie", sc)
    expect_problem(with_cookie("GET", "/v1/users/me", cookie), 401, "unauthorized")
    r = with_cookie("GET", "/v1/users/me", other_cookie)
    check(r.status == 200, "the other browser session ended too", r)


def test_login_csrf():
    """Another site's page cannot log the browser in: no JSON type, or Sec-Fetch-Site cross-site."""
    u = V.create_user("viewer")
    body = json.dumps({"email": u["email"], "password": u["password"], "cookie": True})
    for h, status, slug in (({"Content-Type": "text/plain"}, 400, "bad-request"),
                            ({}, 400, "bad-request"),
                            ({"Content-Type": "application/x-www-form-urlencoded"}, 400, "bad-request"),
                            ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "csrf")):
        r = V.request("POST", "/v1/auth/login", body=body, headers=h, auth=False)
        expect_problem(r, status, slug)
        check(not r.header_all("Set-Cookie"), "a refused browser login set a cookie", h)
    r = V.request("POST", "/v1/auth/login", body=body, auth=False,
                  headers={"Content-Type": "application/json; charset=utf-8", "Sec-Fetch-Site": "same-origin"})
    check(r.status == 200 and r.header_all("Set-Cookie"), "a same-origin browser login: %d" % r.status, r)


def test_cookie_enrolment():
    u = V.create_user("admin")
    r = V.json_request("POST", "/v1/auth/login", {"email": u["email"], "password": u["password"], "cookie": True},
                       auth=False)
    doc = expect_problem(r, 403, "totp-enrolment-required")
    check("token" not in doc and re.fullmatch(r"[0-9a-f]{64}", doc.get("csrf_token", "")),
          "enrolment answer of a cookie login", sorted(doc))
    cookie = r.header("Set-Cookie").split(";")[0].partition("=")[2]
    expect_problem(with_cookie("POST", "/v1/users/me/totp", cookie), 403, "csrf")
    r = with_cookie("POST", "/v1/users/me/totp", cookie, csrf=doc["csrf_token"])
    check(r.status == 200 and r.json()["qr_png_base64"], "enrolment with the cookie: status %d" % r.status, r)
    # the enrol-only session still can do nothing else
    expect_problem(with_cookie("GET", "/v1/documents", cookie), 403, "forbidden")


def test_browser():
    node = shutil.which("node")
    # Debian's launcher script checks the memory and adds flags; the browser itself is beside it
    chromium = "/usr/lib/chromium/chromium" if os.access("/usr/lib/chromium/chromium", os.X_OK) \
        else shutil.which("chromium")
    mods = os.path.join(WEB_TESTS, "node_modules")
    check(node and chromium and os.path.isdir(os.path.join(mods, "playwright-core"))
          and os.path.isdir(os.path.join(mods, "axe-core")),
          "the browser tests need node, Debian's chromium and tests/web/node_modules: run "
          "scripts/install-deps and scripts/install-test-tools")
    for i in range(22):  # more than a page of the list (20)
        V.upload_ok(b"bulk %d\n" % i, name="bulk-%02d.txt" % i)
    admin = V.create_user("admin")
    viewer = V.create_user("viewer")
    # Chromium is told to trust the vault's own certificate (by its public key's SHA-256), so that
    # every request, downloads included, passes the certificate check as with a trusted cert
    pub = subprocess.run(["openssl", "x509", "-in", V.cacert, "-noout", "-pubkey"], capture_output=True, check=True)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.stdout, capture_output=True,
                         check=True)
    spki = base64.b64encode(hashlib.sha256(der.stdout).digest()).decode()
    cfg = {"url": V.url, "chromium": chromium, "spki": spki, "admin": {"email": admin["email"], "password": admin["password"]},
           "viewer": {"email": viewer["email"], "password": viewer["password"]},
           "workdir": os.path.join(V.base, "browser")}
    env = dict(os.environ)
    env["COFFRE_UI_TEST"] = json.dumps(cfg)
    p = subprocess.run([node, os.path.join(WEB_TESTS, "ui.test.mjs")], env=env, capture_output=True, timeout=240)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    print(out)
    check(p.returncode == 0, "the browser test failed (exit %d)" % p.returncode, V.log_tail(30))
    # what the browser uploaded is in the vault, byte for byte, with the hash it computed
    docs = V.list_all()
    names = {d["name"]: d for d in docs}
    for n in ("invoice-1.pdf", "facture été.txt", "empty.bin"):
        check(n in names, "%s is not in the vault" % n, sorted(names))


def main():
    global V
    with Vault(BINARY) as v:
        V = v
        V.start()
        return run_tests([test_pages_and_headers, test_etag_revalidation, test_unknown_files,
                          test_cookie_session_and_csrf, test_login_csrf, test_cookie_enrolment, test_browser])


if __name__ == "__main__":
    try:
        rc = main()
    except TestFailure as e:
        print("FAIL setup: %s" % e)
        rc = 1
    sys.exit(exit_status(rc))
