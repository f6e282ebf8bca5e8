"""``prsm-perf serve`` on its embedded defaults: a local worker answers /v1/embeddings with
the same vectors as calling sentence-transformers directly."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from prsm.performance.embeddings._model import load_sentence_transformer

from .procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_ready(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/readyz").status_code == 200:
            return
        time.sleep(0.25)
    raise TimeoutError(f"{url}/readyz did not answer 200 within {timeout}s")


def test_serve_defaults_answer_embeddings_from_a_local_worker(tmp_path: Path) -> None:
    texts = ["hello world", "How do I convert Celsius to Fahrenheit?"]
    gw = start_gateway(tmp_path, {"workers": {"count": 1}})
    try:
        wait_ready(gw.url)
        models = httpx.get(f"{gw.url}/v1/models").json()
        assert "all-MiniLM-L6-v2" in [m["id"] for m in models["data"]]
        reply = httpx.post(
            f"{gw.url}/v1/embeddings",
            json={"model": "all-MiniLM-L6-v2", "input": texts},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        got = np.array([d["embedding"] for d in reply.json()["data"]], dtype=np.float32)
    finally:
        gw.stop()
    want = load_sentence_transformer("cpu").encode(texts)
    assert got.shape == want.shape == (2, 384)
    np.testing.assert_allclose(got, want, atol=1e-4)
