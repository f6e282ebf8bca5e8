"""The users' sessions, carried from a leader to a new one through the warm standby.

The session floor (:mod:`._predictive`, step 4) reads a :class:`~._sessions.SessionTracker`
that learns from every request naming its user: which sessions are open, the continuation
table (learned over all the requests the tracker has settled) and the session starts of the
last hour. A new leader's tracker knows none of it, so the leader serves its tracker's state
with its history (:func:`sessions_body`, the ``sessions`` of ``GET /admin/scaling/history``,
in full at each fetch), the standby checks it (:func:`parse_sessions`) and keeps the latest,
and the new leader's loop takes it over at the take-over (:class:`SessionCarry`). With the
decisions' records (each keeps what its decision read of the sessions, :mod:`._replay`), the
new leader's session floor is the one the old leader's would be.

Bounded: at most :data:`MAX_USERS` users (names of at most :data:`MAX_NAME` characters, as
the pods' reports send them), :data:`MAX_PENDING` requests waiting to settle and unsettled
arrivals in all, :data:`MAX_USER_TIMES` of one user, :data:`MAX_STARTS` session starts and
:data:`MAX_COLUMNS` columns of the table (sums at most :data:`MAX_COUNT`) are served and
accepted (the leader serves the newest; what it left out is in the answer's ``left_out``; a
user's requests from before its newest arrivals carried are left out); every value is
checked (a :class:`SessionsError` names it: the whole answer is refused, as a malformed
record refuses it). A tracker of other settings refuses the state at the take-over. What is
dropped is counted (``prsm_scaling_sessions_dropped_total{deployment,reason}``: ``users``,
``pending``, ``starts`` over the bounds; ``after_takeover_users``, ``after_takeover_pending``,
``after_takeover_starts``: users, requests waiting and session starts made after the
take-over) and logged; each take-over where the standby holds a history fetched from the
leader (none is counted where it fetched none) counts
``prsm_scaling_sessions_carried_total{deployment, outcome}``: ``carried``, ``absent`` (an
older leader answered without its sessions: the floor is relearned) or ``refused``.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import numpy as np

from ..monitoring._registry import MetricsRegistry
from ._session_state import CarriedSessions, CarriedUser, FrozenSessions
from ._sessions import MAX_NAME, RANK_EDGES, SessionTracker

log = logging.getLogger("prsm.performance.scaling")

#: the most users carried (the newest; the longest name: :data:`~._sessions.MAX_NAME`)
MAX_USERS = 10_000
#: the most requests waiting to settle carried (the newest), and unsettled arrivals in all
MAX_PENDING = 50_000
#: the most unsettled arrivals carried of one user (the newest; each request settling reads
#: its user's, so this bounds what settling the carried requests costs)
MAX_USER_TIMES = 2_000
#: the most session starts carried (the newest)
MAX_STARTS = 50_000
#: the most columns of the continuation table (``gap / tau_step + 1``; 121 by default)
MAX_COLUMNS = 1024
#: the most requests a session may have counted
MAX_RANK = 2**31
#: the largest sum in the continuation table (requests counted: a bound keeps its rates finite)
MAX_COUNT = 2.0**53
#: the most bytes the sessions add to an answer (names escaped at worst, numbers at 24)
MAX_BYTES = (MAX_USERS * (6 * MAX_NAME + 80) + MAX_PENDING * 80 + MAX_STARTS * 25
             + 2 * len(RANK_EDGES) * MAX_COLUMNS * 25 + 1024)  # fmt: skip
#: how far (seconds) a leader's clock may be ahead of a standby's (as for its history)
MAX_SKEW = 600.0
DROPPED = ("users", "pending", "starts", "after_takeover_users", "after_takeover_pending",
           "after_takeover_starts")  # fmt: skip


class SessionsError(ValueError):
    """A sessions part that is refused; names its field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"sessions.{field}: {problem}")


