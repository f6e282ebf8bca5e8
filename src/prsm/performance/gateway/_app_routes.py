"""The gateway's routes other than a model call: the base of :class:`~._app.GatewayApp`.

Health and readiness, ``/metrics`` (this process's exposition merged with its sources'),
``/v1/models``, ``/v1/cache/feedback``, the dashboard's files and the admin API; each answered
through :class:`~._app_state.AppState`'s shared replies.
"""

from __future__ import annotations

import logging
import time

import orjson

from ..dashboard._page import Dashboard
from ..errors import PRSMError
from ..monitoring._registry import merge_exposition
from ._app_state import AppState
from ._asgi import JSON, KINDS, TEXT
from ._exchange import Exchange
from ._responses import error_body

log = logging.getLogger("prsm.performance.gateway._app")


class AppRoutes(AppState):
    """The routes of a :class:`~._app.GatewayApp` that are not a model call."""

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
