"""``prsm-perf top``: its frame from canned admin JSON, fetching through a mock transport,
and the key from the environment (no network)."""

from __future__ import annotations

import argparse
import copy
import re
from typing import Any

import httpx
import pytest
from rich.console import Console

from prsm.performance.dashboard import TopView, fetch_top_view, render_top, run_top
from prsm.performance.dashboard._commands import admin_key, register
from prsm.performance.dashboard._findings import FINDINGS_SINCE
from prsm.performance.dashboard._top import ms, summary_cells
from prsm.performance.errors import AdminApiError, ConfigError

NODE = {"request_rate": 12.5, "error_rate": 0.0, "latency_p50": 0.01, "latency_p95": 0.02,
        "tokens_per_s": 90.0, "in_flight": 3, "queue_depth": 1, "cpu": 0.42, "memory": None,
        "score": 0.91, "state": "active", "breaker": "closed",
        "cost_per_1k_tokens": 0.5}  # fmt: skip
CURRENT: dict[str, Any] = {
    "timestamp": 1_796_386_396.8,
    "interval": 1.0,
    "application": {
        "request_rate": 107.02906106592937, "requests": 107, "errors": 2,
        "response_time_p50": 0.0123, "response_time_p95": 0.0456, "response_time_p99": 0.25,
        "error_rate": 0.0187, "queue_depth": 4, "in_flight": 7, "cache_hit_rate": 0.25,
        "cache_hit_rates": {"l1": 0.2, "semantic": 0.05}, "cache_lookups": 100.0,
        "stages": {"parse": {"count": 107, "mean": 2e-5, "p50": 2e-5, "p95": 5e-5},
                   "upstream": {"count": 80, "mean": 0.03, "p50": 0.02, "p95": 0.04}},
        "nodes": {"n1": NODE, "n2": {**NODE, "breaker": "open", "state": "draining"}},
    },
    "business": {
        "active_users": 3, "throughput": {"tokens_per_s": 1926.5}, "cost_per_request": 0.00021,
        "cost_per_s": 0.0225, "sla_compliance": 0.981, "sla_objective_s": 1.0,
    },
}  # fmt: skip
ALERTS = {"rules": 1, "slos": 0, "active": [
    {"name": "HighErrors", "state": "firing", "severity": "page", "labels": {"model": "m"},
     "value": 0.0187, "since": 1_796_386_300.0}]}  # fmt: skip
NODES = [
    {
        "id": "n1",
        "models": ["m", "m2"],
        "state": "active",
        "load": {"load": 0.31, "state": "fresh"},
    },
    {"id": "n2", "models": ["m"], "state": "draining", "load": {"load": 0.9, "state": "stale"}},
]


def text(view: TopView, width: int = 160) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(render_top(view, "http://gw"))
    return console.export_text()


def test_the_frame_shows_every_figure_the_page_shows() -> None:
    out = text(TopView(CURRENT, ALERTS, NODES, None))
    assert "107.0 req/s" in out
    assert "12.3 ms / 45.6 ms / 250 ms" in out
    assert "1.9 % (2)" in out and "25.0 %" in out and "4 / 7" in out
    # 1926.5 tokens/s written as the page's toFixed writes it (a tie rounds up)
    assert "98.1 % ≤ 1.0 s" in out and "$0.00021 · $0.0225" in out and "1927 · 3" in out
    assert "semantic" in out and "upstream" in out and "30.0 ms" in out
    assert "HighErrors{model=m}" in out and "firing" in out
    assert "0.31" in out and "0.90 (stale)" in out and "open" in out and "42.0 %" in out
    # auto-scaling off: nodes per model (n2 drains)
    assert "nodes per model" in out
    assert re.search(r"│ m\s+│\s+1\s+│\s+1\s+│", out)
    assert re.search(r"│ m2\s+│\s+1\s+│\s+0\s+│", out)


def test_the_frame_shows_the_scaler_when_there_is_one() -> None:
    scaling = {"deployment": "default", "policy": "predictive", "running": True,
               "steps": [{"ready": 2, "starting": 1, "draining": 0, "target": 3}]}  # fmt: skip
    out = text(TopView(CURRENT, {"rules": 0, "slos": 0, "active": []}, NODES, scaling))
    assert "auto-scaling: predictive" in out and "no alert rules configured" in out
    assert re.search(r"│ default\s+│\s+2\s+│\s+1\s+│\s+0\s+│\s+3\s+│", out)


