"""Instructions per request of ``prsm-perf serve`` (callgrind), and its CPU time per request.

A deterministic cost figure for the gateway's request path, for comparing two builds of the
same code (e.g. pure Python against the mypyc-compiled modules) on a noisy shared machine:

* ``instructions`` (the default): the upstream simulator runs as usual; one gateway process
  (one worker, no local embedding model, the once-a-second loops off: ``monitoring.enabled:
  false``, ``orchestrator.monitoring_interval`` an hour) runs under ``valgrind --tool=callgrind
  --instr-atstart=no --separate-threads=yes``. One keep-alive connection sends ``--warmup``
  requests, then ``callgrind_control -i on`` and ``--zero``, ``--requests`` requests, a dump,
  ``-i off``. Reported: instructions per request of the event-loop (main) thread and of all
  threads together. Non-streamed and streamed chat completions (16 tokens), each in its own
  gateway process. Needs ``valgrind`` (Debian ``valgrind``).
* ``--cpu``: the gateway alone on one CPU, the simulator and a closed-loop load generator
  (``benchmarks._loadgen``, 32 connections) on another; CPU seconds of the gateway process
  (``/proc/PID/stat``, all threads) per answered request over ``--duration`` seconds, median of
  ``--rounds``. Noisy where other work shares the machine; shows only a large effect.

* ``--config-monitoring off|on``: instead of that quiet config, the monitoring benchmark's
  peak configs (``benchmarks._monitoring_peak.peak_config``: monitoring, history and alert
  rules all off, or fully on as ``deploy/prsm-monitoring.example.yaml``), the loops every
  ``--interval`` seconds (default 3600: they run once, at start, and the count is the
  requests' alone; ``--interval 1``: as deployed). ``--idle S`` then counts ``S`` seconds
  without requests too: the loops' instructions a second, and the requests' count less that
  rate over the counted window's wall time. With ``on`` the findings of the open dashboard
  are asked for once before the warm-up, as in the peak part (they load scipy).
  ``--cache-sim`` also simulates the caches: the event-loop thread's I1, D1 and last-level
  misses a request (a model of a cache, not this CPU's).

``python -m benchmarks.instructions [--cpu] [--modes non-stream,stream] [--config-monitoring
quiet|off|on] [--interval S] [--idle S] [--cache-sim] [--json FILE]``
prints a table, and the figures as JSON with ``--json``. It is not a row of BENCHMARKS.md and
writes nothing under ``benchmarks/results/`` unless told to.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from prsm.performance.dashboard._findings import FINDINGS_SINCE
from prsm.performance.dashboard._page import FINDINGS_ROUTE
from prsm.performance.routing._settings import BalancerSettings

from ._gateway_peers import MODEL, Server, free_port, load, pin, start_sim, tree_cpu
from ._monitoring_peak import peak_config

MODES = ("non-stream", "stream")
#: the background loops' period that keeps them out of a count (they run once, at start)
QUIET_INTERVAL = 3600.0
QUIET = {  # no once-a-second loops in the gateway under test: only requests cost instructions
    "monitoring": {"enabled": False},
    "orchestrator": {"monitoring_interval": QUIET_INTERVAL},
    # the node's load, polled once at start, counts as fresh as long (see ``fresh_reading``)
    "routing": {"signal_ttl": QUIET_INTERVAL},
}
#: the gateway configs ``--config-monitoring`` chooses from
CONFIGS = ("quiet", "off", "on")


def body(stream: bool) -> bytes:
    """The gateway benchmark's request: a short chat completion of 16 tokens."""
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello. " * 8}],
               "max_tokens": 16, "stream": stream}  # fmt: skip
    return json.dumps(request).encode()


