"""Mid-stream resume through the real gateway: one simulator cuts every stream halfway, the
other continues it (a chat with ``continue_final_message``, a completion from its prompt and
the text so far); clients see whole, uninterrupted answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.gateway.procs import Proc, node, start_gateway, start_sim

pytestmark = pytest.mark.integration

RESUME = {"resume": "continue_final_message", "timeout": 5}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Proc]:
    cut = start_sim("cut", "--models", "m", "--error-rate", "1", "--error-kinds", "truncate",
                    wait=False)  # fmt: skip
    whole = start_sim("whole", "--models", "m", wait=False)
    try:
        cut.wait_ready()
        whole.wait_ready()
        config = {
            "nodes": [node("cut", cut, ["m"], **RESUME), node("whole", whole, ["m"], **RESUME)],
            "routing": {"strategy": "round_robin"},
            "orchestrator": {"hedge": False},
        }
        gw = start_gateway(tmp_path, config)
        yield gw
        gw.stop()
    finally:
        cut.stop()
        whole.stop()


def test_streams_cut_by_a_node_reach_the_client_whole(gateway: Proc) -> None:
    expected = "tok0" + "".join(f" tok{i}" for i in range(1, 10))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": 10, "stream_options": {"include_usage": True}}  # fmt: skip
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        for _ in range(4):  # round robin: half of them start on the node that cuts
            r = c.post("/v1/chat/completions", json=body)
            assert r.status_code == 200
            evs = [e[6:] for e in r.content.split(b"\n\n") if e]
            assert evs[-1] == b"[DONE]" and evs.count(b"[DONE]") == 1
            data = [orjson.loads(e) for e in evs[:-1]]
            assert "error" not in str(data[-1])
            text = "".join(d["choices"][0]["delta"].get("content", "") for d in data[:-1])
            assert text == expected
            assert len({d["id"] for d in data}) == 1
            assert data[-1]["usage"]["completion_tokens"] == 10
        metrics = c.get("/metrics").text
    name = 'prsm_orchestrator_stream_resumes_total{outcome="resumed"}'
    resumed = [line for line in metrics.splitlines() if line.startswith(name)]
    assert resumed and float(resumed[0].rsplit(" ", 1)[1]) >= 1


def test_completion_streams_cut_by_a_node_reach_the_client_whole(gateway: Proc) -> None:
    expected = "tok0" + "".join(f" tok{i}" for i in range(1, 10))
    body = {"model": "m", "prompt": "say hi\n", "stream": True, "max_tokens": 10}
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        for _ in range(4):  # round robin: half of them start on the node that cuts
            r = c.post("/v1/completions", json=body)
            assert r.status_code == 200
            evs = [e[6:] for e in r.content.split(b"\n\n") if e]
            assert evs[-1] == b"[DONE]" and evs.count(b"[DONE]") == 1
            data = [orjson.loads(e) for e in evs[:-1]]
            assert "error" not in str(data[-1])
            assert "".join(d["choices"][0]["text"] for d in data) == expected
            assert len({d["id"] for d in data}) == 1
        metrics = c.get("/metrics").text
    name = 'prsm_orchestrator_stream_resumes_total{outcome="resumed"}'
    resumed = [line for line in metrics.splitlines() if line.startswith(name)]
    assert resumed and float(resumed[0].rsplit(" ", 1)[1]) >= 1


def _by_index(data: list[dict[str, object]], field: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for d in data:
        for c in d["choices"]:  # type: ignore[attr-defined]
            piece = c["delta"].get("content", "") if field == "delta" else c["text"]
            out[c["index"]] = out.get(c["index"], "") + piece
    return out


def _answer(choice: int, tokens: int = 10) -> str:
    mark = f"c{choice}." if choice else ""
    return "".join(f"{' ' if i else ''}{mark}tok{i}" for i in range(tokens))


@pytest.mark.parametrize(
    ("path", "body", "field", "expected"),
    [("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2},
      "delta", {0: _answer(0), 1: _answer(1)}),
     ("/v1/completions", {"prompt": ["say hi\n", "say bye\n"], "n": 2, "echo": True}, "text",
      {c: ["say hi\n", "say bye\n"][c // 2] + _answer(c) for c in range(4)})],
)  # fmt: skip
def test_streams_of_several_choices_cut_by_a_node_reach_the_client_whole(
    gateway: Proc, path: str, body: dict[str, object], field: str, expected: dict[int, str]
) -> None:
    body = {"model": "m", "stream": True, "max_tokens": 10,
            "stream_options": {"include_usage": True}, **body}  # fmt: skip
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        for _ in range(4):  # round robin: half of them start on the node that cuts
            r = c.post(path, json=body)
            assert r.status_code == 200
            evs = [e[6:] for e in r.content.split(b"\n\n") if e]
            assert evs[-1] == b"[DONE]" and evs.count(b"[DONE]") == 1
            data = [orjson.loads(e) for e in evs[:-1]]
            assert "error" not in str(data[-1])
            assert _by_index(data, field) == expected  # each choice whole, echoed once
            assert len({d["id"] for d in data}) == 1
            assert data[-1]["usage"]["completion_tokens"] == 10 * len(expected)
        metrics = c.get("/metrics").text
    name = 'prsm_orchestrator_stream_resumes_total{outcome="resumed"}'
    resumed = [line for line in metrics.splitlines() if line.startswith(name)]
    assert resumed and float(resumed[0].rsplit(" ", 1)[1]) >= 1
