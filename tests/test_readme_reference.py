"""README.md's reference parts against the code: every ``prsm-perf`` subcommand and flag it
shows, every ``PRSM_SECTION__KEY`` variable and every key of its settings tables exists."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prsm.performance.cli import build_parser
from prsm.performance.config import PRSMConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_cli_commands_and_flags_exist() -> None:
    commands = _subparsers(build_parser())
    # a command line: in a code block (continued lines joined) or in backticks
    text = _text().replace("\\\n", " ")
    checked = 0
    for m in re.finditer(r"prsm-perf ([a-z][\w-]*)([^\n`]*)", text):
        name, rest = m.group(1), m.group(2)
        assert name in commands, f"prsm-perf {name}: no such subcommand ({m.group(0)!r})"
        parser = commands[name]
        words = rest.split()
        actions = _subparsers(parser)
        if words and words[0] in actions:
            parser = actions[words[0]]
        if name == "bench":  # the flags are the benchmark's
            continue
        options = set(parser._option_string_actions)
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest.split("#")[0]):
            assert flag in options, f"{m.group(0)!r}: no {flag}; it has {sorted(options)}"
            checked += 1
    assert checked > 30


def _field(cls: Any, name: str) -> Any:
    """The type of ``cls``'s field ``name`` (None: no such field)."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        return None
    if name not in {f.name for f in dataclasses.fields(cls)}:
        return None
    return typing.get_type_hints(cls)[name]


def _dataclass_in(tp: Any) -> Any:
    """The settings dataclass a field's type holds (itself, optional, or mapped by name),
    or None for a plain value."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def is_setting(path: str) -> bool:
    cls: Any = PRSMConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        tp = _field(cls, part)
        if tp is None:
            return False
        cls = _dataclass_in(tp)
        if cls is None:  # a plain value: the path must end here
            return i == len(parts) - 1
    return True


def test_env_names_are_settings() -> None:
    names = set(re.findall(r"\bPRSM_([A-Z0-9_]+__[A-Z0-9_]+)\b", _text()))
    paths = {n.lower().replace("__", ".") for n in names}
    paths -= {"section.key", "section.field", "cache.field", "optimize.field", "analytics.field"}
    assert len(paths) > 5
    assert [p for p in paths if not is_setting(p)] == []


#: how a settings table names its section: in its first header cell, or just above it
HEADER_SECTION = re.compile(r"^\| `([a-z_.]+?)\.?`(?: key)? \|")
ABOVE_SECTION = re.compile(r"`([a-z_]+):?` section|section `([a-z_]+)`")


def table_keys() -> Iterator[tuple[int, str]]:
    """(line, section.key) for the first-column keys of every settings table (a table whose
    header has a ``default`` column)."""
    lines = _text().splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|") or lines[i - 1].startswith("|") or "default" not in line:
            continue
        head = HEADER_SECTION.match(line)
        above = ABOVE_SECTION.search(" ".join(lines[max(0, i - 3) : i]))
        if line.startswith(("| section.key |", "| section.field |")):
            section = ""
        elif head:
            section = head.group(1)
        elif above:
            section = above.group(1) or above.group(2)
        else:
            raise AssertionError(f"README.md:{i + 1}: a settings table of which section?")
        j = i + 2
        while j < len(lines) and lines[j].startswith("|"):
            base = None  # `batcher.max_batch_size`, `max_queue_delay`: both under batcher
            for raw in re.findall(r"`([a-z_][\w.]*)[^`]*`", lines[j].split("|")[1]):
                key = raw.rstrip(".")
                if "." in key:
                    base = key.rsplit(".", 1)[0]
                elif base:
                    key = f"{base}.{key}"
                if section or "." in key:
                    yield j + 1, f"{section}.{key}" if section else key
            j += 1


def test_config_table_keys_are_settings() -> None:
    keys = list(table_keys())
    assert len(keys) > 200
    assert [(line, key) for line, key in keys if not is_setting(key)] == []
