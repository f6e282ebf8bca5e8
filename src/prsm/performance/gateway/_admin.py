"""The admin API: list, add, update, drain and remove nodes; read breaker states.

``GET /admin/nodes``, ``POST /admin/nodes`` (a node as in the config file; an existing id
is updated), ``DELETE /admin/nodes/{id}``, ``POST /admin/nodes/{id}/drain``,
``GET /admin/breakers``; monitoring: ``GET /admin/metrics/current``,
``GET /admin/metrics/history?metric=&labels=&since=&until=&step=&agg=``, ``GET /admin/alerts``
(see :mod:`prsm.performance.monitoring._admin`).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import ConfigError, RequestValidationError
from ..monitoring._admin import monitoring_route
from ..routing._node import node_from_mapping
from ._responses import error_body


def _jsonable(value: Any) -> Any:
    if isinstance(value, (frozenset, set, tuple)):
        return sorted(value, key=str) if isinstance(value, (frozenset, set)) else list(value)
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_jsonable)


def _not_found(what: str) -> tuple[int, bytes]:
    return 404, error_body(what, "invalid_request_error", code="not_found")


class AdminApi:
    """Answers the admin routes; a node added without a ``timeout`` gets ``default_timeout``."""

    def __init__(self, perf: Any, *, default_timeout: float | None = None) -> None:
        self.perf = perf
        self.default_timeout = default_timeout

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        parts = [p for p in path.split("/") if p][1:]  # drop "admin"
        if parts == ["nodes"] and method == "GET":
            return 200, dumps({"nodes": self.perf.snapshot().get("nodes")})
        if parts == ["breakers"] and method == "GET":
            return 200, dumps({"breakers": self.perf.breakers.states()})
        if parts == ["nodes"] and method == "POST":
            return self._upsert(body)
        if len(parts) == 2 and parts[0] == "nodes" and method == "DELETE":
            node_id = parts[1]
            if node_id not in self.perf.registry:
                return _not_found(f"no node {node_id!r}")
            self.perf.remove_node(node_id)
            return 200, dumps({"removed": node_id})
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "drain" and method == "POST":
            node_id = parts[1]
            if node_id not in self.perf.registry:
                return _not_found(f"no node {node_id!r}")
            self.perf.drain_node(node_id)
            return 200, dumps({"draining": node_id})
        return _not_found(f"no admin route {method} {path}")

    async def monitoring(self, method: str, path: str, query: bytes) -> tuple[int, bytes] | None:
        """The monitoring routes' answer (JSON for the dashboard), or ``None`` for others."""
        return await monitoring_route(getattr(self.perf, "monitor", None), method, path, query)

    def _upsert(self, body: bytes) -> tuple[int, bytes]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestValidationError("(body)", f"malformed JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RequestValidationError("(body)", "must be a JSON object describing a node")
        try:
            spec = node_from_mapping(data)
        except TypeError as exc:
            raise ConfigError("node", str(exc)) from None
        if spec.timeout is None and self.default_timeout is not None:
            spec = spec.with_changes(timeout=self.default_timeout)
        if spec.id in self.perf.registry:
            self.perf.update_node(spec)
            return 200, dumps({"updated": spec.id})
        self.perf.add_node(spec)
        return 201, dumps({"added": spec.id})
