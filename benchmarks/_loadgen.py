"""A small, fast HTTP/1.1 load generator on the project's HTTP client connections
(:class:`prsm.performance.http.ClientConnection`: asyncio + httptools), run in its own process.

``python -m benchmarks._loadgen --url URL --body FILE --rate R --duration S`` sends POSTs at a
fixed rate (open loop: request i is due at ``i / R`` seconds, and its latency is measured from
when it was due, so a slow server cannot hide its queue), over a bounded pool of keep-alive
connections; a request due while every connection is busy waits in a bounded queue, and is
counted as ``dropped`` when that queue is full. A Linux ``timerfd`` wakes the loop at each due
time: event-loop timers round to whole milliseconds, so a shorter sleep spins the CPU, which a
load generator sharing a core with the server under test must not do. ``--rate 0`` runs closed
loop instead: every connection sends its next request as soon as the last one is answered (the
saturated rate). Prints one JSON object: offered and achieved rates, latency percentiles,
errors, and the ``x-prsm-added-time`` the gateway reported, when it did.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prsm.performance.http._client_connection import ClientConnection, open_connection


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [("it_interval", _TimeSpec), ("it_value", _TimeSpec)]


def periodic_timer(interval: float) -> int:
    """A non-blocking Linux timerfd that becomes readable every ``interval`` seconds."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "timerfd_create"):
        raise OSError(38, "open-loop pacing needs Linux's timerfd (use --rate 0 elsewhere)")
    fd = int(libc.timerfd_create(1, 0o4000 | 0o2000000))  # MONOTONIC; NONBLOCK | CLOEXEC
    if fd < 0:
        raise OSError(ctypes.get_errno(), "timerfd_create failed")
    ns = max(1000, round(interval * 1e9))
    period = _TimeSpec(ns // 1_000_000_000, ns % 1_000_000_000)
    spec = _ITimerSpec(period, period)
    if libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, "timerfd_settime failed")
    return fd


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.added: list[float] = []
        self.errors: collections.Counter[int] = collections.Counter()
        self.dropped = 0
        self.total = 0
        self.measuring = False


class Generator:
    def __init__(self, url: str, body: bytes, headers: list[str], queue_limit: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        head = [f"POST {parts.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", *headers]
        self.request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.idle: list[ClientConnection] = []
        self.queue: collections.deque[float] = collections.deque()
        self.queue_limit = queue_limit
        self.stats = Stats()
        self.closed_loop = False
        self.conns: list[ClientConnection] = []
        self.drained: asyncio.Future[None] | None = None

    async def open(self, n: int) -> None:
        for _ in range(n):
            conn = await open_connection(self.host, self.port, on_done=self.done)
            self.conns.append(conn)
            self.idle.append(conn)

    def send(self, conn: ClientConnection, due: float) -> None:
        conn.tag = due  # when the request was due: its latency counts from then
        conn.send(self.request)

    def done(self, conn: ClientConnection) -> None:
        """An answer is complete (or the connection failed): count it, send the next."""
        if conn.error is not None:
            if conn in self.idle:
                self.idle.remove(conn)
            return
        now = time.perf_counter()
        st = self.stats
        st.total += 1
        if st.measuring:
            status = conn.status
            if status == 200:
                st.latencies.append(now - conn.tag)
                for name, value in conn.headers:
                    if len(name) == 17 and name.lower() == b"x-prsm-added-time":
                        st.added.append(float(value) / 1e3)
            else:
                st.errors[status] += 1
        if self.closed_loop:
            self.send(conn, now)
        elif self.queue:
            self.send(conn, self.queue.popleft())
        else:
            self.idle.append(conn)
            d = self.drained
            if d is not None and not d.done() and len(self.idle) == len(self.conns):
                d.set_result(None)

    def fire(self, due: float) -> None:
        if self.idle:
            self.send(self.idle.pop(), due)
        elif len(self.queue) < self.queue_limit:
            self.queue.append(due)
        elif self.stats.measuring:
            self.stats.dropped += 1

    async def open_loop(self, rate: float, seconds: float) -> int:
        """Send ``rate * seconds`` requests, request i due at ``i / rate``; return the count."""
        loop = asyncio.get_running_loop()
        total = int(rate * seconds)
        if total == 0:
            return 0
        finished: asyncio.Future[None] = loop.create_future()
        start = time.perf_counter()
        sent = 0

        def tick() -> None:
            nonlocal sent
            try:
                os.read(fd, 8)  # the number of expirations; the clock says what is due
            except BlockingIOError:
                return
            due_count = min(total, int((time.perf_counter() - start) * rate) + 1)
            while sent < due_count:
                self.fire(start + sent / rate)
                sent += 1
            if sent >= total and not finished.done():
                finished.set_result(None)

        fd = periodic_timer(max(1.0 / rate, 5e-5))  # above 20k/s, several a wake-up
        self.fire(start)
        sent = 1
        loop.add_reader(fd, tick)
        try:
            if sent < total:
                await finished
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return sent

    async def drain(self, seconds: float) -> None:
        """Wait until every due request is answered (or ``seconds`` pass)."""
        if self.queue or len(self.idle) < len(self.conns):
            self.drained = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(seconds):
                    await self.drained
            except TimeoutError:
                pass  # what is still out is not counted: it was not answered in time


async def run(args: argparse.Namespace, body: bytes) -> dict[str, Any]:
    gen = Generator(args.url, body, args.header or [], args.queue_limit)
    await gen.open(args.connections)
    if args.warmup > 0:
        if args.rate > 0:
            await gen.open_loop(args.rate, args.warmup)
        else:
            gen.closed_loop = True
            for c in list(gen.idle):
                gen.idle.remove(c)
                gen.send(c, time.perf_counter())
            await asyncio.sleep(args.warmup)
    gen.stats.measuring = True
    t0 = time.perf_counter()
    if args.rate > 0:
        sent = await gen.open_loop(args.rate, args.duration)
        elapsed = time.perf_counter() - t0
        gen.stats.measuring = True
        await gen.drain(5.0)
        offered = sent / elapsed
    else:
        if not gen.closed_loop:
            gen.closed_loop = True
            for c in list(gen.idle):
                gen.idle.remove(c)
                gen.send(c, time.perf_counter())
        await asyncio.sleep(args.duration)
        elapsed = time.perf_counter() - t0
        offered = None
    gen.stats.measuring = False
    st = gen.stats
    done = len(st.latencies)
    for c in gen.conns:
        c.close()
    return {
        "offered": offered,
        "achieved": done / elapsed,
        "completed": done,
        "total_completed": st.total,
        "errors": dict(st.errors),
        "dropped": st.dropped,
        "p50": pct(st.latencies, 50),
        "p90": pct(st.latencies, 90),
        "p99": pct(st.latencies, 99),
        "max": max(st.latencies) if st.latencies else None,
        "added_p50": pct(st.added, 50),
        "added_p99": pct(st.added, 99),
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks._loadgen")
    p.add_argument("--url", required=True)
    p.add_argument("--body", default=None, help="file with the request body")
    p.add_argument("--header", action="append", help="extra 'Name: value' header")
    p.add_argument("--rate", type=float, default=0.0, help="requests/s; 0: closed loop")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--queue-limit", type=int, default=10_000)
    args = p.parse_args()
    body = Path(args.body).read_bytes() if args.body else b"{}"
    try:
        import uvloop
    except ImportError:
        out = asyncio.run(run(args, body))
    else:
        out = uvloop.run(run(args, body))
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
