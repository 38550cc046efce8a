#!/usr/bin/env python3
"""test_cosig_file.py: DATA/audit/cosignatures is checked again at every start.

A witness cosigns a checkpoint; while the server is stopped, the file gets a forged line (one
byte of a real signature changed), a line for a checkpoint that does not exist, a malformed line
and a torn last line. At the next start each is reported in the log, moved to
audit/cosignatures.rejected and not served; the real cosignature is still served and kept.
With [audit] cosigned_checkpoints = 2, a third cosigned checkpoint drops the oldest one's
cosignature, in the file and in what is served, and the bound holds across a restart.
Usage: test_cosig_file.py PATH/TO/coffre
"""

import base64
import os
import sys

import test_witness as tw
from harness import check, exit_status, run_tests


def fresh_vault(extra_audit=None):
    """A new vault with a witness configured (test_witness's setup), optionally more [audit] lines.
    Returns the Witnessed pair; the caller closes it."""
    w = tw.Witnessed()
    if extra_audit:
        check(w.vault.stop() == 0, "SIGTERM did not exit 0")
        conf = os.path.join(w.vault.data, "coffre.conf")
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("[audit]\n", "[audit]\n" + extra_audit + "\n", 1))
        w.vault.start()
    return w


def cosign(w):
    return w.cosigned_ok(*w.run(w.vault, "--log-key", w.log_key))


def test_bad_lines_reported_and_not_served():
    with fresh_vault() as w:
        bad_lines(w, w.vault)


def bad_lines(w, v):
    tw.upload_n(v, 3, "cosig")
    tw.wait_checkpoint(v, 3)
    size = cosign(w)
    check(v.stop() == 0, "SIGTERM did not exit 0")
    path = os.path.join(v.data, "audit", "cosignatures")
    with open(path) as f:
        good = f.read()
    check(good.count("\n") == 1 and good.startswith("%d " % size), "unexpected cosignatures file", good)
    sz, line = good.rstrip("\n").split(" ", 1)
    dash, name, sig = line.split(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    forged = "%s %s %s %s\n" % (sz, dash, name, base64.b64encode(bytes(raw)).decode())
    nowhere = "%d %s\n" % (size + 1000, line)
    malformed = "twelve %s\n" % line
    torn = "%s %s" % (sz, line[:20])
    with open(path, "a") as f:
        f.write(forged + nowhere + malformed + torn)
    v.start()
    log = v.log_text().decode(errors="replace")
    for n, why in ((2, "does not verify"), (3, "no such checkpoint"), (4, "malformed size"), (5, "torn")):
        check("audit/cosignatures line %d: %s" % (n, why) in log, "line %d (%s) not reported" % (n, why),
              v.log_tail(20))
    r = v.request("GET", "/v1/audit/checkpoint?size=%d" % size)
    check(r.status == 200, "GET checkpoint?size=%d: %d" % (size, r.status), r)
    lines = w.lines(r.body.decode())
    check(lines == [line], "served cosignatures are not exactly the real one", r.body)
    with open(path) as f:
        check(f.read() == good, "the cosignatures file does not hold exactly the verified line")
    with open(os.path.join(v.data, "audit", "cosignatures.rejected")) as f:
        rej = f.read()
    check(rej == forged + nowhere + malformed + torn + "\n", "rejected lines not kept aside", rej)


def test_bounded_to_the_newest_checkpoints():
    with fresh_vault("cosigned_checkpoints = 2") as w:
        bounded(w, w.vault)


def bounded(w, v):
    sizes = []
    for i in range(3):
        tw.upload_n(v, 2, "bound%d" % i)
        # a checkpoint past the last one cosigned (an upload is two entries: create and seal)
        tw.wait_checkpoint(v, (sizes[-1] if sizes else 0) + 1, exact=False)
        sizes.append(cosign(w))
    check(len(set(sizes)) == 3, "the witness did not cosign three checkpoints", sizes)

    def served(size):
        r = v.request("GET", "/v1/audit/checkpoint?size=%d" % size)
        check(r.status == 200, "GET checkpoint?size=%d: %d" % (size, r.status), r)
        return w.lines(r.body.decode())

    def on_disk():
        with open(os.path.join(v.data, "audit", "cosignatures")) as f:
            return sorted(int(l.split(" ", 1)[0]) for l in f.read().splitlines())

    for when in ("running", "after a restart"):
        check(served(sizes[0]) == [], "%s: the oldest checkpoint's cosignature is still served" % when)
        check(len(served(sizes[1])) == 1 and len(served(sizes[2])) == 1,
              "%s: the two newest cosignatures are not served" % when)
        check(on_disk() == sizes[1:], "%s: the file holds sizes %s, want %s" % (when, on_disk(), sizes[1:]))
        if when == "running":
            check(v.stop() == 0, "SIGTERM did not exit 0")
            v.start()
    check(b"audit/cosignatures line" not in v.log_text(), "a rewritten file had lines that did not verify")


def main():
    return exit_status(run_tests([test_bad_lines_reported_and_not_served,
                                  test_bounded_to_the_newest_checkpoints]))


if __name__ == "__main__":
    sys.exit(main())
