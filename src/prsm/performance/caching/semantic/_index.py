"""Vector indexes over unit vectors (inner product = cosine), behind :class:`VectorIndex`.

* :class:`FlatIndex`: exact search, a contiguous numpy matrix; O(n) per query but with no
  build cost and perfect recall — the right choice below a few tens of thousands of entries.
* :class:`HNSWIndex`: approximate search with usearch's HNSW graph (removal supported,
  save/load to a file). Measured against faiss' ``IndexHNSWFlat`` in ``benchmarks/semantic.py``.
* :class:`AutoIndex`: flat until ``switch_at`` entries, then the same entries in an HNSW.
* :class:`~.index_ivf.IVFIndex` (``index_ivf.py``): faiss inverted lists, for namespaces of
  hundreds of thousands of entries and more.

Keys are non-negative integers chosen by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...errors import ConfigError, DependencyMissingError


@runtime_checkable
class VectorIndex(Protocol):
    """Keys → unit vectors; top-k by inner product."""

    dim: int

    def __len__(self) -> int: ...

    def add(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        """Insert (or replace) ``keys`` with the rows of ``vectors``."""
        ...

    def remove(self, keys: Sequence[int]) -> None:
        """Forget ``keys`` (unknown keys are ignored)."""
        ...

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, keys)`` of the ``k`` best rows for one query, best first."""
        ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


def _as_matrix(vectors: np.ndarray, dim: int, n: int) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    if v.shape != (n, dim):
        raise ValueError(f"vectors: expected shape ({n}, {dim}), got {v.shape}")
    return v


