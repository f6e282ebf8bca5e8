"""The upstream simulator's HTTP server: raw asyncio protocol + httptools, keep-alive.

A fast, small OpenAI-compatible server (``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/models``; streams as server-sent events) whose latency, pace and
failures follow :class:`SimSettings`; ``GET``/``POST /_control`` reads and changes them
while it runs. Requests on one connection are answered in order.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson

from ..errors import ConfigError
from ._policy import (
    STREAM_DONE,
    answer_tokens,
    completion_body,
    decide,
    embeddings_body,
    error_body,
    models_body,
    stream_chunk,
)
from ._settings import SimSettings, apply_control

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    405: b"Method Not Allowed",
    422: b"Unprocessable Entity",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
}
_KIND_BY_PATH = {
    b"/v1/chat/completions": "chat",
    b"/v1/completions": "completion",
    b"/v1/embeddings": "embedding",
}


@dataclass
class SimStats:
    """What the simulator has served (``GET /_control`` shows it)."""

    requests: int = 0
    by_path: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    open_connections: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "errors": dict(self.errors),
            "open_connections": self.open_connections,
        }


class UpstreamSimulator:
    """The simulator's state: settings (changeable at run time), seeded randomness, stats."""

    def __init__(self, settings: SimSettings | None = None) -> None:
        self.settings = settings or SimSettings()
        self.rng = random.Random(self.settings.seed)
        self.stats = SimStats()
        self._server: asyncio.base_events.Server | None = None

    def control(self, changes: Any) -> SimSettings:
        """Apply run-time changes (a new ``seed`` re-seeds the randomness)."""
        new = apply_control(self.settings, changes)
        if isinstance(changes, dict) and "seed" in changes:
            self.rng = random.Random(new.seed)
        self.settings = new
        return new

    async def start(self) -> int:
        """Listen on the configured host and port; returns the port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SimProtocol(self), self.settings.host, self.settings.port, backlog=4096
        )
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@dataclass(slots=True)
class _Req:
    method: bytes
    path: bytes
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool


class _SimProtocol(asyncio.Protocol):
    def __init__(self, sim: UpstreamSimulator) -> None:
        self.sim = sim
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.queue: collections.deque[_Req] = collections.deque()
        self.busy = False
        self.closed = False
        self.pending: asyncio.Handle | asyncio.Task[None] | None = None

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sim.stats.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.sim.stats.open_connections -= 1
        if self.pending is not None:
            self.pending.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(400, error_body("malformed HTTP request", "invalid_request_error"), False)
            self._close()

    # --- httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0]
        req = _Req(
            self.parser.get_method(),
            path,
            self.headers,
            b"".join(self.body),
            self.parser.should_keep_alive(),
        )
        self.queue.append(req)
        if not self.busy:
            self._next()

    # --- answering
    def _next(self) -> None:
        while self.queue and not self.busy and not self.closed:
            self._handle(self.queue.popleft())

    def _done(self) -> None:
        self.busy = False
        self.pending = None
        self._next()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _write(
        self,
        status: int,
        body: bytes,
        keep_alive: bool,
        extra: bytes = b"",
        ctype: bytes = b"application/json",
    ) -> None:
        assert self.transport is not None
        head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s" % (
            status,
            _REASONS.get(status, b"Unknown"),
            ctype,
            len(body),
            extra,
        )
        if not keep_alive:
            head += b"connection: close\r\n"
        self.transport.write(head + b"\r\n" + body)
        if not keep_alive:
            self._close()

    def _handle(self, req: _Req) -> None:
        sim = self.sim
        settings = sim.settings
        stats = sim.stats
        stats.requests += 1
        path = req.path.decode("latin-1")
        stats.by_path[path] += 1
        now = int(time.time())
        if req.path == b"/_control":
            self._control(req)
            return
        if req.path == b"/v1/models" and req.method == b"GET":
            self._write(200, models_body(settings, now), req.keep_alive)
            return
        if req.path == b"/healthz":
            self._write(200, b'{"status":"ok"}', req.keep_alive)
            return
        kind = _KIND_BY_PATH.get(req.path)
        if kind is None:
            self._write(
                404, error_body(f"no route {path}", "invalid_request_error"), req.keep_alive
            )
            return
        if req.method != b"POST":
            self._write(405, error_body("use POST", "invalid_request_error"), req.keep_alive)
            return
        if settings.api_key is not None:
            got = req.headers.get(b"authorization", b"")
            if got != b"Bearer " + settings.api_key.encode():
                stats.errors["401"] += 1
                self._write(
                    401,
                    error_body("invalid API key", "invalid_request_error", "invalid_api_key"),
                    req.keep_alive,
                )
                return
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            stats.errors["400"] += 1
            self._write(
                400, error_body(f"malformed JSON: {exc}", "invalid_request_error"), req.keep_alive
            )
            return
        if not isinstance(body, dict):
            stats.errors["400"] += 1
            self._write(
                400,
                error_body("body must be a JSON object", "invalid_request_error"),
                req.keep_alive,
            )
            return
        model = body.get("model")
        if model not in settings.models:
            stats.errors["404"] += 1
            self._write(
                404,
                error_body(
                    f"model {model!r} not served here",
                    "invalid_request_error",
                    "model_not_found",
                    "model",
                ),
                req.keep_alive,
            )
            return
        stream = bool(body.get("stream")) and kind != "embedding"
        decision = decide(settings, sim.rng, stream=stream)
        if decision.error == "truncate":
            stats.errors["truncate"] += 1
            self._truncate(kind, settings, body, stream=stream, request_no=stats.requests, now=now)
            return
        if decision.error is not None:
            stats.errors[decision.error] += 1
            self._fail(decision.error, req.keep_alive)
            return
        request_no = stats.requests
        if stream and decision.delay <= 0 and settings.tokens_per_second <= 0:
            # nothing to pace: the whole stream in one write
            parts = [_stream_head(req.keep_alive)]
            parts.extend(_frames(kind, settings, body, request_no=request_no, now=now))
            self.transport.write(b"".join(parts))  # type: ignore[union-attr]
            if not req.keep_alive:
                self._close()
            return
        if stream:
            self.busy = True
            self.pending = asyncio.get_running_loop().create_task(
                self._stream(
                    kind,
                    settings,
                    body,
                    ttft=decision.delay,
                    request_no=request_no,
                    now=now,
                    keep_alive=req.keep_alive,
                )
            )
            return
        if kind == "embedding":
            payload = embeddings_body(settings, body)
        else:
            payload = completion_body(kind, settings, body, request_no, now)
        if decision.delay <= 0:
            self._write(200, payload, req.keep_alive)
            return
        self.busy = True

        def later() -> None:
            if not self.closed:
                self._write(200, payload, req.keep_alive)
            self._done()

        self.pending = asyncio.get_running_loop().call_later(decision.delay, later)

    def _truncate(
        self,
        kind: str,
        settings: SimSettings,
        body: dict[str, Any],
        *,
        stream: bool,
        request_no: int,
        now: int,
    ) -> None:
        """Send the head and half of the answer (or of the stream's chunks), then close."""
        transport = self.transport
        assert transport is not None
        if stream:
            frames = _frames(kind, settings, body, request_no=request_no, now=now)
            transport.write(_stream_head(True) + b"".join(frames[: len(frames) // 2]))
        else:
            if kind == "embedding":
                payload = embeddings_body(settings, body)
            else:
                payload = completion_body(kind, settings, body, request_no, now)
            head = (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            )
            transport.write(head % len(payload) + payload[: len(payload) // 2])
        transport.abort()
        self.closed = True

    def _fail(self, kind: str, keep_alive: bool) -> None:
        if kind == "500":
            self._write(500, error_body("simulated server error", "server_error"), keep_alive)
        elif kind == "429":
            self._write(
                429,
                error_body("simulated rate limit", "rate_limit_error", "rate_limit_exceeded"),
                keep_alive,
                b"retry-after: 1\r\n",
            )
        elif kind == "drop":
            assert self.transport is not None
            self.transport.abort()
            self.closed = True
        else:  # "timeout": never answer; the client gives up and closes
            self.busy = True

    def _control(self, req: _Req) -> None:
        sim = self.sim
        if req.method == b"POST":
            try:
                sim.control(orjson.loads(req.body or b"{}"))
            except orjson.JSONDecodeError as exc:
                self._write(
                    400,
                    error_body(f"malformed JSON: {exc}", "invalid_request_error"),
                    req.keep_alive,
                )
                return
            except ConfigError as exc:
                self._write(
                    422,
                    error_body(str(exc), "invalid_request_error", None, exc.field),
                    req.keep_alive,
                )
                return
        out = {"settings": sim.settings.as_dict(), "stats": sim.stats.as_dict()}
        self._write(200, orjson.dumps(out), req.keep_alive)

    async def _stream(
        self,
        kind: str,
        settings: SimSettings,
        body: dict[str, Any],
        *,
        ttft: float,
        request_no: int,
        now: int,
        keep_alive: bool,
    ) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(_stream_head(keep_alive))
        if ttft > 0:
            await asyncio.sleep(ttft)
        gap = 1.0 / settings.tokens_per_second if settings.tokens_per_second > 0 else 0.0
        frames = _frames(kind, settings, body, request_no=request_no, now=now)
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            if self.closed:
                return
            transport.write(frame)
            if gap > 0 and i < last - 1:  # the [DONE] event follows the last token at once
                await asyncio.sleep(gap)
        if not keep_alive:
            self._close()
        self._done()


def _stream_head(keep_alive: bool) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
    )
    if not keep_alive:
        head += b"connection: close\r\n"
    return head + b"\r\n"


def _frames(
    kind: str, settings: SimSettings, body: dict[str, Any], *, request_no: int, now: int
) -> list[bytes]:
    """A streamed answer as HTTP chunks: one per token, then ``[DONE]`` and the last chunk."""
    n = answer_tokens(settings, body, stream=True)
    model = str(body.get("model"))
    out = []
    for i in range(n):
        event = stream_chunk(
            kind, settings, model=model, request_no=request_no, now=now, i=i, last=i == n - 1
        )
        out.append(b"%x\r\n%s\r\n" % (len(event), event))
    out.append(b"%x\r\n%s\r\n0\r\n\r\n" % (len(STREAM_DONE), STREAM_DONE))
    return out


def run_simulator(settings: SimSettings, *, announce: bool = True) -> None:
    """Run a simulator until interrupted (uvloop when installed)."""

    async def main() -> None:
        sim = UpstreamSimulator(settings)
        port = await sim.start()
        if announce:
            print(
                f"prsm-perf upstream-sim {settings.name!r} listening on "
                f"http://{settings.host}:{port}/v1 (models: {', '.join(settings.models)})",
                flush=True,
            )
        await sim.serve_forever()

    try:
        import uvloop
    except ImportError:  # the standard loop works, only slower
        asyncio.run(main())
    else:
        uvloop.run(main())
