"""The gateway peak part of ``benchmarks/monitoring.py``: ``prsm-perf serve`` saturated with
monitoring fully on (and an open dashboard) against off, in ABBA rounds."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from benchmarks._gateway_peers import MODEL, Server, free_port, load, pin, start_sim, tree_cpu
from benchmarks._harness import Report, median
from benchmarks._paired import hodges_lehmann, hodges_lehmann_interval, median_interval
from prsm.performance.dashboard._findings import FINDINGS_EVERY_S, FINDINGS_SINCE
from prsm.performance.dashboard._page import (
    FINDINGS_ROUTE,
    HISTORY_BACKFILL,
    POLLED_ROUTES,
    SCALING_RECHECK,
    SCALING_ROUTE,
)

ROOT = Path(__file__).resolve().parents[1]

# -- peak -----------------------------------------------------------------------------------


def peak_config(sim_port: int, port: int, tmp: Path, *, on: bool,
                server_timing: bool = False) -> dict[str, Any]:  # fmt: skip
    """The peak part's gateway config: one node (the simulator at ``sim_port``), and with
    ``on`` monitoring, history (SQLite in ``tmp``) and alerts as
    ``deploy/prsm-monitoring.example.yaml`` has them; without, all three off."""
    example = yaml.safe_load((ROOT / "deploy" / "prsm-monitoring.example.yaml").read_text())
    cfg: dict[str, Any] = {
        "nodes": [{"id": "sim", "url": f"http://127.0.0.1:{sim_port}/v1", "models": [MODEL],
                   "cost_per_1k_tokens": 0.5}],
        "gateway": {"port": port},
        "workers": {"enabled": False},
    }  # fmt: skip
    if on:
        cfg["monitoring"] = {**example["monitoring"], "server_timing": server_timing}
        cfg["history"] = {**example["history"], "path": str(tmp / f"history-{port}.sqlite3")}
        cfg["alerts"] = example["alerts"]
    else:
        cfg["monitoring"] = {"enabled": False, "server_timing": False}
        cfg["history"] = {"enabled": False}
    return cfg


def start_gateway(sim: Server, tmp: Path, *, on: bool, server_timing: bool = False) -> Server:
    port = free_port()
    cfg = peak_config(sim.port, port, tmp, on=on, server_timing=server_timing)
    path = tmp / f"gw-{'on' if on else 'off'}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "prsm.performance.cli", "serve", "--config", str(path),
           "--workers", "1"]  # fmt: skip
    return Server(cmd, port, "/readyz")


class Dashboard(threading.Thread):
    """One open dashboard, as the page (``/dashboard``, ``dashboard.js``) behaves: it loads the
    page, its files, each chart's last 15 minutes of history and the findings
    (``/admin/analytics``) once, then every second asks for what the page polls
    (``POLLED_ROUTES``: the current metrics, alerts and nodes, and ``/admin/scaling``: after a
    404 only every ``SCALING_RECHECK``-th second), and the findings again every
    ``FINDINGS_EVERY_S`` seconds."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.polls = 0
        self.analyses = 0  # /admin/analytics answered
        self.loaded = 0  # requests of the page's opening: page, files, history, findings
        self.opened = threading.Event()
        self.error: BaseException | None = None

    def get(self, path: str, *, also: tuple[int, ...] = ()) -> tuple[int, bytes]:
        """``(status, body)`` of a GET; a status other than 200 or ``also`` raises."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as exc:
            if exc.code in also:
                return exc.code, exc.read()
            raise

    def run(self) -> None:
        try:
            self._open_and_poll()
        except BaseException as exc:  # raised again by finish(), in the benchmark's thread
            self.error = exc
        finally:
            self.opened.set()

    def findings(self) -> None:
        self.get(f"{FINDINGS_ROUTE}?since={FINDINGS_SINCE}")
        self.analyses += 1

    def _open_and_poll(self) -> None:
        from urllib.parse import urlencode

        page = self.get("/dashboard")[1].decode()
        opening = re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page)
        for metric, labels in HISTORY_BACKFILL:
            query = {"metric": metric, "since": "900", **({"labels": labels} if labels else {})}
            opening.append(f"/admin/metrics/history?{urlencode(query)}")
        for path in opening:
            self.get(path)
        self.findings()
        self.loaded = 2 + len(opening)
        self.opened.set()
        skip_scaling = 0
        next_findings = time.monotonic() + FINDINGS_EVERY_S
        while not self.stop.wait(1.0):
            for path in POLLED_ROUTES:
                self.get(path)
            if skip_scaling:
                skip_scaling -= 1
            elif self.get(SCALING_ROUTE, also=(404,))[0] == 404:
                skip_scaling = SCALING_RECHECK
            self.polls += 1
            if time.monotonic() >= next_findings:
                self.findings()
                next_findings = time.monotonic() + FINDINGS_EVERY_S

    def finish(self) -> None:
        """Stop polling; raise what went wrong in the thread, if anything did."""
        self.stop.set()
        self.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"the dashboard stand-in failed: {self.error}") from self.error


def threads_cpu(pid: int) -> float:
    """CPU seconds the live threads of ``pid`` have run, to the nanosecond (each thread's
    ``/proc/PID/task/TID/schedstat``; ``tree_cpu``'s clock ticks are 10 ms, too coarse for a
    few seconds of background work)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # it ended while we looked
    return total / 1e9


