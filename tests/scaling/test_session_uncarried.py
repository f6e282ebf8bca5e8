"""The users a leader does not carry to its standbys (not named by a string of at most
``MAX_NAME`` characters) are kept apart as users come and go, so that taking the sessions on
the event loop (:meth:`SessionTracker.freeze`, at each history fetch) reads no user's name:
the users it takes are those a full look at every name would take, whatever the tracker did
before (users arriving, forgotten at ``max_users`` or after the gap, a take-over's
restore)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from hypothesis import given, settings, strategies as st

from prsm.performance.scaling._session_carry import freeze
from prsm.performance.scaling._session_state import _User
from prsm.performance.scaling._sessions import MAX_NAME, SessionTracker

from .test_session_carry import NOW

#: names around the bound (one under, at it, one over), a tuple (not a string) and plain ones
NAMES: tuple[Hashable, ...] = (
    "a" * (MAX_NAME - 1), "b" * MAX_NAME, "c" * (MAX_NAME + 1), "d" * 200, ("tenant", 1),
    *(f"user-{i}" for i in range(8)),
)  # fmt: skip


def _scanned(tracker: SessionTracker, max_users: int) -> list[_User]:
    """The newest ``max_users`` users carried, by a look at every name (newest first)."""
    carried = [u for u in reversed(tracker._users.values())
               if isinstance(u.key, str) and len(u.key) <= MAX_NAME]  # fmt: skip
    return carried[:max_users]


#: one step: a user's request ``gap`` seconds after the last step, or the scaling loop's
#: settling (users quiet past the horizon forgotten), or a take-over of the state so far
STEPS = st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from(NAMES), st.floats(0.0, 400.0)),
    st.tuples(st.just("settle"), st.none(), st.floats(0.0, 900.0)),
    st.tuples(st.just("restore"), st.none(), st.just(0.0)),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(STEPS, max_size=60), max_users=st.integers(1, 6), bound=st.integers(1, 8))
def test_the_users_taken_are_those_a_look_at_every_name_takes(
    steps: list[tuple[str, Any, float]], max_users: int, bound: int
) -> None:
    tracker = SessionTracker(gap=300.0, window=(30.0, 90.0), max_users=max_users)
    now = NOW
    for kind, name, gap in steps:
        now += gap
        if kind == "arrive":
            tracker.arrived(name, now)
        elif kind == "settle":
            tracker.snapshot(now)
        else:  # a new leader takes the state over (it carries only the users carried)
            carried = tracker.export(bound, 50, 50, 20)
            tracker = SessionTracker(gap=300.0, window=(30.0, 90.0), max_users=max_users)
            tracker.restore(carried, now)
        uncarried = {u for u in tracker._users.values() if u not in _scanned(tracker, 10**6)}
        assert tracker._uncarried == uncarried
        frozen = tracker.freeze(bound, 50, 50)
        assert frozen.keyed == _scanned(tracker, bound)
        assert frozen.held[0] == len(tracker._users) - len(frozen.keyed)
        tracker.thaw(frozen)


class _Name(str):
    """A user's name that counts how often its length is read."""

    reads = 0

    def __len__(self) -> int:
        _Name.reads += 1
        return super().__len__()


def test_taking_the_sessions_reads_no_users_name() -> None:
    tracker = SessionTracker()
    for i in range(3000):
        tracker.arrived(_Name(f"user-{i}"), NOW + i * 0.01)
    tracker.arrived(_Name("x" * (MAX_NAME + 1)), NOW + 30.0)  # the newest: not carried
    read = _Name.reads  # (each name is read once, as its user first comes)
    for _ in range(5):  # five standbys' fetches
        frozen = freeze(tracker)
        tracker.thaw(frozen)
        assert len(frozen.keyed) == 3000 and frozen.keyed[0].key == "user-2999"
    assert _Name.reads == read
