"""Defect 7: peers pinned exactly, one lock file, the install taken from it, an audit."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _lock() -> dict[str, object]:
    return tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))


def test_every_benchmark_peer_is_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    bench = project["project"]["optional-dependencies"]["bench"]
    loose = [req for req in bench if not re.search(r"==[0-9][0-9A-Za-z.]*$", req)]
    assert loose == [], f"pin these exactly: {loose}"
    litellm = next(r for r in bench if r.startswith("litellm"))
    assert litellm.split("==")[1] not in {"1.82.7", "1.82.8"}


def test_the_lock_pins_what_the_project_asks_for() -> None:
    packages = {p["name"]: p for p in _lock()["package"]}  # type: ignore[union-attr,index]
    assert packages["litellm"]["version"] == "1.103.10"
    assert packages["torch"]["version"] == "2.13.0"  # the CPU build install.sh puts in first
    # every registry package carries hashes: pip --require-hashes can check each download
    for name, pkg in packages.items():
        if "registry" in pkg["source"]:
            files = [pkg.get("sdist"), *pkg.get("wheels", [])]
            assert all(f and f["hash"].startswith("sha256:") for f in files if f), name


def test_export_holds_back_torch_and_its_cuda_libraries_only() -> None:
    export = _script("lock_export")
    held = export.only_through(_lock())
    assert "torch" in held and "triton" in held
    assert any(n.startswith("nvidia-cu") for n in held)
    assert {"sympy", "networkx"} <= held  # the CPU build needs these: export keeps them
    assert "nvidia-ml-py" not in held  # a dependency of ours, not torch's


def test_audit_refuses_a_known_malicious_release(tmp_path: Path) -> None:
    audit = _script("audit")
    assert audit.locked_bad() == []
    bad = tmp_path / "uv.lock"
    bad.write_text('version = 1\n[[package]]\nname = "litellm"\nversion = "1.82.7"\n')
    assert audit.locked_bad(bad) == ["litellm==1.82.7"]
