"""An inverted-file index (faiss ``IndexIVFFlat``) for namespaces of hundreds of thousands to
millions of entries.

k-means splits the vectors into ``lists`` cells; a query scans only the ``probe`` cells whose
centres are nearest to it. Cells suit a cache's data (sentence embeddings are clustered) and,
unlike a graph, cost one pass over the vectors to build and nothing to keep connected when
entries leave: removal is a hashtable lookup (faiss' direct map).

The lists need training, so the index is exact (a :class:`~.index.FlatIndex`) until it holds
``train_at`` entries. Then k-means runs on a copy of them **in a background thread** while the
exact index keeps answering; inserts and removals made meanwhile are logged and replayed on the
trained index, which takes over on the next call after training ends. A failed training is
logged and retried once the index has doubled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DependencyMissingError
from ._index import FlatIndex, _as_matrix
from ._settings import check_ivf

log = logging.getLogger(__name__)

#: most training vectors per list (faiss' own cap is 256: more buys nothing)
_SAMPLE_PER_LIST = 64


class _Training:
    """k-means and the first fill of the lists, on copies, off the caller's thread."""

    def __init__(self, dim: int, lists: int, niter: int, keys: np.ndarray, vecs: np.ndarray):
        self.dim, self.lists, self.niter = dim, lists, niter
        self.keys, self.vecs = keys, vecs
        self.index: Any = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            import faiss

            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, self.lists, faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = self.niter
            rng = np.random.default_rng(0)
            n = len(self.vecs)
            take = min(n, _SAMPLE_PER_LIST * self.lists)
            sample = self.vecs if take == n else self.vecs[rng.choice(n, take, replace=False)]
            index.train(np.ascontiguousarray(sample))
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
            index.add_with_ids(self.vecs, self.keys)
            self.index = index  # (faiss' wrapper keeps the quantizer alive with it)
        except BaseException as exc:  # handed to the owner, which logs it and stays exact
            self.error = exc

    def done(self) -> bool:
        return self.thread is None or not self.thread.is_alive()


