"""Monitoring in a real gateway process: /metrics names, the Server-Timing header, the JSON
routes, the Grafana dashboard's metric names, admin-only access, and history surviving a
SIGKILL."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prsm.performance.gateway._settings import hash_key
from tests.gateway.procs import Proc, node, start_gateway, start_sim, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"authorization": "Bearer sk-admin"}
USER = {"authorization": "Bearer sk-user"}
TENANTS = [
    {"name": "admin", "key_sha256": [hash_key("sk-admin")], "admin": True},
    {"name": "user", "key_sha256": [hash_key("sk-user")]},
]


def chat(model: str = "mon-chat", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], **kw}


@pytest.fixture(scope="module")
def sim() -> Iterator[Proc]:
    p = start_sim("mon", "--models", "mon-chat", "--tokens-per-second", "500")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def gateway(sim: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("mon-gw")
    config = {
        "nodes": [node("n1", sim, ["mon-chat"], cost_per_1k_tokens=0.5)],
        "orchestrator": {"caching_strategy": "memory", "monitoring_interval": 0.2},
        "history": {"path": str(tmp / "history.sqlite3"), "flush_interval": 0.2},
        "monitoring": {"server_timing": True},
        "gateway": {"tenants": TENANTS},
        "alerts": {"rules": [{"name": "AnyTraffic", "metric": "application.requests",
                              "condition": ">", "threshold": 0, "severity": "info"}]},
    }  # fmt: skip
    gw = start_gateway(tmp, config)
    with httpx.Client(base_url=gw.url, timeout=10, headers=USER) as c:
        for i in range(3):
            assert c.post("/v1/chat/completions", json=chat(seed=i)).status_code == 200
        assert c.post("/v1/chat/completions", json=chat(seed=0)).headers["x-prsm-cache"]
        with c.stream("POST", "/v1/chat/completions", json=chat(stream=True, seed=9)) as r:
            assert r.status_code == 200
            assert "upstream;dur=" in r.headers["server-timing"]
            r.read()
        assert c.post("/v1/chat/completions", json=chat("no-such-model")).status_code == 404
    yield gw
    gw.stop()


def test_server_timing_header_names_the_stages(gateway: Proc) -> None:
    r = httpx.post(f"{gateway.url}/v1/chat/completions", json=chat(seed=42), headers=USER)
    timing = r.headers["server-timing"]
    for stage in ("parse", "auth", "cache", "route", "upstream", "respond", "total"):
        assert re.search(rf"\b{stage};dur=\d+\.\d{{3}}", timing), timing
    assert float(r.headers["x-prsm-added-time"]) >= 0


def test_metrics_has_our_names_and_the_genai_ones(gateway: Proc) -> None:
    text = httpx.get(f"{gateway.url}/metrics").text
    for name in (
        "prsm_request_duration_seconds_bucket", "prsm_request_stage_seconds_count",
        "prsm_tokens_sum", "prsm_cache_lookups_total", "prsm_time_to_first_token_seconds_count",
        "gen_ai_server_request_duration_seconds_bucket", "gen_ai_client_token_usage_sum",
        "gen_ai_client_operation_duration_seconds_count",
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "gen_ai_server_time_per_output_token_seconds_count",
    ):  # fmt: skip
        assert re.search(rf"^{name}[{{ ]", text, re.M), name
    assert 'gen_ai_token_type="input"' in text and 'gen_ai_token_type="output"' in text
    assert 'error_type="unknown_model"' in text
    # bounded: an unknown model's name is not a label value of its own forever
    assert 'model="no-such-model"' in text or 'model="_OTHER"' in text


def test_the_json_routes_need_the_admin_key(gateway: Proc) -> None:
    base = gateway.url
    assert httpx.get(f"{base}/admin/metrics/current", headers=USER).status_code == 403
    assert httpx.get(f"{base}/admin/metrics/current").status_code == 401
    current = httpx.get(f"{base}/admin/metrics/current", headers=ADMIN).json()
    assert set(current) >= {"timestamp", "system", "application", "business"}
    assert "n1" in current["application"]["nodes"]

    def history() -> dict[str, Any]:
        r = httpx.get(
            f"{base}/admin/metrics/history",
            params={"metric": "slo.requests", "since": "5m", "agg": "sum"},
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data if sum(v for s in data["series"] for _, v in s["points"]) >= 5 else {}

    data = wait_for(history)
    assert data, "history never showed the requests"
    assert data["series"][0]["step"] == 1.0
    listing = httpx.get(f"{base}/admin/metrics/history", headers=ADMIN).json()
    assert "application.request_rate" in listing["metrics"]
    bad = httpx.get(f"{base}/admin/metrics/history?metric=x&since=soon", headers=ADMIN)
    assert bad.status_code == 422 and "since" in bad.text
    alerts = wait_for(
        lambda: httpx.get(f"{base}/admin/alerts", headers=ADMIN).json()["evaluated_at"]
    )
    assert alerts


def test_every_grafana_metric_exists_in_a_real_gateways_metrics(gateway: Proc) -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/prsm-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    assert exprs
    names = set()
    for expr in exprs:
        names |= metric_names(expr)
    text = httpx.get(f"{gateway.url}/metrics").text
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    missing = sorted(n for n in names if n not in exposed and n not in families)
    assert not missing, f"dashboard names absent from /metrics: {missing}"


_FUNCS = {
    "sum", "avg", "max", "min", "rate", "histogram_quantile", "by", "ignoring", "group_left",
    "on", "without", "count", "increase", "irate", "and", "or", "unless",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label sets, ranges, grouping lists,
    strings, numbers and function names removed)."""
    e = re.sub(r'"[^"]*"', "", expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", e)
    words = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e)
    return {w for w in words if w not in _FUNCS and not w.startswith("$")}


def test_history_survives_a_sigkill(sim: Proc, tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    config = {
        "nodes": [node("n1", sim, ["mon-chat"])],
        "orchestrator": {"monitoring_interval": 0.2},
        "history": {"path": str(path), "flush_interval": 0.2},
    }
    gw = start_gateway(tmp_path, config)
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            for i in range(10):
                assert c.post("/v1/chat/completions", json=chat(seed=i)).status_code == 200

            def flushed() -> float:
                query = {"metric": "slo.requests", "since": "5m", "agg": "sum"}
                r = c.get("/admin/metrics/history", params=query)
                return float(sum(v for s in r.json()["series"] for _, v in s["points"]))

            assert wait_for(lambda: flushed() >= 10), "the requests never reached the history"
            seen = flushed()
        gw.kill()  # SIGKILL: no shutdown, no final flush
    finally:
        gw.stop()
    with sqlite3.connect(path) as db:  # what a flush committed is on disk
        (sid,) = db.execute("SELECT id FROM series WHERE metric = 'slo.requests'").fetchone()
        total = db.execute("SELECT sum(total) FROM points_1 WHERE series = ?", (sid,)).fetchone()
    assert total[0] >= seen
    again = start_gateway(tmp_path, config)  # a restart reads it back
    try:
        r = httpx.get(f"{again.url}/admin/metrics/history",
                      params={"metric": "slo.requests", "since": "10m", "agg": "sum"})  # fmt: skip
        assert sum(v for s in r.json()["series"] for _, v in s["points"]) >= seen
    finally:
        again.stop()
