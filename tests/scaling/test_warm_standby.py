"""A warm standby, on a manual clock: the standby fetches the leader's history (through its
real :class:`WarmMirror`, over an HTTP transport that answers with the leader's own
``history``, the key checked); the leader dies; the standby takes the Lease and its first
forecast is the one the old leader would make from the same history — and without the mirror
it is not. The pure pieces (:mod:`prsm.performance.scaling._warm`) are checked on their own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
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
from prsm.performance.scaling._predictive import (
    PredictivePolicy,
    PredictiveSettings,
    PredictiveState,
)
from prsm.performance.scaling._predictor import PredictorSettings
from prsm.performance.scaling._types import LoadSeries
from prsm.performance.scaling._warm import (
    MAX_STEPS,
    Carried,
    HistoryError,
    carry,
    history_body,
    merge,
    parse_history,
)
from prsm.performance.serve._pod_standby import LeaderScaler
from prsm.performance.serve._pod_warm import MAX_BYTES, WarmMirror

from .helpers import until
from .test_elector import _Hung

KEY = "admin-key-of-the-candidates-77e1"
ELECTION = LeaderElectionSettings(lease="scaler", url="http://a:8080", lease_duration=120,
                                  renew_deadline=100.0, retry_period=30.0)  # fmt: skip
SETTINGS = PredictiveSettings(
    min_replicas=1, max_replicas=20, interval=15.0,
    predictor=PredictorSettings(step=60.0, horizon=600.0, season=3600.0, min_validation=3600.0,
                                refit_interval=3600.0),
)  # fmt: skip


def _series(start: float, values: Sequence[float]) -> LoadSeries:
    return LoadSeries(start, 60.0, np.array(values, dtype=np.float64))


class _Leader:
    """The leader's side of the HTTP transport: its ``history``, the key checked."""

    def __init__(self, leader: LeaderScaler) -> None:
        self.leader = leader
        self.dead = False
        self.asked: list[float] = []
        self.sessions: list[str | None] = []  # the sessions parameter of each fetch

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.dead:
            raise httpx.ConnectError("connection refused", request=request)
        assert request.url.host == "a" and request.url.path == "/admin/scaling/history"
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401)
        since = float(request.url.params["since"])
        self.asked.append(since)
        self.sessions.append(request.url.params.get("sessions"))
        status, body = await self.leader.history(since, request.url.params.get("sessions") == "1")
        return httpx.Response(status, content=body)


def _candidate(name: str, clock: ManualClock, store: Any, backend: Any) -> LeaderScaler:
    scaler = PredictiveScaler(backend, SETTINGS, clock=clock, metrics=MetricsRegistry())
    election = LeaderElectionSettings(**{**_fields(ELECTION), "url": f"http://{name}:8080"})
    return LeaderScaler(scaler, store, election, name, f"http://{name}:8080", clock=clock,
                        metrics=MetricsRegistry())  # fmt: skip


def _fields(settings: LeaderElectionSettings) -> dict[str, Any]:
    return {f: getattr(settings, f) for f in settings.__dataclass_fields__}


async def _takeover(warm: bool) -> tuple[LeaderScaler, LeaderScaler, WarmMirror | None, Any]:
    """A leads for 6 hours of minutes with a load that varies within the hour, B stands by
    (fetching A's history every 10 s with ``warm``); A dies at a minute's start; B takes
    over once the Lease expires and makes its first step."""
    clock = ManualClock(start=0.0, wall_offset=1_700_000_000.0 - 1_700_000_000.0 % 60)
    store, backend = _Hung(), InMemoryBackend(clock=clock, initial=2)
    a = _candidate("a", clock, store, backend)
    b = _candidate("b", clock, store, backend)
    leader = _Leader(a)
    mirror = None
    if warm:
        client = httpx.AsyncClient(transport=httpx.MockTransport(leader))
        mirror = WarmMirror(b.elector, KEY, step=60.0, interval=10.0, timeout=1.0, clock=clock,
                            client=client, metrics=MetricsRegistry())  # fmt: skip
        b.mirror = mirror
    await a.elector.round()
    assert a.elector.leading
    await a.scaler.loop.close()  # A's own steps are not what this test looks at
    await b.elector.round()
    assert not b.elector.leading and b.elector.leader_url == "http://a:8080"
    for minute in range(360):
        for _ in range(int(20 + 15 * np.sin(2 * np.pi * minute / 60) + minute % 7)):
            a.tracker.arrived()
        for second in range(0, 60, 10):  # B's mirror fetches every 10 s, A renews
            if second % 30 == 0:
                await a.elector.round()
                await b.elector.round()
            if mirror is not None:
                await mirror.fetch_once()
            clock.advance(10.0)
    if mirror is not None:
        await mirror.fetch_once()  # the last minute has completed: B holds it
    own = a.scaler.loop.load()  # A's history as it dies: 360 completed minutes
    assert len(own) == 360 and a.elector.leading
    leader.dead = True
    while not b.elector.leading:  # A renews no more: B takes the Lease when it expires
        clock.advance(10.0)
        if mirror is not None:
            await mirror.fetch_once()  # A is gone: counted, logged, nothing held changes
        await b.elector.round()
    await until(lambda: len(b.scaler.loop.history) >= 1)
    return a, b, mirror, own


