"""How long a semantic lookup holds the event loop, in a fresh process shaped like a
gateway's: the default cache (the cascade verifier) with its models in helper processes
(``model_runner="process"``, the default) or in a thread of the process (``"thread"``).

``python -m benchmarks._semantic_loop RUNNER LOOKUPS WORDS...`` prints one JSON row per
prompt size; :func:`loop_rows` runs it for the benchmark.
"""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from prsm.performance.caching.semantic import SemanticCache, SemanticSettings
from prsm.performance.caching.semantic._cascade import CascadeVerifier
from prsm.performance.caching.semantic._settings import ModelRunner
from prsm.performance.caching.semantic._verifier_helper import HelperVerifier
from prsm.performance.embeddings._embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


async def _loop_stall(runner: ModelRunner, words: int, lookups: int) -> dict[str, Any]:
    """The longest the event loop went without running while ``lookups`` lookups of a
    ``words``-word prompt were verified against five candidates each, by the default verifier
    (the cascade) run as ``model_runner=runner``."""
    emb = HashingEmbedder(64)
    settings = SemanticSettings(long_prompt_words=10 * words, candidate_threshold=-1.0,
                                model_runner=runner)  # fmt: skip
    cache = SemanticCache(settings, embedder=emb)
    v = emb.encode(["x"])[0]
    filler = " ".join(f"word{i % 97}" for i in range(words))
    for i in range(5):
        await cache.cache_result(f"{filler} question {i}?", i, vector=v)
    await cache.get_similar(filler, vector=v)  # warm: the lexicon and the model load
    gc.freeze()  # as `prsm-perf serve` does once started: collections skip start-up's objects
    verifier = cache.verifier
    counts = verifier.counts if isinstance(verifier, CascadeVerifier | HelperVerifier) else None
    before = counts.as_dict() if counts is not None else {}
    # the beat allocates nothing that lives: a histogram of 10 µs bins and running maxima
    # (a list of millions of samples made its own multi-millisecond pauses as it grew)
    bins = [0] * (_BINS + 1)
    gap_bins = [0] * (_BINS + 1)
    most = {"held": 0.0, "gap": 0.0}
    stop = False

    async def beat() -> None:
        # wall gaps include the OS taking the core away (this machine is shared); the event
        # loop thread's own CPU time between two beats is what code on the loop held it for
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not stop:
            await asyncio.sleep(0)
            now, cpu = time.perf_counter(), time.thread_time()
            held = cpu - last_cpu
            bins[min(int(held * 1e5), _BINS)] += 1
            gap_bins[min(int((now - last) * 1e5), _BINS)] += 1
            most["held"] = max(most["held"], held)
            most["gap"] = max(most["gap"], now - last)
            last, last_cpu = now, cpu

    # the verifier's worker thread's CPU (user and kernel: waiting on the helper's pipe costs
    # system calls and wake-ups, which hold no GIL; what of it held the GIL, gil_rows samples)
    loop = asyncio.get_running_loop()
    worker = await loop.run_in_executor(cache._verify_pool, threading.get_native_id)
    cpu_before = _cpu_seconds(worker)
    task = asyncio.ensure_future(beat())
    await asyncio.sleep(0)
    steps = _Steps()
    t0 = time.perf_counter()
    for i in range(lookups):
        await steps.run(cache.get_similar(f"{filler} question {i} again?", vector=v))
    worker_cpu = _cpu_seconds(worker) - cpu_before
    per = (time.perf_counter() - t0) / lookups
    stop = True
    await task
    after = counts.as_dict() if counts is not None else {}
    await cache.aclose()
    crossed = after.get("crossed_lookups", 0) - before.get("crossed_lookups", 0)
    return {"model_runner": runner, "words": words, "lookups": lookups, "lookup_ms": per * 1e3,
            "cross_encoder_lookups": crossed,
            "lookup_step_max_ms": steps.most * 1e3, "lookup_step_p99_ms": _p99(steps.bins) * 1e3,
            "lookup_steps": sum(steps.bins),
            "verifier_thread_cpu_ms_per_lookup": worker_cpu / lookups * 1e3,
            "loop_hold_max_ms": most["held"] * 1e3, "loop_hold_p99_ms": _p99(bins) * 1e3,
            "wall_gap_max_ms": most["gap"] * 1e3,
            "wall_gap_p99_ms": _p99(gap_bins) * 1e3}  # fmt: skip


def _cpu_seconds(native_id: int) -> float:
    """A thread of this process's CPU so far, user and kernel (``/proc``'s schedstat: the
    scheduler's own nanoseconds, not clock ticks split by sampling)."""
    return int(Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()[0]) / 1e9


_BINS = 2000  # 10 µs each: 20 ms, then one bin for longer


class _Steps:
    """Each step of a lookup on the event loop (from the loop handing it the thread to the
    lookup giving it back at its next ``await`` of something not ready), timed in the loop
    thread's CPU: what the cache's own code holds the loop for, apart from what the rest of
    the process (the beat, the garbage collector between lookups, the loop itself) does."""

    def __init__(self) -> None:
        self.bins = [0] * (_BINS + 1)
        self.most = 0.0

    def _count(self, held: float) -> None:
        self.bins[min(int(held * 1e5), _BINS)] += 1
        self.most = max(self.most, held)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await _Stepped(coro, self._count)


