"""The monitoring admin routes (JSON for the live dashboard, scripts and the terminal):

* ``GET /admin/metrics/current`` — the latest collection (``collect_metrics()``'s dict);
* ``GET /admin/metrics/history`` — the metric names held and the store's figures;
* ``GET /admin/metrics/history?metric=M&labels=k=v,k2=v2&since=1h&until=&step=60&agg=avg``
  — the series of ``M`` (see :meth:`~._store.MetricsStore.query`). ``since`` and ``until``
  are Unix seconds (a number of at least 10⁹) or a duration ago (``90``, ``15m``, ``1h``,
  ``7d``); ``until`` defaults to now, ``since`` to one hour before ``until``; ``step`` is
  seconds or a duration; ``exact=1`` matches the labels exactly;
* ``GET /admin/alerts`` — firing and pending alerts, and recent resolved ones.

The gateway serves them behind its admin rules (:mod:`prsm.performance.gateway`).
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import parse_qs

import orjson

from ..errors import RequestValidationError
from ._monitor import PerformanceMonitor
from ._store import AGGREGATIONS

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
#: A number at least this large is a Unix time, not a duration.
EPOCH_FLOOR = 1e9
#: The most points one query may return (a chart needs far fewer).
MAX_POINTS = 100_000

ROUTES = ("/admin/metrics/current", "/admin/metrics/history", "/admin/alerts")


def parse_duration(text: str, field: str) -> float:
    """Seconds from ``90``, ``1.5``, ``15m``, ``1h``, ``7d``, ``2w``."""
    m = _DURATION.match(text.strip())
    if not m:
        raise RequestValidationError(
            field, f"must be seconds or a duration like 15m, 1h, 7d: {text!r}"
        )
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def parse_time(text: str, field: str, now: float) -> float:
    """Unix seconds from an absolute time (``>= 1e9``) or a duration ago."""
    value = parse_duration(text, field)
    return value if value >= EPOCH_FLOOR else now - value


def parse_labels(text: str) -> dict[str, str]:
    """``{"node": "a"}`` from ``node=a`` (pairs separated by commas) or a JSON object."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise RequestValidationError("labels", f"malformed JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RequestValidationError("labels", "must be a JSON object")
        return {str(k): str(v) for k, v in data.items()}
    out = {}
    for pair in text.split(","):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise RequestValidationError("labels", f"expected name=value pairs, got {pair!r}")
        out[name.strip()] = value.strip()
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value, key=str)
    raise TypeError(f"cannot encode {type(value).__name__}")


async def monitoring_route(
    monitor: PerformanceMonitor | None, method: str, path: str, query: bytes
) -> tuple[int, bytes] | None:
    """The answer to a monitoring admin route, or ``None`` when ``path`` is not one. Raises
    :class:`RequestValidationError` for a bad query."""
    if path not in ROUTES:
        return None
    if method != "GET":
        raise RequestValidationError("(method)", f"{path} takes GET")
    if monitor is None:
        return 503, _dumps(
            {"error": {"message": "monitoring is not running", "type": "unavailable"}}
        )
    if path == "/admin/alerts":
        manager = monitor.alert_manager
        if manager is None:
            return 200, _dumps(
                {"evaluated_at": None, "rules": 0, "slos": 0, "active": [], "recent": []}
            )
        return 200, _dumps(manager.snapshot())
    if path == "/admin/metrics/current":
        latest = monitor.latest
        if latest is None:
            latest = await monitor.collect_metrics()
        return 200, _dumps(latest)
    return 200, _dumps(await _history(monitor, query.decode("latin-1")))


async def _history(monitor: PerformanceMonitor, raw: str) -> dict[str, Any]:
    store = monitor.store
    if store is None:
        raise RequestValidationError("metric", "history is off (history.enabled: false)")
    query = parse_qs(raw, keep_blank_values=True)
    metric = _one(query, "metric")
    if not metric:
        metrics = await monitor._off_loop(store.metrics)
        return {
            "metrics": metrics,
            "store": await monitor._off_loop(store.stats),
            "labels": dict(monitor.labels),  # what this process adds to its series (instance)
        }
    now = monitor.clock.time()
    until_text = _one(query, "until")
    until = parse_time(until_text, "until", now) if until_text else now
    since_text = _one(query, "since")
    since = parse_time(since_text, "since", until) if since_text else until - 3600.0
    if since > until:
        raise RequestValidationError("since", f"is after until ({since} > {until})")
    step_text = _one(query, "step")
    step = parse_duration(step_text, "step") if step_text else None
    if step is not None and step <= 0:
        raise RequestValidationError("step", "must be > 0")
    agg = _one(query, "agg") or "avg"
    if agg not in AGGREGATIONS:
        raise RequestValidationError("agg", f"must be one of {', '.join(AGGREGATIONS)}")
    labels = parse_labels(_one(query, "labels") or "")
    exact = (_one(query, "exact") or "0").lower() in ("1", "true", "yes")
    series = await monitor.history(
        metric, labels=labels, since=since, until=until, step=step, agg=agg, exact=exact, now=now
    )
    points = sum(len(s["points"]) for s in series)
    if points > MAX_POINTS:
        raise RequestValidationError(
            "step", f"{points} points: more than {MAX_POINTS}; ask for a larger step"
        )
    return {
        "metric": metric,
        "labels": labels,
        "since": since,
        "until": until,
        "step": series[0]["step"] if series else step,
        "agg": agg,
        "series": [
            {**s, "points": [[t, v if math.isfinite(v) else None] for t, v in s["points"]]}
            for s in series
        ],
    }
