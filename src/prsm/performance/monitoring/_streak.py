"""How long a series has met a threshold condition: what a threshold alert rule asks.

A :class:`Streak` is a series' latest bucket and, when that bucket meets the condition, the
start of the unbroken run of buckets meeting it that ends there (a missing bucket does not
break a run; one that fails the condition does). :func:`series_streak` computes it from a
series' points (the memory store); the SQLite store answers the same in SQL, reading two
figures a series instead of every point of the rule's window (its worker thread then holds
the GIL, and takes it back from the event loop, once a series rather than once a point).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from ._store import Series

#: the conditions a threshold rule may use, as Python operators (SQLite spells them the same)
CONDITIONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Streak:
    """One series' latest point (``last_ts``, ``last``) and ``since``: the first point of the
    run meeting the condition that ends at the latest one (``None`` when the latest fails)."""

    labels: dict[str, str]
    step: float
    last_ts: float
    last: float
    since: float | None


def check_condition(condition: str) -> Callable[[float, float], bool]:
    """The operator of ``condition`` (one of :data:`CONDITIONS`)."""
    try:
        return CONDITIONS[condition]
    except KeyError:
        raise ValueError(
            f"condition: must be one of {', '.join(CONDITIONS)}, got {condition!r}"
        ) from None


def series_streak(series: Series, condition: str, threshold: float) -> Streak | None:
    """The :class:`Streak` of ``series`` (``None`` without points)."""
    check = check_condition(condition)
    points = series.points
    if not points:
        return None
    last_ts, last = points[-1]
    since = None
    if check(last, threshold):
        since = last_ts
        for ts, value in reversed(points):
            if not check(value, threshold):
                break
            since = ts
    return Streak(dict(series.labels), series.step, last_ts, last, since)


def streak_sql(table: str, column: str, condition: str) -> str:
    """One series' streak in ``table``: its latest bucket's start and ``column`` value, and
    the start of the run meeting ``column <condition> :threshold`` that ends there (NULL when
    the latest does not), for buckets of series ``:sid`` starting in ``[:start, :until]``."""
    check_condition(condition)  # only the operators above reach the SQL text
    where = "series = :sid AND ts >= :start AND ts <= :until"
    holds = f"({column}) {condition} :threshold"
    return (
        f"SELECT ts, {column}, CASE WHEN {holds} THEN (SELECT min(ts) FROM {table} WHERE "
        f"{where} AND ts > coalesce((SELECT max(ts) FROM {table} WHERE {where} AND NOT "
        f"({holds})), :start - 1.0)) END FROM {table} WHERE {where} ORDER BY ts DESC LIMIT 1"
    )
