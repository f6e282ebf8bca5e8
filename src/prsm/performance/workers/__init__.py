"""Local model workers: processes holding all-MiniLM-L6-v2, batched, exposed as nodes.

:func:`start_default_workers` is what ``prsm-perf serve`` calls; :class:`LocalWorkerPool`
starts, health-checks and restarts worker processes; :class:`LocalModelUpstream` serves
OpenAI ``/v1/embeddings`` bodies on them through one dynamic batcher per worker.
"""

from .pool import LocalWorkerPool
from .process import EmbedBatch, WorkerProcess
from .settings import WorkerSettings
from .start import start_default_workers
from .upstream import LocalModelUpstream

__all__ = [
    "EmbedBatch",
    "LocalModelUpstream",
    "LocalWorkerPool",
    "WorkerProcess",
    "WorkerSettings",
    "start_default_workers",
]
