"""The embedded metrics history: SQLite in WAL mode, in the data directory.

One table of series (metric, labels as canonical JSON) and one table of buckets per tier
(``WITHOUT ROWID``, keyed by series and bucket start: a chart's range query is one index
range scan). A write is one transaction: the samples are folded into each tier's buckets in
Python (:func:`rollup`), then one ``INSERT … ON CONFLICT DO UPDATE`` per bucket adds them to
what the tier holds (measured faster than an ``INSERT … SELECT … GROUP BY`` over a temporary
table, whose window function sorts the batch once per tier). WAL with ``synchronous=NORMAL``
makes each committed write survive the process being killed (a power cut may lose the last
commits); readers never block the writer. ``auto_vacuum=INCREMENTAL`` hands the space of
forgotten buckets back.

Why SQLite and not DuckDB: ``benchmarks/monitoring.py`` measures both on the same schema
and queries (a week of 1 s samples for 50 series); see the README's Monitoring section.
SQLite also ships with Python (no dependency) and allows several gateway processes to share
one file.

Several processes (``serve --workers N``) each keep the series table in memory; before each
read or write a store asks SQLite whether another connection committed since
(``PRAGMA data_version``, a few microseconds) and, if so, loads the series added since. A
compaction, the only thing that deletes series (and so the only way an id could be reused),
bumps the file's ``user_version``; a store that sees a new one reloads the table whole.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._paths import data_dir
from ._settings import DEFAULT_TIERS, HistoryTier, check_tiers
from ._sqlite_sql import _AGG_SQL, _COLUMN, _table, rollup, upserts
from ._store import AGGREGATES, Labels, QueryPlan, Sample, Series, bucket, labels_key, matches
from ._streak import Streak, streak_sql

log = logging.getLogger("prsm.performance.monitoring")

#: The history file's name in the data directory.
FILE_NAME = "metrics-history.sqlite3"


def default_path() -> Path:
    """``<data dir>/metrics-history.sqlite3``."""
    return data_dir() / FILE_NAME


class SQLiteMetricsStore:
    """A :class:`~._store.MetricsStore` in one SQLite file (default: in the data directory).

    Thread-safe (one connection behind a lock): the monitor writes from a worker thread while
    admin requests query from another.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        tiers: tuple[HistoryTier, ...] = DEFAULT_TIERS,
        *,
        max_series: int = 5000,
        busy_timeout: float = 5.0,
    ) -> None:
        check_tiers(tiers)
        self.tiers = tiers
        self.max_series = max_series
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout, check_same_thread=False, isolation_level=None
        )
        self._setup()
        self._ids: dict[tuple[str, str], int] = {}
        self._labels: dict[int, tuple[str, dict[str, str]]] = {}
        #: the ids of the (metric, labels) pairs written so far, keyed as samples carry them:
        #: a write looks each sample up here before making its canonical JSON key
        self._written: dict[tuple[str, Labels], int] = {}
        self._version = self._pragma("data_version")
        self._load_series()

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect on a new file
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OSError(f"{self.path}: SQLite could not use WAL mode (got {mode!r})")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA journal_size_limit = 8388608")  # the WAL shrinks back to 8 MiB
        db.execute("PRAGMA temp_store = MEMORY")
        db.execute(
            "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, metric TEXT NOT NULL, "
            "labels TEXT NOT NULL, UNIQUE (metric, labels))"
        )
        for tier in self.tiers:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {_table(tier)} (series INTEGER NOT NULL, "
                "ts REAL NOT NULL, n INTEGER NOT NULL, total REAL NOT NULL, lo REAL NOT NULL, "
                "hi REAL NOT NULL, last_ts REAL NOT NULL, last REAL NOT NULL, "
                "PRIMARY KEY (series, ts)) WITHOUT ROWID"
            )
        db.execute("CREATE TEMP TABLE IF NOT EXISTS batch (series INTEGER, ts REAL, value REAL)")

    def _pragma(self, name: str) -> int:
        return int(self._db.execute(f"PRAGMA {name}").fetchone()[0])

    def _load_series(self, after: int = 0) -> None:
        """Load the series with ids above ``after`` (all of them by default, after clearing
        what is held)."""
        if after == 0:
            self._ids.clear()
            self._labels.clear()
            self._written.clear()
            self._generation = self._pragma("user_version")
        rows = self._db.execute(
            "SELECT id, metric, labels FROM series WHERE id > ? ORDER BY id", (after,)
        )
        for sid, metric, labels in rows:
            self._ids[metric, labels] = sid
            self._labels[sid] = (metric, json.loads(labels))

    def _refresh(self) -> None:
        """Take in the series other processes added (or, after a compaction anywhere, reload
        them all). Called with the lock held."""
        version = self._pragma("data_version")
        if version == self._version:
            return
        self._version = version
        if self._pragma("user_version") != self._generation:
            self._load_series()
        else:
            self._load_series(after=max(self._labels, default=0))

    def _series_id(self, metric: str, labels: Labels) -> int | None:
        sid = self._written.get((metric, labels))
        if sid is not None:
            return sid
        text = json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))
        sid = self._ids.get((metric, text))
        if sid is not None:
            self._written[metric, labels] = sid
            return sid
        if len(self._ids) >= self.max_series:
            if self.dropped == 0:
                log.warning(
                    "history %s: %d series already; new series are dropped (history."
                    "max_series)", self.path, self.max_series,
                )  # fmt: skip
            return None
        cur = self._db.execute("INSERT INTO series (metric, labels) VALUES (?, ?)", (metric, text))
        sid = int(cur.lastrowid or 0)
        self._ids[metric, text] = sid
        self._written[metric, labels] = sid
        self._labels[sid] = (metric, dict(labels))
        return sid

    # -- MetricsStore ----------------------------------------------------------------------

    def write(self, samples: Iterable[Sample]) -> int:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._refresh()  # the write lock is held: no other process adds series now
                rows = []
                for s in samples:
                    sid = self._series_id(s.metric, s.labels)
                    if sid is None or not math.isfinite(s.value):
                        self.dropped += 1
                        continue
                    rows.append((sid, s.ts, s.value))
                for tier in self.tiers:
                    for sql, params in upserts(_table(tier), rollup(rows, tier.step)):
                        db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._load_series()  # series inserted in the rolled-back transaction are gone
                raise
            return len(rows)

    def query(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        step: float | None = None,
        agg: str = "avg",
        exact: bool = False,
        now: float | None = None,
    ) -> list[Series]:
        plan = QueryPlan(self.tiers, since, until, step=step, agg=agg, now=now)
        want = labels_key(labels)
        with self._lock:
            self._refresh()
            chosen = [
                (sid, lab)
                for sid, (name, lab) in self._labels.items()
                if name == metric and matches(labels_key(lab), want, exact)
            ]
            if not chosen:
                return []
            table = _table(plan.tier)
            start = bucket(since, plan.tier.step)
            out = []
            for sid, lab in sorted(chosen, key=lambda c: sorted(c[1].items())):
                points = self._points(table, sid, start=start, until=until, plan=plan, agg=agg)
                if points:
                    out.append(Series(metric, dict(lab), plan.step, points))
            return out

    def _points(
        self, table: str, sid: int, *, start: float, until: float, plan: QueryPlan, agg: str
    ) -> list[tuple[float, float]]:
        db = self._db
        args = {"sid": sid, "start": start, "until": until, "step": plan.step}
        where = "series = :sid AND ts >= :start AND ts <= :until"
        if plan.step == plan.tier.step:
            column = _COLUMN[agg]
            sql = f"SELECT ts, {column} FROM {table} WHERE {where} ORDER BY ts"
            return [(float(t), float(v)) for t, v in db.execute(sql, args)]
        b = "CAST(ts / :step AS INTEGER) * :step"
        if agg == "last":
            # the last value of each wider bucket: its latest bucket's last
            sql = (
                f"SELECT {b} AS b, last FROM (SELECT ts, last, row_number() OVER "
                f"(PARTITION BY {b} ORDER BY last_ts DESC) AS rn FROM {table} WHERE {where}) "
                "WHERE rn = 1 ORDER BY b"
            )
        else:
            sql = (
                f"SELECT {b} AS b, {_AGG_SQL[agg]} FROM {table} WHERE {where} GROUP BY b ORDER BY b"
            )
        return [(float(t), float(v)) for t, v in db.execute(sql, args)]

    def streak(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        agg: str,
        condition: str,
        threshold: float,
        now: float | None = None,
    ) -> list[Streak]:
        plan = QueryPlan(self.tiers, since, until, step=None, agg=agg, now=now)
        sql = streak_sql(_table(plan.tier), _COLUMN[agg], condition)
        args: dict[str, Any] = {"start": bucket(since, plan.tier.step), "until": until,
                                "threshold": float(threshold)}  # fmt: skip
        want = labels_key(labels)
        out = []
        with self._lock:
            self._refresh()
            chosen = [(sid, lab) for sid, (name, lab) in self._labels.items()
                      if name == metric and matches(labels_key(lab), want, False)]  # fmt: skip
            for sid, lab in sorted(chosen, key=lambda c: sorted(c[1].items())):
                args["sid"] = sid
                row = self._db.execute(sql, args).fetchone()
                if row is not None:
                    ts, value, run = row
                    run = None if run is None else float(run)
                    out.append(Streak(dict(lab), plan.step, float(ts), float(value), run))
        return out

    def aggregate(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        agg: str = "sum",
        now: float | None = None,
    ) -> float | None:
        if agg not in AGGREGATES:
            raise ValueError(f"agg: must be one of {', '.join(AGGREGATES)}, got {agg!r}")
        plan = QueryPlan(self.tiers, since, until, step=None, agg="sum", now=now)
        want = labels_key(labels)
        column = {"sum": "sum(total)", "count": "sum(n)", "min": "min(lo)", "max": "max(hi)",
                  "avg": "sum(total) / sum(n)"}[agg]  # fmt: skip
        sql = (
            f"SELECT {column}, sum(n) FROM {_table(plan.tier)} "
            "WHERE series = ? AND ts >= ? AND ts <= ?"
        )
        with self._lock:
            self._refresh()
            ids = [
                sid
                for sid, (name, lab) in self._labels.items()
                if name == metric and matches(labels_key(lab), want, False)
            ]
            parts = [self._db.execute(sql, (sid, since, until)).fetchone() for sid in ids]
        found = [(v, n) for v, n in parts if n]
        if not found:
            return None
        values = [float(v) for v, _ in found]
        if agg in ("sum", "count"):
            return sum(values)
        if agg == "min":
            return min(values)
        if agg == "max":
            return max(values)
        count = sum(n for _, n in found)
        return float(sum(v * n for v, n in found) / count)  # avg: weighted by samples

    def metrics(self) -> list[str]:
        with self._lock:
            self._refresh()
            return sorted({name for name, _ in self._labels.values()})

    def label_sets(self, metric: str) -> list[dict[str, str]]:
        with self._lock:
            self._refresh()
            found = [dict(lab) for name, lab in self._labels.values() if name == metric]
        return sorted(found, key=lambda d: sorted(d.items()))

    def compact(self, now: float) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._refresh()  # every process's series, not only those this one has seen
                ids = list(self._labels)
                for tier in self.tiers:
                    horizon = now - tier.retention - tier.step  # buckets ending by then go
                    db.executemany(
                        f"DELETE FROM {_table(tier)} WHERE series = ? AND ts <= ?",
                        [(sid, horizon) for sid in ids],
                    )
                # every sample is also in the coarsest tier, which is kept the longest
                coarsest = _table(self.tiers[-1])
                gone = db.execute(
                    f"DELETE FROM series WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {coarsest} WHERE {coarsest}.series = series.id)"
                ).rowcount
                if gone:  # ids may now be reused: every process must reload the series
                    db.execute(f"PRAGMA user_version = {self._pragma('user_version') + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("PRAGMA incremental_vacuum")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._load_series()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._refresh()
            db = self._db
            buckets = {
                f"{tier.step:g}s": db.execute(f"SELECT count(*) FROM {_table(tier)}").fetchone()[0]
                for tier in self.tiers
            }
            size = sum(
                p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
            )
            return {
                "backend": "sqlite",
                "path": str(self.path),
                "series": len(self._ids),
                "buckets": buckets,
                "dropped": self.dropped,
                "bytes": size,
            }

    def close(self) -> None:
        with self._lock:
            self._db.close()
