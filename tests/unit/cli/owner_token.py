"""owner_token.py URL CACERT BOOTSTRAP_TOKEN OUT: makes the first owner of a fresh vault the way
the integration harness does (bootstrap token -> owner -> TOTP enrolment -> login with a code)
and writes an API token of that owner with every scope to OUT, for test_cli.c."""
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "integration"))
import harness  # noqa: E402

url, cacert, bootstrap, out = sys.argv[1:5]
v = harness.Vault("/bin/true", init=False, owner=False)
v.port = urllib.parse.urlsplit(url).port
v.cacert = cacert
v.bootstrap_token = bootstrap
token = v.setup_owner()
with open(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    f.write(token + "\n")
v.close()
