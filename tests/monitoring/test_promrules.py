"""The Prometheus rules file: generated from the config, and the shipped default is exactly
what the example config generates; its structure is what Prometheus loads (promtool is not
available here, so the structure is checked)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from prsm.performance.cli import main
from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.monitoring import (
    AlertRule,
    AlertSettings,
    MetricsRegistry,
    RequestRecorder,
    prometheus_rules,
    prometheus_rules_yaml,
)
from prsm.performance.monitoring._promrules import PROMQL

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "prsm-monitoring.example.yaml"
SHIPPED = ROOT / "deploy" / "prometheus" / "prsm-rules.yml"
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def check_structure(doc: Any) -> None:
    """What Prometheus requires of a rules file."""
    assert isinstance(doc, dict) and set(doc) == {"groups"}
    names = [g["name"] for g in doc["groups"]]
    assert len(names) == len(set(names)), "group names must be unique"
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            allowed = {"alert", "expr", "for", "labels", "annotations"} | {"record"}
            assert set(rule) <= allowed, rule
            name = rule.get("alert") or rule.get("record")
            assert _METRIC.match(name) or "alert" in rule, name
            expr = rule["expr"]
            assert isinstance(expr, str) and expr.strip()
            for o, c in ("()", "[]", "{}"):
                assert expr.count(o) == expr.count(c), expr
            assert expr.count('"') % 2 == 0, expr
            if "for" in rule:
                assert _DURATION.match(rule["for"]), rule["for"]
            for key in ("labels", "annotations"):
                for k, v in rule.get(key, {}).items():
                    assert re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", k) and isinstance(v, str)


def test_the_shipped_file_is_what_the_example_config_generates() -> None:
    config = load_config(EXAMPLE)
    text = prometheus_rules_yaml(config.alerts, config.monitoring.latency_objective)
    assert SHIPPED.read_text() == text, "regenerate: prsm-perf monitoring rules --config ..."
    doc = yaml.safe_load(text)
    check_structure(doc)
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}
    assert {"PRSMHighErrorRate", "PRSMAvailability", "PRSMLatency"} <= alerts


def test_rule_expressions_read_only_names_the_gateway_exposes() -> None:
    from tests.monitoring.test_gateway import metric_names

    reg = MetricsRegistry()
    RequestRecorder(reg)
    doc = yaml.safe_load(SHIPPED.read_text())
    records = {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}
    used = set()
    for g in doc["groups"]:
        for r in g["rules"]:
            used |= metric_names(r["expr"])
    known = {
        "prsm_request_duration_seconds_count", "prsm_request_duration_seconds_bucket",
        "prsm_node_latency_seconds_bucket", "prsm_node_latency_seconds_count",
        "prsm_node_failures_total", "prsm_breaker_state", "prsm_system_cpu_usage_ratio",
    }  # fmt: skip
    assert used - records <= known, used - records - known


def test_every_supported_metric_translates() -> None:
    for metric in PROMQL:
        labels = {"model": "m"} if metric.startswith("model.") else {}
        if metric.startswith("node."):
            labels = {"node": "a"}
        settings = AlertSettings(rules=(AlertRule("R", metric, ">", 1, labels=labels),))
        check_structure(prometheus_rules(settings))


def test_an_unsupported_metric_is_named() -> None:
    settings = AlertSettings(rules=(AlertRule("R", "stage.p95", ">", 1),))
    with pytest.raises(ConfigError, match=r"stage\.p95"):
        prometheus_rules(settings)


def test_the_cli_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rules.yml"
    assert main(["monitoring", "rules", "--config", str(EXAMPLE), "--out", str(out)]) == 0
    assert out.read_text() == SHIPPED.read_text()
    assert main(["monitoring", "rules", "--config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.endswith(SHIPPED.read_text())
