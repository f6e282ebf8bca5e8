"""The history stores' part of ``benchmarks/monitoring.py``: ours (SQLite) and the peer
(DuckDB, the same schema, roll-up and queries), each written as the monitor writes, filled with
days of 1 s samples and queried as a chart queries."""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from prsm.performance.monitoring import HistoryTier, Sample
from prsm.performance.monitoring._store import Series, labels_key

T0 = 1_700_000_000.0


# -- store --------------------------------------------------------------------------------


class DuckDBStore:
    """The peer: the same schema, roll-up and queries in DuckDB (a column store)."""

    def __init__(self, path: Path, tiers: tuple[HistoryTier, ...]) -> None:
        import duckdb

        self.tiers = tiers
        self.db = duckdb.connect(str(path))
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, metric VARCHAR, "
            "labels VARCHAR)"
        )
        for tier in tiers:
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS {self._t(tier)} (series INTEGER, ts DOUBLE, "
                "n BIGINT, total DOUBLE, lo DOUBLE, hi DOUBLE, last_ts DOUBLE, last DOUBLE, "
                "PRIMARY KEY (series, ts))"
            )
        self.ids: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    @staticmethod
    def _t(tier: HistoryTier) -> str:
        return f"p{int(tier.step)}"

    def write(self, samples: list[Sample]) -> int:
        import pandas as pd

        from prsm.performance.monitoring._sqlite_sql import rollup

        rows = []
        for s in samples:
            sid = self.ids.get((s.metric, s.labels))
            if sid is None:
                sid = self.ids[s.metric, s.labels] = len(self.ids) + 1
                self.db.execute("INSERT INTO series VALUES (?, ?, ?)",
                                [sid, s.metric, json.dumps(dict(s.labels))])  # fmt: skip
            rows.append((sid, s.ts, s.value))
        self.db.execute("BEGIN")
        for tier in self.tiers:
            frame = pd.DataFrame(
                rollup(rows, tier.step),
                columns=["series", "ts", "n", "total", "lo", "hi", "last_ts", "last"],
            )
            self.db.register("batch", frame)
            self.db.execute(
                f"INSERT INTO {self._t(tier)} SELECT * FROM batch ON CONFLICT (series, ts) "
                "DO UPDATE SET n = n + excluded.n, total = total + excluded.total, "
                "lo = least(lo, excluded.lo), hi = greatest(hi, excluded.hi), "
                "last = CASE WHEN excluded.last_ts >= last_ts THEN excluded.last ELSE last END, "
                "last_ts = greatest(last_ts, excluded.last_ts)"
            )
            self.db.unregister("batch")
        self.db.execute("COMMIT")
        return len(rows)

    def compact(self, now: float) -> None:
        for tier in self.tiers:
            self.db.execute(f"DELETE FROM {self._t(tier)} WHERE ts <= ?",
                            [now - tier.retention - tier.step])  # fmt: skip

    def query(self, metric: str, labels: dict[str, str], *, since: float, until: float,
              now: float) -> list[Series]:  # fmt: skip
        tier = next((t for t in self.tiers if since >= now - t.retention), self.tiers[-1])
        sid = self.ids[metric, labels_key(labels)]
        rows = self.db.execute(
            f"SELECT ts, total / n FROM {self._t(tier)} WHERE series = ? AND ts >= ? AND "
            "ts <= ? ORDER BY ts",
            [sid, math.floor(since / tier.step) * tier.step, until],
        ).fetchall()
        return [Series(metric, labels, tier.step, [(float(t), float(v)) for t, v in rows])]

    def close(self) -> None:
        self.db.close()


def samples(second: int, n_series: int, labels: list[Any]) -> list[Sample]:
    return [
        Sample("bench.value", labels[i], T0 + second, float((second * 7 + i) % 97))
        for i in range(n_series)
    ]


def bench_store(store: Any, path: Path, *, days: float, n_series: int, rounds: int,
                fast_fill: bool) -> dict[str, float]:  # fmt: skip
    labels = [labels_key({"series": str(i)}) for i in range(n_series)]
    # one flush of one interval, as the monitor writes it
    flush = []
    for k in range(20):
        batch = samples(k, n_series, labels)
        t0 = time.perf_counter()
        store.write(batch)
        flush.append(time.perf_counter() - t0)
    # fill: `days` of 1 s samples, an hour per write, retention applied each hour; with
    # fast_fill, one sample a minute until the last hour (the 1 min and 1 h tiers then hold
    # the same buckets, one sample in each instead of sixty), then the last hour at 1 s
    seconds = int(days * 86400)
    written = 0
    t_fill = time.perf_counter()
    for hour_start in range(20, seconds, 3600):
        every = 60 if fast_fill and hour_start < seconds - 3600 else 1
        batch = []
        for sec in range(hour_start, min(seconds, hour_start + 3600), every):
            batch.extend(samples(sec, n_series, labels))
        store.write(batch)
        written += len(batch)
        store.compact(T0 + hour_start + 3600)
    fill = time.perf_counter() - t_fill
    now = T0 + seconds
    week = []
    hour = []
    points = 0
    for i in range(max(20, rounds * 5)):
        want = {"series": str(i % n_series)}
        t0 = time.perf_counter()
        (s,) = store.query("bench.value", want, since=now - days * 86400, until=now, now=now)
        week.append(time.perf_counter() - t0)
        points = len(s.points)
        t0 = time.perf_counter()
        store.query("bench.value", want, since=now - 3600, until=now, now=now)
        hour.append(time.perf_counter() - t0)
    size = sum(p.stat().st_size for p in path.parent.glob("*") if p.is_file())
    out = {
        "flush_ms": statistics.median(flush) * 1e3,
        "fill_samples_per_s": written / fill if fill else float("nan"),
        "fill_s": fill,
        "week_query_ms": statistics.median(week) * 1e3,
        "week_points": points,
        "hour_query_ms": statistics.median(hour) * 1e3,
        "bytes": size,
    }
    return out
