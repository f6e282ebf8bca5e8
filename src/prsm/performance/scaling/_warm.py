"""A warm standby: the leader's scaling history, carried to the candidates that stand by.

The forecast reads the arrivals per step the leader's tracker counted (``ctx.load``); a
candidate that stands by counts none (reports go to the leader). So each standby fetches the
leader's history on an interval (:mod:`prsm.performance.serve._pod_warm`): ``GET
/admin/scaling/history?since=T`` (admin key) answers :func:`history_body` — the completed
steps from ``T`` on of the series the leader's policy reads, its measured mean service time
and replica start-up time — which the standby checks (:func:`parse_history`) and folds into
what it holds (:func:`merge`), at most :data:`MAX_STEPS` steps.

When the standby takes the Lease its loop is handed the history (:class:`Carried`): from then
on its policy reads :func:`carry` — the carried steps before the take-over, its own tracker's
steps since — so its first forecast is the one the old leader would make from the same
history, not a reactive start from nothing. Steps between the last fetch and the take-over
(at most one fetch interval and the lease's expiry) read as the new leader counted them:
none, unless reports reached it.

With the history the leader serves its users' sessions (:mod:`._session_carry`: its session
tracker's state, in full; an answer without them, an older leader's, carries none), which
the standby keeps from its latest answer and the new leader's tracker takes over.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._replay import MAX_RECORDS, RecordError, StepRecord, merge_records, parse_record, spaced
from ._session_carry import SessionsError, parse_sessions
from ._session_state import CarriedSessions
from ._types import LoadSeries

log = logging.getLogger(__name__)

#: the most steps a standby holds and a fetch may carry: 22 days of minutes, the 21 days a
#: forecast is fitted on (the tracker's ring) and a day more, so that a new leader still has
#: what the old leader's last fit read (its replay refits there, :mod:`._replay`)
MAX_STEPS = 22 * 1440
#: how far (seconds) a leader's clock may be ahead of a standby's: an answer whose steps end
#: later than that, or before the last MAX_STEPS steps, is refused
MAX_SKEW = 600.0


class HistoryError(ValueError):
    """A history answer that is refused (malformed, or of another step)."""


@dataclass(frozen=True, slots=True)
class Carried:
    """What a standby holds of the leader's history: the arrivals per step, the mean service
    time and the replica start-up time the leader had measured (``None``: not yet), and the
    inputs of its last decisions (:mod:`._replay`), oldest first; ``too_close``: how many
    records the answer (:func:`parse_history`) or the merge (:func:`merge`) that made it
    dropped as less than half an interval before the next; ``outside``: how many records the
    answer dropped as made outside the window :func:`parse_history` takes; ``sessions``: the
    leader's users' sessions as its latest answer served them (``None``: it served none)."""

    load: LoadSeries
    service_time: float | None = None
    startup_time: float | None = None
    steps: tuple[StepRecord, ...] = ()
    too_close: int = 0
    outside: int = 0
    sessions: CarriedSessions | None = None


def _index(series: LoadSeries, at: float) -> int:
    """The step of ``series`` that starts at or after ``at`` (may be negative or past the end)."""
    return math.ceil((at - series.start) / series.step - 1e-9)


def history_body(
    load: LoadSeries,
    since: float,
    service_time: float | None,
    startup_time: float | None,
    steps: Sequence[StepRecord] = (),
    *,
    sessions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The leader's answer: the completed steps of ``load`` that start at or after ``since``
    (the last :data:`MAX_STEPS` of them), with its measured times, its decisions' records
    made at or after ``since`` (the last :data:`~._replay.MAX_RECORDS`) and, where given, its
    users' sessions (:func:`~._session_carry.sessions_body`)."""
    first = max(0, _index(load, since), len(load) - MAX_STEPS)
    values = load.values[first:]
    records = [r.as_dict() for r in steps if r.now >= since][-MAX_RECORDS:]
    return {"start": float(load.start + first * load.step), "step": float(load.step),
            "values": values.tolist(), "service_time": service_time,
            "startup_time": startup_time, "steps": records,
            **({"sessions": sessions} if sessions is not None else {})}  # fmt: skip


