#!/usr/bin/env python3
"""make_vectors.py: writes vector1.txt, the field ciphertext and blind index known answers of
docs/formats.md section 3, from that description alone, with the Python `cryptography` package."""
import hashlib
import hmac
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENC_KEY = bytes(range(0x00, 0x20))
IDX_KEY = bytes(range(0x40, 0x60))
NONCE = bytes(range(0xa0, 0xac))
TABLE, COLUMN, ROW = b"documents", b"name", b"0123456789abcdef0123456789abcdef"
VALUE = "Facture Dupont Émilie 2026-03.pdf".encode("utf-8")


def lp(b):
    return struct.pack(">I", len(b)) + b


def aad(table, column, row):
    return b"coffre field v1\0" + lp(table) + lp(column) + lp(row)


def main():
    ct = AESGCM(ENC_KEY).encrypt(NONCE, VALUE, aad(TABLE, COLUMN, ROW))
    field = b"\x01" + NONCE + ct
    index = hmac.new(IDX_KEY, b"coffre field index v1\0" + lp(TABLE) + lp(COLUMN) + lp(VALUE),
                     hashlib.sha256).digest()
    out = sys.argv[1] if len(sys.argv) > 1 else "vector1.txt"
    with open(out, "w") as f:
        f.write("enc_key=%s\n" % ENC_KEY.hex())
        f.write("index_key=%s\n" % IDX_KEY.hex())
        f.write("nonce=%s\n" % NONCE.hex())
        f.write("table=%s\n" % TABLE.decode())
        f.write("column=%s\n" % COLUMN.decode())
        f.write("row=%s\n" % ROW.decode())
        f.write("value=%s\n" % VALUE.hex())
        f.write("aad=%s\n" % aad(TABLE, COLUMN, ROW).hex())
        f.write("field=%s\n" % field.hex())
        f.write("index=%s\n" % index.hex())


if __name__ == "__main__":
    main()
