"""Benchmark ``resilience``: what clients see while upstreams and services fail, through our
gateway and through LiteLLM's proxy (its Router, with cooldowns), same faults, same load.

Four upstream simulators (``prsm-perf upstream-sim``, changed at run time through their
``/_control`` API) serve the model behind each gateway; an open-loop client sends chat
requests (every second one streamed, each prompt unique so no cache answers) at a fixed rate
and checks every answer whole. The faults come one after another, each in its own phase:

* ``down``: simulator A is killed (SIGKILL; connections refused) for 30 s, then restarted;
* ``slow``: B answers 10× slower;
* ``errors``: C answers 500s, then 429s with ``Retry-After``;
* ``truncate``: D cuts every answer and stream in the middle;
* ``redis``: the Redis behind the caches is killed, and restarted halfway through;
* ``disk``: the file system of the L3 (content-addressed) store, a small tmpfs, is filled;
* ``worker`` (ours, with ``--workers``): a local embedding worker is killed mid-batch while
  embedding requests flow (LiteLLM has no local models: not applicable).

Figures per phase and overall: success rate, p50/p99 of whole answers (from when each
request was due), requests lost (no whole answer: refused, timed out, or a stream cut), and
the time for a breaker to open (C stops getting requests once it fails) and to close (A gets
requests again once it is back), both read from the simulators' own counters, so ours and
LiteLLM's are measured the same way. Both gateways get the same thresholds: three failures,
five seconds (our ``breaker.failure_threshold``/``reset_timeout``, LiteLLM's
``allowed_fails``/``cooldown_time``).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks._faults import (
    Load,
    Outcome,
    Proc,
    Redis,
    SmallDisk,
    control,
    kill_one_worker,
    start_litellm,
    start_ours,
    start_sim,
    summarize,
)
from benchmarks._harness import Report, parser

GOAL = (
    "success >= 99.9 %, p99 <= 2x the healthy p99, nothing lost, breaker opens within its "
    "threshold and closes within one probe of recovery; better than LiteLLM on each figure"
)
LATENCY = 0.02  # the simulators' answer time (and time to first token), seconds
THRESHOLD, RESET = 3, 5.0  # failures to open a breaker / seconds before it probes
PROBE_INTERVAL = 0.5  # ours: seconds between probes after a failed one (breaker.probe_interval)
#: (due, latency, outcome) of every request, per target: what --plot draws
TIMELINE: dict[str, list[tuple[float, float, str]]] = {}


@dataclass
class Phase:
    """A stretch of the run with one fault. ``start``/``middle``/``end`` get the phase's
    victim: for an upstream fault, the simulator that served most requests in the last two
    seconds (so the fault hits a node in use, whatever the gateway's routing), else ``None``."""

    name: str
    seconds: float
    fault: str
    start: Callable[[Proc | None], Any] | None = None
    middle: Callable[[Proc | None], Any] | None = None  # run halfway through
    end: Callable[[Proc | None], Any] | None = None
    upstream: bool = False  # picks a victim among the simulators
    t0: float = 0.0  # set when it runs: seconds from the start of the load
    victim: str | None = None
    recovered: float | None = None  # when its end action returned (seconds from the start)


class Bench:
    def __init__(self, args: Any, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.sims = {n: start_sim(n, latency=LATENCY) for n in "ABCD"}
        self.redis = Redis(tmp)
        self.redis.start()
        self.disk = SmallDisk()
        self.notes: list[str] = []
        if not self.disk.mounted:
            self.notes.append(f"disk-full fault skipped: {self.disk.why}")

    def close(self) -> None:
        for sim in self.sims.values():
            sim.stop()
        self.redis.stop()
        self.disk.close()

    # --- the schedule
    def phases(self, gateway: Proc | None, quick: bool) -> list[Phase]:
        scale = 0.15 if quick else self.args.scale

        def secs(full: float) -> float:
            return max(2.0, round(full * scale, 1))

        def sim(proc: Proc | None) -> Proc:
            assert proc is not None
            return proc

        phases = [
            Phase("healthy", secs(20), "none"),
            Phase("down", 4.0 if quick else secs(30), "killed, restarted at the end", upstream=True,
                  start=lambda v: sim(v).kill(), end=lambda v: sim(v).restart()),
            Phase("slow", secs(20), "10x slower", upstream=True,
                  start=lambda v: control(sim(v), latency=10 * LATENCY, ttft=10 * LATENCY),
                  end=lambda v: control(sim(v), latency=LATENCY, ttft=LATENCY)),
            Phase("errors", secs(30), "500s, then 429 with Retry-After", upstream=True,
                  start=lambda v: control(sim(v), error_rate=1.0, error_kinds=["500"]),
                  middle=lambda v: control(sim(v), error_kinds=["429"]),
                  end=lambda v: control(sim(v), error_rate=0.0)),
            Phase("truncate", secs(20), "cuts answers and streams midway", upstream=True,
                  start=lambda v: control(sim(v), error_rate=1.0, error_kinds=["truncate"]),
                  end=lambda v: control(sim(v), error_rate=0.0)),
            Phase("redis", secs(20), "Redis killed, restarted halfway",
                  start=lambda v: self.redis.kill(), middle=lambda v: self.redis.start()),
            Phase("disk", secs(20), "the L3 store's file system full",
                  start=(lambda v: self.disk.fill()) if self.disk.mounted else None,
                  end=lambda v: self.disk.free()),
        ]  # fmt: skip
        if self.args.workers and gateway is not None:
            phases.append(Phase("worker", secs(20), "a local model worker killed mid-batch",
                                middle=lambda v: self._kill_worker(gateway)))  # fmt: skip
        phases.append(Phase("recovery", secs(15), "none"))
        keep = self.args.phases
        if keep:  # healthy (the reference p99) and recovery always run
            phases = [p for p in phases if p.name in keep or p.name in ("healthy", "recovery")]
        return phases

    def _kill_worker(self, gateway: Proc) -> None:
        pid = kill_one_worker(gateway.pid)
        if pid is None:
            self.notes.append("worker fault: the gateway had no local worker to kill")

    # --- one target under the schedule
    async def run(self, name: str, gateway: Proc, *, embeddings: bool) -> dict[str, Any]:
        phases = self.phases(gateway if embeddings else None, self.args.quick)
        total = sum(p.seconds for p in phases)
        url = f"http://127.0.0.1:{gateway.port}"
        chat = Load(url, self.args.rate, total, stream_every=2)
        embed = Load(url, self.args.embed_rate, total, embeddings=True) if embeddings else None
        counts: Counts = []
        states: States = []
        for load in (chat, embed):
            if load is not None:
                await load.open()
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.2
        stop = asyncio.Event()
        admin = url if name == "prsm" else None
        poller = asyncio.create_task(self._poll(counts, states, t0, admin, stop))
        runner = asyncio.create_task(self._schedule(phases, t0, counts))
        loads = [chat.run(t0)] + ([embed.run(t0)] if embed else [])
        await asyncio.gather(*loads)
        await runner
        stop.set()
        await poller
        return {"phases": phases, "chat": chat.outcomes, "states": states,
                "embed": embed.outcomes if embed else [], "counts": counts}  # fmt: skip

    async def _act(self, phase: Phase, step: str, victim: Proc | None) -> None:
        """Run one fault action; one that fails is reported (printed and in the notes)."""
        action = getattr(phase, step)
        if action is None:
            return
        try:
            await asyncio.to_thread(action, victim)
        except (OSError, RuntimeError, TimeoutError, httpx.HTTPError) as exc:
            note = f"phase {phase.name}: its {step} action failed: {type(exc).__name__}: {exc}"
            print(note, flush=True)
            self.notes.append(note)

    async def _schedule(self, phases: list[Phase], t0: float, counts: Counts) -> None:
        loop = asyncio.get_running_loop()
        at = 0.0
        for phase in phases:
            phase.t0 = at
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            victim = None
            if phase.upstream:
                phase.victim = busiest(counts, loop.time() - t0)
                victim = self.sims[phase.victim]
            await self._act(phase, "start", victim)
            if phase.middle:
                await asyncio.sleep(max(0.0, t0 + at + phase.seconds / 2 - loop.time()))
                await self._act(phase, "middle", victim)
            at += phase.seconds
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            await self._act(phase, "end", victim)
            phase.recovered = loop.time() - t0
            print(f"  phase {phase.name} ({phase.victim or '-'}) done at "
                  f"{loop.time() - t0:.1f}s", flush=True)  # fmt: skip

    async def _poll(self, counts: Counts, states: States, t0: float, admin: str | None,
                    stop: asyncio.Event) -> None:  # fmt: skip
        """Every 0.1 s: each simulator's count of model calls (``None`` while it is down),
        and with ``admin`` our gateway's breaker states."""
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=0.5) as client:
            while not stop.is_set():
                for name, sim in self.sims.items():
                    try:
                        r = await client.get(f"http://127.0.0.1:{sim.port}/_control")
                        paths = r.json()["stats"]["by_path"]  # model calls only
                        n: int | None = int(paths.get("/v1/chat/completions", 0))
                    except (httpx.HTTPError, ValueError, KeyError):
                        n = None  # down
                    counts.append((loop.time() - t0, name, n))
                if admin is not None:
                    try:
                        r = await client.get(f"{admin}/admin/breakers")
                        states.append((loop.time() - t0, r.json()["breakers"]))
                    except (httpx.HTTPError, ValueError, KeyError) as exc:
                        states.append((loop.time() - t0, {"error": str(exc)}))
                await asyncio.sleep(0.1)


Counts = list[tuple[float, str, int | None]]
States = list[tuple[float, dict[str, str]]]


def busiest(counts: Counts, now: float, window: float = 2.0) -> str:
    """The simulator that served the most model calls in the last ``window`` seconds."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for t, name, n in counts:
        if n is None or t < now - window:
            continue
        first.setdefault(name, n)
        last[name] = n
    served = {name: last[name] - first[name] for name in last}
    return max(sorted(served), key=lambda name: served[name]) if served else "A"


def recovered_at(down: Phase) -> float:
    """When the ``down`` victim was back: its restart returned (it answered ``/healthz``),
    else the phase's end."""
    return down.recovered if down.recovered is not None else down.t0 + down.seconds


def breaker_times(phases: list[Phase], counts: Counts) -> tuple[float | None, float | None]:
    """(open, close), read from the simulators' counters: how long the failing node of the
    ``errors`` phase kept getting calls (until its last call before a second without any),
    and how long the node killed in ``down`` took, from the moment it answered again, to
    get a model call (``None`` for a phase left out)."""
    by_name = {p.name: p for p in phases}
    errors, down = by_name.get("errors"), by_name.get("down")
    opened = closed = None
    if errors is not None:
        series = [(t, n) for t, s, n in counts if s == errors.victim and n is not None
                  and errors.t0 <= t <= errors.t0 + errors.seconds]  # fmt: skip
        last_change = errors.t0
        for (t, n), (_, prev) in zip(series[1:], series[:-1], strict=False):
            if n != prev:
                last_change = t
            elif t - last_change >= 1.0:
                opened = last_change - errors.t0
                break
    if down is not None:
        back = recovered_at(down)
        after = [t for t, s, n in counts
                 if s == down.victim and n is not None and n > 0 and t >= back]  # fmt: skip
        closed = after[0] - back if after else None
    return opened, closed


def admin_breaker_times(phases: list[Phase], states: States) -> tuple[float | None, float | None]:
    """(open, close) from our gateway's own breaker states: the ``errors`` victim's breaker
    open after the fault began, and the ``down`` victim's closed again after it was back."""
    by_name = {p.name: p for p in phases}
    errors, down = by_name.get("errors"), by_name.get("down")
    opened = closed = None
    if errors is not None:
        victim = errors.victim or ""
        opened = next((t - errors.t0 for t, s in states
                       if t >= errors.t0 and s.get(victim) == "open"), None)  # fmt: skip
    if down is not None:
        back = recovered_at(down)
        at_back = next((s.get(down.victim or "") for t, s in states if t >= back), None)
        if at_back != "closed":  # else it never opened while the node was down
            gone = down.victim or ""
            closed = next((t - back for t, s in states
                           if t >= back and s.get(gone) == "closed"), None)  # fmt: skip
    return opened, closed


def rows_for(target: str, result: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    phases: list[Phase] = result["phases"]
    chat: list[Outcome] = result["chat"]
    rows = []
    for p in phases:
        inside = [o for o in chat if p.t0 <= o.due < p.t0 + p.seconds]
        fault = f"{p.victim}: {p.fault}" if p.victim else p.fault
        rows.append({"target": target, "phase": p.name, "fault": fault, **summarize(inside),
                     "slowest": slowest(inside)})  # fmt: skip
    healthy = rows[0]["p99_ms"]
    opened, closed = breaker_times(phases, result["counts"])
    overall = {"target": target, "phase": "all", "fault": "every fault above", **summarize(chat),
               "healthy_p99_ms": healthy, "breaker_open_s": opened,
               "breaker_close_s": closed}  # fmt: skip
    if result["states"]:
        overall["own_breaker_open_s"], overall["own_breaker_close_s"] = admin_breaker_times(
            phases, result["states"]
        )
    worst = max((r["p99_ms"] or 0) for r in rows)
    overall["worst_phase_p99_ms"] = worst
    overall["worst_p99_vs_healthy"] = worst / healthy if healthy else None
    rows.append(overall)
    if result["embed"]:
        rows.append({"target": target, "phase": "embeddings (all)",
                     "fault": "a local worker killed mid-batch",
                     **summarize(result["embed"])})  # fmt: skip
    return rows, overall


def slowest(outcomes: list[Outcome], n: int = 4) -> str:
    """The ``n`` slowest whole answers: when due (s), ms, stream or unary, the node."""
    worst = sorted((o for o in outcomes if o.result == "ok"), key=lambda o: -o.latency)[:n]
    return ", ".join(f"{o.due:.1f}s {o.latency * 1e3:.0f}ms {'S' if o.stream else 'U'}"
                     f"{'@' + o.node if o.node else ''}" for o in worst)  # fmt: skip


def outcome_counts(port: int, family: str) -> dict[str, float]:
    """One of our gateway's ``{outcome}`` counters (``prsm_orchestrator_hedges_total``,
    ``prsm_orchestrator_stream_resumes_total``) by outcome, from its ``/metrics``."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(family + "{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = TIMELINE
    fig, axes = plt.subplots(len(series), 1, figsize=(11, 3.2 * len(series)), squeeze=False)
    colours = {"ok": "tab:green", "failed": "tab:orange", "lost": "tab:red"}
    for ax, (target, points) in zip(axes[:, 0], series.items(), strict=True):
        for kind, colour in colours.items():
            xs = [p[0] for p in points if p[2] == kind]
            ys = [max(p[1], 1e-4) * 1e3 for p in points if p[2] == kind]
            ax.scatter(xs, ys, s=4, c=colour, label=f"{kind} ({len(xs)})")
        for phase in report.extra.get("phases", []):
            ax.axvline(phase["t0"], color="grey", lw=0.5)
            ax.text(phase["t0"], 0.95, phase["name"], transform=ax.get_xaxis_transform(),
                    fontsize=7, va="top")  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title(target)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = parser("resilience", __doc__ or "")
    p.add_argument("--rate", type=float, default=None, help="chat requests per second")
    p.add_argument("--embed-rate", type=float, default=4.0, help="embedding requests/s (ours)")
    p.add_argument("--workers", type=int, default=None,
                   help="local embedding workers in our gateway (0: no worker fault)")  # fmt: skip
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    p.add_argument("--scale", type=float, default=1.0,
                   help="phase lengths times this (0.7: a shorter full run)")  # fmt: skip
    p.add_argument("--phases", type=lambda v: set(v.split(",")), default=None,
                   help="only these fault phases, comma-separated (healthy and recovery "
                        "always run), e.g. down,slow,errors")  # fmt: skip
    args = p.parse_args()
    quick = args.quick
    args.rate = args.rate or (20.0 if quick else 10.0)
    if args.workers is None:
        args.workers = 0 if quick else 2
    use_litellm = not (quick or args.no_litellm)
    tmp = Path(tempfile.mkdtemp(prefix="prsm-bench-res-"))
    bench = Bench(args, tmp)
    report = Report("resilience", GOAL)
    overall: dict[str, dict[str, Any]] = {}
    timeline: dict[str, list[tuple[float, float, str]]] = {}
    try:
        targets = ["prsm", "litellm"] if use_litellm else ["prsm"]
        for target in targets:
            if target == "prsm":
                gw = start_ours(list(bench.sims.values()), tmp, redis=bench.redis,
                                data_dir=bench.disk.path, workers=args.workers,
                                reset_timeout=RESET, failure_threshold=THRESHOLD)  # fmt: skip
            else:
                gw = start_litellm(list(bench.sims.values()), tmp, redis=bench.redis,
                                   cooldown=RESET, allowed_fails=THRESHOLD)  # fmt: skip
            try:
                warm = Load(f"http://127.0.0.1:{gw.port}", 10.0, 1.0 if quick else 3.0)
                asyncio.run(warm.run())  # a fresh server's first requests are slower
                print(f"{target}: running the fault schedule", flush=True)
                t_start = time.time()
                result = asyncio.run(
                    bench.run(target, gw, embeddings=target == "prsm" and args.workers > 0)
                )
                print(f"{target}: done in {time.time() - t_start:.0f}s", flush=True)
                if target == "prsm":
                    report.extra["hedges"] = outcome_counts(
                        gw.port, "prsm_orchestrator_hedges_total"
                    )
                    report.extra["resumes"] = outcome_counts(
                        gw.port, "prsm_orchestrator_stream_resumes_total"
                    )
            finally:
                gw.stop()
            rows, overall[target] = rows_for(target, result)
            for row in rows:
                report.add(**row)
            timeline[target] = [(round(o.due, 3), round(o.latency, 4), o.result)
                                for o in result["chat"]]  # fmt: skip
            report.extra["phases"] = [{"name": ph.name, "t0": ph.t0, "seconds": ph.seconds,
                                       "victim": ph.victim} for ph in result["phases"]]  # fmt: skip
    finally:
        bench.close()
    ours = overall["prsm"]
    healthy = ours["healthy_p99_ms"] or 0
    meets: dict[str, bool] = {
        "success_ge_99_9pct": (ours["success_pct"] or 0) >= 99.9,
        "p99_le_2x_healthy": bool(healthy) and (ours["worst_phase_p99_ms"] or 0) <= 2 * healthy,
        "nothing_lost": ours["lost"] == 0,
        "breaker_opens": ours["breaker_open_s"] is not None,
        # one probe interval, plus the wait for the next unary request (the probe) and the
        # counters' 0.1 s polling
        "breaker_closes_within_one_probe": ours["breaker_close_s"] is not None
        and ours["breaker_close_s"] <= PROBE_INTERVAL + 0.5,
    }
    if "litellm" in overall:
        ll = overall["litellm"]

        def le(a: float | None, b: float | None) -> bool:
            return a is not None and (b is None or a <= b)

        meets["better_than_litellm"] = (
            (ours["success_pct"] or 0) >= (ll["success_pct"] or 0)
            and ours["lost"] <= ll["lost"]
            and le(ours["p99_ms"], ll["p99_ms"])
            and le(ours["breaker_open_s"], ll["breaker_open_s"])
            and le(ours["breaker_close_s"], ll["breaker_close_s"])
        )
        report.ratio_vs_peer = {
            "success_pct": (ours["success_pct"] or 0) / (ll["success_pct"] or 1),
            "p99": (ours["p99_ms"] or 0) / (ll["p99_ms"] or 1),
            "lost": ours["lost"] - ll["lost"],
        }
    report.meets_goal = meets
    report.notes.extend(bench.notes)
    if "hedges" in report.extra:
        report.notes.append(f"ours, hedges by outcome: {report.extra['hedges']}")
        report.notes.append(f"ours, stream resumes by outcome: {report.extra['resumes']}")
    report.notes.append(f"rate {args.rate} req/s chat (every 2nd streamed), simulators answer in "
                        f"{LATENCY * 1e3:.0f} ms; breakers: {THRESHOLD} failures, "
                        f"{RESET:.0f} s")  # fmt: skip
    TIMELINE.update(timeline)  # for the chart only: thousands of points, not in the JSON
    report.finish(args, plot)


if __name__ == "__main__":
    main()
