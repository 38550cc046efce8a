#!/usr/bin/env python3
"""test_field_names.py: document names are encrypted at rest and found by exact name.

Uploads documents with distinctive names, stops the server and reads every file under the data
directory (meta.db and its -wal/-shm, keyring.db, the audit log, the objects...) for the names,
in UTF-8 as given, lower and upper case: none may be there, nor in `sqlite3 meta.db .dump` or the
server's log. The same
after the one-time sealing of a vault whose meta.db was written before names were encrypted
(schema version 3: the test gives meta.db back the documents table of version 2, the accounts of version 3 with Python's
sqlite3, clear TEXT names and no blind index, and that version number). GET /v1/documents?name=N finds exactly the documents of that name.
Usage: test_field_names.py PATH/TO/coffre
"""

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import urllib.parse

from harness import Vault, check, exit_status, expect_problem, list_files, run_tests

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/coffre"

# The schema version just before document names were sealed, and the documents table it had
# (src/store/sqlite_schema.c, migration 1; shipped migrations are never edited).
PRE_NAMES_VERSION = 3
DOCUMENTS_V2 = """
CREATE TABLE documents (
  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),
  org_id TEXT NOT NULL REFERENCES orgs (id),
  name TEXT NOT NULL,
  class TEXT NOT NULL,
  size INTEGER NOT NULL CHECK (size >= 0),
  sha256 BLOB NOT NULL CHECK (length(sha256) = 32),
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL);
CREATE INDEX documents_by_org_time ON documents (org_id, created_at DESC, id DESC);
CREATE INDEX documents_by_org_class_time ON documents (org_id, class, created_at DESC, id DESC);
"""


def distinctive_names():
    tag = secrets.token_hex(5)
    return ["Bulletin de paie Zoé Lefèvre-%s.pdf" % tag,
            "Facture DUPONT Émilie %s.pdf" % tag,
            "contrat-ASTRID-kowalczyk-%s" % tag]


def needles(names):
    """Each name's bytes as given, lower- and upper-cased (UTF-8), and its distinctive tag."""
    out = set()
    for n in names:
        for v in (n, n.lower(), n.upper()):
            out.add(v.encode())
        out.add(n.rsplit(" ", 1)[-1].encode())  # a part of it: the unique tag and suffix
    return out


def files_holding(data, needles_):
    """The (file, needle) pairs where a file under data contains a needle."""
    found = []
    for rel in list_files(data):
        with open(os.path.join(data, rel), "rb") as f:
            blob = f.read()
        for nd in needles_:
            if nd in blob:
                found.append((rel, nd))
    return found


def lookup(v, name, **extra):
    q = {"name": name}
    q.update(extra)
    return v.request("GET", "/v1/documents?" + urllib.parse.urlencode(q))


def lookup_ids(v, name):
    r = lookup(v, name)
    check(r.status == 200, "lookup of a name: status %d" % r.status, r)
    return sorted(d["id"] for d in r.json()["documents"])


def upload_all(v, names, copies=1):
    ids = {}
    for n in names:
        for i in range(copies):
            ids.setdefault(n, []).append(v.upload_ok(("content of %s #%d" % (n, i)).encode(), name=n)["id"])
    return ids


def check_names_served(v, ids):
    for n, want in ids.items():
        check(lookup_ids(v, n) == sorted(want), "?name= does not find exactly the documents named so", n)
        for i in want:
            meta = v.request("GET", "/v1/documents/%s" % i).json()
            check(meta.get("name") == n, "document %s has name %r, not %r" % (i, meta.get("name"), n))