def side_threads_cpu(pid: int) -> float:
    """CPU seconds of the live threads of ``pid`` other than its main one (the event loop's):
    the monitor's worker thread, uvloop's and asyncio's pools."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name == str(pid):
            continue
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # it ended while we looked
    return total / 1e9


def history_points(port: int, metric: str, since: float, until: float) -> list[float]:
    """The 1 s history points' times of ``metric`` on the gateway at ``port`` (one a
    collection) in ``[since, until]`` (unix seconds)."""
    from urllib.parse import urlencode

    query = urlencode({"metric": metric, "since": f"{since:.3f}", "until": f"{until:.3f}",
                       "step": "1"})  # fmt: skip
    url = f"http://127.0.0.1:{port}/admin/metrics/history?{query}"
    with urllib.request.urlopen(url, timeout=30) as r:
        found = json.loads(r.read())
    return [float(t) for series in found["series"] for t, _ in series["points"]]


def idle_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU seconds each process spent per second over ``seconds`` with no requests but the open
    dashboard's (the monitoring loop, history writes, rules, the dashboard's polls)."""
    before = {k: threads_cpu(pid) for k, pid in pids.items()}
    time.sleep(seconds)
    return {k: (threads_cpu(pid) - before[k]) / seconds for k, pid in pids.items()}


#: seconds of load before each peak measurement's
WARMUP = 0.3
#: the order of a round's four measurements, by the round's parity (ABBA, then BAAB): a
#: drift of the machine's speed that is linear over a round moves both modes alike
ABBA = (("on", "off", "off", "on"), ("off", "on", "on", "off"))


#: the goal: the judged drop at most this
GOAL = 0.03


def round_drops(more: list[float], less: list[float]) -> list[float]:
    """Each round's drop, ``1 - (its two of more) / (its two of less)`` (a round is four
    measurements in a row, two of each mode: ``ABBA[r % 2]``): the peaks' drop from the on
    peaks over the off ones, the CPU per request's from the off costs over the on ones."""
    if len(more) != len(less) or len(more) % 2:
        raise ValueError(f"two measurements of each mode a round, got {len(more)} and {len(less)}")
    if not all(math.isfinite(x) and x > 0 for x in (*more, *less)):
        raise ValueError(f"a measurement is not a positive number: {more} {less}")
    return [1.0 - (more[i] + more[i + 1]) / (less[i] + less[i + 1])
            for i in range(0, len(more), 2)]  # fmt: skip


def cpu_per_request(spent: float, out: dict[str, Any]) -> float:
    """The gateway's CPU seconds ``spent`` over one load run (its warm-up included) per
    request it answered in that run: ``total_completed`` (the warm-up's answers too), not
    the measured window's ``completed``, which would add the warm-up's CPU (+15 % at 0.3 s
    of warm-up to 2 s); ``nan`` when none was answered."""
    done = out["total_completed"]
    return spent / done if done else math.nan


def pct(x: float) -> str:
    return f"{x * 100:.2f}" if math.isfinite(x) else ("−∞" if x < 0 else "∞")


