"""A new leader that takes over less than half an interval after the old leader's last
decision, on a manual clock, with the session floor's error headroom on. The new leader's
forecast errors are rebuilt from the old leader's records (its replay) and go on with its
own decisions; a later leader rebuilds them from the records the new one serves
(:func:`~prsm.performance.scaling._replay.prime`). Wherever
:func:`~prsm.performance.scaling._replay.errors_exact_from` claims that rebuild exact, it
must be the new leader's own: no record it read is missing from what it serves (no arrivals
missed), and none counts arrivals twice."""

from __future__ import annotations

import dataclasses

import httpx

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MetricsRegistry
from prsm.performance.scaling._controller import InMemoryBackend
from prsm.performance.scaling._headroom import ForecastErrors
from prsm.performance.scaling._loop import LoopStep
from prsm.performance.scaling._predictive import PredictivePolicy
from prsm.performance.scaling._replay import errors_exact_from, prime
from prsm.performance.scaling._tracker import LoadTracker
from prsm.performance.serve._pod_warm import WarmMirror

from .helpers import until
from .test_elector import _Hung
from .test_takeover_replay import ERRORS, SETTINGS as PLAIN, STARTUP, _candidate, _traffic
from .test_warm_standby import KEY, _Leader

SPAN = 600.0  # the errors kept: exact from ~45 minutes in (the first settled + SPAN)
SETTINGS = dataclasses.replace(ERRORS, session_error_span=SPAN)
LAST = 50 * 60 + 15  # the old leader's last decision, its window holding the minute's requests
TAKEOVER = LAST + 5  # the new leader takes the Lease 5 s after it (the interval is 15 s)
END = TAKEOVER + 20 * 60


async def test_a_take_over_under_half_an_interval_serves_records_that_rebuild_its_errors() -> None:
    clock = ManualClock(start=0.0, wall_offset=1_700_000_000.0 - 1_700_000_000.0 % 3600)
    store, shared = _Hung(), InMemoryBackend(startup_time=STARTUP, clock=clock, initial=2)
    a = _candidate("a", clock, store, shared, SETTINGS)
    b = _candidate("b", clock, store, shared, SETTINGS)
    client = httpx.AsyncClient(transport=httpx.MockTransport(_Leader(a)))
    b.mirror = WarmMirror(b.elector, KEY, step=60.0, interval=10.0, timeout=1.0, clock=clock,
                          client=client, metrics=MetricsRegistry(),
                          keep=b.scaler.loop.replay_span,
                          decisions=SETTINGS.interval)  # fmt: skip
    live: dict[float, ForecastErrors] = {}  # the new leader's errors after each decision
    sent = LoadTracker(clock=clock)  # every request sent, to either leader

    def kept(step: LoopStep) -> None:
        live[step.context.now] = b.loop.state.session_errors

    b.loop.listeners.append(kept)
    await a.elector.round()
    await a.scaler.loop.close()  # A's steps are taken below
    await b.elector.round()
    start = clock.time()
    for t in range(0, END, 5):
        if t == TAKEOVER:  # B holds A's last decisions; A shuts down
            assert await b.mirror.fetch_once()
            await a.close()
            await b.elector.round()
            assert b.elector.leading
        if t % 60 == 5:
            _traffic(t // 60, (a if t < TAKEOVER else b).tracker, sent, users=True)
        if t % 30 == 0 and t != TAKEOVER:
            for c in (a, b) if t < TAKEOVER else (b,):
                await c.elector.round()
        if t < TAKEOVER:
            if t % 10 == 0:
                await b.mirror.fetch_once()
            if t % 15 == 0:
                await a.scaler.loop.step()
        else:
            await until(lambda: clock.sleepers >= 1)  # B's loop waits for its next step
        clock.advance(5.0)
    await b.close()
    await client.aclose()
    records = list(b.loop.records)
    mine = [i for i, r in enumerate(records) if r.now >= start + TAKEOVER]
    assert len(mine) == len(live) >= 70
    policy = b.loop.policy
    assert isinstance(policy, PredictivePolicy)
    claimed = 0
    for i in mine:
        exact_from, _ = errors_exact_from(records[: i + 1], SPAN, SETTINGS.interval)
        if records[i].now >= exact_from:
            claimed += 1
            rebuilt = prime(policy, records[: i + 1], policy.initial_state()).session_errors
            assert rebuilt == live[records[i].now], records[i].now - start
    assert claimed == len(mine)  # (the records reach back far enough: every one claimed)
    # every request is counted once in the records served (all came before the last decision)
    assert records[0].now == start  # (the old leader's first)
    assert sum(r.arrivals for r in records) == sent.take_window().arrivals
    # the old leader's last record kept: the new leader's first decision waited for half an
    # interval after it (the first tick after, on this clock)
    assert records[mine[0] - 1].now == start + LAST and min(live) == start + LAST + 10.0


async def test_a_re_elected_pod_counts_no_requests_of_its_last_term_at_its_first_decision() -> None:
    """A leads, decides, takes 7 requests after its last decision and hands the Lease over;
    B leads a while and hands it back: A's first decision of its new term counts the requests
    since (none: a standby takes no reports), not those 7 of its earlier term, which it would
    count a term late in the arrivals its session errors read and its record serves."""
    clock = ManualClock(start=0.0, wall_offset=1_700_000_000.0 - 1_700_000_000.0 % 3600)
    store, shared = _Hung(), InMemoryBackend(clock=clock, initial=2)
    a, b = (_candidate(n, clock, store, shared, PLAIN) for n in "ab")
    await a.elector.round()
    await b.elector.round()
    assert a.elector.leading and not b.elector.leading
    await until(lambda: len(a.loop.history) == 1)  # A's first decision
    _traffic(1, a.tracker)  # reported to A
    await until(lambda: clock.sleepers >= 1)
    clock.advance(PLAIN.interval)
    await until(lambda: len(a.loop.history) == 2)
    for _ in range(7):  # after A's last decision of this term
        a.tracker.arrived()
    await a.elector.close(release=True)  # A stands by; B takes the Lease
    await b.elector.round()
    assert b.elector.leading and not a.elector.leading
    await until(lambda: len(b.loop.history) == 1)
    await until(lambda: clock.sleepers >= 1)
    clock.advance(600.0)
    await b.elector.close(release=True)  # and hands it back
    await a.elector.round()
    assert a.elector.leading
    await until(lambda: len(a.loop.history) == 3)
    first = a.loop.history[-1].context
    assert first.now == clock.time() and first.arrivals == 0
    await a.close()
    await b.close()
