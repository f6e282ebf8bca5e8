"""The history stores (SQLite and in-memory) behave the same: tiers, retention, queries."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from prsm.performance.monitoring import (
    HistoryTier,
    MemoryMetricsStore,
    MetricsStore,
    Sample,
    SQLiteMetricsStore,
)
from prsm.performance.monitoring._store import labels_key

T0 = 1_700_000_000.0
TIERS = (HistoryTier(1.0, 120.0), HistoryTier(10.0, 600.0), HistoryTier(60.0, 3600.0))


def sample(metric: str, ts: float, value: float, **labels: str) -> Sample:
    return Sample(metric, labels_key(labels), ts, value)


Factory = Callable[..., MetricsStore]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[MetricsStore] = []

    def factory(tiers: tuple[HistoryTier, ...] = TIERS, **kw: int) -> MetricsStore:
        if request.param == "memory":
            store: MetricsStore = MemoryMetricsStore(tiers, **kw)
        else:
            store = SQLiteMetricsStore(tmp_path / f"h{len(made)}.sqlite3", tiers, **kw)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


def test_it_is_a_metrics_store(make: Factory) -> None:
    assert isinstance(make(), MetricsStore)


def test_query_by_metric_labels_and_range(make: Factory) -> None:
    store = make()
    store.write(
        [sample("node.rate", T0 + i, float(i), node=n, model="m") for i in range(30) for n in "ab"]
        + [sample("other", T0, 1.0)]
    )
    found = store.query("node.rate", {"node": "a"}, since=T0 + 5, until=T0 + 9)
    assert [s.labels for s in found] == [{"model": "m", "node": "a"}]
    assert found[0].step == 1.0
    assert found[0].points == [(T0 + i, float(i)) for i in range(5, 10)]
    assert len(store.query("node.rate", since=T0, until=T0 + 29)) == 2  # no filter: both
    assert store.query("node.rate", {"model": "m"}, since=T0, until=T0, exact=True) == []
    exact = store.query("other", {}, since=T0, until=T0, exact=True)
    assert [s.points for s in exact] == [[(T0, 1.0)]]
    assert store.query("nothing", since=T0, until=T0 + 10) == []
    assert store.metrics() == ["node.rate", "other"]
    assert store.label_sets("node.rate") == [
        {"model": "m", "node": "a"},
        {"model": "m", "node": "b"},
    ]


def test_aggregations_over_a_coarser_step(make: Factory) -> None:
    store = make()
    store.write([sample("x", T0 + i, float(i)) for i in range(40)])  # T0 is a multiple of 20
    want = {
        "avg": [9.5, 29.5], "sum": [190.0, 590.0], "min": [0.0, 20.0], "max": [19.0, 39.0],
        "last": [19.0, 39.0], "count": [20.0, 20.0],
    }  # fmt: skip
    for agg, values in want.items():
        (s,) = store.query("x", since=T0, until=T0 + 39, step=20, agg=agg)
        assert s.step == 20.0
        assert [v for _, v in s.points] == pytest.approx(values), agg


def test_a_range_older_than_a_tier_is_answered_by_a_coarser_one(make: Factory) -> None:
    store = make()
    store.write([sample("x", T0 + i, 1.0) for i in range(0, 900, 5)])
    now = T0 + 900
    (s,) = store.query("x", since=now - 300, until=now, now=now)  # past the 1 s tier's 120 s
    assert s.step == 10.0
    (s,) = store.query("x", since=now - 900, until=now, now=now)
    assert s.step == 60.0
    (s,) = store.query("x", since=now - 60, until=now, step=30, now=now)
    assert s.step == 30.0  # three 10 s buckets per point


def test_retention_forgets_old_buckets_and_empty_series(make: Factory) -> None:
    store = make()
    store.write([sample("x", T0 + i, 1.0) for i in range(200)] + [sample("gone", T0, 1.0)])
    store.compact(T0 + 200)
    buckets = store.stats()["buckets"]
    assert buckets["1s"] == 120  # the buckets ending after now - retention
    assert buckets["10s"] == 20 + 1
    store.compact(T0 + 10_000)
    assert store.stats()["series"] == 0
    assert store.metrics() == []


def test_series_past_the_limit_are_dropped_and_counted(make: Factory) -> None:
    store = make(max_series=2)
    kept = store.write([sample("x", T0, 1.0, n=str(i)) for i in range(5)])
    assert kept == 2
    assert store.stats()["dropped"] == 3
    assert store.write([sample("x", T0 + 1, 2.0, n="0")]) == 1  # a known one still goes in


def test_nan_is_not_stored(make: Factory) -> None:
    store = make()
    assert store.write([sample("x", T0, math.nan), sample("x", T0 + 1, 1.0)]) == 1


def test_bad_queries_are_refused(make: Factory) -> None:
    store = make()
    with pytest.raises(ValueError, match="agg"):
        store.query("x", since=T0, until=T0 + 1, agg="median")
    with pytest.raises(ValueError, match="since <= until"):
        store.query("x", since=T0 + 1, until=T0)
    with pytest.raises(ValueError, match="step"):
        store.query("x", since=T0, until=T0 + 1, step=0)


def test_the_sqlite_store_keeps_what_was_written_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteMetricsStore(path, TIERS)
    store.write([sample("x", T0 + i, float(i), node="a") for i in range(10)])
    store.close()
    again = SQLiteMetricsStore(path, TIERS)
    (s,) = again.query("x", {"node": "a"}, since=T0, until=T0 + 9)
    assert len(s.points) == 10
    assert again.write([sample("x", T0 + 10, 10.0, node="a")]) == 1  # same series id
    assert again.stats()["series"] == 1
    again.close()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 299), st.floats(-1e3, 1e3, allow_nan=False)),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from(["avg", "sum", "min", "max", "count", "last"]),
    st.sampled_from([1.0, 10.0, 30.0, 60.0]),
)
def test_both_stores_agree_with_a_brute_force_rollup(
    rows: list[tuple[int, float]], agg: str, step: float
) -> None:
    tiers = (HistoryTier(1.0, 1e6), HistoryTier(10.0, 1e6), HistoryTier(60.0, 1e6))
    samples = [sample("x", T0 + t + 0.25, v) for t, v in rows]
    groups: dict[float, list[tuple[float, float]]] = {}
    for s in samples:
        groups.setdefault(math.floor(s.ts / step) * step, []).append((s.ts, s.value))
    want = []
    for start, vals in sorted(groups.items()):
        values = [v for _, v in vals]
        last = max(enumerate(vals), key=lambda iv: (iv[1][0], iv[0]))[1][1]  # ties: later
        want.append(
            (start, {"avg": sum(values) / len(values), "sum": sum(values), "min": min(values),
                     "max": max(values), "count": float(len(values)), "last": last}[agg])
        )  # fmt: skip
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for store in (
            MemoryMetricsStore(tiers),
            SQLiteMetricsStore(Path(tmp) / "h.sqlite3", tiers),
        ):
            store.write(samples)
            (got,) = store.query("x", since=T0, until=T0 + 300, step=step, agg=agg)
            assert [t for t, _ in got.points] == [t for t, _ in want]
            assert [v for _, v in got.points] == pytest.approx([v for _, v in want], abs=1e-6)
            store.close()


def test_aggregate_over_a_range_and_every_matching_series(make: Factory) -> None:
    store = make()
    store.write([sample("req", T0 + i, 2.0, instance=g) for i in range(30) for g in ("g0", "g1")])
    assert store.aggregate("req", since=T0 + 10, until=T0 + 19) == 40.0  # both instances
    assert store.aggregate("req", {"instance": "g0"}, since=T0, until=T0 + 29) == 60.0
    assert store.aggregate("req", since=T0, until=T0 + 29, agg="count") == 60.0
    assert store.aggregate("req", since=T0, until=T0 + 29, agg="avg") == 2.0
    assert store.aggregate("req", since=T0 + 100, until=T0 + 200) is None
    assert store.aggregate("other", since=T0, until=T0 + 1) is None
    with pytest.raises(ValueError, match="agg"):
        store.aggregate("req", since=T0, until=T0 + 1, agg="last")


def test_a_write_of_more_buckets_than_one_statement_carries(make: Factory) -> None:
    from prsm.performance.monitoring._sqlite_sql import UPSERT_SIZES

    store = make()
    n = 2 * UPSERT_SIZES[0] + 39  # statements of 64, 64, 32, 4, 2 and 1 buckets a tier
    for value in (1.0, 3.0):  # the second write lands on the buckets of the first
        store.write([sample("wide", T0 + 0.5, value + i, i=str(i)) for i in range(n)])
    for agg, want in (("avg", 2.0), ("min", 1.0), ("max", 3.0), ("count", 2.0), ("last", 3.0)):
        found = store.query("wide", since=T0, until=T0 + 1, agg=agg)
        got = {s.labels["i"]: s.points for s in found}
        assert len(got) == n
        offset = 0.0 if agg == "count" else 1.0
        assert all(got[str(i)] == [(T0, want + i * offset)] for i in range(n)), agg


def test_a_batch_is_cut_into_a_few_statement_sizes() -> None:
    from prsm.performance.monitoring._sqlite_sql import UPSERT_SIZES, upserts

    for n in (0, 1, 45, 64, 200, 1000):
        rows = [(i, 0.0, 1, 1.0, 1.0, 1.0, 0.0, 1.0) for i in range(n)]
        parts = list(upserts("points_1", rows))
        sizes = [len(params) // 8 for _, params in parts]
        assert sum(sizes) == n and all(s in UPSERT_SIZES for s in sizes)
        assert [p for _, ps in parts for p in ps] == [v for r in rows for v in r]
        assert all(sql.count("(?, ?") == size for (sql, _), size in zip(parts, sizes, strict=True))
