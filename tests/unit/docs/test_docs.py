#!/usr/bin/env python3
"""test_docs.py: the documentation says what the code does, where a machine can tell.

Reads the sources (the route table, the problem answers, the constants) and the documents
(docs/openapi.yaml, docs/*.md, README.md) of the checkout, and fails on each disagreement:
- every route of src/api/routes.c is in the OpenAPI file, and every OpenAPI operation is routed;
- every (status, problem slug) the code answers is in docs/api.md's table and the OpenAPI
  Problem description, and nothing is listed there that the code never answers;
- the checkpoint cadence, the cosignature cap, the `limit` bounds and the tile width limit are
  the code's constants wherever the documents give them;
- the audit append figures of docs/audit.md and docs/performance.md are the same;
- the HSTS promise names the libmicrohttpd exception; performance.md reproduces with make build's build type and each set of figures names its own.
usage: test_docs.py SOURCE_ROOT
"""
import glob
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
failures = []
checks = 0


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)


def constant(rel, name):
    m = re.search(r"#define\s+%s\s+\(?\s*(\d+)u?\b" % name, read(rel))
    if not m:
        sys.exit("test_docs: %s not found in %s: update this test with the code" % (name, rel))
    return int(m.group(1))


def flat(text):
    return re.sub(r"\s+", " ", text)


# ---- OpenAPI operations == the route table, both ways ----

routes = set(re.findall(r'\{\s*"(GET|POST|PUT|PATCH|DELETE|HEAD)",\s*"(/[^"]*)"', read("src/api/routes.c")))
check(len(routes) >= 10, "only %d routes read from src/api/routes.c: is the pattern still right?" % len(routes))
documented = set()
path = None
for line in read("docs/openapi.yaml").splitlines():
    m = re.match(r"^  (/\S*):\s*$", line)
    if m:
        path = m.group(1)
        continue
    if re.match(r"^\S", line):
        path = None  # left the paths section
    m = re.match(r"^    (get|post|put|patch|delete|head):\s*$", line)
    if path and m:
        documented.add((m.group(1).upper(), path))
for r in sorted(routes - documented):
    check(False, "route %s %s is not in docs/openapi.yaml" % r)
for d in sorted(documented - routes):
    check(False, "docs/openapi.yaml documents %s %s, which src/api/routes.c does not route" % d)
check(len(documented) >= 10, "only %d operations read from docs/openapi.yaml" % len(documented))

# ---- problem answers == docs/api.md table == OpenAPI Problem slugs ----

answered = set()
for rel in glob.glob(os.path.join(ROOT, "src", "**", "*.c"), recursive=True):
    with open(rel, encoding="utf-8") as f:
        text = f.read()
    answered |= {(int(s), slug) for s, slug in
                 re.findall(r'http_respond_problem(?:_extra)?\(\s*\w+,\s*(\d{3}),\s*"([a-z-]+)"', text)}
check(len(answered) >= 8, "only %d problem answers read from src/" % len(answered))
table = {(int(s), slug) for s, slug in re.findall(r"^\| (\d{3}) \| `([a-z-]+)` \|", read("docs/api.md"), re.M)}
for a in sorted(answered - table):
    check(False, "the code answers %d %s, docs/api.md's table does not list it" % a)
for t in sorted(table - answered):
    check(False, "docs/api.md lists %d %s, which no code answers" % t)
m = re.search(r"`urn:coffre:problem:` and one of ([a-z, -]+)\.", flat(read("docs/openapi.yaml")))
check(m is not None, "the Problem type description of docs/openapi.yaml lists no slugs")
if m:
    slugs = {s.strip() for s in m.group(1).split(",")}
    check(slugs == {s for _, s in answered},
          "OpenAPI Problem slugs differ from the code's: missing %s, extra %s" %
          (sorted({s for _, s in answered} - slugs), sorted(slugs - {s for _, s in answered})))

# ---- constants quoted in the documents ----

