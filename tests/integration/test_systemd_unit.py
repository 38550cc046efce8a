#!/usr/bin/env python3
"""test_systemd_unit.py: packaging/coffre.service keeps its hardening.

Runs `systemd-analyze security --offline=true` on the unit and fails when the overall exposure
rises above MAX_EXPOSURE (docs/operations.md lists the current score), or when one of the
settings the server's own sandbox relies on is missing or changed.
Usage: test_systemd_unit.py PATH/TO/coffre.service
"""

import re
import shutil
import subprocess
import sys

from harness import check, run_tests

UNIT = sys.argv[1] if len(sys.argv) > 1 else "packaging/coffre.service"
MAX_EXPOSURE = 1.5  # systemd's scale: 0 (locked down) to 10 (UNSAFE); the unit scores 1.1


def settings():
    out = {}
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def test_exposure_below_threshold():
    analyze = shutil.which("systemd-analyze")
    check(analyze is not None, "systemd-analyze not found (Debian package systemd, see scripts/install-deps)")
    r = subprocess.run([analyze, "security", "--offline=true", "--no-pager", UNIT],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", r.stdout)
    check(m is not None, "no exposure level in the output of systemd-analyze", r.stdout[-2000:], r.stderr)
    level = float(m.group(1))
    check(level <= MAX_EXPOSURE, "exposure %.1f (%s) is above %.1f" % (level, m.group(2), MAX_EXPOSURE),
          "\n".join(l for l in r.stdout.splitlines() if l.startswith("✗")))
    # systemd's own threshold check agrees (it counts in tenths)
    r = subprocess.run([analyze, "security", "--offline=true", "--no-pager",
                        "--threshold=%d" % round(MAX_EXPOSURE * 10), UNIT],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "systemd-analyze --threshold refused the unit", r.stderr)


def test_hardening_settings():
    s = settings()
    want = {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes",
            "CapabilityBoundingSet": "", "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}
    for k, v in want.items():
        check(s.get(k) == [v], "%s=%s expected, the unit has %r" % (k, v, s.get(k)))
    filters = s.get("SystemCallFilter", [])
    check(filters and filters[0].split()[0] == "@system-service", "SystemCallFilter is not @system-service", filters)
    for call in ("landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "seccomp"):
        check(call in filters[0].split(), "the filter does not let coffre confine itself with %s" % call)
    exec_start = s.get("ExecStart", [""])[0].split()
    data = exec_start[exec_start.index("--data") + 1] if "--data" in exec_start else None
    check(data is not None and s.get("ReadWritePaths") == [data],
          "ReadWritePaths= is not the data directory of ExecStart=", s.get("ReadWritePaths"), data)


if __name__ == "__main__":
    sys.exit(run_tests([test_exposure_below_threshold, test_hardening_settings]))
