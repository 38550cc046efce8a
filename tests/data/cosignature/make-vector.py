#!/usr/bin/env python3
"""make-vector.py: makes the cosignature/v1 vector in this folder with OpenSSL, independently of
coffre's own signing code: an Ed25519 key made and used by the `openssl` command line (its
private half is deleted at the end), the message built here from the C2SP tlog-cosignature
definition, and the C2SP signed-note key ID and line format.
Writes witness.vkey and cosigned-checkpoint.txt. Run from this folder: ./make-vector.py"""

import base64
import hashlib
import os
import subprocess
import tempfile

NAME = "witness.example/openssl"
TIME = 1679315147
# the checkpoint body of the C2SP tlog-cosignature example
BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

with tempfile.TemporaryDirectory() as d:
    key = os.path.join(d, "key.pem")
    msg = os.path.join(d, "msg")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    pub = der[-32:]  # the SubjectPublicKeyInfo of an Ed25519 key ends with the 32-byte key
    with open(msg, "wb") as f:
        f.write(b"cosignature/v1\ntime %d\n" % TIME + BODY.encode())
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", msg], check=True,
                         capture_output=True).stdout
    assert len(sig) == 64

key_id = hashlib.sha256(NAME.encode() + b"\n" + b"\x04" + pub).digest()[:4]
vkey = "%s+%s+%s" % (NAME, key_id.hex(), base64.b64encode(b"\x04" + pub).decode())
line = "\u2014 %s %s\n" % (NAME, base64.b64encode(key_id + TIME.to_bytes(8, "big") + sig).decode())
with open("witness.vkey", "w") as f:
    f.write(vkey + "\n")
with open("cosigned-checkpoint.txt", "w") as f:
    f.write(BODY + "\n" + line)
print(vkey)
