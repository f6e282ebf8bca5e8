"""The findings panel's data: ``/admin/analytics``'s JSON shaped for the page and the terminal.
The same analyses go through ``shape_findings`` (Python, ``prsm-perf top``) and
``PRSMFindings.shape`` (``static/findings.js``, the page, run under Node): both must agree."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from typing import Any

import orjson
import pytest
from rich.console import Console

from prsm.performance.analytics import AnalyticsSettings, PerformanceAnalytics
from prsm.performance.clock import ManualClock
from prsm.performance.dashboard import TopView, render_top
from prsm.performance.dashboard._findings import (
    FINDINGS_EVERY_S,
    FINDINGS_SINCE,
    MAX_ROWS,
    figure,
    shape_findings,
)
from prsm.performance.monitoring import MemoryMetricsStore
from tests.analytics.test_cpu_bound import NOW, write_gateway

from .test_top import ALERTS, CURRENT, NODES


async def analysis(**kw: Any) -> dict[str, Any]:
    """A real analysis of a synthetic history, as the gateway sends it (orjson: inf is null)."""
    store = MemoryMetricsStore()
    write_gateway(store, **kw)
    settings = AnalyticsSettings(latency_objective=0.05, seasonal_period=None)
    pa = PerformanceAnalytics(store, settings, clock=ManualClock(wall_offset=NOW))
    result = await pa.analyze_performance_trends("6h")
    return dict(orjson.loads(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)))


async def test_the_panel_shows_the_bottleneck_capacity_insights_and_recommendations() -> None:
    a = await analysis()
    f = shape_findings(a)
    assert f["sentence"] == a["bottleneck"]["sentence"]
    assert f["saturates_first"] == "gateway CPU"
    assert f["capacity"].startswith("node sim: bound by the gateway's CPU at ")
    assert "knee at " in f["capacity"] and "µs CPU a request" in f["capacity"]
    assert [i["type"] for i in f["insights"]] == [i["type"] for i in a["insights"]][:MAX_ROWS]
    assert {"severity", "type", "message"} == set(f["insights"][0])
    add = [r for r in f["recommendations"] if r["action"] == "add_gateway_processes"]
    impact = next(
        r["estimated_impact"]
        for r in a["recommendations"]
        if r["action"] == "add_gateway_processes"
    )
    assert add and f"processes_needed={impact['processes_needed']}" in add[0]["impact"]
    assert f["counts"]["insights"] == len(a["insights"])
    for key, marks in f["anomalies"].items():
        assert marks == [[x["ts"], x["value"]] for x in a["anomalies"][key]]


def test_an_empty_or_partial_analysis_still_shapes() -> None:
    f = shape_findings({})
    assert f["sentence"] == "No findings yet." and f["capacity"] is None
    assert f["insights"] == [] and f["recommendations"] == [] and f["anomalies"] == {}
    many = {"insights": [{"severity": "low", "type": "t", "message": str(i)} for i in range(20)]}
    assert len(shape_findings(many)["insights"]) == MAX_ROWS
    assert shape_findings(many)["counts"]["insights"] == 20


def test_figures_are_written_as_the_page_writes_them() -> None:
    assert [figure(v) for v in (3, 3.0, 1234.5, 12.345, 0.000125, None, True, "x")] == [
        "3", "3", "1235", "12.35", "0.0001", "–", "true", "x"
    ]  # fmt: skip
    assert figure(float("inf")) == "–"


def _node_shape(analyses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (the page's shaping runs in the browser test too)")
    script = resources.files("prsm.performance.dashboard").joinpath("static", "findings.js")
    code = (
        f"const f = require({json.dumps(str(script))});"
        "let s = ''; process.stdin.on('data', d => s += d);"
        "process.stdin.on('end', () => console.log(JSON.stringify(JSON.parse(s).map(f.shape))));"
    )
    out = subprocess.run(
        [node, "-e", code], input=json.dumps(analyses), capture_output=True, text=True,
        timeout=30, check=True,
    )  # fmt: skip
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


async def test_the_page_and_the_terminal_shape_the_same() -> None:
    cases = [await analysis(), await analysis(cpu=False), await analysis(processes=2, top=40.0)]
    cases.append({})
    cases.append({"recommendations": [{"priority": "low", "action": "a", "reason": None,
                                       "potential_savings": {"per_day": 2.5, "n": 2,
                                                             "nested": {"x": 1}}}]})  # fmt: skip
    assert _node_shape(cases) == [shape_findings(c) for c in cases]


async def test_prsm_perf_top_shows_the_findings() -> None:
    f = shape_findings(await analysis())
    console = Console(record=True, width=200, color_system=None)
    console.print(render_top(TopView(CURRENT, ALERTS, NODES, None, f), "http://gw"))
    out = console.export_text()
    assert "Bottleneck: The limit:" in out and "the gateway's CPU saturates first" in out
    assert "add_gateway_processes" in out and "saturation_ahead" in out


def test_the_page_asks_as_often_and_as_far_back_as_the_terminal() -> None:
    script = resources.files("prsm.performance.dashboard").joinpath("static", "dashboard.js")
    found = re.search(r'FINDINGS_SINCE = "([^"]+)", FINDINGS_EVERY_MS = (\d+);', script.read_text())
    assert found is not None
    assert found.group(1) == FINDINGS_SINCE
    assert int(found.group(2)) == FINDINGS_EVERY_S * 1000
