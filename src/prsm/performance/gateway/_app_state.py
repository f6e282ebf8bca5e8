"""The gateway app's state and its shared replies: the base of :class:`~._app_routes.AppRoutes`.

:class:`AppState` builds what the app holds (settings, authenticator, rate limiter, metrics
families, recorder, admin API, the ``/metrics`` sources) and answers for every route alike:
counting a request, replying with the gateway's headers, answering a failure.
:class:`~._app_routes.AppRoutes` adds the routes other than a model call, and
:class:`~._app.GatewayApp` the ASGI entry, the lifecycle and the model calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..clock import Clock
from ..dashboard._page import Dashboard
from ..errors import PRSMError
from ..monitoring._plain import PlainCounter
from ..monitoring._recorder import RequestRecorder
from ..monitoring._registry import MetricsRegistry, plain_family
from ._admin import AdminApi, NodeKeyPolicy
from ._asgi import JSON
from ._auth import Authenticator, TenantLimiter
from ._exchange import Exchange
from ._ratelimit import MemoryRateLimitStore, RateLimitStore, RedisRateLimitStore
from ._responses import error_body, error_reply
from ._settings import GatewaySettings

if TYPE_CHECKING:
    from ._app import GatewayApp

log = logging.getLogger("prsm.performance.gateway._app")

#: an ``on_startup`` / ``on_shutdown`` hook: called with the app
Hook = Callable[["GatewayApp"], Awaitable[None]]


class AppState:
    """What a :class:`~._app.GatewayApp` holds, and the replies every route shares."""

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
        self._children: dict[tuple[str, int], PlainCounter] = {}
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

    # --- helpers
    def _count(self, route: str, status: int, added: float | None) -> None:
        child = self._children.get((route, status))
        if child is None:
            child = self._children[route, status] = self._requests.labels(route, str(status))
        child.value += 1.0  # (the plain counter's inc(), inline: one call less a request)
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
