#!/usr/bin/env python3
"""test_seal.py: document seals and the built-in TSA, checked with stock openssl.

- every uploaded document gets a CAdES-B-T seal (GET /v1/documents/{id}/seal) that
  `openssl cms -verify -binary -inform DER -in seal.p7s -content DOC -CAfile ca.pem` accepts,
  and refuses for other bytes; its signed attributes are exactly content-type, message-digest,
  signing-time and signing-certificate-v2; its signature-time-stamp token is accepted by
  `openssl ts -verify` over the signature value; GET /v1/documents/{id} says B-T and the times;
  a class listed in [seal] exempt_classes is stored without a seal (seal_level null, 404);
- POST /v1/tsa answers queries made by `openssl ts -query` (SHA-256/384/512, with and without
  nonce and certReq) with replies `openssl ts -verify` accepts: nonce echoed, certificates in
  the token only when asked; serial numbers differ across a restart;
- hostile queries (truncated DER, trailing bytes, wrong imprint length, unknown or refused
  algorithm, a nonce over 160 bits, a negative nonce, extensions, an unknown policy, garbage)
  get rejection replies with the right PKIFailureInfo bit, never an HTTP error; an oversized
  body is 413, another Content-Type 415, no token 401 (and 200 with [tsa] access = public);
- GET /v1/tsa/certificate is the TSA certificate then the CA, the TSA certificate with the
  critical timeStamping extended key usage;
- with [audit] checkpoint_timestamp_interval = 0 every checkpoint gets a token over its note,
  served at GET /v1/audit/checkpoint/timestamp?size=N and accepted by `openssl ts -verify`;
  `coffre audit verify` checks them all and refuses one moved onto another checkpoint;
- /metrics gives the seconds to expiry of the CA, TSA and seal certificates; a TSA certificate
  10 days from expiry (made with stock openssl) shows there and is warned about in the log.
Usage: test_seal.py PATH/TO/coffre
"""

import hashlib
import os
import sqlite3
import re
import subprocess
import sys
import time

from harness import Vault, check, exit_status, expect_problem, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
V = None

OID_SHA256 = bytes.fromhex("0609608648016503040201")
OID_SHA384 = bytes.fromhex("0609608648016503040202")
OID_TS_TOKEN = bytes.fromhex("060b2a864886f70d010910020e")  # id-aa-signatureTimeStampToken
SIGNED_ATTR_OIDS = {
    bytes.fromhex("06092a864886f70d010903"),  # content-type
    bytes.fromhex("06092a864886f70d010904"),  # message-digest
    bytes.fromhex("06092a864886f70d010905"),  # signing-time
    bytes.fromhex("060b2a864886f70d010910022f"),  # signing-certificate-v2
}
# PKIFailureInfo bits (RFC 3161 section 2.4.2)
BAD_ALG, BAD_REQUEST, BAD_DATA_FORMAT, UNACCEPTED_POLICY, UNACCEPTED_EXTENSION = 0, 2, 5, 15, 16


# -- a small DER reader and writer --------------------------------------------------------

def tlv(buf, i=0):
    """(tag, content, whole TLV, next offset) of the element at i."""
    tag = buf[i]
    n = buf[i + 1]
    j = i + 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[j:j + k], "big")
        j += k
    return tag, buf[j:j + n], buf[i:j + n], j + n


def children(content):
    out, i = [], 0
    while i < len(content):
        tag, c, whole, i = tlv(content, i)
        out.append((tag, c, whole))
    return out


def der(tag, content):
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + content


def query(imprint, alg_oid=OID_SHA256, nonce=None, cert_req=False, extensions=None, policy=None, version=1):
    alg = der(0x30, alg_oid + b"\x05\x00")
    body = der(0x02, bytes([version])) + der(0x30, alg + der(0x04, imprint))
    if policy:
        body += policy
    if nonce is not None:
        body += der(0x02, nonce)
    if cert_req:
        body += b"\x01\x01\xff"
    if extensions:
        body += der(0xA0, extensions)
    return der(0x30, body)


