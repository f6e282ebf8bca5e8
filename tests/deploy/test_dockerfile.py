"""``deploy/kubernetes/Dockerfile`` against the manifests and ``.dockerignore`` (no container
runtime needed; ``scripts/image_check.py`` builds and runs the image with podman).

* Every path the Dockerfile copies is in the build context ``.dockerignore`` leaves, and the
  rest of the checkout (a ``.venv`` of gigabytes, ``.git``) is not.
* The image's user is the pods' ``runAsUser``/``runAsGroup``, its data and cache directories
  (``PRSM_DATA_DIR``/``PRSM_CACHE_DIR``) are where the pods set them and mount ``emptyDir``s,
  and it creates them owned by that user (the image run on its own has somewhere to write:
  uid 10001 has no home, ``$HOME`` is ``/``).
* The base is the build argument ``PYTHON_IMAGE``, by default ``python:3.11-slim``.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of each ``name`` instruction (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name} (.*)$", joined, re.M)]


def kept(path: str) -> bool:
    """Whether ``.dockerignore`` leaves ``path`` in the build context (Docker's rules: the
    last pattern that matches the path or one of its parents decides; ``!`` keeps)."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    keep = True
    for pattern in patterns:
        negated, glob = pattern.startswith("!"), pattern.lstrip("!")
        if glob.startswith("**/"):
            hit = any(fnmatch.fnmatch(p, glob[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatch(p, glob) for p in prefixes)
        if hit:
            keep = negated
    return keep


def pod_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) of every Deployment the manifests run the image in."""
    out = []
    for name in ("gateways.yaml", "scalers.yaml"):
        for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
            if doc and doc["kind"] == "Deployment":
                spec = doc["spec"]["template"]["spec"]
                out += [(spec, c) for c in spec["containers"] if c["image"] == "prsm-performance"]
    assert len(out) == 2, "the gateway and scaler Deployments each run the image"
    return out


def test_the_build_context_holds_what_the_dockerfile_copies_and_not_the_rest() -> None:
    copied = [src for args in instructions("COPY") for src in args.split()[:-1]]
    assert copied == ["pyproject.toml", "uv.lock", "README.md", "scripts/lock_export.py", "src"]
    for src in copied:
        assert kept(src), f".dockerignore leaves out {src}, which the Dockerfile copies"
    left_out = (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "benchmarks/x.py",
        "scripts/install.sh",
        "src/prsm/__pycache__/x.pyc",
        "deploy/kubernetes",
    )
    for path in left_out:
        assert not kept(path), f".dockerignore keeps {path} in the build context"


def test_the_image_runs_as_the_pods_user_with_their_data_and_cache_directories() -> None:
    (user,) = instructions("USER")
    envs = instructions("ENV")
    assert len(envs) == 1, "the image sets its data and cache directories (one ENV)"
    env = envs[0]
    image_env = dict(item.split("=", 1) for item in env.split())
    owned = re.search(r"chown (\S+) (.+?)(?: &&|$)", instructions("RUN")[0])
    assert owned is not None, "the image creates its data and cache directories"
    assert owned.group(1) == user
    assert set(owned.group(2).split()) == {image_env["PRSM_DATA_DIR"], image_env["PRSM_CACHE_DIR"]}
    for spec, container in pod_containers():
        context = spec["securityContext"]
        assert user == f"{context['runAsUser']}:{context['runAsGroup']}"
        pod_env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        for name in ("PRSM_DATA_DIR", "PRSM_CACHE_DIR"):
            assert pod_env[name] == image_env[name], f"{name}: the pod's and the image's differ"
            assert image_env[name] in mounts, f"{name} is not on a volume (a read-only root)"


def test_the_base_image_is_a_build_argument_defaulting_to_python_3_11_slim() -> None:
    assert instructions("ARG") == ["PYTHON_IMAGE=python:3.11-slim"]
    assert instructions("FROM") == ["${PYTHON_IMAGE}"]
    assert DOCKERFILE.index("ARG PYTHON_IMAGE") < DOCKERFILE.index("FROM ")
