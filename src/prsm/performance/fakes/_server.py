"""The upstream simulator's server: its request handler on the project's HTTP/1.1 server core
(:class:`~prsm.performance.http.HttpServer`: keep-alive, pipelining, limits and timeouts).

A fast, small OpenAI-compatible server (``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/models``; streams as server-sent events) whose latency, pace and
failures follow :class:`SimSettings`; ``GET``/``POST /_control`` reads and changes them
while it runs. An answer due at once is written from the parser's callback (no task); a
delayed one or a paced stream runs as the connection's task.

``GET /metrics`` publishes its load under vLLM's names, from its real state:
``vllm:num_requests_running`` (requests being answered: waiting out their latency or
streaming) and ``vllm:num_requests_waiting`` (requests queued behind another on their
connection), so the gateway's node poller reads it as it reads a vLLM server. It has no KV
cache, so it publishes no cache use.
"""

from __future__ import annotations

import asyncio
import collections
import random
import ssl as _ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from ..errors import ConfigError
from ..http._exchange import ServerExchange
from ..http._server import HttpServer
from ._policy import (
    STREAM_DONE,
    choices,
    completion_body,
    continuation,
    decide,
    embeddings_body,
    error_body,
    models_body,
    prompts,
    stream_chunk,
    stream_words,
    usage_chunk,
    wants_usage,
)
from ._settings import SimSettings, apply_control

Exchange = ServerExchange[list[tuple[bytes, bytes]]]
_METRICS_HEAD = b"content-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: %d\r\n"

_KIND_BY_PATH = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completion",
    "/v1/embeddings": "embedding",
}
_JSON_HEAD = b"content-type: application/json\r\ncontent-length: %d\r\n%s"
_STREAM_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
#: the largest request body the simulator reads (larger: 413)
MAX_BODY = 16 * 1024 * 1024


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


def _reply(x: Exchange, status: int, body: bytes, extra: bytes = b"") -> None:
    x.respond(status, _JSON_HEAD % (len(body), extra), body)


