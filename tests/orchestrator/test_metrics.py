"""The orchestrator's plain (scrape-time) metric families."""

from __future__ import annotations

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.monitoring._registry import MetricsRegistry
from prsm.performance.orchestrator._metrics import plain_family


def test_counter_is_exposed_with_its_labels() -> None:
    reg = MetricsRegistry()
    family = plain_family(reg, "counter", "things", "Things.", ["node"])
    family.labels("a").inc()
    family.labels("a").inc(2)
    family.labels("b").inc()
    assert reg.registry.get_sample_value("prsm_things_total", {"node": "a"}) == 3.0
    assert reg.registry.get_sample_value("prsm_things_total", {"node": "b"}) == 1.0
    assert b'prsm_things_total{node="a"} 3.0' in reg.exposition()
    family.remove("a")
    assert reg.registry.get_sample_value("prsm_things_total", {"node": "a"}) is None


def test_histogram_buckets_are_cumulative_and_le_inclusive() -> None:
    reg = MetricsRegistry()
    hist = plain_family(reg, "histogram", "wait_seconds", "Waits.").labels()
    for v in (0.001, 0.0011, 0.004, 100.0):
        hist.observe(v)
    sample = reg.registry.get_sample_value
    assert sample("prsm_wait_seconds_bucket", {"le": "0.001"}) == 1.0  # value == bound: in
    assert sample("prsm_wait_seconds_bucket", {"le": "0.005"}) == 3.0
    assert sample("prsm_wait_seconds_bucket", {"le": "60.0"}) == 3.0
    assert sample("prsm_wait_seconds_bucket", {"le": "+Inf"}) == 4.0
    assert sample("prsm_wait_seconds_count", {}) == 4.0
    assert sample("prsm_wait_seconds_sum", {}) == pytest.approx(100.0061)


def test_asking_again_shares_the_family_and_a_mismatch_is_refused() -> None:
    reg = MetricsRegistry()
    first = plain_family(reg, "counter", "things", "Things.", ["node"])
    assert plain_family(reg, "counter", "things", "Things.", ["node"]) is first
    with pytest.raises(ConfigError, match="prsm_things"):
        plain_family(reg, "histogram", "things", "Things.", ["node"])
    with pytest.raises(ValueError, match="expected labels"):
        first.labels("a", "b")
