from __future__ import annotations

import prometheus_client
import pytest

from prsm.performance import ConfigError, MetricsRegistry
from prsm.performance.monitoring._registry import merge_exposition


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


def test_merging_another_processs_exposition_keeps_one_block_per_family() -> None:
    here, there = MetricsRegistry(), MetricsRegistry()
    here.counter("requests", "Requests.").inc(2)
    there.counter("requests", "Requests, elsewhere.").inc(5)
    there.gauge("workers_ready", "Workers ready.").set(3)
    text, left_out = merge_exposition(here.exposition(), there.exposition())
    lines = text.decode().splitlines()
    assert "prsm_workers_ready 3.0" in lines  # theirs, added
    assert "prsm_requests_total 2.0" in lines and "prsm_requests_total 5.0" not in lines
    assert left_out == ["prsm_requests_total", "prsm_requests_created"]
    helps = [line.split()[2] for line in lines if line.startswith("# HELP")]
    assert len(helps) == len(set(helps))
