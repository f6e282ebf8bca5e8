"""Routing benchmark: our ``select_optimal_endpoint`` and ``handle()`` against LiteLLM's Router.

Same run, same node counts, alternating rounds, medians:

* route (static): ``PerformanceOrchestrator.select_optimal_endpoint`` (intelligent strategy,
  nodes with varied load and learned latency) vs ``Router.async_get_available_deployment``
  with ``simple-shuffle`` and ``latency-based-routing``;
* route under churn (BENCHMARKS.md, row ``routing``): the same call at ``--churn-nodes``
  (1,000) nodes while, in virtual time on a manual clock, requests arrive at
  ``--rate`` (10k/s), every node's load is updated once a second (spread over the second,
  as the poller does), and ``--membership`` (10) nodes a second are added, drained and
  removed. Each pick is timed alone; the updates and membership changes between picks are
  applied untimed (their cost is reported on its own row). LiteLLM's Router gets the same
  additions and removals (it has no drain and no load input: its strategies ignore them);
* handle: ``PerformanceOrchestrator.handle`` with an in-process upstream that answers at
  once vs ``Router.acompletion`` with ``mock_response`` (no network).

Goal: route ≤ 5 µs median at 1,000 nodes under churn and ≥ 100× LiteLLM's fastest strategy
there; ``handle()`` ≤ 10 µs median and ≥ 400× LiteLLM's mock completion (at 100 nodes).

    python -m benchmarks.routing            # 10, 100, 1000 nodes, churn at 1000
    python -m benchmarks.routing --quick    # CI smoke run
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

from benchmarks._harness import Report, median, parser, percentile
from prsm.performance import AIRequest, CallableUpstream, NodeMetrics, NodeSpec
from prsm.performance.clock import ManualClock
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator

GOAL = (
    "route (intelligent) at 1,000 nodes under churn <= 5 us median and >= 100x faster than "
    "LiteLLM's fastest strategy; handle() <= 10 us median and >= 400x faster than LiteLLM "
    "acompletion(mock_response) at 100 nodes"
)
MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "hello"}]
OURS, OURS_HANDLE = "ours (intelligent)", "ours handle()"
SHUFFLE, LATENCY = "litellm simple-shuffle", "litellm latency-based"
LL_CALL = "litellm acompletion(mock)"


def ours(n: int, seed: int, clock: ManualClock | None = None) -> PerformanceOrchestrator:
    rng = random.Random(seed)
    perf = PerformanceOrchestrator(
        load_balancing="intelligent",
        nodes=[NodeSpec(f"node-{i}", models=frozenset({MODEL})) for i in range(n)],
        upstream=CallableUpstream(lambda node, request: "hi"),
        rng=random.Random(seed),
        clock=clock,
    )
    for i in range(n):  # varied live load and learned latency, so scores differ
        perf.registry.update_metrics(f"node-{i}", reading(rng))
        perf.tracker.record(f"node-{i}", rng.uniform(0.05, 2.0), True, 0.0)
    return perf


def reading(rng: random.Random) -> NodeMetrics:
    return NodeMetrics(cpu=rng.random(), memory=rng.random(), queue_depth=rng.randrange(4))


def litellm_deployment(i: int | str) -> dict[str, Any]:
    return {
        "model_name": MODEL,
        "litellm_params": {
            "model": "openai/gpt-3.5-turbo",
            "api_key": "sk-bench",
            "api_base": f"http://127.0.0.1:9/node-{i}",
            "mock_response": "hi",
        },
        "model_info": {"id": f"node-{i}"},
    }


def litellm_router(n: int, strategy: str) -> Any:
    import litellm
    from litellm import Router

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    logging.getLogger("LiteLLM Router").setLevel(logging.ERROR)
    return Router(model_list=[litellm_deployment(i) for i in range(n)], routing_strategy=strategy)


def ll_route(router: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: router.async_get_available_deployment(
        model=MODEL, messages=MESSAGES, request_kwargs={}
    )


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
    return [
        ("route", OURS, lambda: perf.select_optimal_endpoint(request), n_route),
        ("route", SHUFFLE, ll_route(shuffle), n_ll_route),
        ("route", LATENCY, ll_route(latency), n_ll_route),
        ("handle", OURS_HANDLE, lambda: perf.handle(request), n_handle),
        (
            "handle",
            LL_CALL,
            lambda: shuffle.acompletion(model=MODEL, messages=MESSAGES),
            n_ll_call,
        ),
    ]


async def per_call(fn: Callable[[], Awaitable[Any]], number: int) -> tuple[float, float]:
    """Seconds per call: wall-clock and this process's CPU time (on a shared machine the
    second is what the call costs, the first also what other jobs took)."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(number):
        await fn()
    return (time.perf_counter() - w0) / number, (time.process_time() - c0) / number


# -- churn -----------------------------------------------------------------------------------