def check_nothing_on_disk(v, names, expected_rows):
    found = files_holding(v.data, needles(names))
    check(not found, "a document name is stored in clear", found)
    # what an administrator would look at: the SQL dump of the metadata (after the file grep,
    # since the sqlite3 shell may leave -wal/-shm files of its own)
    r = subprocess.run(["sqlite3", "-readonly", os.path.join(v.data, "meta.db"), ".dump"], capture_output=True,
                       timeout=60)
    rows = len(re.findall(rb'INSERT INTO "?documents"? VALUES', r.stdout))
    check(r.returncode == 0 and rows == expected_rows, "sqlite3 .dump: %d document rows, expected %d"
          % (rows, expected_rows), r.stderr.decode(errors="replace"))
    dumped = [nd for nd in needles(names) if nd in r.stdout]
    check(not dumped, "a document name is in sqlite3 .dump of meta.db", dumped)
    log = v.log_text()
    leaked = [nd for nd in needles(names) if nd in log]
    check(not leaked, "a document name is in the server log", leaked)


# -- tests -------------------------------------------------------------------------------

def test_names_not_on_disk():
    names = distinctive_names()
    with Vault(BINARY) as v:
        v.start()
        ids = upload_all(v, names, copies=2)
        check_names_served(v, ids)
        # the listing, a download and a deletion go through the name too
        listed = {d["id"]: d["name"] for d in v.list_all()}
        for n, want in ids.items():
            for i in want:
                check(listed.get(i) == n, "the listing shows %r for %s" % (listed.get(i), i))
        check(v.download(ids[names[0]][0]).status == 200, "download failed")
        gone = ids[names[2]].pop()
        r = v.request("DELETE", "/v1/documents/%s" % gone)
        check(r.status == 204, "deletion: status %d" % r.status, r)
        check(lookup_ids(v, names[2]) == ids[names[2]], "a deleted document is still found by name")
        check(v.stop() == 0, "the server did not stop cleanly")
        check_nothing_on_disk(v, names, 2 * len(names) - 1)


