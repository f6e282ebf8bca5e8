"""Alert rules as pure functions of history and now; notifications deduplicated."""

from __future__ import annotations

import pytest

from prsm.performance.monitoring import (
    AlertRule,
    AlertSettings,
    BurnWindow,
    MemoryMetricsStore,
    NotifiedState,
    Sample,
    SLORule,
    alert_transitions,
    evaluate_alerts,
    slo_burn_rate,
)
from prsm.performance.monitoring._store import labels_key

T0 = 1_700_000_000.0


def put(store: MemoryMetricsStore, metric: str, values: list[float], start: float = T0,
        step: float = 1.0, **labels: str) -> float:  # fmt: skip
    store.write(
        [Sample(metric, labels_key(labels), start + i * step, v) for i, v in enumerate(values)]
    )
    return start + (len(values) - 1) * step


def rules(*r: AlertRule, **kw: object) -> AlertSettings:
    return AlertSettings(rules=r, **kw)  # type: ignore[arg-type]


def test_a_threshold_must_hold_for_its_duration_before_firing() -> None:
    store = MemoryMetricsStore()
    rule = AlertRule("Hot", "system.cpu_usage", ">", 90, for_seconds=30, severity="page")
    now = put(store, "system.cpu_usage", [50.0] * 10 + [95.0] * 20)
    (status,) = evaluate_alerts(rules(rule), store, now)
    assert status.state == "pending"
    assert status.since == T0 + 10
    now = put(store, "system.cpu_usage", [95.0] * 15, start=now + 1)
    (status,) = evaluate_alerts(rules(rule), store, now)
    assert status.state == "firing"
    assert status.labels == {"alertname": "Hot", "severity": "page"}
    assert status.value == 95.0
    assert "system.cpu_usage > 90" in status.summary


def test_one_alert_per_matching_series_and_label_filters() -> None:
    store = MemoryMetricsStore()
    put(store, "node.latency_p95", [3.0], node="a")
    now = put(store, "node.latency_p95", [0.1], node="b")
    found = evaluate_alerts(rules(AlertRule("Slow", "node.latency_p95", ">", 1.0)), store, now)
    assert [s.labels["node"] for s in found] == ["a"]
    only_b = AlertRule("SlowB", "node.latency_p95", ">", 0.01, labels={"node": "b"})
    assert [s.labels["node"] for s in evaluate_alerts(rules(only_b), store, now)] == ["b"]


def test_a_stale_series_is_absent() -> None:
    store = MemoryMetricsStore()
    now = put(store, "x", [10.0])
    rule = AlertRule("X", "x", ">=", 10)
    assert len(evaluate_alerts(rules(rule, staleness=5.0), store, now + 4)) == 1
    assert evaluate_alerts(rules(rule, staleness=5.0), store, now + 30) == []


@pytest.mark.parametrize(
    ("condition", "threshold", "values", "holds"),
    [(">", 1, [2, 2], True), (">=", 2, [2, 2], True), ("<", 1, [0, 0], True),
     ("<=", 0, [0, 1], False), ("==", 3, [3, 3], True), ("!=", 3, [3, 3], False)],
)  # fmt: skip
def test_conditions(condition: str, threshold: float, values: list[float], holds: bool) -> None:
    store = MemoryMetricsStore()
    now = put(store, "x", [float(v) for v in values])
    found = evaluate_alerts(rules(AlertRule("X", "x", condition, threshold)), store, now)
    assert bool(found) is holds


def slo_history(store: MemoryMetricsStore, *, seconds: int, requests: float, bad: float,
                start: float = T0, kind: str = "errors") -> float:  # fmt: skip
    put(store, "slo.requests", [requests] * seconds, start=start)
    return put(store, f"slo.{kind}", [bad] * seconds, start=start)


def test_burn_rate_is_bad_share_over_budget() -> None:
    store = MemoryMetricsStore()
    now = slo_history(store, seconds=600, requests=100.0, bad=1.0)
    slo = SLORule("avail", 0.999)
    assert slo_burn_rate(slo, store, now, 300.0) == pytest.approx(10.0)
    assert slo_burn_rate(slo, store, now + 10_000, 300.0) is None  # no requests in the window


def test_multi_window_burn_rate_needs_both_windows() -> None:
    window = BurnWindow(3600.0, 300.0, 14.4, "page")
    slo = SLORule("avail", 0.999, windows=(window,))
    settings = AlertSettings(slos=(slo,))
    store = MemoryMetricsStore()
    # an hour at a 2 % error ratio (burn 20), then a clean last 5 minutes: the short window
    # says it is over, so no page
    end = slo_history(store, seconds=3300, requests=100.0, bad=2.0)
    now = slo_history(store, seconds=300, requests=100.0, bad=0.0, start=end + 1)
    assert evaluate_alerts(settings, store, now) == []
    # errors again: both windows burn
    now = slo_history(store, seconds=300, requests=100.0, bad=3.0, start=now + 1)
    (status,) = evaluate_alerts(settings, store, now)
    assert status.kind == "burn_rate"
    assert status.labels == {
        "alertname": "avail", "severity": "page", "slo_kind": "availability", "window": "1h/5m"
    }  # fmt: skip
    assert status.value > 14.4


def test_a_latency_slo_counts_slow_requests_of_its_model() -> None:
    store = MemoryMetricsStore()
    put(store, "slo.model_requests", [10.0] * 400, model="m")
    now = put(store, "slo.model_slow", [5.0] * 400, model="m")
    put(store, "slo.model_requests", [10.0] * 400, model="other")
    slo = SLORule("lat", 0.99, kind="latency", model="m",
                  windows=(BurnWindow(300.0, 60.0, 10.0, "ticket"),))  # fmt: skip
    (status,) = evaluate_alerts(AlertSettings(slos=(slo,)), store, now)
    assert status.labels["model"] == "m"
    assert status.value == pytest.approx(50.0)


def test_transitions_notify_once_then_resolve_and_remind() -> None:
    store = MemoryMetricsStore()
    rule = AlertRule("X", "x", ">", 1)
    settings = rules(rule)
    now = put(store, "x", [5.0])
    state, notes = alert_transitions(
        NotifiedState(), evaluate_alerts(settings, store, now), now, 60
    )
    assert [n.status for n in notes] == ["firing"]
    now = put(store, "x", [5.0], start=now + 1)
    state, notes = alert_transitions(state, evaluate_alerts(settings, store, now), now, 60)
    assert notes == []  # deduplicated
    now = put(store, "x", [5.0], start=now + 60)
    state, notes = alert_transitions(state, evaluate_alerts(settings, store, now), now, 60)
    assert [(n.status, n.reminder) for n in notes] == [("firing", True)]
    assert notes[0].alert.since == T0  # it has been firing since the start
    now = put(store, "x", [0.0], start=now + 1)
    state, notes = alert_transitions(state, evaluate_alerts(settings, store, now), now, 60)
    assert [n.status for n in notes] == ["resolved"]
    assert state.firing == {}


def test_pending_alerts_are_not_notified() -> None:
    store = MemoryMetricsStore()
    now = put(store, "x", [5.0])
    statuses = evaluate_alerts(rules(AlertRule("X", "x", ">", 1, for_seconds=60)), store, now)
    state, notes = alert_transitions(NotifiedState(), statuses, now, 0)
    assert notes == []
    assert next(iter(state.pending.values())).state == "pending"
