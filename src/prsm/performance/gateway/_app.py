"""The gateway's ASGI app: OpenAI-compatible routes in front of a PerformanceOrchestrator.

Written against raw ASGI (no framework) because the gateway's own share of a request has a
budget of 1 ms at the median: parse and validate (msgspec), authenticate (hashed keys),
rate-limit (token buckets), then ``perf.handle`` / ``perf.handle_stream``, whose upstream
answer goes back as the raw bytes the node sent. Every response carries ``x-request-id`` and
``x-prsm-added-time`` (milliseconds the gateway itself spent: its total minus the time spent
on the upstream; for streams, the time before the request was handed to the upstream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from ..clock import Clock
from ..dashboard._page import Dashboard
from ..errors import NoCapableNodesError, PRSMError
from ..monitoring._recorder import (
    RequestRecorder,
    server_timing,
)
from ..monitoring._registry import MetricsRegistry, merge_exposition, plain_family
from ..types import AIRequest, JSONBody, RequestKind
from ._admin import AdminApi, NodeKeyPolicy
from ._asgi import JSON, KINDS, TEXT, Receive, Scope, Send, cache_mode
from ._auth import Authenticator, TenantLimiter
from ._exchange import AsgiExchange, Exchange, NativeExchange
from ._models import parse_body
from ._ratelimit import MemoryRateLimitStore, RateLimitStore, RedisRateLimitStore
from ._responses import error_body, error_reply
from ._settings import GatewaySettings
from ._stream import stream_answer

log = logging.getLogger(__name__)

#: a 200 answer's head lines: length, request id, added milliseconds, then the other lines
_OK_HEAD = (
    b"content-type: application/json\r\ncontent-length: %d\r\nx-request-id: %s\r\n"
    b"x-prsm-added-time: %.3f\r\n%s"
)
_NO_CAPABILITIES: frozenset[str] = frozenset()

#: an ``on_startup`` / ``on_shutdown`` hook: called with the app
Hook = Callable[["GatewayApp"], Awaitable[None]]


class GatewayApp:
    """The ASGI application. ``perf`` is a :class:`~prsm.performance.PerformanceOrchestrator`
    (anything with its ``handle``/``handle_stream``/``models``/``snapshot`` API)."""

    def __init__(
        self,
        perf: Any,
        settings: GatewaySettings | None = None,
        *,
        limiter_store: RateLimitStore | None = None,
        clock: Clock | None = None,
        metrics: MetricsRegistry | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
    ) -> None:
        self.perf = perf
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.settings = settings or GatewaySettings()
        self.auth = Authenticator(self.settings)
        if limiter_store is None:
            limiter_store = (
                RedisRateLimitStore(
                    self.settings.redis_url,
                    prefix=self.settings.ratelimit_prefix,
                    idle_timeout=self.settings.redis_idle_timeout,
                    clock=clock,
                )
                if self.settings.redis_url
                else MemoryRateLimitStore()
            )
        self.limiter = TenantLimiter(limiter_store, clock)
        self.metrics: MetricsRegistry = (
            metrics or getattr(perf, "metrics", None) or MetricsRegistry()
        )
        self._requests = plain_family(
            self.metrics, "counter", "gateway_requests", "Gateway requests, by route and status.",
            ["route", "status"],
        )  # fmt: skip
        self._added = plain_family(
            self.metrics, "histogram", "gateway_added_seconds",
            "Time the gateway itself added to a request.", ["route"],
        )  # fmt: skip
        self._children: dict[tuple[str, int], Any] = {}
        self._added_children: dict[str, Any] = {}
        recorder = getattr(perf, "recorder", None)
        self.recorder: RequestRecorder = (
            recorder if isinstance(recorder, RequestRecorder) else RequestRecorder(self.metrics)
        )
        monitor = getattr(perf, "monitor", None)
        self.server_timing = monitor.settings.server_timing if monitor is not None else False
        #: an OpenTelemetry :class:`~prsm.performance.monitoring.RequestTracer`, or None (off)
        self.tracer: Any = None
        self.admin = AdminApi(
            perf,
            default_timeout=self.settings.upstream_timeout,
            policy=NodeKeyPolicy(self.settings.node_keys, perf.registry),
        )
        self.shutting_down = False
        self.in_flight = 0
        self.has_cache = getattr(perf, "cache", None) is not None
        self._dashboard: Dashboard | None = None  # read from the package on first use
        #: metrics of other processes this one answers for at ``/metrics`` (the serving
        #: parent's shared pool under ``serve --workers N``): each returns Prometheus text
        self.metric_sources: list[Callable[[], Awaitable[bytes]]] = []
        #: under ``serve --workers N``: this process's exposition made every process's
        self.combine_metrics: Callable[[bytes], Awaitable[bytes]] | None = None
        self._left_out: set[str] = set()  # families of a source this process also has

    # --- the ASGI entry (``prsm-perf serve`` calls handle_exchange from its own server)
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle_exchange(AsgiExchange(scope, receive, send, time.perf_counter()))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # reported to the server, which exits with it
                    log.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Run the ``on_startup`` hooks (e.g. one that starts local model workers, adds their
        nodes and attaches their scaler), then start the pipeline's background loops."""
        for hook in self.on_startup:
            await hook(self)
        start = getattr(self.perf, "start", None)
        if start is not None:
            await start()

    async def shutdown(self) -> None:
        """Refuse new work (``/readyz`` says so), close the pipeline (its upstreams and cache)
        and the limiter, then run the ``on_shutdown`` hooks, last added first."""
        self.shutting_down = True
        await self.perf.close()
        await self.limiter.aclose()
        if self.tracer is not None:
            self.tracer.shutdown()
        for hook in reversed(self.on_shutdown):
            await hook(self)

    # --- helpers
    def _count(self, route: str, status: int, added: float | None) -> None:
        child = self._children.get((route, status))
        if child is None:
            child = self._children[route, status] = self._requests.labels(route, str(status))
        child.inc()
        if added is not None:
            h = self._added_children.get(route)
            if h is None:
                h = self._added_children[route] = self._added.labels(route)
            h.observe(added)

    @staticmethod
    async def _reply(
        x: Exchange,
        status: int,
        body: bytes,
        added: float,
        *,
        extra: tuple[tuple[bytes, bytes], ...] | list[tuple[bytes, bytes]] = (),
        ctype: tuple[bytes, bytes] = JSON,
    ) -> None:
        headers = [
            ctype,
            (b"content-length", b"%d" % len(body)),
            (b"x-request-id", x.head.rid),
            (b"x-prsm-added-time", b"%.3f" % (added * 1e3)),
            *extra,
        ]
        await x.reply(status, headers, body)

    # --- requests
    def handle_exchange(self, x: Exchange) -> Awaitable[None]:
        """Answer one request, whichever server brought it (ASGI, or our own): a model call
        is one coroutine (the hot path), any other route another."""
        kind = KINDS.get(x.path)
        if kind is not None and x.method == "POST":
            return self._model_call(kind, x.path, x)
        return self._other_call(x, x.path if kind else "other")

    async def _other_call(self, x: Exchange, route: str) -> None:
        try:
            await self._other(x)
        except Exception as exc:
            await self._failed(x, route, exc)

    async def _failed(self, x: Exchange, route: str, exc: Exception) -> None:
        """A request failed with ``exc``: answered with the error (a :class:`PRSMError`: the
        client's or a node's), counted as gone (the client went away), or, for anything
        else (a bug, not bad input), logged and answered 500 if still possible."""
        head = x.head
        if isinstance(exc, PRSMError):
            reply = error_reply(exc)
            added = time.perf_counter() - head.t0
            self._count(route, reply.status, None)
            await self._reply(x, reply.status, reply.body, added, extra=reply.headers)
        elif isinstance(exc, ConnectionResetError):
            self._count(route, 499, None)
        else:
            log.error("request %s: unexpected error", head.rid.decode(), exc_info=exc)
            self._count(route, 500, None)
            if not head.started:
                body = error_body(f"internal error: {type(exc).__name__}", "server_error")
                await self._reply(x, 500, body, time.perf_counter() - head.t0)

    async def _model_call(self, kind: RequestKind, route: str, x: Exchange) -> None:
        """A model call (``POST`` to ``route``), in one coroutine (the hot path)."""
        self.in_flight += 1
        try:
            head = x.head
            t0 = head.t0
            tenant = self.auth.tenant(head.auth, head.api_key)
            t_auth = time.perf_counter()
            if not len(self.perf.registry):
                raise NoCapableNodesError(
                    (),
                    {},
                    reason="no nodes are configured (list them under `nodes:` in the config "
                    "file, or add one with POST /admin/nodes)",
                )
            # our server's exchange: its body and its answer need no coroutine
            native = x if isinstance(x, NativeExchange) else None
            if native is not None:
                body = native.whole_body(self.settings.max_body_bytes)
            else:
                body = await x.body(self.settings.max_body_bytes)
            typed = parse_body(kind, body)
            t_parsed = time.perf_counter()
            if tenant.token_bucket is not None or tenant.request_bucket is not None:
                await self.limiter.check(tenant)  # (no coroutine for a tenant with no limits)
            stream = bool(getattr(typed, "stream", False))
            # by position (a call by keyword costs more): model, payload, required
            # capabilities, kind, tenant, priority, timeout, context tokens, stream, cache
            # mode, id
            request = AIRequest(
                typed.model, JSONBody(body), _NO_CAPABILITIES, kind, tenant.name, 0,
                self.settings.request_timeout, 0, stream, cache_mode(head.cache_control),
                head.rid.decode(),
            )  # fmt: skip
            t_call = time.perf_counter()
            parse_s = t_parsed - t_auth
            auth_s = (t_auth - t0) + (t_call - t_parsed)
            if stream:
                await stream_answer(self, request, route, x, tenant, parse_s, auth_s)
                return
            result = await self.perf.handle(request)
            t_back = time.perf_counter()
            response = result.response
            raw = response.raw if response.raw is not None else orjson.dumps(response.content)
            upstream_time = result.timings.get("upstream", 0.0)
            added = (t_back - t0) - min(t_back - t_call, upstream_time)
            # the head as header lines, made in one formatting (the hot path: no pairs to join)
            lines = b"x-prsm-node: %s\r\n" % result.node_id.encode() if result.node_id else b""
            if self.has_cache or result.cache:
                lines += b"x-prsm-cache: %s\r\n" % (result.cache or "miss").encode()
                if result.similarity is not None:
                    lines += b"x-prsm-cache-similarity: %.4f\r\n" % result.similarity
            timings = result.timings
            if self.server_timing:
                stages = [
                    parse_s, auth_s, timings.get("cache", -1.0), timings.get("route", -1.0),
                    timings.get("queue", -1.0), upstream_time, time.perf_counter() - t_back,
                ]  # fmt: skip
                lines += b"server-timing: %s\r\n" % server_timing(stages, time.perf_counter() - t0)
            added += time.perf_counter() - t_back
            answer = _OK_HEAD % (len(raw), head.rid, added * 1e3, lines)
            if native is not None:
                native.respond(200, answer, raw)
            else:
                await x.reply(200, answer, raw)
            t_end = time.perf_counter()
            self._count(route, 200, added)
            self.recorder.gateway_stages(parse_s, auth_s, t_end - t_back)
            if self.tracer is not None:
                self._trace(request, result, t_end - t0, [
                    parse_s, auth_s, timings.get("cache", -1.0), timings.get("route", -1.0),
                    timings.get("queue", -1.0), upstream_time, t_end - t_back,
                ])  # fmt: skip
            if response.tokens and tenant.token_bucket is not None:
                await self.limiter.charge(tenant, response.tokens)
        except Exception as exc:
            await self._failed(x, route, exc)
        finally:
            self.in_flight -= 1

    def _trace(self, request: AIRequest, result: Any, total: float, stages: list[float]) -> None:
        response = result.response
        self.tracer.request(
            request_id=request.id,
            kind=request.kind.value,
            model=request.model,
            duration=total,
            stages=stages,
            node=result.node_id,
            input_tokens=getattr(response, "input_tokens", 0),
            output_tokens=getattr(response, "output_tokens", 0),
        )

    async def _exposition(self) -> bytes:
        """This process's metrics (with ``combine_metrics``, every gateway process's), then
        each source's families that it lacks; a source that fails is logged and named in a
        comment, and the rest is still served."""
        body = self.metrics.exposition()
        if self.combine_metrics is not None:
            body = await self.combine_metrics(body)
        for source in self.metric_sources:
            try:
                other = await source()
            except (OSError, TimeoutError, PRSMError) as exc:
                log.warning("/metrics: a metrics source did not answer: %r", exc)
                body += f"# a metrics source did not answer: {type(exc).__name__}\n".encode()
                continue
            body, left_out = merge_exposition(body, other)
            new = set(left_out) - self._left_out
            if new:  # once per family, not at every scrape
                self._left_out |= new
                log.warning("/metrics: families both here and in a source, kept as here: %s",
                            ", ".join(sorted(new)))  # fmt: skip
        return body

    async def _other(self, x: Exchange) -> None:
        path, method, head = x.path, x.method, x.head
        auth, api_key = head.auth, head.api_key
        status, body, ctype = 200, b"", JSON
        if path == "/healthz" and method == "GET":
            body = b'{"status":"ok"}'
        elif path == "/readyz" and method == "GET":
            status, body = self._ready()
        elif path == "/metrics" and method == "GET":
            body, ctype = await self._exposition(), TEXT
        elif path == "/v1/models" and method == "GET":
            self.auth.tenant(auth, api_key)
            now = int(time.time())
            body = orjson.dumps(
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": now, "owned_by": "prsm"}
                        for m in self.perf.models()
                    ],
                }
            )
        elif path == "/v1/cache/feedback" and method == "POST":
            tenant = self.auth.tenant(auth, api_key)
            data = await x.body(self.settings.max_body_bytes)
            status, body = await self._cache_feedback(tenant.name, data)
        elif Dashboard.handles(path):
            await self._dashboard_page(x)
            return
        elif path == "/admin" or path.startswith("/admin/"):
            # every admin path: the key (or, with none configured, a local caller) first
            self.auth.admin(
                auth, api_key, host=head.host, origin=head.origin, client=getattr(x, "client", None)
            )
            found = await self.admin.monitoring(method, path, getattr(x, "query", b""))
            if found is not None:
                status, body = found
            else:
                limit = self.settings.max_body_bytes
                data = await x.body(limit) if method in ("POST", "PUT") else b""
                status, body = self.admin.handle(method, path, data)
        elif path in KINDS:
            status = 405
            body = error_body(
                f"{path} takes POST", "invalid_request_error", code="method_not_allowed"
            )
        else:
            status = 404
            body = error_body(
                f"no route {method} {path}", "invalid_request_error", code="not_found"
            )
        added = time.perf_counter() - head.t0
        self._count("other", status, None)
        await self._reply(x, status, body, added, ctype=ctype)

    async def _dashboard_page(self, x: Exchange) -> None:
        """``GET /dashboard`` and its static files. With no admin key configured, the admin
        API's own check (a local caller only); with admin keys, the page is served without
        one, since a browser's navigation cannot send it: the page holds no data and no
        secret, and each figure it shows comes from ``/admin`` with the key it asks for."""
        head = x.head
        if not self.auth.admin_keys:
            self.auth.admin(
                head.auth, head.api_key, host=head.host, origin=head.origin,
                client=getattr(x, "client", None),
            )  # fmt: skip
        if x.method != "GET":
            body = error_body(f"{x.path} takes GET", "invalid_request_error",
                              code="method_not_allowed")  # fmt: skip
            self._count("dashboard", 405, None)
            await self._reply(x, 405, body, time.perf_counter() - head.t0)
            return
        if self._dashboard is None:
            self._dashboard = Dashboard()
        found = self._dashboard.answer(x.path, getattr(x, "query", b""))
        if found is None:
            body = error_body(f"no dashboard file {x.path}", "invalid_request_error",
                              code="not_found")  # fmt: skip
            self._count("dashboard", 404, None)
            await self._reply(x, 404, body, time.perf_counter() - head.t0)
            return
        self._count("dashboard", found.status, None)
        await self._reply(x, found.status, found.body, time.perf_counter() - head.t0,
                          extra=found.headers, ctype=found.content_type)  # fmt: skip

    async def _cache_feedback(self, tenant: str, data: bytes) -> tuple[int, bytes]:
        """``POST /v1/cache/feedback`` ``{"request_id": "<x-request-id>", "correct": false}``:
        the application's verdict on a semantic hit it was served (teaches the error bound)."""
        try:
            req = orjson.loads(data)
        except orjson.JSONDecodeError:
            req = None
        if not (isinstance(req, dict) and isinstance(req.get("request_id"), str)
                and isinstance(req.get("correct"), bool)):  # fmt: skip
            msg = 'the body must be {"request_id": "<x-request-id of the hit>", "correct": bool}'
            return 400, error_body(msg, "invalid_request_error", code="invalid_body")
        cache = getattr(self.perf, "cache", None)
        target = next(
            (c for c in (cache, *getattr(cache, "caches", ())) if hasattr(c, "feedback")), None
        )
        if target is None:
            msg = "no semantic cache is configured"
            return 404, error_body(msg, "invalid_request_error", code="not_found")
        rid = req["request_id"]
        learned = await target.feedback(rid, tenant, correct=req["correct"])
        if learned is None:
            msg = f"no semantic hit was served to request {rid!r} (or it is too old)"
            return 404, error_body(msg, "invalid_request_error", code="not_found")
        reply = {"object": "cache.feedback", "request_id": rid, "correct": req["correct"],
                 "learned": learned}  # fmt: skip
        return 200, orjson.dumps(reply)

    def _ready(self) -> tuple[int, bytes]:
        if self.shutting_down:
            return 503, b'{"status":"shutting down"}'
        nodes = len(self.perf.registry)
        if nodes == 0:
            return 503, b'{"status":"no nodes configured"}'
        return 200, orjson.dumps({"status": "ready", "nodes": nodes, "in_flight": self.in_flight})


def create_app(
    perf: Any,
    settings: GatewaySettings | None = None,
    *,
    limiter_store: RateLimitStore | None = None,
    clock: Clock | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> GatewayApp:
    """The gateway's ASGI app in front of ``perf`` (a PerformanceOrchestrator)."""
    return GatewayApp(
        perf,
        settings,
        limiter_store=limiter_store,
        clock=clock,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )
