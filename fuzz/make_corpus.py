#!/usr/bin/env python3
"""make_corpus.py: writes the seed corpora of the fuzz targets under fuzz/corpus/<target>/.

Seeds named ok-* must be accepted by the target's parser and bad-* refused: the corpus replay in
`meson test` checks this. seed-* files carry no expectation. Output is deterministic (fixed keys,
ids and nonces), so re-running it only changes files when this script changes.
Needs python3-cryptography (for the AES-GCM seeds). The note corpus is not written here.

usage: fuzz/make_corpus.py [TEST_DATA_DIR]   (default: tests/data of this repository)
"""
import base64
import glob
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data")

ENTRY_KEY = bytes(range(1, 33))           # entry_fuzz.c fuzz_details_key
OBJECT_KEY = bytes(range(0xA0, 0xC0))     # object_fuzz.c fuzz_dek


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def canon(obj):
    # RFC 8785 for an object of string values: sorted keys, compact, minimal escapes.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_corpus():
    base = {"time": "2026-11-27T11:22:33.123Z", "org": "org_01", "actor": "usr_7",
            "action": "document.create", "request_id": "req-42"}
    full = dict(base, object="doc_9f", object_sha256="ab" * 32)
    write("entry", "ok-minimal", canon(base))
    write("entry", "ok-object", canon(full))
    write("entry", "ok-escapes", canon(dict(base, actor='a"b\\c\n\t\x01\x1f/é€😀')))
    # details sealed like audit_entry_build: AAD = canonical JSON without details
    nonce = bytes(range(12))
    sealed = AESGCM(ENTRY_KEY).encrypt(nonce, b'{"email":"someone@example.com"}', canon(full))
    write("entry", "ok-details", canon(dict(full, details=base64.b64encode(nonce + sealed).decode())))
    other = AESGCM(bytes(32)).encrypt(nonce, b"x", canon(full))
    write("entry", "ok-details-other-key", canon(dict(full, details=base64.b64encode(nonce + other).decode())))
    write("entry", "bad-spaces", json.dumps(base, sort_keys=True))
    write("entry", "bad-key-order", json.dumps(base, separators=(",", ":")))
    write("entry", "bad-unknown-key", canon(dict(base, zzz="1")))
    write("entry", "bad-missing-org", canon({k: v for k, v in base.items() if k != "org"}))
    write("entry", "bad-duplicate-key", canon(base)[:-1] + b',"time":"2026-11-27T11:22:33.123Z"}')
    write("entry", "bad-escaped-e-acute", canon(base).replace(b"usr_7", b"usr_\\u00e9"))
    write("entry", "bad-escaped-slash", canon(base).replace(b"usr_7", b"usr\\/7"))
    write("entry", "bad-upper-hex-escape", canon(dict(base, actor="\x1f")).replace(b"\\u001f", b"\\u001F"))
    write("entry", "bad-lone-surrogate", canon(base).replace(b"usr_7", b"\\ud800"))
    write("entry", "bad-overlong-utf8", canon(base).replace(b"usr_7", b"\xc0\xaf"))
    write("entry", "bad-nul-escape", canon(base).replace(b"usr_7", b"\\u0000"))
    write("entry", "bad-time-no-ms", canon(dict(base, time="2026-11-27T11:22:33Z")))
    write("entry", "bad-time-offset", canon(dict(base, time="2026-11-27T12:22:33.123+01:00")))
    write("entry", "bad-upper-sha", canon(dict(full, object_sha256="AB" * 32)))
    write("entry", "bad-action-upper", canon(dict(base, action="Document.Create")))
    write("entry", "bad-empty-actor", canon(dict(base, actor="")))
    write("entry", "bad-details-short", canon(dict(full, details=base64.b64encode(bytes(27)).decode())))
    write("entry", "bad-number-value", canon(base).replace(b'"req-42"', b"42"))
    write("entry", "bad-trailing-newline", canon(base) + b"\n")
    write("entry", "bad-truncated", canon(base)[:-1])
    write("entry", "bad-empty", b"")


def der(tag, content):
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + content


def ts_query(imprint, alg_oid="0609608648016503040201", nonce=None, cert_req=False, extensions=None, version=1,
             policy=None):
    alg = der(0x30, bytes.fromhex(alg_oid) + b"\x05\x00")
    body = der(0x02, bytes([version])) + der(0x30, alg + der(0x04, imprint))
    if policy:
        body += bytes.fromhex(policy)
    if nonce is not None:
        body += der(0x02, nonce)
    if cert_req:
        body += b"\x01\x01\xff"
    if extensions:
        body += der(0xA0, extensions)
    return der(0x30, body)


