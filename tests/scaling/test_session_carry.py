"""The users' sessions carried to a new leader (:mod:`prsm.performance.scaling._session_carry`):
a tracker restored from a leader's answer goes on as the leader's would; an answer is bounded
and every value checked, naming the field; what is dropped or refused is counted and logged."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MetricsRegistry
from prsm.performance.scaling import PredictiveScaler
from prsm.performance.scaling._controller import InMemoryBackend
from prsm.performance.scaling._replay import StepRecord, parse_record
from prsm.performance.scaling._session_carry import (
    MAX_BYTES,
    MAX_COLUMNS,
    MAX_PENDING,
    MAX_STARTS,
    MAX_USER_TIMES,
    MAX_USERS,
    SessionCarry,
    SessionsError,
    parse_sessions,
    sessions_body,
)
from prsm.performance.scaling._sessions import MAX_NAME, SessionSnapshot, SessionTracker
from prsm.performance.scaling._types import LoadSeries
from prsm.performance.scaling._warm import Carried, HistoryError, history_body, parse_history

from .test_takeover_replay import SESSIONS

NOW = 100_020.0  # a whole minute


def _feed(tracker: SessionTracker, start: float, end: float, seed: int) -> None:
    """Requests of 30 users (a few quiet for a while), a settle at each decision."""
    rng = np.random.default_rng(seed)
    t = start
    while (t := t + float(rng.exponential(6.0))) < end:
        tracker.arrived(f"user-{int(rng.integers(0, 30)) ** 2 % 37}", t)
        if rng.random() < 0.05:
            tracker.snapshot(t)


def _same(a: SessionSnapshot, b: SessionSnapshot) -> None:
    assert (a.open, a.new_sessions, a.starts, a.settled) == (b.open, b.new_sessions, b.starts,
                                                             b.settled)  # fmt: skip
    assert np.array_equal(a.table, b.table)


def _wire(tracker: SessionTracker) -> Any:
    return orjson.loads(orjson.dumps(sessions_body(tracker)))


@pytest.mark.parametrize("max_users", [100_000, 12], ids=["all", "users-forgotten"])
def test_a_restored_tracker_goes_on_as_the_leaders_would(max_users: int) -> None:
    leader = SessionTracker(max_users=max_users)
    _feed(leader, NOW - 3 * 3600, NOW, seed=1)
    new = SessionTracker(max_users=max_users)
    body = _wire(leader)
    assert any(u[0] is None for u in body["users"]) == (max_users == 12)  # forgotten, unsettled
    dropped = new.restore(parse_sessions(body, NOW), NOW)
    assert dropped == {"after_takeover_users": 0, "after_takeover_pending": 0,
                       "after_takeover_starts": 0, "users": 0, "pending": 0}  # fmt: skip
    first = leader.snapshot(NOW)
    _same(new.snapshot(NOW), first)
    for i, at in enumerate(np.arange(NOW + 15, NOW + 2 * 3600, 15.0)):  # the same requests
        for tracker in (leader, new):
            tracker.arrived(f"user-{i % 41}", float(at) - 3.0)
        _same(new.snapshot(float(at)), leader.snapshot(float(at)))
    assert new.settled > first.settled  # it went on learning


def test_what_a_leader_leaves_out_and_what_came_after_the_take_over_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leader = SessionTracker()
    _feed(leader, NOW - 3600, NOW, seed=2)
    leader.arrived("x" * (MAX_NAME + 1), NOW - 1.0)  # a name longer than the pods send
    leader.arrived(("not", "a", "string"), NOW - 1.0)
    body = _wire(leader)
    assert body["left_out"] == [2, 2, 0]  # the two users and their requests
    carried = parse_sessions(body, NOW)
    metrics = MetricsRegistry()
    carry = SessionCarry("default", metrics)
    caplog.set_level(logging.INFO, "prsm.performance.scaling")
    new = SessionTracker()
    assert carry.restore(new, carried, NOW - 30.0)  # the leader's clock 30 s ahead
    late = [u for u in carried.users if u[1] > NOW - 30.0]
    assert late and all(name not in new._users for name, *_ in late)

    def count(name: str, **labels: str) -> float:
        value = metrics.registry.get_sample_value(name, {"deployment": "default", **labels})
        return value or 0.0

    assert count("prsm_scaling_sessions_dropped_total", reason="users") == 2
    since = NOW - 30.0  # users, requests waiting and starts, each counted in its own reason
    late_pending = [p for p in carried.pending if max(p[0], carried.users[p[1]][1]) > since]
    late_starts = [t for t in carried.starts if t > since]
    assert late_pending and late_starts
    for reason, n in (("users", late), ("pending", late_pending), ("starts", late_starts)):
        assert count("prsm_scaling_sessions_dropped_total",
                     reason=f"after_takeover_{reason}") == len(n)  # fmt: skip
    assert count("prsm_scaling_sessions_carried_total", outcome="carried") == 1
    assert "not carried: 2 (users), 2 (pending)" in caplog.text
    other = SessionTracker(gap=600.0)  # a tracker of other settings refuses it
    assert not carry.restore(other, carried, NOW)
    assert count("prsm_scaling_sessions_carried_total", outcome="refused") == 1
    assert "other settings" in caplog.text
    assert not carry.restore(new, None, NOW)  # an older leader's answer: relearned
    assert count("prsm_scaling_sessions_carried_total", outcome="absent") == 1


def _full(leader: SessionTracker) -> None:
    """Users, requests waiting and session starts over the bounds carried."""
    per = MAX_PENDING // MAX_USERS
    for i in range(MAX_USERS + 5):
        for k in range(per):
            leader.arrived(f"{i:0{MAX_NAME}d}", NOW - 1000.0 + i * 0.01 + k * 1e-4)
    for i in range(MAX_STARTS + 5):  # session starts of forgotten users
        leader.arrived(f"gone-{i}", NOW - 900.0 + i * 1e-3)


def test_the_largest_answer_fits_its_bound() -> None:
    leader = SessionTracker()
    _full(leader)
    body = orjson.dumps(sessions_body(leader))
    assert len(body) <= MAX_BYTES
    carried = parse_sessions(orjson.loads(body), NOW)
    assert len(carried.users) == MAX_USERS and len(carried.pending) <= MAX_PENDING
    assert len(carried.starts) == MAX_STARTS and carried.left_out[2] > 0


async def test_a_leader_serves_the_sessions_only_to_a_standby_that_asks() -> None:
    """An older standby never asks, and its bound on an answer (without room for the
    sessions) holds; the standby of this version asks for them."""
    import httpx

    from prsm.performance.scaling._replay import MAX_RECORDS
    from prsm.performance.scaling._warm import MAX_STEPS
    from prsm.performance.serve._pod_warm import WarmMirror

    from .test_elector import _Hung
    from .test_warm_standby import KEY, _candidate

    clock = ManualClock(start=NOW)
    a = _candidate("a", clock, _Hung(), InMemoryBackend(clock=clock, initial=1))
    b = _candidate("b", clock, a.store, InMemoryBackend(clock=clock, initial=1))
    await a.elector.round()
    await b.elector.round()
    await a.scaler.loop.close()
    _full(a.tracker.sessions)
    status, old = await a.history(0.0)
    assert status == 200 and "sessions" not in orjson.loads(old)
    assert len(old) <= MAX_STEPS * 32 + MAX_RECORDS * 640 + 4096  # an older standby's bound
    status, new = await a.history(0.0, True)
    assert orjson.loads(new)["sessions"]["users"]
    asked: list[str | None] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("sessions"))
        status, body = await a.history(float(request.url.params["since"]), asked[-1] == "1")
        return httpx.Response(status, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    mirror = WarmMirror(b.elector, KEY, step=60.0, interval=10.0, timeout=5.0, clock=clock,
                        client=client)  # fmt: skip
    assert await mirror.fetch_once()
    assert asked == ["1"] and mirror.held is not None and mirror.held.sessions is not None
    assert len(mirror.held.sessions.users) == MAX_USERS
    await mirror.close()
    await a.close()
    await b.close()


async def test_the_leader_copies_the_sessions_on_the_loop_and_builds_its_answer_off_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a worker thread reads is a copy: the tracker going on after it was taken (new
    users forgetting old ones, requests arriving and settling) changes nothing in it."""
    import threading

    from prsm.performance.serve import _pod_standby

    from .test_elector import _Hung
    from .test_warm_standby import _candidate

    leader = SessionTracker(max_users=12)
    _feed(leader, NOW - 3 * 3600, NOW, seed=3)
    frozen = leader.freeze(MAX_USERS, MAX_PENDING, MAX_STARTS)
    before = orjson.dumps(sessions_body(leader))
    _feed(leader, NOW, NOW + 3 * 3600, seed=4)
    for i in range(20):
        leader.arrived(f"later-{i}", NOW + 3 * 3600 + i)
    assert orjson.dumps(sessions_body(frozen)) == before != orjson.dumps(sessions_body(leader))
    clock = ManualClock(start=NOW)
    a = _candidate("a", clock, _Hung(), InMemoryBackend(clock=clock, initial=1))
    await a.elector.round()
    await a.scaler.loop.close()
    _feed(a.tracker.sessions, NOW - 3600, NOW, seed=5)
    threads: list[threading.Thread] = []
    real = _pod_standby.sessions_body

    def body(frozen: Any) -> dict[str, Any]:
        threads.append(threading.current_thread())
        return real(frozen)

    monkeypatch.setattr(_pod_standby, "sessions_body", body)
    status, answer = await a.history(0.0, True)
    assert status == 200 and orjson.loads(answer)["sessions"] == _wire(a.tracker.sessions)
    assert threads and threads[0] is not threading.main_thread()
    await a.close()


