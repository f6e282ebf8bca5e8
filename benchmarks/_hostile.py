"""Hostile clients against a real server process on 127.0.0.1: the cases of issue 14's
hostile-client suite, shared by ``tests/hostile/`` and ``benchmarks/hostile.py``.

The targets serve the same app (:class:`~prsm.performance.gateway.GatewayApp` from the same
config file, in front of the same upstream simulator; ``benchmarks/_hostile_servers.py``
starts them): ``prsm-perf serve`` on our server core, and uvicorn (uvloop + httptools) or
granian running the app as plain ASGI. Each case attacks one target
and reports an :class:`Outcome`: what the client saw, whether and when the server closed the
connection, how much the server's resident memory grew at its peak while the case ran, and
whether a normal request on another connection was answered meanwhile. ``checks`` says which
of those four the case expects and whether they held; ``score`` counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from benchmarks._hostile_servers import MODEL, Target, peak_rss

CHAT = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
#: resident memory a case may add to a server at its peak and still count as bounded
MEMORY_BOUND_MIB = 32.0


@dataclass
class Outcome:
    """What one case saw on one target."""

    case: str
    target: str
    status: str = "-"  # what the client read (status codes, or a short description)
    status_ok: bool = False
    closed_s: float | None = None  # seconds until the server closed (None: open at the cap)
    expect_close: bool = True
    rss_mib: float = 0.0  # the server's peak resident memory growth while the case ran
    memory_bound_mib: float = MEMORY_BOUND_MIB
    others_ok: bool = False  # a normal request on another connection got 200 meanwhile
    note: str = ""

    @property
    def checks(self) -> dict[str, bool]:
        return {
            "status": self.status_ok,
            "closed": self.closed_s is not None if self.expect_close else True,
            "memory": self.rss_mib <= self.memory_bound_mib,
            "others": self.others_ok,
        }

    @property
    def score(self) -> int:
        return sum(self.checks.values())

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def row(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "target": self.target,
            "status": self.status,
            "closed_s": None if self.closed_s is None else round(self.closed_s, 2),
            "rss_mib": round(self.rss_mib, 1),
            "others_ok": self.others_ok,
            "score": f"{self.score}/4",
            "ok": self.ok,
            "note": self.note,
        }


def request(body: bytes = CHAT, *, version: bytes = b"1.1", extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/%s\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (version, len(body), extra, body)
    )


async def normal_request(port: int, within: float = 5.0) -> bool:
    """A well-behaved client on its own connection: ``True`` when it got 200."""
    try:
        async with asyncio.timeout(within):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            try:
                w.write(request())
                line = await r.readline()
            finally:
                w.close()
    except (TimeoutError, OSError):
        return False
    return line.startswith(b"HTTP/1.1 200")


async def watch(r: asyncio.StreamReader, start: float, cap: float) -> tuple[bytes, float | None]:
    """Read until the server closes (what was read, seconds since ``start``) or ``cap``
    seconds pass (what was read, ``None``)."""
    data = b""
    try:
        async with asyncio.timeout(max(0.0, start + cap - time.monotonic())):
            while chunk := await r.read(65536):
                if len(data) < 1 << 20:
                    data += chunk
    except TimeoutError:
        return data, None
    except ConnectionError:
        pass
    return data, time.monotonic() - start


def statuses(data: bytes) -> list[int]:
    """The status codes of the answers in ``data`` (interim ones included)."""
    out = []
    for part in data.split(b"HTTP/1.")[1:]:
        code = part[2:5]
        if code.isdigit():
            out.append(int(code))
    return out


def _shown(codes: list[int]) -> str:
    return ",".join(map(str, codes)) or "nothing"


Case = Callable[[Target, float], Awaitable[Outcome]]


async def _attack(
    target: Target,
    case: str,
    payload: Callable[[asyncio.StreamWriter], Awaitable[None]],
    *,
    cap: float,
    expect: Callable[[list[int]], bool],
) -> Outcome:
    """Connect, run ``payload`` (the hostile sending) while a normal client is served, then
    watch for the answer and the close."""
    out = Outcome(case, target.name)
    peaks: list[float] = []
    with peak_rss(target.pid, peaks):
        r, w = await asyncio.open_connection("127.0.0.1", target.port)
        start = time.monotonic()
        sender = asyncio.ensure_future(payload(w))
        try:
            out.others_ok = await normal_request(target.port)
            data, out.closed_s = await watch(r, start, cap)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
            w.transport.abort()  # what the flood left unsent is dropped
    out.rss_mib = peaks[0]
    codes = statuses(data)
    out.status, out.status_ok = _shown(codes), expect(codes)
    return out


async def _drip(w: asyncio.StreamWriter, first: bytes, piece: bytes, every: float) -> None:
    w.write(first)
    while True:
        await asyncio.sleep(every)
        w.write(piece)
        await w.drain()


async def _flood(w: asyncio.StreamWriter, first: bytes, total: int, piece: int = 1 << 20) -> None:
    w.write(first)
    chunk = b"a" * piece
    for _ in range(total // piece):
        w.write(chunk)
        await w.drain()


def _send(data: bytes) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    async def send(w: asyncio.StreamWriter) -> None:
        w.write(data)
        await w.drain()

    return send


async def slowloris_headers(t: Target, cap: float) -> Outcome:
    """A head sent one header line every half second, forever."""
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    return await _attack(t, "slowloris headers", lambda w: _drip(w, head, b"X-a: b\r\n", 0.5),
                         cap=cap, expect=lambda c: c[:1] == [408])  # fmt: skip


async def slowloris_body(t: Target, cap: float) -> Outcome:
    """A whole head announcing 1,000 bytes of body, then one byte every half second."""
    head = request(b"x" * 1000)[:-1000]
    return await _attack(t, "slowloris body", lambda w: _drip(w, head, b"x", 0.5), cap=cap,
                         expect=lambda c: c[:1] == [408])  # fmt: skip


async def oversized_url(t: Target, cap: float) -> Outcome:
    """A 64 MiB request target."""
    return await _attack(t, "64 MiB URL", lambda w: _flood(w, b"GET /", 64 << 20), cap=cap,
                         expect=lambda c: c[:1] == [414])  # fmt: skip


async def oversized_headers(t: Target, cap: float) -> Outcome:
    """A 1 MiB header section (1,024 headers of 1 KiB)."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(1024)
    )
    return await _attack(t, "1 MiB of headers", _send(head + b"\r\n"), cap=cap,
                         expect=lambda c: c[:1] == [431])  # fmt: skip