def tsa_corpus():
    d = bytes(range(32))
    write("tsa", "ok-sha256", ts_query(d))
    write("tsa", "ok-sha256-nonce-certreq", ts_query(d, nonce=b"\x01\x02\x03\x04", cert_req=True))
    write("tsa", "ok-sha384", ts_query(bytes(48), alg_oid="0609608648016503040202"))
    write("tsa", "ok-sha512", ts_query(bytes(64), alg_oid="0609608648016503040203"))
    write("tsa", "ok-nonce-160-bits", ts_query(d, nonce=b"\x7f" + b"\xff" * 19))
    write("tsa", "bad-truncated", ts_query(d, nonce=b"\x01")[:-3])
    write("tsa", "bad-trailing-byte", ts_query(d) + b"\x00")
    write("tsa", "bad-empty", b"")
    write("tsa", "bad-garbage", b"\x30\x80\xff\xff")
    write("tsa", "bad-short-imprint", ts_query(d[:31]))
    write("tsa", "bad-sha384-length-32", ts_query(d, alg_oid="0609608648016503040202"))
    write("tsa", "bad-version-2", ts_query(d, version=2))
    write("tsa", "bad-unknown-alg", ts_query(d, alg_oid="06032a0304"))
    write("tsa", "bad-sha1", ts_query(bytes(20), alg_oid="06052b0e03021a"))
    write("tsa", "bad-nonce-168-bits", ts_query(d, nonce=b"\x01" * 21))
    write("tsa", "bad-negative-nonce", ts_query(d, nonce=b"\xff\x01"))
    write("tsa", "bad-extension", ts_query(d, extensions=der(0x30, bytes.fromhex("06032a0304") + der(0x04, b"\x05\x00"))))
    write("tsa", "bad-unknown-policy", ts_query(d, policy="06032a0305"))
    write("tsa", "bad-too-large", ts_query(d) + bytes(5000))
    write("tsa", "bad-huge-length", b"\x30\x84\x7f\xff\xff\xff\x02\x01\x01")


def time_corpus():
    ok = {
        "ok-utc-ms": "2026-11-27T11:22:33.123Z", "ok-date": "2026-11-27", "ok-utc": "2026-11-27T11:22:33Z",
        "ok-plus-offset": "2026-11-27T11:22:33+02:00", "ok-minus-offset": "2026-11-27T11:22:33.5-05:30",
        "ok-nanoseconds": "2026-11-27T11:22:33.123456789Z", "ok-lower-case": "2026-11-27t11:22:33z",
        "ok-leap-day": "2024-02-29T00:00:00Z", "ok-epoch": "1970-01-01T00:00:00Z",
        "ok-last": "9999-12-31T23:59:59.999Z", "ok-leap-second": "2016-06-30T12:00:60Z",
    }
    bad = {
        "bad-feb-29": "2023-02-29", "bad-month-13": "2026-13-01", "bad-hour-24": "2026-11-27T24:00:00Z",
        "bad-no-zone": "2026-11-27T11:22:33", "bad-empty-fraction": "2026-11-27T11:22:33.Z",
        "bad-ten-digit-fraction": "2026-11-27T11:22:33.1234567890Z", "bad-before-epoch": "1969-12-31T23:59:59Z",
        "bad-offset-24h": "2026-11-27T11:22:33+24:00", "bad-leading-space": " 2026-11-27",
        "bad-trailing-newline": "2026-11-27T11:22:33.123Z\n", "bad-fullwidth-digits": "２０２６-11-27",
        "bad-short-year": "26-11-27", "bad-empty": "",
    }
    for name, s in {**ok, **bad}.items():
        write("time", name, s)


def base64_corpus():
    b = lambda s: b"\x00" + s   # first byte even: base64
    h = lambda s: b"\x01" + s   # odd: hex
    seeds = {
        "ok-b64-hello": b(b"aGVsbG8="), "ok-b64-two-pad": b(b"aGVsbA=="), "ok-b64-empty": b(b""),
        "ok-b64-binary": b(base64.b64encode(bytes(range(256)))),
        "bad-b64-no-padding": b(b"aGVsbG8"), "bad-b64-nonzero-pad-bits": b(b"aGVsbB=="),
        "bad-b64-three-pad": b(b"a==="), "bad-b64-space": b(b"aGV sbG8="), "bad-b64-newline": b(b"aGVs\nbG8="),
        "bad-b64-pad-in-middle": b(b"aGVsbG8=aGVs"), "bad-b64-url-alphabet": b(b"-_-_"),
        "bad-b64-high-byte": b(b"aGVs\x80G8="), "bad-b64-nul": b(b"aG\x00sbG8="),
        "ok-hex-lower": h(b"00ff10"), "ok-hex-mixed-case": h(b"DEADbeef"), "ok-hex-empty": h(b""),
        "bad-hex-odd": h(b"abc"), "bad-hex-letters": h(b"zz"), "bad-hex-nul": h(b"ab\x00cd"),
        "bad-hex-space": h(b"ab cd"), "bad-hex-prefix": h(b"0x00"),
    }
    for name, s in seeds.items():
        write("base64", name, s)


