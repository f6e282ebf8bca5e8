from ._pool import LocalWorkerPool as LocalWorkerPool
from ._process import (
    EmbedBatch as EmbedBatch,
    WorkerProcess as WorkerProcess,
)
from ._settings import WorkerSettings as WorkerSettings
from ._start import start_default_workers as start_default_workers
from ._upstream import LocalModelUpstream as LocalModelUpstream
