"""Index part of the semantic benchmark: recall against brute force, build and lookup time.

Vectors are synthetic: unit vectors drawn around random cluster centres (sentence embeddings
are clustered, not uniform on the sphere); queries are stored vectors plus noise, as a cache
lookup near an entry is. Exact top-1 comes from brute force (numpy) over the same vectors.

Two query sets are measured on every index (:data:`QUERY_SETS`): *hit range*, queries at
cosine ~0.85 to the entry they were drawn from (the post's threshold: the lookups whose
answer the index decides), and *hard*, at cosine ~0.71 (just under the verifier's cosine floor
of 0.72: such a lookup cannot be served whatever the index returns, but it shows how the
graph copes with far queries).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks._harness import percentile
from prsm.performance.caching.semantic._index import FlatIndex, HNSWIndex
from prsm.performance.caching.semantic._index_ivf import IVFIndex

#: IVF is measured from this many entries up (below it flat and HNSW are the choices)
IVF_FROM = 100_000


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


#: query set name -> the mean cosine of a query to the stored vector it was drawn from
QUERY_SETS = {"hit range": 0.85, "hard": 0.71}


def queries_near(data: np.ndarray, q: int, seed: int = 1, cosine: float = 0.71) -> np.ndarray:
    """``q`` stored vectors, each moved by isotropic noise to about ``cosine`` from itself."""
    rng = np.random.default_rng(seed)
    base = data[rng.integers(0, len(data), q)]
    sigma = float(np.tan(np.arccos(cosine)) / np.sqrt(data.shape[1]))
    v = base + sigma * rng.standard_normal(base.shape).astype(np.float32)
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
    with_hnsw: bool = True, ivf_probes: Sequence[int] = (8,),
) -> list[dict[str, Any]]:  # fmt: skip
    data = synthetic(n, dim)
    sets = {
        name: (q, exact_top1(data, q))
        for name, cos in QUERY_SETS.items()
        for q in [queries_near(data, nq, cosine=cos)]
    }
    rows: list[dict[str, Any]] = []
    keys = list(range(n))

    def measure(index: str, build: float, fn: Any) -> None:
        for name, (queries, truth) in sets.items():
            times, found = _lat(fn, queries)
            rows.append({
                "section": "index", "entries": n, "index": index, "queries": name,
                "build_s": round(build, 2),
                "recall_at_1": float(np.mean(np.asarray(found) == truth)),
                "p50_ms": percentile(times, 50) * 1e3, "p99_ms": percentile(times, 99) * 1e3,
            })  # fmt: skip

    if with_flat:
        t0 = time.perf_counter()
        flat = FlatIndex(dim, capacity=n)
        flat.add(keys, data)
        build = time.perf_counter() - t0
        measure("flat (numpy, exact)", build, lambda q: flat.search(q, 5))
    if with_hnsw:
        t0 = time.perf_counter()
        h = HNSWIndex(dim, connectivity=connectivity, expansion_add=expansion_add,
                      expansion_search=expansion_search)  # fmt: skip
        h.add(keys, data)
        build = time.perf_counter() - t0
        print(f"  {n:,} entries: usearch HNSW built in {build:.0f} s", flush=True)
        for ef in (expansion_search, *more_efs):
            h.set_expansion_search(ef)
            measure(f"usearch HNSW M={connectivity} efC={expansion_add} ef={ef}", build,
                    lambda q: h.search(q, 5))  # fmt: skip
        del h
    if n >= IVF_FROM and ivf_probes:
        import faiss

        faiss.omp_set_num_threads(2)
        lists = 4096 if n >= 500_000 else 1024
        t0 = time.perf_counter()
        ivf = IVFIndex(dim, lists=lists, probe=ivf_probes[0], train_at=n, background=False)
        ivf.add(keys, data)
        build = time.perf_counter() - t0
        assert ivf.kind == "ivf"
        print(f"  {n:,} entries: IVF trained and filled in {build:.0f} s", flush=True)
        faiss.omp_set_num_threads(1)
        for probe in ivf_probes:
            ivf.set_probe(probe)
            measure(f"faiss IVF (ours) lists={lists} probe={probe}", build,
                    lambda q: ivf.search(q, 5))  # fmt: skip
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

        measure(f"faiss HNSW M={connectivity} efC={expansion_add} ef={expansion_search}", build,
                fsearch)  # fmt: skip
    return rows


def _timed_top1(fn: Any, queries: np.ndarray, best: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Seconds of each search, and whether its top score reached the exact best (ties count:
    QQP repeats questions, and an equal score is the right answer)."""
    times, ok = [], []
    for q, b in zip(queries, best, strict=True):
        t0 = time.perf_counter()
        scores, _ = fn(q)
        times.append(time.perf_counter() - t0)
        ok.append(len(scores) > 0 and scores[0] >= b - 1e-5)
    return times, np.asarray(ok)