def gateway_config(tmp: Path, sim_port: int, port: int, monitoring: str = "quiet",
                   interval: float = QUIET_INTERVAL) -> Path:  # fmt: skip
    """A one-node gateway config in front of the simulator: ``quiet`` with the background
    loops off; ``off`` and ``on`` the monitoring benchmark's peak configs
    (:func:`benchmarks._monitoring_peak.peak_config`: monitoring, history and alerts all off,
    or as ``deploy/prsm-monitoring.example.yaml``), the loops every ``interval`` seconds.
    Either way the node's polled load stays fresh between polls (:func:`fresh_reading`)."""
    if monitoring not in CONFIGS:
        raise ValueError(f"monitoring: choose from {', '.join(CONFIGS)}, got {monitoring!r}")
    cfg: dict[str, Any]
    if monitoring == "quiet":
        cfg = {
            "nodes": [{"id": "sim", "url": f"http://127.0.0.1:{sim_port}/v1", "models": [MODEL]}],
            "gateway": {"port": port},
            "workers": {"enabled": False},
            **QUIET,
        }
    else:
        cfg = peak_config(sim_port, port, tmp, on=monitoring == "on")
        cfg["orchestrator"] = {"monitoring_interval": interval}
        cfg["routing"] = fresh_reading(interval)
    path = tmp / "prsm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def fresh_reading(interval: float) -> dict[str, float]:
    """The routing settings that keep the node's polled load a fresh reading between polls
    ``interval`` seconds apart, as it is when polled every second: otherwise, with the loops
    once an hour, it ages past ``signal_ttl`` during a count and each request's routing
    weighs its age (about 3 % more instructions a request, by how long the run took)."""
    return {"signal_ttl": max(interval, BalancerSettings().signal_ttl)}


def serve_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "prsm.performance.cli", "serve", "--config", str(config),
            "--workers", "1"]  # fmt: skip


def send(conn: http.client.HTTPConnection, payload: bytes, count: int) -> None:
    """``count`` POSTs of ``payload`` one after another on one keep-alive connection; each
    answer read to its end and checked."""
    for _ in range(count):
        conn.request("POST", "/v1/chat/completions", body=payload,
                     headers={"Content-Type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200 or not data:
            raise RuntimeError(f"the gateway answered {resp.status}: {data[:300]!r}")


def parse_events(text: str) -> dict[str, int]:
    """Each event's total in one callgrind dump (named by its ``events:`` line, counted on its
    ``summary:`` or ``totals:`` line, trailing zeros left out): ``Ir``, and with
    ``--cache-sim=yes`` the data reads and writes and the simulated caches' misses."""
    names: list[str] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith(("summary:", "totals:")):
            values = [int(v) for v in line.split()[1:]]
            if not names or len(values) > len(names):
                raise ValueError(f"the callgrind dump's events {names} do not match {line!r}")
            return dict(zip(names, values + [0] * (len(names) - len(values)), strict=True))
    raise ValueError("no summary: or totals: line in the callgrind dump")


def parse_totals(text: str) -> int:
    """The instruction count of one callgrind dump."""
    return parse_events(text)["Ir"]


def misses(events: dict[str, int]) -> dict[str, int]:
    """The simulated first-level (instruction and data) and last-level cache misses of a dump
    counted with ``--cache-sim=yes``."""
    return {"I1": events["I1mr"], "D1": events["D1mr"] + events["D1mw"],
            "LL": events["ILmr"] + events["DLmr"] + events["DLmw"]}  # fmt: skip


def thread_counts(out_dir: Path, pid: int, dump: int) -> dict[int, int]:
    """Instructions of dump number ``dump`` of process ``pid``, per valgrind thread number
    (1: the main thread, which runs the event loop)."""
    counts: dict[int, int] = {}
    for path in out_dir.glob(f"callgrind.out.{pid}.{dump}-*"):
        tid = int(path.name.rsplit("-", 1)[1])
        counts[tid] = parse_totals(path.read_text(errors="replace"))
    if not counts:
        raise RuntimeError(f"callgrind wrote no dump {dump} of process {pid} in {out_dir}")
    return counts


def callgrind_control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True,
                   timeout=120)  # fmt: skip


def count_instructions(sim: Server, out_dir: Path, stream: bool, *, warmup: int, requests: int,
                       monitoring: str = "quiet", interval: float = QUIET_INTERVAL,
                       idle: float = 0.0, cache_sim: bool = False) -> dict[str, Any]:  # fmt: skip
    """One gateway under callgrind: instructions per request after ``warmup`` requests; its
    dumps (``callgrind_annotate`` reads them) and config are left in ``out_dir``. With
    ``idle`` seconds, then a second count over that long without requests: the background
    loops' instructions a second, and the requests' count less that background over the
    counted window's wall time (``net``). With ``monitoring`` ``on`` the dashboard's findings
    are asked for once before the warm-up, as the peak part's open page does (they load scipy
    into the gateway). With ``cache_sim``: the event-loop thread's simulated cache misses a
    request too."""
    port = free_port()
    config = gateway_config(out_dir, sim.port, port, monitoring, interval)
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
           f"--cache-sim={'yes' if cache_sim else 'no'}",
           f"--callgrind-out-file={out_dir}/callgrind.out.%p", *serve_cmd(config)]  # fmt: skip
    server = Server(cmd, port, "/readyz", timeout=300.0)
    pid = server.proc.pid
    payload = body(stream)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        if monitoring == "on":
            conn.request("GET", f"{FINDINGS_ROUTE}?since={FINDINGS_SINCE}")
            answer = conn.getresponse()
            if answer.status != 200:
                raise RuntimeError(f"the findings answered {answer.status}: {answer.read()!r}")
            answer.read()
        send(conn, payload, warmup)
        callgrind_control(pid, "-i", "on")
        callgrind_control(pid, "--zero")
        t0 = time.monotonic()
        send(conn, payload, requests)
        callgrind_control(pid, "--dump")
        wall = time.monotonic() - t0
        if idle > 0:
            callgrind_control(pid, "--zero")
            t0 = time.monotonic()
            time.sleep(idle)
            callgrind_control(pid, "--dump")
            idle = time.monotonic() - t0
        callgrind_control(pid, "-i", "off")
        conn.close()
    finally:
        server.stop()
    counts = thread_counts(out_dir, pid, 1)
    row: dict[str, Any] = {
        "loop_thread": counts.get(1, 0) / requests,
        "all_threads": sum(counts.values()) / requests,
        "threads": len(counts),
        "wall_s": wall,
    }
    if cache_sim:
        loop = parse_events(Path(f"{out_dir}/callgrind.out.{pid}.1-01").read_text())
        row["loop_misses"] = {k: v / requests for k, v in misses(loop).items()}
    if idle > 0:
        quiet = thread_counts(out_dir, pid, 2)
        row["idle_s"] = idle
        row["idle_loop_per_s"] = quiet.get(1, 0) / idle
        row["idle_all_per_s"] = sum(quiet.values()) / idle
        row["net_loop_thread"] = row["loop_thread"] - row["idle_loop_per_s"] * wall / requests
        row["net_all_threads"] = row["all_threads"] - row["idle_all_per_s"] * wall / requests
    return row


