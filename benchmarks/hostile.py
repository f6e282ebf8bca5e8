"""Benchmark ``hostile``: the hostile-client suite against ``prsm-perf serve`` (our server
core) and against uvicorn (uvloop + httptools) and granian (ASGI) serving the same app, side
by side; with ``--peak``, also each one's saturated rate and CPU time per request (the
gateway benchmark's load generator and placement), which together decide whether the gateway
runs on its own server or on one of theirs.

Each case (slowloris heads and bodies, a 64 MiB URL, 1 MiB of headers, a 64 MiB body,
10,000 idle connections then a real request, a bad request in a pipeline, an HTTP/1.0
stream, ``Expect: 100-continue``, a client that stops reading a stream, a half-closed
socket, an invalid chunked body, request smuggling) is scored on four checks: the status the
client should see, the connection closed (where the case calls for it) within the cap, the
server's peak memory growth bounded (32 MiB; 256 MiB for the idle connections), and a normal
request on another connection answered meanwhile. Both servers have the same timeouts where
uvicorn or granian has one (``--timeout-keep-alive``, ``--http1-header-read-timeout``); ours
also has body and write timeouts.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import Report, parser
from benchmarks._hostile import CASES, Outcome, run_case
from benchmarks._hostile_servers import MODEL, Servers, start_servers
from benchmarks.gateway import family, load, tree_cpu

GOAL = "ours meets every check of every case, and at least every peer's score on each"


async def run_all(
    targets: dict[str, Any], cases: list[str], *, cap: float, idle: int
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for name in cases:
        kw = {"count": idle} if name == "idle_connections" else {}
        got = await run_case(name, targets, cap, **kw)
        for o in got:
            closed = "open" if o.closed_s is None else f"closed at {o.closed_s:.2f}s"
            print(f"{o.case:32} {o.target:8} {o.status:28} {closed:18} +{o.rss_mib:.1f} MiB, "
                  f"others {o.others_ok}: {o.score}/4", flush=True)  # fmt: skip
        outcomes.extend(got)
    return outcomes


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Put every thread of ``pid`` and of its direct children on ``cpus`` (granian's Rust
    runtime runs threads of its own: pinning the process alone would leave them free)."""
    for member in family(pid):
        try:
            tasks = [int(t.name) for t in Path(f"/proc/{member}/task").iterdir()]
        except OSError:
            continue  # it ended while we looked
        for tid in tasks:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                continue  # the thread ended since we looked


def peak(servers: Servers, *, rounds: int, duration: float) -> list[dict[str, Any]]:
    """Each target's saturated rate (closed loop, 32 connections) and CPU time per answered
    request, non-streaming; the server under test (every thread of it) alone on one CPU, the
    load generator and the simulator on the other (as the gateway benchmark places them);
    rounds alternate."""
    body = Path(tempfile.mkdtemp(prefix="prsm-hostile-peak-")) / "chat.json"
    messages = [{"role": "user", "content": "Say hello. " * 8}]
    body.write_text(json.dumps({"model": MODEL, "max_tokens": 16, "messages": messages}))
    cpus = sorted(os.sched_getaffinity(0))
    cpu0, cpu1 = (cpus[0], cpus[1]) if len(cpus) >= 2 else (cpus[0], cpus[0])
    rates: dict[str, list[float]] = {}
    used: dict[str, list[float]] = {}
    for r in range(rounds):
        names = list(servers.targets) if r % 2 == 0 else list(reversed(servers.targets))
        for name in names:
            for other, t in servers.targets.items():
                pin_threads(t.pid, {cpu0} if other == name else {cpu1})
            pin_threads(servers.sim.proc.pid, {cpu1})
            pid, port = servers.targets[name].pid, servers.targets[name].port
            if r == 0:  # a fresh server's first seconds are slower
                load(port, body, rate=0, duration=duration, warmup=0, cpus={cpu1})
            before = tree_cpu(pid)
            res = load(port, body, rate=0, duration=duration, warmup=0.5, cpus={cpu1})
            after = tree_cpu(pid)
            rates.setdefault(name, []).append(res["achieved"])
            if before is not None and after is not None and res["total_completed"]:
                used.setdefault(name, []).append((after - before) / res["total_completed"])
            print(f"peak round {r} {name}: {res['achieved']:.0f} req/s", flush=True)
    return [
        {
            "target": name,
            "peak_rps": statistics.median(rates[name]),
            "cpu_us_per_req": 1e6 * statistics.median(used[name]) if used.get(name) else None,
        }
        for name in servers.targets
    ]


def main() -> None:
    p = parser("hostile", __doc__ or "")
    p.add_argument("--timeout", type=int, default=None,
                   help="head/body/keep-alive timeouts of the servers, s (write: +1)")  # fmt: skip
    p.add_argument("--idle", type=int, default=None, help="idle connections to open")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated cases (default: all): {', '.join(CASES)}")  # fmt: skip
    p.add_argument("--peers", default="uvicorn,granian",
                   help="servers to run the same app on besides ours")  # fmt: skip
    p.add_argument("--peak", action="store_true",
                   help="also measure each server's peak rate and CPU per request")  # fmt: skip
    args = p.parse_args()
    peers = tuple(x for x in args.peers.split(",") if x)
    cases = args.cases.split(",") if args.cases else list(CASES)
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        p.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    timeout = args.timeout or (1 if args.quick else 2)
    idle = args.idle or (1000 if args.quick else 10_000)
    cap = 3 * timeout + 2
    tmp = Path(tempfile.mkdtemp(prefix="prsm-hostile-"))
    servers = start_servers(tmp, timeout=timeout, peers=peers)
    try:
        import uvloop

        outcomes = uvloop.run(run_all(servers.targets, cases, cap=cap, idle=idle))
        peaks = peak(servers, rounds=args.rounds or 3, duration=3.0) if args.peak else []
    finally:
        servers.stop()
    report = Report("hostile", GOAL)
    by_case: dict[str, dict[str, Outcome]] = {}
    for o in outcomes:
        report.add(**o.row())
        by_case.setdefault(o.case, {})[o.target] = o
    ratio: dict[str, Any] = {"checks": 4 * len(by_case)}
    meets = {"ours_every_check": all(c["prsm"].ok for c in by_case.values())}
    for name in servers.targets:
        ratio[f"{name}_checks_met"] = sum(c[name].score for c in by_case.values())
        if name != "prsm":
            meets[f"at_least_{name}_every_case"] = all(
                c["prsm"].score >= c[name].score for c in by_case.values()
            )
    report.ratio_vs_peer = ratio
    report.meets_goal = meets
    if peaks:
        report.extra["peak"] = peaks
        for row in peaks:
            print(f"peak {row['target']}: {row['peak_rps']:.0f} req/s, "
                  f"{row['cpu_us_per_req']:.0f} µs CPU/request", flush=True)  # fmt: skip
    report.notes.append(
        f"timeouts {timeout}s (ours: head, body, keep-alive; write {timeout + 1}s; uvicorn: "
        f"--timeout-keep-alive {timeout}; granian: --http1-header-read-timeout "
        f"{timeout * 1000} ms); each case watched for {cap}s at most (the stalled "
        f"stream {2 * cap}s); {idle:,} idle "
        "connections; both servers run the same GatewayApp from one config file in front of "
        "the same upstream simulator; uvicorn with --loop uvloop --http httptools, granian "
        "--interface asgi --loop uvloop --workers 1; memory is the server's process and its "
        "children"
    )
    report.finish(args)


if __name__ == "__main__":
    main()
