from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from prsm.performance.config import build, env_overrides, load_config, load_mapping, merge
from prsm.performance.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: int = 1
    ratio: float = 0.5
    name: str = "x"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError("size", f"must be >= 1, got {self.size}")


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    tags: tuple[str, ...] = ()
    flag: bool = False
    maybe: int | None = None


def test_build_nested_and_coerces() -> None:
    out = build(Outer, {"inner": {"size": 3, "ratio": 1}, "tags": ["a", "b"], "flag": True})
    assert out.inner == Inner(size=3, ratio=1.0)
    assert out.tags == ("a", "b")
    assert out.flag is True
    assert out.maybe is None


@pytest.mark.parametrize(
    ("data", "field_name", "fragment"),
    [
        ({"inner": {"size": "3"}}, "inner.size", "integer"),
        ({"inner": {"size": 0}}, "inner.size", ">= 1"),
        ({"inner": {"bogus": 1}}, "inner.bogus", "unknown setting"),
        ({"flag": "yes"}, "flag", "true or false"),
        ({"tags": "a"}, "tags", "list"),
        ({"inner": 5}, "inner", "mapping"),
    ],
)
def test_build_names_the_bad_field(data: dict[str, object], field_name: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(Outer, data)
    assert info.value.field == field_name
    assert fragment in str(info.value)


def test_env_overrides_nest_and_parse() -> None:
    env = {"PRSM_ROUTING__STRATEGY": "least_loaded", "PRSM_A__B__C": "3", "OTHER": "1"}
    assert env_overrides(env) == {"routing": {"strategy": "least_loaded"}, "a": {"b": {"c": 3}}}


def test_merge_is_deep() -> None:
    assert merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}) == {"a": {"x": 1, "y": 3}}


def test_load_mapping_yaml_and_toml(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("nodes:\n  - id: a\n")
    assert load_mapping(y) == {"nodes": [{"id": "a"}]}
    t = tmp_path / "c.toml"
    t.write_text('[[nodes]]\nid = "a"\n')
    assert load_mapping(t) == {"nodes": [{"id": "a"}]}


def test_load_mapping_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_mapping(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_mapping(tmp_path / "missing.yaml")
    odd = tmp_path / "c.ini"
    odd.write_text("")
    with pytest.raises(ConfigError, match="unknown format"):
        load_mapping(odd)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_mapping(lst)


def test_load_config_reports_file_and_field(tmp_path: Path) -> None:
    cfg = tmp_path / "prsm.yaml"
    cfg.write_text("no_such_section: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={})
    assert info.value.source == str(cfg)
    assert info.value.field == "no_such_section"


def test_load_config_defaults_without_file() -> None:
    cfg = load_config(None, environ={})
    assert cfg.nodes == ()


def test_build_names_a_missing_required_field() -> None:
    # Found by tests/fuzz: ``alerts.rules: [{}]`` raised TypeError from the dataclass.
    from prsm.performance.config import PRSMConfig

    with pytest.raises(ConfigError) as info:
        build(PRSMConfig, {"alerts": {"rules": [{}]}})
    assert info.value.field == "alerts.rules[0].name"
    assert "required" in str(info.value)