def test_one_users_arrivals_are_bounded_and_its_older_requests_left_out() -> None:
    leader = SessionTracker()
    for k in range(MAX_USER_TIMES + 50):  # one busy user (an API key's tenant)
        leader.arrived("tenant:busy", NOW - 1000.0 + k * 0.1)
    leader.arrived("quiet", NOW - 1.0)
    body = _wire(leader)
    assert [len(u[3]) for u in body["users"]] == [MAX_USER_TIMES, 1]
    assert body["left_out"] == [0, 50, 0] and len(body["pending"]) == MAX_USER_TIMES + 1
    carried = parse_sessions(body, NOW)  # what is carried settles as the leader's does
    new = SessionTracker()
    new.restore(carried, NOW)
    for tracker in (new, leader):
        tracker.arrived("tenant:busy", NOW + 100.0)
    later = NOW + 3000.0
    left_out = leader._pending[49]  # the last of the 50 requests left out
    for tracker in (new, leader):
        tracker.settle(later)
    assert new.settled == leader.settled - 50 and left_out[0] < body["pending"][0][0]
    body["users"][0][3].append(body["users"][0][1])
    with pytest.raises(SessionsError, match=r"users\[\]\.times"):
        parse_sessions(body, NOW)


def test_arrivals_at_equal_times_carry_no_more_than_the_requests_carried() -> None:
    leader = SessionTracker()  # a report's batch read at one time: ties at the cut
    for k in range(MAX_PENDING + 10_000):
        leader.arrived(f"u{k % 40}", NOW - 1000.0 + k // 30_000)
    body = _wire(leader)
    assert sum(len(u[3]) for u in body["users"]) <= len(body["pending"]) == MAX_PENDING
    new = SessionTracker()  # the leader's own answer is taken, not refused
    new.restore(parse_sessions(body, NOW), NOW)
    assert len(new._pending) == MAX_PENDING and body["left_out"] == [0, 10_000, 0]


def test_an_answer_over_the_arrivals_bound_is_refused_before_its_later_users() -> None:
    body = _wire(SessionTracker())
    busy = [None, 0.0, 1, [0.0] * MAX_USER_TIMES]
    body["users"] = [busy] * (MAX_PENDING // MAX_USER_TIMES + 1) + [[1, 0.0, 1, []]]
    with pytest.raises(SessionsError, match=r"sessions\.users: more than"):
        parse_sessions(body, NOW)


def _bad(body: dict[str, Any], change: Any) -> dict[str, Any]:
    body = orjson.loads(orjson.dumps(body))
    change(body)
    return body


BAD = {
    "gap": lambda b: b.update(gap=0),
    "window": lambda b: b.update(window=[210.0, 90.0]),
    "num": lambda b: b["num"][0].__setitem__(0, float("nan")),
    "num[][]": lambda b: b["num"][1].__setitem__(3, 1e300),
    "den": lambda b: b["den"].pop(),
    "num[]": lambda b: b.update(num=[[0.0] * (MAX_COLUMNS + 1)] * 4),
    "users": lambda b: b.update(users=[[None, 0.0, 1, []]] * (MAX_USERS + 1)),
    "users[]": lambda b: b["users"][0].__setitem__(0, "y" * (MAX_NAME + 1)),
    "users[].times": lambda b: b["users"][0][3].append(b["users"][0][1] + 1.0),
    "users[].last": lambda b: b["users"][-1].__setitem__(1, NOW + 3600.0),
    "users[].rank": lambda b: b["users"][0].__setitem__(2, 0),
    "pending[].user": lambda b: b["pending"][0].__setitem__(1, len(b["users"])),
    "pending": lambda b: b["pending"].reverse(),
    "starts": lambda b: b.update(starts=[NOW, NOW - 1.0]),
    "settled": lambda b: b.update(settled=-1),
}


@pytest.mark.parametrize("field", list(BAD))
def test_a_bad_answer_is_refused_naming_the_field(field: str) -> None:
    leader = SessionTracker()
    _feed(leader, NOW - 3600, NOW, seed=3)
    body = sessions_body(leader)
    assert len(body["pending"]) > 2 and len(body["users"]) > 2
    with pytest.raises(
        SessionsError, match=f"sessions\\.{field.replace('[', '.').replace(']', '.')}"
    ):
        parse_sessions(_bad(body, BAD[field]), NOW)
    load = LoadSeries(NOW - 600.0, 60.0, np.ones(10))
    answer = history_body(load, 0.0, None, None, sessions=_bad(body, BAD[field]))
    with pytest.raises(HistoryError, match="sessions"):  # the whole answer refused
        parse_history(orjson.loads(orjson.dumps(answer)), 60.0, now=NOW)


def test_names_twice_or_out_of_order_are_refused() -> None:
    leader = SessionTracker()
    _feed(leader, NOW - 3600, NOW, seed=4)
    body = _wire(leader)
    body["users"][1][0] = body["users"][0][0]
    with pytest.raises(SessionsError, match="twice"):
        parse_sessions(body, NOW)
    body = _wire(leader)
    body["users"][0], body["users"][-1] = body["users"][-1], body["users"][0]
    with pytest.raises(SessionsError, match="order"):
        parse_sessions(body, NOW)


def _record(reading: tuple[float, int, float, float] | None) -> StepRecord:
    return StepRecord(NOW, 2, 0, 2, 0, 0, 0.0, 0.0, 15.0, 3, 1, 4.0, 45.0, None, None,
                      sessions=reading)  # fmt: skip


def test_a_records_reading_goes_through_json_and_a_bad_one_is_refused() -> None:
    record = _record((0.123456789, 17, 90.0, 210.0))
    assert parse_record(orjson.loads(orjson.dumps(record.as_dict()))) == record
    ctx = record.context(None)
    assert ctx.sessions is not None and ctx.sessions.expected_rate(900.0) == 0.123456789
    for reading in ([float("nan"), 1, 90.0, 210.0], [2e9, 1, 90.0, 210.0], [1.0, 1, 210.0, 90.0],
                    [1.0, -1, 90.0, 210.0], [1.0, 2]):  # fmt: skip
        with pytest.raises(ValueError, match="sessions"):
            parse_record(record.as_dict() | {"sessions": reading})


async def test_a_reading_over_another_window_is_refused_and_the_replay_is_partial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(start=NOW)
    metrics = MetricsRegistry()
    scaler = PredictiveScaler(InMemoryBackend(clock=clock, initial=2), SESSIONS, clock=clock,
                              metrics=metrics)  # fmt: skip
    now = clock.time()
    records = tuple(dataclasses.replace(_record((0.5, 10, 60.0, 300.0)), now=now - 15.0 * k)
                    for k in range(4, 0, -1))  # fmt: skip
    held = SessionTracker().export(10, 10, 10, 10)
    load = LoadSeries(now - 600.0, 60.0, np.ones(10))
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, records, sessions=held), now)
    await scaler.loop.step()
    refused = metrics.registry.get_sample_value(
        "prsm_scaling_replay_refused_records_total", {"deployment": "default", "reason": "sessions"}
    )
    assert refused == 4 and "another window" in caplog.text
    replayed = scaler.loop.replayed
    assert replayed is not None and any("reading of the sessions" in p for p in replayed["partial"])