def reply_status(reply):
    """(status, set of failure bits) of a DER TimeStampResp."""
    _, resp, _, _ = tlv(reply)
    parts = children(resp)
    info = children(parts[0][1])
    status = int.from_bytes(info[0][1], "big")
    bits = set()
    for tag, c, _ in info[1:]:
        if tag == 0x03:
            for n in range((len(c) - 1) * 8):
                if c[1 + n // 8] & (0x80 >> (n % 8)):
                    bits.add(n)
    return status, bits, len(parts) > 1


# -- helpers --------------------------------------------------------------------------------

def path(name):
    return os.path.join(V.base, name)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)
    return path(name)


def openssl(*args, ok=True):
    r = subprocess.run(["openssl", *args], capture_output=True, timeout=60)
    if ok:
        check(r.returncode == 0, "openssl %s failed" % " ".join(args), r.stderr.decode(errors="replace"))
    return r


def ca_pem():
    return os.path.join(V.data, "keys", "ca.pem")


def tsa_chain():
    r = V.request("GET", "/v1/tsa/certificate")
    check(r.status == 200, "GET /v1/tsa/certificate: %d" % r.status, r)
    return write("tsa-chain.pem", r.body)


def post_tsa(body, headers=None, **kw):
    h = {"Content-Type": "application/timestamp-query"}
    h.update(headers or {})
    return V.request("POST", "/v1/tsa", body=body, headers=h, **kw)


def seal_parts(seal):
    """The SignerInfo's signed attribute OIDs, its signature value and its timestamp token."""
    _, ci, _, _ = tlv(seal)
    parts = children(ci)
    _, sd, _, _ = tlv(parts[1][1])  # [0] EXPLICIT SignedData
    sd_parts = children(sd)
    signer_infos = children(sd_parts[-1][1])
    check(len(signer_infos) == 1, "the seal has %d signers" % len(signer_infos))
    si = children(signer_infos[0][1])
    signed = [c for tag, c, _ in si if tag == 0xA0][0]
    oids = {children(a)[0][2] for _, a, _ in children(signed)}
    sig = [c for tag, c, _ in si if tag == 0x04][0]
    unsigned = [c for tag, c, _ in si if tag == 0xA1]
    token = None
    for _, a, _ in children(unsigned[0]) if unsigned else []:
        kids = children(a)
        if kids[0][2] == OID_TS_TOKEN:
            token = children(kids[1][1])[0][2]
    return oids, sig, token


# -- tests ----------------------------------------------------------------------------------

def test_seal_verifies_with_openssl():
    chain = tsa_chain()
    for i, data in enumerate([b"", b"%PDF-1.7 facture 2026-001\n", os.urandom(300000)]):
        r = V.upload(data, name="sealed-%d.pdf" % i)
        check(r.status == 201, "upload: %d" % r.status, r)
        meta = r.json()
        check(meta.get("seal_level") == "B-T", "the 201 does not say B-T", meta)
        doc = meta["id"]
        g = V.request("GET", "/v1/documents/" + doc).json()
        check(g.get("seal_level") == "B-T" and g.get("seal_time") and g.get("timestamp_time"),
              "metadata without the seal's level and times", g)
        s = V.request("GET", "/v1/documents/%s/seal" % doc)
        check(s.status == 200 and s.header("Content-Type") == "application/pkcs7-signature",
              "GET seal: %d %s" % (s.status, s.header("Content-Type")), s)
        sp = write("seal.p7s", s.body)
        dp = write("doc.bin", data)
        openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", sp, "-content", dp, "-CAfile", ca_pem(),
                "-out", os.devnull)
        bad = write("other.bin", data + b"x")
        r2 = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", sp, "-content", bad, "-CAfile", ca_pem(),
                     "-out", os.devnull, ok=False)
        check(r2.returncode != 0, "openssl accepted the seal over other bytes")
        oids, sig, token = seal_parts(s.body)
        check(oids == SIGNED_ATTR_OIDS, "signed attributes are not the four of CAdES-B-B", sorted(o.hex() for o in oids))
        check(token is not None, "no signature-time-stamp token in the seal")
        tp = write("token.der", token)
        sigp = write("sig.bin", sig)
        openssl("ts", "-verify", "-data", sigp, "-in", tp, "-token_in", "-CAfile", ca_pem(), "-untrusted", chain)
        r3 = openssl("ts", "-verify", "-data", dp, "-in", tp, "-token_in", "-CAfile", ca_pem(), "-untrusted", chain,
                     ok=False)
        check(r3.returncode != 0, "openssl ts accepted the seal's token over the document instead of the signature")
    # the audit trail names the seal, with the seal's SHA-256
    trail = V.request("GET", "/v1/documents/%s/audit" % doc).json()["entries"]
    seals = [e for e in trail if '"action":"document.seal"' in e["entry"]]
    check(len(seals) == 1, "document.seal is not in the trail once", trail)
    check('"object_sha256":"%s"' % hashlib.sha256(s.body).hexdigest() in seals[0]["entry"],
          "document.seal does not carry the seal's SHA-256", seals[0])


