"""Gateway pods reporting their load to the pod that scales the Deployment, on a manual clock:
the reporter's batching, retries and bounded backlog (its HTTP calls answered in memory by
the scaler's real receiver), and the receiver's order, repeats and leases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MetricsRegistry
from prsm.performance.scaling._pods import PodLoadReceiver, ScalingReportSettings
from prsm.performance.scaling._tracker import LoadTracker
from prsm.performance.serve._pod_report import PodLoadReporter

from .helpers import until

KEY = "admin-key-pods-9c2e"
Handler = Callable[[httpx.Request], httpx.Response]


def _settings(**extra: Any) -> ScalingReportSettings:
    base: dict[str, Any] = {"url": "http://scaler:8080", "key_env": "K", "node": "vllm",
                            "interval": 0.2, "max_batch": 3}  # fmt: skip
    return ScalingReportSettings(**{**base, **extra})


class Scaler:
    """The scaler pod's receiver behind an in-memory transport; ``fail`` decides per call
    whether it fails before playing (``"down"``), after (``"lost"``: the answer is lost)."""

    def __init__(self, clock: ManualClock, settings: ScalingReportSettings) -> None:
        self.tracker = LoadTracker(clock=clock)
        self.receiver = PodLoadReceiver(self.tracker, settings, "vllm", clock=clock)
        self.reports: list[dict[str, Any]] = []
        self.fail: list[str] = []
        self.status: int | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/admin/scaling/load"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        self.reports.append(orjson.loads(request.content))
        mode = self.fail.pop(0) if self.fail else "ok"
        if mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.status is not None:
            return httpx.Response(self.status, json={"error": {"message": "no"}})
        status, body = self.receiver.accept(request.content)
        if mode == "lost":
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(status, content=body)

    def reporter(self, clock: ManualClock, settings: ScalingReportSettings) -> PodLoadReporter:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return PodLoadReporter(settings, KEY, pod="gw-1", instance="gw-1/gateway/1/ab",
                               clock=clock, client=client)  # fmt: skip


async def test_reports_go_every_interval_at_once_when_full_and_as_heartbeats() -> None:
    clock, settings = ManualClock(), _settings()
    scaler = Scaler(clock, settings)
    reporter = scaler.reporter(clock, settings)
    reporter.start()
    reporter.arrived("user:a")
    reporter.started(node="vllm")
    await until(lambda: clock.sleepers == 1)
    assert scaler.reports == []  # nothing before the interval
    clock.advance(0.2)
    await until(lambda: len(scaler.reports) == 1)
    assert scaler.reports[0]["events"] == [["a", "user:a"], ["s", 0.0, "vllm"]]
    assert scaler.tracker.in_flight == 1
    await until(lambda: clock.sleepers == 1)
    reporter.finished(0.5, node="vllm")
    reporter.arrived(None)
    reporter.started(node="vllm")  # a full batch (3): sent without waiting
    await until(lambda: len(scaler.reports) == 2)
    assert clock.monotonic() == 0.2 and len(scaler.reports[1]["events"]) == 3
    assert scaler.tracker.service_time == 0.5
    await until(lambda: clock.sleepers == 1)
    clock.advance(0.2)  # nothing new: an empty report keeps the lease
    await until(lambda: len(scaler.reports) == 3)
    assert scaler.reports[2]["events"] == [] and [r["seq"] for r in scaler.reports] == [1, 2, 3]
    (pod,) = scaler.receiver.snapshot()
    assert pod["pod"] == "gw-1" and pod["reports"] == 3 and pod["in_service"] == 1
    await reporter.aclose()


async def test_a_failed_report_is_sent_again_with_its_seq_and_played_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, settings = ManualClock(), _settings()
    scaler = Scaler(clock, settings)
    scaler.fail = ["down", "lost"]  # refused, then played with its answer lost
    reporter = scaler.reporter(clock, settings)
    reporter.start()
    reporter.arrived("user:a")
    await until(lambda: clock.sleepers == 1)
    with caplog.at_level(logging.WARNING):
        clock.advance(0.2)
        await until(lambda: len(scaler.reports) == 1 and clock.sleepers == 1)
        clock.advance(0.4)  # back-off: 2 intervals, then 4
        await until(lambda: len(scaler.reports) == 2 and clock.sleepers == 1)
        clock.advance(0.8)
        await until(lambda: len(scaler.reports) == 3)
    assert [r["seq"] for r in scaler.reports] == [1, 1, 1]
    assert reporter.retries == 2 and reporter.sent == 1 and reporter.failures == 0
    assert scaler.tracker.take_window().arrivals == 1  # played once
    assert scaler.receiver.snapshot()[0]["duplicates"] == 1
    assert any("ConnectError" in m for m in caplog.messages)
    assert any("reach the scaler" in m and "2 retried" in m for m in caplog.messages)
    assert KEY not in caplog.text
    await reporter.aclose()


async def test_the_backlog_is_bounded_and_every_drop_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, settings = ManualClock(), _settings(max_backlog=5, max_batch=2)
    scaler = Scaler(clock, settings)
    scaler.fail = ["down"]
    reporter = scaler.reporter(clock, settings)
    with caplog.at_level(logging.WARNING):
        for _ in range(8):
            reporter.arrived(None)
    assert reporter.dropped == 3 and reporter.waiting == 5
    assert any("1 event(s) dropped" in m for m in caplog.messages)  # at once
    with caplog.at_level(logging.WARNING):
        assert not await reporter.send_once()  # the scaler is down: the batch waits
        assert not any("3 event(s) dropped" in m for m in caplog.messages)  # within 30 s
        clock.advance(30)
        reporter._warn()  # as the sending loop does after each report
        assert any("3 event(s) dropped" in m for m in caplog.messages)
        assert await reporter.send_once()
    assert scaler.reports[-1]["dropped"] == 3 and scaler.reports[-1]["retries"] == 1
    assert scaler.receiver.snapshot()[0]["dropped"] == 3  # the scaler sees the count too
    await reporter.aclose()  # the rest goes in a last report
    assert reporter.waiting == 0 and scaler.tracker.take_window().arrivals == 5


async def test_a_refused_report_is_dropped_and_logged_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, settings = ManualClock(), _settings()
    scaler = Scaler(clock, settings)
    scaler.status = 401
    reporter = scaler.reporter(clock, settings)
    reporter.arrived(None)
    with caplog.at_level(logging.ERROR):
        assert not await reporter.send_once()
    assert reporter.dropped == 1 and reporter.waiting == 0 and reporter.failures == 0
    assert any("refused a load report" in m and "401" in m for m in caplog.messages)
    assert KEY not in caplog.text and KEY not in str(reporter.snapshot())
    await reporter.aclose()


def _report(instance: str, seq: Any, events: list[Any], **extra: Any) -> bytes:
    body = {"pod": instance.partition("/")[0], "instance": instance, "node": "vllm", "seq": seq,
            "interval": 0.2, "events": events, "dropped": 0, "retries": 0, **extra}  # fmt: skip
    return orjson.dumps(body)


async def test_a_pod_silent_for_its_lease_ends_what_it_held_unfinished() -> None:
    clock = ManualClock()
    tracker = LoadTracker(clock=clock)
    metrics = MetricsRegistry()
    receiver = PodLoadReceiver(tracker, ScalingReportSettings(lease=1.0), "vllm", clock=clock,
                               metrics=metrics)  # fmt: skip
    changes: list[int] = []
    receiver.on_change = lambda: changes.append(len(receiver.reporters))
    start = [["a", None], ["s", 0.0, "vllm"]]
    assert receiver.accept(_report("a/1", 1, start * 2))[0] == 200
    assert receiver.accept(_report("b/1", 1, start))[0] == 200
    assert tracker.in_flight == 3
    clock.advance(0.6)
    receiver.accept(_report("b/1", 2, []))  # b's heartbeat
    clock.advance(0.5)
    assert receiver.expire() == ["a/1"]  # 1.1 s silent
    assert changes == [1, 2, 2]  # a joined, b joined, a lost (the parent pushes each)
    assert tracker.in_flight == 1
    assert "prsm_scaling_pods_reporting 1.0" in metrics.exposition().decode()
    window = tracker.take_window()
    assert window.arrivals == 3 and window.error_rate == 1.0  # a's two, ended unfinished
    states = {p["instance"]: p for p in receiver.snapshot()}
    assert states["a/1"]["state"] == "lost" and states["a/1"]["ended_unfinished"] == 2
    assert states["b/1"]["state"] == "reporting" and states["b/1"]["seconds_since"] == 0.5
    receiver.accept(_report("a/1", 2, [["f", 1.0, False, "vllm"]]))  # late: not twice
    assert tracker.in_flight == 1 and tracker.take_window().error_rate is None
    assert receiver.accept(_report("c/1", 1, [], interval=1.0))[0] == 200
    assert {p["instance"]: p["state"] for p in receiver.snapshot()}["a/1"] == "reporting"
    clock.advance(2.5)  # c's lease is three of its intervals: 3 s
    assert receiver.expire() == ["a/1", "b/1"]


async def test_the_lease_task_expires_pods_on_the_clock() -> None:
    clock = ManualClock()
    tracker = LoadTracker(clock=clock)
    receiver = PodLoadReceiver(tracker, ScalingReportSettings(lease=1.0), "vllm", clock=clock)
    receiver.accept(_report("a/1", 1, [["a", None], ["s", 0.0, "vllm"]]))
    task = asyncio.create_task(receiver.run())
    await until(lambda: clock.sleepers == 1)
    clock.advance(0.5)
    await until(lambda: clock.sleepers == 1)
    assert tracker.in_flight == 1
    clock.advance(0.5)
    await until(lambda: clock.sleepers == 1)
    clock.advance(0.5)
    await until(lambda: tracker.in_flight == 0)
    task.cancel()


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        (b"{", 400, "malformed JSON"),
        (b"[]", 400, "JSON object"),
        (_report("a/1", 1, [], node="other"), 400, "scales node 'vllm'"),
        (_report("a/1", 1, [["x", 1]]), 400, "unknown load event"),
        (_report("a/1", 1, [["s", "soon", "vllm"]]), 400, "bad field"),
        (_report("a/1", "1", []), 400, "seq"),
        (_report("a/1", 0, []), 400, "seq: must be > 0"),
        (_report("a/1", 1, [], interval=1e9), 400, "interval: at most 60 s"),
        (_report("a/1", 1, [["a", None]] * 11), 413, "at most 10"),
    ],
)
def test_a_bad_report_is_refused_and_nothing_of_it_played(
    body: bytes, status: int, problem: str
) -> None:
    clock = ManualClock()
    tracker = LoadTracker(clock=clock)
    settings = ScalingReportSettings(max_events=10, max_batch=10)
    receiver = PodLoadReceiver(tracker, settings, "vllm", clock=clock)
    got, answer = receiver.accept(body)
    assert got == status and problem in orjson.loads(answer)["error"]["message"]
    assert tracker.take_window().arrivals == 0 and receiver.refused == 1
