"""One Prometheus registry, injected: components record into it, ``/metrics`` exposes it.

:class:`MetricsRegistry` wraps a :class:`prometheus_client.CollectorRegistry` (never the
global default) and hands out metric families by name, creating each once; two components
asking for the same name with the same kind and labels share it. Hot paths should keep the
labelled child (``family.labels(...)``) instead of looking it up per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..errors import ConfigError

NAMESPACE = "prsm"

#: Latency buckets (seconds) fitted to a gateway: 50 µs to 60 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

_M = TypeVar("_M", Counter, Gauge, Histogram)


class MetricsRegistry:
    """Get-or-create access to metric families in one injected registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = NAMESPACE):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.namespace = namespace
        self._families: dict[str, tuple[type, tuple[str, ...], Counter | Gauge | Histogram]] = {}

    def _get(self, kind: type[_M], name: str, doc: str, labels: Sequence[str], **kw: Any) -> _M:
        key = f"{self.namespace}_{name}"
        found = self._families.get(key)
        labels_t = tuple(labels)
        if found is not None:
            f_kind, f_labels, family = found
            if f_kind is not kind or f_labels != labels_t:
                raise ConfigError(
                    f"metric {key}",
                    f"already registered as {f_kind.__name__}{list(f_labels)}, "
                    f"asked for {kind.__name__}{list(labels_t)}",
                )
            return family  # type: ignore[return-value]
        family = kind(
            name, doc, labelnames=labels_t, namespace=self.namespace, registry=self.registry, **kw
        )
        self._families[key] = (kind, labels_t, family)
        return family

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        """A counter ``prsm_<name>_total``."""
        return self._get(Counter, name, doc, labels)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge ``prsm_<name>``."""
        return self._get(Gauge, name, doc, labels)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        """A histogram ``prsm_<name>`` (latency buckets by default)."""
        return self._get(Histogram, name, doc, labels, buckets=tuple(buckets))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
