"""A handful of fuzz cases through the real server (``prsm-perf serve`` in its own process,
in front of the upstream simulator): the same properties as in process, and the process
still serves afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fuzz.strategies import HEADERS, VALID, bodies, dumps
from tests.fuzz.test_http_fuzz import ROUTES
from tests.gateway.procs import Proc, node, start_gateway, start_sim

pytestmark = pytest.mark.integration
FEW = settings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, httpx.Client]]:
    sim = start_sim("fz", "--models", "m")
    gw = start_gateway(tmp_path_factory.mktemp("fuzz"), {"nodes": [node("fz", sim, ["m"])]})
    client = httpx.Client(base_url=gw.url, timeout=10)
    yield gw, client
    client.close()
    gw.stop()
    sim.stop()


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        error = r.json()["error"]
        assert error["message"] and error["type"] and "param" in error and "code" in error


@FEW
@given(kind=st.sampled_from(sorted(ROUTES)), data=st.data(), headers=HEADERS)
def test_real_server_answers_every_case(
    served: tuple[Proc, httpx.Client], kind: str, data: st.DataObject, headers: dict[str, str]
) -> None:
    gw, client = served
    body = data.draw(bodies(kind))
    headers = {k: v for k, v in headers.items() if k != "origin"}
    _check(client.post(ROUTES[kind], content=body, headers=headers))
    assert gw.proc.poll() is None


def test_real_server_still_healthy_after(served: tuple[Proc, httpx.Client], tmp_path: Path) -> None:
    gw, client = served
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.post(ROUTES["chat"], content=dumps(VALID["chat"]))
    assert r.status_code == 200, r.text
    assert gw.proc.poll() is None