def test_seal_certificate():
    s = V.upload(b"subject check", name="subject.txt").json()
    r = V.request("GET", "/v1/documents/%s/seal" % s["id"])
    sp = write("seal.p7s", r.body)
    certs = openssl("pkcs7", "-inform", "DER", "-in", sp, "-print_certs", "-noout").stdout.decode()
    check("CN = default" in certs or "CN=default" in certs, "the seal certificate does not name the organisation", certs)
    pems = openssl("pkcs7", "-inform", "DER", "-in", sp, "-print_certs").stdout.decode()
    blocks = [b for b in pems.split("\n\n") if "BEGIN CERTIFICATE" in b]
    leaf = [b for b in blocks if re.search(r"subject=.*CN ?= ?default", b)]
    check(len(leaf) == 1, "no single seal certificate in the seal", pems)
    cp = write("leaf.pem", leaf[0][leaf[0].index("-----BEGIN"):].encode() + b"\n")
    text = openssl("x509", "-in", cp, "-noout", "-ext", "keyUsage").stdout.decode()
    check("Digital Signature" in text and "Non Repudiation" in text, "seal key usage", text)
    mode = os.stat(os.path.join(V.data, "keys", "ca.key")).st_mode & 0o777
    check(mode == 0o600, "keys/ca.key is mode %o" % mode)


def test_erasure_takes_the_seal():
    """Erasure deletes the ciphertext and the seal: the seal route answers 410 like the
    content, and meta.db keeps no seals row for the id."""
    r = V.upload(b"to be erased", name="erased.pdf")
    check(r.status == 201 and r.json().get("seal_level") == "B-T", "upload sealed", r)
    doc = r.json()["id"]
    check(V.request("GET", "/v1/documents/%s/seal" % doc).status == 200, "the seal before erasure")
    r = V.json_request("DELETE", "/v1/documents/" + doc, {"reason": "test"})
    check(r.status in (200, 204), "delete: %d" % r.status, r)
    for rel in ("seal", "evidence", "content"):
        p = expect_problem(V.request("GET", "/v1/documents/%s/%s" % (doc, rel)), 410, "erased")
        check(p.get("id") == doc and "seal" not in p, "the tombstone of %s" % rel, p)
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(V.data, "meta.db"), uri=True, timeout=30)
    try:
        n = db.execute("SELECT count(*) FROM seals WHERE document_id = ?", (doc,)).fetchone()[0]
    finally:
        db.close()
    check(n == 0, "the seal row outlived its document")


def test_exempt_class_unsealed():
    r = V.upload(b"scratch", name="scratch.txt", cls="fill")
    check(r.status == 201, "upload: %d" % r.status, r)
    check(r.json().get("seal_level") is None, "an exempt class was sealed", r.json())
    s = V.request("GET", "/v1/documents/%s/seal" % r.json()["id"])
    expect_problem(s, 404, "not-found")


def test_tsa_certificate_chain():
    chain = open(tsa_chain()).read()
    check(chain.count("BEGIN CERTIFICATE") == 2, "the chain is not two certificates")
    first = chain[:chain.index("-----END CERTIFICATE-----") + 25]
    text = openssl("x509", "-in", write("tsa.pem", first.encode()), "-noout", "-text").stdout.decode()
    check(re.search(r"Extended Key Usage: critical\s+Time Stamping", text), "no critical timeStamping EKU", text)
    with open(ca_pem()) as f:
        check(chain.endswith(f.read()), "the chain does not end with the vault's CA")


