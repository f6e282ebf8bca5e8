"""A leader's sessions taken on the event loop (:meth:`SessionTracker.freeze`) stay the state
of that moment while the tracker goes on, whatever it changes (users' arrivals and sessions,
users forgotten at ``max_users``, requests dropped at ``max_pending``, requests settling,
users forgotten after the gap), also while a worker thread reads them; and taking them copies
no user."""

from __future__ import annotations

import sys
import threading
import tracemalloc
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.scaling import _sessions
from prsm.performance.scaling._controller import InMemoryBackend
from prsm.performance.scaling._session_carry import MAX_USERS, freeze
from prsm.performance.scaling._session_state import CarriedSessions, FrozenSessions
from prsm.performance.scaling._sessions import MAX_NAME, SessionTracker

from .test_session_carry import NOW, _full

BOUNDS = (6, 40, 25)  # users, requests waiting, starts carried


def _feed(tracker: SessionTracker, start: float, end: float, seed: int) -> None:
    """Requests of 40 users (one named too long, one not by a string), settled now and then."""
    rng = np.random.default_rng(seed)
    t = start
    while (t := t + float(rng.exponential(20.0))) < end:
        k = int(rng.integers(0, 40)) ** 2 % 41
        user: Any = ("tenant", k) if k == 8 else f"{'x' * MAX_NAME}{k}" if k == 9 else f"user-{k}"
        tracker.arrived(user, t)
        if rng.random() < 0.1:
            tracker.snapshot(t)


def _plain(c: CarriedSessions) -> tuple[Any, ...]:
    return (c.gap, c.window, c.tau_step, c.new_window, c.num.tolist(), c.den.tolist(),
            c.settled, c.users, c.pending, c.starts, c.left_out)  # fmt: skip


def _export(tracker: SessionTracker, users: int = BOUNDS[0]) -> tuple[Any, ...]:
    return _plain(tracker.export(users, *BOUNDS[1:], max_times=5))


@pytest.mark.parametrize("users", [6, 40], ids=["newest-users", "forgotten-users-too"])
def test_what_was_frozen_is_the_moment_it_was_taken(users: int) -> None:
    tracker = SessionTracker(gap=600.0, max_users=10, max_pending=60)
    _feed(tracker, NOW - 7200.0, NOW, seed=1)
    tracker.arrived(("tenant", 8), NOW)  # not named by a string: held, never carried
    first_moment = _export(tracker, users)
    first = tracker.freeze(users, *BOUNDS[1:])
    for i in range(10):  # new users forget every one held (none of them changed before)
        tracker.arrived(f"new-{i}", NOW + 1.0 + i)
    _feed(tracker, NOW + 10.0, NOW + 900.0, seed=2)
    second_moment = _export(tracker, users)
    second = tracker.freeze(users, *BOUNDS[1:])  # two held at once (two standbys fetching)
    _feed(tracker, NOW + 900.0, NOW + 9000.0, seed=3)  # every user forgotten or moved on
    tracker.snapshot(NOW + 9000.0)
    assert first.saved and second.saved  # the tracker saved what it changed
    assert _plain(first.carry(users, 5)) == first_moment != second_moment
    assert _plain(second.carry(users, 5)) == second_moment != _export(tracker, users)
    assert first_moment[7] and first_moment[8] and first_moment[10] != (0, 0, 0)
    # some users are left out (older than the newest carried, or not named by a string);
    # with room, users forgotten at max_users whose requests wait are carried
    assert any(u[0] is None for u in first_moment[7]) == (users > 10)
    tracker.thaw(first)
    tracker.thaw(second)
    assert tracker._saving == ()
    held = (len(first.saved), len(second.saved))
    tracker.arrived("later", NOW + 9001.0)
    tracker.arrived("later", NOW + 9002.0)  # changed: saved for no one
    assert (len(first.saved), len(second.saved)) == held


