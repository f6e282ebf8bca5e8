"""Benchmark ``soak``: does the gateway stay flat under hours-like load? Ten minutes of
open-loop load replaying the arrivals of ``azure_llm_2023_conv.csv`` (time-scaled to
``--rate`` requests/s on average) through ``prsm-perf serve`` with its caches (L1, Redis L2,
content-addressed L3) and local embedding workers on, with each request's body sized from
the trace (``ContextTokens`` words of prompt, ``GeneratedTokens`` as ``max_tokens``); every
third chat request streams, one in ten requests is an embedding, and three in ten repeat an
earlier prompt (cache hits). The resident memory and open file descriptors of the gateway
process (and of its whole tree, workers included) are sampled every second, and the gateway's
descriptors are sorted by kind:

* client connections: those the load generator keeps open, which follow its pool rather than
  the gateway (aiohttp reuses its idle connections in turn, so each stays busy and none
  reaches the server's keep-alive timeout: it holds as many as the most requests it ever had
  in flight at once);
* pooled connections: TCP to the upstream nodes and to Redis. Their number follows the load's
  recent concurrency, not time: the upstream pools close a connection idle for 4 s, the Redis
  tier one idle for ``redis_idle_timeout`` (60 s), so in a stretch of the trace with bigger
  bursts they hold more, and fewer again after;
* fixed: everything else (files, SQLite databases, pipes and UNIX sockets to the workers, the
  loop's own descriptors), which no request should change.

``gateway_own_fds`` (all but client connections) and the pooled connections are shown. Goal:
flat after warm-up over the last eight minutes: resident memory and the fixed descriptors (the
gateway's, and its tree's) grow by no more than 5 % (medians of ten seconds at each end of
that window, so one sample's noise does not count); and no pooled connection stays idle past
twice its pool's limit (each second, the longest any of them has gone without sending or
receiving, from the kernel's TCP info through ``ss``): a leaked connection is never used again
and never closed, so it ages past any limit, whatever the load, while the number of
connections a pool holds follows the load's bursts.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import itertools
import os
import random
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._faults import (
    EMBED_MODEL,
    MODEL,
    Load,
    Redis,
    start_ours,
    start_sim,
    summarize,
    tree_usage as _tree_usage,
)
from benchmarks._harness import Report, parser
from prsm.performance.caching import CacheSettings
from prsm.performance.http import HttpClientSettings

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
TRACE = SHARED / "data" / "traces" / "azure_llm_2023_conv.csv"
#: one dict a second (t, rss, fds, tree_rss, tree_fds): what --plot draws
SAMPLES: list[dict[str, Any]] = []
GOAL = (
    "RSS and open fds flat after warm-up: <= 5 % growth over the soak's last eight minutes "
    "(memory and fixed descriptors); no pooled connection idle past twice its pool's limit"
)
#: the series judged flat by their medians: resident memory and the fixed descriptors (all but
#: client and pooled connections), of the gateway alone and with its workers
JUDGED = (("rss", "gateway_rss"), ("fixed_fds", "gateway_fixed_fds"), ("tree_rss", "tree_rss"),
          ("tree_fixed_fds", "tree_fixed_fds"))  # fmt: skip
#: how long a pooled connection may go unused (seconds): twice its pool's own limit (an
#: upstream pool closes a connection idle for ``idle_timeout``; the Redis tier one idle for
#: ``redis_idle_timeout``)
IDLE_LIMITS = {
    "node": 2 * HttpClientSettings().idle_timeout,
    "redis": 2 * CacheSettings().redis_idle_timeout,
}
#: client connections the gateway may hold beyond the load generator's pool in two samples in
#: a row (one opening or closing between a sample's two reads)
UNMATCHED_SLACK = 3
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
]


def read_trace(path: Path, rate: float, duration: float) -> list[tuple[float, int, int]]:
    """``(due seconds, context tokens, generated tokens)`` for every request of the trace that
    falls within ``duration`` once its arrivals are scaled to ``rate`` per second on average."""
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            ts = dt.datetime.fromisoformat(row["TIMESTAMP"][:26])
            rows.append((ts, int(row["ContextTokens"]), int(row["GeneratedTokens"])))
    rows.sort()
    span = (rows[-1][0] - rows[0][0]).total_seconds()
    speed = rate * span / len(rows)  # trace seconds per replayed second
    out = []
    for ts, ctx, gen in rows:
        due = (ts - rows[0][0]).total_seconds() / speed
        if due >= duration:
            break
        out.append((due, ctx, gen))
    return out


def client_sockets(pid: int, port: int, *, remote: bool = False) -> int:
    """How many of ``pid``'s descriptors are TCP sockets on its local ``port`` (the listener
    and the connections clients opened to it), or with ``remote``, connected to ``port``
    elsewhere (a client's connections to that server)."""
    return _count_links(pid, _tcp_inodes(pid, 2 if remote else 1, {port}))


def peer_sockets(pid: int, ports: set[int]) -> int:
    """How many of ``pid``'s descriptors are TCP connections to one of ``ports`` elsewhere
    (its pooled connections to the upstream nodes and to Redis)."""
    return _count_links(pid, _tcp_inodes(pid, 2, ports))


def idle_seconds(pid: int, kinds: dict[int, str]) -> dict[str, float]:
    """For each kind of ``pid``'s established connections to a port of ``kinds`` (port to
    kind), the longest any has gone without sending or receiving (seconds; 0 with none), as
    the kernel's TCP info says (``ss -i``: ``lastsnd``, ``lastrcv``)."""
    out = dict.fromkeys(kinds.values(), 0.0)
    text = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    kind: str | None = None
    for line in text.splitlines():
        if not line[:1].isspace():  # a connection: addresses and owners; its info follows
            cols = line.split()
            port = int(cols[3].rsplit(":", 1)[1]) if len(cols) > 3 else -1
            kind = kinds.get(port) if f"pid={pid}," in line else None
            continue
        if kind is None:
            continue
        fields = dict(f.split(":", 1) for f in line.split() if f[:4] == "last")
        if "lastsnd" in fields and "lastrcv" in fields:
            idle = min(int(fields["lastsnd"]), int(fields["lastrcv"])) / 1e3
            out[kind] = max(out[kind], idle)
    return out


def _tcp_inodes(pid: int, column: int, ports: set[int]) -> set[str]:
    """The ``socket:[inode]`` links of the TCP sockets in ``pid``'s network namespace whose
    local (``column`` 1) or remote (2) port is one of ``ports``."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if int(cols[column].rsplit(":", 1)[1], 16) in ports:
                inodes.add(f"socket:[{cols[9]}]")
    return inodes


def _count_links(pid: int, inodes: set[str]) -> int:
    """How many of ``pid``'s descriptors link to one of ``inodes``."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                n += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
            except OSError:
                continue  # closed while we looked
    except OSError:
        return 0
    return n


def growth(samples: list[tuple[float, int]], start: float, end: float) -> dict[str, float]:
    """Medians of ten seconds at ``start`` and at ``end``, and the growth between them (%)."""
    first = [v for t, v in samples if start <= t < start + 10]
    last = [v for t, v in samples if end - 10 <= t <= end]
    a, b = statistics.median(first), statistics.median(last)
    return {"start": a, "end": b, "growth_pct": 100.0 * (b - a) / a if a else 0.0}


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = SAMPLES
    window = report.extra["window"]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
    t = [s["t"] for s in samples]
    ax1.plot(t, [s["rss"] / 2**20 for s in samples], label="gateway process")
    ax1.plot(t, [s["tree_rss"] / 2**20 for s in samples], label="with its workers")
    ax1.set_ylabel("resident memory (MiB)")
    ax2.plot(t, [s["fds"] for s in samples], label="gateway process")
    ax2.plot(t, [s["own_fds"] for s in samples], label="gateway, without client connections")
    ax2.plot(t, [s["fixed_fds"] for s in samples], label="gateway, fixed (judged)")
    ax2.plot(t, [s["pooled"] for s in samples], label="gateway's connections to nodes and Redis")
    ax2.plot(t, [s["tree_fds"] for s in samples], label="with its workers")
    ax2.plot(t, [s["client_pool"] for s in samples], label="the load generator's connections",
             linestyle=":")  # fmt: skip
    ax2.set_ylabel("open file descriptors")
    for kind, limit in IDLE_LIMITS.items():
        line = ax3.plot(t, [s[f"idle_{kind}"] for s in samples],
                        label=f"longest idle connection to {kind}s")  # fmt: skip
        ax3.axhline(limit, color=line[0].get_color(), linestyle="--", label=f"{kind} limit")
    ax3.set_ylabel("seconds idle")
    ax3.set_xlabel("seconds")
    for ax in (ax1, ax2, ax3):
        ax.axvspan(window[0], window[1], color="grey", alpha=0.1, label="judged window")
        ax.legend(fontsize=8)
        ax.set_ylim(bottom=0)
    fig.suptitle("soak: " + ", ".join(f"{r['series']} {r['growth_pct']:+.1f}%"
                                      for r in report.rows[:5] if "growth_pct" in r),
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = parser("soak", __doc__ or "")
    p.add_argument("--duration", type=float, default=None, help="seconds of load (600)")
    p.add_argument("--rate", type=float, default=None, help="mean requests/s of the replay")
    p.add_argument("--warmup", type=float, default=None, help="seconds not judged (120)")
    p.add_argument("--workers", type=int, default=1, help="local embedding workers")
    p.add_argument("--trace", type=Path, default=TRACE)
    args = p.parse_args()
    quick = args.quick
    duration = args.duration or (30.0 if quick else 600.0)
    warmup = args.warmup if args.warmup is not None else (8.0 if quick else 120.0)
    rate = args.rate or (10.0 if quick else 20.0)
    if duration - warmup < 20:  # two ten-second medians
        raise SystemExit("--duration must leave at least 20 s after --warmup to judge")
    trace = read_trace(args.trace, rate, duration)
    rng = random.Random(7)
    prompt_of = [i if rng.random() > 0.3 or i == 0 else rng.randrange(i) for i in range(len(trace))]

    def text(i: int, words: int) -> str:
        r = random.Random(prompt_of[i])
        return " ".join(r.choice(WORDS) for _ in range(max(1, words)))

    def body_for(i: int) -> dict[str, Any]:
        _, ctx, gen = trace[i]
        if i % 10 == 9:
            return {"model": EMBED_MODEL, "input": [text(i, min(ctx, 200))]}
        return {"model": MODEL, "max_tokens": max(1, min(gen, 512)),
                "messages": [{"role": "user", "content": text(i, ctx)}]}  # fmt: skip

    def path_for(i: int) -> str:
        return "/v1/embeddings" if i % 10 == 9 and args.workers > 0 else "/v1/chat/completions"

    tmp = Path(tempfile.mkdtemp(prefix="prsm-bench-soak-"))
    sims = [start_sim(name, latency=0.02) for name in ("A", "B")]
    redis = Redis(tmp)
    redis.start()
    samples: list[dict[str, Any]] = []
    try:
        gw = start_ours(sims, tmp, redis=redis, data_dir=tmp / "data", workers=args.workers,
                        reset_timeout=5.0, failure_threshold=3)  # fmt: skip
        try:
            load = Load(f"http://127.0.0.1:{gw.port}", rate, duration, stream_every=3,
                        body_for=body_for, path_for=path_for,
                        arrivals=[due for due, _, _ in trace])  # fmt: skip
            kinds = {sim.port: "node" for sim in sims} | {redis.port: "redis"}
            peers = set(kinds)
            stop = threading.Event()
            t0 = time.monotonic()

            def sample() -> None:
                while not stop.is_set():
                    rss, fds = _tree_usage(gw.pid, tree=False)
                    tree_rss, tree_fds = _tree_usage(gw.pid)
                    served = client_sockets(gw.pid, gw.port)  # the listener and clients'
                    pooled = peer_sockets(gw.pid, peers)  # to the nodes and Redis
                    idle = idle_seconds(gw.pid, kinds)
                    pool = client_sockets(os.getpid(), gw.port, remote=True)  # the load's
                    samples.append({"t": time.monotonic() - t0, "rss": rss, "fds": fds,
                                    "own_fds": fds - served, "pooled": pooled,
                                    "fixed_fds": fds - served - pooled, "tree_rss": tree_rss,
                                    "tree_fds": tree_fds, "tree_own_fds": tree_fds - served,
                                    "tree_fixed_fds": tree_fds - served - pooled,
                                    "client_pool": pool, "idle_node": idle["node"],
                                    "idle_redis": idle["redis"],
                                    "unmatched": served - 1 - pool})  # fmt: skip
                    stop.wait(1.0)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            print(f"soak: {len(trace)} requests over {duration:.0f}s", flush=True)
            outcomes = asyncio.run(load.run())
            stop.set()
            sampler.join()
        finally:
            gw.stop()
    finally:
        for sim in sims:
            sim.stop()
        redis.stop()
    report = Report("soak", GOAL)
    report.add(series="requests", **summarize(outcomes))
    end = min(duration, samples[-1]["t"])
    window = (max(warmup, end - 480.0), end)
    meets = {}
    for key, label in JUDGED:
        g = growth([(s["t"], s[key]) for s in samples], *window)
        report.add(series=label, **g)
        meets[f"{label}_flat"] = g["growth_pct"] <= 5.0
    judged = [s for s in samples if window[0] <= s["t"] <= window[1]]
    for kind, limit in IDLE_LIMITS.items():
        longest = max(s[f"idle_{kind}"] for s in judged)
        report.add(series=f"longest_idle_{kind}_connection", most=longest, limit=limit)
        meets[f"idle_{kind}_connections_closed"] = longest <= limit
    # shown but not judged: the client connections are the load generator's pool, and the
    # pooled connections follow the load's bursts (see the module docstring)
    for key, label in (("own_fds", "gateway_own_fds"), ("pooled", "pooled_connections"),
                       ("tree_own_fds", "tree_own_fds"), ("fds", "gateway_fds"),
                       ("tree_fds", "tree_fds"),
                       ("client_pool", "load_generator_connections")):  # fmt: skip
        report.add(series=label, **growth([(s["t"], s[key]) for s in samples], *window))
    apart = [abs(s["unmatched"]) for s in judged]
    unmatched = max(apart, default=0)
    # a connection the gateway keeps that the client has closed would be a leak, and a leak
    # stays; a sample may catch a burst of connections opening or closing between its two
    # reads, which the next sample no longer shows: judged is what two samples in a row show
    lasting = max((min(a, b) for a, b in itertools.pairwise(apart)), default=0)
    report.add(series="client_connections_not_in_the_pool", start=judged[0]["unmatched"],
               end=judged[-1]["unmatched"], most=unmatched, lasting=lasting)  # fmt: skip
    meets["client_connections_follow_the_pool"] = lasting <= UNMATCHED_SLACK
    report.meets_goal = meets
    report.notes.append(f"replay of {args.trace.name} at {rate} req/s mean for {duration:.0f}s; "
                        f"judged from {window[0]:.0f}s to {window[1]:.0f}s")  # fmt: skip
    SAMPLES.extend(samples)  # for the chart only; the JSON keeps the figures
    report.extra["samples_taken"] = len(samples)
    report.extra["window"] = window
    report.finish(args, plot)


if __name__ == "__main__":
    main()
