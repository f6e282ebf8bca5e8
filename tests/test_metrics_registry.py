from __future__ import annotations

import prometheus_client
import pytest

from prsm.performance import ConfigError, MetricsRegistry


def test_families_are_shared_by_name_and_kept_out_of_the_global_registry() -> None:
    m = MetricsRegistry()
    c1 = m.counter("things", "Things.", ["node"])
    c2 = m.counter("things", "Things.", ["node"])
    assert c1 is c2
    c1.labels(node="a").inc(3)
    text = m.exposition().decode()
    assert 'prsm_things_total{node="a"} 3.0' in text
    assert prometheus_client.REGISTRY.get_sample_value("prsm_things_total", {"node": "a"}) is None


def test_conflicting_registration_is_an_error() -> None:
    m = MetricsRegistry()
    m.counter("x", "X.", ["a"])
    with pytest.raises(ConfigError, match="already registered"):
        m.gauge("x", "X.", ["a"])
    with pytest.raises(ConfigError, match="already registered"):
        m.counter("x", "X.", ["b"])


def test_histogram_uses_latency_buckets() -> None:
    m = MetricsRegistry()
    h = m.histogram("lat_seconds", "Latency.")
    h.observe(0.0003)
    assert 'prsm_lat_seconds_bucket{le="0.0005"} 1.0' in m.exposition().decode()
