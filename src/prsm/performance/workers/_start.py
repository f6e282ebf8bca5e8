"""``start_default_workers``: what ``prsm-perf serve`` calls to serve embeddings locally."""

from __future__ import annotations

from dataclasses import replace

from ..clock import Clock
from ..monitoring._registry import MetricsRegistry
from ..routing._node import NodeSpec
from ._pool import LocalWorkerPool
from ._settings import WorkerSettings
from ._upstream import LocalModelUpstream

#: Sentences of varied length that the optional start-up profile embeds.
WARMUP_TEXTS: tuple[str, ...] = (
    "How do I learn to play the guitar?",
    "What is the best way to prepare for a job interview at a large technology company?",
    "Why is the sky blue?",
    "Which programming language should a beginner learn first, and why do people disagree?",
    "How can I improve my English pronunciation without a teacher?",
    "What are the health benefits of drinking green tea every day?",
    "Is it possible to travel faster than light?",
    "What happens to the money deposited in a bank account, and how does the bank use it?",
    "How do vaccines work?",
    "What is the difference between machine learning and traditional statistics?",
    "Where can I find cheap flights to Europe in summer?",
    "How did the Roman Empire fall?",
)


async def start_default_workers(
    settings: WorkerSettings | None = None,
    *,
    metrics: MetricsRegistry | None = None,
    clock: Clock | None = None,
) -> tuple[LocalWorkerPool, list[NodeSpec], LocalModelUpstream]:
    """Start ``settings.count`` workers (placed on GPUs by memory when ``device`` is auto and
    a GPU is present, else on the CPU) and return the pool, one node per worker, and the
    upstream that batches requests onto them. With ``enabled: false`` or ``count: 0`` the
    pool is empty and there are no nodes. Close with ``await upstream.aclose()`` then
    ``await pool.close()``.
    """
    settings = settings or WorkerSettings()
    if not settings.enabled:
        settings = replace(settings, count=0)
    pool = LocalWorkerPool(settings, metrics=metrics, clock=clock)
    await pool.start()
    upstream = LocalModelUpstream(pool, metrics=metrics, clock=clock)
    if settings.warmup_profile and pool.workers:
        await upstream.warm_up(WARMUP_TEXTS)
    return pool, pool.nodes(), upstream