def obj_header(object_id, kek_id, prefix, version=1, algorithm=1, segsize=65536, reserved=0, pad=b"\0" * 5):
    return b"CFRO" + bytes([version, algorithm]) + struct.pack(">HI", reserved, segsize) + object_id + kek_id + prefix + pad


def obj_seal(pt, key=OBJECT_KEY, header=None, last_flag=True, prefix=bytes(range(7))):
    if header is None:
        header = obj_header(bytes(range(16)), bytes(range(16, 32)), prefix)
    segs = [pt[i:i + 65536] for i in range(0, len(pt), 65536)] or [b""]
    out = header
    for i, s in enumerate(segs):
        last = i == len(segs) - 1
        nonce = prefix + struct.pack(">I", i) + bytes([1 if last and last_flag else 0])
        out += AESGCM(key).encrypt(nonce, s, header)
    return out


def object_corpus():
    prefix = bytes(range(7))
    small = obj_seal(b"invoice 2026-001: 1200.00 EUR\n")
    two = obj_seal(bytes(i % 251 for i in range(65537)))
    write("object", "ok-empty", obj_seal(b""))
    write("object", "ok-one-byte", obj_seal(b"x"))
    write("object", "ok-small", small)
    write("object", "ok-full-segment", obj_seal(bytes(65536)))
    write("object", "ok-two-segments", two)
    flipped = bytearray(two)
    flipped[56 + 10] ^= 1
    write("object", "bad-first-segment-flipped", bytes(flipped))
    write("object", "bad-truncated", small[:-1])
    write("object", "bad-extended", small + b"\0")
    write("object", "bad-header-only", small[:56])
    write("object", "bad-empty", b"")
    write("object", "bad-wrong-key", obj_seal(b"secret", key=bytes(32)))
    write("object", "bad-no-last-flag", obj_seal(b"abc", last_flag=False))
    write("object", "bad-object-id-changed", small[:12] + b"\xff" + small[13:])
    write("object", "bad-version-2", obj_seal(b"abc", header=obj_header(bytes(16), bytes(16), prefix, version=2)))
    write("object", "bad-segment-size", obj_seal(b"abc", header=obj_header(bytes(16), bytes(16), prefix, segsize=4096)))
    write("object", "bad-reserved-set", obj_seal(b"abc", header=obj_header(bytes(16), bytes(16), prefix, reserved=1)))
    write("object", "bad-padding-set", obj_seal(b"abc", header=obj_header(bytes(16), bytes(16), prefix, pad=b"\0\0\0\0\1")))
    write("object", "bad-magic", b"XFRO" + small[4:])
    # the last segment moved in from another object with the same key and header layout
    other = obj_seal(b"invoice 2026-002: 9999.00 EUR\n", prefix=b"\x07" * 7)
    write("object", "bad-foreign-segment", small[:56] + other[56:])


