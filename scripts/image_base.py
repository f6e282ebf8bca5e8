"""A local stand-in for ``python:3.11-slim`` where no container registry can be reached.

``python3 scripts/image_base.py [--tag TAG] [--mirror URL]`` (as root, with ``debootstrap``
and ``podman``) builds Debian 12 (bookworm, ``minbase``) with Debian's Python 3.11, pip and
venv, ``ca-certificates``, ``netbase`` and ``tzdata``, and imports it as ``TAG`` (default
``localhost/prsm-base:bookworm-py311``), for ``deploy/kubernetes/Dockerfile``'s
``--build-arg PYTHON_IMAGE=TAG``. What the Dockerfile needs of its base, as the official
image has it: ``python`` and ``pip`` on ``PATH`` (here ``python`` links to Debian's
``python3``, and Debian's "externally managed" marker is removed so that pip installs into
``/usr/local`` as the official image's does), the ``venv`` module, and ``sleep`` (the pods'
``preStop``). The host's extra CA certificates (``/usr/local/share/ca-certificates``) are
added, for an HTTPS proxy that re-signs PyPI's certificates; ``apt`` sources are Debian's own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TAG = "localhost/prsm-base:bookworm-py311"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "ca-certificates,netbase,tzdata,python3,python3-venv"
EXTRA_CAS = Path("/usr/local/share/ca-certificates")
# What the official image sets (PATH with /usr/local/bin first, a UTF-8 locale) and its CMD.
CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
SETUP = """set -e
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-pip
DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -q
update-ca-certificates
rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 /usr/local/bin/python
apt-get clean
rm -rf /var/lib/apt/lists/*
"""


def _run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def sources(mirror: str) -> str:
    """The image's apt sources: the release, its updates and Debian's security archive."""
    security = mirror.rstrip("/") + "-security"
    return (
        f"deb {mirror} bookworm main\n"
        f"deb {mirror} bookworm-updates main\n"
        f"deb {security} bookworm-security main\n"
    )


def build(tag: str, mirror: str) -> None:
    """Bootstrap, set up and import the base as ``tag``."""
    with tempfile.TemporaryDirectory(prefix="prsm-base-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        _run(["nice", "-n", "19", "debootstrap", "--variant=minbase",
              f"--include={PACKAGES}", "bookworm", str(root), mirror])  # fmt: skip
        (root / "etc/apt/sources.list").write_text(sources(mirror), encoding="utf-8")
        for cert in sorted(EXTRA_CAS.glob("*.crt")):
            shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        _run(["mount", "-t", "proc", "proc", str(root / "proc")])
        try:
            _run(["chroot", str(root), "sh", "-c", SETUP])
        finally:
            _run(["umount", str(root / "proc")])
        (root / "etc/resolv.conf").write_text("", encoding="utf-8")  # the runtime's, not ours
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        changes = [arg for change in CHANGES for arg in ("--change", change)]
        try:
            _run(["podman", "import", *changes, "-", tag], stdin=tar.stdout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            if tar.wait() != 0:
                raise subprocess.CalledProcessError(tar.returncode, "tar")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=TAG, help=f"the image's name (default {TAG})")
    parser.add_argument("--mirror", default=MIRROR, help=f"Debian mirror (default {MIRROR})")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("image_base: run it as root (debootstrap, chroot)", file=sys.stderr)
        return 2
    missing = [tool for tool in ("debootstrap", "podman", "chroot") if not shutil.which(tool)]
    if missing:
        print(f"image_base: missing {', '.join(missing)} (Debian: apt-get install debootstrap "
              "podman)", file=sys.stderr)  # fmt: skip
        return 2
    try:
        build(args.tag, args.mirror)
    except subprocess.CalledProcessError as exc:
        print(f"image_base: failed: {exc}", file=sys.stderr)
        return 1
    print(f"image_base: built {args.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
