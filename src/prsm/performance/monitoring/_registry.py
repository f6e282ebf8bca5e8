"""One Prometheus registry, injected: components record into it, ``/metrics`` exposes it.

:class:`MetricsRegistry` wraps a :class:`prometheus_client.CollectorRegistry` (never the
global default) and hands out metric families by name, creating each once; two components
asking for the same name with the same kind and labels share it. Hot paths should keep the
labelled child (``family.labels(...)``) instead of looking it up per request.

Two kinds of family: prometheus_client's own (:meth:`~MetricsRegistry.counter`,
:meth:`~MetricsRegistry.gauge`, :meth:`~MetricsRegistry.histogram`: for values set off the
request path) and plain ones (:meth:`~MetricsRegistry.plain`: for the request path, see
:mod:`._plain`). Both live in the registry instance, in one table of names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector

from ..errors import ConfigError
from ._batch import Batch
from ._plain import LATENCY_BUCKETS, PlainFamily

NAMESPACE = "prsm"

_M = TypeVar("_M", Counter, Gauge, Histogram)


class MetricsRegistry:
    """Get-or-create access to metric families in one injected registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = NAMESPACE):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.namespace = namespace
        #: where every plain histogram of this registry queues its observations
        self.batch = Batch()
        #: every family handed out, by full name: (kind, label names, family)
        self._families: dict[str, tuple[str, tuple[str, ...], Any]] = {}

    def _found(self, key: str, kind: str, labels: tuple[str, ...]) -> Any:
        found = self._families.get(key)
        if found is None:
            return None
        f_kind, f_labels, family = found
        if f_kind != kind or f_labels != labels:
            raise ConfigError(
                f"metric {key}",
                f"already registered as {f_kind}{list(f_labels)}, asked for {kind}{list(labels)}",
            )
        return family

    def _get(self, kind: type[_M], name: str, doc: str, labels: Sequence[str], **kw: Any) -> _M:
        key = f"{self.namespace}_{name}"
        labels_t = tuple(labels)
        found = self._found(key, kind.__name__, labels_t)
        if found is not None:
            return found  # type: ignore[no-any-return]
        family = kind(
            name, doc, labelnames=labels_t, namespace=self.namespace, registry=self.registry, **kw
        )
        self._families[key] = (kind.__name__, labels_t, family)
        return family

    def plain(
        self,
        kind: str,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        bounds: Sequence[float] = LATENCY_BUCKETS,
        *,
        namespaced: bool = True,
    ) -> PlainFamily:
        """The plain ``counter`` (``prsm_<name>_total``) or ``histogram`` (``bounds``, latency
        buckets by default) named ``name``, created and registered once; asking again with the
        same kind and labels shares it. ``namespaced=False`` keeps ``name`` as given (for
        names fixed by a convention, e.g. OpenTelemetry's ``gen_ai_*``)."""
        full = f"{self.namespace}_{name}" if namespaced else name
        labels_t = tuple(labels)
        found = self._found(full, kind, labels_t)
        if found is not None:
            return found  # type: ignore[no-any-return]
        family = PlainFamily(kind, full, doc, labels_t, tuple(bounds), batch=self.batch)
        self.registry.register(family)
        self._families[full] = (kind, labels_t, family)
        return family

    def get(self, name: str) -> Any:
        """The family registered under the full ``name`` (e.g. ``prsm_node_latency_seconds``),
        or ``None``."""
        found = self._families.get(name)
        return found[2] if found is not None else None

    def register(self, name: str, collector: Collector) -> None:
        """Register a custom collector exporting the family ``name`` (once per name)."""
        if name in self._families:
            raise ConfigError(f"metric {name}", "already registered")
        self.registry.register(collector)
        self._families[name] = ("collector", (), collector)

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

    def flush(self) -> None:
        """Add up the plain histograms' pending observations (reading one does it too)."""
        self.batch.flush()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what ``/metrics`` serves)."""
        self.batch.flush()  # once here, not per child
        return generate_latest(self.registry)


def merge_exposition(own: bytes, other: bytes) -> tuple[bytes, list[str]]:
    """``own`` followed by the families of ``other`` (both Prometheus text, each family led by
    its ``# HELP`` and ``# TYPE`` lines) that ``own`` lacks; a family both have stays as ``own``
    has it (the text format allows one block per name). Returns the text and the names left
    out of ``other``."""
    mine = {line.split(b" ", 3)[2] for line in own.splitlines() if line.startswith(b"# TYPE ")}
    kept: list[bytes] = []
    left_out: list[str] = []
    keep = True
    for line in other.splitlines(keepends=True):
        if line.startswith(b"# HELP "):
            name = line.split(b" ", 3)[2]
            keep = name not in mine
            if not keep:
                left_out.append(name.decode())
        if keep:
            kept.append(line)
    return own + b"".join(kept), left_out


def plain_family(
    registry: MetricsRegistry, kind: str, name: str, doc: str, labels: Sequence[str] = ()
) -> PlainFamily:
    """``registry.plain(kind, name, doc, labels)``: the plain family kept in that registry."""
    return registry.plain(kind, name, doc, labels)


__all__ = ["LATENCY_BUCKETS", "NAMESPACE", "MetricsRegistry", "merge_exposition", "plain_family"]