def test_tsa_replies_verify():
    chain = tsa_chain()
    data = write("data.txt", b"timestamp me\n")
    serials = set()
    for alg in ("-sha256", "-sha384", "-sha512"):
        for extra in ([], ["-cert"], ["-no_nonce"], ["-cert", "-no_nonce"]):
            q = path("q.tsq")
            openssl("ts", "-query", "-data", data, alg, *extra, "-out", q)
            r = post_tsa(open(q, "rb").read())
            check(r.status == 200 and r.header("Content-Type") == "application/timestamp-reply",
                  "POST /v1/tsa: %d" % r.status, r)
            rp = write("r.tsr", r.body)
            openssl("ts", "-verify", "-in", rp, "-queryfile", q, "-CAfile", ca_pem(), "-untrusted", chain)
            text = openssl("ts", "-reply", "-in", rp, "-text").stdout.decode()
            check(("Nonce: unspecified" in text) == ("-no_nonce" in extra), "nonce not echoed as asked", text)
            serials.add(re.search(r"Serial number: (\S+)", text).group(1))
            tok = path("tok.der")
            openssl("ts", "-reply", "-in", rp, "-token_out", "-out", tok)
            certs = openssl("pkcs7", "-inform", "DER", "-in", tok, "-print_certs").stdout.decode()
            check(("BEGIN CERTIFICATE" in certs) == ("-cert" in extra), "certReq not honoured", extra)
            # a reply for these bytes does not verify for others
            other = write("other.txt", b"something else\n")
            bad = openssl("ts", "-verify", "-in", rp, "-data", other, "-CAfile", ca_pem(), "-untrusted", chain, ok=False)
            check(bad.returncode != 0, "openssl ts accepted a token for other data")
    check(len(serials) == 12, "serial numbers repeat", serials)
    # across a restart too
    check(V.stop() == 0, "server did not stop cleanly")
    V.start()
    q = path("q.tsq")
    openssl("ts", "-query", "-data", data, "-sha256", "-out", q)
    text = openssl("ts", "-reply", "-in", write("r.tsr", post_tsa(open(q, "rb").read()).body), "-text").stdout.decode()
    check(re.search(r"Serial number: (\S+)", text).group(1) not in serials, "a serial repeats after a restart")


def expect_rejected(body, bit, what):
    r = post_tsa(body)
    check(r.status == 200 and r.header("Content-Type") == "application/timestamp-reply",
          "%s: HTTP %d instead of a reply" % (what, r.status), r)
    status, bits, has_token = reply_status(r.body)
    check(status == 2 and not has_token, "%s: status %d, not a rejection" % (what, status))
    check(bit in bits, "%s: failure info %s, expected bit %d" % (what, sorted(bits), bit))


