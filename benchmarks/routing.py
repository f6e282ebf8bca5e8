"""Routing benchmark: our ``select_optimal_endpoint`` and ``handle()`` against LiteLLM's Router.

Same run, same node counts, alternating rounds, medians:

* route: ``PerformanceOrchestrator.select_optimal_endpoint`` (intelligent strategy, nodes
  with varied load and learned latency) vs ``Router.async_get_available_deployment`` with
  ``simple-shuffle`` and ``latency-based-routing``;
* handle: ``PerformanceOrchestrator.handle`` with an in-process upstream that answers at
  once vs ``Router.acompletion`` with ``mock_response`` (no network).

Goal (BENCHMARKS.md, row ``routing``): at 100 nodes, routing ≥ 50× faster than LiteLLM's
fastest strategy and ≤ 10 µs median; ``handle()`` ≥ 100× faster than LiteLLM's mock
completion.

    python -m benchmarks.routing            # 10, 100, 1000 nodes
    python -m benchmarks.routing --quick    # CI smoke run
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

from benchmarks._harness import Report, median, parser
from prsm.performance import AIRequest, CallableUpstream, NodeMetrics, NodeSpec
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator

GOAL = (
    "route (intelligent) at 100 nodes >= 50x faster than LiteLLM's fastest strategy and "
    "<= 10 us median; handle() >= 100x faster than LiteLLM acompletion(mock_response)"
)
MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "hello"}]


def ours(n: int, seed: int) -> PerformanceOrchestrator:
    rng = random.Random(seed)
    perf = PerformanceOrchestrator(
        load_balancing="intelligent",
        nodes=[NodeSpec(f"node-{i}", models=frozenset({MODEL})) for i in range(n)],
        upstream=CallableUpstream(lambda node, request: "hi"),
        rng=random.Random(seed),
    )
    for i in range(n):  # varied live load and learned latency, so scores differ
        perf.registry.update_metrics(
            f"node-{i}",
            NodeMetrics(cpu=rng.random(), memory=rng.random(), queue_depth=rng.randrange(4)),
        )
        perf.tracker.record(f"node-{i}", rng.uniform(0.05, 2.0), True, 0.0)
    return perf


def litellm_router(n: int, strategy: str) -> Any:
    import litellm
    from litellm import Router

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    logging.getLogger("LiteLLM Router").setLevel(logging.ERROR)
    model_list = [
        {
            "model_name": MODEL,
            "litellm_params": {
                "model": "openai/gpt-3.5-turbo",
                "api_key": "sk-bench",
                "api_base": f"http://127.0.0.1:9/node-{i}",
                "mock_response": "hi",
            },
        }
        for i in range(n)
    ]
    return Router(model_list=model_list, routing_strategy=strategy)


Case = tuple[str, str, Callable[[], Awaitable[Any]], int]


def make_cases(
    perf: PerformanceOrchestrator,
    shuffle: Any,
    latency: Any,
    request: AIRequest,
    *,
    counts: tuple[int, int, int, int],
) -> list[Case]:
    """(operation, implementation, call, calls per round) for one node count; ``counts``:
    calls per round of our route, our handle, LiteLLM's route, LiteLLM's completion."""
    n_route, n_handle, n_ll_route, n_ll_call = counts

    def ll_route(router: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: router.async_get_available_deployment(
            model=MODEL, messages=MESSAGES, request_kwargs={}
        )

    return [
        ("route", "ours (intelligent)", lambda: perf.select_optimal_endpoint(request), n_route),
        ("route", "litellm simple-shuffle", ll_route(shuffle), n_ll_route),
        ("route", "litellm latency-based", ll_route(latency), n_ll_route),
        ("handle", "ours handle()", lambda: perf.handle(request), n_handle),
        (
            "handle",
            "litellm acompletion(mock)",
            lambda: shuffle.acompletion(model=MODEL, messages=MESSAGES),
            n_ll_call,
        ),
    ]


async def per_call(fn: Callable[[], Awaitable[Any]], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        await fn()
    return (time.perf_counter() - t0) / number


async def measure(args: Any) -> Report:
    sizes = [10] if args.quick else args.nodes
    rounds = args.rounds or (2 if args.quick else 5)
    scale = 0.05 if args.quick else 1.0
    n_route, n_handle = max(20, int(3000 * scale)), max(20, int(2000 * scale))
    n_ll_route, n_ll_call = max(5, int(200 * scale)), max(3, int(60 * scale))
    report = Report(name="routing", goal=GOAL)
    request = AIRequest(model=MODEL, payload={"messages": MESSAGES})
    figures: dict[tuple[int, str, str], float] = {}
    for n in sizes:
        perf = ours(n, seed=n)
        shuffle = litellm_router(n, "simple-shuffle")
        latency = litellm_router(n, "latency-based-routing")

        counts = (n_route, n_handle, n_ll_route, n_ll_call)
        cases = make_cases(perf, shuffle, latency, request, counts=counts)
        for _, _, fn, number in cases:  # warm up every path (LiteLLM's first call is slow)
            await per_call(fn, max(3, number // 10))
        samples: dict[str, list[float]] = {name: [] for _, name, _, _ in cases}
        for _ in range(rounds):  # alternate: every case once per round
            for _, name, fn, number in cases:
                samples[name].append(await per_call(fn, number))
        for op, name, _, _ in cases:
            med = median(samples[name])
            figures[(n, op, name)] = med
            report.add(
                nodes=n,
                operation=op,
                implementation=name,
                median_us=med * 1e6,
                rounds=rounds,
                calls_per_round=dict((c[1], c[3]) for c in cases)[name],
            )
    ref = 100 if 100 in sizes else sizes[-1]
    route_ours = figures[(ref, "route", "ours (intelligent)")]
    route_peer = min(
        figures[(ref, "route", "litellm simple-shuffle")],
        figures[(ref, "route", "litellm latency-based")],
    )
    handle_ours = figures[(ref, "handle", "ours handle()")]
    handle_peer = figures[(ref, "handle", "litellm acompletion(mock)")]
    report.ratio_vs_peer = {
        f"route@{ref}": round(route_peer / route_ours, 1),
        f"handle@{ref}": round(handle_peer / handle_ours, 1),
    }
    report.meets_goal = {
        f"route >= 50x @{ref}": route_peer / route_ours >= 50,
        f"route <= 10us @{ref}": route_ours <= 10e-6,
        f"handle >= 100x @{ref}": handle_peer / handle_ours >= 100,
    }
    for n in sizes:
        report.extra.setdefault("ratios_by_nodes", {})[str(n)] = {
            "route": round(
                min(
                    figures[(n, "route", "litellm simple-shuffle")],
                    figures[(n, "route", "litellm latency-based")],
                )
                / figures[(n, "route", "ours (intelligent)")],
                1,
            ),
            "handle": round(
                figures[(n, "handle", "litellm acompletion(mock)")]
                / figures[(n, "handle", "ours handle()")],
                1,
            ),
        }
    report.notes.append(
        "medians of per-round means; rounds alternate ours and LiteLLM on the same node count; "
        "LiteLLM 'fastest strategy' is the faster of simple-shuffle and latency-based routing"
    )
    if args.quick:
        report.notes.append("quick run: tiny sizes, checks that it runs, figures mean nothing")
    return report


def plot(report: Report, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, op in zip(axes, ("route", "handle"), strict=True):
        rows = [r for r in report.rows if r["operation"] == op]
        names = sorted({r["implementation"] for r in rows})
        sizes = sorted({r["nodes"] for r in rows})
        width = 0.8 / len(names)
        for k, name in enumerate(names):
            values = [
                next(
                    r["median_us"] for r in rows if r["nodes"] == n and r["implementation"] == name
                )
                for n in sizes
            ]
            ax.bar([i + k * width for i in range(len(sizes))], values, width, label=name)
        ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(sizes))])
        ax.set_xticklabels([f"{n} nodes" for n in sizes])
        ax.set_yscale("log")
        ax.set_ylabel("median µs per call (log)")
        ax.set_title(op)
        ax.legend(fontsize=8)
    fig.suptitle("routing: PRSM vs LiteLLM Router (lower is better)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    p = parser("routing", "Routing and handle() cost: ours vs LiteLLM Router, same run.")
    p.add_argument(
        "--nodes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 100, 1000],
        help="comma-separated node counts (default 10,100,1000)",
    )
    args = p.parse_args()
    report = asyncio.run(measure(args))
    report.finish(args, plot)


if __name__ == "__main__":
    main()
