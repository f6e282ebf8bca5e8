"""The state a :class:`~._sessions.SessionTracker` serves to the standbys: as it is taken on
the event loop (:class:`FrozenSessions`, read in a worker thread) and as it is carried
(:class:`CarriedSessions`); and the tracker's users (:class:`_User`)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


#: a carried user: its name (``None``: forgotten at ``max_users``, its requests unsettled),
#: its last request, its session's requests so far and its unsettled requests' arrivals
CarriedUser = tuple[str | None, float, int, tuple[float, ...]]


@dataclass(frozen=True, slots=True, eq=False)
class CarriedSessions:
    """A :class:`SessionTracker`'s state as a leader serves it: its settings (a tracker of
    other settings refuses it), the continuation table's sums (``num``, ``den``) and the
    requests settled, its users (oldest last request first), the requests waiting to settle
    (``(arrival, index in users, rank)``, in order) and the session starts of the last
    ``new_window``; ``left_out``: the users, requests and starts the leader left out (over
    the bounds it serves, :meth:`SessionTracker.export`)."""

    gap: float
    window: tuple[float, float]
    tau_step: float
    new_window: float
    num: FloatArray = field(repr=False)
    den: FloatArray = field(repr=False)
    settled: int
    users: tuple[CarriedUser, ...]
    pending: tuple[tuple[float, int, int], ...]
    starts: tuple[float, ...]
    left_out: tuple[int, int, int] = (0, 0, 0)


#: a user's fields as a reading takes them: its last request, its session's requests so far,
#: its unsettled requests' arrivals, whether it was forgotten (at ``max_users``)
_Fields = tuple[float, int, tuple[float, ...], bool]
#: a user as :meth:`FrozenSessions.carry` reads it: its name (``None``: forgotten), its last
#: request, its session's requests so far, its unsettled requests' arrivals
_Copied = tuple[str | None, float, int, tuple[float, ...]]


@dataclass(frozen=True, slots=True, eq=False)
class FrozenSessions:
    """A :class:`SessionTracker`'s state at one moment, as :meth:`SessionTracker.freeze`
    takes it on the event loop that changes the tracker: the table's sums copied, the users,
    requests waiting and session starts it carries named (newest first), and ``saved``: each
    of those users' fields as they were before the tracker first changed them after that
    moment (the tracker saves them until :meth:`SessionTracker.thaw`). :meth:`carry` reads
    the users (in a worker thread: a user's fields read as they are now count only where the
    tracker had saved none for it once they were read, so what it reads is that moment's)."""

    settings: tuple[float, tuple[float, float], float, float]  # gap, window, tau_step, new_window
    num: FloatArray = field(repr=False)
    den: FloatArray = field(repr=False)
    settled: int
    keyed: list[_User]  # the users carried (named by a string), newest last request first
    pending: list[tuple[float, _User, int]]  # the newest requests waiting, newest first
    starts: list[float]  # the newest session starts, newest first
    held: tuple[int, int, int]  # the users not carried, the requests and starts held
    saved: dict[_User, _Fields] = field(default_factory=dict)

    def _read(self, u: _User) -> _Fields:
        fields = (u.last, u.rank, tuple(u.times), u.gone)  # (the tracker may change it now)
        saved = self.saved.get(u)  # after: saved before it changed, if it changed meanwhile
        return fields if saved is None else saved

    def carry(self, max_users: int, max_times: int) -> CarriedSessions:
        """The newest users (with those forgotten whose requests still wait, while there is
        room), their requests waiting, each user's newest ``max_times`` unsettled arrivals
        (its requests waiting from before them left out: they would settle on too few)."""
        keyed: dict[_User, _Copied] = {}
        for u in reversed(self.keyed):  # oldest last request first
            last, rank, arrivals, _ = self._read(u)
            keyed[u] = (cast(str, u.key), last, rank, arrivals)
        users = list(keyed.values())
        index = {u: i for i, u in enumerate(keyed)}
        waiting = self.pending[::-1]
        found: list[tuple[float, int, int]] = []
        for t, u, rank in waiting:
            i = index.get(u)
            if i is None and len(users) < max_users:
                last, its_rank, arrivals, gone = self._read(u)
                if gone:  # forgotten at max_users, still to settle
                    i = index[u] = len(users)
                    users.append((None, last, its_rank, arrivals))
                else:
                    index[u] = -1  # held, not carried (older, or not named by a string)
            if i is not None and i >= 0:
                found.append((t, i, rank))
        carried = [0] * len(users)  # each user's requests carried: its newest waiting
        for _, i, _ in found:
            carried[i] += 1
        # a request settles on its user's later arrivals: its newest ``carried`` are all those
        # (counted, not by time: arrivals at equal times would carry more than ``found``)
        full = [min(n, len(u[3])) for u, n in zip(users, carried, strict=True)]
        times = [u[3][len(u[3]) - min(n, max_times):] if n else ()
                 for u, n in zip(users, full, strict=True)]  # fmt: skip
        cut = [ts[0] if n > max_times else -math.inf for ts, n in zip(times, full, strict=True)]
        pending = tuple(p for p in found if p[0] >= cut[p[1]])
        gap, window, tau_step, new_window = self.settings
        starts = tuple(reversed(self.starts))
        return CarriedSessions(
            gap, window, tau_step, new_window, self.num, self.den, self.settled,
            tuple((k, last, rank, ts) for (k, last, rank, _), ts in zip(users, times,
                                                                        strict=True)),
            pending, starts,
            (self.held[0], self.held[1] - len(pending), self.held[2] - len(starts)),
        )  # fmt: skip


@dataclass(slots=True, eq=False)
class _User:
    key: Hashable  # its name in ``_users`` (``None``: forgotten there, restored so)
    last: float
    rank: int = 0
    times: deque[float] = field(default_factory=deque)  # its unsettled requests' arrivals
    gone: bool = False  # forgotten (at ``max_users``) while its requests wait to settle
    born: int = 0  # the tracker's freezes before it was made (one made later is in none)