def test_a_worker_thread_reads_the_moment_while_the_tracker_goes_on() -> None:
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns as often as they can
    try:
        for seed in range(4):
            tracker = SessionTracker(gap=600.0, max_users=10, max_pending=60)
            _feed(tracker, NOW - 7200.0, NOW, seed=10 + seed)
            moment = _export(tracker)
            frozen = tracker.freeze(*BOUNDS)
            read: list[tuple[Any, ...]] = []

            def build(frozen: FrozenSessions = frozen, read: list[Any] = read) -> None:
                for _ in range(30):
                    read.append(_plain(frozen.carry(6, 5)))

            worker = threading.Thread(target=build)
            worker.start()
            t = NOW
            while worker.is_alive():
                t += 5.0
                _feed(tracker, t - 5.0, t, seed=int(t))
            worker.join()
            tracker.thaw(frozen)
            assert read == [moment] * 30
    finally:
        sys.setswitchinterval(switch)


def test_a_user_changed_while_it_is_read_is_read_as_it_was() -> None:
    """The tracker changes a user between the reading of its fields and the check for a
    saved copy (as the event loop may, while a worker thread reads): the copy counts."""
    tracker = SessionTracker(gap=600.0)
    _feed(tracker, NOW - 3600.0, NOW, seed=6)
    moment = _export(tracker)
    frozen = tracker.freeze(*BOUNDS)
    busy = frozen.keyed[0]
    later = [lambda: tracker.arrived(busy.key, NOW + 1.0)]

    class Racing(deque[float]):
        def __iter__(self) -> Iterator[float]:
            if later:
                later.pop()()  # the loop's turn, in the middle of the reading
            return super().__iter__()

    busy.times = Racing(busy.times)
    assert _plain(frozen.carry(BOUNDS[0], 5)) == moment and not later
    tracker.thaw(frozen)


def test_freezing_the_largest_state_copies_no_user() -> None:
    tracker = SessionTracker()
    _full(tracker)  # 10,000 users carried, 50,000 requests waiting, 50,000 starts
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        frozen = freeze(tracker)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    only = [tracemalloc.Filter(True, _sessions.__file__)]
    made = after.filter_traces(only).compare_to(before.filter_traces(only), "filename")
    assert len(frozen.keyed) == MAX_USERS and all(len(u.key) <= MAX_NAME for u in frozen.keyed)
    assert sum(s.count_diff for s in made) < 20  # a few lists, not a tuple a user
    tracker.thaw(frozen)


async def test_a_leader_stops_saving_once_its_answer_is_built() -> None:
    from .test_elector import _Hung
    from .test_warm_standby import _candidate

    clock = ManualClock(start=NOW)
    a = _candidate("a", clock, _Hung(), InMemoryBackend(clock=clock, initial=1))
    await a.elector.round()
    await a.scaler.loop.close()
    _feed(a.tracker.sessions, NOW - 3600, NOW, seed=5)
    status, _ = await a.history(0.0, True)
    assert status == 200 and a.tracker.sessions._saving == ()
    await a.close()


def test_users_made_after_the_moment_are_not_saved() -> None:
    """What a held moment saves is bounded by the tracker's users at that moment: users that
    came after it (a burst of new users during one slow fetch) are not in it, nor saved."""
    tracker = SessionTracker(gap=600.0, max_users=10, max_pending=60)
    _feed(tracker, NOW - 7200.0, NOW, seed=1)
    moment = _export(tracker)
    there = {*tracker._users.values(), *(u for _, u, _ in tracker._pending)}  # (by identity)
    frozen = tracker.freeze(*BOUNDS)
    for i in range(500):  # new users, each twice: each forgets an older one at max_users
        tracker.arrived(f"new-{i}", NOW + 1.0 + i)
        tracker.arrived(f"new-{i}", NOW + 1.5 + i)
    assert frozen.saved and set(frozen.saved) <= there
    assert len(frozen.saved) <= len(there) < 100
    now = {*tracker._users.values(), *(u for _, u, _ in tracker._pending)}
    later = tracker.freeze(*BOUNDS)  # (one taken meanwhile saves the users it holds)
    tracker.arrived("new-499", NOW + 600.0)
    tracker.arrived("newest", NOW + 601.0)
    tracker.arrived("newest", NOW + 602.0)
    assert "new-499" in {u.key for u in later.saved} and set(later.saved) <= now
    assert _plain(frozen.carry(BOUNDS[0], 5)) == moment
    tracker.thaw(later)
    tracker.thaw(frozen)
