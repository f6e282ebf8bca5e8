"""The requests in service at a take-over, on a manual clock (real :class:`LeaderScaler`
candidates, each with its real :class:`PodLoadReceiver`, and a real
:class:`PodLoadReporter`): A leads and takes a gateway pod's 3 starts; B takes over; the
pod's first report to B names those 3 in service, so B holds them (in flight at its next
decision, in its busy and ongoing means, with no wait sample) and plays their ends."""

from __future__ import annotations

import httpx

from prsm.performance.clock import ManualClock
from prsm.performance.scaling._controller import InMemoryBackend
from prsm.performance.scaling._pods import PodLoadReceiver, ScalingReportSettings
from prsm.performance.serve._pod_report import PodLoadReporter

from .helpers import until
from .test_elector import _Hung
from .test_takeover_replay import SETTINGS, _candidate

REPORTS = ScalingReportSettings(
    url="http://svc:8080", key_env="K", node="vllm", interval=0.2, lease=60.0
)  # (no heartbeats are sent here)


async def test_a_new_leader_holds_the_requests_in_service_at_the_take_over() -> None:
    clock = ManualClock(start=0.0, wall_offset=1_700_000_000.0 - 1_700_000_000.0 % 3600)
    store, shared = _Hung(), InMemoryBackend(clock=clock, initial=2)
    a, b = (_candidate(n, clock, store, shared, SETTINGS) for n in "ab")
    receivers = {}
    for name, candidate in (("a", a), ("b", b)):
        receivers[name] = PodLoadReceiver(candidate.tracker, REPORTS, "vllm", clock=clock)
        candidate.take_reports(receivers[name])

    def service(request: httpx.Request) -> httpx.Response:  # the candidates' Service
        leader = "a" if a.elector.leading else "b"
        status, body = receivers[leader].accept(request.content)
        return httpx.Response(status, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(service))
    reporter = PodLoadReporter(REPORTS, "key", pod="gw", instance="gw/1", clock=clock,
                               client=client)  # fmt: skip
    await a.elector.round()
    await b.elector.round()
    await until(lambda: len(a.loop.history) == 1)
    for _ in range(3):  # three long streams start, reported to A
        reporter.arrived()
        reporter.started(0.5, node="vllm")
    assert await reporter.send_once() and a.tracker.in_flight == 3
    await a.elector.close(release=True)  # A stands by; B takes the Lease
    await b.elector.round()
    assert b.elector.leading
    await until(lambda: len(b.loop.history) == 1)
    reporter.finished(30.0, node="vllm")  # one of the three ends: its report goes to B
    reporter.arrived()
    reporter.started(0.1, node="vllm")  # a new one starts there
    assert await reporter.send_once()
    assert (b.tracker.in_flight, b.tracker.queued) == (3, 0)
    assert receivers["b"].snapshot()[0]["resumed"] == 3
    await until(lambda: clock.sleepers >= 1)  # B's loop waits for its next decision
    clock.advance(SETTINGS.interval)
    await until(lambda: len(b.loop.history) == 2)
    ctx = b.loop.history[-1].context
    assert (ctx.in_flight, ctx.mean_busy, ctx.mean_ongoing, ctx.arrivals) == (3, 3.0, 3.0, 1)
    assert ctx.signals is not None and ctx.signals.latency == 0.1  # the new start's wait only
    for _ in range(3):  # the other two held at the take-over and the new one end at B
        reporter.finished(40.0, node="vllm")
    assert await reporter.send_once()
    assert b.tracker.in_flight == 0 and b.tracker.service_time == (30.0 + 3 * 40.0) / 4
    assert b.tracker.take_window().error_rate == 0.0
    await reporter.aclose(flush=False)
    await a.close()
    await b.close()
