"""Build the container image of ``deploy/kubernetes/Dockerfile`` with podman and check it.

``python3 scripts/image_check.py [--base IMAGE] [--runtime runc] [--tag TAG]`` (stdlib
only; exits 0 when every check passes, 1 naming each one that failed, 2 without podman):

- builds the image (``--base`` goes to ``--build-arg PYTHON_IMAGE``; without it, the
  Dockerfile's own base; ``scripts/image_base.py`` builds a local one), host network, nice 19;
- the image: user ``10001:10001``, entrypoint ``prsm-perf``, port 8080, ``sleep`` on ``PATH``
  (the pods' ``preStop``), every installed distribution (but the base's pip, setuptools and
  wheel, and the project) at a version ``uv.lock`` pins, and ``pip check`` clean;
- runs ``prsm-perf upstream-sim`` from the image, then the pods' containers as the manifests
  run them (``scripts/image_pods.py``): a gateway pod (uid 10001; ``/healthz``, ``/readyz``;
  ``/v1/models``, a chat completion and a stream give the simulator's answers; ``/metrics``
  counts them; its load reports reach a receiver here with the key; on SIGTERM a stream in
  flight finishes whole and it exits 0 within the pods' 30 s grace period), a scaler
  candidate against ``FakeKubernetesAPI`` (it takes the Lease, answers its probes, and on
  SIGTERM hands the Lease back and exits 0), and the image on its own (no volumes, no data
  directory set: it serves).

Podman's default limits of open files and processes need a privilege a container host may
not grant: the containers get this process's open-files limit and 4096 processes. On a host
with cgroup v1 (or a hybrid hierarchy) crun refuses to start containers: give
``--runtime runc``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from image_podman import Checks, Podman
from image_pods import check_pods

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "deploy/kubernetes/Dockerfile"
BASE_DISTS = {"pip", "setuptools", "wheel", "prsm-performance"}  # the base's, and ours


def canonical(name: str) -> str:
    """A distribution's name as the lock writes it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {canonical(p["name"]): p["version"] for p in lock["package"] if "version" in p}


def check_image(podman: Podman, tag: str, checks: Checks) -> None:
    config = json.loads(podman("image", "inspect", tag))[0]["Config"]
    checks(config.get("User") == "10001:10001", "runs as 10001:10001", config.get("User"))
    checks(config.get("Entrypoint") == ["prsm-perf"], "entrypoint prsm-perf")
    checks("8080/tcp" in (config.get("ExposedPorts") or {}), "exposes 8080")
    checks(podman.run(tag, "-c", "sleep 0 && echo yes", entrypoint="sh").strip() == "yes",
           "sleep on PATH (preStop)")  # fmt: skip
    frozen = podman.run(tag, "-m", "pip", "list", "--format=json", entrypoint="python")
    locked = locked_versions()
    installed = {canonical(d["name"]): d["version"] for d in json.loads(frozen)}
    off = sorted(f"{name}=={version} (lock: {locked.get(name)})"
                 for name, version in installed.items()
                 if name not in BASE_DISTS and locked.get(name) != version)  # fmt: skip
    checks(not off, "every installed distribution at uv.lock's version", ", ".join(off))
    piped = podman.proc("run", "--rm", *podman.limits, "--entrypoint", "python", tag, "-m", "pip",
                        "check")  # fmt: skip
    checks(piped.returncode == 0, "pip check", piped.stdout.strip())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="the base image (build-arg PYTHON_IMAGE)")
    parser.add_argument("--runtime", help="podman's OCI runtime (runc on cgroup v1 hosts)")
    parser.add_argument("--tag", default="localhost/prsm-performance:check")
    args = parser.parse_args(argv)
    if not shutil.which("podman"):
        print("image_check: podman is not installed (Debian: apt-get install podman runc); "
              "nothing was checked", file=sys.stderr)  # fmt: skip
        return 2
    podman, checks = Podman(args.runtime), Checks()
    build = ["build", "--network", "host", *podman.limits, "-f", DOCKERFILE, "-t", args.tag]
    build += ["--build-arg", f"PYTHON_IMAGE={args.base}"] if args.base else []
    print("+ nice -n 19", " ".join([*podman.base, *build, "."]), flush=True)
    built = subprocess.run(["nice", "-n", "19", *podman.base, *build, "."], check=False,
                           cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    failed = built.returncode != 0
    if not checks(not failed, "image builds", built.stderr.strip()[-3000:] if failed else ""):
        return 1
    try:
        check_image(podman, args.tag, checks)
        with tempfile.TemporaryDirectory(prefix="prsm-image-check-") as tmp:
            Path(tmp).chmod(0o755)
            check_pods(podman, args.tag, Path(tmp), checks)
    except (RuntimeError, OSError, http.client.HTTPException, subprocess.SubprocessError,
            ValueError, KeyError, IndexError) as exc:  # fmt: skip
        checks(False, "the checks ran to the end", f"{type(exc).__name__}: {exc}")
    finally:
        podman.clean()
    print(f"image_check: {len(checks.failed)} check(s) failed: {', '.join(checks.failed)}"
          if checks.failed else f"image_check: every check passed ({args.tag})")  # fmt: skip
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
