"""Inside the orchestrator room, imports point one way (the orchestrator → its wiring; drivers →
attempt → retry, hedge, metrics, settings) and no module reaches into another's private
attributes or imports the class that composes them."""

from __future__ import annotations

import ast
from pathlib import Path

import prsm.performance.orchestrator as room

#: module → the room's modules it may import (what is not listed, it may not)
ALLOWED = {
    "_orchestrator": {"_attempt", "_stream", "_unary", "_wiring"},
    "_wiring": {"_attempt", "_metrics", "_settings"},
    "_unary": {"_attempt", "_hedge", "_retry"},
    "_stream": {"_attempt", "_resume", "_retry", "_stream_hedge", "_stream_meter", "_tape"},
    "_stream_meter": set(),
    "_stream_hedge": {"_attempt", "_hedge"},
    "_resume": {"_attempt", "_continue", "_merge", "_tape"},
    "_continue": {"_tape"},
    "_merge": {"_tape"},
    "_tape": set(),
    "_attempt": {"_hedge", "_metrics", "_retry", "_settings"},
    "_retry": {"_settings"},
    "_hedge": {"_settings"},
    "_metrics": set(),
    "_settings": set(),
}


def _sources() -> dict[str, ast.Module]:
    folder = Path(room.__file__).parent
    return {p.stem: ast.parse(p.read_text()) for p in folder.glob("_*.py") if p.stem != "__init__"}


def test_imports_inside_the_room_point_one_way() -> None:
    modules = _sources()
    assert set(modules) == set(ALLOWED), "a module was added: place it in ALLOWED"
    for name, tree in modules.items():
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        }
        assert imported <= ALLOWED[name], f"{name} imports {sorted(imported - ALLOWED[name])}"


#: a named tuple's public methods, underscored so as not to clash with its fields
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make"}


def test_no_module_reaches_into_private_attributes_of_another_object() -> None:
    for name, tree in _sources().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in NAMEDTUPLE_API
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                raise AssertionError(f"{name}:{node.lineno} reaches into .{node.attr}")
