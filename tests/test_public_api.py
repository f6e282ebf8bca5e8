"""The public surface: ``__all__`` is complete, sorted, and every name in it resolves."""

from __future__ import annotations

import importlib
import pkgutil

import prsm.performance as pkg


def test_all_names_resolve() -> None:
    for name in pkg.__all__:
        assert hasattr(pkg, name), name


def test_all_is_unique() -> None:  # its order is ruff's (RUF022)
    assert len(pkg.__all__) == len(set(pkg.__all__))


def test_every_public_class_in_submodules_is_exported() -> None:
    """A class or error defined in any submodule and named in that module's ``__all__``
    (the subpackage's public surface) is re-exported from the package."""
    missing = []
    for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        mod = importlib.import_module(info.name)  # every module imports without optional extras
        if not info.ispkg:
            continue
        for name in getattr(mod, "__all__", ()):
            if name not in pkg.__all__:
                missing.append(f"{info.name}.{name}")
    assert not missing, f"exported by a subpackage but not by prsm.performance: {missing}"


def test_py_typed_marker_ships() -> None:
    from importlib.resources import files

    assert files("prsm.performance").joinpath("py.typed").is_file()
