"""The Lease part of :class:`FakeKubernetesAPI` answers as the API server does: 404 for a
Lease that does not exist, 201 on create and 409 ``AlreadyExists`` on a second, a replace
without ``resourceVersion`` 422 and with a stale one 409 ``Conflict``, a new version on every
write, ``MicroTime`` normalised to microseconds in UTC, bad fields 400/422."""

from __future__ import annotations

import json
from typing import Any

from prsm.performance.scaling import FakeKubernetesAPI

BASE = "/apis/coordination.k8s.io/v1/namespaces/serving/leases"


def _call(api: FakeKubernetesAPI, method: str, path: str, body: Any = None) -> Any:
    raw = json.dumps(body).encode() if body is not None else b""
    return api.handle(method, path, {"content-type": "application/json"}, raw)


def _lease(version: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "scaler", "annotations": {"k": "v"}}
    if version is not None:
        meta["resourceVersion"] = version
    return {"kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, **spec}}  # fmt: skip


def test_leases_are_created_read_and_replaced_with_optimistic_concurrency() -> None:
    api = FakeKubernetesAPI()
    assert _call(api, "GET", f"{BASE}/scaler")[0] == 404
    code, made = _call(api, "POST", BASE, _lease(acquireTime="2026-12-05T18:00:00+01:00"))
    assert code == 201 and made["spec"]["acquireTime"] == "2026-12-05T17:00:00.000000Z"
    assert made["metadata"]["annotations"] == {"k": "v"}
    code, again = _call(api, "POST", BASE, _lease())
    assert (code, again["reason"]) == (409, "AlreadyExists")
    version = made["metadata"]["resourceVersion"]
    assert _call(api, "PUT", f"{BASE}/scaler", _lease())[0] == 422  # no resourceVersion
    code, renewed = _call(api, "PUT", f"{BASE}/scaler", _lease(version, leaseTransitions=1))
    assert code == 200 and renewed["metadata"]["resourceVersion"] != version
    code, stale = _call(api, "PUT", f"{BASE}/scaler", _lease(version))
    assert (code, stale["reason"]) == (409, "Conflict")
    assert _call(api, "GET", f"{BASE}/scaler")[1] == renewed == api.lease("scaler", "serving")
    assert _call(api, "PUT", f"{BASE}/other", _lease("1"))[0] == 400  # the name differs
    assert _call(api, "PUT", f"{BASE}/scaler", _lease(version, renewTime="soon"))[0] == 422
    assert _call(api, "PUT", f"{BASE}/scaler", _lease(version, extra=1))[0] == 400
    assert _call(api, "PUT", f"{BASE}/scaler", _lease(version, leaseDurationSeconds="15"))[0] == 422