async def test_the_new_leaders_first_forecast_is_the_old_leaders(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    a, b, mirror, own = await _takeover(warm=True)
    assert mirror is not None and mirror.fetches >= 360 * 6 and mirror.failed >= 1
    assert "could not fetch the leader's history" in caplog.text and KEY not in caplog.text
    assert mirror.snapshot()["steps"] == 360 and KEY not in str(b.snapshot())
    first = b.scaler.loop.history[0]
    load = first.context.load
    assert load is not None
    # the same history: A's minutes, then the minutes nobody counted since A died
    gap = round((load.end - own.end) / 60.0)
    assert 1 <= gap <= 4 and load.start == own.start
    assert np.array_equal(load.values, np.concatenate([own.values, np.zeros(gap)]))
    expected, _ = PredictivePolicy(SETTINGS).forecast(load, PredictiveState())
    got = b.scaler.loop.state.last
    assert expected is not None and got is not None
    assert np.array_equal(got.point, expected.point) and np.array_equal(got.upper, expected.upper)
    lead_from = first.context.now + first.context.startup_time  # the decision read it
    window = expected.window(lead_from, lead_from + SETTINGS.lead + SETTINGS.interval)
    assert (first.decision.details["forecast"], first.decision.details["forecast_upper"]) == window
    await b.close()
    await a.close()


async def test_without_the_mirror_the_new_leader_forecasts_from_nothing() -> None:
    a, b, _, own = await _takeover(warm=False)
    load = b.scaler.loop.history[0].context.load
    assert load is not None and load.values.sum() == 0.0  # it counted nothing while standing by
    old, _ = PredictivePolicy(SETTINGS).forecast(own, PredictiveState())
    got = b.scaler.loop.state.last
    assert old is not None and (got is None or not np.array_equal(got.point, old.point))
    await b.close()
    await a.close()


def test_a_leader_answers_the_steps_since_and_a_standby_merges_them() -> None:
    load = _series(600.0, [1, 2, 3, 4, 5])
    body = history_body(load, 720.0, 0.5, 42.0)
    assert body == {"start": 720.0, "step": 60.0, "values": [3.0, 4.0, 5.0],
                    "service_time": 0.5, "startup_time": 42.0, "steps": []}  # fmt: skip
    assert history_body(load, 0.0, None, None)["values"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert history_body(load, 10_000.0, None, None)["values"] == []
    answer = orjson.loads(orjson.dumps(history_body(load, 0.0, None, 30.0)))
    held = parse_history(answer, 60.0, now=900.0)
    newer = parse_history(body | {"start": 780.0, "values": [9.0, 6.0]}, 60.0, now=900.0)
    merged = merge(held, newer)  # the newer answer wins where both have a step
    assert merged.load.start == 600.0 and list(merged.load.values) == [1, 2, 3, 9, 6]
    assert merged.service_time == 0.5 and merged.startup_time == 42.0
    gap = merge(merged, Carried(_series(960.0, [7.0])))  # a step nobody answered reads 0
    assert list(gap.load.values) == [1, 2, 3, 9, 6, 0, 7]
    assert merge(None, Carried(_series(0.0, []))).load.end == 0.0
    big = merge(Carried(_series(0.0, [1.0] * MAX_STEPS)), Carried(_series(MAX_STEPS * 60.0, [2])))
    assert len(big.load) == MAX_STEPS and big.load.values[-1] == 2.0  # the oldest dropped


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"step": 300.0}, "step"),
        ({"values": [1.0, -1.0]}, "values"),
        ({"values": [1.0, float("nan")]}, "values"),
        ({"values": [0.0] * (MAX_STEPS + 1)}, "values"),
        ({"values": "1,2"}, "values"),
        ({"start": "0"}, "start"),
        ({"start": 90.0}, "start"),
        ({"start": 6e13}, "start"),  # far past this pod's clock: never allocated
        ({"start": 1.7e300}, "start"),
        ({"start": -(MAX_STEPS + 2) * 60.0}, "start"),  # ends before the steps held
        ({"service_time": 0.0}, "service_time"),
        ({"startup_time": True}, "startup_time"),
    ],
)
def test_a_malformed_history_is_refused_naming_the_field(
    change: dict[str, Any], problem: str
) -> None:
    body = {"start": 0.0, "step": 60.0, "values": [1.0], "service_time": None,
            "startup_time": None, **change}  # fmt: skip
    with pytest.raises(HistoryError, match=problem):
        parse_history(body, 60.0, now=60.0)
    with pytest.raises(HistoryError):
        parse_history([body], 60.0, now=60.0)


