"""Several processes share one SQLite history file (``serve --workers N``): what any of them
writes, every one of them reads, whichever process answers the admin request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prsm.performance.monitoring import HistoryTier, Sample, SQLiteMetricsStore
from prsm.performance.monitoring._store import labels_key

T0 = 1_700_000_000.0
TIERS = (HistoryTier(1.0, 120.0), HistoryTier(60.0, 3600.0))


def sample(metric: str, ts: float, value: float, **labels: str) -> Sample:
    return Sample(metric, labels_key(labels), ts, value)


def test_each_store_reads_the_series_the_other_added(tmp_path: Path) -> None:
    a = SQLiteMetricsStore(tmp_path / "h.sqlite3", TIERS)
    b = SQLiteMetricsStore(tmp_path / "h.sqlite3", TIERS)
    a.write([sample("req", T0 + i, 2.0, instance="g0") for i in range(10)])
    b.write([sample("req", T0 + i, 3.0, instance="g1") for i in range(10)])
    b.write([sample("queue", T0, 1.0, instance="g1")])
    for store in (a, b):
        assert store.metrics() == ["queue", "req"]
        assert store.label_sets("req") == [{"instance": "g0"}, {"instance": "g1"}]
        assert store.aggregate("req", since=T0, until=T0 + 9) == 50.0
        found = store.query("req", since=T0, until=T0 + 9, now=T0 + 10)
        assert [(s.labels["instance"], s.points[0][1]) for s in found] == [("g0", 2.0), ("g1", 3.0)]
        assert store.stats()["series"] == 3
    a.close()
    b.close()


def test_the_same_series_from_two_stores_is_one_series(tmp_path: Path) -> None:
    a = SQLiteMetricsStore(tmp_path / "h.sqlite3", TIERS)
    b = SQLiteMetricsStore(tmp_path / "h.sqlite3", TIERS)
    a.write([sample("req", T0, 2.0, node="n1")])
    assert b.write([sample("req", T0, 3.0, node="n1")]) == 1  # no duplicate insert refused
    (series,) = a.query("req", since=T0, until=T0, agg="sum", now=T0 + 1)
    assert series.points == [(T0, 5.0)]
    assert a.stats()["series"] == b.stats()["series"] == 1
    a.close()
    b.close()


def test_after_a_compaction_elsewhere_a_reused_id_is_not_misread(tmp_path: Path) -> None:
    a = SQLiteMetricsStore(tmp_path / "h.sqlite3", TIERS)
    b = SQLiteMetricsStore(tmp_path / "h.sqlite3", TIERS)
    a.write([sample("kept", T0 + 9_000, 1.0), sample("old", T0, 1.0)])
    assert b.metrics() == ["kept", "old"]
    a.compact(T0 + 9_000)  # "old" has no bucket left: its series (the highest id) goes
    a.write([sample("new", T0 + 9_000, 7.0)])  # and SQLite hands its id to "new"
    assert b.metrics() == ["kept", "new"]
    (series,) = b.query("new", since=T0 + 8_990, until=T0 + 9_000, now=T0 + 9_000)
    assert series.points == [(T0 + 9_000, 7.0)]
    assert b.query("old", since=T0, until=T0 + 9_000, now=T0 + 9_000) == []
    b.write([sample("new", T0 + 9_001, 1.0)])  # b writes to the right series, not a stale id
    assert a.aggregate("new", since=T0 + 8_990, until=T0 + 9_001, agg="count") == 2.0
    a.close()
    b.close()


def test_a_series_written_by_another_process_is_read_here(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    here = SQLiteMetricsStore(path, TIERS)
    here.write([sample("req", T0, 1.0, instance="gateway-0")])
    assert here.metrics() == ["req"]
    script = (
        "import sys\n"
        "from prsm.performance.monitoring import HistoryTier, Sample, SQLiteMetricsStore\n"
        "tiers = (HistoryTier(1.0, 120.0), HistoryTier(60.0, 3600.0))\n"
        "store = SQLiteMetricsStore(sys.argv[1], tiers)\n"
        f"store.write([Sample('req', (('instance', 'gateway-1'),), {T0}, 4.0),\n"
        f"             Sample('tokens', (('instance', 'gateway-1'),), {T0}, 9.0)])\n"
        "store.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    assert here.metrics() == ["req", "tokens"]
    assert here.aggregate("req", since=T0, until=T0) == 5.0
    assert here.label_sets("tokens") == [{"instance": "gateway-1"}]
    here.close()