def cpu_per_request(sim: Server, tmp: Path, stream: bool, *, duration: float, rounds: int,
                    monitoring: str = "quiet",
                    interval: float = QUIET_INTERVAL) -> dict[str, Any]:  # fmt: skip
    """The gateway on one CPU; CPU seconds per answered request at a closed-loop peak."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--cpu needs two CPUs (the gateway alone on one)")
    port = free_port()
    config = gateway_config(tmp, sim.port, port, monitoring, interval)
    server = Server(serve_cmd(config), port, "/readyz")
    path = tmp / ("stream.json" if stream else "plain.json")
    path.write_bytes(body(stream))
    per_request: list[float] = []
    try:
        pin(server.proc.pid, {cpus[0]})
        pin(sim.proc.pid, {cpus[1]})
        load(port, path, rate=0, duration=2.0, warmup=0, cpus={cpus[1]})  # warm up
        for _ in range(rounds):
            used = tree_cpu(server.proc.pid)
            res = load(port, path, rate=0, duration=duration, warmup=0, cpus={cpus[1]})
            after = tree_cpu(server.proc.pid)
            if used is None or after is None:
                raise RuntimeError(f"the gateway ended:\n{server.output()[-3000:]}")
            if sum(res["errors"].values()) or not res["total_completed"]:
                raise RuntimeError(f"the gateway failed requests: {res['errors']}")
            per_request.append((after - used) / res["total_completed"])
    finally:
        server.stop()
    return {"cpu_us": statistics.median(per_request) * 1e6,
            "rounds_us": [round(x * 1e6, 1) for x in per_request]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.instructions",
                                description=(__doc__ or "").split("\n\n")[0])  # fmt: skip
    p.add_argument("--modes", default="non-stream,stream",
                   help="comma-separated, of non-stream,stream (default: both)")  # fmt: skip
    p.add_argument("--requests", type=int, default=1000, help="counted requests (default 1000)")
    p.add_argument("--warmup", type=int, default=100, help="requests before counting (100)")
    p.add_argument(
        "--cpu",
        action="store_true",
        help="measure CPU time per request at peak instead of instructions",
    )
    p.add_argument("--duration", type=float, default=5.0, help="--cpu: seconds a round (5)")
    p.add_argument("--rounds", type=int, default=3, help="--cpu: rounds, median taken (3)")
    p.add_argument("--config-monitoring", choices=CONFIGS, default="quiet",
                   help="the gateway's config: quiet (the default: monitoring off, the loops "
                   "out of the count), or the monitoring benchmark's peak config with "
                   "monitoring off or fully on (history, alert rules)")  # fmt: skip
    p.add_argument("--interval", type=float, default=QUIET_INTERVAL,
                   help="off/on: seconds between the background loops' runs (default 3600: "
                   "they run once, at start; 1: as deployed)")  # fmt: skip
    p.add_argument("--idle", type=float, default=0.0,
                   help="then count this many seconds without requests: the loops' "
                   "instructions a second, and the requests' count net of them")  # fmt: skip
    p.add_argument("--cache-sim", action="store_true",
                   help="also simulate the caches: the loop thread's misses a request")  # fmt: skip
    p.add_argument("--label", default="", help="a name for this build in the output")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep callgrind's dumps here, a folder per mode (default: thrown away)",
    )
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        p.error(f"--modes: choose from {','.join(MODES)}, got {args.modes!r}")
    if args.requests < 1 or args.warmup < 0:
        p.error("--requests must be >= 1 and --warmup >= 0")
    if not args.interval > 0 or args.idle < 0:
        p.error("--interval must be > 0 seconds and --idle >= 0")
    if args.config_monitoring == "quiet" and args.interval != QUIET_INTERVAL:
        p.error("--interval applies to --config-monitoring off or on")
    if not args.cpu and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        p.error("valgrind and callgrind_control are needed (Debian: apt-get install valgrind)")
    started = time.time()
    rows: dict[str, dict[str, Any]] = {}
    sim = start_sim()
    try:
        with tempfile.TemporaryDirectory(prefix="prsm-instr-") as tmp:
            loops: dict[str, Any] = {"monitoring": args.config_monitoring,
                                     "interval": args.interval}  # fmt: skip
            for mode in modes:
                where = (args.keep or Path(tmp)) / mode
                where.mkdir(parents=True)
                stream = mode == "stream"
                if args.cpu:
                    rows[mode] = cpu_per_request(
                        sim, where, stream, duration=args.duration, rounds=args.rounds, **loops
                    )
                else:
                    rows[mode] = count_instructions(
                        sim, where, stream, warmup=args.warmup, requests=args.requests,
                        idle=args.idle, cache_sim=args.cache_sim, **loops,
                    )  # fmt: skip
    finally:
        sim.stop()
    compiled = compiled_modules()
    report = {"label": args.label, "when": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
              "what": "cpu" if args.cpu else "instructions", "compiled_modules": compiled,
              "config_monitoring": args.config_monitoring, "interval_s": args.interval,
              "load_average": list(os.getloadavg()), "rows": rows}  # fmt: skip
    print(table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def compiled_modules() -> int:
    """How many of the package's modules this interpreter imports as compiled extensions."""
    import prsm.performance

    root = Path(prsm.performance.__file__).parent
    return sum(1 for _ in root.rglob("*.so"))