def freeze(tracker: SessionTracker) -> FrozenSessions:
    """The leader's tracker's state within the bounds above, taken where the tracker changes
    (the event loop), for :func:`sessions_body` in a worker thread; held (the tracker saves
    what it changes of it) until ``tracker.thaw`` it."""
    return tracker.freeze(MAX_USERS, MAX_PENDING, MAX_STARTS)


def sessions_body(tracker: SessionTracker | FrozenSessions) -> dict[str, Any]:
    """The leader's tracker's state (:func:`freeze`), for ``orjson`` (its tuples written as
    arrays, not copied: the leader serves it at each fetch that asks), within the bounds."""
    if isinstance(tracker, FrozenSessions):
        c = tracker.carry(MAX_USERS, MAX_USER_TIMES)
    else:
        c = tracker.export(MAX_USERS, MAX_PENDING, MAX_STARTS, MAX_USER_TIMES)
    return {"gap": c.gap, "window": list(c.window), "tau_step": c.tau_step,
            "new_window": c.new_window, "num": c.num.tolist(), "den": c.den.tolist(),
            "settled": c.settled, "users": c.users, "pending": c.pending, "starts": c.starts,
            "left_out": c.left_out}  # fmt: skip


def _num(value: Any, field: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SessionsError(field, f"must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise SessionsError(field, f"must be in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _whole(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SessionsError(field, f"must be a whole number in [{low}, {high}], got {value!r}")
    return value


def _list(value: Any, field: str, most: int, length: int | None = None) -> list[Any]:
    if not isinstance(value, list) or len(value) > most:
        raise SessionsError(field, f"must be a list of at most {most} entries")
    if length is not None and len(value) != length:
        raise SessionsError(field, f"must have {length} entries, got {len(value)}")
    return value


def _times(value: Any, field: str, most: int, high: float) -> tuple[float, ...]:
    times = tuple(_num(t, field, high=high) for t in _list(value, field, most))
    if any(b < a for a, b in itertools.pairwise(times)):
        raise SessionsError(field, "must be in the order they were made")
    return times


def _table(body: dict[str, Any], field: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    rows = _list(body.get(field), field, len(RANK_EDGES), len(RANK_EDGES))
    cols = len(_list(rows[0], f"{field}[]", MAX_COLUMNS))
    values = [[_num(v, f"{field}[][]", low=0.0, high=MAX_COUNT)
               for v in _list(row, f"{field}[]", cols, cols)] for row in rows]  # fmt: skip
    if cols == 0:
        raise SessionsError(field, "must have at least one column")
    return np.array(values, dtype=np.float64)


def _user(value: Any, high: float) -> CarriedUser:
    name, last, rank, times = _list(value, "users[]", 4, 4)
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise SessionsError("users[]", f"a name is null or at most {MAX_NAME} characters")
    last = _num(last, "users[].last", high=high)
    seen = _times(times, "users[].times", MAX_USER_TIMES, last)
    return name, last, _whole(rank, "users[].rank", 1, MAX_RANK), seen


def parse_sessions(body: Any, now: float) -> CarriedSessions:
    """A leader's ``sessions`` (decoded JSON), every field checked (a :class:`SessionsError`):
    within the bounds above, times finite, in order and at most :data:`MAX_SKEW` after
    ``now`` (this pod's wall clock), each user's unsettled arrivals at or before its last
    request, named users unique and in the order of their last requests, each waiting
    request at or before its user's last request."""
    if not isinstance(body, dict):
        raise SessionsError("", "the sessions are a JSON object")
    high = now + MAX_SKEW
    gap, tau, new_window = (_num(body.get(f), f, low=1e-9) for f in ("gap", "tau_step",
                                                                      "new_window"))  # fmt: skip
    start, end = (_num(w, "window", low=0.0) for w in _list(body.get("window"), "window", 2, 2))
    if not start < end:
        raise SessionsError("window", f"must be (start, end) with start < end: {[start, end]}")
    num, den = _table(body, "num"), _table(body, "den")
    if num.shape != den.shape:
        raise SessionsError("den", f"must have num's shape {num.shape}, got {den.shape}")
    users: list[CarriedUser] = []
    arrivals = 0  # checked as they come: a refused answer is not read to its end
    for entry in _list(body.get("users"), "users", MAX_USERS):
        users.append(_user(entry, high))
        if (arrivals := arrivals + len(users[-1][3])) > MAX_PENDING:
            raise SessionsError("users", f"more than {MAX_PENDING} unsettled arrivals in all")
    named = [u for u in users if u[0] is not None]
    if len({u[0] for u in named}) < len(named):
        raise SessionsError("users", "a name comes twice")
    if any(b[1] < a[1] for a, b in itertools.pairwise(named)):
        raise SessionsError("users", "must be in the order of their last requests")
    pending = []
    for entry in _list(body.get("pending"), "pending", MAX_PENDING):
        t, i, rank = _list(entry, "pending[]", 3, 3)
        i = _whole(i, "pending[].user", 0, len(users) - 1)
        pending.append((_num(t, "pending[].at", high=users[i][1]), i,
                        _whole(rank, "pending[].rank", 1, MAX_RANK)))  # fmt: skip
    if any(b[0] < a[0] for a, b in itertools.pairwise(pending)):
        raise SessionsError("pending", "must be in the order the requests arrived")
    starts = _times(body.get("starts"), "starts", MAX_STARTS, high)
    left = _list(body.get("left_out", [0, 0, 0]), "left_out", 3, 3)
    return CarriedSessions(
        gap, (start, end), tau, new_window, num, den,
        _whole(body.get("settled"), "settled", 0, 2**62), tuple(users), tuple(pending), starts,
        (_whole(left[0], "left_out", 0, 2**62), _whole(left[1], "left_out", 0, 2**62),
         _whole(left[2], "left_out", 0, 2**62)),
    )  # fmt: skip


class SessionCarry:
    """A new leader's take-over of the last leader's sessions (see the module docstring);
    one per loop."""

    def __init__(self, deployment: str, metrics: MetricsRegistry) -> None:
        self.deployment = deployment
        self._m_carried = metrics.counter(
            "scaling_sessions_carried", "Take-overs by whether the last leader's users' "
            "sessions were carried", ["deployment", "outcome"],
        )  # fmt: skip
        self._m_dropped = metrics.counter(
            "scaling_sessions_dropped",
            "Parts of the last leader's users' sessions not carried, by reason",
            ["deployment", "reason"],
        )

    def restore(
        self, tracker: SessionTracker, sessions: CarriedSessions | None, since: float
    ) -> bool:
        """``tracker`` takes ``sessions`` (the last leader's, as the standby last fetched
        them; ``None``: its answers had none) at the take-over at ``since``; whether it did.
        Counted and logged."""
        if sessions is None:
            self._m_carried.labels(self.deployment, "absent").inc()
            log.warning("the last leader served no users' sessions (an older version): the "
                        "session floor is relearned")  # fmt: skip
            return False
        try:
            dropped = tracker.restore(sessions, since)
        except ValueError as exc:
            self._m_carried.labels(self.deployment, "refused").inc()
            log.warning("the last leader's users' sessions are not carried: %s", exc)
            return False
        left = dict(zip(("users", "pending", "starts"), sessions.left_out, strict=True))
        for reason in DROPPED:
            n = dropped.get(reason, 0) + left.get(reason, 0)
            if n:
                self._m_dropped.labels(self.deployment, reason).inc(n)
        lost = {r: dropped.get(r, 0) + left.get(r, 0) for r in DROPPED}
        if any(lost.values()):
            log.warning("of the last leader's users' sessions, not carried: %s",
                        ", ".join(f"{n} ({r})" for r, n in lost.items() if n))  # fmt: skip
        self._m_carried.labels(self.deployment, "carried").inc()
        log.info("the new leader carries the last leader's %d user(s), %d request(s) to settle "
                 "and its table of %d settled request(s)", len(sessions.users),
                 len(sessions.pending), sessions.settled)  # fmt: skip
        return True
