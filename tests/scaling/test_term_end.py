"""A pod that stops leading keeps nothing of its term's requests (on a manual clock, a real
:class:`LeaderScaler` with its real :class:`PodLoadReceiver` running as the pod runs it): A
takes a reporter's 10 requests, 3 in service and 7 waiting, hands the Lease to B and stands by
while its receiver's leases run on; re-elected, A's first decision sees nothing in flight or
queued and no error (the reporter's requests went on at B, which A did not observe), and a
finish of an earlier term's request that reaches A later is not played."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson

from prsm.performance.clock import ManualClock
from prsm.performance.scaling._controller import InMemoryBackend
from prsm.performance.scaling._pods import PodLoadReceiver, ScalingReportSettings

from .helpers import until
from .test_elector import _Hung
from .test_takeover_replay import SETTINGS, _candidate

START, DONE = ["s", 0.0, "vllm"], ["f", 4.0, False, "vllm"]


def _report(seq: int, *events: list[Any]) -> bytes:
    return orjson.dumps({"pod": "p", "instance": "p/1", "node": "vllm", "seq": seq,
                         "interval": 0.2, "events": list(events), "dropped": 0,
                         "retries": 0})  # fmt: skip


async def test_a_re_elected_pod_starts_its_term_with_nothing_in_flight_and_no_errors() -> None:
    clock = ManualClock(start=0.0, wall_offset=1_700_000_000.0 - 1_700_000_000.0 % 3600)
    store, shared = _Hung(), InMemoryBackend(clock=clock, initial=2)
    a, b = (_candidate(n, clock, store, shared, SETTINGS) for n in "ab")
    receiver = PodLoadReceiver(a.tracker, ScalingReportSettings(), "vllm", clock=clock)
    a.take_reports(receiver)
    leases = asyncio.create_task(receiver.run())  # expiring silent reporters, as the pod does
    await a.elector.round()
    await b.elector.round()
    await until(lambda: len(a.loop.history) == 1)  # A's first decision
    status, _ = receiver.accept(_report(1, *[["a", None]] * 10, *[START] * 3))
    assert status == 200 and (a.tracker.queued, a.tracker.in_flight) == (7, 3)
    await a.elector.close(release=True)  # A stands by; B takes the Lease
    assert receiver.snapshot() == []  # a standby holds no reporter of its last term
    await b.elector.round()
    assert b.elector.leading
    await until(lambda: len(b.loop.history) == 1)
    await until(lambda: clock.sleepers >= 2)  # B's loop and A's receiver
    clock.advance(600.0)  # the reporter reports to B: A's receiver sees it silent
    await until(lambda: clock.sleepers >= 2)
    await b.elector.close(release=True)  # and hands the Lease back
    await a.elector.round()
    assert a.elector.leading
    await until(lambda: len(a.loop.history) == 2)
    first = a.loop.history[-1].context
    assert (first.queued, first.in_flight, first.mean_ongoing, first.arrivals) == (0, 0, 0.0, 0)
    assert first.signals.error_rate is None  # no request ended, as A saw it
    # the reporter now reports to A: the finishes of two requests its last term started (at B
    # since) are not played, nor counted as an error or a service time
    status, _ = receiver.accept(_report(9, *[DONE] * 2, ["a", None], START))
    assert status == 200 and (a.tracker.queued, a.tracker.in_flight) == (0, 1)
    window = a.tracker.take_window()
    assert (window.arrivals, window.error_rate, a.tracker.service_time) == (1, None, None)
    leases.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await leases
    await a.close()
    await b.close()