def config_corpus():
    full = ("# coffre vault settings. Secrets never go here: only paths.\n"
            "[vault]\nid = 0123456789abcdef0123456789abcdef\ndefault_class = accounting-10y\n\n"
            "[server]\nlisten = 127.0.0.1:8443\nmax_body = 4294967296\nmax_connections = 256\n"
            "max_connections_per_ip = 64\nidle_timeout = 30\nshutdown_timeout = 30\n\n"
            "[tls]\ncert = tls/cert.pem\nkey = tls/key.pem\n\n[keys]\nmaster = keys/master.key\n\n"
            "[audit]\norigin = vault.example/log\n"
            "witness = witness.example/fuzz+059ff63d+BFTju7WhDG0vFPzLRp5EDFVxBB8SDJ7woLbLPcynfZx/\n")
    seeds = {
        "ok-minimal": "[vault]\nid = abc\n",
        "ok-full": full,
        "ok-crlf": full.replace("\n", "\r\n"),
        "ok-sizes": "[vault]\nid=v\n[server]\nmax_body = 64K\n",
        "ok-size-giga": "[vault]\nid=v\n[server]\nmax_body=4g\nidle_timeout=1000000\n",
        "ok-comments": "; comment\n# comment\n[vault]\nid = v ; inline\n",
        "ok-unknown-setting": "[vault]\nid = v\n[later]\nfeature = on\n",
        "ok-colon": "[vault]\nid: v\n",
        "ok-many-witnesses": "[vault]\nid=v\n[audit]\n" + "".join("witness = w%d+00000000+AAAA\n" % i for i in range(16)),
        "bad-empty": "",
        "bad-no-id": "[server]\nlisten = 0.0.0.0:443\n",
        "bad-negative-size": "[vault]\nid=v\n[server]\nmax_body = -1\n",
        "bad-size-suffix": "[vault]\nid=v\n[server]\nmax_body = 1X\n",
        "bad-size-overflow": "[vault]\nid=v\n[server]\nmax_body = 99999999999T\n",
        "bad-too-many-connections": "[vault]\nid=v\n[server]\nmax_connections = 1000001\n",
        "bad-id-too-long": "[vault]\nid = " + "a" * 33 + "\n",
        "bad-17-witnesses": "[vault]\nid=v\n[audit]\n" + "".join("witness = w%d\n" % i for i in range(17)),
        "bad-unterminated-section": "[vault\nid = v\n",
        "bad-no-equals": "[vault]\nid = v\nnonsense\n",
        "bad-empty-id": "[vault]\nid =\n",
    }
    for name, s in seeds.items():
        write("config", name, s)


def merkle_corpus():
    def raw(mode, a, b, h1, h2, proof):
        return bytes([mode]) + struct.pack("<QQ", a, b) + h1 + h2 + b"".join(proof)

    d64 = lambda s: base64.b64decode(s) if s else bytes(32)
    pick = ["happy-path", "modified-proof", "wrong-root", "truncated-proof", "leafIdx-plus", "treeSize-mul",
            "size1-plus", "swapped-roots", "empty-proof", "wrong-leaf"]
    n = 0
    for kind, mode in (("inclusion", 0), ("consistency", 1)):
        for path in sorted(glob.glob(os.path.join(TEST_DATA, "merkle", "golden", kind, "*", "*.json"))):
            base = os.path.basename(path)[:-5]
            sub = os.path.basename(os.path.dirname(path))
            if not any(base.startswith(p) for p in pick) or sub != ("1" if kind == "inclusion" else "2"):
                continue
            v = json.load(open(path))
            proof = [d64(p) for p in (v.get("proof") or [])]
            if kind == "inclusion":
                data = raw(0, v["leafIdx"], v["treeSize"], d64(v["leafHash"]), d64(v["root"]), proof)
                zero = v["treeSize"] == 0
            else:
                data = raw(1, v["size1"], v["size2"], d64(v["root1"]), d64(v["root2"]), proof)
                zero = v["size1"] == 0
            prefix = "seed" if zero else ("bad" if v["wantErr"] else "ok")
            write("merkle_proof", "%s-%s-%s-%s" % (prefix, kind, sub, base.replace("@", "").replace("[", "").replace("]", "")), data)
            n += 1
    if n == 0:
        sys.exit("no golden Merkle vectors under " + TEST_DATA)
    # generated trees: mode, size (2 bytes), index/old size (2 bytes), bit to flip, leaf data
    for name, params in {"ok-gen-inclusion-1": (2, 0, 0, 0), "ok-gen-inclusion-7": (2, 6, 3, 9),
                         "ok-gen-inclusion-512": (2, 511, 300, 200), "ok-gen-consistency-6-7": (3, 6, 5, 1),
                         "ok-gen-consistency-4-8": (3, 7, 3, 77), "ok-gen-consistency-equal": (3, 99, 99, 5)}.items():
        mode, size, idx, flip = params
        write("merkle_proof", name, bytes([mode]) + struct.pack("<HHB", size, idx, flip) + b"leaf data")
    write("merkle_proof", "bad-inclusion-index-past-end", raw(0, 8, 8, bytes(32), bytes(32), []))
    write("merkle_proof", "bad-consistency-old-bigger", raw(1, 9, 8, bytes(32), bytes(32), [bytes(32)]))


if __name__ == "__main__":
    entry_corpus()
    time_corpus()
    base64_corpus()
    object_corpus()
    config_corpus()
    merkle_corpus()
    tsa_corpus()