async def oversized_body(t: Target, cap: float) -> Outcome:
    """A 64 MiB body (the gateway's limit is 1 MiB)."""
    head = request(b"").replace(b"Content-Length: 0", b"Content-Length: %d" % (64 << 20))
    return await _attack(t, "64 MiB body", lambda w: _flood(w, head, 64 << 20), cap=cap,
                         expect=lambda c: c[:1] == [413])  # fmt: skip


async def pipeline_bad_middle(t: Target, cap: float) -> Outcome:
    """Three good requests, a malformed one, then another good one, in one write."""
    data = request() * 3 + b"GARBAGE\r\n\r\n" + request()
    return await _attack(t, "pipeline, bad request 4th", _send(data), cap=cap,
                         expect=lambda c: c == [200, 200, 200, 400])  # fmt: skip


async def invalid_chunked(t: Target, cap: float) -> Outcome:
    """A chunked body whose chunk size is not hexadecimal."""
    data = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
            b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")  # fmt: skip
    return await _attack(t, "invalid chunked body", _send(data), cap=cap,
                         expect=lambda c: c[:1] == [400])  # fmt: skip


async def smuggling(t: Target, cap: float) -> Outcome:
    """``Content-Length`` and ``Transfer-Encoding: chunked`` at once, a request hidden in the
    body (the classic CL.TE smuggle)."""
    hidden = b"GET /admin/nodes HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + hidden
    data = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%s" % (len(body), body))  # fmt: skip
    return await _attack(t, "smuggling (CL + TE)", _send(data), cap=cap,
                         expect=lambda c: c == [400])  # fmt: skip


async def half_closed(t: Target, cap: float) -> Outcome:
    """A request, then the client shuts its side of the socket and waits for the answer."""

    async def send(w: asyncio.StreamWriter) -> None:
        w.write(request())
        await w.drain()
        w.write_eof()

    return await _attack(t, "half-closed socket", send, cap=cap,
                         expect=lambda c: c == [200])  # fmt: skip


async def expect_continue(t: Target, cap: float) -> Outcome:
    """``Expect: 100-continue``: the body is sent only after the go-ahead (or after 2 s)."""
    out = Outcome("Expect: 100-continue", t.name, expect_close=False)
    peaks: list[float] = []
    with peak_rss(t.pid, peaks):
        r, w = await asyncio.open_connection("127.0.0.1", t.port)
        try:
            w.write(request(extra=b"Expect: 100-continue\r\n")[: -len(CHAT)])
            got = b""
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    got = await r.readuntil(b"\r\n\r\n")
            w.write(CHAT)
            out.others_ok = await normal_request(t.port)
            async with asyncio.timeout(cap):
                rest = await r.readuntil(b"\r\n\r\n")
        finally:
            w.transport.abort()
    out.rss_mib = peaks[0]
    codes = statuses(got + rest)
    out.status = _shown(codes)
    out.status_ok = codes == [100, 200]
    return out


