"""A take-over that keeps the policy's state, on a manual clock: an uninterrupted leader U and,
beside it with the same traffic and the same Deployment behaviour, leader A for hours, then a
clean hand-over to B (A shuts down, B takes the Lease at its next round). B's mirror fetches
A's history (through the real :class:`WarmMirror`, the leader's real ``history`` answer) and
B's loop replays A's decisions before its first step. Every decision B makes afterwards —
through a refit of the forecast — equals U's, target, reason and details; without the replay
(the loop keeps no records) they differ."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MetricsRegistry
from prsm.performance.scaling import PredictiveScaler
from prsm.performance.scaling._controller import InMemoryBackend
from prsm.performance.scaling._election import LeaderElectionSettings
from prsm.performance.scaling._loop import LoopStep
from prsm.performance.scaling._predictive import PredictivePolicy, PredictiveSettings
from prsm.performance.scaling._predictor import PredictorSettings
from prsm.performance.scaling._replay import StepRecord, merge_records, parse_record, replay_start
from prsm.performance.scaling._tracker import LoadTracker
from prsm.performance.scaling._types import ScalingAction
from prsm.performance.scaling._warm import HistoryError, parse_history
from prsm.performance.serve._pod_standby import LeaderScaler
from prsm.performance.serve._pod_warm import WarmMirror

from .helpers import until
from .test_elector import _Hung
from .test_warm_standby import ELECTION, KEY, _fields, _Leader

SETTINGS = PredictiveSettings(
    min_replicas=1, max_replicas=20, interval=15.0, scale_down_window=600.0,
    predictor=PredictorSettings(step=60.0, horizon=600.0, season=3600.0, min_validation=3600.0,
                                refit_interval=3600.0),
)  # fmt: skip
STARTUP = 45.0  # the Deployment's replicas are ready this long after they are asked for
TAKEOVER = 5 * 3600 + 37 * 60  # a clean hand-over, 37 minutes after the hour (and a refit)
AFTER = 95 * 60  # how long B leads in the test: past the next refit


#: with the burst table too (refitted with the forecast, its own arrival counts kept)
BURST = dataclasses.replace(SETTINGS, burst_quantile=0.5)
#: with the users' sessions floor (the requests name their users)
SESSIONS = dataclasses.replace(SETTINGS, wait_probability=0.9, session_wait_probability=1e-6)
#: with the session floor's headroom from its forecast's errors of the last hour
ERRORS = dataclasses.replace(SESSIONS, session_error_quantile=0.9, session_error_span=3600.0)


def _scaler(
    clock: ManualClock, backend: InMemoryBackend, settings: PredictiveSettings = SETTINGS
) -> PredictiveScaler:
    return PredictiveScaler(backend, settings, clock=clock, metrics=MetricsRegistry())


def _candidate(
    name: str, clock: ManualClock, store: Any, backend: Any, settings: PredictiveSettings = SETTINGS
) -> LeaderScaler:
    election = LeaderElectionSettings(**{**_fields(ELECTION), "url": f"http://{name}:8080"})
    return LeaderScaler(_scaler(clock, backend, settings), store, election, name,
                        f"http://{name}:8080", clock=clock, metrics=MetricsRegistry())  # fmt: skip


def _traffic(minute: int, *trackers: LoadTracker, users: bool = False) -> None:
    """The minute's requests, each served at once in 4 s (nothing in flight at a step); with
    ``users``, each names one of 60 users, some quiet for a while in turn."""
    n = int(20 + 15 * np.sin(2 * np.pi * minute / 60) + 9 * (minute % 7) + 40 * (minute % 97 == 3))
    for tracker in trackers:
        for i in range(n):
            who = (minute * 7 + i * 13) % (60 - minute % 41)
            tracker.arrived(f"user-{who}" if users else None)
            tracker.started(0.0)
            tracker.finished(4.0)


def _decision(step: LoopStep) -> tuple[Any, ...]:
    d = step.decision
    return (step.context.now, d.target, d.action, d.reason, dict(d.details))


async def _run(
    replay: bool,
    settings: PredictiveSettings = SETTINGS,
    *,
    sessions: bool = True,
    span: float | None = None,
    fetch_from: int = 0,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], LeaderScaler]:
    """U's and B's decisions from the take-over on (and B); ``sessions``: A serves its users'
    sessions (else it answers as an older leader, without them); ``span``: A keeps the records
    of that many seconds (else its loop's own span); B's mirror fetches from ``fetch_from``."""
    clock = ManualClock(start=0.0, wall_offset=1_700_000_000.0 - 1_700_000_000.0 % 3600)
    u = _scaler(clock, InMemoryBackend(startup_time=STARTUP, clock=clock, initial=2), settings)
    # as A starts: holding the Deployment's replicas through the scale-down window
    u.loop.state = dataclasses.replace(u.loop.state, recommendations=((clock.time(), 2),))
    store, shared = _Hung(), InMemoryBackend(startup_time=STARTUP, clock=clock, initial=2)
    a = _candidate("a", clock, store, shared, settings)
    b = _candidate("b", clock, store, shared, settings)
    if not replay:
        b.scaler.loop.replay_span = 0.0  # the loop keeps and replays no decisions
    if span is not None:
        a.scaler.loop.replay_span = span
    leader = _Leader(a)
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(leader if sessions else _older(leader))
    )
    b.mirror = WarmMirror(b.elector, KEY, step=60.0, interval=10.0, timeout=1.0, clock=clock,
                          client=client, metrics=MetricsRegistry(),
                          keep=b.scaler.loop.replay_span,
                          decisions=settings.interval)  # fmt: skip
    await a.elector.round()
    await a.scaler.loop.close()  # A's steps are taken below, on the ticks U's are
    await b.elector.round()
    assert a.elector.leading and not b.elector.leading
    ours: list[tuple[Any, ...]] = []
    for t in range(0, TAKEOVER + AFTER, 5):
        if t == TAKEOVER:  # B holds A's last minute and decisions; A shuts down
            assert await b.mirror.fetch_once()
            await a.close()
            await b.elector.round()
            assert b.elector.leading
        if t % 60 == 5:
            _traffic(t // 60, u.tracker, (a if t < TAKEOVER else b).tracker,
                     users=settings.session_wait_probability is not None)  # fmt: skip
        if t % 30 == 0 and t != TAKEOVER:
            for c in (a, b) if t < TAKEOVER else (b,):
                await c.elector.round()
        if t % 10 == 0 and fetch_from <= t < TAKEOVER:
            await b.mirror.fetch_once()
        if t % 15 == 0:
            step = await u.loop.step()
            if t < TAKEOVER:
                mine = await a.scaler.loop.step()
                assert _decision(mine) == _decision(step)  # two leaders, one traffic
            else:
                made = (t - TAKEOVER) // 15 + 1
                await until(lambda: len(b.loop.history) == made)  # noqa: B023
                ours.append(_decision(b.loop.history[-1]))
        clock.advance(5.0)
    theirs = [_decision(s) for s in u.loop.history if s.context.now >= clock.time() - AFTER - 5]
    await b.close()
    await u.close()
    return theirs, ours, b


def _older(leader: _Leader) -> Any:
    """The leader's answers as an older version serves them: without its users' sessions."""

    async def answer(request: httpx.Request) -> httpx.Response:
        reply = await leader(request)
        body = orjson.loads(reply.content)
        body.pop("sessions", None)
        return httpx.Response(reply.status_code, content=orjson.dumps(body))

    return answer


@pytest.mark.parametrize("settings", [SETTINGS, BURST, SESSIONS, ERRORS],
                         ids=["default", "burst", "sessions", "errors"])  # fmt: skip
async def test_the_new_leader_decides_as_an_uninterrupted_one_would(
    settings: PredictiveSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "prsm.performance.scaling")
    theirs, ours, b = await _run(True, settings)
    assert len(ours) == len(theirs) == AFTER // 15
    assert ours == theirs
    if settings is BURST:  # the burst table, refitted on its own schedule, was carried too
        assert len({d[4]["burst_fitted_at"] for d in ours}) >= 2
        assert any(d[4]["burst_fitted_at"] != d[4]["fitted_at"] for d in ours)
        assert len({d[1] for d in ours}) > 1
    elif settings.session_wait_probability is not None:  # the floor held replicas, carried
        floors = [d[4]["session_floor"] for d in ours]
        assert min(floors) > 0 and len(set(floors)) > 1
        assert any(d[1] == d[4]["session_floor"] > d[4]["recommendation"] for d in ours)
        if settings is ERRORS:  # and the errors' headroom, rebuilt by the replay
            assert len({d[4]["session_headroom"] for d in ours}) > 1
    else:
        assert {d[2] for d in ours} == set(ScalingAction)  # it scaled up and down meanwhile
    # through refits: the fit A made (replayed), then B's own at the same decisions as U's
    fitted = {d[4]["fitted_at"] for d in ours}
    assert len(fitted) == 3, fitted  # A's fit (replayed), then two of B's own
    replayed = b.loop.replayed
    assert replayed is not None and replayed["decisions"] >= 600 / 15
    assert replayed["until"] == b.loop.history[0].context.now - 15.0
    assert replayed["diverged"] == 0 and replayed["partial"] == []  # it matched A's decisions
    assert "replayed the last leader's" in caplog.text and "differ" not in caplog.text


async def test_without_the_carried_sessions_the_new_leader_decides_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "prsm.performance.scaling")
    theirs, ours, b = await _run(True, SESSIONS, sessions=False)  # an older leader's answers
    assert len(ours) == len(theirs) and ours != theirs
    assert "session_floor" not in ours[0][4] and theirs[0][4]["session_floor"] > 0  # relearned
    assert [d[1] for d in ours] != [d[1] for d in theirs]
    assert b.loop.replayed is not None and b.loop.replayed["partial"]  # counted, logged
    assert "served no users' sessions" in caplog.text


async def test_records_too_few_for_the_errors_headroom_relearn_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "prsm.performance.scaling")
    six_hours = dataclasses.replace(ERRORS, session_error_span=6 * 3600.0)
    # A serves the records of the forecast's memory alone (as a leader before the errors were
    # rebuilt), B fetches them only 10 minutes before the take-over: the errors settled before
    # them are not rebuilt, and the replay says so
    span = PredictivePolicy(six_hours).memory
    theirs, ours, b = await _run(True, six_hours, span=span, fetch_from=TAKEOVER - 600)
    assert len(ours) == len(theirs) and ours != theirs
    assert [d[4]["session_headroom"] for d in ours] != [d[4]["session_headroom"] for d in theirs]
    replayed = b.loop.replayed
    assert replayed is not None and replayed["diverged"] == 0
    assert any("error headroom" in why for why in replayed["partial"]), replayed["partial"]
    assert "replay cannot match" in caplog.text


@pytest.mark.parametrize("settings", [SETTINGS, BURST], ids=["default", "burst"])
async def test_without_the_replay_the_new_leader_decides_otherwise(
    settings: PredictiveSettings,
) -> None:
    theirs, ours, b = await _run(False, settings)
    assert len(ours) == len(theirs) and ours != theirs
    assert ours[0][3] != theirs[0][3]  # its first forecast is not the one U makes
    assert [d[1] for d in ours] != [d[1] for d in theirs]  # nor are all its targets
    assert b.loop.replayed is None


def _record(now: float, fitted: float | None, burst: float | None = None) -> StepRecord:
    return StepRecord(now, 2, 0, 2, 0, 0, 0.0, 0.0, 15.0, 3, 1, 0.5, 60.0, 0.0, now // 60 * 60,
                      (0.1, None, 0.0, 0.0, None), fitted, burst, (now - 30.0, 3))  # fmt: skip


def test_a_replay_starts_where_the_old_leader_refitted() -> None:
    assert replay_start([_record(0, None), _record(15, None)]) == 0  # no fit yet
    assert replay_start([_record(0, 60.0), _record(15, 60.0), _record(30, 120.0)]) == 2
    both = [_record(0, 60.0, 60.0), _record(15, 120.0, 60.0), _record(30, 180.0, 180.0)]
    assert replay_start(both) == 1  # the first refit of either (the other is redone later)
    assert replay_start([_record(0, 60.0, 60.0), _record(15, 60.0, 75.0)]) == 1
    held = (_record(0, 1.0), _record(15, 1.0), _record(30, 1.0))
    merged, _ = merge_records(held, (_record(15, 2.0), _record(45, 2.0)), keep=30.0)
    assert [(r.now, r.fitted_at) for r in merged] == [(15, 2.0), (45, 2.0)]


def test_a_record_goes_through_json_exactly_and_a_bad_one_is_refused_naming_it() -> None:
    import orjson

    record = _record(1234.5, 60.0, 120.0)
    assert parse_record(orjson.loads(orjson.dumps(record.as_dict()))) == record
    for field, value in (
        ("ready", -1),
        ("mean_busy", float("nan")),
        ("concurrency", 0),
        ("signals", [1.0]),
        ("pending_up", [1.0, "x"]),
        ("now", "soon"),
    ):
        body = orjson.loads(orjson.dumps(record.as_dict())) | {field: value}  # fmt: skip
        with pytest.raises(ValueError, match=field):
            parse_record(body)
    answer = {"start": 0.0, "step": 60.0, "values": [1.0], "service_time": None,
              "startup_time": None}  # fmt: skip
    for steps in ([record.as_dict(), record.as_dict()], "x", [{"now": 1}]):
        with pytest.raises(HistoryError, match="steps"):
            parse_history(answer | {"steps": steps}, 60.0, now=60.0)


async def test_a_fetch_in_flight_at_the_take_over_is_carried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(start=0.0, wall_offset=1_700_000_000.0 - 1_700_000_000.0 % 3600)
    store, shared = _Hung(), InMemoryBackend(clock=clock, initial=2)
    a, b = _candidate("a", clock, store, shared), _candidate("b", clock, store, shared)
    await a.elector.round()
    await a.scaler.loop.close()
    await b.elector.round()
    for t in range(0, 600, 5):  # ten minutes of A's traffic, decisions and renewals
        if t % 60 == 5:
            _traffic(t // 60, a.tracker)
        if t % 30 == 0:
            await a.elector.round()
            await b.elector.round()
        if t % 15 == 0:
            await a.scaler.loop.step()
        clock.advance(5.0)
    answer, entered = _Leader(a), asyncio.Event()
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        reply = await answer(request)  # A answers while it leads; the answer arrives late
        entered.set()
        await release.wait()  # only once B has begun to take over
        return reply

    client = httpx.AsyncClient(transport=httpx.MockTransport(slow))
    b.mirror = WarmMirror(b.elector, KEY, step=60.0, interval=10.0, timeout=5.0, clock=clock,
                          client=client, metrics=MetricsRegistry(),
                          keep=b.scaler.loop.replay_span)  # fmt: skip
    b.mirror.start()
    await until(lambda: clock.sleepers >= 1)
    clock.advance(10.0)
    await entered.wait()  # the fetch is in flight
    await a.close()
    caplog.set_level(logging.INFO, "prsm.performance.scaling")
    taking = asyncio.create_task(b.elector.round())
    for _ in range(50):
        await asyncio.sleep(0)
    assert not taking.done()  # the take-over waits for the fetch
    release.set()
    await taking
    assert b.elector.leading and "waited for the warm standby's fetch in flight" in caplog.text
    carried = b.loop.carried
    assert carried is not None and len(carried[0].load) == 10 and len(carried[0].steps) == 40
    await until(lambda: b.loop.replayed is not None)
    await b.close()


async def test_records_kept_across_a_wall_clock_step_back_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(start=0.0)
    scaler = _scaler(clock, InMemoryBackend(clock=clock, initial=1))
    for _ in range(3):
        await scaler.loop.step()
        clock.advance(15.0)
    assert len(scaler.loop.records) == 3
    clock._wall_offset -= 60.0  # NTP set the wall clock back a minute
    with caplog.at_level(logging.WARNING, "prsm.performance.scaling"):
        await scaler.loop.step()
    assert [r.now for r in scaler.loop.records] == [clock.time()]  # in order: a standby takes them
    assert "the clock went back" in caplog.text
