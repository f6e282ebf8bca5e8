"""The dependency audit ``scripts/test.sh`` runs: ``pip-audit`` over the installed packages.

pip-audit needs a vulnerability database on the network: OSV (``api.osv.dev``) or PyPI's
JSON API (``pypi.org/pypi/NAME/VERSION/json``). This script first asks each for a release
known to be vulnerable (jinja2 2.4.1); it runs ``pip-audit --strict`` against the first that
answers with that advisory (``--strict``: a package that could not be audited fails the run).
When neither answers, it prints why and skips, with exit 0, unless ``PRSM_AUDIT=required``
(then exit 1). On this project's machines PyPI is a mirror of the package index only (the
JSON API answers 404) and OSV's host does not resolve, so the audit can run only where one of
those is reachable.

Always, with no network: ``uv.lock`` must pin no release in :data:`KNOWN_BAD` (releases
known to have been malicious).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: releases that were published malicious (package name → versions)
KNOWN_BAD = {"litellm": {"1.82.7", "1.82.8"}}  # a credential stealer on the registry
PROBE = ("jinja2", "2.4.1")  # has published advisories in both databases
TIMEOUT = 10.0


def locked_bad(lock_path: Path = ROOT / "uv.lock") -> list[str]:
    """``name==version`` of every locked release in :data:`KNOWN_BAD`."""
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    return [
        f"{p['name']}=={p['version']}"
        for p in lock.get("package", [])
        if p.get("version") in KNOWN_BAD.get(p["name"], ())
    ]


def _probe_osv() -> None:
    name, version = PROBE
    query = {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}
    request = urllib.request.Request(
        "https://api.osv.dev/v1/query",
        data=json.dumps(query).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
        if not json.load(r).get("vulns"):
            raise RuntimeError(f"OSV knows no advisory for {name} {version}")


def _probe_pypi() -> None:
    name, version = PROBE
    url = f"https://pypi.org/pypi/{name}/{version}/json"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
        if not json.load(r).get("vulnerabilities"):
            raise RuntimeError(f"PyPI's JSON API lists no advisory for {name} {version}")


def reachable_service() -> tuple[str | None, list[str]]:
    """The first vulnerability service that answers the probe, and why the others did not."""
    why = []
    for service, probe in (("osv", _probe_osv), ("pypi", _probe_pypi)):
        try:
            probe()
        except (OSError, urllib.error.URLError, ValueError, RuntimeError) as exc:
            why.append(f"{service}: {type(exc).__name__}: {exc}")
            continue
        return service, why
    return None, why


def main() -> int:
    bad = locked_bad()
    if bad:
        print(f"audit: uv.lock pins known-malicious releases: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"audit: uv.lock pins none of the known-malicious releases {KNOWN_BAD}")
    service, why = reachable_service()
    if service is None:
        print("audit: pip-audit SKIPPED: no vulnerability database is reachable from here:")
        for line in why:
            print(f"audit:   {line}")
        if os.environ.get("PRSM_AUDIT") == "required":
            print("audit: PRSM_AUDIT=required: failing", file=sys.stderr)
            return 1
        return 0
    cmd = [sys.executable, "-m", "pip_audit", "--strict", "--skip-editable",
           "--vulnerability-service", service, "--progress-spinner", "off"]  # fmt: skip
    print(f"audit: {' '.join(cmd[1:])}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