async def http10_stream_framing(t: Target, cap: float) -> Outcome:
    """An HTTP/1.0 client asks for a stream: the answer must not be chunked (it could not
    read it), and must end with the connection."""
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                         "stream": True, "max_tokens": 4})  # fmt: skip
    out = Outcome("HTTP/1.0 stream", t.name)
    peaks: list[float] = []
    with peak_rss(t.pid, peaks):
        r, w = await asyncio.open_connection("127.0.0.1", t.port)
        start = time.monotonic()
        try:
            w.write(request(body, version=b"1.0"))
            out.others_ok = await normal_request(t.port)
            data, out.closed_s = await watch(r, start, cap)
        finally:
            w.transport.abort()
    out.rss_mib = peaks[0]
    head, _, rest = data.partition(b"\r\n\r\n")
    chunked = b"transfer-encoding: chunked" in head.lower()
    codes = statuses(head)
    out.status = _shown(codes) + (" chunked" if chunked else " close-delimited")
    out.status_ok = codes == [200] and not chunked and rest.endswith(b"data: [DONE]\n\n")
    return out


async def stops_reading(t: Target, cap: float) -> Outcome:
    """A client asks for a long stream (100,000 tokens, ~20 MB: more than the kernel's socket
    buffers on both hops hold) with a 4 KiB receive buffer, and never reads it. Watched for
    twice the cap: the upstream takes a while to make the stream."""
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                         "stream": True, "max_tokens": 100_000})  # fmt: skip
    out = Outcome("client stops reading a stream", t.name)
    peaks: list[float] = []
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        with peak_rss(t.pid, peaks):
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", t.port))
            sock.send(request(body))
            start = time.monotonic()
            out.others_ok = await normal_request(t.port)
            poller = select.poll()
            poller.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
            while time.monotonic() - start < 2 * cap:
                if poller.poll(0):
                    out.closed_s = time.monotonic() - start
                    break
                await asyncio.sleep(0.05)
            with contextlib.suppress(OSError):
                head = sock.recv(64, socket.MSG_PEEK)
                out.status = _shown(statuses(head))
                out.status_ok = head.startswith(b"HTTP/1.1 200")
    finally:
        sock.close()
    out.rss_mib = peaks[0]
    return out


async def idle_connections(t: Target, cap: float, count: int = 10_000) -> Outcome:
    """``count`` connections opened and left idle, then a real request on a new one; closed
    counts from when the last was opened."""
    out = Outcome(f"{count:,} idle connections", t.name, memory_bound_mib=256.0)
    peaks: list[float] = []
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    with peak_rss(t.pid, peaks):
        try:
            for i in range(0, count, 500):
                opened = await asyncio.gather(
                    *(asyncio.open_connection("127.0.0.1", t.port)
                      for _ in range(min(500, count - i))),
                    return_exceptions=True,
                )  # fmt: skip
                for item in opened:
                    if isinstance(item, BaseException):
                        out.note = f"opening failed: {item}"
                        continue
                    readers.append(item[0])
                    writers.append(item[1])
            opened = time.monotonic()  # the idle time of the last opened counts from here
            out.others_ok = await normal_request(t.port, within=10)
            out.status = "200" if out.others_ok else "no answer"
            out.status_ok = out.others_ok and len(writers) == count
            closes = await asyncio.gather(*(watch(r, opened, cap) for r in readers))
            closed = sum(1 for _, s in closes if s is not None)
            if closed >= 0.99 * len(readers) and readers:
                out.closed_s = max(s for _, s in closes if s is not None)
            out.note = out.note or f"{closed:,} of {len(readers):,} closed by the server"
        finally:
            for w in writers:
                w.transport.abort()
    out.rss_mib = peaks[0]
    return out


CASES: dict[str, Case] = {
    "slowloris_headers": slowloris_headers,
    "slowloris_body": slowloris_body,
    "oversized_url": oversized_url,
    "oversized_headers": oversized_headers,
    "oversized_body": oversized_body,
    "idle_connections": idle_connections,
    "pipeline_bad_middle": pipeline_bad_middle,
    "http10_stream": http10_stream_framing,
    "expect_continue": expect_continue,
    "stops_reading": stops_reading,
    "half_closed": half_closed,
    "invalid_chunked": invalid_chunked,
    "smuggling": smuggling,
}


async def run_case(name: str, targets: dict[str, Target], cap: float, **kw: Any) -> list[Outcome]:
    """One case against every target, side by side: at the same time, except the idle
    connections (one target at a time: the client's own file descriptors)."""
    case = CASES[name]
    if name == "idle_connections":
        out = [await case(t, cap, **kw) for t in targets.values()]
    else:
        out = list(await asyncio.gather(*(case(t, cap, **kw) for t in targets.values())))
    await asyncio.sleep(0.05)  # the closed transports finish closing
    return out
