"""The admin API: list, add, update, drain and remove nodes; read breaker states.

``GET /admin/nodes``, ``POST /admin/nodes`` (a node as in the config file; an existing id
is updated), ``DELETE /admin/nodes/{id}``, ``POST /admin/nodes/{id}/drain``,
``GET /admin/breakers``, ``GET /admin/scaling`` (the scaler's policy, steps and actions),
``POST /admin/scaling/load`` (another gateway pod's load, for the Deployment's scaler),
``GET /admin/scaling/history?since=T[&sessions=1]`` (a leading scaler candidate's history, for a
standby; with its users' sessions where asked),
``GET /admin/analytics?since=24h`` (trends, anomalies, insights, recommendations);
monitoring: ``GET /admin/metrics/current``,
``GET /admin/metrics/history?metric=&labels=&since=&until=&step=&agg=``, ``GET /admin/alerts``
(see :mod:`prsm.performance.monitoring._admin`). Who may call it is the app's
:meth:`Authenticator.admin` check, made before any admin route runs.

A node posted here is checked as one from the config file is (:func:`validate_node`: typed
fields, a usable ``http(s)`` URL, its key variable set) and more: it may take its API key only
from a variable the config allows, towards a host allowed for that variable
(:class:`NodeKeyPolicy`), so the admin API cannot be made to send a secret elsewhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..analytics._settings import AnalyticsSettings
from ..errors import ConfigError, RequestValidationError
from ..monitoring._admin import monitoring_route, parse_duration
from ..routing._node import NodeSpec
from ..upstreams._http import check_nodes
from ._responses import error_body
from ._settings import NodeKeySettings

#: a scaler candidate's history, for a standby
HISTORY = "/admin/scaling/history"
#: the node field that names another upstream than HTTP (local workers: ``"local"``)
UPSTREAM_TAG = "upstream"


def _origin(url: str | None) -> tuple[str, str]:
    """``(host, host:port)`` of ``url`` (lower case; the scheme's port when none is given)."""
    if not url:
        return "", ""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number: check_nodes names it
        return host, host
    return host, f"{host}:{port}"


def _allowed(url: str | None, patterns: Iterable[str]) -> bool:
    host, origin = _origin(url)
    for pattern in patterns:
        if pattern in ("*", host, origin):
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class NodeKeyPolicy:
    """Which environment variables nodes may take API keys from, and where each key may go.

    ``rules`` come from ``gateway.node_keys`` (host names, ``host:port``, ``*.domain`` or
    ``*``); every ``trusted`` node (those of the config file) adds its own variable towards
    its own host and port.
    """

    def __init__(self, rules: Iterable[NodeKeySettings], trusted: Iterable[NodeSpec] = ()):
        self.hosts: dict[str, set[str]] = {}
        for rule in rules:
            self.hosts.setdefault(rule.env, set()).update(rule.hosts)
        for node in trusted:
            host, origin = _origin(node.url)
            if node.api_key_env and host:
                self.hosts.setdefault(node.api_key_env, set()).add(origin)

    def check(self, spec: NodeSpec) -> None:
        """A :class:`ConfigError` naming the field unless ``spec``'s key may go to its URL."""
        env = spec.api_key_env
        if not env:
            return
        allowed = self.hosts.get(env)
        if allowed is None:
            raise ConfigError(
                f"node[{spec.id}].api_key_env",
                f"{env} is not a variable nodes may take API keys from (allowed: "
                f"{sorted(self.hosts) or 'none'}); list it under gateway.node_keys",
            )
        if not _allowed(spec.url, allowed):
            raise ConfigError(
                f"node[{spec.id}].url",
                f"the key in {env} may be sent only to {sorted(allowed)}, "
                f"not to {_origin(spec.url)[1]!r}",
            )


def node_spec(data: Any) -> NodeSpec:
    """A :class:`NodeSpec` from a config-file or admin mapping, every field type-checked
    (a :class:`ConfigError` naming ``node[ID].FIELD`` otherwise)."""
    from ..config import build

    if not isinstance(data, Mapping):
        raise ConfigError("node", f"must be a mapping describing a node, got {type(data).__name__}")
    ident = data.get("id")
    where = f"node[{ident}]" if isinstance(ident, str) and ident else "node"
    if "id" not in data:
        raise ConfigError(f"{where}.id", "is required")
    try:
        return build(NodeSpec, data, where)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(where, str(exc)) from None


def validate_node(
    data: Any,
    policy: NodeKeyPolicy,
    *,
    default_timeout: float | None = None,
    routes: Iterable[str] = (),
    http: bool = True,
    environ: Mapping[str, str] | None = None,
) -> NodeSpec:
    """The node ``data`` describes, checked as the gateway checks a config file's nodes (a
    :class:`ConfigError` naming the field otherwise). A node tagged with another upstream
    (``meta.upstream``) must name one the gateway has (``routes``); ``http``: untagged nodes
    are called over HTTP (so need a usable URL, and their key variable set)."""
    spec = node_spec(data)
    if spec.timeout is None and default_timeout is not None:
        spec = spec.with_changes(timeout=default_timeout)
    tag = spec.meta.get(UPSTREAM_TAG)
    if tag is not None and str(tag) not in set(routes):
        raise ConfigError(
            f"node[{spec.id}].meta.{UPSTREAM_TAG}",
            f"no upstream {tag!r} here (have: {sorted(routes)}); leave it out for an HTTP node",
        )
    if http:
        check_nodes([spec], os.environ if environ is None else environ)
    policy.check(spec)
    return spec


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
    """Answers the admin routes; a node added without a ``timeout`` gets ``default_timeout``;
    ``policy`` says which key variables posted nodes may use (by default: those of the nodes
    ``perf`` has now, each towards its own host)."""

    def __init__(
        self,
        perf: Any,
        *,
        default_timeout: float | None = None,
        policy: NodeKeyPolicy | None = None,
    ) -> None:
        self.perf = perf
        self.default_timeout = default_timeout
        self.policy = policy if policy is not None else NodeKeyPolicy((), perf.registry)
        #: settings of ``/admin/analytics`` (the config's ``analytics`` section)
        self.analytics: AnalyticsSettings | None = None
        #: ``POST /admin/scaling/load`` (a gateway pod's load report, on the pod that scales
        #: the Deployment): the body to the status and JSON answer
        self.scaling_load: Callable[[bytes], tuple[int, bytes]] | None = None
        #: the gateway pods reporting to this one's scaler, and this pod's own reporting
        self.scaling_pods: Callable[[], list[dict[str, Any]]] | None = None
        self.scaling_report: Callable[[], dict[str, Any]] | None = None
        #: ``GET /admin/scaling/history?since=T[&sessions=1]`` (a scaler candidate's, for a
        #: standby): the status and JSON answer for ``T``, with the sessions where asked
        self.scaling_history: Callable[[float, bool], Awaitable[tuple[int, bytes]]] | None = None

    def routes(self) -> list[str]:
        """The upstream tags nodes may name (those of the pipeline's dispatching upstream)."""
        return sorted(getattr(self.perf.upstream, "routes", None) or ())

    def serves_http(self) -> bool:
        """Whether untagged nodes go over HTTP (the pipeline ``prsm-perf serve`` builds)."""
        from ..upstreams._http import HttpUpstream

        upstream = getattr(self.perf, "upstream", None)
        default = getattr(upstream, "default", upstream)
        return isinstance(default, HttpUpstream)

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        parts = [p for p in path.split("/") if p][1:]  # drop "admin"
        if parts == ["nodes"] and method == "GET":
            return 200, dumps({"nodes": self.perf.snapshot().get("nodes")})
        if parts == ["breakers"] and method == "GET":
            return 200, dumps({"breakers": self.perf.breakers.states()})
        if parts == ["scaling"] and method == "GET":
            return self._scaling()
        if parts == ["scaling", "load"] and method == "POST":
            if self.scaling_load is None:
                return _not_found("no Deployment is scaled here (the kubernetes section)")
            return self.scaling_load(body)
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

    def _scaling(self) -> tuple[int, bytes]:
        """``GET /admin/scaling``: the scaler's snapshot (with ``pods``: the gateway pods
        reporting their load to it), and ``report``: this pod's load reports to a scaler."""
        scaler = getattr(self.perf, "scaler", None)
        report = {"report": self.scaling_report()} if self.scaling_report is not None else {}
        if scaler is None:
            if report:
                return 200, dumps({"scaling": None, **report})
            return _not_found("auto-scaling is off here (orchestrator.auto_scaling: false)")
        snapshot = scaler.snapshot()
        if self.scaling_pods is not None:
            snapshot = {**snapshot, "pods": self.scaling_pods()}
        return 200, dumps({"scaling": snapshot, **report})

    async def monitoring(self, method: str, path: str, query: bytes) -> tuple[int, bytes] | None:
        """The monitoring and analytics routes' answer (JSON for the dashboard), or ``None``
        for others."""
        monitor = getattr(self.perf, "monitor", None)
        if path == HISTORY:
            return await self._history(method, query)
        if path == "/admin/analytics":
            return await self._analytics(monitor, method, query)
        return await monitoring_route(monitor, method, path, query)

    async def _history(self, method: str, query: bytes) -> tuple[int, bytes]:
        """``GET /admin/scaling/history?since=T[&sessions=1]``: the leading candidate's scaling
        history from ``T`` (wall-clock seconds, default 0) on, for a standby (warm standby),
        with its users' sessions where ``sessions=1`` (``0`` or absent: without)."""
        from urllib.parse import parse_qs

        if method != "GET":
            raise RequestValidationError("(method)", f"{HISTORY} takes GET")
        if self.scaling_history is None:
            return _not_found("no scaler candidate here (kubernetes.leader_election)")
        params = parse_qs(query.decode("latin-1"))
        asked = (params.get("sessions") or ["0"])[0]
        if asked not in ("0", "1"):
            raise RequestValidationError("sessions", f"must be 0 or 1, got {asked!r}")
        given = params.get("since") or ["0"]
        try:
            since = float(given[0])
        except ValueError:
            since = math.nan
        if not math.isfinite(since):
            raise RequestValidationError("since", f"must be a number of seconds, got {given[0]!r}")
        return await self.scaling_history(since, asked == "1")

    async def _analytics(self, monitor: Any, method: str, query: bytes) -> tuple[int, bytes]:
        """``GET /admin/analytics?since=24h``: the post's ``analyze_performance_trends`` over
        the monitoring history (trends, anomalies, insights, recommendations, bottleneck)."""
        from urllib.parse import parse_qs

        from ..analytics._analytics import PerformanceAnalytics

        if method != "GET":
            raise RequestValidationError("(method)", "/admin/analytics takes GET")
        store = getattr(monitor, "store", None)
        if store is None:
            body = {"error": {"message": "no metrics history here (history.enabled: false)",
                              "type": "unavailable"}}  # fmt: skip
            return 503, dumps(body)
        given = parse_qs(query.decode("latin-1")).get("since")
        seconds = parse_duration(given[0], "since") if given else None
        if seconds is not None and not seconds > 0:
            raise RequestValidationError("since", f"must be a duration > 0, got {given!r}")
        analytics = PerformanceAnalytics(store, self.analytics, clock=monitor.clock)
        return 200, dumps(await analytics.analyze_performance_trends(seconds))

    def _upsert(self, body: bytes) -> tuple[int, bytes]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestValidationError("(body)", f"malformed JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RequestValidationError("(body)", "must be a JSON object describing a node")
        spec = validate_node(
            data,
            self.policy,
            default_timeout=self.default_timeout,
            routes=self.routes(),
            http=self.serves_http(),
        )
        if spec.id in self.perf.registry:
            self.perf.update_node(spec)
            return 200, dumps({"updated": spec.id})
        self.perf.add_node(spec)
        return 201, dumps({"added": spec.id})
