"""``KubernetesLeaseStore``: read, create and replace one ``coordination.k8s.io/v1`` Lease
with the official ``kubernetes`` client (calls in a worker thread, each bounded by
``timeout``).

A replace carries the ``resourceVersion`` read; the API server's 409 (someone else wrote
first, or created it first) is a :class:`LeaseConflict`; any other failure a
:class:`~prsm.performance.errors.ScalingError` with its HTTP status. On a real cluster, RBAC
must allow ``get``, ``create`` and ``update`` on ``leases`` (``coordination.k8s.io``) in the
namespace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ScalingError
from ._election import URL_ANNOTATION, LeaseRecord
from ._kubernetes import _kubernetes, call_api

T = TypeVar("T")


class LeaseConflict(ScalingError):
    """The Lease changed since it was read (HTTP 409): another candidate wrote first."""


def micro_time(seconds: float | None) -> str | None:
    """Wall-clock ``seconds`` as a Kubernetes ``MicroTime`` (RFC 3339, microseconds, UTC)."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return float(value.timestamp())


def lease_body(name: str, namespace: str, record: LeaseRecord) -> dict[str, Any]:
    """The Lease object for ``record`` (with its ``resourceVersion`` when it has one)."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "annotations": {URL_ANNOTATION: record.url}}  # fmt: skip
    if record.version:
        meta["resourceVersion"] = record.version
    spec = {"holderIdentity": record.holder, "leaseDurationSeconds": record.duration,
            "acquireTime": micro_time(record.acquire_time),
            "renewTime": micro_time(record.renew_time),
            "leaseTransitions": record.transitions}  # fmt: skip
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
            "spec": spec}  # fmt: skip


def lease_record(lease: Any) -> LeaseRecord:
    """A :class:`LeaseRecord` from the client's ``V1Lease``."""
    spec, meta = lease.spec, lease.metadata
    annotations = (meta.annotations if meta is not None else None) or {}
    return LeaseRecord(
        holder=(spec.holder_identity if spec is not None else None) or "",
        duration=int((spec.lease_duration_seconds if spec is not None else None) or 0),
        acquire_time=_seconds(spec.acquire_time) if spec is not None else None,
        renew_time=_seconds(spec.renew_time) if spec is not None else None,
        transitions=int((spec.lease_transitions if spec is not None else None) or 0),
        url=str(annotations.get(URL_ANNOTATION, "")),
        version=str((meta.resource_version if meta is not None else None) or ""),
    )


class KubernetesLeaseStore:
    """See the module docstring. ``client``: a ``kubernetes.client.ApiClient``."""

    def __init__(self, name: str, namespace: str, *, client: Any, timeout: float = 5.0) -> None:
        k8s = _kubernetes()
        self.lease = name
        self.namespace = namespace
        self.timeout = timeout
        self._client = client
        self._api = k8s.client.CoordinationV1Api(client)

    @property
    def name(self) -> str:
        return f"lease:{self.namespace}/{self.lease}"

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        return await call_api(self.name, what, fn, {409: LeaseConflict})

    async def get(self) -> LeaseRecord | None:
        """The Lease, or ``None`` if there is none."""
        try:
            lease = await self._call("read lease", lambda: self._api.read_namespaced_lease(
                self.lease, self.namespace, _request_timeout=self.timeout))  # fmt: skip
        except ScalingError as exc:
            if exc.status == 404:
                return None
            raise
        return lease_record(lease)

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        body = lease_body(self.lease, self.namespace, record)
        lease = await self._call("create lease", lambda: self._api.create_namespaced_lease(
            self.namespace, body, _request_timeout=self.timeout))  # fmt: skip
        return lease_record(lease)

    async def replace(self, record: LeaseRecord) -> LeaseRecord:
        """Write ``record`` over the Lease at ``record.version`` (a :class:`LeaseConflict`
        if it has changed since)."""
        body = lease_body(self.lease, self.namespace, record)
        lease = await self._call("replace lease", lambda: self._api.replace_namespaced_lease(
            self.lease, self.namespace, body, _request_timeout=self.timeout))  # fmt: skip
        return lease_record(lease)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
