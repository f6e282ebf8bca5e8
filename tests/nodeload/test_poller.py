"""The node poller on a manual clock with the in-library fetcher double: readings, failures
and back-off, nodes that publish nothing, staleness, local sources and the gauges."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring._registry import MetricsRegistry
from prsm.performance.nodeload import NodePoller, StaticMetricsFetcher
from prsm.performance.routing._balancer import AILoadBalancer
from prsm.performance.routing._node import NodeMetrics, NodeSpec
from prsm.performance.routing._registry import NodeRegistry
from prsm.performance.routing._settings import BalancerSettings

from .expositions import UNRELATED, VLLM_V0

URL = "http://10.0.0.1:8000/metrics"
SETTINGS = BalancerSettings(signal_ttl=3.0, signal_decay=4.0, poll_max_backoff=8.0)


def _world(
    fetcher: StaticMetricsFetcher, *nodes: NodeSpec
) -> tuple[NodePoller, AILoadBalancer, ManualClock, MetricsRegistry]:
    clock = ManualClock()
    registry = NodeRegistry(nodes or [NodeSpec("v", models={"m"}, url="http://10.0.0.1:8000/v1")])
    balancer = AILoadBalancer(registry, settings=SETTINGS, clock=clock)
    metrics = MetricsRegistry()
    poller = NodePoller(
        registry, SETTINGS, fetcher=fetcher, metrics=metrics, clock=clock, rng=random.Random(0)
    )
    return poller, balancer, clock, metrics


def _value(metrics: MetricsRegistry, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"prsm_{name}", labels)


async def test_a_good_poll_is_stored_with_its_time_and_source() -> None:
    fetcher = StaticMetricsFetcher({URL: (200, VLLM_V0.encode())})
    poller, balancer, clock, metrics = _world(fetcher)
    clock.advance(10.0)
    await poller.poll_once()
    entry = balancer.registry.entry("v")
    assert (entry.source, entry.reported_at) == ("vllm", 10.0)
    assert entry.metrics.queue_depth == 7 and entry.metrics.memory == pytest.approx(0.9125)
    assert _value(metrics, "node_load_polls_total", node="v", outcome="ok") == 1.0
    assert _value(metrics, "node_load_signal_weight", node="v") == 1.0
    assert _value(metrics, "node_load", node="v") == pytest.approx(balancer.load("v"))
    await poller.aclose()


async def test_failures_back_off_and_the_reading_goes_stale_visibly() -> None:
    answers: dict[str, object] = {URL: (200, VLLM_V0.encode())}
    fetcher = StaticMetricsFetcher(answers)  # type: ignore[arg-type]
    poller, balancer, clock, metrics = _world(fetcher)
    await poller.poll_once()
    fetcher.answers[URL] = ConnectionRefusedError("connection refused")
    polled_at = []
    for _ in range(24):  # 12 s of ticks, 0.5 s apart
        clock.advance(0.5)
        before = len(fetcher.calls)
        await poller.poll_once()
        if len(fetcher.calls) > before:
            polled_at.append(clock.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(polled_at)]
    assert all(later >= earlier for earlier, later in itertools.pairwise(gaps))
    assert gaps[-1] >= 2.0  # backed off: far fewer polls than ticks
    assert len(polled_at) < 10
    report = balancer.load_report("v")
    assert report["state"] == "stale" and report["weight"] == 0.0
    assert report["poll_failures"] == len(polled_at)
    assert "ConnectionRefusedError" in report["poll_error"]
    assert report["age"] == pytest.approx(12.0)
    assert _value(metrics, "node_load_signal_age_seconds", node="v") == pytest.approx(12.0)
    assert _value(metrics, "node_load_signal_weight", node="v") == 0.0
    errors = _value(metrics, "node_load_polls_total", node="v", outcome="error")
    assert errors == len(polled_at)
    # a stale node is scored from what the gateway sees: idle here, so load 0
    assert balancer.load("v") == 0.0
    fetcher.answers[URL] = (200, VLLM_V0.encode())  # it recovers: fresh again, no back-off left
    clock.advance(8.0)
    await poller.poll_once()
    assert balancer.load_report("v")["state"] == "fresh"
    assert balancer.registry.entry("v").poll_failures == 0
    await poller.aclose()


async def test_a_node_that_publishes_nothing_is_rechecked_rarely() -> None:
    hosted = NodeSpec("api", models={"m"}, url="https://api.example/v1")
    silent = NodeSpec("plain", models={"m"}, url="http://10.0.0.2:80/v1")
    fetcher = StaticMetricsFetcher(
        {
            "https://api.example/metrics": (404, b"not found"),
            "http://10.0.0.2:80/metrics": (200, UNRELATED.encode()),
        }
    )
    poller, balancer, clock, metrics = _world(fetcher, hosted, silent)
    await poller.poll_once()
    for _ in range(10):
        clock.advance(1.0)
        await poller.poll_once()
    assert len(fetcher.calls) == 2  # asked once each: recheck is SETTINGS.poll_recheck
    assert balancer.load_report("api")["state"] == "none"
    assert "HTTP 404" in balancer.load_report("api")["poll_error"]
    assert _value(metrics, "node_load_polls_total", node="plain", outcome="unsupported") == 1.0
    assert _value(metrics, "node_load_signal_age_seconds", node="api") == float("inf")
    clock.advance(SETTINGS.poll_recheck)
    await poller.poll_once()
    assert len(fetcher.calls) == 4
    await poller.aclose()


async def test_only_http_nodes_are_polled_and_metrics_url_overrides() -> None:
    nodes = [
        NodeSpec("inproc", models={"m"}),
        NodeSpec("local", models={"m"}, meta={"upstream": "local"}),
        NodeSpec("off", models={"m"}, url="http://10.0.0.3/v1", metrics_url=""),
        NodeSpec("side", models={"m"}, url="http://10.0.0.4/v1", metrics_url="http://10.0.0.4:9/m"),
    ]
    fetcher = StaticMetricsFetcher()
    poller, *_ = _world(fetcher, *nodes)
    assert poller.targets() == {"side": "http://10.0.0.4:9/m"}
    await poller.poll_once()
    assert fetcher.retained == {"http://10.0.0.4:9/m"}
    await poller.aclose()


class _Workers:
    def __init__(self) -> None:
        self.readings: dict[str, NodeMetrics] = {}

    def node_metrics(self) -> Mapping[str, NodeMetrics]:
        return self.readings


async def test_local_sources_report_every_tick_and_removed_nodes_lose_their_series() -> None:
    source = _Workers()
    poller, balancer, _, metrics = _world(
        StaticMetricsFetcher(), NodeSpec("w0", models={"m"}), NodeSpec("w1", models={"m"})
    )
    poller.add_source(source, "worker")
    source.readings = {"w0": NodeMetrics(cpu=0.9, memory=0.2, queue_depth=5), "gone": NodeMetrics()}
    poller.tick()
    assert balancer.registry.entry("w0").source == "worker"
    assert balancer.registry.metrics("w0").queue_depth == 5
    assert balancer.load_report("w1")["state"] == "none"
    assert _value(metrics, "node_load", node="w1") == 0.0
    balancer.registry.remove("w1")
    poller.tick()
    assert _value(metrics, "node_load", node="w1") is None
    await poller.aclose()
