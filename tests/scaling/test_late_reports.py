"""A load report a gateway process handed on after its serving parent stopped leading is sent
on to the new leader (:class:`LateResender`, through the old parent's real receiver and the
new leader's real receiver over an HTTP transport): played there when it comes in order; a
repeat (superseded) when the reporter's later report got there first; counted and logged when
no other candidate leads, when the leader cannot be reached, or when too many are under way."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any, cast

import httpx
import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.scaling._pods import PodLoadReceiver, ScalingReportSettings
from prsm.performance.scaling._tracker import LoadTracker
from prsm.performance.serve._pod_resend import MAX_IN_FLIGHT, LateResender

from .helpers import forwarding, until

KEY = "admin-key-of-the-candidates-77e1"


def _report(seq: int, *events: list[Any]) -> dict[str, Any]:
    return {"pod": "p", "instance": "p/1", "node": "vllm", "seq": seq, "interval": 0.2,
            "events": list(events), "dropped": 0, "retries": 0}  # fmt: skip


def _pair(
    handler: Any = None,
) -> tuple[PodLoadReceiver, LoadTracker, PodLoadReceiver, LoadTracker, LateResender]:
    """The old leader's receiver (no longer leading: the Lease names http://b:1) with its
    resender, and the new leader's receiver, which the transport reaches."""
    clock = ManualClock()
    old_tracker, new_tracker = LoadTracker(clock=clock), LoadTracker(clock=clock)
    old = PodLoadReceiver(old_tracker, ScalingReportSettings(), "vllm", clock=clock)
    new = PodLoadReceiver(new_tracker, ScalingReportSettings(), "vllm", clock=clock)

    def leader(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "http://b:1/admin/scaling/load"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        status, body = new.accept(request.content)
        return httpx.Response(status, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler or leader))
    resender = LateResender(KEY, "http://a:1/", timeout=1.0, client=client)
    old.gate, old.resend = (lambda: "http://b:1"), resender
    return old, old_tracker, new, new_tracker, resender


async def test_a_late_report_is_played_by_the_new_leader(caplog: pytest.LogCaptureFixture) -> None:
    old, old_tracker, new, new_tracker, resender = _pair()
    caplog.set_level(logging.INFO, "prsm.performance.scaling")
    started = _report(1, ["a", None], ["s", 0.0, "vllm"])
    assert not old.forwarded(started)  # not played here
    await resender.settle()
    assert old.late == 1 and old_tracker.in_flight == 0 and old_tracker.queued == 0
    assert resender.counts["played"] == 1 and new_tracker.in_flight == 1
    assert new.accept(orjson.dumps(_report(2, ["f", 0.5, False, "vllm"])))[0] == 200
    assert new_tracker.in_flight == 0 and new_tracker.service_time == 0.5  # it ends there
    assert "sent on to the leader" in caplog.text and "was played by the leader" in caplog.text
    assert KEY not in caplog.text
    await resender.close()


async def test_a_late_report_after_a_later_one_is_not_played_out_of_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old, _, new, new_tracker, resender = _pair()
    new.accept(orjson.dumps(_report(2, ["f", 0.5, False, "vllm"])))  # its end, first
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    old.forwarded(_report(1, ["a", None], ["s", 0.0, "vllm"]))
    await resender.settle()
    assert resender.counts == {"played": 0, "accepted": 0, "superseded": 1, "failed": 0,
                               "no_leader": 0, "dropped": 0}  # fmt: skip
    assert new_tracker.in_flight == 0  # never held in service for ever
    assert "after a later one: not played" in caplog.text
    await resender.close()


async def test_a_late_report_that_cannot_be_sent_on_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    old, _, _, _, resender = _pair(down)
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    old.forwarded(_report(1, ["a", None]))
    await resender.settle()
    broken = resender._client
    resender._client = cast(Any, SimpleNamespace(post=None))  # a defect: a TypeError
    old.forwarded(_report(2, ["a", None]))
    await resender.settle()
    resender._client = broken
    assert resender.counts["failed"] == 2 and "failed unexpectedly" in caplog.text
    old.gate = lambda: "http://a:1"  # the Lease still names this pod: no other leads
    old.forwarded(_report(2, ["a", None]))
    old.gate = lambda: ""
    old.forwarded(_report(3, ["a", None]))
    assert resender.counts["failed"] == 2 and resender.counts["no_leader"] == 2
    assert "ConnectError" in caplog.text and "no other candidate leads now" in caplog.text
    await resender.close()


