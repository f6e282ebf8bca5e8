"""Users' sessions: who is active now, and how many requests an active user brings next.

A user who has just sent a request is likely to send more soon (people submit jobs in
bursts: on the Alibaba LoRA trace the median gap between a user's consecutive requests is
69 s). :class:`SessionTracker` learns that from the requests that carry a user (the OpenAI
``user`` field or the API key's tenant, see :class:`~prsm.performance.scaling.
TrackedUpstream`):

- a **session** is a user's requests less than ``gap`` seconds apart; the tracker keeps
  each open session's time since its last request and its requests so far (its *rank*);
- a **continuation table**, learned online from every settled request: after a request of
  rank bucket ``b`` and ``τ`` seconds with no later request from its user, the mean number
  of that user's requests in ``[now + window[0], now + window[1])`` — the arrivals that a
  replica asked for now can still serve within the SLO (ready after the start-up, a request
  may wait the SLO). A request is settled (counted into the table) once ``gap + window[1]``
  seconds have passed, so the table only ever holds the past;
- the rate of **new sessions** over the last ``new_window`` seconds.

:meth:`SessionTracker.snapshot` turns that into a :class:`SessionSnapshot` (immutable, in the
:class:`~prsm.performance.scaling.ScalingContext`), whose :meth:`~SessionSnapshot.
expected_rate` is the requests per second the open sessions and new ones are expected to
bring in the window. ``arrived`` is O(1); the table's updates run in ``snapshot`` (the
scaling loop's step, off the request path), O(121) numpy work per settled request.

Memory is bounded whatever the clients send (the ``user`` field is theirs to choose): at most
``max_users`` users are kept (the one quiet longest is forgotten first) and at most
``max_pending`` requests wait to be settled (past that, the oldest is dropped unsettled and
counted in :attr:`SessionTracker.dropped`).

A leader serves its tracker's state to the standbys (:meth:`SessionTracker.export`, a
:class:`CarriedSessions`; on the wire :mod:`._session_carry`), and a new leader takes it over
(:meth:`SessionTracker.restore`), so its session floor reads what the old leader's would. The
state is taken on the event loop without copying a user (:meth:`SessionTracker.freeze`: while
it is held, the tracker saves a user's fields before it first changes them) and read in a
worker thread as it was then.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ._session_state import CarriedSessions, FloatArray, FrozenSessions, _Fields, _User
from ._types import check_positive, check_whole

#: the session's requests so far, bucketed: 1, 2–3, 4–9, 10 or more
RANK_EDGES = (1, 2, 4, 10)
#: the longest user name a leader serves its standbys (the pods' reports send none longer):
#: a user not named by a string of at most this many characters is not carried
MAX_NAME = 64


def _carried(user: Hashable) -> bool:
    """Whether a user of this name is carried to the standbys (see :data:`MAX_NAME`)."""
    return isinstance(user, str) and len(user) <= MAX_NAME


def session_window(startup_time: float, slo: float, lead: float = 60.0) -> tuple[float, float]:
    """The arrivals a replica asked for now can serve within the SLO: from ``startup - slo``
    (a request arriving then may wait until the replica is ready) for ``2·slo + lead``
    seconds. Start-up 120 s and SLO 30 s give ``(90, 210)``."""
    return max(0.0, startup_time - slo), startup_time + slo + lead


def rank_bucket(rank: int) -> int:
    """Index of ``rank`` (the session's requests so far, ≥ 1) in :data:`RANK_EDGES`."""
    return int(np.searchsorted(RANK_EDGES, rank, side="right")) - 1


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """Open sessions at one moment and what the tracker has learned: ``open`` holds, per
    open session, the seconds since its user's last request and the session's requests so
    far; ``new_sessions`` began in the last ``new_window`` seconds (``starts``: their ages,
    seconds, newest first; ``None`` where not known); ``table[b, k]`` is the mean number of
    a user's requests in ``window`` after ``k·tau_step`` quiet seconds following a request
    of rank bucket ``b`` (from ``settled`` requests)."""

    open: tuple[tuple[float, int], ...]
    new_sessions: int
    new_window: float
    window: tuple[float, float]
    tau_step: float
    table: FloatArray = field(repr=False)
    settled: int = 0
    starts: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.starts is not None and len(self.starts) != self.new_sessions:
            raise ConfigError(
                "starts",
                f"must hold the ages of the {self.new_sessions} new sessions, "
                f"got {len(self.starts)}",
            )

    def expected_requests(self) -> float:
        """The open sessions' expected requests in ``window``."""
        if not self.open:
            return 0.0
        cols = self.table.shape[1] - 1
        return float(
            sum(
                self.table[rank_bucket(rank), min(cols, int(quiet // self.tau_step))]
                for quiet, rank in self.open
            )
        )

    def new_session_rate(self, new_window: float | None = None) -> float:
        """New sessions per second over the last ``new_window`` seconds (``None``: the
        tracker's ``new_window``); a shorter one needs the snapshot's ``starts``."""
        if new_window is None or new_window == self.new_window:
            return self.new_sessions / self.new_window
        if not 0 < new_window <= self.new_window:
            raise ConfigError(
                "session_new_window",
                f"must be in (0, {self.new_window:g}] (the tracker's new_window), "
                f"got {new_window!r}",
            )
        if self.starts is None:
            raise ConfigError(
                "session_new_window", "the session snapshot carries no start times (starts)"
            )
        return sum(1 for age in self.starts if age < new_window) / new_window

    def expected_rate(self, new_window: float | None = None) -> float:
        """Requests per second expected in ``window``: the open sessions' plus new sessions
        at the rate of the last ``new_window`` seconds (:meth:`new_session_rate`; ``0``
        until a request has settled: nothing learned yet)."""
        if self.settled == 0:
            return 0.0
        span = self.window[1] - self.window[0]
        return self.expected_requests() / span + self.new_session_rate(new_window)


@dataclass(frozen=True, slots=True)
class SessionReading:
    """What a decision read of the sessions, as its record keeps it (:mod:`._replay`): the
    expected rate (at the deciding policy's ``session_new_window``), the requests settled and
    the window. A replayed decision reads it where the live one read a
    :class:`SessionSnapshot`."""

    rate: float
    settled: int
    window: tuple[float, float]

    def expected_rate(self, new_window: float | None = None) -> float:
        """The rate the decision read (``new_window``: the policy's, at which it was read)."""
        del new_window
        return self.rate


class SessionTracker:
    """See the module docstring. Times are the caller's (seconds, non-decreasing)."""

    def __init__(
        self,
        *,
        gap: float = 1800.0,
        window: tuple[float, float] = (90.0, 210.0),
        tau_step: float = 15.0,
        new_window: float = 3600.0,
        max_users: int = 100_000,
        max_pending: int = 200_000,
    ) -> None:
        check_positive("gap", gap)
        check_whole("max_users", max_users, 1)
        check_whole("max_pending", max_pending, 1)
        check_positive("tau_step", tau_step)
        check_positive("new_window", new_window)
        if not 0 <= window[0] < window[1]:
            raise ConfigError("window", f"must be (start, end) with 0 <= start < end: {window}")
        self.gap = gap
        self.window = (float(window[0]), float(window[1]))
        self.tau_step = tau_step
        self.new_window = new_window
        self.max_users = max_users
        self.max_pending = max_pending
        self._taus = np.arange(0.0, gap + tau_step, tau_step)
        self._num = np.zeros((len(RANK_EDGES), len(self._taus)))
        self._den = np.zeros_like(self._num)
        self._users: OrderedDict[Hashable, _User] = OrderedDict()  # oldest last request first
        #: those of ``_users`` not carried (:func:`_carried`), kept as users come and go so
        #: that :meth:`freeze` reads no name
        self._uncarried: set[_User] = set()
        self._pending: deque[tuple[float, _User, int]] = deque()
        self._starts: deque[float] = deque()
        #: what each :class:`FrozenSessions` held saves (:meth:`freeze` to :meth:`thaw`), and
        #: the freezes before it (the users made before it, ``_User.born``, are the ones it holds)
        self._saving: tuple[tuple[dict[_User, _Fields], int], ...] = ()
        self._freezes = 0
        self.settled = 0
        self.dropped = 0  # requests dropped unsettled at ``max_pending``

    def arrived(self, user: Hashable, now: float) -> None:
        """A request of ``user`` came in at ``now``."""
        u = self._users.get(user)
        if self._saving and u is not None:
            self._save(u)
        if u is None or now - u.last > self.gap:
            self._starts.append(now)
            if u is None:
                if len(self._users) >= self.max_users:
                    _, old = self._users.popitem(last=False)
                    self._uncarried.discard(old)
                    if self._saving:
                        self._save(old)
                    old.gone = True
                u = self._users[user] = _User(user, now, born=self._freezes)
                if not _carried(user):
                    self._uncarried.add(u)
            u.rank = 0
        u.rank += 1
        u.last = now
        u.times.append(now)
        self._users.move_to_end(user)
        if len(self._pending) >= self.max_pending:
            t, old, _ = self._pending.popleft()
            if self._saving:
                self._save(old)
            while old.times and old.times[0] <= t:
                old.times.popleft()
            self.dropped += 1
        self._pending.append((now, u, u.rank))

    def _settle(self, t: float, u: _User, rank: int) -> None:
        later = np.fromiter(u.times, dtype=np.float64, count=len(u.times))
        later = later[later > t]
        taus = self._taus
        quiet = (later[0] - t if len(later) else np.inf) > taus
        lo = np.searchsorted(later, t + taus + self.window[0])
        hi = np.searchsorted(later, t + taus + self.window[1])
        b = rank_bucket(rank)
        self._num[b] += quiet * (hi - lo)
        self._den[b] += quiet
        if self._saving:
            self._save(u)
        while u.times and u.times[0] <= t:
            u.times.popleft()
        self.settled += 1

    def settle(self, now: float) -> None:
        """Count every request whose horizon has passed into the table; forget users and
        session starts too old to matter."""
        horizon = self.gap + self.window[1]
        pending = self._pending
        while pending and pending[0][0] + horizon <= now:
            self._settle(*pending.popleft())
        users = self._users
        while users:
            key, u = next(iter(users.items()))
            if u.last + horizon > now:
                break
            del users[key]
            self._uncarried.discard(u)
        while self._starts and self._starts[0] <= now - self.new_window:
            self._starts.popleft()

    def table(self) -> FloatArray:
        """The continuation table learned so far (see :class:`SessionSnapshot`)."""
        out: FloatArray = self._num / np.maximum(self._den, 1.0)
        return out

    def snapshot(self, now: float) -> SessionSnapshot:
        """Settle what is due, then the open sessions at ``now`` and the table."""
        self.settle(now)
        open_: list[tuple[float, int]] = []
        for u in reversed(self._users.values()):
            if now - u.last > self.gap:
                break
            open_.append((now - u.last, u.rank))
        return SessionSnapshot(
            tuple(open_),
            len(self._starts),
            self.new_window,
            self.window,
            self.tau_step,
            self.table(),
            self.settled,
            tuple(now - t for t in reversed(self._starts)),
        )

    def _save(self, u: _User) -> None:
        """``u``'s fields, before the tracker changes them, for each :class:`FrozenSessions`
        held that holds it (it was made before) and has not saved them yet."""
        for saved, freezes in self._saving:
            if u.born <= freezes and u not in saved:
                saved[u] = (u.last, u.rank, tuple(u.times), u.gone)

    def freeze(self, max_users: int, max_pending: int, max_starts: int) -> FrozenSessions:
        """What :meth:`export` reads, now (on the event loop that changes the tracker, so that
        a worker thread builds the answer from it, :meth:`FrozenSessions.carry`; held until
        :meth:`thaw`): the newest ``max_users`` users carried (named by a string of at most
        :data:`MAX_NAME` characters), the newest ``max_pending`` requests waiting, the newest
        ``max_starts`` starts. All are taken in C, reading no user's name (the users not
        carried are kept apart as they come; those newer than the last carried are each
        skipped by a set lookup), and no user is copied: the tracker saves a user's fields
        before it changes them."""
        newest: Iterator[_User] = reversed(self._users.values())
        if self._uncarried:
            newest = itertools.filterfalse(self._uncarried.__contains__, newest)
        keyed = list(itertools.islice(newest, max_users))
        frozen = FrozenSessions(
            (self.gap, self.window, self.tau_step, self.new_window), self._num.copy(),
            self._den.copy(), self.settled, keyed,
            list(itertools.islice(reversed(self._pending), max_pending)),
            list(itertools.islice(reversed(self._starts), max_starts)),
            (len(self._users) - len(keyed), len(self._pending), len(self._starts)),
        )  # fmt: skip
        self._saving = (*self._saving, (frozen.saved, self._freezes))
        self._freezes += 1
        return frozen

    def thaw(self, frozen: FrozenSessions) -> None:
        """Stop saving users' fields for ``frozen`` (once :meth:`FrozenSessions.carry` has
        read it; on the event loop that changes the tracker)."""
        self._saving = tuple(s for s in self._saving if s[0] is not frozen.saved)

    def export(
        self, max_users: int, max_pending: int, max_starts: int, max_times: int
    ) -> CarriedSessions:
        """The state a standby carries (:meth:`freeze`, then :meth:`FrozenSessions.carry`)."""
        frozen = self.freeze(max_users, max_pending, max_starts)
        try:
            return frozen.carry(max_users, max_times)
        finally:
            self.thaw(frozen)

    def restore(self, carried: CarriedSessions, since: float) -> dict[str, int]:
        """Take ``carried``'s state (a :class:`ValueError` if its settings are not this
        tracker's), less what was made after ``since`` (a take-over: the old leader's clock
        ahead: ``after_takeover_users``, ``_pending``, ``_starts``) and what is over this
        tracker's bounds (``users``, ``pending``); how many were dropped, by reason."""
        mine = (self.gap, self.window, self.tau_step, self.new_window, self._num.shape)
        theirs = (carried.gap, carried.window, carried.tau_step, carried.new_window,
                  carried.num.shape)  # fmt: skip
        if mine != theirs:
            raise ValueError(f"the leader's session tracker has other settings (gap, window, "
                             f"tau_step, new_window, table): {theirs} here {mine}")  # fmt: skip
        made = [None if last > since else
                _User(k, last, rank, deque(t for t in times if t <= since), born=self._freezes)
                for k, last, rank, times in carried.users]  # fmt: skip
        named = [(k, u) for (k, *_), u in zip(carried.users, made, strict=True)
                 if k is not None and u is not None]  # fmt: skip
        self._users = OrderedDict(named[-self.max_users :])
        self._uncarried = {u for u in self._users.values() if not _carried(u.key)}
        for u in made:  # (a forgotten user's requests settle; it is carried on as forgotten)
            if u is not None and self._users.get(u.key) is not u:
                u.gone = True
        on_time = [(t, u, rank) for t, i, rank in carried.pending
                   if t <= since and (u := made[i]) is not None]  # fmt: skip
        # (a user over max_users is forgotten as this tracker forgets one: its requests settle)
        self._pending = deque(on_time[-self.max_pending :])
        self._starts = deque(t for t in carried.starts if t <= since)
        self._num, self._den = carried.num.copy(), carried.den.copy()
        self.settled = carried.settled
        return {"after_takeover_users": sum(1 for u in made if u is None),
                "after_takeover_pending": len(carried.pending) - len(on_time),
                "after_takeover_starts": len(carried.starts) - len(self._starts),
                "users": len(named) - len(self._users),
                "pending": len(on_time) - len(self._pending)}  # fmt: skip
