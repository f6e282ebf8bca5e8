"""Vector indexes: exact flat, usearch HNSW, auto switching; add/remove/search/save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prsm.performance.caching.semantic import AutoIndex, FlatIndex, HNSWIndex, VectorIndex
from prsm.performance.caching.semantic.index import make_index
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
        make_index("ivf", 8)
    with pytest.raises(ValueError, match="shape"):
        FlatIndex(8).add([1, 2], unit(3, dim=8))
