"""The monitoring admin routes' query parsing, and the config sections' validation."""

from __future__ import annotations

import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.config import PRSMConfig, build
from prsm.performance.errors import ConfigError, RequestValidationError
from prsm.performance.monitoring import MemoryMetricsStore, monitoring_route
from prsm.performance.monitoring._admin import parse_duration, parse_labels, parse_time

from .conftest import make_monitor


def test_durations_times_and_labels() -> None:
    assert parse_duration("90", "x") == 90.0
    assert parse_duration("15m", "x") == 900.0
    assert parse_duration("1.5h", "x") == 5400.0
    assert parse_time("1h", "since", 10_000.0) == 6400.0
    assert parse_time("1700000000", "since", 10_000.0) == 1_700_000_000.0
    assert parse_labels("node=a, model=m") == {"node": "a", "model": "m"}
    assert parse_labels('{"node": "a"}') == {"node": "a"}
    with pytest.raises(RequestValidationError, match="since"):
        parse_duration("soon", "since")
    with pytest.raises(RequestValidationError, match="labels"):
        parse_labels("node")


async def test_routes(clock: ManualClock) -> None:
    store = MemoryMetricsStore()
    monitor = make_monitor(clock, store=store)
    assert await monitoring_route(monitor, "GET", "/admin/nodes", b"") is None
    status, body = await monitoring_route(monitor, "GET", "/admin/metrics/current", b"") or (0, b"")
    assert status == 200 and set(orjson.loads(body)) >= {"system", "application", "business"}
    await monitor.run_once()
    status, body = await monitoring_route(
        monitor, "GET", "/admin/metrics/history", b"metric=system.cpu_usage&since=5m&step=1"
    ) or (0, b"")
    data = orjson.loads(body)
    assert status == 200 and data["series"][0]["points"]
    status, body = await monitoring_route(monitor, "GET", "/admin/alerts", b"") or (0, b"")
    assert orjson.loads(body)["active"] == []
    with pytest.raises(RequestValidationError, match="agg"):
        await monitoring_route(monitor, "GET", "/admin/metrics/history", b"metric=x&agg=p42")
    with pytest.raises(RequestValidationError):
        await monitoring_route(monitor, "POST", "/admin/alerts", b"")
    assert (await monitoring_route(None, "GET", "/admin/alerts", b"") or (0,))[0] == 503
    await monitor.close()


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("monitoring", {"latency_objective": 0}, "monitoring.latency_objective"),
        ("monitoring", {"otlp_endpoint": "grpc://x"}, "monitoring.otlp_endpoint"),
        ("history", {"backend": "duckdb"}, "history.backend"),
        ("history", {"tiers": []}, "history.tiers"),
        ("history", {"tiers": [{"step": 60, "retention": 600}, {"step": 90, "retention": 900}]},
         "history.tiers[1].step"),
        ("alerts", {"rules": [{"name": "a", "metric": "x", "condition": ">", "threshold": 1,
                               "severity": "loud"}]}, "alerts.rules[0].severity"),
        ("alerts", {"slos": [{"name": "s", "objective": 1.5}]}, "alerts.slos[0].objective"),
        ("alerts", {"webhooks": [{"url": "ftp://x"}]}, "alerts.webhooks[0].url"),
        ("alerts", {"rules": [{"name": "a", "metric": "x", "condition": ">", "threshold": 1}],
                    "slos": [{"name": "a", "objective": 0.9}]}, "alerts.rules"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_field(section: str, value: object, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(PRSMConfig, {section: value})
    assert err.value.field == field
