"""The Kubernetes backend through the official client against a fake API server on loopback
that implements the Deployment ``scale`` subresource contract."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.errors import ScalingError
from prsm.performance.scaling import (
    ControllerSettings,
    FakeKubernetesAPI,
    KubernetesBackend,
    ScalingController,
    kubernetes_api_client,
)

from ..benchmarks.quick import need

need("kubernetes", extra="kubernetes")  # under CI=true its absence fails
pytestmark = pytest.mark.integration

TOKEN = "test-token"


@pytest.fixture
def api() -> Iterator[FakeKubernetesAPI]:
    clock = ManualClock()
    with FakeKubernetesAPI(startup_time=30.0, clock=clock.monotonic, token=TOKEN) as server:
        server.add_deployment("llm", replicas=2, namespace="serving")
        server.manual = clock  # type: ignore[attr-defined]
        yield server


def backend(api: FakeKubernetesAPI, name: str = "llm") -> KubernetesBackend:
    return KubernetesBackend(
        name, "serving", client=kubernetes_api_client(host=api.url, token=TOKEN)
    )


async def test_scale_patches_the_scale_subresource_and_reads_readiness(
    api: FakeKubernetesAPI,
) -> None:
    b = backend(api)
    status = await b.status()
    assert (status.ready, status.starting, status.desired) == (2, 0, 2)
    status = await b.scale_to(5)
    assert status.desired == 5 and status.ready == 2 and status.starting == 3
    assert api.replicas("llm", "serving") == 5
    method, path, ctype = api.requests[1]
    assert (method, ctype) == ("PATCH", "application/merge-patch+json")
    assert path == "/apis/apps/v1/namespaces/serving/deployments/llm/scale"
    api.manual.advance(30.0)  # type: ignore[attr-defined]
    assert (await b.status()).ready == 5
    status = await b.scale_to(1)
    assert status.desired == 1 and status.ready == 1
    await b.close()


async def test_errors_become_scaling_errors_with_the_status(api: FakeKubernetesAPI) -> None:
    missing = backend(api, "nope")
    with pytest.raises(ScalingError) as err:
        await missing.status()
    assert err.value.status == 404 and "not found" in str(err.value)
    wrong = KubernetesBackend(
        "llm", "serving", client=kubernetes_api_client(host=api.url, token="x")
    )
    with pytest.raises(ScalingError) as err:
        await wrong.scale_to(3)
    assert err.value.status == 401
    with pytest.raises(ScalingError, match="whole number"):
        await backend(api).scale_to(-1)
    for b in (missing, wrong):
        await b.close()


async def test_the_controller_retries_an_api_outage(api: FakeKubernetesAPI) -> None:
    b = backend(api)
    clock = ManualClock()
    c = ScalingController(b, ControllerSettings(retries=2, retry_backoff=0.5), clock=clock)
    api.fail_next(2, status=503)
    task = asyncio.create_task(c.scale_to(4))
    while not task.done():
        await asyncio.sleep(0.01)
        clock.advance(1.0)
    report = await task
    assert report.ok and api.replicas("llm", "serving") == 4  # the reads were retried
    await c.close()


def test_the_fake_keeps_the_api_servers_contract() -> None:
    with FakeKubernetesAPI() as api:
        api.add_deployment("web", replicas=1)
        path = "/apis/apps/v1/namespaces/default/deployments/web/scale"
        body = json.dumps({"spec": {"replicas": 3}}).encode()
        # a JSON patch must be a list of operations (the client's default for a dict body)
        code, doc = api.handle("PATCH", path, {"content-type": "application/json-patch+json"}, body)
        assert code == 400 and doc["kind"] == "Status"
        ops = json.dumps([{"op": "replace", "path": "/spec/replicas", "value": 3}]).encode()
        assert (
            api.handle("PATCH", path, {"content-type": "application/json-patch+json"}, ops)[0]
            == 200
        )
        code, doc = api.handle("GET", path, {}, b"")
        assert code == 200 and doc["spec"]["replicas"] == 3 and doc["kind"] == "Scale"
        stale = dict(
            doc, metadata={**doc["metadata"], "resourceVersion": "1"}, spec={"replicas": 4}
        )
        assert api.handle("PUT", path, {}, json.dumps(stale).encode())[0] == 409
        fresh = dict(doc, spec={"replicas": 4})
        assert api.handle("PUT", path, {}, json.dumps(fresh).encode())[0] == 200
        bad = json.dumps({"spec": {"replicas": -2}}).encode()
        assert (
            api.handle("PATCH", path, {"content-type": "application/merge-patch+json"}, bad)[0]
            == 422
        )
        assert api.handle("PATCH", path, {"content-type": "text/plain"}, body)[0] == 415
        assert api.handle("GET", path.replace("web", "other"), {}, b"")[0] == 404