class Churn:
    """The churn schedule in virtual time: load updates (each node once a second, spread),
    and ``membership`` nodes a second added, drained and (a second after draining)
    removed. :meth:`until` yields the events due by a time, in order."""

    def __init__(self, ids: list[str], membership: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = list(ids)  # every registered node, in update order
        self.membership = membership
        self.added = 0
        self.active = list(ids)  # nodes that may be drained
        self.drained: list[tuple[float, str]] = []  # (when, id): removed a second later
        self.next_update = 0.0
        self.next_member = 0.5 / membership if membership else float("inf")
        self.cursor = 0
        self.readings = [reading(self.rng) for _ in range(512)]

    def until(self, t: float) -> Iterator[tuple[str, str, Any]]:
        while True:
            due_update = self.next_update if self.ids else float("inf")
            if min(due_update, self.next_member) > t:
                return
            if due_update <= self.next_member:
                node_id = self.ids[self.cursor % len(self.ids)]
                self.cursor += 1
                self.next_update += 1.0 / len(self.ids)
                yield "update", node_id, self.readings[self.cursor % len(self.readings)]
                continue
            now = self.next_member
            self.next_member += 1.0 / self.membership
            new = f"new-{self.added}"
            self.added += 1
            self.ids.append(new)
            self.active.append(new)
            yield "add", new, None
            if self.active:
                victim = self.active.pop(0)
                self.drained.append((now, victim))
                yield "drain", victim, None
            while self.drained and self.drained[0][0] <= now - 1.0:
                _, gone = self.drained.pop(0)
                self.ids.remove(gone)
                yield "remove", gone, None


async def churn_ours(
    n: int, rate: float, seconds: float, membership: int, seed: int
) -> tuple[list[float], list[float], int]:
    """Per-pick seconds, per-update seconds, and the events applied."""
    clock = ManualClock()
    perf = ours(n, seed, clock)
    request = AIRequest(model=MODEL, payload={"messages": MESSAGES})
    churn = Churn([f"node-{i}" for i in range(n)], membership, seed)
    registry = perf.registry
    picks: list[float] = []
    updates: list[float] = []
    events = 0
    clock_now = perf_counter = time.perf_counter
    for i in range(int(rate * seconds)):
        t = i / rate
        clock.set(t)
        for kind, node_id, value in churn.until(t):
            events += 1
            if kind == "update":
                t0 = perf_counter()
                registry.update_metrics(node_id, value)
                updates.append(perf_counter() - t0)
            elif kind == "add":
                perf.add_node(NodeSpec(node_id, models=frozenset({MODEL})))
            elif kind == "drain":
                perf.drain_node(node_id)
            else:
                perf.remove_node(node_id)
        t0 = clock_now()
        await perf.select_optimal_endpoint(request)
        picks.append(clock_now() - t0)
    return picks, updates, events


async def churn_litellm(
    n: int, strategy: str, rate: float, calls: int, *, membership: int, seed: int
) -> list[float]:
    """LiteLLM's route on the same schedule: additions and removals applied (it has no
    drain and no load input), ``calls`` picks at ``rate`` in virtual time."""
    from litellm.types.router import Deployment

    router = litellm_router(n, strategy)
    route = ll_route(router)
    await route()  # its first call is slow
    churn = Churn([f"node-{i}" for i in range(n)], membership, seed)
    out = []
    for i in range(calls):
        for kind, node_id, _ in churn.until(i / rate):
            if kind == "add":
                router.add_deployment(Deployment(**litellm_deployment(node_id.split("-", 1)[1])))
            elif kind == "remove":
                router.delete_deployment(id=node_id)
        t0 = time.perf_counter()
        await route()
        out.append(time.perf_counter() - t0)
    return out


def _row(report: Report, n: int, op: str, name: str, samples: list[float], **kw: Any) -> float:
    med = statistics.median(samples)
    report.add(
        nodes=n,
        operation=op,
        implementation=name,
        median_us=med * 1e6,
        p99_us=percentile(samples, 99) * 1e6,
        **kw,
    )
    return med


async def measure_churn(
    args: Any, report: Report, figures: dict[tuple[int, str, str], float]
) -> int:
    n = 10 if args.quick else args.churn_nodes
    seconds = 0.05 if args.quick else args.churn_seconds
    rounds = 1 if args.quick else (args.rounds or 3)
    ll_calls = 5 if args.quick else args.churn_litellm_calls
    picks: list[float] = []
    updates: list[float] = []
    shuffle: list[float] = []
    latency: list[float] = []
    events = 0
    for r in range(rounds):  # alternate ours and LiteLLM, each round a fresh world
        p, u, events = await churn_ours(n, args.rate, seconds, args.membership, seed=r)
        picks += p
        updates += u
        shuffle += await churn_litellm(
            n, "simple-shuffle", args.rate, ll_calls, membership=args.membership, seed=r
        )
        latency += await churn_litellm(
            n,
            "latency-based-routing",
            args.rate,
            max(3, ll_calls // 4),
            membership=args.membership,
            seed=r,
        )
    extra = {"rounds": rounds, "case": "churn"}
    figures[(n, "churn", OURS)] = _row(
        report, n, "route (churn)", OURS, picks, calls=len(picks), **extra
    )
    figures[(n, "churn", SHUFFLE)] = _row(
        report, n, "route (churn)", SHUFFLE, shuffle, calls=len(shuffle), **extra
    )
    figures[(n, "churn", LATENCY)] = _row(
        report, n, "route (churn)", LATENCY, latency, calls=len(latency), **extra
    )
    _row(
        report,
        n,
        "load update (churn)",
        "ours update_metrics",
        updates,
        calls=len(updates),
        **extra,
    )
    report.extra["churn"] = {
        "nodes": n,
        "rate_per_s": args.rate,
        "virtual_seconds_per_round": seconds,
        "membership_per_s": args.membership,
        "events_per_round": events,
    }
    return n


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
        cpu: dict[str, list[float]] = {name: [] for _, name, _, _ in cases}
        for _ in range(rounds):  # alternate: every case once per round
            for _, name, fn, number in cases:
                wall, used = await per_call(fn, number)
                samples[name].append(wall)
                cpu[name].append(used)
        for op, name, _, number in cases:
            med = median(samples[name])
            figures[(n, op, name)] = med
            report.add(
                nodes=n,
                operation=op,
                implementation=name,
                median_us=med * 1e6,
                cpu_us=median(cpu[name]) * 1e6,
                rounds=rounds,
                calls_per_round=number,
            )
    churn_n = await measure_churn(args, report, figures)
    ref = 100 if 100 in sizes else sizes[-1]
    handle_ratio = figures[(ref, "handle", LL_CALL)] / figures[(ref, "handle", OURS_HANDLE)]
    churn_ours_s = figures[(churn_n, "churn", OURS)]
    churn_ratio = (
        min(figures[(churn_n, "churn", SHUFFLE)], figures[(churn_n, "churn", LATENCY)])
        / churn_ours_s
    )
    static_ratio = (
        min(figures[(ref, "route", SHUFFLE)], figures[(ref, "route", LATENCY)])
        / figures[(ref, "route", OURS)]
    )
    report.ratio_vs_peer = {
        f"route@{ref}": round(static_ratio, 1),
        f"route_churn@{churn_n}": round(churn_ratio, 1),
        f"handle@{ref}": round(handle_ratio, 1),
    }
    report.meets_goal = {
        f"route churn <= 5us @{churn_n}": churn_ours_s <= 5e-6,
        f"route churn >= 100x @{churn_n}": churn_ratio >= 100,
        f"handle <= 10us @{ref}": figures[(ref, "handle", OURS_HANDLE)] <= 10e-6,
        f"handle >= 400x @{ref}": handle_ratio >= 400,
    }
    for n in sizes:
        report.extra.setdefault("ratios_by_nodes", {})[str(n)] = {
            "route": round(
                min(figures[(n, "route", SHUFFLE)], figures[(n, "route", LATENCY)])
                / figures[(n, "route", OURS)],
                1,
            ),
            "handle": round(
                figures[(n, "handle", LL_CALL)] / figures[(n, "handle", OURS_HANDLE)], 1
            ),
        }
    report.extra["load_average"] = os.getloadavg()
    report.notes.append(
        "static rows: medians of per-round means (wall clock, and cpu_us: this process's CPU "
        "time), rounds alternate ours and LiteLLM on the same node count; churn rows: medians "
        "and p99 of single timed calls, virtual time; LiteLLM 'fastest strategy' is the faster "
        "of simple-shuffle and latency-based routing"
    )
    if args.quick:
        report.notes.append("quick run: tiny sizes, checks that it runs, figures mean nothing")
    return report


def plot(report: Report, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = ("route", "route (churn)", "handle")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, op in zip(axes, ops, strict=True):
        rows = [r for r in report.rows if r["operation"] == op]
        names = sorted({r["implementation"] for r in rows})
        sizes = sorted({r["nodes"] for r in rows})
        width = 0.8 / max(1, len(names))
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
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    p.add_argument("--nodes", type=ints, default=[10, 100, 1000], help="static node counts")
    p.add_argument("--churn-nodes", type=int, default=1000, help="node count under churn")
    p.add_argument("--rate", type=float, default=10_000.0, help="requests/s under churn")
    p.add_argument(
        "--membership", type=int, default=10, help="nodes added, drained, removed per second"
    )
    p.add_argument("--churn-seconds", type=float, default=3.0, help="virtual seconds per round")
    p.add_argument(
        "--churn-litellm-calls", type=int, default=120, help="LiteLLM picks per round under churn"
    )
    args = p.parse_args()
    report = asyncio.run(measure(args))
    report.finish(args, plot)


if __name__ == "__main__":
    main()
