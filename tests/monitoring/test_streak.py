"""A series' streak (what a threshold alert asks) is the same from SQL and from its points;
the SQLite store's id memo follows compactions and other writers."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from prsm.performance.monitoring import (
    HistoryTier,
    MemoryMetricsStore,
    Sample,
    SQLiteMetricsStore,
)
from prsm.performance.monitoring._store import labels_key
from prsm.performance.monitoring._streak import CONDITIONS, Streak, series_streak

T0 = 1_700_000_000.0
TIERS = (HistoryTier(1.0, 120.0), HistoryTier(10.0, 600.0), HistoryTier(60.0, 3600.0))
AGGS = ("avg", "min", "max", "last", "sum", "count")

points = st.lists(
    st.tuples(st.integers(0, 90), st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0])),
    min_size=0,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(
    a=points,
    b=points,
    condition=st.sampled_from(sorted(CONDITIONS)),
    agg=st.sampled_from(AGGS),
    threshold=st.sampled_from([0.0, 1.0, 2.0, 2.5]),
    span=st.integers(1, 100),
)
def test_sql_streak_matches_the_points(
    *,
    a: list[tuple[int, float]],
    b: list[tuple[int, float]],
    condition: str,
    agg: str,
    threshold: float,
    span: int,
) -> None:
    samples = [Sample("m", labels_key({"s": "a"}), T0 + t + 0.25, v) for t, v in a]
    samples += [Sample("m", labels_key({"s": "b"}), T0 + t + 0.5, v) for t, v in b]
    now = T0 + 100.0
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteMetricsStore(Path(tmp) / "h.sqlite3", TIERS)
        memory = MemoryMetricsStore(TIERS)
        try:
            for store in (sqlite, memory):
                store.write(samples[: len(samples) // 2])
                store.write(samples[len(samples) // 2 :])  # some buckets written twice
            found = sqlite.query("m", since=now - span, until=now, agg=agg, now=now)
            from_points = [series_streak(s, condition, threshold) for s in found]
            for store in (sqlite, memory):
                since = now - span
                streaks = store.streak(
                    "m",
                    since=since,
                    until=now,
                    agg=agg,
                    condition=condition,
                    threshold=threshold,
                    now=now,
                )
                assert streaks == from_points
        finally:
            sqlite.close()


def test_a_streak_breaks_on_a_failing_point_not_on_a_gap() -> None:
    store = MemoryMetricsStore(TIERS)
    values = {0: 5.0, 1: 1.0, 2: 5.0, 5: 6.0, 6: 7.0}  # 3 and 4 missing
    store.write([Sample("cpu", (), T0 + t, v) for t, v in values.items()])
    (streak,) = store.streak("cpu", since=T0, until=T0 + 6, agg="min", condition=">",
                             threshold=4.0, now=T0 + 6)  # fmt: skip
    assert streak == Streak({}, 1.0, T0 + 6, 7.0, T0 + 2)
    (failing,) = store.streak("cpu", since=T0, until=T0 + 6, agg="min", condition="<",
                              threshold=4.0, now=T0 + 6)  # fmt: skip
    assert failing.since is None and failing.last == 7.0


def test_an_unknown_condition_is_refused() -> None:
    store = MemoryMetricsStore(TIERS)
    store.write([Sample("cpu", (), T0, 1.0)])
    with pytest.raises(ValueError, match="condition"):
        store.streak("cpu", since=T0, until=T0, agg="min", condition="~", threshold=0.0)


def test_series_ids_stay_right_across_compactions_and_other_writers(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    one, two = SQLiteMetricsStore(path, TIERS), SQLiteMetricsStore(path, TIERS)
    try:
        old, kept = labels_key({"n": "old"}), labels_key({"n": "kept"})
        one.write([Sample("x", kept, T0, 2.0), Sample("x", old, T0, 1.0)])  # old: the last id
        one.write([Sample("x", kept, T0 + 4000, 3.0)])
        two.compact(T0 + 4000)  # "old" has no bucket left: its series and id go
        assert one.query("x", {"n": "old"}, since=T0, until=T0 + 10, now=T0 + 4000) == []
        two.write([Sample("x", labels_key({"n": "new"}), T0 + 4001, 4.0)])  # takes old's id
        one.write([Sample("x", old, T0 + 4002, 5.0), Sample("x", kept, T0 + 4002, 6.0)])
        for store in (one, two):
            found = {s.labels["n"]: [v for _, v in s.points] for s in
                     store.query("x", since=T0 + 3990, until=T0 + 4010, now=T0 + 4010)}  # fmt: skip
            assert found == {"kept": [3.0, 6.0], "new": [4.0], "old": [5.0]}
    finally:
        one.close()
        two.close()
