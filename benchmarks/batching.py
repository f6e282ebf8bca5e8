"""Benchmark ``batching``: embeddings/s and latency through the local MiniLM worker pool.

Closed-loop clients (1, 8, 32, 128 by default) each send one real QQP question per request to
:class:`~prsm.performance.workers.LocalModelUpstream` (the path ``/v1/embeddings`` takes after
routing), with two batchers in front of the same worker process, alternating per round:

- ``learned``: the tuner picks the batch size (warm-up profile, then online measurements);
- ``fixed-128``: a classic dynamic batcher with ``max_batch_size`` 128 (Triton / Ray Serve
  style, no learning).

Same run, same questions: ``unbatched`` (the floor) sends one question per call straight to the
worker, one call at a time; ``offline`` (the limit) calls sentence-transformers in this process
at several batch sizes and keeps the best.

Goals (BENCHMARKS.md, CPU): ≥ 90 % of the offline limit at 32 clients; ≥ 1.3× fixed-128 at
128 clients (where the fixed batcher really forms 128-item batches); p99 ≤ max_queue_delay +
2 × batch time at 32 clients. ≥ 5× unbatched applies on a GPU only.

    python -m benchmarks.batching [--quick] [--plot] [--rounds N] [--duration S]
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import Report, parser, percentile
from benchmarks._qqp import load_pairs
from prsm.performance.batching import BatcherSettings
from prsm.performance.routing.node import NodeSpec
from prsm.performance.types import AIRequest, RequestKind
from prsm.performance.workers import LocalModelUpstream, LocalWorkerPool, WorkerSettings

NAME = "batching"
MODEL = "all-MiniLM-L6-v2"
GOAL = (
    ">= 90% of the offline limit at 32 clients; >= 1.3x the fixed max_batch_size=128 batcher "
    "at 128 clients (CPU); p99 <= max_queue_delay + 2 x batch time at 32 clients; "
    "(>= 5x unbatched on a GPU only)"
)


def questions(limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for a, b, _ in load_pairs("dev"):
        seen.setdefault(a, None)
        seen.setdefault(b, None)
        if len(seen) >= limit:
            break
    return list(seen)


async def closed_loop(
    upstream: LocalModelUpstream, node: NodeSpec, texts: list[str], clients: int, duration: float
) -> dict[str, Any]:
    """``clients`` loops sending one question each until ``duration`` passes."""
    counter = itertools.count()
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def client() -> None:
        while time.perf_counter() < stop:
            text = texts[next(counter) % len(texts)]
            request = AIRequest(
                model=MODEL, kind=RequestKind.EMBEDDING, payload={"input": text, "model": MODEL}
            )
            t0 = time.perf_counter()
            await upstream.execute(node, request)
            latencies.append(time.perf_counter() - t0)

    batcher = upstream.batchers[node.id]
    before = batcher.stats()
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    after = batcher.stats()
    batches = after["batches"] - before["batches"]
    busy = after["batch_seconds_total"] - before["batch_seconds_total"]
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_batch": (after["items"] - before["items"]) / batches if batches else 0.0,
        "batch_ms": busy / batches * 1000 if batches else 0.0,
    }


async def unbatched(pool: LocalWorkerPool, texts: list[str], duration: float) -> dict[str, Any]:
    worker = pool.workers[0]
    latencies: list[float] = []
    stop = time.perf_counter() + duration
    t0 = time.perf_counter()
    for text in itertools.cycle(texts):
        if time.perf_counter() >= stop:
            break
        s = time.perf_counter()
        await worker.embed([text])
        latencies.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def offline(model: Any, texts: list[str], sizes: list[int], duration: float) -> dict[int, float]:
    """Sentences per second of back-to-back ``encode`` calls at each batch size."""
    out = {}
    for size in sizes:
        chunks = itertools.cycle(range(0, len(texts) - size + 1, size))
        done = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < duration:
            start = next(chunks)
            model.encode(texts[start : start + size], batch_size=size, show_progress_bar=False)
            done += size
        out[size] = done / (time.perf_counter() - t0)
    return out


async def run(args: Any) -> Report:
    quick = args.quick
    rounds = args.rounds or (1 if quick else 5)
    duration = args.duration or (0.5 if quick else 6.0)
    client_counts = [1, 8] if quick else [1, 8, 32, 128]
    ceiling = 8 if quick else 128
    offline_sizes = [1, 4, 8] if quick else [1, 4, 8, 16, 32, 64, 128]
    texts = questions(300 if quick else 4000)
    delay = 0.005

    settings = WorkerSettings(count=1, device="auto", restart_backoff=0.1)
    pool = LocalWorkerPool(settings)
    await pool.start()
    learned_settings = BatcherSettings(max_batch_size=ceiling, max_queue_delay=delay)
    learned = LocalModelUpstream(pool, learned_settings)
    fixed = LocalModelUpstream(pool, learned_settings.fixed(ceiling))
    node = pool.nodes()[0]
    report = Report(name=NAME, goal=GOAL)
    try:
        t0 = time.perf_counter()
        await learned.warm_up(texts[:512], repeats=2 if quick else 3)
        warm_s = time.perf_counter() - t0
        from prsm.performance.embeddings.model import load_sentence_transformer

        model = load_sentence_transformer(device=pool.workers[0].device)
        model.encode(texts[:16], show_progress_bar=False)  # first call pays for set-up

        cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
        floor_runs: list[dict[str, Any]] = []
        limit_runs: list[dict[int, float]] = []
        for r in range(rounds):
            floor_runs.append(await unbatched(pool, texts, duration / 2))
            limit_runs.append(offline(model, texts, offline_sizes, duration / 4))
            for clients in client_counts:
                order = [("learned", learned), ("fixed-128", fixed)]
                if r % 2:
                    order.reverse()
                for mode, upstream in order:
                    result = await closed_loop(upstream, node, texts, clients, duration)
                    cells.setdefault((mode, clients), []).append(result)
        floor = statistics.median(x["per_s"] for x in floor_runs)
        by_size = {s: statistics.median(run[s] for run in limit_runs) for s in offline_sizes}
        best_size = max(by_size, key=lambda s: by_size[s])
        limit = by_size[best_size]
        report.add(
            case="unbatched (floor)", clients=1, per_s=floor,
            p50_ms=statistics.median(x["p50_ms"] for x in floor_runs),
            p99_ms=statistics.median(x["p99_ms"] for x in floor_runs),
        )  # fmt: skip
        for size in offline_sizes:
            report.add(case=f"offline batch {size}", clients=None, per_s=by_size[size])
        for (mode, clients), results in cells.items():
            med = {k: statistics.median(x[k] for x in results) for k in results[0]}
            bound = delay * 1000 + 2 * med["batch_ms"]
            report.add(
                case=mode, clients=clients, per_s=med["per_s"], p50_ms=med["p50_ms"],
                p99_ms=med["p99_ms"], mean_batch=med["mean_batch"], batch_ms=med["batch_ms"],
                p99_bound_ms=bound, vs_limit=med["per_s"] / limit, vs_floor=med["per_s"] / floor,
            )  # fmt: skip
        get = {(row["case"], row["clients"]): row for row in report.rows}
        top = max(client_counts)
        mid = 32 if 32 in client_counts else top
        at_mid = get[("learned", mid)]
        ratio_fixed = get[("learned", top)]["per_s"] / get[("fixed-128", top)]["per_s"]
        report.ratio_vs_peer = {
            f"learned_vs_offline_limit_at_{mid}": round(at_mid["per_s"] / limit, 3),
            f"learned_vs_fixed128_at_{top}": round(ratio_fixed, 3),
            f"learned_vs_unbatched_at_{mid}": round(at_mid["per_s"] / floor, 3),
        }
        report.meets_goal = {
            "90pct_of_limit_at_32": at_mid["per_s"] >= 0.9 * limit,
            "1.3x_fixed128_at_128": ratio_fixed >= 1.3,
            "p99_bound_at_32": at_mid["p99_ms"] <= at_mid["p99_bound_ms"],
        }
        stats = learned.stats()[node.id]["batcher"]
        report.extra["learned"] = {
            "chosen_batch_size": stats["chosen_batch_size"],
            "curve": stats["curve"],
            "warm_up_seconds": round(warm_s, 1),
        }
        report.extra["offline_best_batch_size"] = best_size
        report.extra["settings"] = {
            "max_queue_delay": delay, "rounds": rounds, "duration_s": duration,
            "device": pool.workers[0].device, "workers": 1, "questions": len(texts),
        }  # fmt: skip
        report.notes.append(
            f"learned batch size {stats['chosen_batch_size']}; offline best size {best_size}; "
            f"device {pool.workers[0].device}; shared, noisy machine: compare ratios"
        )
    finally:
        await learned.aclose()
        await fixed.aclose()
        await pool.close()
    return report


def plot(report: Report, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5))
    floor = next(r["per_s"] for r in report.rows if r["case"] == "unbatched (floor)")
    offline = [r for r in report.rows if str(r["case"]).startswith("offline")]
    limit = max(r["per_s"] for r in offline)
    for mode, style in (("learned", "o-"), ("fixed-128", "s--")):
        rows = sorted((r for r in report.rows if r["case"] == mode), key=lambda r: r["clients"])
        xs = [r["clients"] for r in rows]
        ax1.plot(xs, [r["per_s"] for r in rows], style, label=mode)
        ax2.plot(xs, [r["p99_ms"] for r in rows], style, label=f"{mode} p99")
        ax2.plot(xs, [r["p99_bound_ms"] for r in rows], ":", label=f"{mode} bound")
    ax1.axhline(limit, color="green", lw=1, label="offline limit")
    ax1.axhline(floor, color="red", lw=1, label="unbatched floor")
    ax1.set(xscale="log", xlabel="concurrent clients", ylabel="embeddings / s", ylim=(0, None))
    ax1.set_title("throughput")
    ax1.legend(fontsize=8)
    ax2.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms")
    ax2.set_title("p99 latency vs max_queue_delay + 2 x batch time")
    ax2.legend(fontsize=7)
    curve = report.extra["learned"]["curve"]
    ax3.plot([p["size"] for p in curve], [p["items_per_second"] for p in curve], "o-",
             label="worker (measured by the tuner)")  # fmt: skip
    ax3.plot([int(str(r["case"]).split()[-1]) for r in offline], [r["per_s"] for r in offline],
             "s--", label="offline, in process")  # fmt: skip
    ax3.axvline(report.extra["learned"]["chosen_batch_size"], color="gray", ls=":",
                label="learned size")  # fmt: skip
    ax3.set(xscale="log", xlabel="batch size", ylabel="embeddings / s", ylim=(0, None))
    ax3.set_title("batch-size curve")
    ax3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    p = parser(NAME, __doc__.splitlines()[0] if __doc__ else NAME)
    p.add_argument("--duration", type=float, default=None, help="seconds per measured cell")
    args = p.parse_args()
    report = asyncio.run(run(args))
    report.finish(args, plot)


if __name__ == "__main__":
    main()