def test_tsa_hostile_queries():
    digest = hashlib.sha256(b"x").digest()
    good = query(digest, nonce=b"\x01\x02", cert_req=True)
    r = post_tsa(good)
    check(reply_status(r.body)[0] == 0, "the well-formed query was not granted", r)
    expect_rejected(good[:-4], BAD_DATA_FORMAT, "truncated DER")
    expect_rejected(good + b"\x00", BAD_DATA_FORMAT, "trailing bytes")
    expect_rejected(b"\x30\x80garbage", BAD_DATA_FORMAT, "garbage")
    expect_rejected(b"", BAD_DATA_FORMAT, "empty body")
    expect_rejected(query(digest[:31]), BAD_DATA_FORMAT, "31-byte SHA-256 imprint")
    expect_rejected(query(digest, alg_oid=OID_SHA384), BAD_DATA_FORMAT, "SHA-256 bytes as SHA-384")
    expect_rejected(query(digest, version=2), BAD_REQUEST, "version 2")
    expect_rejected(query(digest, alg_oid=bytes.fromhex("06032a0304")), BAD_ALG, "unknown algorithm 1.2.3.4")
    expect_rejected(query(hashlib.sha1(b"x").digest(), alg_oid=bytes.fromhex("06052b0e03021a")), BAD_ALG, "SHA-1")
    expect_rejected(query(digest, nonce=b"\x01" * 21), BAD_REQUEST, "168-bit nonce")
    expect_rejected(query(digest, nonce=b"\xff\x01"), BAD_REQUEST, "negative nonce")
    ext = der(0x30, bytes.fromhex("06032a0304") + der(0x04, b"\x05\x00"))
    expect_rejected(query(digest, extensions=ext), UNACCEPTED_EXTENSION, "an extension")
    expect_rejected(query(digest, policy=bytes.fromhex("06032a0305")), UNACCEPTED_POLICY, "an unknown policy")
    r = post_tsa(query(digest, nonce=b"\x7f" + b"\xff" * 19))  # 160 bits: the largest accepted
    check(reply_status(r.body)[0] == 0, "a 160-bit nonce was refused")
    expect_problem(post_tsa(b"\x30" * 5000), 413, "payload-too-large")
    expect_problem(post_tsa(good, headers={"Content-Type": "application/octet-stream"}), 415,
                   "unsupported-media-type")
    expect_problem(post_tsa(good, auth=False), 401, "unauthorized")
    expect_problem(V.request("GET", "/v1/tsa/certificate", auth=False), 401, "unauthorized")


def test_tsa_public_access():
    check(V.stop() == 0, "server did not stop cleanly")
    conf = os.path.join(V.data, "coffre.conf")
    text = open(conf).read()
    with open(conf, "w") as f:
        f.write(text.replace("access = token", "access = public"))
    try:
        V.start()
        digest = hashlib.sha256(b"p").digest()
        r = post_tsa(query(digest), auth=False)
        check(r.status == 200 and reply_status(r.body)[0] == 0, "public TSA refused a query without a token", r)
        check(V.request("GET", "/v1/tsa/certificate", auth=False).status == 200, "public certificate refused")
    finally:
        V.stop()
        with open(conf, "w") as f:
            f.write(text)
        V.start()


def test_checkpoint_timestamps():
    check(V.stop() == 0, "server did not stop cleanly")
    conf = os.path.join(V.data, "coffre.conf")
    text = open(conf).read()
    with open(conf, "w") as f:
        f.write(text.replace("[audit]\n", "[audit]\ncheckpoint_timestamp_interval = 0\n", 1))
    V.start()
    chain = tsa_chain()
    for i in range(3):
        check(V.upload(b"stamped %d" % i, name="stamped-%d.txt" % i).status == 201, "upload failed")
        # each checkpoint is timestamped: wait for the one covering this upload (bounded poll)
        deadline = time.monotonic() + 30
        while True:
            cp = V.request("GET", "/v1/audit/checkpoint", fresh=True)
            size = int(cp.body.decode().split("\n")[1])
            r = V.request("GET", "/v1/audit/checkpoint/timestamp?size=%d" % size, fresh=True)
            if r.status == 200:
                break
            check(time.monotonic() < deadline, "no timestamp for checkpoint %d" % size, r)
            time.sleep(0.05)  # polling interval, bounded by the deadline
        check(r.header("Content-Type") == "application/timestamp-reply", "content type", r)
        note = write("note.txt", cp.body)
        rp = write("cp.tsr", r.body)
        openssl("ts", "-verify", "-in", rp, "-data", note, "-CAfile", ca_pem(), "-untrusted", chain)
    latest = V.request("GET", "/v1/audit/checkpoint/timestamp")
    check(latest.status == 200, "no latest timestamp", latest)
    expect_problem(V.request("GET", "/v1/audit/checkpoint/timestamp?size=0"), 400, "bad-request")
    expect_problem(V.request("GET", "/v1/audit/checkpoint/timestamp?size=999999"), 404, "not-found")
    check(V.stop() == 0, "server did not stop cleanly")
    r = V.cli("audit", "verify", "--data", V.data)
    m = re.search(rb", (\d+) checkpoint timestamps", r.stdout)
    check(r.returncode == 0 and m and int(m.group(1)) >= 2, "audit verify: exit %d" % r.returncode, r.stdout, r.stderr)
    # a timestamp moved onto another checkpoint is refused
    ts_path = os.path.join(V.data, "audit", "checkpoint-timestamps")
    original = open(ts_path, "rb").read()
    lines = original.split(b"\n")[:-1]
    first_size = lines[0].split(b" ")[0]
    moved = lines[:-1] + [first_size + b" " + lines[-1].split(b" ")[1]]
    with open(ts_path, "wb") as f:
        f.write(b"\n".join(moved) + b"\n")
    r = V.cli("audit", "verify", "--data", V.data)
    check(r.returncode == 3 and b"not a valid token" in r.stderr + r.stdout, "a moved timestamp passed: exit %d"
          % r.returncode, r.stdout, r.stderr)
    with open(ts_path, "wb") as f:
        f.write(original)
    with open(conf, "w") as f:
        f.write(text)
    V.start()


