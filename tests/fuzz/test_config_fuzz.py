"""Fuzz the config loader: any mapping of sections and values either loads or raises a
``ConfigError`` naming the bad field (never another exception), and so does any file."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from prsm.performance.config import PRSMConfig, build, env_overrides, load_config
from prsm.performance.errors import ConfigError
from prsm.performance.serve._build import config_nodes
from tests.fuzz.strategies import JSON

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECTIONS = {f.name: f for f in dataclasses.fields(PRSMConfig) if f.name != "nodes"}


def _fields(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(SECTIONS[section].default_factory())]  # type: ignore[misc]


@st.composite
def config_data(draw: st.DrawFn) -> dict[str, Any]:
    """Some sections, each with some of its own fields (and now and then an unknown one),
    set to arbitrary JSON values."""
    data: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=3, unique=True)):
        names = st.sampled_from([*_fields(section), "not_a_setting"])
        data[section] = draw(st.dictionaries(names, JSON, max_size=3))
    if draw(st.booleans()):
        data["nodes"] = draw(st.lists(JSON, max_size=2))
    return data


def _named(exc: ConfigError, data: dict[str, Any]) -> bool:
    """Whether the error names a section and field that ``data`` set (or a node)."""
    head = exc.field.split(".", 1)[0].split("[", 1)[0]
    return head in data or head in ("node", "nodes", "gateway") or exc.field.startswith("(")


@FUZZ
@given(data=config_data())
def test_any_mapping_loads_or_names_the_field(data: dict[str, Any]) -> None:
    try:
        config = build(PRSMConfig, data)
        config_nodes(config)  # what serve checks before it starts: nodes, URLs, keys
    except ConfigError as exc:
        assert exc.field and exc.problem, exc
        assert _named(exc, data), (exc.field, data)


@FUZZ
@given(
    text=st.text(max_size=300) | config_data().map(yaml.safe_dump),
    suffix=st.sampled_from([".yaml", ".toml", ".json", ".txt"]),
)
def test_any_file_loads_or_names_the_field(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"prsm{suffix}"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path, environ={})
        except ConfigError as exc:
            assert exc.source == str(path) and exc.field, exc


@FUZZ
@given(env=st.dictionaries(
    st.sampled_from(["PRSM_GATEWAY__PORT", "PRSM_GATEWAY__HOST", "PRSM_CACHE__L1_MAX_ENTRIES",
                     "PRSM_ROUTING__STRATEGY", "PRSM_WORKERS__COUNT", "PRSM_BREAKER__X",
                     "PRSM_GATEWAY__ADMIN_KEY_SHA256", "PRSM_NOPE__A", "PRSM___", "PRSM_A__"]),
    st.text(max_size=30), max_size=4,
))  # fmt: skip
def test_any_environment_overrides_load_or_name_the_field(env: dict[str, str]) -> None:
    overrides = env_overrides(env)
    try:
        load_config(None, environ=env)
    except ConfigError as exc:
        assert exc.field.split(".", 1)[0].split("[", 1)[0] in overrides, (exc.field, env)