def table(report: dict[str, Any]) -> str:
    lines = [f"{report['label'] or 'this build'} ({report['when']} UTC; "
             f"{report['compiled_modules']} compiled modules; config "
             f"{report['config_monitoring']}, loops every {report['interval_s']:g} s)"]  # fmt: skip
    for mode, row in report["rows"].items():
        if report["what"] == "cpu":
            lines.append(f"  {mode:<11} {row['cpu_us']:8.1f} us CPU / request  "
                         f"(rounds: {row['rounds_us']})")  # fmt: skip
        else:
            lines.append(f"  {mode:<11} {row['loop_thread'] / 1e3:8.1f}k instructions / request "
                         f"(event-loop thread); {row['all_threads'] / 1e3:.1f}k all "
                         f"{row['threads']} threads; {row['wall_s']:.1f} s")  # fmt: skip
            if "loop_misses" in row:
                lines.append(
                    f"  {'':<11} simulated cache misses / request (event-loop thread): "
                    + ", ".join(f"{k} {v:.0f}" for k, v in row["loop_misses"].items())
                )
            if "idle_s" in row:
                lines.append(f"  {'':<11} idle {row['idle_loop_per_s'] / 1e3:8.1f}k instructions "
                             f"/ s (event-loop thread), {row['idle_all_per_s'] / 1e3:.1f}k all; "
                             f"net of it {row['net_loop_thread'] / 1e3:.1f}k / request "
                             f"(event-loop thread), {row['net_all_threads'] / 1e3:.1f}k all"
                             )  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
