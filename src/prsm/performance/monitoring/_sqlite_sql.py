"""The SQL of the SQLite history store (:mod:`._sqlite`): table names, the bucket upsert,
the roll-up of samples into buckets, and each aggregation's column expression."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

from ._settings import HistoryTier


def _table(tier: HistoryTier) -> str:
    return "points_" + format(tier.step, "g").replace(".", "_").replace("-", "_")


#: how many buckets an upsert statement carries: a batch is cut into these sizes, largest
#: first, so a handful of statements serve every batch size (the connection's statement cache
#: then always holds them: compiling a 45-bucket one took ~300k instructions). 8 parameters
#: a bucket: within the 999 that SQLite builds before 3.32 allow.
UPSERT_SIZES = (64, 32, 16, 8, 4, 2, 1)

_UPSERT = """
INSERT INTO {table} (series, ts, n, total, lo, hi, last_ts, last)
VALUES {values}
ON CONFLICT (series, ts) DO UPDATE SET
    n = n + excluded.n,
    total = total + excluded.total,
    lo = min(lo, excluded.lo),
    hi = max(hi, excluded.hi),
    last = CASE WHEN excluded.last_ts >= last_ts THEN excluded.last ELSE last END,
    last_ts = max(last_ts, excluded.last_ts)
"""


@functools.lru_cache(maxsize=64)
def upsert_sql(table: str, rows: int) -> str:
    """The upsert of ``rows`` buckets into ``table``: one statement, so one step of SQLite's
    (a step lets go of the GIL and takes it back: from a worker thread, taking it back waits
    for the event loop's thread to let go, up to the 5 ms switch interval when it is busy)."""
    return _UPSERT.format(table=table, values=", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows))


def upserts(table: str, buckets: list[tuple[Any, ...]]) -> Iterator[tuple[str, list[Any]]]:
    """``(sql, parameters)`` of the statements adding ``buckets`` (:func:`rollup`'s rows) to
    what ``table`` holds: as many of the largest of :data:`UPSERT_SIZES` as fit, then the
    next size down for the rest."""
    i = 0
    for size in UPSERT_SIZES:
        while len(buckets) - i >= size:
            chunk = buckets[i : i + size]
            i += size
            yield upsert_sql(table, size), [v for row in chunk for v in row]


def rollup(rows: list[tuple[int, float, float]], step: float) -> list[tuple[Any, ...]]:
    """``(series, ts, value)`` rows folded into ``step``-wide buckets: ``(series, bucket
    start, count, sum, min, max, last time, last value)``; on equal times the later row is
    the last."""
    buckets: dict[tuple[int, float], list[Any]] = {}
    floor = math.floor
    for sid, ts, value in rows:
        key = (sid, floor(ts / step) * step)
        b = buckets.get(key)
        if b is None:
            buckets[key] = [1, value, value, value, ts, value]
            continue
        b[0] += 1
        b[1] += value
        b[2] = min(b[2], value)
        b[3] = max(b[3], value)
        if ts >= b[4]:
            b[4] = ts
            b[5] = value
    return [(sid, start, *b) for (sid, start), b in buckets.items()]


#: a bucket's value under each aggregation (a query at the tier's own step)
_COLUMN = {"avg": "total / n", "sum": "total", "min": "lo", "max": "hi",
           "count": "CAST(n AS REAL)", "last": "last"}  # fmt: skip

_AGG_SQL = {
    "avg": "sum(total) / sum(n)",
    "sum": "sum(total)",
    "min": "min(lo)",
    "max": "max(hi)",
    "count": "sum(n)",
}