def _authorization(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"authorization":
            return value
    return b""


class UpstreamSimulator:
    """The simulator's state: settings (changeable at run time), seeded randomness, stats."""

    def __init__(self, settings: SimSettings | None = None) -> None:
        self.settings = settings or SimSettings()
        self.rng = random.Random(self.settings.seed)
        self._stats = SimStats()
        self.server: HttpServer[list[tuple[bytes, bytes]]] = HttpServer(
            self.handle,
            self.settings.http,
            max_body=MAX_BODY,
            header_names=(b"authorization",),
        )
        self._serving: asyncio.Future[None] | None = None
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(_LoadCollector(self))

    def load(self) -> tuple[int, int]:
        """(requests being answered, requests queued behind another on their connection)."""
        running = waiting = 0
        for conn in self.server.connections:
            running += conn.task is not None
            waiting += len(conn.queue)
        return running, waiting

    @property
    def stats(self) -> SimStats:
        self._stats.open_connections = len(self.server.connections)
        return self._stats

    def control(self, changes: Any) -> SimSettings:
        """Apply run-time changes (a new ``seed`` re-seeds the randomness)."""
        new = apply_control(self.settings, changes)
        if isinstance(changes, dict) and "seed" in changes:
            self.rng = random.Random(new.seed)
        self.settings = new
        return new

    async def start(self, *, ssl: _ssl.SSLContext | None = None) -> int:
        """Listen on the configured host and port (TLS with ``ssl``); returns the port."""
        return await self.server.start(self.settings.host, self.settings.port, ssl=ssl)

    async def serve_forever(self) -> None:
        """Serve until cancelled, then close."""
        if self.server.loop is None:
            await self.start()
        self._serving = asyncio.get_running_loop().create_future()
        try:
            await self._serving
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop: close every connection (what is in flight is cut)."""
        if not self.server.closing:
            await self.server.shutdown(0)

    # --- answering
    def handle(self, x: Exchange) -> Awaitable[None] | None:
        """Answer one request: at once (``None``), or later (an awaitable that answers)."""
        sim = self
        if x.path == "/metrics" and x.method == "GET":  # a scrape is not a request served
            text = generate_latest(self.metrics)
            x.respond(200, _METRICS_HEAD % len(text), text)
            return None
        settings = sim.settings
        stats = sim._stats
        stats.requests += 1
        path = x.path
        stats.by_path[path] += 1
        now = int(time.time())
        if x.size > MAX_BODY:
            _reply(x, 413, error_body("request body too large", "invalid_request_error"))
            return None
        if path == "/_control":
            self._control(x)
            return None
        if path == "/v1/models" and x.method == "GET":
            _reply(x, 200, models_body(settings, now))
            return None
        if path == "/healthz":
            _reply(x, 200, b'{"status":"ok"}')
            return None
        kind = _KIND_BY_PATH.get(path)
        if kind is None:
            _reply(x, 404, error_body(f"no route {path}", "invalid_request_error"))
            return None
        if x.method != "POST":
            _reply(x, 405, error_body("use POST", "invalid_request_error"))
            return None
        key = settings.api_key
        if key is not None and _authorization(x.head) != b"Bearer " + key.encode():
            stats.errors["401"] += 1
            body = error_body("invalid API key", "invalid_request_error", "invalid_api_key")
            _reply(x, 401, body)
            return None
        try:
            body = orjson.loads(x.body_bytes)
        except orjson.JSONDecodeError as exc:
            stats.errors["400"] += 1
            _reply(x, 400, error_body(f"malformed JSON: {exc}", "invalid_request_error"))
            return None
        if not isinstance(body, dict):
            stats.errors["400"] += 1
            _reply(x, 400, error_body("body must be a JSON object", "invalid_request_error"))
            return None
        model = body.get("model")
        if model not in settings.models:
            stats.errors["404"] += 1
            message = f"model {model!r} not served here"
            _reply(x, 404, error_body(message, "invalid_request_error", "model_not_found", "model"))
            return None
        stream = bool(body.get("stream")) and kind != "embedding"
        if kind != "embedding":
            try:
                choices(body)
                if stream:
                    continuation(body)
            except ValueError as exc:  # as vLLM answers a request or continuation it cannot make
                stats.errors["400"] += 1
                _reply(x, 400, error_body(str(exc), "invalid_request_error"))
                return None
        decision = decide(settings, sim.rng, stream=stream)
        if decision.error == "truncate":
            stats.errors["truncate"] += 1
            self._truncate(
                x, kind, settings, body, stream=stream, request_no=stats.requests, now=now
            )
            return None
        if decision.error is not None:
            stats.errors[decision.error] += 1
            return self._fail(x, decision.error)
        request_no = stats.requests
        if stream:
            frames = _frames(kind, settings, body, request_no=request_no, now=now)
            if decision.delay <= 0 and settings.tokens_per_second <= 0:
                x.begin(200, _STREAM_HEADERS)  # nothing to pace: the whole stream in one write
                x.send_all(frames)
                x.finish()
                return None
            gap = 1.0 / settings.tokens_per_second if settings.tokens_per_second > 0 else 0.0
            return _stream(x, frames, ttft=decision.delay, gap=gap)
        if kind == "embedding":
            payload = embeddings_body(settings, body)
        else:
            payload = completion_body(kind, settings, body, request_no, now)
        if decision.delay <= 0:
            _reply(x, 200, payload)
            return None
        return _later(x, decision.delay, payload)

    def _truncate(
        self,
        x: Exchange,
        kind: str,
        settings: SimSettings,
        body: dict[str, Any],
        *,
        stream: bool,
        request_no: int,
        now: int,
    ) -> None:
        """Send the head and half of the answer (or of the stream's chunks), then drop the
        connection."""
        if stream:
            frames = _frames(kind, settings, body, request_no=request_no, now=now)
            x.begin(200, _STREAM_HEADERS)
            x.send_all(frames[: len(frames) // 2])
        else:
            if kind == "embedding":
                payload = embeddings_body(settings, body)
            else:
                payload = completion_body(kind, settings, body, request_no, now)
            head = b"HTTP/1.1 200 OK\r\n" + _JSON_HEAD % (len(payload), b"") + b"\r\n"
            x.conn.transport.write(head + payload[: len(payload) // 2])
        x.abort()

    def _fail(self, x: Exchange, kind: str) -> Awaitable[None] | None:
        if kind == "500":
            _reply(x, 500, error_body("simulated server error", "server_error"))
        elif kind == "429":
            body = error_body("simulated rate limit", "rate_limit_error", "rate_limit_exceeded")
            _reply(x, 429, body, b"retry-after: 1\r\n")
        elif kind == "drop":
            x.abort()
        else:  # "timeout": never answer; the client gives up and closes
            return x.disconnected()
        return None

    def _control(self, x: Exchange) -> None:
        if x.method == "POST":
            try:
                self.control(orjson.loads(x.body_bytes or b"{}"))
            except orjson.JSONDecodeError as exc:
                body = error_body(f"malformed JSON: {exc}", "invalid_request_error")
                _reply(x, 400, body)
                return None
            except ConfigError as exc:
                body = error_body(str(exc), "invalid_request_error", None, exc.field)
                _reply(x, 422, body)
                return None
        out = {"settings": self.settings.as_dict(), "stats": self.stats.as_dict()}
        _reply(x, 200, orjson.dumps(out))
        return None


class _LoadCollector:
    """The simulator's load under vLLM's metric names."""

    def __init__(self, sim: UpstreamSimulator) -> None:
        self.sim = sim

    def collect(self) -> list[Metric]:
        running, waiting = self.sim.load()
        labels = ["engine", "model_name"]
        values = ["0", self.sim.settings.models[0]]
        run = GaugeMetricFamily(
            "vllm:num_requests_running", "Number of requests in model execution batches.",
            labels=labels,
        )  # fmt: skip
        run.add_metric(values, running)
        wait = GaugeMetricFamily(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.",
            labels=labels,
        )  # fmt: skip
        wait.add_metric(values, waiting)
        return [run, wait]


async def _later(x: Exchange, delay: float, payload: bytes) -> None:
    await asyncio.sleep(delay)
    if not x.conn.closed:
        _reply(x, 200, payload)


async def _stream(x: Exchange, frames: list[bytes], *, ttft: float, gap: float) -> None:
    """A paced stream: its head at once, the first token after ``ttft``, then one token every
    ``gap`` seconds (the ``[DONE]`` event follows the last token at once)."""
    try:
        x.begin(200, _STREAM_HEADERS)
        x.send(b"")
        if ttft > 0:
            await asyncio.sleep(ttft)
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            await x.write(frame)
            if gap > 0 and i < last - 1:
                await asyncio.sleep(gap)
        x.finish()
    except ConnectionResetError:
        return  # the client went away mid-stream


def _frames(
    kind: str, settings: SimSettings, body: dict[str, Any], *, request_no: int, now: int
) -> list[bytes]:
    """A streamed answer's events: one per token and choice (token by token, each choice's in
    index order, as vLLM sends them; a continuation's: the tokens after its final message's or
    prompt's), a completion's first with its prompt before it when ``echo`` is set, the usage
    when asked for, then ``[DONE]``."""
    model = str(body.get("model"))
    count = choices(body)
    answers = [stream_words(settings, body, c) for c in range(count)]
    heads = prompts(body) if kind == "completion" and body.get("echo") else None
    per = count // len(prompts(body))
    steps = max(1, len(answers[0]))  # (a continuation with nothing left to say just stops)
    out: list[bytes] = []
    for i in range(steps):
        for c, words in enumerate(answers):
            word = words[i] if words else ""
            if heads is not None and i == 0:
                word = heads[c // per] + word
            out.append(stream_chunk(kind, settings, model=model, request_no=request_no, now=now,
                                    i=i, last=i == steps - 1, word=word, index=c))  # fmt: skip
    if wants_usage(body):
        out.append(usage_chunk(kind, settings, model=model, request_no=request_no, now=now,
                               body=body, completion=sum(map(len, answers))))  # fmt: skip
    out.append(STREAM_DONE)
    return out


def run_simulator(settings: SimSettings, *, announce: bool = True) -> None:
    """Run a simulator until interrupted (uvloop)."""
    import uvloop

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
        uvloop.run(main())
    except KeyboardInterrupt:
        return
