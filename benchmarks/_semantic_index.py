"""Index part of the semantic benchmark: recall against brute force, build and lookup time.

Vectors are synthetic: unit vectors drawn around random cluster centres (sentence embeddings
are clustered, not uniform on the sphere); queries are stored vectors plus noise, as a cache
lookup near an entry is. Exact top-1 comes from brute force (numpy) over the same vectors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks._harness import percentile
from prsm.performance.caching.semantic.index import FlatIndex, HNSWIndex


def synthetic(n: int, dim: int, seed: int = 0, clusters: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        c = centres[rng.integers(0, clusters, m)]
        v = c + 0.9 * rng.standard_normal((m, dim)).astype(np.float32)
        out[i : i + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def queries_near(data: np.ndarray, q: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = data[rng.integers(0, len(data), q)]
    v = base + 0.05 * rng.standard_normal(base.shape).astype(np.float32)
    out: np.ndarray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


def exact_top1(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    out = [np.argmax(queries[i : i + 256] @ data.T, axis=1) for i in range(0, len(queries), 256)]
    found: np.ndarray = np.concatenate(out)
    return found


def _lat(fn: Any, queries: np.ndarray) -> tuple[list[float], list[int]]:
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, keys = fn(q)
        times.append(time.perf_counter() - t0)
        found.append(int(keys[0]) if len(keys) else -1)
    return times, found


def sweep_size(
    n: int, dim: int, nq: int, *, connectivity: int, expansion_add: int, expansion_search: int,
    with_faiss: bool, with_flat: bool, more_efs: Sequence[int] = (),
) -> list[dict[str, Any]]:  # fmt: skip
    data = synthetic(n, dim)
    queries = queries_near(data, nq)
    truth = exact_top1(data, queries)
    rows: list[dict[str, Any]] = []
    keys = list(range(n))

    def row(index: str, build: float, times: list[float], found: list[int]) -> None:
        rows.append({
            "section": "index", "entries": n, "index": index,
            "build_s": round(build, 2),
            "recall_at_1": float(np.mean(np.asarray(found) == truth)),
            "p50_ms": percentile(times, 50) * 1e3, "p99_ms": percentile(times, 99) * 1e3,
        })  # fmt: skip

    if with_flat:
        t0 = time.perf_counter()
        flat = FlatIndex(dim, capacity=n)
        flat.add(keys, data)
        build = time.perf_counter() - t0
        row("flat (numpy, exact)", build, *_lat(lambda q: flat.search(q, 5), queries))
    t0 = time.perf_counter()
    h = HNSWIndex(dim, connectivity=connectivity, expansion_add=expansion_add,
                  expansion_search=expansion_search)  # fmt: skip
    h.add(keys, data)
    build = time.perf_counter() - t0
    row(f"usearch HNSW M={connectivity} efC={expansion_add} ef={expansion_search}", build,
        *_lat(lambda q: h.search(q, 5), queries))  # fmt: skip
    for ef in more_efs:
        h.set_expansion_search(ef)
        row(f"usearch HNSW M={connectivity} efC={expansion_add} ef={ef}", build,
            *_lat(lambda q: h.search(q, 5), queries))  # fmt: skip
    if with_faiss:
        import faiss

        faiss.omp_set_num_threads(2)
        t0 = time.perf_counter()
        fi = faiss.IndexHNSWFlat(dim, connectivity, faiss.METRIC_INNER_PRODUCT)
        fi.hnsw.efConstruction = expansion_add
        fi.add(data)
        build = time.perf_counter() - t0
        fi.hnsw.efSearch = expansion_search
        faiss.omp_set_num_threads(1)

        def fsearch(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d, i = fi.search(q[None, :], 5)
            return d[0], i[0]

        row(
            f"faiss HNSW M={connectivity} efC={expansion_add} ef={expansion_search}",
            build,
            *_lat(fsearch, queries),
        )
    return rows