spacing = constant("src/core/ledger.c", "CHECKPOINT_MIN_SPACING_MS")
per_second = 1000 // spacing
words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 10: "ten"}
sec = flat(read("docs/security.md"))
check("within about %d ms of new entries (at most %s a second)" % (spacing, words.get(per_second, per_second)) in sec,
      "docs/security.md must give the checkpoint cadence as %d ms, %s a second" % (spacing, words.get(per_second)))
aud = flat(read("docs/audit.md"))
check("at most every %d ms" % spacing in aud, "docs/audit.md must give the checkpoint spacing as %d ms" % spacing)
check("%s a second" % words.get(per_second) in aud, "docs/audit.md must say %s checkpoints a second" % words.get(per_second))
for rel in ("docs/security.md", "docs/audit.md", "docs/operations.md", "docs/api.md", "README.md"):
    for ms in re.findall(r"checkpoint[^.]{0,60}?within about (\d+) ms", flat(read(rel))):
        check(int(ms) == spacing, "%s says checkpoints within %s ms, the code spaces them %d ms" % (rel, ms, spacing))

cap = constant("src/core/ledger.c", "COSIG_PER_CHECKPOINT")
ops = flat(read("docs/operations.md"))
check("At most %d cosignatures are kept per checkpoint" % cap in ops,
      "docs/operations.md must give the cosignature cap as %d per checkpoint" % cap)
ncp = constant("src/core/ledger.c", "COSIG_CHECKPOINTS")
check("kept for the newest %d checkpoints" % ncp in ops,
      "docs/operations.md must say cosignatures are kept for the newest %d checkpoints" % ncp)
check("at most %d per checkpoint" % cap in aud, "docs/audit.md must give the cosignature cap as %d" % cap)
check(not re.search(r"cosignatures[^.]*over the life of the vault", ops),
      "docs/operations.md still speaks of a cosignature cap over the life of the vault")

m = re.search(r"l < (\d+) \|\| l > (\d+)", read("src/api/documents.c"))
check(m is not None, "the limit bounds are not found in src/api/documents.c")
if m:
    lo, hi = int(m.group(1)), int(m.group(2))
    check("`limit` %d–%d" % (lo, hi) in flat(read("docs/api.md")), "docs/api.md must give limit as %d–%d" % (lo, hi))
    check("`limit` %d–%d" % (lo, hi) in ops, "docs/operations.md must give limit as %d–%d" % (lo, hi))
    check("- name: limit in: query schema: { type: integer, minimum: %d, maximum: %d" % (lo, hi)
          in flat(read("docs/openapi.yaml")), "docs/openapi.yaml must give limit as %d..%d" % (lo, hi))

digits = constant("src/crypto/totp.h", "TOTP_DIGITS")
step = constant("src/crypto/totp.h", "TOTP_STEP_SECONDS")
nrec = constant("src/crypto/totp.h", "TOTP_RECOVERY_CODES")
sbytes = constant("src/crypto/totp.h", "TOTP_SECRET_BYTES")
check("%d digits, %d-second steps" % (digits, step) in sec,
      "docs/security.md must give TOTP as %d digits, %d-second steps" % (digits, step))
check("The secret is %d random bytes (%d bits" % (sbytes, 8 * sbytes) in sec,
      "docs/security.md must give the TOTP secret as %d random bytes" % sbytes)
check("Confirming enrolment returns %d one-time codes" % nrec in sec,
      "docs/security.md must say enrolment returns %d recovery codes" % nrec)

width = constant("src/audit/log.h", "AUDIT_LOG_TILE_WIDTH")
api_yaml = read("docs/openapi.yaml")
check("(1..%d)" % (width - 1) in api_yaml, "docs/openapi.yaml must give the partial tile width as 1..%d" % (width - 1))
for other in re.findall(r"\b1\.\.(\d+)\b", api_yaml):
    check(int(other) == width - 1, "docs/openapi.yaml gives a width range 1..%s; the code allows 1..%d" % (other, width - 1))