def test_lookup_by_exact_name():
    names = distinctive_names()
    with Vault(BINARY) as v:
        v.start()
        ids = upload_all(v, names[:2], copies=3)
        other = v.upload_ok(b"x", name=names[2])["id"]
        check(lookup_ids(v, names[0]) == sorted(ids[names[0]]), "the first name's documents")
        check(lookup_ids(v, names[2]) == [other], "a name of one document")
        # exact: no prefix, no other case, no other spacing
        for near in (names[0][:-4], names[0].lower(), names[0].upper(), names[0] + " ", " " + names[0],
                     "Bulletin de paie"):
            check(lookup_ids(v, near) == [], "a near name matches", near)
        check(lookup_ids(v, "never-uploaded-%s.pdf" % secrets.token_hex(4)) == [], "an unknown name matches")
        # with the other filters and paged
        check(lookup_ids(v, names[1]) == sorted(ids[names[1]]), "the second name's documents")
        r = lookup(v, names[1], **{"class": "no-such-class"})
        check(r.status == 200 and r.json()["documents"] == [], "class and name together", r)
        seen, cursor = [], None
        for _ in range(10):
            extra = {"limit": "1"}
            if cursor:
                extra["cursor"] = cursor
            page = lookup(v, names[1], **extra).json()
            seen += [d["id"] for d in page["documents"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        check(sorted(seen) == sorted(ids[names[1]]) and len(seen) == 3, "paging a name lookup", seen)
        # the CLI's `coffre ls --name`
        r = v.cli("ls", "--name", names[0], "--json")
        check(r.returncode == 0, "coffre ls --name: exit %d" % r.returncode, r.stderr.decode(errors="replace"))
        got = sorted(json.loads(line)["id"] for line in r.stdout.decode().splitlines() if line.strip())
        check(got == sorted(ids[names[0]]), "coffre ls --name lists %r" % got)
        r = v.cli("ls", "--name", names[0])
        check(r.returncode == 0 and names[0].encode() in r.stdout and names[1].encode() not in r.stdout,
              "coffre ls --name table", r.stdout.decode(errors="replace"))
        r = v.cli("ls", "--name", "")
        check(r.returncode == 2, "coffre ls --name '': exit %d, expected 2 (usage)" % r.returncode)
        r = v.cli("ls", "--name", "x" * 256)
        check(r.returncode == 1 and b"255" in r.stderr, "coffre ls with an over-long name: exit %d" % r.returncode,
              r.stderr.decode(errors="replace"))
        # the same names after a key rotation and a restart (the field keys are rewrapped under
        # the new KEK version, not changed, and come back from the keyring)
        v.stop()
        r = v.cli("key", "rotate", "--data", v.data)
        check(r.returncode == 0, "coffre key rotate failed", r.stderr.decode(errors="replace"))
        v.start()
        check(lookup_ids(v, names[0]) == sorted(ids[names[0]]), "lookup after a key rotation")
        check_names_served(v, ids)


def test_bad_name_refused():
    with Vault(BINARY) as v:
        v.start()
        v.upload_ok(b"x", name="a.pdf")
        for raw in ("", "a%01b", "%ff%fe", "a%7f", "x" * 256):
            r = v.request("GET", "/v1/documents?name=" + (raw if "%" in raw else urllib.parse.quote(raw)))
            expect_problem(r, 400, "bad-request")
        check(lookup_ids(v, "x" * 255) == [], "a 255-byte name is a valid name")


def downgrade_meta(data, names_by_id):
    """Turns meta.db into what schema version PRE_NAMES_VERSION wrote: the documents table of
    that version, clear TEXT names, no blind index, no seals table (version 5 brought it); every
    other table as it is."""
    db = sqlite3.connect(os.path.join(data, "meta.db"), timeout=30)
    try:
        rows = db.execute("SELECT id, org_id, class, size, sha256, created_at, created_by FROM documents").fetchall()
        check(len(rows) == len(names_by_id), "rows in meta.db: %d" % len(rows))
        # the tables of later versions (seals; retention: holds, tombstones) go too
        db.executescript("BEGIN; DROP TABLE seals; DROP TABLE documents; DROP TABLE holds; DROP TABLE tombstones;" +
                         DOCUMENTS_V2 +
                         "DELETE FROM schema_migrations WHERE version > %d;"
                         "DELETE FROM settings WHERE key = 'document_names'; COMMIT;" % PRE_NAMES_VERSION)
        with db:
            for (i, org, cls, size, sha, at, by) in rows:
                db.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (i, org, names_by_id[i], cls, size, sha, at, by))
        db.execute("PRAGMA user_version = %d" % PRE_NAMES_VERSION)
    finally:
        db.close()


def test_older_vault_sealed_at_open():
    names = distinctive_names()
    with Vault(BINARY) as v:
        v.start()
        ids = upload_all(v, names, copies=2)
        v.stop()
        downgrade_meta(v.data, {i: n for n, l in ids.items() for i in l})
        # the fixture is what it should be: the names are in clear in meta.db now
        found = files_holding(v.data, needles(names))
        check({f for f, _ in found} == {"meta.db"}, "the downgraded vault holds clear names in meta.db only",
              found)
        with sqlite3.connect(os.path.join(v.data, "meta.db")) as db:
            check(db.execute("PRAGMA user_version").fetchone()[0] == PRE_NAMES_VERSION, "not a pre-names file")
        v.start()
        check_names_served(v, ids)
        check(v.stop() == 0, "the server did not stop cleanly")
        check_nothing_on_disk(v, names, 2 * len(names))
        with sqlite3.connect(os.path.join(v.data, "meta.db")) as db:
            check(db.execute("PRAGMA user_version").fetchone()[0] > PRE_NAMES_VERSION, "not migrated")
            check(db.execute("SELECT count(*) FROM documents WHERE typeof(name) != 'blob' OR name_bi IS NULL")
                  .fetchone()[0] == 0, "a row is still not sealed")
        # and it stays served after another start (no second sealing)
        v.start()
        check_names_served(v, ids)
        check(v.log_text().count(b"sealed the names of %d documents" % (2 * len(names))) == 1,
              "the sealing is not reported once, at the first start", v.log_tail())


def main():
    return run_tests([test_names_not_on_disk, test_lookup_by_exact_name, test_bad_name_refused,
                      test_older_vault_sealed_at_open])


if __name__ == "__main__":
    sys.exit(exit_status(main()))
