"""Carrying a policy's state to a new leader by replaying the old leader's decisions.

A policy is a pure function of a snapshot and its previous state (:mod:`._types`). So a new
leader need not be sent the old one's state: it is sent the *inputs* of the old leader's last
decisions (:class:`StepRecord`: each :class:`~._types.ScalingContext` without its arrival
history, which the warm standby already carries as :class:`~._warm.Carried` load, only where
that history ended) and feeds them through the same policy (:func:`replay`), which rebuilds
the state the old leader held — its stabilisation windows, the fitted forecast and its
models' states, the burst table and the arrival counts it keeps.

Which decisions must be replayed: a :class:`~._predictive.PredictivePolicy`'s windows forget
what is older than ``scale_down_window`` (and the other windows), but its fit is redone only
every ``predictor.refit_interval``, counted from the last fit. A replay that starts from a
fresh state at a decision where the old leader refitted fits on the same history there, and
each later refit of the old leader (of the forecast or of the burst table, whose schedules may
differ) is redone at the decision it was made (the policy's ``refit``), so from then on every
fit, every update of the models' states and every window is the old leader's
(:func:`replay_start`: the first such decision in the last ``span`` seconds of records; the
policy's :attr:`~._predictive.PredictivePolicy.memory` is long enough for one
refit and a full window after it). Decisions tell where they refitted through their
``fitted_at`` and ``burst_fitted_at`` details.

The users' sessions: a record keeps what its decision read of them (a
:class:`~._sessions.SessionReading`: the expected rate, the requests settled, the window),
which its replayed decision reads; the tracker's state itself is carried apart
(:mod:`._session_carry`). The session floor's error headroom (:mod:`._headroom`) reads the
errors of the last ``session_error_span`` seconds, longer than a refit ago: each is the
arrivals the records counted less the rate a record read, so the records before the replay's
start rebuild them (:func:`prime`, the policy's ``prime``), exactly from the decision
:func:`errors_exact_from` names on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._sessions import SessionReading
from ._types import LoadSeries, ScalingContext, ScalingDecision, ScalingPolicy, ScalingSignals

#: the most records a leader serves and a standby holds
MAX_RECORDS = 8192
#: the most requests one replica serves at once that a record may claim (a loop refuses a
#: record of another concurrency than its own: :mod:`._resume`)
MAX_CONCURRENCY = 4096
#: the highest expected request rate of the sessions a record may claim (requests/s)
MAX_SESSION_RATE = 1e9
#: the order of :class:`ScalingSignals`' fields in a record
SIGNALS = ("cpu", "memory", "latency", "queue_depth", "error_rate")


class RecordError(ValueError):
    """A step record that is refused; names its field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"steps[].{field}: {problem}")


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One decision's inputs (a :class:`ScalingContext` less its ``load``, which was the
    history's steps in ``[load_start, load_end)``, its ``sessions`` as what the decision read
    of them, ``(expected rate, settled, window start, window end)``, ``None`` where it read
    none), where its forecast and burst table were fitted (``None``: not fitted) and the
    loop's pending scale-up after it (``(asked at, target)``, for the start-up
    measurement)."""

    now: float
    ready: int
    starting: int
    target: int
    in_flight: int
    queued: int
    mean_ongoing: float
    mean_busy: float
    interval: float
    arrivals: int
    concurrency: int
    service_time: float | None
    startup_time: float
    load_start: float | None
    load_end: float | None
    signals: tuple[float | None, ...] | None = None
    fitted_at: float | None = None
    burst_fitted_at: float | None = None
    pending_up: tuple[float, int] | None = None
    #: the replicas the decision asked for (``None``: not known, an older leader's record);
    #: a replay's decision is compared with it (:func:`replay`)
    decided: int | None = None
    sessions: tuple[float, int, float, float] | None = None

    @staticmethod
    def of(
        ctx: ScalingContext, decision: ScalingDecision, pending_up: tuple[float, int] | None
    ) -> StepRecord:
        load = ctx.load
        sig = ctx.signals
        details = decision.details
        return StepRecord(  # plain numbers (a numpy one would not go through JSON)
            float(ctx.now), int(ctx.ready_replicas), int(ctx.starting_replicas),
            int(ctx.target_replicas), int(ctx.in_flight), int(ctx.queued),
            float(ctx.mean_ongoing), float(ctx.mean_busy), float(ctx.interval),
            int(ctx.arrivals), int(ctx.concurrency), _plain(ctx.service_time),
            float(ctx.startup_time), _plain(load.start if load is not None else None),
            _plain(load.end if load is not None else None),
            tuple(_plain(getattr(sig, f)) for f in SIGNALS) if sig is not None else None,
            _detail(details, "fitted_at"), _detail(details, "burst_fitted_at"),
            (float(pending_up[0]), int(pending_up[1])) if pending_up is not None else None,
            int(decision.target), _reading(ctx, details),
        )  # fmt: skip

    def context(self, load: LoadSeries | None) -> ScalingContext:
        """The decision's snapshot again, its arrival history cut from ``load``."""
        history = None
        if load is not None and self.load_start is not None and self.load_end is not None:
            history = load.window(self.load_start, self.load_end)
        sig = self.signals
        return ScalingContext(
            now=self.now, ready_replicas=self.ready, starting_replicas=self.starting,
            target_replicas=self.target, in_flight=self.in_flight, queued=self.queued,
            mean_ongoing=self.mean_ongoing, mean_busy=self.mean_busy, interval=self.interval,
            arrivals=self.arrivals, concurrency=self.concurrency, service_time=self.service_time,
            startup_time=self.startup_time, load=history,
            signals=ScalingSignals(*sig) if sig is not None else None,
            sessions=(SessionReading(read[0], read[1], (read[2], read[3]))
                      if (read := self.sessions) is not None else None),
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (floats exact through orjson)."""
        return {name: getattr(self, name) for name in StepRecord.__slots__}


def _plain(value: float | None) -> float | None:
    return None if value is None else float(value)


def _reading(
    ctx: ScalingContext, details: Mapping[str, Any]
) -> tuple[float, int, float, float] | None:
    """What the decision read of the sessions: the rate the policy reports it read
    (``session_expected``) with the snapshot's settled requests and window."""
    rate, sessions = _detail(details, "session_expected"), ctx.sessions
    if rate is None or sessions is None:
        return None
    start, end = sessions.window
    return rate, int(sessions.settled), float(start), float(end)


def _detail(details: Mapping[str, Any], name: str) -> float | None:
    value = details.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _num(body: Mapping[str, Any], name: str, *, optional: bool = False) -> float | None:
    value = body.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(name, f"must be a finite number, got {value!r}")
    if value < 0 and name not in ("load_start", "load_end"):
        raise RecordError(name, f"must be >= 0, got {value!r}")
    return float(value)


def _int(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(name, f"must be a whole number >= 0, got {value!r}")
    return value


def parse_record(body: Any) -> StepRecord:
    """A record from a leader's answer, every field checked (a :class:`RecordError`)."""
    if not isinstance(body, dict):
        raise RecordError("", "a step record is a JSON object")
    signals = body.get("signals")
    if signals is not None:
        if not isinstance(signals, list) or len(signals) != len(SIGNALS):
            raise RecordError("signals", f"must be null or {len(SIGNALS)} readings")
        signals = tuple(_num(dict(zip(SIGNALS, signals, strict=True)), f, optional=True)
                        for f in SIGNALS)  # fmt: skip
    pending = body.get("pending_up")
    if pending is not None:
        if not isinstance(pending, list) or len(pending) != 2:
            raise RecordError("pending_up", "must be null or [asked at, target]")
        pending = (_num({"pending_up": pending[0]}, "pending_up") or 0.0,
                   _int({"pending_up": pending[1]}, "pending_up"))  # fmt: skip
    sessions = body.get("sessions")
    if sessions is not None:
        if not isinstance(sessions, list) or len(sessions) != 4:
            raise RecordError("sessions", "must be null or [rate, settled, start, end]")
        fields = ("sessions", "sessions.settled", "sessions.start", "sessions.end")
        named = dict(zip(fields, sessions, strict=True))
        rate, settled = _num(named, "sessions") or 0.0, _int(named, "sessions.settled")
        start, end = _num(named, "sessions.start") or 0.0, _num(named, "sessions.end") or 0.0
        if rate > MAX_SESSION_RATE:
            raise RecordError("sessions", f"a rate over {MAX_SESSION_RATE:g} req/s: {rate!r}")
        if not start < end:
            raise RecordError("sessions", f"its window must be (start, end), start < end: "
                              f"{[start, end]}")  # fmt: skip
        sessions = (rate, settled, start, end)
    concurrency = _int(body, "concurrency")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise RecordError("concurrency", f"must be 1 to {MAX_CONCURRENCY}, got {concurrency}")
    record = StepRecord(
        _num(body, "now") or 0.0, _int(body, "ready"), _int(body, "starting"),
        _int(body, "target"), _int(body, "in_flight"), _int(body, "queued"),
        _num(body, "mean_ongoing") or 0.0, _num(body, "mean_busy") or 0.0,
        _num(body, "interval") or 0.0, _int(body, "arrivals"), concurrency,
        _num(body, "service_time", optional=True), _num(body, "startup_time") or 0.0,
        _num(body, "load_start", optional=True), _num(body, "load_end", optional=True),
        signals, _num(body, "fitted_at", optional=True),
        _num(body, "burst_fitted_at", optional=True), pending,
        _int(body, "decided") if body.get("decided") is not None else None, sessions,
    )  # fmt: skip
    _check_times(record)
    return record


def _check_times(r: StepRecord) -> None:
    """A record's times in the order a decision makes them: its history's steps end at or
    before it was made, its fits at or before that end, its pending scale-up asked at or
    before it was made."""
    end = r.load_end if r.load_end is not None else r.now
    if r.load_end is not None and r.load_end > r.now:
        raise RecordError("load_end", f"{r.load_end!r} is after the decision ({r.now!r})")
    if r.load_start is not None and r.load_start > end:
        raise RecordError("load_start", f"{r.load_start!r} is after load_end ({end!r})")
    for name, at in (("fitted_at", r.fitted_at), ("burst_fitted_at", r.burst_fitted_at)):
        if at is not None and at > end:
            raise RecordError(name, f"{at!r} is after the history it was fitted on ({end!r})")
    if r.pending_up is not None and r.pending_up[0] > r.now:
        raise RecordError("pending_up", f"asked at {r.pending_up[0]!r}, after the decision "
                          f"({r.now!r})")  # fmt: skip


def spaced(records: Sequence[StepRecord], interval: float) -> tuple[tuple[StepRecord, ...], int]:
    """``records`` (oldest first) less each made less than ``interval / 2`` before the next one
    kept — the older of a too-close pair goes, as a leader pops the last leader's record when
    it decides just after it (a take-over, a step asked for out of turn) — and how many went.
    A list a leader serves and one a standby holds so pass :func:`~._warm.check_records`."""
    gap = max(interval / 2, 1e-9)
    kept: list[StepRecord] = []
    for r in reversed(records):
        if not kept or kept[-1].now - r.now >= gap:
            kept.append(r)
    kept.reverse()
    return tuple(kept), len(records) - len(kept)


def merge_records(
    held: Sequence[StepRecord], new: Sequence[StepRecord], keep: float, interval: float = 0.0
) -> tuple[tuple[StepRecord, ...], int]:
    """``held`` up to ``new``'s first decision, then ``new`` (a record may come twice: the
    answers overlap), those of the last ``keep`` seconds before the newest, at most
    :data:`MAX_RECORDS`, less those :func:`spaced` drops (a held record just before ``new``'s
    first, which the leader popped); and how many it dropped."""
    if new:
        first = new[0].now
        joined = [*(r for r in held if r.now < first), *new]
    else:
        joined = list(held)
    if not joined:
        return (), 0
    oldest = joined[-1].now - keep
    return spaced([r for r in joined[-MAX_RECORDS:] if r.now >= oldest], interval)


def _refitted(records: Sequence[StepRecord], i: int) -> tuple[bool, bool]:
    """Whether the old leader refitted its forecast, its burst table, at ``records[i]``."""
    before, r = records[i - 1], records[i]
    forecast = r.fitted_at is not None and r.fitted_at != before.fitted_at
    burst = r.burst_fitted_at is not None and r.burst_fitted_at != before.burst_fitted_at
    return forecast, burst


def replay_start(records: Sequence[StepRecord]) -> int:
    """Where to start replaying ``records`` from a fresh state: the first decision at which
    the old leader refitted its forecast or its burst table, whichever came first (the fresh
    state fits both there; the other is refitted where the old leader refitted it,
    :func:`replay`); 0 where it refitted neither (no fit yet: the fresh state fits, or fails
    to, as the old one did)."""
    for i in range(1, len(records)):
        if any(_refitted(records, i)):
            return i
    return 0


def refits(
    records: Sequence[StepRecord], start: int, gap: float
) -> tuple[list[tuple[bool, bool]], int]:
    """For each of ``records[start:]``: whether to refit the forecast, the burst table before
    deciding it — where the old leader refitted, but at least ``gap`` seconds after the last
    refit of the same kind honoured (a genuine leader refits each at most every
    ``refit_interval``; a history claiming more would make a replay fit at every record) —
    and how many claimed refits were refused."""
    out: list[tuple[bool, bool]] = []
    last: list[float | None] = [None, None]  # the last refit honoured, of each kind
    refused = 0
    for i in range(1, len(records)):
        honoured = [False, False]
        for k, wanted in enumerate(_refitted(records, i)):
            at = last[k]
            if wanted and (at is None or records[i].now - at >= gap):
                honoured[k], last[k] = True, records[i].now
            elif wanted and i >= start:
                refused += 1
        if i > start:  # at ``start`` a fresh state fits both
            out.append((honoured[0], honoured[1]))
    if start < len(records):
        out.insert(0, (False, False))
    return out, refused


def errors_exact_from(
    records: Sequence[StepRecord], span: float, interval: float
) -> tuple[float, bool]:
    """From when the session forecast's errors that :func:`prime` rebuilds from ``records``
    (from none at the first) equal the old leader's, kept ``span`` seconds, and whether they
    do after the last record. A forecast made before the first record ends before the first
    record's time plus the window's end, and is settled by the first decision after that which
    observes (one that read the sessions with a request settled), to be forgotten ``span``
    seconds later: ``(inf, False)`` where no record observes after that. Records missing (a
    gap of more than 1.5 ``interval``: a standby that missed answers, a leader down a while;
    or a record whose arrivals were counted from more than half an interval after the one
    before it: a decision between, not kept, made less than half an interval before it) hold
    forecasts and arrivals that are not rebuilt: the record after the last gap counts as the
    first."""
    gaps = [i for i in range(1, len(records))
            if (b := records[i]).now - (a := records[i - 1]).now > 1.5 * interval
            or (b.interval > 0 and b.now - b.interval > a.now + interval / 2)]  # fmt: skip
    records = records[gaps[-1] :] if gaps else records
    observing = [r for r in records if r.sessions is not None and r.sessions[1] > 0]
    if not observing:
        return math.inf, False
    reach = records[0].now + max(r.sessions[3] for r in observing if r.sessions is not None)
    settled = next((r.now for r in observing if r.now >= reach), math.inf)
    return settled + span, settled + span <= observing[-1].now


def prime(
    policy: ScalingPolicy[Any],
    records: Sequence[StepRecord],
    state: Any,
    *,
    deadline: float = math.inf,
) -> Any:
    """``state`` after the policy's ``prime(state, context)`` (where it has one) read each of
    ``records`` in turn: the parts of its state that outlive the decisions replayed (a worker
    thread's work; :class:`ReplayAbandoned` past ``deadline``, as :func:`replay`)."""
    primer = getattr(policy, "prime", None)
    if primer is None:
        return state
    for record in records:
        if time.perf_counter() > deadline:
            raise ReplayAbandoned(f"over its budget at the record made at {record.now:.3f}")
        state = primer(state, record.context(None))
    return state


class ReplayAbandoned(RuntimeError):
    """A replay that ran past its time budget."""


def replay(
    policy: ScalingPolicy[Any],
    records: Sequence[StepRecord],
    load: LoadSeries | None,
    state: Any,
    refit: Sequence[tuple[bool, bool]],
    *,
    compare_from: float = -math.inf,
    deadline: float = math.inf,
) -> tuple[Any, list[tuple[float, int, int]]]:
    """``state`` after ``policy`` decided each of ``records`` in turn, the forecast, the burst
    table refitted before a record where ``refit`` says (:func:`refits`; a policy's
    ``refit(state, forecast=, burst=)``, where it has one), and the decisions made at or
    after ``compare_from`` that differ from the record's (``(now, the record's, the
    replay's)``); a worker thread's work. :class:`ReplayAbandoned` where a decision is due
    after ``deadline`` (:func:`time.perf_counter`: a replay's budget, checked at each)."""
    refit_state = getattr(policy, "refit", None)
    diverged: list[tuple[float, int, int]] = []
    for record, (forecast, burst) in zip(records, refit, strict=True):
        if time.perf_counter() > deadline:
            raise ReplayAbandoned(f"over its budget at the decision made at {record.now:.3f}")
        if refit_state is not None and (forecast or burst):
            state = refit_state(state, forecast=forecast, burst=burst)
        decision, state = policy.decide(record.context(load), state)
        wanted = record.decided
        if wanted is not None and record.now >= compare_from and decision.target != wanted:
            diverged.append((record.now, wanted, decision.target))
    return state, diverged
