"""Vector indexes: exact flat, usearch HNSW, auto switching, faiss IVF with its training;
add/remove/search/save/load."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from prsm.performance.caching.semantic import (
    AutoIndex,
    FlatIndex,
    HNSWIndex,
    IVFIndex,
    SemanticSettings,
    VectorIndex,
    _index_ivf as index_ivf,
)
from prsm.performance.caching.semantic._index import make_index
from prsm.performance.errors import ConfigError


def unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


@pytest.mark.parametrize("kind", ["flat", "hnsw", "auto"])
def test_add_search_remove(kind: str) -> None:
    pytest.importorskip("usearch")
    idx = make_index(kind, 16, switch_at=50)
    assert isinstance(idx, VectorIndex)
    data = unit(200)
    idx.add(list(range(100, 300)), data)
    assert len(idx) == 200
    scores, keys = idx.search(data[7], 3)
    assert keys[0] == 107 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(scores) == sorted(scores, reverse=True)
    idx.remove([107, 999])
    assert len(idx) == 199
    assert 107 not in idx.search(data[7], 5)[1].tolist()
    idx.add([107], data[8:9])  # re-adding a key replaces its vector
    assert idx.search(data[8], 2)[1].tolist()[:2] in ([107, 108], [108, 107])


def test_flat_removal_keeps_rows_consistent() -> None:
    idx = FlatIndex(16, capacity=2)
    data = unit(10)
    idx.add(list(range(10)), data)
    idx.remove([0, 5, 9])
    for k in (1, 2, 3, 4, 6, 7, 8):
        assert idx.search(data[k], 1)[1][0] == k
    assert FlatIndex(4).search(np.ones(4), 3)[1].size == 0


def test_auto_switches_to_hnsw_at_the_threshold() -> None:
    pytest.importorskip("usearch")
    idx = AutoIndex(16, switch_at=20)
    idx.add(list(range(19)), unit(19))
    assert idx.kind == "flat"
    idx.add([19], unit(1, seed=3))
    assert idx.kind == "hnsw" and len(idx) == 20


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_save_and_load_round_trip(kind: str, tmp_path: Path) -> None:
    pytest.importorskip("usearch")
    data = unit(100)
    idx = FlatIndex(16) if kind == "flat" else HNSWIndex(16)
    idx.add(list(range(100)), data)
    path = tmp_path / ("i.npz" if kind == "flat" else "i.usearch")
    idx.save(path)
    back = FlatIndex(16) if kind == "flat" else HNSWIndex(16)
    back.load(path)
    assert len(back) == 100
    assert back.search(data[42], 1)[1][0] == 42


def test_bad_input_is_named() -> None:
    with pytest.raises(ConfigError, match="index"):
        make_index("annoy", 8)
    with pytest.raises(ValueError, match="shape"):
        FlatIndex(8).add([1, 2], unit(3, dim=8))


def clustered(n: int, dim: int = 16, centres: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32) * 3
    v = c[rng.integers(0, centres, n)] + rng.standard_normal((n, dim)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def test_ivf_is_exact_until_trained_then_finds_what_brute_force_finds() -> None:
    pytest.importorskip("faiss")
    idx = IVFIndex(16, lists=8, probe=8, train_at=100, background=False)
    assert isinstance(idx, VectorIndex)
    data = clustered(300)
    idx.add(list(range(99)), data[:99])
    assert idx.kind == "flat" and idx.search(data[5], 1)[1][0] == 5
    idx.add(list(range(99, 300)), data[99:])
    assert idx.kind == "ivf" and len(idx) == 300
    for i in (0, 57, 150, 299):  # probe == lists: every cell scanned, so exact
        scores, keys = idx.search(data[i], 3)
        assert keys[0] == i and scores[0] == pytest.approx(1.0, abs=1e-5)
        assert list(scores) == sorted(scores, reverse=True)
    idx.remove([57, 12345])
    assert len(idx) == 299 and 57 not in idx.search(data[57], 5)[1].tolist()
    idx.add([150], data[151:152])  # re-adding a key replaces its vector
    assert len(idx) == 299 and sorted(idx.search(data[151], 2)[1].tolist()) == [150, 151]
    assert idx.search(data[0], 0)[1].size == 0


def test_ivf_trains_in_the_background_and_replays_what_changed_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("faiss")
    gate = threading.Event()
    run = index_ivf._Training.run

    def gated(self: index_ivf._Training) -> None:
        assert gate.wait(30)
        run(self)

    monkeypatch.setattr(index_ivf._Training, "run", gated)
    idx = IVFIndex(16, lists=8, probe=8, train_at=100)
    data = clustered(200)
    idx.add(list(range(100)), data[:100])
    assert idx.kind == "training"
    idx.add(list(range(100, 200)), data[100:])  # logged, served exactly meanwhile
    idx.remove([3, 150])
    assert idx.search(data[120], 1)[1][0] == 120 and len(idx) == 198
    gate.set()
    assert idx.wait_trained(30)
    assert idx.kind == "ivf" and len(idx) == 198
    assert idx.search(data[120], 1)[1][0] == 120
    found = {int(idx.search(data[i], 1)[1][0]) for i in (3, 150)}
    assert not found & {3, 150}


def test_ivf_training_failure_is_logged_and_retried_at_double(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    faiss = pytest.importorskip("faiss")

    def broken(*args: object) -> None:
        raise MemoryError("no room for the lists")

    monkeypatch.setattr(faiss, "IndexIVFFlat", broken)
    idx = IVFIndex(16, lists=8, probe=8, train_at=50, background=False)
    data = clustered(120)
    with caplog.at_level(logging.ERROR):
        idx.add(list(range(50)), data[:50])
    assert idx.kind == "flat" and "retrying at 100 entries" in caplog.text
    assert idx.search(data[7], 1)[1][0] == 7  # still answering, exactly
    monkeypatch.undo()
    idx.add(list(range(50, 99)), data[50:99])
    assert idx.kind == "flat"
    idx.add([99], data[99:100])
    assert idx.kind == "ivf" and len(idx) == 100


@pytest.mark.parametrize("trained", [False, True])
def test_ivf_save_and_load(trained: bool, tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    data = clustered(120)
    idx = IVFIndex(16, lists=8, probe=8, train_at=100 if trained else 1000, background=False)
    idx.add(list(range(120)), data)
    idx.save(tmp_path / "i.npz")
    back = IVFIndex(16, lists=8, probe=8, train_at=1000)
    back.load(tmp_path / "i.npz")
    assert back.kind == ("ivf" if trained else "flat") and len(back) == 120
    assert back.search(data[42], 1)[1][0] == 42


def test_ivf_settings_are_checked_by_name() -> None:
    with pytest.raises(ConfigError, match="ivf_probe"):
        SemanticSettings(index="ivf", ivf_lists=16, ivf_probe=32)
    with pytest.raises(ConfigError, match="ivf_train_at"):
        SemanticSettings(index="ivf", ivf_lists=16, ivf_probe=8, ivf_train_at=8)
    with pytest.raises(ConfigError, match="ivf_lists"):
        SemanticSettings(ivf_lists=0)
    pytest.importorskip("faiss")
    with pytest.raises(ConfigError, match="ivf_probe"):
        IVFIndex(8, lists=4, probe=5)
    idx = make_index("ivf", 8, ivf_lists=4, ivf_probe=2, ivf_train_at=10)
    assert isinstance(idx, IVFIndex) and (idx.lists, idx.probe, idx.train_at) == (4, 2, 10)
