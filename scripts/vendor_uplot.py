"""Vendors uPlot's built files into the dashboard room (``python scripts/vendor_uplot.py``).

The page draws its charts with uPlot (npm ``uplot``, MIT, by Leon Sorokin): small (51 kB
minified), fast on canvas, no dependencies. The gateway serves it from the package, so the page
fetches nothing from the internet. This script runs ``npm pack uplot@VERSION`` in a temporary
directory, checks the tarball against the registry's pinned integrity (sha512), and copies
``dist/uPlot.iife.min.js``, ``dist/uPlot.min.css`` and ``LICENSE`` to
``src/prsm/performance/dashboard/static/``, checking each file's SHA-256. The version and the
digests live in ``prsm.performance.dashboard._page`` (``UPLOT_*``); to move to another version,
change them there and re-run. ``--check`` only compares the packaged files with the pins.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prsm.performance.dashboard._page import (  # noqa: E402
    UPLOT_FILES,
    UPLOT_INTEGRITY,
    UPLOT_VERSION,
)

STATIC = ROOT / "src" / "prsm" / "performance" / "dashboard" / "static"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check() -> int:
    bad = [n for n, (_, d) in UPLOT_FILES.items() if sha256((STATIC / n).read_bytes()) != d]
    for name in bad:
        print(f"{STATIC / name}: SHA-256 differs from the pin for uplot@{UPLOT_VERSION}")
    if not bad:
        print(f"uplot@{UPLOT_VERSION}: every vendored file matches its pinned SHA-256")
    return 1 if bad else 0


def vendor() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["npm", "pack", f"uplot@{UPLOT_VERSION}", "--silent"],
            cwd=tmp, check=True, capture_output=True, text=True,
        )  # fmt: skip
        tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
        data = tarball.read_bytes()
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if integrity != UPLOT_INTEGRITY:
            print(f"{tarball.name}: integrity {integrity} is not the pinned {UPLOT_INTEGRITY}")
            return 1
        with tarfile.open(tarball) as tar:
            for name, (member, digest) in UPLOT_FILES.items():
                extracted = tar.extractfile(member)
                if extracted is None:
                    print(f"{member} is not a file in {tarball.name}")
                    return 1
                body = extracted.read()
                if sha256(body) != digest:
                    print(f"{member}: SHA-256 {sha256(body)} is not the pinned {digest}")
                    return 1
                (STATIC / name).write_bytes(body)
                print(f"{STATIC / name}  uplot@{UPLOT_VERSION}  sha256 {digest}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; no npm")
    return check() if parser.parse_args().check else vendor()


if __name__ == "__main__":
    sys.exit(main())
