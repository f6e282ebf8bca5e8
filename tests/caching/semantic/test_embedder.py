"""The embedders: the micro-batcher coalesces concurrent calls; the hashing double."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from prsm.performance._helper_process import HelperProcess
from prsm.performance.embeddings._embedder import (
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
)


class FakeModel:
    """Stands in for a SentenceTransformer: records the batches it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        if self.fail:
            raise RuntimeError("model exploded")
        self.batches.append(list(texts))
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, len(t) % 4] = 3.0
        return out


async def test_concurrent_calls_share_one_model_batch() -> None:
    model = FakeModel()
    emb = SentenceTransformerEmbedder(model, dim=4, max_batch=32)  # type: ignore[arg-type]
    assert isinstance(emb, Embedder)
    texts = [f"q{'x' * i}" for i in range(10)]
    results = await asyncio.gather(*(emb.embed([t]) for t in texts))
    assert len(model.batches) == 1 and model.batches[0] == texts
    for t, r in zip(texts, results, strict=True):
        assert r.shape == (1, 4)
        assert r[0, len(t) % 4] == pytest.approx(1.0)  # normalised
    emb.close()


async def test_batches_respect_max_batch() -> None:
    model = FakeModel()
    emb = SentenceTransformerEmbedder(model, dim=4, max_batch=4)  # type: ignore[arg-type]
    await asyncio.gather(*(emb.embed([f"t{i}"]) for i in range(10)))
    assert [len(b) for b in model.batches] == [4, 4, 2]
    emb.close()


async def test_model_errors_reach_every_waiter() -> None:
    emb = SentenceTransformerEmbedder(FakeModel(fail=True), dim=4)  # type: ignore[arg-type]
    results = await asyncio.gather(emb.embed(["a"]), emb.embed(["b"]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    emb.close()


async def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    a = await HashingEmbedder().embed(["same words here", "different text entirely"])
    b = HashingEmbedder().encode(["same words here"])
    assert np.allclose(a[0], b[0])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float(a[0] @ a[1]) < 0.5
    assert (await HashingEmbedder().embed([])).shape == (0, 256)


def test_a_helper_runs_the_bundled_model_only() -> None:
    from prsm.performance.errors import ConfigError

    with pytest.raises(ConfigError, match="helper"):
        SentenceTransformerEmbedder(FakeModel(), dim=4, helper=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout"):
        SentenceTransformerEmbedder(helper=True, timeout=0)


@pytest.mark.integration
async def test_in_a_helper_process_the_bundled_model_embeds_as_in_this_one() -> None:
    pytest.importorskip("sentence_transformers")
    import os

    from prsm.performance.embeddings._embedder import _helper

    texts = ["How do I reset my router?", "What is the capital of France?"]
    remote = SentenceTransformerEmbedder(helper=True)
    await remote.warm()
    helper = _helper(None)
    assert isinstance(helper, HelperProcess)
    assert helper.pid is not None and helper.pid != os.getpid()
    there = await asyncio.gather(remote.embed(texts[:1]), remote.embed(texts[1:]))
    assert remote._model is None  # never loaded in this process
    assert not remote._pool._threads  # awaited on the loop: no worker thread ran
    here = SentenceTransformerEmbedder().encode(texts)
    np.testing.assert_allclose(np.vstack(there), here, atol=1e-5)
    np.testing.assert_allclose(remote.encode(texts), here, atol=1e-5)  # blocking, batch work
    remote.close()
