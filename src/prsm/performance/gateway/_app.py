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
from collections.abc import Awaitable, Sequence
from typing import Any

import orjson

from ..clock import Clock
from ..errors import NoCapableNodesError
from ..monitoring._stages import server_timing
from ..types import AIRequest, JSONBody, RequestKind, checked_request
from ._app_routes import AppRoutes
from ._app_state import Hook
from ._asgi import KINDS, Receive, Scope, Send, cache_mode
from ._exchange import AsgiExchange, Exchange, NativeExchange
from ._models import parse_body
from ._ratelimit import RateLimitStore
from ._settings import GatewaySettings
from ._stream import stream_answer

log = logging.getLogger(__name__)

#: a 200 answer's head lines: length, request id, added milliseconds, then the other lines
_OK_HEAD = (
    b"content-type: application/json\r\ncontent-length: %d\r\nx-request-id: %s\r\n"
    b"x-prsm-added-time: %.3f\r\n%s"
)
#: the same head with its status line and the body: a whole 200 answer on a kept connection
_OK_WHOLE = b"HTTP/1.1 200 OK\r\n" + _OK_HEAD + b"\r\n%s"


class GatewayApp(AppRoutes):
    """The ASGI application. ``perf`` is a :class:`~prsm.performance.PerformanceOrchestrator`
    (anything with its ``handle``/``handle_stream``/``models``/``snapshot`` API).

    Its state and shared replies are :class:`~._app_state.AppState`'s, its routes other than
    a model call :class:`~._app_routes.AppRoutes`'; here: the ASGI entry, the lifecycle and
    the model calls (the hot path)."""

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

    async def _model_call(self, kind: RequestKind, route: str, x: Exchange) -> None:
        """A model call (``POST`` to ``route``), in one coroutine (the hot path)."""
        self.in_flight += 1
        try:
            head = x.head
            t0 = head.t0
            tenant = self.auth.tenant(head.auth, head.api_key)
            t_auth = time.perf_counter()
            if not self.perf.registry.by_id:  # (no ``__len__`` call)
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
            # (its values checked already: the kind from KINDS, the settings' timeout, a
            # cache mode from cache_mode; by position: model, payload, kind, tenant, timeout,
            # stream, cache mode, id)
            request = checked_request(
                typed.model, JSONBody(body), kind, tenant.name, self.settings.request_timeout,
                stream, cache_mode(head.cache_control), head.rid.decode(),
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
            values = (len(raw), head.rid, added * 1e3, lines, raw)
            if native is not None:  # (the head and body formatted at once: see respond_ok)
                native.respond_ok(_OK_WHOLE, _OK_HEAD, values)
            else:
                await x.reply(200, _OK_HEAD % values[:-1], raw)
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