def test_missing_figures_are_dashes_not_zeros() -> None:
    current = copy.deepcopy(CURRENT)
    for k in ("request_rate", "response_time_p50", "response_time_p95", "response_time_p99",
              "error_rate", "cache_hit_rate"):  # fmt: skip
        current["application"][k] = None
    cells = summary_cells(current)
    assert cells["requests"] == "– req/s" and cells["cache hits"] == "–"
    assert cells["latency p50 / p95 / p99"] == "– / – / –"
    assert ms(float("nan")) == "–" and ms(0.0004) == "0.400 ms"


def _client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gw")


ANALYSIS = {
    "bottleneck": {"sentence": "The limit: requests spend 97% of their time in 'x'."},
    "insights": [{"severity": "high", "type": "rising_error_rate", "message": "up"}],
}


def _gateway(status: int = 200, scaling: bool = False, calls: list[str] | None = None) -> Any:
    calls = [] if calls is None else calls

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "invalid admin key"}})
        if path == "/admin/metrics/current":
            return httpx.Response(200, json=CURRENT)
        if path == "/admin/alerts":
            return httpx.Response(200, json=ALERTS)
        if path == "/admin/nodes":
            return httpx.Response(200, json={"nodes": NODES})
        if path == "/admin/scaling" and scaling:
            return httpx.Response(200, json={"scaling": {"policy": "p", "steps": []}})
        if path == "/admin/analytics":
            calls.append(str(request.url.params))
            return httpx.Response(200, json=ANALYSIS)
        return httpx.Response(404, json={"error": {"message": "auto-scaling is off"}})

    return handler


def test_fetch_reads_the_four_routes_and_a_missing_scaler_is_none() -> None:
    with _client(_gateway()) as c:
        view = fetch_top_view(c)
    assert view.current == CURRENT and view.alerts == ALERTS and view.nodes == NODES
    assert view.scaling is None
    with _client(_gateway(scaling=True)) as c:
        assert fetch_top_view(c).scaling == {"policy": "p", "steps": []}


def test_a_refused_key_is_an_error_naming_the_route_and_the_fix() -> None:
    with _client(_gateway(401)) as c, pytest.raises(AdminApiError) as info:
        fetch_top_view(c)
    assert info.value.status == 401 and "/admin/metrics/current" in str(info.value)
    assert "invalid admin key" in str(info.value) and "--key-env" in str(info.value)


def test_an_unreachable_gateway_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with _client(handler) as c, pytest.raises(AdminApiError, match="cannot reach"):
        fetch_top_view(c)


def test_not_a_terminal_prints_one_frame_and_exits() -> None:
    console = Console(record=True, width=160, force_terminal=False)
    slept: list[float] = []
    with _client(_gateway()) as c:
        assert run_top(c, console, sleep=slept.append) == 0
    out = console.export_text()
    assert slept == [] and "107.0 req/s" in out
    assert "Bottleneck: The limit: requests spend 97% of their time in 'x'." in out
    assert "rising_error_rate" in out


def test_live_mode_asks_for_the_findings_every_findings_interval() -> None:
    console = Console(record=True, width=160, force_terminal=True)
    slept: list[float] = []
    calls: list[str] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 7:
            raise KeyboardInterrupt

    with _client(_gateway(calls=calls)) as c:
        assert run_top(c, console, interval=20.0, sleep=sleep) == 0
    # at the start, then after 60 s and 120 s of frames (FINDINGS_EVERY_S)
    assert calls == [f"since={FINDINGS_SINCE}"] * 3


def test_live_mode_redraws_each_interval_and_ctrl_c_exits_cleanly() -> None:
    console = Console(record=True, width=160, force_terminal=True)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise KeyboardInterrupt

    with _client(_gateway()) as c:
        assert run_top(c, console, interval=2.0, sleep=sleep) == 0
    assert slept == [2.0, 2.0, 2.0]


def test_the_key_comes_from_the_named_variable_which_must_be_set() -> None:
    assert admin_key("MY_KEY", {"MY_KEY": " sk-1 "}) == "sk-1"
    assert admin_key(None, {"PRSM_ADMIN_KEY": "sk-2"}) == "sk-2"
    assert admin_key(None, {}) is None
    with pytest.raises(ConfigError, match="MY_KEY is not set"):
        admin_key("MY_KEY", {})


def test_the_command_parses_its_options() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["top", "--url", "http://h:1", "--key-env", "K", "--once"])
    assert (args.url, args.key_env, args.once, args.interval) == ("http://h:1", "K", True, None)
