import math

import pytest

from prsm.performance.analytics import AnalyticsSettings, PerformanceAnalytics
from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError
from prsm.performance.monitoring import MemoryMetricsStore

from .history import write_day

NOW = 1_700_000_000.0


async def _analysis(
    load: float = 1.0, **settings: object
) -> tuple[PerformanceAnalytics, dict[str, object]]:
    store = MemoryMetricsStore()
    write_day(store, NOW, load=load)
    clock = ManualClock(wall_offset=NOW)
    pa = PerformanceAnalytics(store, AnalyticsSettings(**settings), clock=clock)  # type: ignore[arg-type]
    return pa, await pa.analyze_performance_trends("24h")


async def test_the_posts_dict_with_trends_anomalies_and_insights() -> None:
    _, result = await _analysis()
    assert {"trends", "anomalies", "insights", "recommendations"} <= set(result)
    trends = result["trends"]
    assert isinstance(trends, dict)
    assert trends["application.request_rate"]["direction"] == "increasing"
    assert trends["node.error_rate{node=b}"]["direction"] == "increasing"
    anomalies = result["anomalies"]
    assert isinstance(anomalies, dict) and "application.cache_hit_rate" in anomalies
    insights = result["insights"]
    assert isinstance(insights, list)
    types = {i["type"] for i in insights}
    assert {"performance_degradation", "rising_error_rate", "cache_hit_rate_collapse"} <= types
    assert all(i["severity"] in ("critical", "high", "medium", "low") for i in insights)
    assert "cost_creep" not in types  # cost per request is flat
    slow = [i for i in insights if i["metric"] == "model.response_time_p95"]
    assert [i["labels"] for i in slow] == [{"model": "m1"}]  # per model: m1 slowed, m2 did not


async def test_capacity_and_bottleneck_are_fitted_from_the_history() -> None:
    _, result = await _analysis()
    cap = result["capacity"]
    assert isinstance(cap, dict)
    assert cap["replicas"] == 2
    a = cap["nodes"]["a"]
    assert a["basis"] == "usl"
    assert a["usl"]["peak_concurrency"] == pytest.approx(math.sqrt(0.95 / 0.002), rel=0.25)
    bottleneck = result["bottleneck"]
    assert isinstance(bottleneck, dict)
    assert bottleneck["limiting_stage"] == "upstream"
    assert "upstream" in bottleneck["sentence"] and "saturates first" in bottleneck["sentence"]


async def test_recommendations_are_computed_from_the_data() -> None:
    pa, result = await _analysis(latency_objective=0.2)
    recs = result["recommendations"]
    assert isinstance(recs, list) and recs
    actions = {r["action"] for r in recs}
    assert "drain_node" in actions and "investigate_cache" in actions
    drain = next(r for r in recs if r["action"] == "drain_node")
    assert drain["target"] == {"node": "b"} and 0 < drain["estimated_impact"]["traffic_share"] < 1
    cache = next(r for r in recs if r["action"] == "investigate_cache")
    lost = cache["estimated_impact"]["extra_upstream_requests_per_day"]
    assert lost > 0
    assert pa.generate_recommendations(result["insights"]) == recs  # type: ignore[arg-type]
    up = [r for r in recs if r["action"] == "scale_up"]
    assert up, "a 0.2 s objective with 0.12 s unloaded latency needs more replicas"
    impact = up[0]["estimated_impact"]
    assert impact["replicas_needed"] > impact["replicas_now"]
    assert impact["latency_q_after_s"] <= 0.2 + 1e-9


async def test_underused_fleet_gets_scale_down_with_savings() -> None:
    _, result = await _analysis(load=0.3, replica_cost_per_hour=2.0)
    recs = result["recommendations"]
    assert isinstance(recs, list)
    down = [r for r in recs if r["action"] == "scale_down"]
    assert down and down[0]["potential_savings"]["per_day"] == pytest.approx(
        down[0]["replicas"] * 2.0 * 24
    )


async def test_empty_history_gives_no_findings_and_bad_periods_are_named() -> None:
    pa = PerformanceAnalytics(MemoryMetricsStore(), clock=ManualClock(wall_offset=NOW))
    result = await pa.analyze_performance_trends(3600)
    assert result["insights"] == [] and result["recommendations"] == []
    with pytest.raises(ConfigError, match="time_period"):
        await pa.analyze_performance_trends(-1)
    with pytest.raises(ConfigError, match="scale_down_utilization"):
        AnalyticsSettings(scale_down_utilization=0.9)
