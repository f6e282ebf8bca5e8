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
  tier closes its idle ones every 30 s (redis-py's pool keeps what a burst opened until then),
  so in a stretch of the trace with bigger bursts they hold more, and fewer again after;
* fixed: everything else (files, SQLite databases, pipes and UNIX sockets to the workers, the
  loop's own descriptors), which no request should change.

``gateway_own_fds`` (all but client connections) is shown, as are the pooled connections'
medians. Goal: flat after warm-up over the last eight minutes: resident memory and the fixed
descriptors (the gateway's, and its tree's) grow by no more than 5 % (medians of ten seconds
at each end of that window, so one sample's noise does not count), and the pooled
connections' floor (their fewest in a minute, twice the longest idle limit, at each end) by no
more than 5 %: a leaked connection is never closed, so it raises the floor, while a pool that
follows a burst falls back to what is in use once the burst is over.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import os
import random
import statistics
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

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
TRACE = SHARED / "data" / "traces" / "azure_llm_2023_conv.csv"
#: one dict a second (t, rss, fds, tree_rss, tree_fds): what --plot draws
SAMPLES: list[dict[str, Any]] = []
GOAL = (
    "RSS and open fds flat after warm-up: <= 5 % growth over the soak's last eight minutes "
    "(memory and fixed descriptors: medians; pooled connections: their floor)"
)
#: the series judged flat by their medians: resident memory and the fixed descriptors (all but
#: client and pooled connections), of the gateway alone and with its workers
JUDGED = (("rss", "gateway_rss"), ("fixed_fds", "gateway_fixed_fds"), ("tree_rss", "tree_rss"),
          ("tree_fixed_fds", "tree_fixed_fds"))  # fmt: skip
#: the pooled connections' floor is their fewest over this many seconds (twice the longest
#: idle limit of a pool: the Redis tier's 30 s)
FLOOR_SECONDS = 60.0
#: client connections the gateway may hold beyond the load generator's pool in one sample
#: (one opening or closing between the two reads)
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


def growth(samples: list[tuple[float, int]], start: float, end: float, *, span: float = 10.0,
           floor: bool = False) -> dict[str, float]:  # fmt: skip
    """Medians (with ``floor``: minimums) of ``span`` seconds at ``start`` and at ``end``, and
    the growth between them (%)."""
    first = [v for t, v in samples if start <= t < start + span]
    last = [v for t, v in samples if end - span <= t <= end]
    pick = min if floor else statistics.median
    a, b = pick(first), pick(last)
    # (growth from nothing is measured as from one: a floor that rises from 0 is not flat)
    return {"start": a, "end": b, "growth_pct": 100.0 * (b - a) / max(a, 1)}


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = SAMPLES
    window = report.extra["window"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
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
    ax2.set_xlabel("seconds")
    for ax in (ax1, ax2):
        ax.axvspan(window[0], window[1], color="grey", alpha=0.1, label="judged window")
        ax.legend(fontsize=8)
        ax.set_ylim(bottom=0)
    fig.suptitle("soak: " + ", ".join(f"{r['series']} {r['growth_pct']:+.1f}%"
                                      for r in report.rows if "growth_pct" in r))  # fmt: skip
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
            peers = {sim.port for sim in sims} | {redis.port}
            stop = threading.Event()
            t0 = time.monotonic()

            def sample() -> None:
                while not stop.is_set():
                    rss, fds = _tree_usage(gw.pid, tree=False)
                    tree_rss, tree_fds = _tree_usage(gw.pid)
                    served = client_sockets(gw.pid, gw.port)  # the listener and clients'
                    pooled = peer_sockets(gw.pid, peers)  # to the nodes and Redis
                    pool = client_sockets(os.getpid(), gw.port, remote=True)  # the load's
                    samples.append({"t": time.monotonic() - t0, "rss": rss, "fds": fds,
                                    "own_fds": fds - served, "pooled": pooled,
                                    "fixed_fds": fds - served - pooled, "tree_rss": tree_rss,
                                    "tree_fds": tree_fds, "tree_own_fds": tree_fds - served,
                                    "tree_fixed_fds": tree_fds - served - pooled,
                                    "client_pool": pool,
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
    pooled = [(s["t"], s["pooled"]) for s in samples]
    span = min(FLOOR_SECONDS, (window[1] - window[0]) / 2)  # (--quick: a shorter window)
    g = growth(pooled, *window, span=span, floor=True)
    report.add(series="pooled_connections_floor", **g)
    meets["pooled_connections_floor_flat"] = g["growth_pct"] <= 5.0
    # shown but not judged: the client connections are the load generator's pool, and the
    # pooled connections' medians follow the load's bursts (see the module docstring)
    for key, label in (("own_fds", "gateway_own_fds"), ("pooled", "pooled_connections"),
                       ("tree_own_fds", "tree_own_fds"), ("fds", "gateway_fds"),
                       ("tree_fds", "tree_fds"),
                       ("client_pool", "load_generator_connections")):  # fmt: skip
        report.add(series=label, **growth([(s["t"], s[key]) for s in samples], *window))
    judged = [s for s in samples if window[0] <= s["t"] <= window[1]]
    unmatched = max((abs(s["unmatched"]) for s in judged), default=0)
    report.add(series="client_connections_not_in_the_pool", start=judged[0]["unmatched"],
               end=judged[-1]["unmatched"], most=unmatched)  # fmt: skip
    # a connection the gateway keeps that the client has closed would be a leak; a sample
    # may catch one connection opening or closing between the two reads
    meets["client_connections_follow_the_pool"] = unmatched <= UNMATCHED_SLACK
    report.meets_goal = meets
    report.notes.append(f"replay of {args.trace.name} at {rate} req/s mean for {duration:.0f}s; "
                        f"judged from {window[0]:.0f}s to {window[1]:.0f}s")  # fmt: skip
    SAMPLES.extend(samples)  # for the chart only; the JSON keeps the figures
    report.extra["samples_taken"] = len(samples)
    report.extra["window"] = window
    report.finish(args, plot)


if __name__ == "__main__":
    main()
