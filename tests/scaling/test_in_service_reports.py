"""A report's ``in_service`` (the requests its reporter's earlier reports started and did not
end), on a manual clock: the reporter sends it as it was before the report's events (the
same on a retry); the receiver holds it from a reporter's first report in a term only (not
from a second, nor from a reporter back from being lost), ends it unfinished when the
reporter's lease passes, refuses a bad one with 400 naming the field, and plays an older
reporter's report without it as before. Under ``serve --workers N`` it reaches the serving
parent's receiver through the gateway process's real :func:`forward_pod_reports` and the
parent's frames, and a late report keeps it when sent on to the new leader."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.scaling._pods import PodLoadReceiver, ScalingReportSettings
from prsm.performance.scaling._tracker import LoadTracker
from prsm.performance.serve._pod_report import PodLoadReporter
from prsm.performance.workers._protocol import pack, unpack

from .helpers import forwarding
from .test_late_reports import _pair

START, END = ["s", 0.0, "vllm"], ["f", 2.0, False, "vllm"]


def _report(seq: int, *events: list[Any], **extra: Any) -> dict[str, Any]:
    return {"pod": "p", "instance": "p/1", "node": "vllm", "seq": seq, "interval": 0.2,
            "events": list(events), "dropped": 0, "retries": 0, **extra}  # fmt: skip


def _receiver(**settings: Any) -> tuple[PodLoadReceiver, LoadTracker, ManualClock]:
    clock = ManualClock()
    tracker = LoadTracker(clock=clock)
    receiver = PodLoadReceiver(tracker, ScalingReportSettings(**settings), "vllm", clock=clock)
    return receiver, tracker, clock


def _accept(receiver: PodLoadReceiver, report: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, body = receiver.accept(orjson.dumps(report))
    return status, orjson.loads(body)


async def test_the_reporter_sends_what_its_earlier_reports_held_the_same_on_a_retry() -> None:
    clock = ManualClock()
    bodies: list[dict[str, Any]] = []
    fail = [False, True, False, False]

    def scaler(request: httpx.Request) -> httpx.Response:
        bodies.append(orjson.loads(request.content))
        if fail.pop(0):
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"played": True})

    settings = ScalingReportSettings(url="http://s:1", key_env="K", node="vllm")
    client = httpx.AsyncClient(transport=httpx.MockTransport(scaler))
    reporter = PodLoadReporter(settings, "key", pod="p", instance="p/1", clock=clock, client=client)
    for node in ("vllm", "vllm", None):
        reporter.started(node=node)
    reporter.finished(1.0, node="other")  # nothing held there: not counted
    assert await reporter.send_once()
    reporter.finished(1.0, node="vllm")
    assert not await reporter.send_once()  # fails: sent again as it was
    reporter.started(node="vllm")  # (in the next report)
    assert await reporter.send_once()
    held = [["vllm", 2], [None, 1]]
    assert [b["in_service"] for b in bodies] == [[], held, held]
    assert bodies[1]["seq"] == bodies[2]["seq"] and bodies[2]["retries"] == 1
    assert await reporter.send_once()  # after the end and the start above
    assert bodies[-1]["in_service"] == [["vllm", 1], [None, 1]]
    await reporter.aclose(flush=False)


async def test_the_reporter_sends_no_more_than_a_scaler_takes() -> None:
    """More in service than ``max_events``: it sends that many (beyond, every report would
    be refused); a new scaler holds those."""
    settings = ScalingReportSettings(url="http://s:1", key_env="K", node="vllm", max_batch=3,
                                     max_events=3, max_backlog=10)  # fmt: skip
    first, old_tracker, clock = _receiver(max_batch=3, max_events=3)
    new_tracker = LoadTracker(clock=clock)
    second = PodLoadReceiver(new_tracker, settings, "vllm", clock=clock)
    scaler = [first]

    def handle(request: httpx.Request) -> httpx.Response:
        status, body = scaler[0].accept(request.content)
        return httpx.Response(status, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    reporter = PodLoadReporter(settings, "key", pod="p", instance="p/1", clock=clock, client=client)
    for node in ("vllm", "vllm", None, "vllm", "vllm"):
        reporter.started(node=node)
    while reporter.waiting:
        assert await reporter.send_once()
    assert old_tracker.in_flight == 5
    scaler[0] = second  # e.g. a new leader
    assert await reporter.send_once() and reporter.dropped == 0
    assert second.snapshot()[0]["resumed"] == 3 and new_tracker.in_flight == 3
    await reporter.aclose(flush=False)


def test_a_reporter_s_first_report_in_a_term_is_held_once() -> None:
    receiver, tracker, clock = _receiver(lease=1.0)
    assert _accept(receiver, _report(5, END, in_service=[["vllm", 3], [None, 1]]))[0] == 200
    assert (tracker.in_flight, tracker.queued, tracker.take_window().mean_wait) == (3, 0, 0.0)
    assert receiver.snapshot()[0]["in_service"] == 3 and receiver.snapshot()[0]["resumed"] == 4
    # a second report names them again: not counted twice
    assert _accept(receiver, _report(6, in_service=[["vllm", 2], [None, 1]]))[0] == 200
    assert tracker.in_flight == 3
    clock.advance(1.5)  # its lease passes: what it held ends unfinished, as before
    assert receiver.expire() == ["p/1"] and receiver.snapshot()[0]["ended_unfinished"] == 3
    assert tracker.in_flight == 0 and tracker.take_window().error_rate == 1.0
    # back from being lost: its requests were ended already, not held again
    assert _accept(receiver, _report(7, in_service=[["vllm", 2]]))[0] == 200
    assert tracker.in_flight == 0
    # a new term: held again from its first report there
    receiver.end_term()
    tracker.end_term()
    assert _accept(receiver, _report(8, END, in_service=[["vllm", 2]]))[0] == 200
    assert tracker.in_flight == 1 and tracker.take_window().error_rate == 0.0


def test_an_older_reporter_s_report_without_it_is_played_as_before() -> None:
    receiver, tracker, _ = _receiver()
    assert _accept(receiver, _report(3, END, START))[0] == 200  # its end: not held, skipped
    assert (tracker.in_flight, tracker.service_time) == (1, None)
    assert receiver.snapshot()[0]["resumed"] == 0


@pytest.mark.parametrize(
    "value",
    [{"vllm": 1}, [["vllm"]], [["vllm", -1]], [["vllm", 1.0]], [["vllm", True]], [[3, 1]],
     [["vllm", 1], ["vllm", 1]], [["x" * 201, 1]], [["vllm", 5_001]], [["a", 3_000], ["b", 3_000]],
     [[f"n{i}", 0] for i in range(5_001)], None],
)  # fmt: skip
def test_a_bad_in_service_is_refused_naming_it(value: Any) -> None:
    receiver, tracker, _ = _receiver(max_events=5_000)
    status, body = _accept(receiver, _report(1, START, in_service=value))
    assert status == 400 and body["error"]["message"].startswith("in_service:")
    assert tracker.in_flight == 0 and receiver.snapshot() == [] and receiver.refused == 1


async def test_under_workers_it_reaches_the_parent_and_a_late_report_keeps_it() -> None:
    handed: list[bytes] = []

    class Parent:  # the serving parent's link: the message framed as it is sent
        def send_now(self, message: dict[str, Any]) -> bool:
            handed.append(pack(message)[4:])
            return True

    accept = forwarding(Parent())
    bad = orjson.dumps(_report(1, in_service=[["vllm", -2]]))
    assert accept(bad)[0] == 400 and handed == []
    assert accept(orjson.dumps(_report(1, END, in_service=[["vllm", 2], [None, 1]])))[0] == 202
    receiver, tracker, _ = _receiver()
    assert receiver.forwarded(unpack(handed[0])["report"])  # as the parent plays it
    assert tracker.in_flight == 2 and receiver.snapshot()[0]["resumed"] == 3
    # a late report, sent on by the old leader to the new one, names them there too
    old, _, _, new_tracker, resender = _pair()
    assert not old.forwarded(_report(4, END, in_service=[["vllm", 2]]))
    await resender.settle()
    assert resender.counts["played"] == 1 and new_tracker.in_flight == 1
    await resender.close()
