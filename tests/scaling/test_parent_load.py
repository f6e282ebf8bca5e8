"""``serve --workers N`` scaling a Kubernetes Deployment: the serving parent's
:class:`PoolHost` runs the scaler (no local pool at all here), and each gateway process's
:class:`LoadReporter` sends the load it sees, played into the parent's tracker in order."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from prsm.performance.clock import Clock
from prsm.performance.monitoring import MetricsRegistry
from prsm.performance.routing import NodeRegistry, NodeSpec
from prsm.performance.scaling import (
    FakeKubernetesAPI,
    KubernetesScalingSettings,
    PredictiveSettings,
)
from prsm.performance.serve._pool_client import LoadReporter, SharedPoolUpstream
from prsm.performance.serve._remote_scaling import kubernetes_scaler
from prsm.performance.serve._shared_pool import PoolHost

from ..benchmarks.quick import need
from .helpers import until

TOKEN_ENV = "PRSM_TEST_PARENT_KUBE_TOKEN"


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[PoolHost]:
    need("kubernetes", extra="kubernetes")  # under CI=true its absence fails
    monkeypatch.setenv(TOKEN_ENV, "t0k3n")
    with FakeKubernetesAPI(token="t0k3n") as api:
        api.add_deployment("llm", replicas=1, namespace="serving")
        kube = KubernetesScalingSettings(deployment="llm", namespace="serving", node="vllm",
                                         host=api.url, token_env=TOKEN_ENV)  # fmt: skip
        scaling = PredictiveSettings(interval=3600)  # steps an hour apart: none in the test

        def remote(registry: NodeRegistry, clock: Clock, metrics: MetricsRegistry) -> Any:
            return kubernetes_scaler(kube, scaling, clock=clock, metrics=metrics)

        h = PoolHost(None, scaling, remote)
        h.start()
        yield h
        h.stop()


async def test_the_parent_tracks_every_process_and_ends_what_a_lost_one_held(
    host: PoolHost, caplog: pytest.LogCaptureFixture
) -> None:
    assert host.scaler is not None and host._local is None  # a scaler, no local pool
    tracker = host.scaler.tracker
    scaler = host.scaler  # its first step, at its start, takes a window: let it pass first
    await until(lambda: len(scaler.snapshot()["steps"]) == 1, limit=30)
    links = [SharedPoolUpstream(host.path, timeout=10) for _ in range(2)]
    for link in links:
        assert await link.connect() == []  # no local workers to route to
    first, second = (LoadReporter(link) for link in links)
    assert host._loop is not None  # a replica the host scales (Ray's, say), added on its loop
    host._loop.call_soon_threadsafe(host.registry.add, NodeSpec("replica-0"))
    await until(lambda: "replica-0" in host.registry)
    first.arrived("user:a")
    first.started(node="replica-0")
    second.arrived(None)
    second.started(node="replica-0")  # held while its process goes away
    first.finished(0.25, node="replica-0")
    await until(lambda: first.sent == 3 and second.sent == 2)
    await until(lambda: tracker.in_flight == 1)  # the first's call ended, the second's not
    assert host.registry.entry("replica-0").in_flight == 1  # a drain would wait for it
    assert tracker.service_time == 0.25
    with caplog.at_level(logging.ERROR):
        assert links[0].send_now({"op": "load", "events": [["x", 1]]})  # malformed
        await until(lambda: any("load report was refused" in m for m in caplog.messages))
    await links[1].aclose()  # the second gateway process goes away
    await until(lambda: tracker.in_flight == 0)
    assert host.registry.entry("replica-0").in_flight == 0
    window = tracker.take_window()
    assert window.arrivals == 2 and window.error_rate == 0.5  # its call ended unfinished
    first.arrived("user:a")  # the first's connection still plays its load
    first.started()
    await until(lambda: tracker.in_flight == 1)
    await links[0].aclose()