def _number(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HistoryError(f"{name}: must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise HistoryError(f"{name}: must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def parse_history(
    body: Any,
    step: float,
    *,
    now: float,
    interval: float = 0.0,
    memory: float = math.inf,
) -> Carried:
    """A leader's answer (decoded JSON), every field checked (a :class:`HistoryError`): its
    steps must be ``step`` seconds starting at a multiple of ``step`` (as every tracker's),
    at most :data:`MAX_STEPS` of them, ending within the last :data:`MAX_STEPS` steps before
    ``now`` (this pod's wall clock; :data:`MAX_SKEW` after it at most). Its decisions' records
    (:func:`check_records`) in order; one less than ``interval / 2`` (the policy's interval)
    before the next is dropped (counted in ``too_close``), and so is one made outside the last
    ``memory`` seconds (the replay's span, :data:`MAX_SKEW` more) before ``now`` and the
    :data:`MAX_SKEW` after it (``outside``). Its ``sessions``, where it has them, checked
    (:func:`~._session_carry.parse_sessions`). (A pending scale-up is bounded where it is restored,
    :mod:`._resume`: a genuine one may be older, e.g. replicas that cannot be placed.)"""
    if not isinstance(body, dict):
        raise HistoryError("a history answer is a JSON object")
    start = _number(body.get("start"), "start")
    if _number(body.get("step"), "step", positive=True) != step:
        raise HistoryError(f"step: the leader counts {body.get('step')!r} s steps, here {step:g}")
    if abs(start / step - round(start / step)) > 1e-6:  # steps start at multiples of step
        raise HistoryError(f"start: {start!r} is not a multiple of the step ({step:g} s)")
    values = body.get("values")
    if not isinstance(values, list) or len(values) > MAX_STEPS:
        raise HistoryError(f"values: must be a list of at most {MAX_STEPS} counts")
    counts = np.array([_number(v, "values[]") for v in values], dtype=np.float64)
    end = start + len(counts) * step
    if not now - MAX_STEPS * step <= end <= now + MAX_SKEW:
        raise HistoryError(f"start: the steps end at {end:.0f}, not within the last "
                           f"{MAX_STEPS} steps before this pod's clock ({now:.0f})")  # fmt: skip
    service, startup = body.get("service_time"), body.get("startup_time")
    service = None if service is None else _number(service, "service_time", positive=True)
    startup = None if startup is None else _number(startup, "startup_time")
    records = body.get("steps", [])
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise HistoryError(f"steps: must be a list of at most {MAX_RECORDS} records")
    try:
        steps = tuple(parse_record(r) for r in records)
    except RecordError as exc:
        raise HistoryError(str(exc)) from None
    steps, close, outside = check_records(steps, now=now, interval=interval, memory=memory)
    try:
        sessions = parse_sessions(body["sessions"], now) if "sessions" in body else None
    except SessionsError as exc:
        raise HistoryError(str(exc)) from None
    return Carried(LoadSeries(start, step, counts), service, startup, steps, close, outside,
                   sessions)  # fmt: skip


def check_records(
    steps: Sequence[StepRecord],
    *,
    now: float,
    interval: float,
    memory: float,
) -> tuple[tuple[StepRecord, ...], int, int]:
    """See :func:`parse_history` (a :class:`HistoryError` naming the field): the records kept,
    how many were dropped (logged) as less than ``interval / 2`` before the next, and how
    many as made outside the window (a stale or a skewed record drops alone, not the answer)
    (:func:`~._replay.spaced`: a leader's pop of the last leader's record, or an older
    leader's list, must not make every standby refuse the whole answer)."""
    if any(b.now < a.now for a, b in itertools.pairwise(steps)):
        raise HistoryError("steps: records must be in the order they were made")
    oldest = now - memory - MAX_SKEW
    within = [r for r in steps if oldest <= r.now <= now + MAX_SKEW]
    if len(within) < len(steps):
        log.warning("%d of the leader's decision record(s) are not within the last %g s before "
                    "this pod's clock (%.0f), %g s skew: dropped", len(steps) - len(within),
                    memory, now, MAX_SKEW)  # fmt: skip
    kept, dropped = spaced(within, interval)
    if dropped:
        log.warning("%d of the leader's decision record(s) are less than %g s (half an "
                    "interval) before the next: dropped", dropped, interval / 2)  # fmt: skip
    return kept, dropped, len(steps) - len(within)


def _window(parts: list[LoadSeries], step: float) -> tuple[float, int]:
    """The start and length of the last :data:`MAX_STEPS` steps the parts span."""
    end = max(p.end for p in parts)
    start = max(min(p.start for p in parts), end - MAX_STEPS * step)
    return start, round((end - start) / step)


def _write(values: np.ndarray, start: float, step: float, part: LoadSeries) -> None:
    """``part``'s steps written into ``values`` (which starts at ``start``), what lies outside
    it left out."""
    i = round((part.start - start) / step)
    lo, hi = max(0, -i), min(len(part), len(values) - i)
    if hi > lo:
        values[i + lo : i + hi] = part.values[lo:hi]


def merge(
    held: Carried | None, new: Carried, keep: float = math.inf, interval: float = 0.0
) -> Carried:
    """``held`` with ``new``'s steps written over it (steps neither has read 0), the last
    :data:`MAX_STEPS` kept; ``new``'s times where it has them; the decisions' records joined
    (:func:`~._replay.merge_records`, those of the last ``keep`` seconds, none less than
    ``interval / 2`` before the next: ``too_close`` counts ``new``'s and the merge's drops,
    ``outside`` ``new``'s); the sessions of ``new``, the latest answer."""
    if held is None or len(held.load) == 0:
        load = new.load
    elif len(new.load) == 0:
        load = held.load
    else:
        step = new.load.step
        start, n = _window([held.load, new.load], step)
        values = np.zeros(n)
        for part in (held.load, new.load):  # the newer last: it wins where both have a step
            _write(values, start, step, part)
        load = LoadSeries(start, step, values)
    if len(load) > MAX_STEPS:
        load = LoadSeries(load.end - MAX_STEPS * load.step, load.step, load.values[-MAX_STEPS:])
    old = held if held is not None else new
    steps, dropped = merge_records(held.steps if held is not None else (), new.steps, keep,
                                   interval)  # fmt: skip
    return Carried(
        load,
        new.service_time if new.service_time is not None else old.service_time,
        new.startup_time if new.startup_time is not None else old.startup_time,
        steps,
        new.too_close + dropped,
        new.outside,
        new.sessions,
    )


def carry(carried: LoadSeries, own: LoadSeries, since: float) -> LoadSeries:
    """The series a new leader's policy reads, from ``carried``'s start to ``own``'s (its
    tracker's) end: ``carried``'s steps before ``since`` (its take-over), ``own``'s for the
    others; at most :data:`MAX_STEPS` steps. (Before the carried start the standby counted
    nothing: those steps are left out, not read as idle.)"""
    step = own.step
    if len(carried) == 0 or carried.step != step or own.end <= carried.start:
        return own
    start = max(carried.start, own.end - MAX_STEPS * step)
    n = round((own.end - start) / step)
    values = np.zeros(n)
    _write(values, start, step, own)
    before = carried.values[: max(0, _index(carried, since))]  # the carried steps before since
    if len(before):
        _write(values, start, step, LoadSeries(carried.start, step, before))
    return LoadSeries(start, step, values)