def bench_peak(report: Report, *, rounds: int, duration: float, pin_cpus: bool,
               header_us: float, server_timing: bool) -> dict[str, Any]:  # fmt: skip
    """Closed-loop peaks of a gateway with monitoring fully on and one with it off, in
    ``rounds`` rounds of one run, each round four measurements back to back in the order
    ``ABBA[r % 2]`` (on, off, off, on; then off, on, on, off), so a drift of the machine's
    speed over a round cancels and neither mode always goes first. A round's drop is
    ``1 - (its off CPU per request) / (its on CPU per request)`` (both measurements of each
    mode): the peak's drop with the core the gateway's alone, which the share of that core
    other processes take hardly moves (the req/s the round reached does, 1:1), while the gateway
    is CPU-bound (a wait off the CPU would show in req/s only). The judged
    drop is the Hodges–Lehmann estimate of the rounds' drops (the median of their pairwise
    averages: robust to the wild rounds a shared machine gives, and steadier than the
    median), with its exact 95 % interval; the same of the req/s (``1 - on / off``), their
    median, the drop of the medians and the one the median rounds' CPU per request gives are
    shown next to it. Then both gateways idle with the dashboard
    still open: the background CPU per second of each, and the findings'
    (``/admin/analytics``) CPU, so the cost can also be added up from its parts:
    ``header_us`` a request (with ``server_timing``: the on gateway sends the opt-in
    ``Server-Timing`` header too) plus the background spread over the requests of a second."""
    tmp = Path(tempfile.mkdtemp(prefix="prsm-bench-mon-"))
    body = tmp / "chat.json"
    messages = [{"role": "user", "content": "Say hello. " * 8}]
    body.write_text(json.dumps({"model": MODEL, "max_tokens": 16, "messages": messages}))
    sim = start_sim()
    servers = [sim]
    try:
        gws = {
            "on": start_gateway(sim, tmp, on=True, server_timing=server_timing),
            "off": start_gateway(sim, tmp, on=False),
        }
        servers += list(gws.values())
        cpus = sorted(os.sched_getaffinity(0))
        cpu0, cpu1 = (cpus[0], cpus[1]) if pin_cpus and len(cpus) >= 2 else (None, None)
        dashboard = Dashboard(gws["on"].port)
        dashboard.start()
        dashboard.opened.wait(60)
        for gw in gws.values():  # warm up
            load(gw.port, body, rate=0, duration=max(1.0, duration / 2), warmup=0)
        peaks: dict[str, list[float]] = {"on": [], "off": []}
        cpu_per: dict[str, list[float]] = {"on": [], "off": []}
        side: dict[str, list[float]] = {"on": [], "off": []}  # other threads' CPU s a second
        busy: dict[str, list[float]] = {"on": [], "off": []}  # the gateway's CPU s a second
        windows: list[tuple[float, float]] = []  # the on gateway's loaded spells (unix s)
        for r in range(rounds):
            for mode in ABBA[r % 2]:
                gw = gws[mode]
                load_cpus = None
                if cpu0 is not None:
                    pin(gw.proc.pid, {cpu0})
                    pin(gws["off" if mode == "on" else "on"].proc.pid, {cpu1})
                    pin(sim.proc.pid, {cpu1})
                    load_cpus = {cpu1}
                before = tree_cpu(gw.proc.pid) or 0.0
                side_before = side_threads_cpu(gw.proc.pid)
                wall0, t0 = time.time(), time.monotonic()
                out = load(gw.port, body, rate=0, duration=duration, warmup=WARMUP,
                           cpus=load_cpus)  # fmt: skip
                wall = time.monotonic() - t0
                spent = (tree_cpu(gw.proc.pid) or 0.0) - before
                side[mode].append((side_threads_cpu(gw.proc.pid) - side_before) / wall)
                busy[mode].append(spent / (duration + WARMUP))  # the load's seconds
                if mode == "on":
                    windows.append((wall0, wall0 + wall))
                peaks[mode].append(out["achieved"])
                cpu_per[mode].append(cpu_per_request(spent, out))
        # the on gateway's history: one 1 s point a collection, so how many collections the
        # monitor made while the gateway was saturated (it should keep up: one a second)
        loaded_s = sum(b - a for a, b in windows)
        collected = sum(
            sum(1 for t in history_points(gws["on"].port, "system.cpu_usage", a, b) if a <= t)
            for a, b in windows
        )
        pids = {mode: gw.proc.pid for mode, gw in gws.items()}
        idle = idle_cpu(pids, max(2.0, 2 * duration))
        t0 = threads_cpu(pids["on"])
        dashboard.findings()
        findings_cpu = threads_cpu(pids["on"]) - t0
        dashboard.finish()
    finally:
        for s in reversed(servers):
            s.stop()
    on, off = median(peaks["on"]), median(peaks["off"])
    drops = round_drops(peaks["on"], peaks["off"])  # of the peaks (req/s)
    costs = round_drops(cpu_per["off"], cpu_per["on"])  # of the CPU per request: judged
    judged = hodges_lehmann(costs)
    lo, hi = hodges_lehmann_interval(costs)
    c_on, c_off = median(cpu_per["on"]), median(cpu_per["off"])
    # the parts: the header on each request; the background (loop, history, rules, the
    # page's polls; its findings every FINDINGS_EVERY_S) spread over a second's requests
    background = max(0.0, idle["on"] - idle["off"]) + findings_cpu / FINDINGS_EVERY_S
    parts_us = (header_us if server_timing else 0.0) + background / on * 1e6 if on else math.nan
    added = 1.0 - 1.0 / (1.0 + parts_us / (c_off * 1e6)) if c_off else math.nan
    report.add(part="peak", what="gateway peak, monitoring on vs off (req/s, medians)",
               ours=round(on, 1), peer=round(off, 1), unit="req/s", goal="")  # fmt: skip
    report.add(part="peak", what=f"peak drop (judged): CPU per request, Hodges–Lehmann of "
               f"{rounds} ABBA rounds' drops, 95 % CI {pct(lo)} to {pct(hi)} %",
               ours=round(judged * 100, 2), peer=None, unit="%", goal="≤ 3 %")  # fmt: skip
    r_lo, r_hi = hodges_lehmann_interval(drops)
    by_peaks = hodges_lehmann(drops)
    report.add(part="peak", what=f"peak drop: req/s, Hodges–Lehmann of the rounds' drops "
               f"(95 % CI {pct(r_lo)} to {pct(r_hi)} %)", ours=round(by_peaks * 100, 2),
               peer=None, unit="%", goal="")  # fmt: skip
    m_lo, m_hi = median_interval(drops)
    report.add(part="peak", what=f"peak drop: req/s, median of the rounds' drops (95 % CI "
               f"{pct(m_lo)} to {pct(m_hi)} %)", ours=round(median(drops) * 100, 2), peer=None,
               unit="%", goal="")  # fmt: skip
    report.add(part="peak", what="peak drop: of the medians", ours=round((1 - on / off) * 100, 2),
               peer=None, unit="%", goal="")  # fmt: skip
    report.add(part="peak", what="CPU per request, on vs off (median round)",
               ours=round(c_on * 1e6, 1), peer=round(c_off * 1e6, 1), unit="µs",
               goal="")  # fmt: skip
    report.add(part="peak", what="peak drop the CPU per request gives (1 − off/on)",
               ours=round((1 - c_off / c_on) * 100, 2), peer=None, unit="%", goal="")  # fmt: skip
    report.add(part="peak", what="gateway CPU a second of load, on vs off (saturated: 1 core)",
               ours=round(median(busy["on"]), 3), peer=round(median(busy["off"]), 3),
               unit="CPU s/s", goal="")  # fmt: skip
    report.add(part="peak", what="threads other than the event loop's, saturated, on vs off",
               ours=round(median(side["on"]) * 1e3, 2), peer=round(median(side["off"]) * 1e3, 2),
               unit="ms/s", goal="")  # fmt: skip
    report.add(part="peak", what="monitor collections while saturated (history's 1 s points)",
               ours=round(collected / loaded_s, 3) if loaded_s else None, peer=None,
               unit="per s", goal="")  # fmt: skip
    report.add(part="peak", what="background CPU idle with the dashboard open, on vs off",
               ours=round(idle["on"] * 1e3, 2), peer=round(idle["off"] * 1e3, 2),
               unit="ms/s", goal="")  # fmt: skip
    report.add(part="peak", what="the findings (/admin/analytics) once, on the run's history",
               ours=round(findings_cpu * 1e3, 1), peer=None, unit="ms CPU", goal="")  # fmt: skip
    report.add(part="peak", what="drop added up from the parts (header + background at peak)",
               ours=round(added * 100, 2), peer=None, unit="%", goal="")  # fmt: skip
    if lo <= GOAL < hi:
        report.notes.append(f"peak: the judged drop's 95 % CI ({pct(lo)} to {pct(hi)} %) "
                            "holds the goal's 3 %: this run cannot tell if it is met")  # fmt: skip
    bounds = [[x if math.isfinite(x) else None for x in ci]
              for ci in ((lo, hi), (r_lo, r_hi), (m_lo, m_hi))]  # fmt: skip
    return {"peak_on": on, "peak_off": off, "drop": judged, "drop_ci95": bounds[0],
            "drop_req_s": by_peaks, "drop_req_s_ci95": bounds[1],
            "drop_median": median(drops), "drop_median_ci95": bounds[2],
            "round_drops": {"cpu": costs, "req_s": drops}, "order": "ABBA",
            "drop_of_medians": 1 - on / off,
            "drop_from_cpu": 1 - c_off / c_on, "drop_from_parts": added, "rounds": peaks,
            "cpu_per_request": cpu_per, "idle_cpu_per_s": idle, "findings_cpu_s": findings_cpu,
            "busy_cpu_per_s": busy, "side_threads_cpu_per_s": side,
            "collections_while_saturated": collected, "saturated_s": loaded_s,
            "dashboard_polls": dashboard.polls, "dashboard_analyses": dashboard.analyses,
            "dashboard_opening_requests": dashboard.loaded}  # fmt: skip