def test_a_new_leader_reads_the_carried_steps_before_it_took_over() -> None:
    carried = _series(600.0, [5, 6, 7, 8])  # up to 840
    own = _series(0.0, [0] * 14 + [3, 4])  # its tracker: nothing until it led at 840
    out = carry(carried, own, since=840.0)
    assert out.start == 600.0 and list(out.values) == [5, 6, 7, 8, 3, 4]
    # a fetch that ran past the take-over (another clock): its own steps from then on
    assert list(carry(carried, own, since=780.0).values) == [5, 6, 7, 0, 3, 4]
    assert carry(_series(0.0, []), own, 840.0) is own
    assert carry(_series(2000.0, [1.0]), own, 840.0) is own  # nothing carried before its end


async def test_a_fetch_that_fails_changes_nothing_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    recent = _series(clock.time() // 60 * 60 - 120, [4, 4])  # steps by this pod's wall clock
    answers: list[httpx.Response] = [
        httpx.Response(200, content=orjson.dumps(history_body(recent, 0, 1, 2))),
        httpx.Response(503, content=b'{"leader": "http://c:8080"}'),
        httpx.Response(200, content=b"{not json"),
        httpx.Response(200, content=b"[" + b"0," * MAX_BYTES + b"0]"),
    ]
    b = _candidate("b", clock, _Hung(), InMemoryBackend(clock=clock, initial=1))
    a = _candidate("a", clock, b.store, InMemoryBackend(clock=clock, initial=1))
    await a.elector.round()
    await b.elector.round()
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answers.pop(0)))
    mirror = WarmMirror(b.elector, KEY, step=60.0, interval=5.0, timeout=1.0, clock=clock,
                        client=client)  # fmt: skip
    assert await mirror.fetch_once() and mirror.held is not None
    held = mirror.held
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    for _ in range(3):
        assert not await mirror.fetch_once()
    assert mirror.held is held and mirror.failed == 3 and mirror.failures == 3
    assert "longer than" in (mirror.last_error or "")
    assert caplog.text.count("could not fetch the leader's history") == 1  # then every 30 s
    await mirror.close()
    await a.close()


