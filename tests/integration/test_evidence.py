#!/usr/bin/env python3
"""test_evidence.py: evidence bundles (ASiC-S) and their offline verification.

- `coffre evidence ID -o FILE.asics` gives a ZIP whose first entry is `mimetype`, stored, with no
  extra field; `openssl cms -verify` accepts the extracted seal over the extracted document; the
  download is logged as document.evidence; `coffre verify` accepts it with the vault's CA and log
  key, and a large document's bundle too (the server's memory stays flat); the document's entry
  has its clear name; a viewer gets the bundle, an auditor (who reads the seal) is refused;
- `coffre verify` refuses with exit 3 and the reason: a changed document, a document given with
  --document that is another, a changed signature, a time-stamp over something else (another
  seal's token), a certificate from another CA, a seal certificate expired before its
  time-stamp, a truncated or bit-flipped zip, an extra or a
  missing file in META-INF, an audit entry swapped for another (with or without a valid
  inclusion proof of its own), a checkpoint under another log key; and it changes nothing;
- a document stored without a seal has no bundle (409 not-sealed), an unknown one 404.
Usage: test_evidence.py PATH/TO/coffre
"""

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from harness import Vault, check, exit_status, expect_problem, random_chunks, run_tests, vm_hwm_kib

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"
RESEAL = sys.argv[2] if len(sys.argv) > 2 else "build/tests/unit/hsm/reseal_tool"
ZIPW = sys.argv[3] if len(sys.argv) > 3 else "build/tests/unit/hsm/zipw_tool"
V = None
W = None  # another vault: another CA, another log key
TMP = None
DOC = b"%PDF-1.7\n% an invoice of 2026\n" + os.urandom(150000)
DOC_ID = None


def t(name):
    return os.path.join(TMP, name)


def evidence(v, doc_id, out):
    r = v.cli("evidence", doc_id, "-o", out)
    check(r.returncode == 0, "coffre evidence failed", r.stdout, r.stderr)
    return out


def verify(path, *extra, ca=True, log_key=True, v=None):
    v = v or V
    args = [BINARY, "verify", path, *extra]
    if ca:
        args += ["--ca", os.path.join(v.data, "keys", "ca.pem")]
    if log_key:
        args += ["--log-key", os.path.join(v.data, "keys", "log.vkey")]
    return subprocess.run(args, capture_output=True, timeout=120)


def refused(r, reason):
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 3, "not refused with exit 3 (exit %d)" % r.returncode, r.stdout.decode(errors="replace"), err)
    check(reason in err, "the refusal does not say %r" % reason, err)


