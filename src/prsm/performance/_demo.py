"""``prsm-perf demo``: watch the routing and the breakers work, in about ten seconds.

Four in-process nodes with different speeds (one fails for the first half of the run and
then recovers) serve a few hundred requests sent through
:meth:`~prsm.performance.orchestrator.PerformanceOrchestrator.handle` at a steady rate. A live
table shows, per node, the picks, answers, failures, latency percentiles, load and breaker
state; the figures come from the orchestrator's own metrics and results.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .clock import Clock, SystemClock
from .errors import PRSMError, UpstreamError
from .routing._settings import ROUTING_STRATEGIES

if TYPE_CHECKING:
    from .orchestrator import PerformanceOrchestrator
    from .routing import NodeSpec
    from .types import AIRequest

#: Requests sent at once, every ``duration / (requests / BURST)`` seconds.
BURST = 10

#: (node id, median seconds per answer, fails until this fraction of the run has passed)
DEMO_NODES: tuple[tuple[str, float, float], ...] = (
    ("fast", 0.010, 0.0),
    ("medium", 0.030, 0.0),
    ("slow", 0.080, 0.0),
    ("flaky", 0.015, 0.5),
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="route a few hundred requests over in-process nodes and watch it live",
        description="Register four in-process nodes (fast, medium, slow, and one that fails "
        "for the first half of the run), send requests through handle(), and show picks, "
        "latencies and breaker states in a live table.",
    )
    p.add_argument("--requests", type=int, default=300, help="requests to send (default 300)")
    p.add_argument(
        "--strategy",
        default="intelligent",
        choices=ROUTING_STRATEGIES,
        help="routing strategy (default intelligent)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds to spread the requests over"
    )
    p.set_defaults(func=run)


@dataclass
class DemoStats:
    """What the demo saw: answer latencies per node and request outcomes."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    ok: int = 0
    failed: int = 0
    retried: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def build_demo(
    strategy: str, seed: int, duration: float, clock: Clock | None = None
) -> PerformanceOrchestrator:
    """The orchestrator and nodes of the demo (breakers reopen fast so probes show); the
    nodes and the breakers run on ``clock`` (the real one by default)."""
    from .orchestrator import PerformanceOrchestrator
    from .resilience import BreakerSettings
    from .routing import NodeSpec
    from .upstreams import CallableUpstream

    clock = clock or SystemClock()
    rng = random.Random(seed)
    start = clock.monotonic()

    def handler(speed: float, fails_until: float) -> Any:
        async def answer(node: NodeSpec, request: AIRequest) -> dict[str, str]:
            await clock.sleep(speed * rng.uniform(0.6, 1.6))
            if clock.monotonic() - start < fails_until * duration:
                raise UpstreamError(node.id, "simulated outage (HTTP 503)", status=503)
            return {"node": node.id}

        return answer

    upstream = CallableUpstream(
        per_node={name: handler(speed, until) for name, speed, until in DEMO_NODES}
    )
    nodes = [
        NodeSpec(name, models=frozenset({"demo-model"}), max_concurrency=4)
        for name, _, _ in DEMO_NODES
    ]
    return PerformanceOrchestrator(
        load_balancing=strategy,
        nodes=nodes,
        upstream=upstream,
        breaker_settings=BreakerSettings(failure_threshold=3, reset_timeout=max(0.2, duration / 8)),
        rng=random.Random(seed),
        clock=clock,
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ``values`` by linear interpolation."""
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def render(perf: PerformanceOrchestrator, stats: DemoStats, sent: int, total: int) -> Any:
    """The live table."""
    from rich.table import Table

    table = Table(title=f"prsm-perf demo — strategy {perf.balancer.strategy}")
    for col in ("node", "picks", "ok", "failed", "p50 ms", "p99 ms", "busy", "score",
                "breaker"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("node", "breaker") else "right")
    reg = perf.metrics.registry
    for entry in perf.registry.entries():
        lat = stats.latencies.get(entry.id, [])
        picks = reg.get_sample_value("prsm_node_picks_total", {"node": entry.id}) or 0.0
        fails = reg.get_sample_value("prsm_node_failures_total", {"node": entry.id}) or 0.0
        state = perf.breakers.get(entry.id).state.value
        colour = {"closed": "green", "half_open": "yellow", "open": "red"}[state]
        table.add_row(
            entry.id,
            f"{picks:.0f}",
            str(len(lat)),
            f"{fails:.0f}",
            f"{percentile(lat, 50) * 1000:.1f}" if lat else "-",
            f"{percentile(lat, 99) * 1000:.1f}" if lat else "-",
            str(entry.in_flight),
            f"{perf.balancer.intelligent_score(entry.id):.3f}",
            f"[{colour}]{state}[/{colour}]",
        )
    table.caption = (
        f"sent {sent}/{total} · ok {stats.ok} · failed {stats.failed} · "
        f"answered after a retry {stats.retried}"
    )
    return table


async def run_demo(
    requests: int,
    strategy: str,
    seed: int,
    duration: float,
    console: Any,
    *,
    clock: Clock | None = None,
) -> DemoStats:
    """Send ``requests`` requests in bursts of :data:`BURST` spread evenly over ``duration``
    seconds of ``clock`` (bursts fill the fast node, so the others get picked too); show the
    live table."""
    from rich.live import Live

    from .types import AIRequest

    clock = clock or SystemClock()
    perf = build_demo(strategy, seed, duration, clock)
    stats = DemoStats()
    bursts = max(1, -(-requests // BURST))
    gap = duration / bursts

    async def one(i: int) -> None:
        try:
            result = await perf.handle(AIRequest(model="demo-model", payload={"n": i}))
        except PRSMError as exc:
            stats.failed += 1
            name = type(exc).__name__
            stats.errors[name] = stats.errors.get(name, 0) + 1
            return
        stats.ok += 1
        if result.attempts > 1:
            stats.retried += 1
        assert result.node_id is not None
        stats.latencies.setdefault(result.node_id, []).append(result.timings["upstream"])

    tasks: set[asyncio.Task[None]] = set()
    async with perf:
        with Live(render(perf, stats, 0, requests), console=console, refresh_per_second=8) as live:
            begin = clock.monotonic()
            for b in range(bursts):
                first = b * BURST
                for i in range(first, min(requests, first + BURST)):
                    task = asyncio.create_task(one(i))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await clock.sleep(begin + (b + 1) * gap - clock.monotonic())
                live.update(render(perf, stats, min(requests, first + BURST), requests))
            while tasks:
                await asyncio.gather(*tasks)
            live.update(render(perf, stats, requests, requests))
    return stats


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    if args.requests < 1:
        raise PRSMError("--requests must be at least 1")
    if not args.duration > 0:
        raise PRSMError("--duration must be > 0 seconds")
    console = Console()
    stats = asyncio.run(run_demo(args.requests, args.strategy, args.seed, args.duration, console))
    console.print()
    console.print(summary(stats))
    return 0


def summary(stats: DemoStats) -> str:
    """The line printed when the demo ends."""
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(stats.errors.items())) or "none"
    return (
        f"done: {stats.ok} answered, {stats.failed} failed ({errors}); "
        f"{stats.retried} answered on a next node after a failure"
    )
