"""``LocalModelUpstream``: OpenAI ``/v1/embeddings`` requests, batched onto the local workers.

``execute(node, request)`` validates the OpenAI body (``input``: a string or a list of
strings; ``encoding_format``: ``float`` or ``base64``; ``dimensions``: only the model's own),
sends every input text through a :class:`~prsm.performance.batching.DynamicBatcher` and
returns the OpenAI-shaped answer. Workers on the same device share one batcher (texts from
many requests share a batch whichever worker node the balancer picked); it runs up to
``max_concurrent_batches`` batches per worker at once and sends each batch to the least busy
ready worker, so two single-threaded workers run two batches side by side. Failures map onto
the upstream contract: a bad body is a non-retryable 400, a full queue a retryable 429, a
dead or restarting worker a retryable 503
(:class:`~prsm.performance.errors.UpstreamUnavailableError`) so the orchestrator tries the
next worker.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import numpy as np

from ..batching._batcher import DynamicBatcher
from ..batching._settings import BatcherSettings
from ..batching._tuner import CurvePoint
from ..clock import Clock
from ..embeddings._model import EMBEDDING_DIM
from ..errors import OverloadedError, UpstreamError, UpstreamUnavailableError, WorkerError
from ..monitoring._registry import MetricsRegistry
from ..routing._node import NodeMetrics, NodeSpec
from ..types import AIRequest, RequestKind, Response
from ._load import ProcessLoad
from ._pool import LocalWorkerPool
from ._process import WorkerProcess
from ._settings import usable_cores

MAX_INPUTS = 2048

Item = tuple[np.ndarray[Any, np.dtype[np.float32]], int]


class _Busy(Protocol):
    state: str

    @property
    def in_flight(self) -> int: ...


W = TypeVar("W", bound=_Busy)


def least_busy(workers: Sequence[W]) -> W | None:
    """The ready worker with the fewest calls in flight (the first one on a tie)."""
    ready = [w for w in workers if w.state == "ready"]
    return min(ready, key=lambda w: w.in_flight) if ready else None


class LocalModelUpstream:
    """Serves embedding requests on a :class:`LocalWorkerPool`'s workers, batched per device."""

    def __init__(
        self,
        pool: LocalWorkerPool,
        settings: BatcherSettings | None = None,
        *,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings or pool.settings.batcher
        self.groups: dict[str, list[WorkerProcess]] = {}
        for w in pool.workers:
            self.groups.setdefault(w.device, []).append(w)
        self._group_of = {w.id: w.device for w in pool.workers}
        self._load = ProcessLoad()
        self.batchers: dict[str, DynamicBatcher[str, Item]] = {}
        self._metrics = metrics
        self._clock = clock
        for device, workers in self.groups.items():
            self._add_batcher(device, workers)

    def _add_batcher(self, device: str, workers: list[WorkerProcess]) -> None:
        per_worker = self.settings.max_concurrent_batches
        shared = replace(self.settings, max_concurrent_batches=per_worker * len(workers))
        name = workers[0].id if len(workers) == 1 else f"local-{device}"
        self.batchers[device] = DynamicBatcher(
            self._runner(device, workers),
            shared,
            name=name,
            metrics=self._metrics,
            clock=self._clock,
        )

    def attach(self, worker: WorkerProcess) -> None:
        """Serve on a worker added to the pool after this upstream was built (it joins its
        device's shared batcher; a new device gets a batcher of its own)."""
        group = self.groups.get(worker.device)
        if group is None:
            self.groups[worker.device] = group = [worker]
            self._add_batcher(worker.device, group)
        elif worker not in group:
            group.append(worker)
        self._group_of[worker.id] = worker.device

    def detach(self, worker_id: str) -> None:
        """Send no more batches to ``worker_id`` (what it runs finishes; its device's
        batcher goes on serving on the others)."""
        device = self._group_of.pop(worker_id, None)
        if device is not None:
            group = self.groups[device]  # the batcher's runner holds this very list
            group[:] = [w for w in group if w.id != worker_id]

    @staticmethod
    def _runner(device: str, workers: Sequence[WorkerProcess]) -> Any:
        async def run(key: Hashable, texts: list[str]) -> Sequence[Item | BaseException]:
            worker = least_busy(workers)
            if worker is None:
                raise WorkerError(f"local-{device}", "no worker is ready (restarting)")
            batch = await worker.embed(texts)
            out: list[Item | BaseException] = []
            for i in range(len(texts)):
                if i in batch.errors:
                    problem = f"input item: {batch.errors[i]}"
                    out.append(UpstreamError(worker.id, problem, status=400, retryable=False))
                else:
                    out.append((batch.vectors[i], batch.tokens[i]))
            return out

        return run

    def batcher_for(self, worker_id: str) -> DynamicBatcher[str, Item]:
        """The batcher that serves ``worker_id`` (shared by the workers on its device)."""
        device = self._group_of.get(worker_id)
        if device is None:
            raise KeyError(worker_id)
        return self.batchers[device]

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        worker_id = str(node.meta.get("worker", node.id))
        device = self._group_of.get(worker_id)
        if device is None:
            raise UpstreamError(
                node.id, f"no local worker {worker_id!r} in this pool", status=404, retryable=False
            )
        if request.kind is not RequestKind.EMBEDDING:
            raise UpstreamError(
                node.id,
                f"local workers serve embeddings only, not {request.kind.value} requests",
                status=400,
                retryable=False,
            )
        payload = request.payload
        model = request.model or str(payload.get("model", "") or "")
        if model and model not in node.models:
            raise UpstreamError(
                node.id,
                f"model {model!r} is not served here; serves {sorted(node.models)}",
                status=404,
                retryable=False,
            )
        texts, encoding = parse_embeddings_body(node.id, payload, self.pool.settings.model)
        worker = self.pool.worker(worker_id)
        if worker.state != "ready":
            raise UpstreamUnavailableError(
                node.id, f"worker is {worker.state} (restarting); try another", status=503
            )
        waits: list[float] = []
        try:
            items = await self.batchers[device].submit_many(
                texts, priority=request.priority, waits=waits
            )
        except OverloadedError as exc:
            raise UpstreamError(node.id, str(exc), status=429, retryable=True) from exc
        except WorkerError as exc:
            raise UpstreamUnavailableError(node.id, str(exc), status=503) from exc
        content = embeddings_response(items, model or self.pool.settings.model, encoding)
        return Response(
            content=content,
            tokens=content["usage"]["total_tokens"],
            queue_seconds=max(waits) if waits else -1.0,
        )

    async def warm_up(
        self, texts: Sequence[str], *, repeats: int | None = None
    ) -> dict[str, list[CurvePoint]]:
        """Measure each device's batch-size curve up front (every bucket size, ``repeats``
        times, on ``texts`` cycled); the batchers then start from the learned size. The
        workers of a device run their batches at the same time, as they do when serving, so
        each is measured while the others compete for the same cores or GPU."""
        if not texts:
            raise ValueError("texts: give at least one sentence to profile with")
        curves = {}
        for device, batcher in self.batchers.items():
            workers = self.groups[device]
            # every size runs through the same texts from the start (a batch's time depends on
            # its longest text: sizes measured on different texts would not compare)
            offsets: dict[int, itertools.count[int]] = {}

            async def run(
                size: int,
                workers: list[WorkerProcess] = workers,
                offsets: dict[int, itertools.count[int]] = offsets,
            ) -> None:
                worker = least_busy(workers)
                if worker is None:
                    raise WorkerError(workers[0].id, "no worker is ready to profile")
                offset = offsets.setdefault(size, itertools.count())
                await worker.embed([texts[next(offset) % len(texts)] for _ in range(size)])

            curves[device] = await batcher.tuner.profile(
                run, repeats=repeats, parallel=len(workers), min_items=self.settings.max_batch_size
            )
        return curves

    def stats(self) -> dict[str, Any]:
        """Per worker: its process state and its batcher's stats (chosen size, curve…)."""
        workers = self.pool.stats()
        return {
            wid: {**info, "batcher": self.batcher_for(wid).stats()} for wid, info in workers.items()
        }

    def node_metrics(self) -> dict[str, NodeMetrics]:
        """Live readings of every ready worker for the node registry (a
        :class:`~prsm.performance.nodeload.LoadSource`): its process's cpu and memory
        (:class:`ProcessLoad`), its batcher's queue depth and the batches it is running."""
        out = {}
        pids = set()
        for w in self.pool.workers:
            if w.state != "ready" or w.pid is None:
                continue  # a lost or restarting worker reports nothing: its last reading ages
            pids.add(w.pid)
            cpu, memory = self._load.read(w.pid, w.threads or usable_cores())
            out[w.id] = NodeMetrics(
                cpu=cpu,
                memory=memory,
                queue_depth=self.batcher_for(w.id).queue_depth,
                running=w.in_flight,
            )
        self._load.keep(pids)
        return out

    async def aclose(self) -> None:
        for b in self.batchers.values():
            await b.close()


def parse_embeddings_body(
    node_id: str, payload: Mapping[str, Any], model: str
) -> tuple[list[str], str]:
    """The input texts and the encoding format, or a 400 :class:`UpstreamError` naming the field."""

    def bad(field: str, problem: str) -> UpstreamError:
        return UpstreamError(node_id, f"{field}: {problem}", status=400, retryable=False)

    raw = payload.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw):
        texts = list(raw)
    elif isinstance(raw, list) and raw and all(isinstance(t, (int, list)) for t in raw):
        raise bad("input", "token arrays are not supported here; send strings")
    else:
        raise bad("input", "must be a non-empty string or a non-empty list of strings")
    if len(texts) > MAX_INPUTS:
        raise bad("input", f"{len(texts)} items; at most {MAX_INPUTS} per request")
    for i, text in enumerate(texts):
        if not text:
            raise bad(f"input[{i}]", "must not be empty")
    encoding = payload.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad("encoding_format", f"must be float or base64, got {encoding!r}")
    dims = payload.get("dimensions")
    if dims is not None and dims != EMBEDDING_DIM:
        raise bad("dimensions", f"{model} has {EMBEDDING_DIM} dimensions, got {dims!r}")
    return texts, str(encoding)


def embeddings_response(items: Sequence[Item], model: str, encoding: str) -> dict[str, Any]:
    """The OpenAI ``/v1/embeddings`` answer for ``items`` (vector, tokens) in input order."""
    data = []
    for i, (vector, _) in enumerate(items):
        value: Any
        if encoding == "base64":
            value = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
        else:
            value = vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(t for _, t in items)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