def expiry_gauges():
    r = V.request("GET", "/metrics")
    check(r.status == 200, "/metrics: %d" % r.status, r)
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'^coffre_seal_certificate_expiry_seconds\{certificate="(\w+)"\} (-?\d+)$', r.body.decode(), re.M)}


def test_certificate_expiry_metrics_and_warning():
    g = expiry_gauges()
    check(set(g) == {"ca", "tsa", "seal"}, "expiry gauges %r" % g)
    check(g["tsa"] > 9 * 365 * 86400 and g["ca"] > g["tsa"], "unexpected lifetimes %r" % g)
    # a TSA certificate 10 days from expiry, issued by the vault's CA with stock openssl
    keys = os.path.join(V.data, "keys")
    saved = {n: open(os.path.join(keys, n), "rb").read() for n in ("tsa.key", "tsa.pem")}
    ext = write("tsa.ext", b"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                b"extendedKeyUsage=critical,timeStamping\n")
    check(V.stop() == 0, "server did not stop cleanly")
    try:
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path("short.key"))
        openssl("pkcs8", "-topk8", "-nocrypt", "-in", path("short.key"), "-out", os.path.join(keys, "tsa.key"))
        os.chmod(os.path.join(keys, "tsa.key"), 0o600)
        openssl("req", "-new", "-key", path("short.key"), "-subj", "/CN=short-lived TSA", "-out", path("short.csr"))
        openssl("x509", "-req", "-in", path("short.csr"), "-CA", ca_pem(), "-CAkey", os.path.join(keys, "ca.key"),
                "-days", "10", "-extfile", ext, "-set_serial", "7", "-out", os.path.join(keys, "tsa.pem"))
        V.start()
        g = expiry_gauges()
        check(0 < g["tsa"] <= 10 * 86400, "TSA expiry gauge %r" % g)
        check(re.search(rb"the TSA certificate expires at \S+, within 30 days", V.log_text()),
              "no warning for a certificate 10 days from expiry")
        # and it still stamps
        r = post_tsa(query(hashlib.sha256(b"soon").digest()))
        check(reply_status(r.body)[0] == 0, "the short-lived TSA does not grant")
    finally:
        V.stop()
        for n, data in saved.items():
            with open(os.path.join(keys, n), "wb") as f:
                f.write(data)
        V.start()


def main():
    global V
    with Vault(BINARY) as v:
        V = v
        conf = os.path.join(v.data, "coffre.conf")
        text = open(conf).read()
        with open(conf, "w") as f:
            f.write(text.replace("[seal]\n", "[seal]\nexempt_classes = fill, tmp\n", 1))
        v.start()
        rc = run_tests([test_seal_verifies_with_openssl, test_seal_certificate, test_erasure_takes_the_seal,
                        test_exempt_class_unsealed,
                        test_tsa_certificate_chain, test_tsa_replies_verify, test_tsa_hostile_queries,
                        test_tsa_public_access, test_checkpoint_timestamps,
                        test_certificate_expiry_metrics_and_warning])
        if v.stop() != 0:
            print("shared server: SIGTERM exit status not 0")
            rc = 1
        return rc


if __name__ == "__main__":
    sys.exit(exit_status(main()))