def read_zip(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, entries):
    """A well-formed stored ZIP of these (name, bytes), in this order (CRCs right)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


def replace(entries, name, data):
    out = [(n, data if n == name else d) for n, d in entries]
    check(any(n == name for n, _ in entries), "no entry %s" % name)
    return out


def der_len(b, i):
    """Length of the DER element at i (tag, length, contents)."""
    n = b[i + 1]
    if n < 0x80:
        return 2 + n
    k = n & 0x7f
    return 2 + k + int.from_bytes(b[i + 2:i + 2 + k], "big")


def token_span(p7s):
    """Offset and length of the time-stamp token (the second signedData ContentInfo) in a seal."""
    oid = bytes.fromhex("06092a864886f70d010702")
    first = p7s.find(oid)
    second = p7s.find(oid, first + 1)
    check(first >= 0 and second > first, "no time-stamp token inside the seal")
    for back in (4, 3, 2):  # the SEQUENCE header just before the OID
        i = second - back
        if p7s[i] == 0x30 and i + der_len(p7s, i) <= len(p7s):
            return i, der_len(p7s, i)
    raise AssertionError("cannot find the token's SEQUENCE")


def setup():
    global V, W, TMP, DOC_ID
    TMP = tempfile.mkdtemp(prefix="coffre-evidence-")
    V = Vault(BINARY).start()
    W = Vault(BINARY).start()
    DOC_ID = V.upload_ok(DOC, name="facture 2026-001.pdf")["id"]
    with open(t("doc.pdf"), "wb") as f:
        f.write(DOC)
    evidence(V, DOC_ID, t("good.asics"))


def test_bundle_layout_and_openssl():
    with open(t("good.asics"), "rb") as f:
        raw = f.read()
    check(raw[:4] == b"PK\x03\x04" and raw[30:38] == b"mimetype" and raw[38:69] == b"application/vnd.etsi.asic-s+zip",
          "mimetype is not the first entry, stored, with no extra field at offset 30", raw[:80])
    with zipfile.ZipFile(t("good.asics")) as z:
        infos = z.infolist()
        check(z.testzip() is None, "a CRC is wrong")
        check(all(i.compress_type == zipfile.ZIP_STORED for i in infos), "an entry is compressed")
        names = [i.filename for i in infos]
        check(names[0] == "mimetype" and "facture 2026-001.pdf" in names, "names", names)
        check(sorted(n for n in names if n.startswith("META-INF/")) == sorted([
            "META-INF/signature.p7s", "META-INF/seal-chain.pem", "META-INF/tsa-chain.pem", "META-INF/checkpoint.txt",
            "META-INF/log.vkey", "META-INF/audit.json", "META-INF/VERIFY.txt", "META-INF/checkpoint.tsr"]),
            "META-INF", names)
        check(z.read("facture 2026-001.pdf") == DOC, "the bundled document differs")
        ex = t("extracted")
        z.extractall(ex)
    # the checkpoint's time-stamp, with openssl alone
    r = subprocess.run(["openssl", "ts", "-verify", "-in", os.path.join(ex, "META-INF", "checkpoint.tsr"), "-data",
                        os.path.join(ex, "META-INF", "checkpoint.txt"), "-CAfile", os.path.join(ex, "META-INF", "tsa-chain.pem"),
                        "-untrusted", os.path.join(ex, "META-INF", "tsa-chain.pem")], capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl ts -verify refused the checkpoint's time-stamp", r.stdout, r.stderr)
    r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                        os.path.join(ex, "META-INF", "signature.p7s"), "-content", os.path.join(ex, "facture 2026-001.pdf"),
                        "-CAfile", os.path.join(V.data, "keys", "ca.pem"), "-purpose", "any", "-out", os.devnull],
                       capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl cms -verify refused the bundled seal", r.stderr)
    # the download itself is in the document's trail, and in the bundle's entries
    a = V.request("GET", "/v1/documents/%s/audit" % DOC_ID).json()
    check(any('"action":"document.evidence"' in e["entry"] for e in a["entries"]), "no document.evidence entry", a)
    audit = json.loads(open(os.path.join(ex, "META-INF", "audit.json")).read())
    actions = [json.loads(base64.b64decode(e["entry"]))["action"] for e in audit["entries"]]
    check(actions[:2] == ["document.create", "document.seal"] and "document.evidence" in actions, "entries", actions)
    # HTTP: Content-Length and type
    resp = V.request("GET", "/v1/documents/%s/evidence" % DOC_ID)
    check(resp.status == 200 and resp.header("Content-Type") == "application/vnd.etsi.asic-s+zip", "answer", resp)
    check(int(resp.header("Content-Length")) == len(resp.body), "Content-Length is not the body's length")


def bearer(token):
    return {"Authorization": "Bearer " + token}


def test_who_reads_it():
    """The bundle holds the content: a viewer gets it (under the document's clear name), an
    auditor, who reads the seal and the audit trail, does not."""
    viewer = V.session_for(V.create_user("viewer"))
    r = V.request("GET", "/v1/documents/%s/evidence" % DOC_ID, headers=bearer(viewer), auth=False)
    check(r.status == 200, "a viewer's evidence download: status %d" % r.status, r)
    with zipfile.ZipFile(io.BytesIO(r.body)) as z:
        check(z.read("facture 2026-001.pdf") == DOC, "the viewer's bundle does not hold the named document")
    auditor = V.session_for(V.create_user("auditor"))
    r = V.request("GET", "/v1/documents/%s/seal" % DOC_ID, headers=bearer(auditor), auth=False)
    check(r.status == 200, "an auditor reads the seal: status %d" % r.status, r)
    r = V.request("GET", "/v1/documents/%s/evidence" % DOC_ID, headers=bearer(auditor), auth=False)
    expect_problem(r, 403, "forbidden")


def test_verify_accepts():
    for extra in ((), ("--document", t("doc.pdf"))):
        r = verify(t("good.asics"), *extra)
        out = r.stdout.decode()
        check(r.returncode == 0 and out.rstrip().endswith("verified"), "the bundle was refused", out, r.stderr)
        for line in ("ok   container", "ok   seal: CMS signature", "signing-certificate-v2", "ok   message imprint",
                     "ok   checkpoint", "document.create"):
            check(line in out, "missing check %r" % line, out)
    r = verify(t("good.asics"), ca=False, log_key=False)
    check(r.returncode == 0 and b"the bundled CA only" in r.stdout, "without --ca", r.stdout, r.stderr)


def test_refusals():
    good = read_zip(t("good.asics"))
    before = hashlib.sha256(open(t("good.asics"), "rb").read()).hexdigest()
    name = "facture 2026-001.pdf"
    changed = DOC[:-1] + bytes([DOC[-1] ^ 1])
    refused(verify(write_zip(t("doc-changed.asics"), replace(good, name, changed))), "seal")
    with open(t("other.pdf"), "wb") as f:
        f.write(changed)
    refused(verify(t("good.asics"), "--document", t("other.pdf")), "is not the document of the bundle")
    sig = dict(good)["META-INF/signature.p7s"]
    i, n = token_span(sig)
    flipped = bytearray(sig)
    flipped[i - 10] ^= 0x01  # inside the signature value, just before the unsigned attributes
    refused(verify(write_zip(t("sig-changed.asics"), replace(good, "META-INF/signature.p7s", bytes(flipped)))), "")
    # a time-stamp over something else: another seal's token (same length) put in this one
    other = None
    # (a token's length varies with its serial, its time's fraction and its ECDSA signature: up to
    # 64 seals are tried, so that a run where none matches is too rare to be seen)
    for k in range(64):
        oid = V.upload_ok(os.urandom(2000 + k), name="other-%d.pdf" % k)["id"]
        evidence(V, oid, t("other.asics"))
        osig = dict(read_zip(t("other.asics")))["META-INF/signature.p7s"]
        j, m = token_span(osig)
        if m == n:
            other = osig[j:j + m]
            break
    check(other is not None, "no other token of the same length")
    swapped = sig[:i] + other + sig[i + n:]
    refused(verify(write_zip(t("ts-other.asics"), replace(good, "META-INF/signature.p7s", swapped))),
            "message imprint")
    # a seal whose certificate had expired a year before its time-stamp (made with the vault's CA
    # and TSA keys by reseal_tool, as the signer would)
    k = lambda n: os.path.join(V.data, "keys", n)
    r = subprocess.run([RESEAL, "expired", k("ca.key"), k("ca.pem"), k("tsa.key"), k("tsa.pem"), t("doc.pdf"),
                        t("expired.p7s")], capture_output=True, timeout=60)
    check(r.returncode == 0, "reseal_tool failed", r.stderr)
    refused(verify(write_zip(t("expired.asics"),
                             replace(good, "META-INF/signature.p7s", open(t("expired.p7s"), "rb").read()))),
            "certificate has expired")
    # another CA, another log key
    refused(subprocess.run([BINARY, "verify", t("good.asics"), "--ca", os.path.join(W.data, "keys", "ca.pem")],
                           capture_output=True, timeout=60), "certificate verify error")
    refused(subprocess.run([BINARY, "verify", t("good.asics"), "--log-key", os.path.join(W.data, "keys", "log.vkey")],
                           capture_output=True, timeout=60), "the checkpoint's signature does not verify")
    # damaged zips
    raw = open(t("good.asics"), "rb").read()
    with open(t("truncated.asics"), "wb") as f:
        f.write(raw[:len(raw) - 200])
    refused(verify(t("truncated.asics")), "no ZIP end record")
    flip = bytearray(raw)
    at = raw.find(b"BEGIN CERTIFICATE") + 40
    flip[at] ^= 0x20
    with open(t("flipped.asics"), "wb") as f:
        f.write(bytes(flip))
    refused(verify(t("flipped.asics")), "CRC-32")
    refused(verify(write_zip(t("extra.asics"), good + [("META-INF/extra.txt", b"x")])),
            "an unexpected file in META-INF: META-INF/extra.txt")
    refused(verify(write_zip(t("missing.asics"), [e for e in good if e[0] != "META-INF/log.vkey"])),
            "META-INF/log.vkey is missing")
    refused(verify(write_zip(t("two-docs.asics"), good + [("second.pdf", b"x")])), "more than one document")
    refused(verify(write_zip(t("not-first.asics"), good[1:2] + good[:1] + good[2:])), "mimetype is not the first")
    # the checkpoint time-stamp of another bundle (another checkpoint)
    ots = dict(read_zip(t("other.asics")))["META-INF/checkpoint.tsr"]
    refused(verify(write_zip(t("cts-other.asics"), replace(good, "META-INF/checkpoint.tsr", ots))),
            "checkpoint time-stamp")
    # an audit entry swapped for another document's: its bytes with this proof, then with its own proof
    audit = json.loads(dict(good)["META-INF/audit.json"])
    oaudit = json.loads(dict(read_zip(t("other.asics")))["META-INF/audit.json"])
    fake = json.loads(json.dumps(audit))
    fake["entries"][0]["entry"] = oaudit["entries"][0]["entry"]
    refused(verify(write_zip(t("entry-swap.asics"), replace(good, "META-INF/audit.json", json.dumps(fake).encode()))),
            "does not lead to the checkpoint's root")
    # a fresh bundle of this document, whose checkpoint covers the other document's entries too
    good2 = read_zip(evidence(V, DOC_ID, t("good2.asics")))
    audit = json.loads(dict(good2)["META-INF/audit.json"])
    fake = json.loads(json.dumps(audit))
    oidx = oaudit["entries"][0]["index"]
    size = audit["checkpoint_size"]
    check(oidx < size, "the other document's entry is not under this checkpoint")
    if True:
        p = V.request("GET", "/v1/audit/proof/inclusion?index=%d&size=%d" % (oidx, size)).json()
        fake["entries"][0] = {"index": oidx, "entry": oaudit["entries"][0]["entry"],
                              "inclusion_proof": p.get("proof", p.get("hashes", []))}
        refused(verify(write_zip(t("entry-other.asics"),
                                 replace(good2, "META-INF/audit.json", json.dumps(fake).encode()))),
                "about another document")
    check(hashlib.sha256(open(t("good.asics"), "rb").read()).hexdigest() == before, "verify changed the bundle")


def test_zip64_layout():
    """The ZIP64 records a bundle gets from 4 GiB on, forced on a small one: Python's zipfile reads
    it, and coffre verify accepts it; the same entries without ZIP64 too."""
    good = read_zip(t("good.asics"))
    d = t("parts")
    os.makedirs(d, exist_ok=True)
    args = []
    for i, (name, data) in enumerate(good):
        p = os.path.join(d, "%d" % i)
        with open(p, "wb") as f:
            f.write(data)
        args.append("%s=%s" % (name, p))
    check(good[-1][0] == "facture 2026-001.pdf", "the document is not the last entry")
    for flag, out in ((["--zip64"], t("z64.asics")), ([], t("z32.asics"))):
        r = subprocess.run([ZIPW, *flag, out, *args], capture_output=True, timeout=60)
        check(r.returncode == 0, "zipw_tool failed", r.stderr)
        raw = open(out, "rb").read()
        check((b"PK\x06\x06" in raw and b"PK\x06\x07" in raw) == bool(flag), "ZIP64 records present: %s" % flag)
        with zipfile.ZipFile(out) as z:
            check(z.testzip() is None and z.read("facture 2026-001.pdf") == DOC, "zipfile reads it wrong")
        r = verify(out)
        check(r.returncode == 0, "coffre verify refused a %s bundle" % ("ZIP64" if flag else "plain"),
              r.stdout[-1500:], r.stderr)


def test_no_bundle():
    expect_problem(V.request("GET", "/v1/documents/%s/evidence" % ("0" * 32)), 404, "not-found")
    u = Vault(BINARY)
    try:
        conf = os.path.join(u.data, "coffre.conf")
        text = open(conf).read()
        check("enabled = yes" in text, "no [seal] enabled line", text)
        with open(conf, "w") as f:
            f.write(text.replace("enabled = yes", "enabled = no"))
        u.start()
        unsealed = u.upload_ok(b"stored without a seal\n")["id"]
        expect_problem(u.request("GET", "/v1/documents/%s/evidence" % unsealed), 409, "not-sealed")
    finally:
        u.close()
    r = V.cli("evidence", "0" * 32, "-o", t("none.asics"))
    check(r.returncode == 1 and not os.path.exists(t("none.asics")), "a missing document gave a file", r.stderr)


def test_large_document_flat_memory():
    size = 300 << 20
    r, _ = V.stream_upload({"name": "big.bin"}, random_chunks(size, seed=7), length=size)
    check(r is not None and r.status == 201, "big upload", r)
    big = r.json()["id"]
    before = vm_hwm_kib(V.proc.pid)
    out = evidence(V, big, t("big.asics"))
    grew = vm_hwm_kib(V.proc.pid) - before
    check(os.path.getsize(out) > size, "the bundle is smaller than the document")
    check(grew < 64 * 1024, "the server's peak memory grew by %d KiB for a %d MiB bundle" % (grew, size >> 20))
    r = verify(out)
    check(r.returncode == 0, "the large bundle was refused", r.stdout[-2000:], r.stderr)


if __name__ == "__main__":
    try:
        setup()
        rc = run_tests([test_bundle_layout_and_openssl, test_who_reads_it, test_verify_accepts, test_refusals, test_zip64_layout,
                        test_no_bundle,
                        test_large_document_flat_memory])
    finally:
        for v in (V, W):
            if v:
                v.close()
        if TMP:
            shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(exit_status(rc))