async def test_re_sends_under_way_are_bounded() -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, content=b'{"played": true, "seq": 1}')

    old, _, _, _, resender = _pair(slow)
    for seq in range(MAX_IN_FLIGHT + 3):
        old.forwarded(_report(seq + 1, ["a", None]))
    assert resender.counts["dropped"] == 3
    release.set()
    await resender.settle()
    assert resender.counts["played"] == MAX_IN_FLIGHT
    await resender.close()


async def test_a_late_report_taken_by_a_workers_leaders_gateway_process_is_counted_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The new leader runs ``serve --workers N``: its gateway process answers through the real
    :func:`forward_pod_reports` ``accept`` (202 ``{"accepted": true}``), handing the report to
    its serving parent."""
    handed: list[dict[str, Any]] = []

    class Parent:  # the serving parent's link
        def send_now(self, message: dict[str, Any]) -> bool:
            handed.append(message)
            return True

    accept = forwarding(Parent())

    def leader(request: httpx.Request) -> httpx.Response:
        status, body = accept(request.content)
        return httpx.Response(status, content=body)

    old, _, _, _, resender = _pair(leader)
    caplog.set_level(logging.INFO, "prsm.performance.scaling")
    old.forwarded(_report(1, ["a", None], ["s", 0.0, "vllm"]))
    await resender.settle()
    assert resender.counts["accepted"] == 1 and resender.counts["failed"] == 0
    assert [m["report"]["seq"] for m in handed] == [1]
    assert "events are lost" not in caplog.text and "was taken by the leader" in caplog.text
    await resender.close()


async def test_the_re_sends_of_one_reporter_go_in_order() -> None:
    """seq 1's connection is slow: seq 2 waits for it (sent at once, it would land first and
    make seq 1 a repeat, its start lost)."""
    release = asyncio.Event()
    sent: list[int] = []
    clock = ManualClock()
    tracker = LoadTracker(clock=clock)
    new = PodLoadReceiver(tracker, ScalingReportSettings(), "vllm", clock=clock)

    async def leader(request: httpx.Request) -> httpx.Response:
        sent.append(orjson.loads(request.content)["seq"])
        if sent[-1] == 1:
            await release.wait()
        status, body = new.accept(request.content)
        return httpx.Response(status, content=body)

    old, _, _, _, resender = _pair(leader)
    old.forwarded(_report(1, ["a", None], ["s", 0.0, "vllm"]))
    old.forwarded(_report(2, ["a", None]))
    await until(lambda: sent == [1])
    for _ in range(20):
        await asyncio.sleep(0)
    assert sent == [1]  # seq 2 waits for seq 1
    release.set()
    await resender.settle()
    assert sent == [1, 2] and resender.counts["played"] == 2
    assert resender.counts["superseded"] == 0 and tracker.in_flight + tracker.queued == 2
    await resender.close()


async def test_every_re_send_is_counted_a_close_a_report_after_it_and_a_second_re_send(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bodies: list[dict[str, Any]] = []
    stall = asyncio.Event()

    async def leader(request: httpx.Request) -> httpx.Response:
        bodies.append(orjson.loads(request.content))
        await stall.wait()  # never set: under way at the close
        return httpx.Response(200, content=b'{"played": true, "seq": 1}')

    old, _, _, _, resender = _pair(leader)
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    old.forwarded(_report(1, ["a", None]))
    old.forwarded(_report(2, ["a", None]))
    old.forwarded(_report(3, ["a", None]) | {"resent": True})  # re-sent here by another pod
    assert resender.counts["dropped"] == 1 and "never sent on twice" in caplog.text
    await until(lambda: len(bodies) == 1)
    assert bodies[0]["resent"] is True  # marked, so that it is never sent on again
    await resender.close()  # one under way, one waiting
    assert resender.counts["dropped"] == 3 and "2 late load report(s)" in caplog.text
    old.forwarded(_report(4, ["a", None]))  # closed: not sent (its client is closed)
    await resender.settle()
    assert resender.counts["dropped"] == 4 and "re-sender is closed" in caplog.text
    assert sum(resender.counts.values()) == 4 and len(bodies) == 1