class FlatIndex:
    """Exact inner-product search over a growing numpy matrix."""

    def __init__(self, dim: int, *, capacity: int = 8) -> None:
        if dim < 1:
            raise ConfigError("dim", f"must be >= 1, got {dim}")
        self.dim = dim
        self._vecs = np.zeros((max(1, capacity), dim), dtype=np.float32)
        self._keys = np.zeros(max(1, capacity), dtype=np.int64)
        self._row: dict[int, int] = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, vectors)`` of every entry (views; copy before changing the index)."""
        return self._keys[: self._n], self._vecs[: self._n]

    def add(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        v = _as_matrix(vectors, self.dim, len(keys))
        if len(keys) > 64 and not any(int(k) in self._row for k in keys):
            self._add_new(keys, v)
            return
        for key, row in zip(keys, v, strict=True):
            k = int(key)
            at = self._row.get(k)
            if at is None:
                if self._n == len(self._keys):
                    grow = len(self._keys) * 2
                    self._vecs = np.resize(self._vecs, (grow, self.dim))
                    self._keys = np.resize(self._keys, grow)
                at = self._n
                self._n += 1
                self._row[k] = at
                self._keys[at] = k
            self._vecs[at] = row

    def _add_new(self, keys: Sequence[int], v: np.ndarray) -> None:
        """Many new keys at once: one copy, not one per row."""
        ks = np.asarray(keys, dtype=np.int64)
        if len(np.unique(ks)) != len(ks):
            raise ValueError("keys: duplicates in one add")
        need = self._n + len(ks)
        if need > len(self._keys):
            grow = max(need, 2 * len(self._keys))
            self._vecs = np.resize(self._vecs, (grow, self.dim))
            self._keys = np.resize(self._keys, grow)
        self._vecs[self._n : need] = v
        self._keys[self._n : need] = ks
        self._row.update(zip(ks.tolist(), range(self._n, need), strict=True))
        self._n = need

    def remove(self, keys: Sequence[int]) -> None:
        for key in keys:
            at = self._row.pop(int(key), None)
            if at is None:
                continue
            last = self._n - 1
            if at != last:
                moved = int(self._keys[last])
                self._vecs[at] = self._vecs[last]
                self._keys[at] = moved
                self._row[moved] = at
            self._n = last

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._n == 0 or k < 1:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(self.dim)
        scores = self._vecs[: self._n] @ q
        k = min(k, self._n)
        top = np.argpartition(-scores, k - 1)[:k] if k < self._n else np.arange(self._n)
        order = top[np.argsort(-scores[top], kind="stable")]
        return scores[order], self._keys[order].copy()

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, keys=self._keys[: self._n], vectors=self._vecs[: self._n])
        tmp.replace(path)

    def load(self, path: Path) -> None:
        with np.load(path) as z:
            keys, vecs = z["keys"], z["vectors"]
        self.__init__(self.dim, capacity=max(1024, len(keys)))  # type: ignore[misc]
        self.add(keys.tolist(), vecs)


class HNSWIndex:
    """Approximate inner-product search with usearch's HNSW graph."""

    def __init__(
        self,
        dim: int,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        threads: int = 0,
    ) -> None:
        try:
            from usearch.index import Index
        except ImportError as exc:
            raise DependencyMissingError("usearch", "embeddings", "the HNSW vector index") from exc
        self.dim = dim
        self.threads = threads
        self._params: dict[str, Any] = dict(
            ndim=dim,
            metric="ip",
            dtype="f32",
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        self._index: Any = Index(**self._params)

    def __len__(self) -> int:
        return len(self._index)

    def set_expansion_search(self, ef: int) -> None:
        """Candidates kept while searching (higher: better recall, slower)."""
        self._params["expansion_search"] = ef
        self._index.expansion_search = ef

    def add(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        if len(keys) == 0:
            return
        v = _as_matrix(vectors, self.dim, len(keys))
        k = np.asarray(keys, dtype=np.uint64)
        present = [int(x) for x in k if int(x) in self._index]
        if present:
            self._index.remove(np.asarray(present, dtype=np.uint64))
        self._index.add(k, v, threads=self.threads)

    def remove(self, keys: Sequence[int]) -> None:
        present = [int(x) for x in keys if int(x) in self._index]
        if present:
            self._index.remove(np.asarray(present, dtype=np.uint64))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._index) == 0 or k < 1:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(self.dim)
        m = self._index.search(q, k)
        keys = np.asarray(m.keys, dtype=np.int64)
        scores = (1.0 - np.asarray(m.distances, dtype=np.float32)).astype(np.float32)
        return scores, keys

    def search_many(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch search (benchmarks): ``(n, k)`` scores and keys (-1 where fewer found)."""
        m = self._index.search(
            np.ascontiguousarray(queries, dtype=np.float32), k, threads=self.threads
        )
        keys = np.asarray(m.keys, dtype=np.int64).reshape(len(queries), -1)
        dist = np.asarray(m.distances, dtype=np.float32).reshape(len(queries), -1)
        return 1.0 - dist, keys

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        self._index.save(str(tmp))
        tmp.replace(path)

    def load(self, path: Path) -> None:
        from usearch.index import Index

        index: Any = Index(**self._params)
        index.load(str(path))
        self._index = index


class AutoIndex:
    """Exact (flat) while small; moves every entry into an HNSW at ``switch_at`` entries."""

    def __init__(self, dim: int, *, switch_at: int = 5_000, **hnsw: Any) -> None:
        self.dim = dim
        self.switch_at = switch_at
        self._hnsw_params = hnsw
        self._flat: FlatIndex | None = FlatIndex(dim)
        self._hnsw: HNSWIndex | None = None

    @property
    def kind(self) -> str:
        return "flat" if self._flat is not None else "hnsw"

    def __len__(self) -> int:
        return len(self._flat) if self._flat is not None else len(self._hnsw or ())

    def add(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        if self._flat is not None:
            self._flat.add(keys, vectors)
            if len(self._flat) >= self.switch_at:
                all_keys, all_vecs = self._flat.vectors()
                hnsw = HNSWIndex(self.dim, **self._hnsw_params)
                hnsw.add(all_keys.tolist(), all_vecs.copy())
                self._hnsw, self._flat = hnsw, None
        elif self._hnsw is not None:
            self._hnsw.add(keys, vectors)

    def remove(self, keys: Sequence[int]) -> None:
        (self._flat if self._flat is not None else self._hnsw).remove(keys)  # type: ignore[union-attr]

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return (self._flat if self._flat is not None else self._hnsw).search(query, k)  # type: ignore[union-attr]

    def save(self, path: Path) -> None:
        (self._flat if self._flat is not None else self._hnsw).save(path)  # type: ignore[union-attr]

    def load(self, path: Path) -> None:
        if path.suffix == ".npz":
            self._flat, self._hnsw = FlatIndex(self.dim), None
            self._flat.load(path)
        else:
            self._hnsw, self._flat = HNSWIndex(self.dim, **self._hnsw_params), None
            self._hnsw.load(path)


def make_index(
    kind: str,
    dim: int,
    *,
    switch_at: int = 5_000,
    connectivity: int = 16,
    expansion_add: int = 128,
    expansion_search: int = 64,
    ivf_lists: int = 4096,
    ivf_probe: int = 16,
    ivf_train_at: int | None = None,
) -> VectorIndex:
    """The index named by a :class:`SemanticSettings` ``index`` value."""
    hnsw = dict(
        connectivity=connectivity, expansion_add=expansion_add, expansion_search=expansion_search
    )
    if kind == "flat":
        return FlatIndex(dim)
    if kind == "hnsw":
        return HNSWIndex(dim, **hnsw)
    if kind == "auto":
        return AutoIndex(dim, switch_at=switch_at, **hnsw)
    if kind == "ivf":
        from ._index_ivf import IVFIndex

        return IVFIndex(dim, lists=ivf_lists, probe=ivf_probe, train_at=ivf_train_at)
    raise ConfigError("index", f"must be auto, flat, hnsw or ivf, got {kind!r}")