def qqp_vectors() -> np.ndarray | None:
    """Every MiniLM embedding of a QQP question the QQP part has cached (dev and test), shuffled;
    ``None`` when they have not been computed yet."""
    from benchmarks._qqp import embedding_cache_path

    paths = [embedding_cache_path(split) for split in ("dev", "test")]
    if not all(p.is_file() for p in paths):
        return None
    parts = []
    for path in paths:
        with np.load(path) as z:
            parts.append(z["emb"].astype(np.float32))
    data = np.concatenate(parts)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    out: np.ndarray = data[np.random.default_rng(0).permutation(len(data))]
    return out


def real_looking(seeds: np.ndarray, n: int, seed: int = 0, cells: int = 1024) -> np.ndarray:
    """``n`` unit vectors shaped like real sentence embeddings, made from ``seeds`` (real
    ones, included first): k-means splits the seeds into topics; each new vector mixes two
    seeds of one topic (a random share of each) plus noise with the seeds' per-dimension
    spread, so the set keeps the real data's clusters, their sizes and its anisotropy."""
    import faiss

    rng = np.random.default_rng(seed)
    d = seeds.shape[1]
    km = faiss.Kmeans(d, cells, niter=10, seed=seed, spherical=True)
    km.train(np.ascontiguousarray(seeds))
    _, cell = km.index.search(np.ascontiguousarray(seeds), 1)
    cell = cell[:, 0]
    order = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[order], np.arange(cells + 1))
    spread = seeds.std(axis=0)
    out = np.empty((n, d), dtype=np.float32)
    k = min(n, len(seeds))
    out[:k] = seeds[:k]
    for at in range(k, n, 100_000):
        m = min(100_000, n - at)
        i = rng.integers(0, len(seeds), m)
        c = cell[i]
        size = starts[c + 1] - starts[c]
        j = order[starts[c] + (rng.random(m) * size).astype(np.int64)]
        lam = rng.random(m)[:, None].astype(np.float32)
        v = lam * seeds[i] + (1 - lam) * seeds[j]
        v += 0.35 * spread * rng.standard_normal((m, d)).astype(np.float32)
        out[at : at + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def real_looking_sweep(n: int, probes: Sequence[int], nq: int = 2000, floor: float = 0.72,
                       lists: int = 4096) -> list[dict[str, Any]]:  # fmt: skip
    """Our IVF index on ``n`` real-looking vectors, queried with ``nq`` held-out real QQP
    embeddings; recall@1 against brute force, on all queries and on those whose nearest
    entry reaches the verifier's cosine floor (the lookups a hit can come from)."""
    import faiss

    real = qqp_vectors()
    if real is None:
        return []
    queries, seeds = real[:nq], np.ascontiguousarray(real[nq:])
    t0 = time.perf_counter()
    data = real_looking(seeds, n)
    made = time.perf_counter() - t0
    faiss.omp_set_num_threads(2)
    truth = np.concatenate([(queries[i : i + 64] @ data.T).max(axis=1) for i in range(0, nq, 64)])
    servable = truth >= floor
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    ivf = IVFIndex(data.shape[1], lists=lists, probe=probes[0], train_at=n, background=True)
    ivf.add(list(range(n)), data)  # trains in a background thread ...
    waited = time.perf_counter()
    ivf.wait_trained()  # ... (lookups meanwhile go to the exact index)
    build = time.perf_counter() - t0
    print(f"  {n:,} real-looking vectors made in {made:.0f} s; IVF built in {build:.0f} s "
          f"({waited - t0:.1f} s of it in the caller)", flush=True)  # fmt: skip
    faiss.omp_set_num_threads(1)
    for probe in probes:
        ivf.set_probe(probe)
        times, hit = _timed_top1(lambda q: ivf.search(q, 5), queries, truth)
        for name, mask in (("real-looking: all", np.ones(nq, bool)),
                           (f"real-looking: nearest >= {floor}", servable)):  # fmt: skip
            rows.append({
                "section": "index-real-looking", "entries": n, "queries": name,
                "index": f"faiss IVF (ours) lists={lists} probe={probe}",
                "lookups": int(mask.sum()), "build_s": round(build, 1),
                "build_blocking_s": round(waited - t0, 2),
                "recall_at_1": float(hit[mask].mean()),
                "p50_ms": percentile(times, 50) * 1e3, "p99_ms": percentile(times, 99) * 1e3,
            })  # fmt: skip
    return rows


def index_rows(args: Any) -> list[dict[str, Any]]:
    """The index part of the benchmark, as its arguments ask."""
    probes = [int(x) for x in args.ivf_probes.split(",") if x]
    if args.real_looking or not args.quick:
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [1_000_000]
        rows = [r for n in sizes for r in real_looking_sweep(n, probes)]
        if not args.index_only:
            rows += real_sweep()
        return rows
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [2000, 10_000]
    return [r for n in sizes for r in sweep_size(
        n, 384, 200, connectivity=16, expansion_add=128, expansion_search=64,
        with_faiss=False, with_flat=True, ivf_probes=probes)]  # fmt: skip


def real_sweep(nq: int = 2000, floor: float = 0.72, lists: int = 1024,
               probes: Sequence[int] = (8, 16, 32, 64)) -> list[dict[str, Any]]:  # fmt: skip
    """The indexes on real vectors: every MiniLM embedding of a QQP question cached by the
    QQP part of this benchmark (dev and test, ~72k), ``nq`` of them held out as queries.
    Recall counts ties (QQP repeats questions; an equal score is the right answer). ``[]``
    when the embeddings have not been computed yet."""
    data = qqp_vectors()
    if data is None:
        return []
    queries, base = data[:nq], np.ascontiguousarray(data[nq:])
    best = np.concatenate([(queries[i : i + 256] @ base.T).max(axis=1)
                           for i in range(0, nq, 256)])  # fmt: skip
    in_range = best >= floor
    keys = list(range(len(base)))
    rows: list[dict[str, Any]] = []

    def measure(index: str, build: float, fn: Any) -> None:
        times, ok = _timed_top1(fn, queries, best)
        for name, mask in (("real: all", np.ones(nq, bool)),
                           (f"real: nearest >= {floor}", in_range)):  # fmt: skip
            rows.append({
                "section": "index-real", "entries": len(base), "index": index, "queries": name,
                "lookups": int(mask.sum()), "build_s": round(build, 2),
                "recall_at_1": float(ok[mask].mean()),
                "p50_ms": percentile(times, 50) * 1e3, "p99_ms": percentile(times, 99) * 1e3,
            })  # fmt: skip

    flat = FlatIndex(base.shape[1], capacity=len(base))
    flat.add(keys, base)
    measure("flat (numpy, exact)", 0.0, lambda q: flat.search(q, 5))
    t0 = time.perf_counter()
    h = HNSWIndex(base.shape[1])
    h.add(keys, base)
    measure("usearch HNSW M=16 efC=128 ef=64", time.perf_counter() - t0, lambda q: h.search(q, 5))
    t0 = time.perf_counter()
    ivf = IVFIndex(base.shape[1], lists=lists, train_at=len(base), background=False)
    ivf.add(keys, base)
    build = time.perf_counter() - t0
    for probe in probes:
        ivf.set_probe(probe)
        measure(f"faiss IVF (ours) lists={lists} probe={probe}", build,
                lambda q: ivf.search(q, 5))  # fmt: skip
    return rows
