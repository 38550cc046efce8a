#!/usr/bin/env python3
"""make_vectors.py: writes the coffre object format v1 test vectors from docs/formats.md alone,
with the Python 'cryptography' package (an implementation independent of coffre's C code).

Run from this folder: python3 make_vectors.py. Writes vector1.txt and vector2.txt + vector2.cfro."""
import hashlib
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEGMENT = 65536


def header(object_id, kek_id, prefix):
    h = b"CFRO" + bytes([1, 1]) + b"\0\0" + struct.pack(">I", SEGMENT) + object_id + kek_id + prefix
    return h + b"\0" * (56 - len(h))


def encrypt(key, object_id, kek_id, prefix, plaintext):
    hdr = header(object_id, kek_id, prefix)
    segs = [plaintext[i:i + SEGMENT] for i in range(0, len(plaintext), SEGMENT)] or [b""]
    out = [hdr]
    for i, seg in enumerate(segs):
        last = 1 if i == len(segs) - 1 else 0
        nonce = prefix + struct.pack(">I", i) + bytes([last])
        out.append(AESGCM(key).encrypt(nonce, seg, hdr))
    return b"".join(out)


key = bytes(range(0x00, 0x20))
object_id = bytes(range(0x10, 0x20))
kek_id = bytes(range(0x20, 0x30))
prefix = bytes(range(0xa0, 0xa7))

pt1 = b"coffre object format v1\n"
ct1 = encrypt(key, object_id, kek_id, prefix, pt1)
with open("vector1.txt", "w") as f:
    f.write("key=%s\nobject_id=%s\nkek_id=%s\nnonce_prefix=%s\nplaintext=%s\nciphertext=%s\n" %
            (key.hex(), object_id.hex(), kek_id.hex(), prefix.hex(), pt1.hex(), ct1.hex()))

# Two segments, the second partial: byte i of the plaintext is i % 251.
pt2 = bytes(i % 251 for i in range(70000))
ct2 = encrypt(key, object_id, kek_id, prefix, pt2)
with open("vector2.cfro", "wb") as f:
    f.write(ct2)
with open("vector2.txt", "w") as f:
    f.write("key=%s\nobject_id=%s\nkek_id=%s\nnonce_prefix=%s\nplaintext_length=70000\n"
            "plaintext_sha256=%s\nciphertext_length=%d\nciphertext_sha256=%s\n" %
            (key.hex(), object_id.hex(), kek_id.hex(), prefix.hex(), hashlib.sha256(pt2).hexdigest(),
             len(ct2), hashlib.sha256(ct2).hexdigest()))
