"""Write the pinned, hashed requirements of ``uv.lock`` for ``scripts/install.sh``.

``python scripts/lock_export.py EXTRAS OUT`` runs ``uv export --frozen`` (the lock as it is,
never re-resolved) for the project's ``EXTRAS`` (comma-separated), leaving out the project
itself, ``torch`` and every package that only ``torch`` needs (its CUDA libraries): the
install puts in the CPU build of torch first, then these pins with ``pip install --no-deps
--require-hashes``, so nothing outside the lock can come in and nothing pulls a CUDA build.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "prsm-performance"
HELD_BACK = "torch"  # installed first, on its own (the CPU build)
CUDA_PARTS = ("nvidia-", "cuda-", "triton")  # what only the CUDA build of torch needs


def _graph(lock: dict[str, object]) -> dict[str, set[str]]:
    """Every locked package and the packages it (or any of its extras) depends on."""
    graph: dict[str, set[str]] = {}
    packages = lock.get("package", [])
    assert isinstance(packages, list)
    for pkg in packages:
        deps = {d["name"] for d in pkg.get("dependencies", [])}
        for group in (pkg.get("optional-dependencies") or {}).values():
            deps |= {d["name"] for d in group}
        graph.setdefault(pkg["name"], set()).update(deps)
    return graph


def _reach(graph: dict[str, set[str]], roots: Iterable[str], skip: str | None) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r != skip]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(d for d in graph.get(name, ()) if d != skip and d not in seen)
    return seen


def only_through(lock: dict[str, object], held: str = HELD_BACK) -> set[str]:
    """The packages reachable from the project only through ``held`` (and ``held`` itself)."""
    graph = _graph(lock)
    everything = _reach(graph, [PROJECT], None)
    without = _reach(graph, [PROJECT], held)
    return everything - without


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python scripts/lock_export.py EXTRAS OUT", file=sys.stderr)
        return 2
    extras, out = argv
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    cmd = ["uv", "export", "--frozen", "--no-emit-project", "--format", "requirements.txt",
           "--output-file", out, "--quiet"]  # fmt: skip
    for extra in filter(None, (e.strip() for e in extras.split(","))):
        cmd += ["--extra", extra]
    held = {n for n in only_through(lock) if n == HELD_BACK or n.startswith(CUDA_PARTS)}
    for name in sorted(held):
        cmd += ["--no-emit-package", name]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