async def test_an_unexpected_error_in_a_fetch_is_counted_and_logged_and_fetching_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    recent = _series(clock.time() // 60 * 60 - 120, [4, 4])
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise RuntimeError("a defect, not the leader's answer")
        return httpx.Response(200, content=orjson.dumps(history_body(recent, 0, 1, 2)))

    b = _candidate("b", clock, _Hung(), InMemoryBackend(clock=clock, initial=1))
    a = _candidate("a", clock, b.store, InMemoryBackend(clock=clock, initial=1))
    await a.elector.round()
    await b.elector.round()
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    mirror = WarmMirror(b.elector, KEY, step=60.0, interval=5.0, timeout=1.0, clock=clock,
                        client=client)  # fmt: skip
    told: list[int] = []
    mirror.listeners += [lambda: told.append(1), lambda: 1 / 0]  # a failing listener too
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    mirror.start()
    for n in (1, 2):
        for _ in range(20):  # let the mirror reach its sleep
            await asyncio.sleep(0)
        clock.advance(5.0)
        await until(lambda: len(told) == n)  # noqa: B023 (the answer is parsed in a thread)
    assert len(calls) == 2 and mirror.failed == 1 and mirror.fetches == 1
    assert mirror.held is not None and list(mirror.held.load.values) == [4, 4]
    assert "RuntimeError: a defect" in (mirror.last_error or "") and told == [1, 1]
    assert "failed unexpectedly" in caplog.text and "ZeroDivisionError" in caplog.text
    await mirror.close()  # the task ended by cancellation alone: nothing raised
    await a.close()


def test_merging_and_carrying_allocate_at_most_the_steps_held() -> None:
    import tracemalloc

    old, far = Carried(_series(0.0, [1.0])), Carried(_series(6e8, [2.0]))
    tracemalloc.start()
    try:
        merged = merge(old, far)  # 10 million steps apart: only the last MAX_STEPS are made
        carry(old.load, _series(6e8, [3.0]), since=6e8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * MAX_STEPS * 8, peak  # not the 80 MB of every step between them
    assert len(merged.load) == MAX_STEPS and merged.load.end == 6e8 + 60
    assert merged.load.values[-1] == 2.0 and merged.load.values[:-1].sum() == 0.0
    own = _series(6e8, [3.0] * 5)
    out = carry(old.load, own, since=6e8)
    assert len(out) == MAX_STEPS and out.end == own.end and list(out.values[-5:]) == [3.0] * 5
    # a carried step past the new leader's completed steps (a leader's clock ahead)
    ahead = carry(_series(6e8 + 180, [7.0, 8.0, 9.0]), own, since=6e8 + 400)
    assert ahead.start == 6e8 + 180 and list(ahead.values) == [7.0, 8.0]


async def test_the_history_route_takes_get_and_a_number_of_seconds() -> None:
    from types import SimpleNamespace

    from prsm.performance.errors import RequestValidationError
    from prsm.performance.gateway._admin import AdminApi
    from prsm.performance.routing import NodeRegistry

    admin = AdminApi(SimpleNamespace(registry=NodeRegistry(), monitor=None))
    route = "/admin/scaling/history"
    found = await admin.monitoring("GET", route, b"since=60")
    assert found is not None and found[0] == 404  # no candidate here
    asked: list[tuple[float, bool]] = []

    async def history(since: float, sessions: bool) -> tuple[int, bytes]:
        asked.append((since, sessions))
        return 200, b"{}"

    admin.scaling_history = history
    assert await admin.monitoring("GET", route, b"since=120.5") == (200, b"{}")
    assert await admin.monitoring("GET", route, b"") == (200, b"{}")
    assert await admin.monitoring("GET", route, b"since=60&sessions=1") == (200, b"{}")
    assert await admin.monitoring("GET", route, b"sessions=0") == (200, b"{}")
    assert asked == [(120.5, False), (0.0, False), (60.0, True), (0.0, False)]
    for query in (b"since=soon", b"since=nan", b"since=inf", b"sessions=yes"):
        with pytest.raises(RequestValidationError) as info:
            await admin.monitoring("GET", route, query)
        assert info.value.field == query.split(b"=")[0].decode()
    with pytest.raises(RequestValidationError):
        await admin.monitoring("POST", route, b"")


async def test_a_history_answer_is_parsed_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The largest answer takes a third of a second to decode and check: not on the loop."""
    import threading

    from prsm.performance.serve import _pod_warm

    clock = ManualClock()
    recent = _series(clock.time() // 60 * 60 - 120, [4, 4])
    threads: list[threading.Thread] = []
    real = _pod_warm.parse_history

    def parse(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(_pod_warm, "parse_history", parse)
    b = _candidate("b", clock, _Hung(), InMemoryBackend(clock=clock, initial=1))
    a = _candidate("a", clock, b.store, InMemoryBackend(clock=clock, initial=1))
    await a.elector.round()
    await b.elector.round()
    answer = orjson.dumps(history_body(recent, 0, 1, 2))
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=answer))
    )
    mirror = WarmMirror(b.elector, KEY, step=60.0, interval=5.0, timeout=1.0, clock=clock,
                        client=client)  # fmt: skip
    assert await mirror.fetch_once()
    assert threads and threads[0] is not threading.main_thread()
    await mirror.close()
    await a.close()
