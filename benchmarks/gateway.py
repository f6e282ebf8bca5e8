"""Benchmark ``gateway``: what ``prsm-perf serve`` adds in front of an upstream, against
LiteLLM's proxy and against calling the upstream directly (the limit).

Every server runs in its own process on loopback: the upstream simulator
(``prsm-perf upstream-sim``, answering at once), our gateway (one worker), LiteLLM's proxy
(``litellm --config FILE --num_workers 1``, same upstream, warmed up first). Load comes from
a separate process (``benchmarks/_loadgen.py``: raw asyncio + httptools, keep-alive):

* **peak**: the saturated rate, closed loop over 32 connections;
* **added latency**: open loop at a fixed rate of half the target's own peak (a bounded
  queue; latency counted from when each request was due), minus the direct upstream's
  latency at the same rate; plus the gateway's own ``x-prsm-added-time`` figures.

Rounds alternate the targets; figures are medians over rounds. Non-streaming and streaming
(16 tokens as server-sent events) requests.

**Placement** (``--pin``, the default on two or more CPUs): the server under test gets CPU 0
to itself, and everything that is not under test (the load generator, and for a gateway the
simulator behind it) shares CPU 1 — so direct is the simulator on CPU 0 with the load on
CPU 1, and a gateway is the gateway on CPU 0 with the simulator and the load on CPU 1. In
production the clients and the model servers run elsewhere; unpinned, the three processes
migrate between two cores and take turns on them. ``--no-pin`` lets the kernel place them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from benchmarks._harness import Report, parser

MODEL = "bench-chat"
GOAL = (
    "added p50 <= 1 ms and p99 <= 5 ms at half our peak; peak >= 30x LiteLLM proxy's and "
    ">= 40% of direct (non-streaming)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered 200 on 127.0.0.1:{port}{path} in {timeout}s")


class Server:
    def __init__(self, args: list[str], port: int, health: str, env: dict[str, str] | None = None,
                 timeout: float = 30.0) -> None:  # fmt: skip
        self.port = port
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the server
        self.proc = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        try:
            wait_http(port, health, timeout)
        except TimeoutError:
            self.stop()
            self.log.seek(0)
            raise RuntimeError(
                f"{args[:3]} did not start:\n{self.log.read().decode()[-3000:]}"
            ) from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_sim() -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "prsm.performance.cli", "upstream-sim", "--port", str(port),
           "--models", MODEL, "--name", "bench"]  # fmt: skip
    return Server(cmd, port, "/healthz")


def start_ours(sim: Server, tmp: Path) -> Server:
    port = free_port()
    cfg = {
        "nodes": [{"id": "sim", "url": f"http://127.0.0.1:{sim.port}/v1", "models": [MODEL]}],
        "gateway": {"port": port},
        "workers": {"enabled": False},  # no local embedding model in the gateway under test
    }
    path = tmp / "prsm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "prsm.performance.cli", "serve", "--config", str(path),
           "--workers", "1"]  # fmt: skip
    return Server(cmd, port, "/readyz")


def start_litellm(sim: Server, tmp: Path) -> Server:
    port = free_port()
    cfg = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"http://127.0.0.1:{sim.port}/v1",
                    "api_key": "sk-bench",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "set_verbose": False},
    }
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exe = str(Path(sys.executable).with_name("litellm"))
    cmd = [exe, "--config", str(path), "--num_workers", "1", "--host", "127.0.0.1",
           "--port", str(port)]  # fmt: skip
    env = {
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    return Server(cmd, port, "/health/liveliness", env, timeout=120)


def family(pid: int) -> dict[int, list[str]]:
    """``pid`` and its direct children, each with its ``/proc/PID/stat`` fields after the
    command name (Linux); empty when ``pid`` has ended."""
    out: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if entry.name == str(pid) or fields[1] == str(pid):
            out[int(entry.name)] = fields
    return out


def tree_cpu(pid: int) -> float | None:
    """CPU seconds used so far by ``pid`` and its direct children."""
    procs = family(pid)
    if pid not in procs:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / tick for f in procs.values())


def pin(pid: int, cpus: set[int]) -> None:
    """Put ``pid`` and its direct children on ``cpus``."""
    for member in family(pid):
        try:
            os.sched_setaffinity(member, cpus)
        except ProcessLookupError:
            continue  # it ended since we looked


def load(port: int, body: Path, *, rate: float, duration: float, warmup: float,
         connections: int = 32, cpus: set[int] | None = None) -> dict[str, Any]:  # fmt: skip
    cmd = [sys.executable, "-m", "benchmarks._loadgen", "--url",
           f"http://127.0.0.1:{port}/v1/chat/completions", "--body", str(body),
           "--rate", str(rate), "--duration", str(duration), "--warmup", str(warmup),
           "--connections", str(connections)]  # fmt: skip
    root = Path(__file__).resolve().parent.parent

    def on_cpus() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=root, timeout=120,
                         preexec_fn=on_cpus)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def ms(v: float | None) -> float | None:
    return None if v is None else v * 1e3


def med(values: Sequence[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def main() -> None:
    p = parser("gateway", __doc__ or "")
    p.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    p.add_argument("--low-rate", type=float, default=200.0,
                   help="also measure our added latency at this rate (req/s)")  # fmt: skip
    p.add_argument("--pin", action=argparse.BooleanOptionalAction,
                   default=len(os.sched_getaffinity(0)) >= 2,
                   help="server under test on CPU 0, load and simulator on CPU 1")  # fmt: skip
    args = p.parse_args()
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    duration = args.duration or (0.5 if quick else 3.0)
    warmup = 0.2 if quick else 0.5
    use_litellm = not (quick or args.no_litellm)
    tmp = Path(tempfile.mkdtemp(prefix="prsm-bench-gw-"))
    bodies: dict[str, Path] = {}
    for mode, stream in (("non-stream", False), ("stream", True)):
        request = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello. " * 8}],
                   "max_tokens": 16, "stream": stream}  # fmt: skip
        bodies[mode] = tmp / f"{mode}.json"
        bodies[mode].write_text(json.dumps(request))
    sim = start_sim()
    servers = [sim]
    try:
        ours = start_ours(sim, tmp)
        servers.append(ours)
        targets = {"direct": sim.port, "prsm": ours.port}
        pids = {"direct": sim.proc.pid, "prsm": ours.proc.pid}
        if use_litellm:
            ll = start_litellm(sim, tmp)
            servers.append(ll)
            targets["litellm"] = ll.port
            pids["litellm"] = ll.proc.pid
        cpu0, cpu1 = sorted(os.sched_getaffinity(0))[:2] if args.pin else (0, 0)

        def place(target: str) -> set[int] | None:
            """Pin for a measurement of ``target``; the load generator's CPUs."""
            if not args.pin:
                return None
            for name, pid in pids.items():
                if name != "direct":
                    pin(pid, {cpu0} if name == target else {cpu1})
            pin(sim.proc.pid, {cpu0} if target == "direct" else {cpu1})
            return {cpu1}

        for name, port in targets.items():  # a fresh server's first seconds are slower
            cpus = place(name)
            for body in bodies.values():
                load(port, body, rate=0, duration=warmup * 6, warmup=0, cpus=cpus)
        peaks: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        lat: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in range(rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for mode, body in bodies.items():
                for name in order:
                    pid = pids[name]
                    cpus = place(name)
                    used0 = tree_cpu(pid)
                    res = load(targets[name], body, rate=0, duration=duration, warmup=warmup,
                               cpus=cpus)  # fmt: skip
                    used1 = tree_cpu(pid)
                    peaks.setdefault((name, mode), []).append(res["achieved"])
                    if used0 is not None and used1 is not None and res["total_completed"]:
                        cpu.setdefault((name, mode), []).append(
                            (used1 - used0) / res["total_completed"]
                        )
                    print(f"round {r} {mode} {name}: peak {res['achieved']:.0f} req/s", flush=True)
                for name in order:
                    if name == "direct":
                        continue
                    rate = max(1.0, statistics.median(peaks[name, mode]) / 2)
                    for who in (name, "direct"):
                        res = load(targets[who], body, rate=rate, duration=duration,
                                   warmup=warmup, cpus=place(who))  # fmt: skip
                        res["rate"] = rate
                        lat.setdefault((f"{who}@{name}", mode), []).append(res)
                for who in ("prsm", "direct"):  # well below saturation: no queueing
                    res = load(targets[who], body, rate=args.low_rate, duration=duration,
                               warmup=warmup, cpus=place(who))  # fmt: skip
                    lat.setdefault((f"{who}@low", mode), []).append(res)
        report = Report("gateway", GOAL)
        for mode in bodies:
            for name in targets:
                row: dict[str, Any] = {
                    "target": name,
                    "mode": mode,
                    "peak_rps": med(peaks[name, mode]),
                    "cpu_us_per_req": None
                    if not cpu.get((name, mode))
                    else 1e6 * (med(cpu[name, mode]) or 0),
                }
                if name != "direct":
                    mine = lat[f"{name}@{name}", mode]
                    base = lat[f"direct@{name}", mode]
                    row["rate_rps"] = med([x["rate"] for x in mine])
                    row["p50_ms"] = ms(med([x["p50"] for x in mine]))
                    row["p99_ms"] = ms(med([x["p99"] for x in mine]))
                    row["direct_p50_ms"] = ms(med([x["p50"] for x in base]))
                    row["direct_p99_ms"] = ms(med([x["p99"] for x in base]))
                    row["added_p50_ms"] = ms(
                        med([x["p50"] - y["p50"] for x, y in zip(mine, base, strict=True)])
                    )
                    row["added_p99_ms"] = ms(
                        med([x["p99"] - y["p99"] for x, y in zip(mine, base, strict=True)])
                    )
                    row["header_added_p50_ms"] = ms(med([x["added_p50"] for x in mine]))
                    row["header_added_p99_ms"] = ms(med([x["added_p99"] for x in mine]))
                    if name == "prsm":
                        low, low_base = lat["prsm@low", mode], lat["direct@low", mode]
                        row["low_rate_rps"] = args.low_rate
                        row["low_added_p50_ms"] = ms(
                            med([x["p50"] - y["p50"] for x, y in zip(low, low_base, strict=True)])
                        )
                        row["low_added_p99_ms"] = ms(
                            med([x["p99"] - y["p99"] for x, y in zip(low, low_base, strict=True)])
                        )
                    row["dropped"] = sum(x["dropped"] for x in mine)
                    row["errors"] = sum(sum(x["errors"].values()) for x in mine)
                report.add(**row)
        by = {(r["target"], r["mode"]): r for r in report.rows}
        ours_ns = by["prsm", "non-stream"]
        ratio: dict[str, float] = {}
        meets: dict[str, bool] = {}
        for mode in bodies:  # ratios of peaks measured in the same round, then the median:
            for peer in ("direct", "litellm"):  # the host's speed drifts between rounds
                if peer in targets:
                    pairs = zip(peaks["prsm", mode], peaks[peer, mode], strict=True)
                    ratio[f"vs_{peer}_{mode}"] = statistics.median(a / b for a, b in pairs)
        meets["added_p50_le_1ms"] = (ours_ns["added_p50_ms"] or 0) <= 1.0
        meets["added_p99_le_5ms"] = (ours_ns["added_p99_ms"] or 0) <= 5.0
        meets["peak_ge_40pct_direct"] = ratio["vs_direct_non-stream"] >= 0.40
        if "litellm" in targets:
            meets["peak_ge_30x_litellm"] = ratio["vs_litellm_non-stream"] >= 30
        report.ratio_vs_peer = ratio
        report.extra["peak_rps_by_round"] = {
            f"{name} {mode}": [round(x) for x in values] for (name, mode), values in peaks.items()
        }
        report.meets_goal = meets
        report.notes.append(
            f"{rounds} round(s) of {duration}s per measurement; peak = closed loop over 32 "
            "connections; ratios = median over rounds of the ratio within a round; latency = "
            "open loop at half the target's own peak, paced by a timerfd; added = target "
            "minus direct at the same rate; low_added = ours minus direct at --low-rate; "
            "cpu_us_per_req = CPU time of the server's processes per answered request at peak; "
            "load generator in its own process; "
            + ("placement: the server under test alone on one CPU, load generator and "
               "simulator on the other" if args.pin else "placement: left to the kernel")
        )  # fmt: skip
        if not use_litellm:
            report.notes.append("LiteLLM proxy skipped (quick mode or --no-litellm)")
        report.finish(args, plot)
    finally:
        for s in reversed(servers):
            s.stop()


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((a1, "peak_rps", "peak requests/s (log)"),
                           (a2, "added_p50_ms", "added p50 (ms, log)")):  # fmt: skip
        rows = [r for r in report.rows if r.get(key) is not None]
        labels = [f"{r['target']}\n{r['mode']}" for r in rows]
        ax.bar(labels, [max(r[key], 1e-3) for r in rows], color="#4477aa")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("gateway: prsm-perf serve vs LiteLLM proxy vs direct")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
