"""``coordination.k8s.io/v1`` Leases in :class:`~._kube_fake.FakeKubernetesAPI`, as the API
server keeps them:

- ``GET  /apis/coordination.k8s.io/v1/namespaces/NS/leases/NAME``: the Lease (404 if none);
- ``POST …/namespaces/NS/leases``: create (409 ``AlreadyExists`` if it exists);
- ``PUT  …/leases/NAME``: replace; ``metadata.resourceVersion`` is required (422 without) and
  must be the current one (409 ``Conflict`` otherwise: optimistic concurrency);
- every write gets a new ``resourceVersion``; ``spec`` fields are type-checked (422), times are
  ``MicroTime`` (RFC 3339) and come back normalised to microseconds in UTC.

The caller holds the API's lock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

LEASE_PATH = re.compile(
    r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases(?:/(?P<name>[^/?]+))?/?$"
)
_SPEC = {"holderIdentity": str, "leaseDurationSeconds": int, "acquireTime": str,
         "renewTime": str, "leaseTransitions": int}  # fmt: skip

Answer = tuple[int, dict[str, Any]]


class _Refused(Exception):
    """A request body the API server refuses: ``answer`` is its error answer."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.answer: Answer = (code, status_obj(code, reason, message))


def status_obj(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes ``Status`` (the body of an error answer)."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


class FakeLeases:
    """The Leases of one fake API server (see the module docstring)."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self._versions = itertools.count(1000)
        self._uids = itertools.count(1)

    def handle(self, method: str, ns: str, name: str | None, body: Any) -> Answer:
        if method == "POST" and name is None:
            return self._create(ns, body)
        if name is None:
            return 405, status_obj(405, "MethodNotAllowed", f"{method} on the Lease collection")
        lease = self.leases.get((ns, name))
        if method == "GET":
            if lease is None:
                return 404, status_obj(404, "NotFound", f'leases.coordination.k8s.io "{name}" '
                                       "not found")  # fmt: skip
            return 200, lease
        if method == "PUT":
            return self._replace(ns, name, lease, body)
        return 405, status_obj(405, "MethodNotAllowed", f"{method} {name} is not supported here")

    def _create(self, ns: str, body: Any) -> Answer:
        try:
            meta, spec = _check(body)
        except _Refused as exc:
            return exc.answer
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            return 422, status_obj(422, "Invalid", "metadata.name: Required value")
        if (ns, name) in self.leases:
            why = f'leases.coordination.k8s.io "{name}" already exists'
            return 409, status_obj(409, "AlreadyExists", why)
        uid = f"00000000-0000-0000-0001-{next(self._uids):012d}"
        lease = self._stored(ns, name, meta, spec, uid)
        self.leases[(ns, name)] = lease
        return 201, lease

    def _replace(self, ns: str, name: str, lease: dict[str, Any] | None, body: Any) -> Answer:
        try:
            meta, spec = _check(body)
        except _Refused as exc:
            return exc.answer
        if meta.get("name") not in (None, name):
            return 400, status_obj(400, "BadRequest", "the name of the object does not match")
        if lease is None:
            return 404, status_obj(404, "NotFound", f'leases.coordination.k8s.io "{name}" '
                                   "not found")  # fmt: skip
        version = meta.get("resourceVersion")
        if not version:
            return 422, status_obj(422, "Invalid", "metadata.resourceVersion: Invalid value: "
                                   "0x0: must be specified for an update")  # fmt: skip
        if str(version) != lease["metadata"]["resourceVersion"]:
            return 409, status_obj(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the '
                "object has been modified; please apply your changes to the latest version "
                "and try again",
            )
        stored = self._stored(ns, name, meta, spec, lease["metadata"]["uid"])
        self.leases[(ns, name)] = stored
        return 200, stored

    def _stored(
        self, ns: str, name: str, meta: dict[str, Any], spec: dict[str, Any], uid: str
    ) -> dict[str, Any]:
        annotations = meta.get("annotations") or {}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": ns, "uid": uid,
                             "resourceVersion": str(next(self._versions)),
                             "creationTimestamp": "2026-01-01T00:00:00Z",
                             "annotations": {str(k): str(v) for k, v in annotations.items()}},
                "spec": spec}  # fmt: skip


def _check(body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(body, dict) or body.get("kind") not in (None, "Lease"):
        raise _Refused(400, "BadRequest", "expected a Lease object")
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        raise _Refused(400, "BadRequest", "metadata and spec must be objects")
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise _Refused(400, "BadRequest", "metadata.annotations: strings only")
    out: dict[str, Any] = {}
    for key, given in spec.items():
        value = given
        kind = _SPEC.get(key)
        if kind is None:
            raise _Refused(400, "BadRequest", f'unknown field "spec.{key}"')
        if value is None:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _Refused(422, "Invalid", f"spec.{key}: Invalid value: {value!r}")
        if isinstance(value, str) and key.endswith("Time"):
            try:
                when = dt.datetime.fromisoformat(value)
            except ValueError:
                raise _Refused(422, "Invalid", f"spec.{key}: not a MicroTime: {value!r}") from None
            if when.tzinfo is None:
                raise _Refused(422, "Invalid", f"spec.{key}: no time zone: {value!r}")
            value = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out[key] = value
    if out.get("leaseDurationSeconds", 1) < 1 or out.get("leaseTransitions", 0) < 0:
        why = "spec: leaseDurationSeconds must be > 0, leaseTransitions >= 0"
        raise _Refused(422, "Invalid", why)
    return meta, out
