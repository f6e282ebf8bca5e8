"""Local model workers: processes holding all-MiniLM-L6-v2, batched, exposed as nodes.

:func:`start_default_workers` is what ``prsm-perf serve`` calls; :class:`LocalWorkerPool`
starts, health-checks and restarts worker processes; :class:`LocalModelUpstream` serves
OpenAI ``/v1/embeddings`` bodies on them through one dynamic batcher per worker.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
