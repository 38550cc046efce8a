#!/usr/bin/env python3
"""test_cli_accounts.py: the account commands of the CLI against a real server.

coffre login with e-mail, password and TOTP code on standard input; the session file (0600, in
a 0700 directory, bound to its server's URL); coffre 2fa enroll (QR code, secret, first code,
recovery codes); coffre user add|ls|role|rm, token create|ls|revoke, org add|ls|suspend;
coffre witness with a token of the witness scope alone; coffre user add --data --operator
offline; coffre logout; exit codes and messages for refusals and bad usage.
usage: test_cli_accounts.py COFFRE_BINARY
"""
import json
import os
import re
import select
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import termios
import time

from harness import Vault, check, exit_status, run_tests, totp_code

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None
HOME = None


def set_witness(data_dir, vkey):
    """Adds `witness = vkey` under [audit] in DATA/coffre.conf."""
    path = os.path.join(data_dir, "coffre.conf")
    with open(path) as f:
        lines = f.read().split("\n")
    lines.insert(lines.index("[audit]") + 1, "witness = " + vkey)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def env(**extra):
    """A user's environment: its own config directory, the server's URL and CA, no token."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("COFFRE_")}
    e.update({"HOME": HOME, "XDG_CONFIG_HOME": os.path.join(HOME, "config"), "COFFRE_URL": V.url,
              "COFFRE_CACERT": V.cacert})
    e.update({k: v for k, v in extra.items() if v is not None})
    for k, v in extra.items():
        if v is None:
            e.pop(k, None)
    return e


def cli(*args, stdin="", **extra):
    r = subprocess.run([BINARY, *args], input=stdin.encode(), capture_output=True, timeout=120, env=env(**extra))
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def session_path():
    return os.path.join(HOME, "config", "coffre", "session")


def session_token():
    with open(session_path()) as f:
        for line in f:
            if line.startswith("token="):
                return line[6:].strip()
    return None


def api_user(role):
    return V.create_user(role)


def login_cli(user, code=None):
    stdin = "%s\n%s\n" % (user["email"], user["password"]) + ("%s\n" % code if code else "")
    return cli("login", stdin=stdin)


def enrol_cli(json_mode):
    """coffre 2fa enroll, answering with the code of the secret it shows; (rc, out lines, err, secret)."""
    args = [BINARY, "2fa", "enroll"] + (["--json"] if json_mode else [])
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env())
    secret = None
    shown = []
    while secret is None:
        line = p.stdout.readline().decode()
        if not line:
            break
        shown.append(line)
        if json_mode:
            secret = json.loads(line)["secret"]
        else:
            m = re.match(r"^or enter this secret in it: ([A-Z2-7]+)$", line.strip())
            if m:
                secret = m.group(1)
    check(secret, "2fa enroll showed no secret", "".join(shown))
    out, err = p.communicate(input=(totp_code(secret) + "\n").encode(), timeout=120)
    return p.returncode, shown + out.decode().splitlines(True), err.decode(), secret


# ---- tests ----------------------------------------------------------------------------------


def test_login_with_password_session_file():
    u = api_user("accountant")
    rc, out, err = login_cli(u)
    check(rc == 0, "login exited %d" % rc, out, err)
    check("logged in" in err, "login says nothing", err)
    st = os.stat(session_path())
    check(stat.S_IMODE(st.st_mode) == 0o600, "session file mode %o" % stat.S_IMODE(st.st_mode))
    check(stat.S_IMODE(os.stat(os.path.dirname(session_path())).st_mode) == 0o700, "session directory is not 0700")
    tok = session_token()
    check(tok and tok.startswith("cfr_"), "no token in the session file")
    with open(session_path()) as f:
        text = f.read()
    check("url=%s\n" % V.url in text, "the session file does not name its server", text)
    check(tok not in out + err, "login printed the token")
    # the session is the credential of the other commands
    doc = os.path.join(HOME, "invoice.txt")
    with open(doc, "w") as f:
        f.write("an invoice\n")
    rc, out, err = cli("put", doc, "--name", "from-cli.txt")
    check(rc == 0, "put with the session exited %d" % rc, out, err)
    rc, out, err = cli("ls")
    check(rc == 0 and "from-cli.txt" in out, "ls with the session", rc, out, err)
    # an accountant is refused users: a clear message, exit 1
    rc, out, err = cli("user", "ls")
    check(rc == 1 and "Forbidden" in err and "HTTP 403" in err, "user ls as an accountant", rc, out, err)
    rc, out, err = cli("login", "--json", stdin="%s\n%s\n" % (u["email"], u["password"]))
    check(rc == 0, "login --json exited %d" % rc, err)
    doc = json.loads(out)
    check(doc["url"] == V.url and doc.get("expires_at") and "token" not in doc, "login --json printed %r" % doc)


def read_until(fd, text, deadline):
    """Reads the pty master fd until text appears (or the deadline passes); returns what it read."""
    got = b""
    while text.encode() not in got and time.monotonic() < deadline:
        ready, _w, _x = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
    return got.decode(errors="replace")


def test_login_on_a_terminal_does_not_echo():
    u = api_user("viewer")
    master, slave = os.openpty()
    try:
        p = subprocess.Popen([BINARY, "login"], stdin=slave, stdout=slave, stderr=slave, env=env(),
                             start_new_session=True)
        deadline = time.monotonic() + 60
        seen = read_until(master, "E-mail: ", deadline)
        check("E-mail: " in seen, "no e-mail prompt on the terminal", seen)
        os.write(master, (u["email"] + "\n").encode())
        seen += read_until(master, "Password: ", deadline)
        check("Password: " in seen, "no password prompt on the terminal", seen)
        os.write(master, (u["password"] + "\n").encode())
        seen += read_until(master, "logged in", deadline)
        rc = p.wait(timeout=60)
        check(rc == 0, "login on a terminal exited %d" % rc, seen)
        check(u["email"] in seen, "the e-mail was not echoed (it should be)", seen)
        check(u["password"] not in seen, "the password was echoed on the terminal", seen)
        check(termios.tcgetattr(slave)[3] & termios.ECHO, "echo was left off")
    finally:
        os.close(master)
        os.close(slave)


def test_session_file_guarded():
    u = api_user("viewer")
    check(login_cli(u)[0] == 0, "login of a viewer")
    os.chmod(session_path(), 0o644)
    rc, out, err = cli("ls")
    check(rc == 1 and "0600" in err, "a 0644 session file was used", rc, err)
    os.chmod(session_path(), 0o600)
    check(cli("ls")[0] == 0, "the session file back at 0600 is refused")
    # a session is never sent to another server than its own
    rc, out, err = cli("ls", COFFRE_URL="https://127.0.0.1:1")
    check(rc == 1 and "the saved session is for" in err, "session sent to another URL?", rc, err)
    # COFFRE_TOKEN still comes first for the document commands
    rc, out, err = cli("user", "ls", COFFRE_TOKEN=V.token)
    check(rc == 0 and u["email"] in out, "COFFRE_TOKEN did not take precedence", rc, out, err)


def test_wrong_password_and_usage():
    u = api_user("viewer")
    rc, out, err = login_cli(dict(u, password="not-the-password-1234"))
    check(rc == 1 and "login refused" in err, "wrong password: exit %d" % rc, err)
    check("not-the-password" not in out + err, "the password was echoed")
    for args in (["login", "extra"], ["user"], ["user", "frob"], ["user", "add", "--email", "x@example.com"],
                 ["token", "create", "--name", "n"], ["user", "add", "--operator", "--email", "x@example.com"],
                 ["org", "suspend"], ["2fa"], ["user", "rm", "bad/id"], ["token", "create", "--name", "n",
                                                                          "--scope", "witness",
                                                                          "--expires-in", "soon"]):
        rc, out, err = cli(*args)
        check(rc == 2 and "see coffre" in err, "%r: exit %d" % (args, rc), err)
    rc, out, err = cli("login", stdin="")
    check(rc == 1 and "no input" in err, "login with no input: exit %d" % rc, err)
    # a password on the command line is refused, also as an abbreviation of --password-file
    for args in (["user", "add", "--email", "x@example.com", "--role", "viewer", "--password", "hunter2-secret"],
                 ["user", "add", "--email", "x@example.com", "--role", "viewer", "--passw=hunter2-secret"],
                 ["login", "--password=hunter2-secret"]):
        rc, out, err = cli(*args)
        check(rc == 2 and "never taken from the command line" in err and "hunter2" not in err,
              "%r: exit %d" % (args[-1], rc), err)


def test_two_factor_enrol_login_with_code():
    admin = api_user("admin")
    # an admin must enrol first: the session saved can only do that
    rc, out, err = login_cli(admin)
    check(rc == 1 and "coffre 2fa enroll" in err, "admin login before enrolment: exit %d" % rc, err)
    rc, _o, err = cli("ls")
    check(rc == 1 and "HTTP 403" in err, "the enrol-only session listed documents", err)
    rc, lines, err, secret = enrol_cli(json_mode=False)
    check(rc == 0, "2fa enroll exited %d" % rc, "".join(lines), err)
    text = "".join(lines)
    check("\u2580" in text or "\u2584" in text or "\u2588" in text, "no QR code drawn", text[:400])
    codes = re.findall(r"^  ([A-Za-z0-9-]{8,})$", text, re.M)
    check(len(codes) == 10 and len(set(codes)) == 10, "recovery codes shown: %r" % codes)
    check(not os.path.exists(session_path()), "the ended session is still saved")
    # password and code through standard input (the next step: this one's code was the enrolment's)
    rc, out, err = login_cli(admin, code=totp_code(secret, V.now() + 30))
    check(rc == 0, "login with a code exited %d" % rc, out, err)
    admin["secret"], admin["codes"] = secret, codes

    # users: add, ls, role, rm
    pw = os.path.join(HOME, "pw")
    with open(pw, "w") as f:
        f.write("new-user-password-%s\n" % secrets.token_hex(4))
    email = "cli-%s@example.com" % secrets.token_hex(3)
    rc, out, err = cli("user", "add", "--email", email, "--role", "viewer", "--password-file", pw)
    check(rc == 0 and re.match(r"^[0-9a-f]{32}\n$", out), "user add", rc, out, err)
    uid = out.strip()
    rc, out, err = cli("user", "ls")
    check(rc == 0 and re.search(r"^%s +viewer +active +no +%s$" % (uid, re.escape(email)), out, re.M), "user ls",
          out, err)
    check(cli("user", "role", uid, "auditor")[0] == 0, "user role")
    rc, out, err = cli("user", "ls", "--json")
    users = {u["id"]: u for u in map(json.loads, out.splitlines())}
    check(rc == 0 and users[uid]["role"] == "auditor", "user ls --json after role", out)
    rc, out, err = cli("user", "add", "--email", email, "--role", "viewer", "--password-file", pw)
    check(rc == 1 and "HTTP 409" in err, "a taken e-mail: exit %d" % rc, err)
    rc, out, err = cli("user", "add", "--email", "y@example.com", "--role", "owner", "--password-file", pw)
    check(rc == 1 and "HTTP 403" in err, "an admin made an owner: exit %d" % rc, err)
    check(cli("user", "rm", uid)[0] == 0, "user rm")
    check(uid not in cli("user", "ls")[1], "the removed user is listed")
    rc, out, err = cli("user", "rm", uid)
    check(rc == 1 and "HTTP 404" in err, "removing a removed user: exit %d" % rc, err)

    # tokens: create (printed once), ls, revoke
    rc, out, err = cli("token", "create", "--name", "ci", "--scope", "documents:read,documents:write",
                       "--expires-in", "1d")
    check(rc == 0 and out.startswith("cfr_") and out.count("\n") == 1, "token create", out, err)
    tok = out.strip()
    tid = re.search(r"token (\S+) created", err).group(1)
    rc, out, err = cli("token", "ls")
    check(rc == 0 and re.search(r"^%s +ci +documents:read,documents:write +20\d\d-" % tid, out, re.M),
          "token ls", out)
    check(tok not in out, "token ls shows the token")
    check(cli("ls", COFFRE_TOKEN=tok)[0] == 0, "the new token cannot list documents")
    check(cli("token", "revoke", tid)[0] == 0, "token revoke")
    rc, out, err = cli("ls", COFFRE_TOKEN=tok)
    check(rc == 1 and "HTTP 401" in err, "a revoked token still works", rc, err)
    # owners and admins see their organisation; creating one is the operator's
    rc, out, err = cli("org", "ls")
    check(rc == 0 and len(out.strip().splitlines()) == 2, "org ls as an admin", out, err)
    rc, out, err = cli("org", "add", "Nope SAS")
    check(rc == 1 and "HTTP 403" in err, "an admin made an organisation", rc, err)

    # coffre witness with a token of the witness scope alone
    rc, out, err = cli("token", "create", "--name", "witness", "--scope", "witness")
    check(rc == 0, "witness token", err)
    wtok = out.strip()
    state = os.path.join(HOME, "witness.state")
    shutil.copy(os.path.join(HOME, "state-template"), state)
    os.chmod(state, 0o600)
    rc, out, err = cli("witness", "--state", state, "--once", "--log-key", os.path.join(HOME, "log.vkey"),
                       COFFRE_TOKEN=wtok)
    check(rc == 0 and out.startswith("cosigned checkpoint size "), "witness with a witness token: %d" % rc, out, err)
    rc, out, err = cli("ls", COFFRE_TOKEN=wtok)
    check(rc == 1 and "HTTP 403" in err, "a witness token listed documents", rc, err)

    # logout ends the session on the server and here
    tok = session_token()
    rc, out, err = cli("logout")
    check(rc == 0 and not os.path.exists(session_path()), "logout", rc, err)
    r = V.json_request("GET", "/v1/users/me", token=tok)
    check(r.status == 401, "the session still works after logout: %d" % r.status, r)
    rc, out, err = cli("logout")
    check(rc == 1 and "not logged in" in err, "logout without a session: exit %d" % rc, err)


def test_recovery_code_and_2fa_disable():
    u = api_user("viewer")
    check(login_cli(u)[0] == 0, "viewer login")
    rc, lines, err, secret = enrol_cli(json_mode=False)
    check(rc == 0, "2fa enroll as a viewer: %d" % rc, err)
    codes = re.findall(r"^  ([A-Za-z0-9-]{8,})$", "".join(lines), re.M)
    # now the code is needed: a password alone gets asked for it, and no input means no login
    rc, out, err = login_cli(u)
    check(rc == 1 and not os.path.exists(session_path()), "login without the code: exit %d" % rc, err)
    # the code prompt takes a recovery code too, once
    rc, out, err = login_cli(u, code=codes[0])
    check(rc == 0, "login with a recovery code: %d" % rc, err)
    rc, out, err = login_cli(u, code=codes[0])
    check(rc == 1 and "login refused" in err, "a recovery code worked twice: exit %d" % rc, err)
    check(login_cli(u, code=codes[1])[0] == 0, "login with the second recovery code")
    # disable with a current code (the next step: the confirmation used this one)
    r = subprocess.run([BINARY, "2fa", "disable"], input=(totp_code(secret, V.now() + 30) + "\n").encode(),
                       capture_output=True, timeout=120, env=env())
    check(r.returncode == 0, "2fa disable: %d" % r.returncode, r.stderr)
    check(not os.path.exists(session_path()), "the ended session is still saved after 2fa disable")
    rc, out, err = login_cli(u)
    check(rc == 0, "password-only login after 2fa disable: %d" % rc, err)


def test_first_owner_with_the_bootstrap_token():
    """As README says: coffre user add with the bootstrap token makes the operator, then the
    first owner, and then the token is done."""
    with Vault(BINARY, owner=False) as w:
        w.start()
        pw = os.path.join(HOME, "bootpw")
        with open(pw, "w") as f:
            f.write("first-owner-password-%s\n" % secrets.token_hex(4))
        e = dict(COFFRE_URL=w.url, COFFRE_CACERT=w.cacert, COFFRE_TOKEN=w.bootstrap_token)
        rc, out, err = cli("user", "ls", **e)
        check(rc == 1 and "HTTP 403" in err, "the bootstrap token listed users: exit %d" % rc, err)
        rc, out, err = cli("user", "add", "--email", "boot-op@example.com", "--role", "operator", "--password-file", pw,
                           "--json", **e)
        check(rc == 0 and json.loads(out)["role"] == "operator", "operator with the bootstrap token", rc, out, err)
        rc, out, err = cli("user", "add", "--email", "boot-owner@example.com", "--role", "owner", "--password-file",
                           pw, **e)
        check(rc == 0 and re.match(r"^[0-9a-f]{32}\n$", out), "first owner with the bootstrap token", rc, out, err)
        rc, out, err = cli("user", "add", "--email", "boot-2@example.com", "--role", "owner", "--password-file", pw,
                           **e)
        check(rc == 1 and "HTTP 401" in err, "the bootstrap token still works after the owner: %d" % rc, err)


def test_operator_offline_and_orgs():
    pw = os.path.join(HOME, "oppw")
    password = "operator-password-%s" % secrets.token_hex(4)
    with open(pw, "w") as f:
        f.write(password + "\n")
    email = "ops-%s@example.com" % secrets.token_hex(3)
    # not while the server runs: the audit log has one writer
    rc, out, err = cli("user", "add", "--data", V.data, "--operator", "--email", email, "--password-file", pw)
    check(rc == 1 and "stop it first" in err, "offline add with the server running: exit %d" % rc, err)
    check(V.stop() == 0, "the server did not stop cleanly")
    rc, out, err = cli("user", "add", "--data", V.data, "--operator", "--email", email, "--password-file", pw)
    check(rc == 0 and re.match(r"^[0-9a-f]{32}\n$", out), "offline operator", rc, out, err)
    rc, out, err = cli("user", "add", "--data", V.data, "--operator", "--email", email, "--password-file", pw)
    check(rc == 1 and "exists already" in err, "the same operator twice: exit %d" % rc, err)
    V.start()
    op = {"email": email, "password": password}
    rc, out, err = login_cli(op)
    check(rc == 1 and "coffre 2fa enroll" in err, "operator's first login: exit %d" % rc, err)
    rc, lines, err, secret = enrol_cli(json_mode=True)
    check(rc == 0 and len(lines) == 2, "2fa enroll --json", lines, err)
    check(json.loads(lines[0])["otpauth_uri"].startswith("otpauth://totp/"), "no otpauth URI", lines[0])
    check(len(json.loads(lines[1])["recovery_codes"]) == 10, "recovery codes", lines[1])
    rc, out, err = login_cli(op, code=totp_code(secret, V.now() + 30))
    check(rc == 0, "operator login with a code: %d" % rc, err)
    rc, out, err = cli("org", "add", "Beta SAS")
    check(rc == 0 and re.match(r"^[0-9a-f]{32}\n$", out), "org add", rc, out, err)
    oid = out.strip()
    rc, out, err = cli("org", "ls")
    check(rc == 0 and re.search(r"^%s +active +Beta SAS$" % oid, out, re.M), "org ls", out)
    check(cli("org", "suspend", oid)[0] == 0, "org suspend")
    rc, out, err = cli("org", "ls", "--json")
    orgs = {o["id"]: o for o in map(json.loads, out.splitlines())}
    check(orgs[oid]["status"] == "suspended", "org ls --json after suspend", out)
    # the operator sees no document
    rc, out, err = cli("ls")
    check(rc == 1 and "HTTP 403" in err, "the operator listed documents", rc, err)
    check(cli("logout", "--all")[0] == 0, "logout --all")


def main():
    global V, HOME
    HOME = tempfile.mkdtemp(prefix="coffre-cli-home-")
    try:
        V = Vault(BINARY)
        # a witness the vault accepts, its state made by coffre witness --print-key
        state = os.path.join(HOME, "state-template")
        r = subprocess.run([BINARY, "witness", "--state", state, "--print-key", "--name", "witness.example"],
                           capture_output=True, timeout=60)
        check(r.returncode == 0, "--print-key", r.stderr)
        set_witness(V.data, r.stdout.decode().strip())
        shutil.copy(os.path.join(V.data, "keys", "log.vkey"), os.path.join(HOME, "log.vkey"))
        V.start()
        rc = run_tests([test_login_with_password_session_file, test_login_on_a_terminal_does_not_echo,
                        test_session_file_guarded,
                        test_wrong_password_and_usage, test_two_factor_enrol_login_with_code,
                        test_recovery_code_and_2fa_disable, test_first_owner_with_the_bootstrap_token,
                        test_operator_offline_and_orgs])
        V.close()
        return exit_status(rc)
    finally:
        if V:
            V.close()
        shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
