"""softhsm.py: a SoftHSM2 token of the test's own, in a temporary directory.

Token(base) writes a softhsm2.conf whose token directory is under base, initialises a token with
`softhsm2-util --init-token`, writes the user PIN into a 0600 PIN file, and offers keys made with
`pkcs11-tool` (opensc) or imported with `softhsm2-util --import`. env() is what a process needs to
see the token (SOFTHSM2_CONF); uri() builds the RFC 7512 URIs coffre reads. Python 3 standard
library only; the tools are Debian's softhsm2 and opensc packages.
"""

import os
import subprocess
import tempfile

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "12345678"


class Token:
    def __init__(self, base=None, label="coffre-test", pin="1234-test-pin"):
        if not os.path.exists(MODULE):
            raise RuntimeError("SoftHSM2 is not installed (%s is missing): run scripts/install-deps" % MODULE)
        self.base = base or tempfile.mkdtemp(prefix="coffre-softhsm-")
        self.label = label
        self.pin = pin
        self.tokendir = os.path.join(self.base, "tokens")
        os.makedirs(self.tokendir, mode=0o700, exist_ok=True)
        self.conf = os.path.join(self.base, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n" % self.tokendir)
        self.pin_file = os.path.join(self.base, "user.pin")
        fd = os.open(self.pin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pin + "\n")
        self.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                  "--so-pin", SO_PIN, "--pin", pin])

    def env(self, base_env=None):
        env = dict(os.environ if base_env is None else base_env)
        env["SOFTHSM2_CONF"] = self.conf
        return env

    def run(self, args, check=True):
        r = subprocess.run(args, capture_output=True, timeout=60, env=self.env())
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s %s" % (args[0], r.returncode,
                                                              r.stdout.decode(errors="replace"),
                                                              r.stderr.decode(errors="replace")))
        return r

    def pkcs11_tool(self, *args, check=True):
        return self.run(["pkcs11-tool", "--module", MODULE, "--token-label", self.label,
                         "--login", "--pin", self.pin, *args], check=check)

    def gen_ec(self, label, key_id):
        """An ECDSA P-256 key pair on the token (private key sensitive, not extractable)."""
        self.pkcs11_tool("--keypairgen", "--key-type", "EC:prime256v1", "--label", label,
                         "--id", key_id, "--usage-sign")

    def gen_aes(self, label, key_id, size=32):
        """An AES key that never leaves the token (CKA_SENSITIVE, not CKA_EXTRACTABLE)."""
        self.pkcs11_tool("--keygen", "--key-type", "AES:%d" % size, "--label", label, "--id", key_id,
                         "--sensitive")

    def import_key(self, pem_path, label, key_id):
        """Imports a PKCS#8 PEM private key (softhsm2-util --import)."""
        self.run(["softhsm2-util", "--import", pem_path, "--token", self.label, "--label", label,
                  "--id", key_id, "--pin", self.pin])

    def public_key_der(self, label):
        r = self.pkcs11_tool("--read-object", "--type", "pubkey", "--label", label)
        return r.stdout

    def objects(self):
        return self.pkcs11_tool("--list-objects").stdout.decode(errors="replace")

    def uri(self, obj, pin_file=None, with_module=True):
        u = "pkcs11:token=%s;object=%s;pin-source=file:%s" % (self.label, obj, pin_file or self.pin_file)
        if with_module:
            u += "?module-path=" + MODULE
        return u