for name in ("TileB", "TileC"):
    m = re.search(r"    %s:\n(?:      .*\n)*?      schema: \{ type: string, pattern: \"(.*)\" \}" % name, api_yaml)
    check(m is not None, "no pattern for %s in docs/openapi.yaml" % name)
    if m:
        pat = re.compile(m.group(1).replace("\\\\", "\\"))
        # widths are written without leading zeros; 3-digit strings are also index groups
        bad = [w for w in range(1, 100) if not pat.match(str(w))] + ([] if pat.match(str(width - 1)) else [width - 1])
        check(not bad, "%s's pattern refuses widths %r the code accepts" % (name, bad[:5]))
        check(not pat.match("0"), "%s's pattern accepts a width 0" % name)

# ---- figures that two documents give ----


def appends(text):
    m = re.search(r"durable appends, 1 / 8 / 64 writers \| ([\d,]+) / ([\d,]+) / ([\d,]+) per second", text)
    if m:
        return tuple(int(x.replace(",", "")) for x in m.groups())
    rows = [re.search(r"durable appends, %d writers? \| ([\d,]+) /s" % n, text) for n in (1, 8, 64)]
    return tuple(int(r.group(1).replace(",", "")) for r in rows) if all(rows) else None


a_aud, a_perf = appends(read("docs/audit.md")), appends(read("docs/performance.md"))
check(a_aud is not None and a_perf is not None, "append figures not found in docs/audit.md or docs/performance.md")
check(a_aud == a_perf, "append figures differ: docs/audit.md %r, docs/performance.md %r" % (a_aud, a_perf))

# ---- claims with a known exception ----

for rel in ("README.md", "docs/api.md", "docs/security.md"):
    text = flat(read(rel))
    for m in re.finditer(r"(HSTS|Strict-Transport-Security)", text):
        window = text[max(0, m.start() - 300):m.end() + 400]
        if re.search(r"[Ee]very (answer|response)", window):
            check("libmicrohttpd" in window,
                  "%s promises HSTS on every answer without naming libmicrohttpd's own answers" % rel)

perf = read("docs/performance.md")
# the command of "How to reproduce" is make build's; each set of figures names its own build
repro = re.search(r"## How to reproduce\n(.*?)\n## ", perf, re.S)
check(repro is not None, "docs/performance.md has no 'How to reproduce' section")
types = set(re.findall(r"--buildtype=(\w+)", repro.group(1).split("(`make bench`")[0])) if repro else set()
make = set(re.findall(r"meson setup \$\(BUILD\) --buildtype=(\w+)", read("Makefile")))
check(len(types) == 1 and types == make,
      "docs/performance.md's reproduce command builds %s, make build %s" % (sorted(types), sorted(make)))
for m in re.finditer(r"### Results|## Small uploads: where", perf):
    section = perf[m.start():m.start() + 600]
    check(re.search(r"\b(debugoptimized|release|debug|plain) build\b", section),
          "docs/performance.md: figures at '%s' do not name their build type" % section[:40])
check(not re.search(r"every `GET`[^.]*close", ops), "docs/operations.md still says every GET closes the connection")

# No retention is enforced (nothing in src/ refuses a deletion with 409), so no document may
# promise a 409 for a retained or held document; a deletion logs first, so a full disk is 507.
api_md = flat(read("docs/api.md"))
check(not re.search(r"409[^|.]*retained or on hold|retained or (on )?held[^.]*answers `?409", api_md),
      "docs/api.md still promises 409 for a retained or held document")
m = re.search(r"operationId: documentsDelete(.*?)\n  /", api_yaml, re.S)
check(m is not None and '"507"' in m.group(1), "docs/openapi.yaml: DELETE /v1/documents/{id} must list 507")

if failures:
    for f in failures:
        print("FAIL " + f)
    print("%d of %d checks failed" % (len(failures), checks))
    sys.exit(1)
print("ok   %d checks: the documents agree with the code" % checks)
