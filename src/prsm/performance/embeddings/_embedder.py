"""Text → normalised vectors, behind a small :class:`Embedder` protocol.

* :class:`SentenceTransformerEmbedder` runs the bundled all-MiniLM-L6-v2 off the event loop
  (one worker thread) and coalesces concurrent ``embed`` calls into one model batch: while
  the model works on one batch, new calls queue, and the next batch takes them all (up to
  ``max_batch`` texts). A semantic lookup is thus batched with other requests' embeddings
  without waiting on a timer. With ``helper=True`` the model itself lives in a helper
  process (:mod:`prsm.performance._helper_process`, one per device, shared by the process's
  embedders) and ``embed`` awaits it on the event loop, with no worker thread: a forward
  pass in a thread of the caller's process holds the GIL for milliseconds, and an event
  loop waits for it.
* :class:`HashingEmbedder` is the deterministic in-library double for tests: signed feature
  hashing of words and character n-grams. Similar wordings get similar vectors; no model.

Importing this module does not import torch; the model loads on first use.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .._helper_host import Helper, shared_helper
from .._helper_process import LOAD_TIMEOUT, Prepare
from ..errors import ConfigError
from ._model import EMBEDDING_DIM

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows of width :attr:`dim`."""

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 array, each row of unit length."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(v / norms, dtype=np.float32)


_Pending = tuple[list[str], "asyncio.Future[np.ndarray]"]


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or any sentence-transformers model) with a micro-batcher.

    ``model`` may be given (already loaded) or a ``loader`` that returns one; by default the
    bundled model is loaded on first use, in the worker thread, or with ``helper`` in a
    helper process (``timeout``: seconds one batch may take there).
    """

    def __init__(
        self,
        model: SentenceTransformer | None = None,
        *,
        loader: Callable[[], SentenceTransformer] | None = None,
        device: str | None = None,
        max_batch: int = 32,
        dim: int = EMBEDDING_DIM,
        helper: bool = False,
        timeout: float = 10.0,
    ) -> None:
        if max_batch < 1:
            raise ConfigError("max_batch", f"must be >= 1, got {max_batch}")
        if helper and (model is not None or loader is not None):
            raise ConfigError("helper", "a given model or loader runs in this process")
        if not timeout > 0:
            raise ConfigError("timeout", f"must be > 0 seconds, got {timeout}")
        self.helper = helper
        self.timeout = timeout
        self._model = model
        self._loader = loader
        self._device = device
        self.max_batch = max_batch
        self._dim = dim
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prsm-embed")
        self._pending: list[_Pending] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0
        self.texts = 0

    @property
    def dim(self) -> int:
        return self._dim

    def _get_model(self) -> SentenceTransformer:
        if self._model is None:
            if self._loader is not None:
                self._model = self._loader()
            else:
                from ._model import load_sentence_transformer

                self._model = load_sentence_transformer(self._device)
        return self._model

    def _load(self) -> Prepare:
        """What the helper must have loaded before an embedding (within the load time, not
        the call's ``timeout``)."""
        return (_load_in_helper, (self._device,))

    async def warm(self) -> None:
        """Load the model (in the worker thread or the helper) now, not on the first
        request."""
        if self.helper:
            load = self._load()
            await _helper(self._device).acall(*load, LOAD_TIMEOUT, prepare=load)
        else:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._get_model)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed synchronously, in the calling thread or waiting on the helper (batch jobs,
        benchmarks)."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        if self.helper:
            args = (self._device, self.max_batch, list(texts))
            vectors: np.ndarray = _helper(self._device).call(
                _encode_in_helper, args, self.timeout, prepare=self._load()
            )
            return vectors
        out: Any = self._get_model().encode(
            list(texts),
            batch_size=self.max_batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalise(np.asarray(out))

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((list(texts), fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch: list[_Pending] = []
            size = 0
            while self._pending and (
                not batch or size + len(self._pending[0][0]) <= self.max_batch
            ):
                item = self._pending.pop(0)
                batch.append(item)
                size += len(item[0])
            flat = [t for texts, _ in batch for t in texts]
            try:
                vectors = await self._encode_async(loop, flat)
            except Exception as exc:  # handed to every waiter of this batch
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            self.texts += len(flat)
            start = 0
            for texts, fut in batch:
                if not fut.done():
                    fut.set_result(vectors[start : start + len(texts)])
                start += len(texts)

    async def _encode_async(self, loop: asyncio.AbstractEventLoop, texts: list[str]) -> np.ndarray:
        """A batch from the loop: awaited on the helper (no thread), or in the worker thread."""
        if not self.helper:
            return await loop.run_in_executor(self._pool, self.encode, texts)
        args = (self._device, self.max_batch, texts)
        vectors: np.ndarray = await _helper(self._device).acall(
            _encode_in_helper, args, self.timeout, prepare=self._load()
        )
        return vectors

    def close(self) -> None:
        """Stop the worker thread (pending calls finish first)."""
        self._pool.shutdown(wait=True)


#: in a helper: the loaded model by device
_MODELS: dict[str | None, SentenceTransformer] = {}


def _helper(device: str | None) -> Helper:
    """The helper for ``device`` (one per device per process, shared by its embedders)."""
    return shared_helper(f"embedder {device or 'default'}")


def _load_in_helper(device: str | None) -> bool:  # pragma: no cover - runs in the helper
    if device not in _MODELS:
        from ._model import load_sentence_transformer

        _MODELS[device] = load_sentence_transformer(device)
    return True


def _encode_in_helper(device: str | None, max_batch: int,
                      texts: list[str]) -> np.ndarray:  # pragma: no cover - helper  # fmt: skip
    _load_in_helper(device)
    return SentenceTransformerEmbedder(_MODELS[device], max_batch=max_batch).encode(texts)


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Deterministic test double: signed hashing of words, word pairs and char n-grams.

    Texts sharing most words get cosine near 1; texts sharing none get cosine near 0.
    """

    def __init__(self, dim: int = 256, *, ngram: int = 3) -> None:
        if dim < 8:
            raise ConfigError("dim", f"must be >= 8, got {dim}")
        self._dim = dim
        self.ngram = ngram
        self.calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _TOKEN.findall(text.lower())
        feats: list[tuple[str, float]] = [(f"w:{w}", 1.0) for w in words]
        feats += [(f"b:{a}_{b}", 0.5) for a, b in itertools.pairwise(words)]
        for w in words:
            padded = f"<{w}>"
            feats += [
                (f"c:{padded[i : i + self.ngram]}", 0.3)
                for i in range(max(1, len(padded) - self.ngram + 1))
            ]
        return feats

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat, weight in self._features(text):
                h = zlib.crc32(feat.encode("utf-8"))
                sign = 1.0 if (h >> 31) & 1 else -1.0
                out[row, h % self._dim] += sign * weight
        return normalise(out)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return self.encode(texts)