class IVFIndex:
    """Inner-product search over inverted lists (faiss), exact until ``train_at`` entries.

    ``lists``: k-means cells (4096 suits about 0.2–10 M entries); ``probe``: cells scanned
    per query (more: better recall, slower); ``train_at``: entries before the lists are
    trained (default 40 per list); ``niter``: k-means iterations; ``background``: train in a
    thread (``False``: at once, in the caller's thread).
    """

    def __init__(
        self,
        dim: int,
        *,
        lists: int = 4096,
        probe: int = 16,
        train_at: int | None = None,
        niter: int = 10,
        background: bool = True,
    ) -> None:
        try:
            import faiss
        except ImportError as exc:
            raise DependencyMissingError("faiss", "embeddings", "the IVF vector index") from exc
        check_ivf(lists, probe, train_at)
        train_at = 40 * lists if train_at is None else train_at
        self._faiss = faiss
        self.dim = dim
        self.lists, self.probe, self.train_at = lists, probe, train_at
        self.niter, self.background = niter, background
        self._flat: FlatIndex | None = FlatIndex(dim)
        self._ivf: Any = None
        self._keys: set[int] = set()  # what the trained index holds
        self._job: _Training | None = None
        self._log: list[tuple[list[int], np.ndarray | None]] = []  # changes while training
        self._retry_at = train_at

    @property
    def kind(self) -> str:
        """``flat`` (untrained), ``training`` (exact while k-means runs) or ``ivf``."""
        if self._ivf is not None:
            return "ivf"
        return "training" if self._job is not None else "flat"

    def __len__(self) -> int:
        return len(self._keys) if self._ivf is not None else len(self._flat or ())

    def set_probe(self, probe: int) -> None:
        """Cells scanned per query."""
        check_ivf(self.lists, probe, None)
        self.probe = probe
        if self._ivf is not None:
            self._ivf.nprobe = probe

    # --- the VectorIndex protocol
    def add(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        if len(keys) == 0:
            return
        v = _as_matrix(vectors, self.dim, len(keys))
        self._poll()
        if self._ivf is not None:
            self._ivf_add(keys, v)
            return
        flat = self._flat
        assert flat is not None
        flat.add(keys, v)
        if self._job is not None:
            self._log.append(([int(k) for k in keys], v.copy()))
        elif len(flat) >= self._retry_at:
            self._train()

    def remove(self, keys: Sequence[int]) -> None:
        self._poll()
        if self._ivf is not None:
            self._ivf_remove(keys)
            return
        assert self._flat is not None
        self._flat.remove(keys)
        if self._job is not None:
            self._log.append(([int(k) for k in keys], None))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._poll()
        if self._ivf is None:
            assert self._flat is not None
            return self._flat.search(query, k)
        if k < 1 or not self._keys:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        scores, keys = self._ivf.search(q, k)
        found = keys[0] >= 0
        return scores[0][found], keys[0][found]

    def save(self, path: Path) -> None:
        """One ``.npz`` file: the keys and vectors while untrained, the faiss index after."""
        self.wait_trained()
        tmp = path.with_name(path.name + ".tmp.npz")
        if self._ivf is None:
            assert self._flat is not None
            self._flat.save(tmp)
        else:
            blob = self._faiss.serialize_index(self._ivf)
            np.savez(tmp, faiss=blob, keys=np.fromiter(self._keys, dtype=np.int64))
        tmp.replace(path)

    def load(self, path: Path) -> None:
        with np.load(path) as z:
            if "faiss" in z:
                self._ivf = self._faiss.deserialize_index(z["faiss"])
                self._ivf.nprobe = self.probe
                self._keys = set(z["keys"].tolist())
                self._flat, self._job, self._log = None, None, []
                return
        self._ivf, self._keys = None, set()
        self._flat = FlatIndex(self.dim)
        self._flat.load(path)

    def wait_trained(self, timeout: float | None = None) -> bool:
        """Wait for a training in progress (benchmarks, tests, ``save``); True when trained."""
        job = self._job
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        self._poll()
        return self._ivf is not None

    # --- internals
    def _train(self) -> None:
        assert self._flat is not None
        keys, vecs = self._flat.vectors()
        job = _Training(self.dim, self.lists, self.niter, keys.copy(), vecs.copy())
        self._job = job
        if not self.background:
            job.run()
            self._poll()
            return
        job.thread = threading.Thread(target=job.run, name="prsm-ivf-train", daemon=True)
        job.thread.start()

    def _poll(self) -> None:
        job = self._job
        if job is None or not job.done():
            return
        self._job = None
        changes, self._log = self._log, []
        if job.error is not None or job.index is None:
            assert self._flat is not None
            self._retry_at = 2 * len(self._flat)
            log.error(
                "IVF training failed (staying exact, retrying at %d entries)",
                self._retry_at,
                exc_info=job.error,
            )
            return
        self._ivf = job.index
        self._ivf.nprobe = self.probe
        self._keys = set(job.keys.tolist())
        for keys, vecs in changes:
            if vecs is None:
                self._ivf_remove(keys)
            else:
                self._ivf_add(keys, vecs)
        self._flat = None

    def _ivf_add(self, keys: Sequence[int], v: np.ndarray) -> None:
        self._ivf_remove(keys)  # a key added again replaces its vector
        ids = np.asarray(keys, dtype=np.int64)
        self._ivf.add_with_ids(v, ids)
        self._keys.update(ids.tolist())

    def _ivf_remove(self, keys: Sequence[int]) -> None:
        present = np.asarray([int(k) for k in keys if int(k) in self._keys], dtype=np.int64)
        if len(present) == 0:
            return
        faiss = self._faiss
        self._ivf.remove_ids(faiss.IDSelectorArray(len(present), faiss.swig_ptr(present)))
        self._keys.difference_update(present.tolist())