class _Stepped(Generic[T]):
    def __init__(self, coro: Coroutine[Any, Any, T], count: Callable[[float], None]) -> None:
        self.coro, self.count = coro, count

    def __await__(self) -> Generator[Any, Any, T]:
        send: Any = None
        error: BaseException | None = None
        while True:
            start = time.thread_time()
            try:
                out = self.coro.send(send) if error is None else self.coro.throw(error)
            except StopIteration as done:
                self.count(time.thread_time() - start)
                return cast(T, done.value)
            self.count(time.thread_time() - start)
            try:
                send, error = (yield out), None
            except BaseException as e:  # handed to the lookup, as the loop would
                send, error = None, e


def _p99(bins: list[int]) -> float:
    """The 99th percentile of a histogram of 10 µs bins (the bin's upper edge), seconds."""
    total, seen = sum(bins), 0
    for i, n in enumerate(bins):
        seen += n
        if seen >= 0.99 * total:
            return (i + 1) * 1e-5
    return 0.0


GIL_RATE = 1000  # py-spy samples a second


def gil_rows(quick: bool) -> list[dict[str, Any]]:
    """How long threads other than the event loop's hold the GIL a lookup (what the loop
    waits for, which its own CPU never shows), with the default runner (and, as the measure's
    check, with ``thread``, whose verifier runs in a worker thread): py-spy samples which
    thread holds it (``--gil``) :data:`GIL_RATE` times a second while a fresh interpreter runs
    the loop test, one per prompt size. A sampled mean: it bounds those holds a lookup on
    average, not each one."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed (the bench extra pins it): pip install py-spy")
    lookups = 20 if quick else 100
    sizes = (50, 2000) if quick else (50, 500, 2000, 20000)
    rows = []
    # the thread runner at the smallest size: the measure's check (its features hold the GIL)
    for runner, words in [("process", n) for n in sizes] + [("thread", sizes[0])]:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "gil.txt"
            cmd = [spy, "record", "--gil", "--threads", "--rate", str(GIL_RATE), "--format",
                   "raw", "--output", str(raw), "--", sys.executable, "-m",
                   "benchmarks._semantic_loop", runner, str(lookups), str(words)]  # fmt: skip
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=3600)
            held = _gil_samples(raw.read_text())
        per = held["off_loop_gil_samples"] / GIL_RATE / lookups
        rows.append({"section": "event-loop GIL", "model_runner": runner, "words": words,
                     "lookups": lookups, "gil_sample_rate_hz": GIL_RATE, **held,
                     "off_loop_gil_ms_per_lookup": per * 1e3})  # fmt: skip
    return rows


def _gil_samples(raw: str) -> dict[str, int]:
    """GIL-holding samples by thread in py-spy's raw output (``thread (TID): NAME;frame;...
    COUNT`` a line; before a thread has its name, ``thread (TID);...``): every thread but the
    loop's (the one named ``MainThread``, by its id), and all threads."""
    lines = []
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        thread = stack.split(";", 1)[0]
        tid, _, name = thread.partition(": ")
        lines.append((tid, name, int(count)))
    loop = {tid for tid, name, _ in lines if name == "MainThread"}
    total = sum(n for _, _, n in lines)
    if total == 0:
        raise RuntimeError("py-spy recorded no samples holding the GIL")
    off_loop = sum(n for tid, _, n in lines if tid not in loop)
    return {"off_loop_gil_samples": off_loop, "gil_samples": total}


def loop_rows(quick: bool) -> list[dict[str, Any]]:
    """The loop's longest step with the models in their helper process (the default) and
    in a thread of the process, each measured in a fresh interpreter that holds what a
    gateway's does (the cache, not the benchmark's data or its own embedding model, whose
    objects every garbage collection would otherwise walk)."""
    sizes = (50, 2000) if quick else (50, 500, 2000, 20000)
    rows = []
    for runner, n in (("process", 200), ("thread", 100)):
        args = [runner, str(20 if quick else n), *map(str, sizes)]
        out = subprocess.run([sys.executable, "-m", "benchmarks._semantic_loop", *args],
                             cwd=ROOT, check=True, capture_output=True, text=True,
                             timeout=3600).stdout  # fmt: skip
        rows += [{"section": "event-loop", **json.loads(line)} for line in out.splitlines()
                 if line.startswith("{")]  # fmt: skip
    return rows


def main(argv: list[str]) -> None:
    """``RUNNER LOOKUPS WORDS...``: one JSON row per prompt size on stdout."""
    runner, lookups, *sizes = argv
    if runner not in ("process", "thread"):
        raise SystemExit(f"runner must be process or thread, got {runner!r}")
    for words in sizes:
        row = asyncio.run(_loop_stall(runner, int(words), int(lookups)))  # type: ignore[arg-type]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
