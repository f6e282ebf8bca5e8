"""CPU per streamed chunk that the orchestrator's streaming driver (``run_stream``) adds, in
process: a node whose chunks are all read already (each ``__anext__`` done without waiting)
streams ``--chunks`` chunks, ``--streams`` times; the driver's process CPU per chunk is
compared with iterating the node's stream directly, in alternating rounds (medians).

Two paths: ``plain`` (a completions request: chunks passed on as they come) and ``tape``
(a chat request that may be resumed: chunks go through the tape, in whole SSE events).
Timing: run under the benchmark lock (``flock /tmp/prsm-bench.lock``)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable

from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.orchestrator._stream import run_stream
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, RequestKind, Response

_CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'


class _Ready:
    """A node's stream whose chunks have all arrived: each ``__anext__`` is done at once."""

    __slots__ = ("_left",)

    def __init__(self, chunks: int) -> None:
        self._left = chunks

    def __aiter__(self) -> _Ready:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0:
            raise StopAsyncIteration
        self._left -= 1
        return _CHUNK if self._left else b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        self._left = 0


class _Node:
    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        return Response(content="")

    def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        return _Ready(self.chunks)


async def _cpu(make: Callable[[], AsyncIterator[bytes]], streams: int, chunks: int) -> float:
    start = time.process_time()
    for _ in range(streams):
        async for _chunk in make():
            pass
    return (time.process_time() - start) / (streams * chunks) * 1e9


async def main(args: argparse.Namespace) -> dict[str, object]:
    node = _Node(args.chunks)
    perf = PerformanceOrchestrator(nodes=[NodeSpec("n0", models=frozenset({"m"}))], upstream=node)
    p = perf._p
    spec = NodeSpec("n0", models=frozenset({"m"}))
    requests = {
        "plain": AIRequest(model="m", kind=RequestKind.COMPLETION, payload={"prompt": "x"}),
        "tape": AIRequest(model="m", payload={"messages": [{"role": "user", "content": "x"}]}),
    }
    out: dict[str, object] = {}
    for name, request in requests.items():
        rows: dict[str, list[float]] = {"direct": [], "run_stream": []}
        makers: dict[str, Callable[[], AsyncIterator[bytes]]] = {
            "direct": functools.partial(node.stream, spec, request),
            "run_stream": functools.partial(run_stream, p, node, request),
        }
        await _cpu(makers["run_stream"], 50, args.chunks)  # warm-up
        for r in range(args.rounds):
            for key in list(makers) if r % 2 == 0 else list(makers)[::-1]:
                rows[key].append(await _cpu(makers[key], args.streams, args.chunks))
        direct = statistics.median(rows["direct"])
        ours = statistics.median(rows["run_stream"])
        out[name] = {"direct_ns": round(direct, 1), "run_stream_ns": round(ours, 1),
                     "added_ns_per_chunk": round(ours - direct, 1),
                     "rounds_run_stream_ns": [round(x, 1) for x in rows["run_stream"]]}  # fmt: skip
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--streams", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=9)
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=1))
