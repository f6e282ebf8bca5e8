"""The project's own sets through the real :class:`SemanticCache`: near misses and paraphrases
per kind and split, and long prompts (how long a lookup holds the event loop:
:mod:`benchmarks._semantic_loop`).

Each pair gets its own namespace: ``a`` is cached, ``b`` looked up; a hit on a near miss is a
wrong answer, a hit on a paraphrase a right one. Vectors come from the bundled MiniLM (cached
on disk like QQP's); everything else is the default ``SemanticCache`` (or the mode named).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import _semantic_long as longset, _semantic_sets as sets
from benchmarks._qqp import cached_embeddings
from prsm.performance.caching.semantic import SemanticCache, SemanticSettings, Verifier
from prsm.performance.caching.semantic._cascade import AnyVerifier, load_verifier
from prsm.performance.embeddings._embedder import HashingEmbedder

Encode = Callable[[list[str]], np.ndarray]


def modes(dev_cosine: float) -> dict[str, SemanticSettings]:
    return {
        "cosine 0.85 (the post's default)": SemanticSettings(verifier=False, threshold=0.85),
        f"cosine {dev_cosine:.3f} (dev-chosen; GPTCache, redisvl)": SemanticSettings(
            verifier=False, threshold=dev_cosine
        ),
        "ours: SemanticCache() defaults": SemanticSettings(),
    }


async def _hits(settings: SemanticSettings, verifier: AnyVerifier | None,
                pairs: list[tuple[str, str]], va: np.ndarray,
                vb: np.ndarray) -> list[bool]:  # fmt: skip
    cache = SemanticCache(settings, embedder=HashingEmbedder(va.shape[1]), verifier=verifier)
    out = []
    for i, (a, b) in enumerate(pairs):
        ns = f"pair-{i}"
        await cache.cache_result(a, a, ns, vector=va[i])
        out.append(await cache.get_similar(b, ns, vector=vb[i]) is not None)
    await cache.aclose()
    return out


def other_modes() -> dict[str, tuple[SemanticSettings, Verifier]]:
    """The verifier without the cross-encoder, and with it on every candidate."""
    out = {}
    for mode in ("off", "always"):
        v = load_verifier(mode=mode)
        assert isinstance(v, Verifier)
        out[f"ours: SemanticCache(cross_encoder='{mode}')"] = (SemanticSettings(), v)
    return out


def near_miss_rows(encode: Encode, verifier: AnyVerifier, dev_cosine: float,
                   every: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    """Wrong-hit rate per near-miss kind and paraphrase hit rate per kind, per split (every
    ``every``-th pair: the quick form takes a sample), also without the cross-encoder and
    with it on every candidate."""
    rows = sets.load()[::every]
    probe = SemanticCache(SemanticSettings(verifier=False), embedder=HashingEmbedder(8))
    keyed = [(probe.key_of(r["a"])[1], probe.key_of(r["b"])[1]) for r in rows]
    emb = cached_embeddings("sets", [t for pair in keyed for t in pair], encode)
    va = np.stack([emb[a] for a, _ in keyed])
    vb = np.stack([emb[b] for _, b in keyed])
    out: list[dict[str, Any]] = []
    runs: list[tuple[str, SemanticSettings, AnyVerifier]] = [
        (mode, settings, verifier) for mode, settings in modes(dev_cosine).items()
    ]
    runs += [(mode, st, v) for mode, (st, v) in other_modes().items()]
    for mode, settings, judge in runs:
        hit = np.array(asyncio.run(_hits(settings, judge, keyed, va, vb)))
        for split in ("fit", "report", "heldout"):
            for kind in sorted({r["kind"] for r in rows if r["split"] == split}):
                idx = [i for i, r in enumerate(rows) if r["split"] == split and r["kind"] == kind]
                label = rows[idx[0]]["label"]
                out.append({"section": "near-miss", "mode": mode, "split": split, "kind": kind,
                            "label": "paraphrase" if label else "near miss", "pairs": len(idx),
                            "hit_rate": float(hit[idx].mean())})  # fmt: skip
            for label, name in ((0, "near misses, all kinds"), (1, "paraphrases, all kinds")):
                idx = [i for i, r in enumerate(rows) if r["split"] == split and r["label"] == label]
                if idx:
                    out.append({"section": "near-miss", "mode": mode, "split": split,
                                "kind": name, "label": "all", "pairs": len(idx),
                                "hit_rate": float(hit[idx].mean())})  # fmt: skip
    return out


def long_rows(encode: Encode, verifier: AnyVerifier, dev_cosine: float,
              every: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    """The long-prompt set: ours (context by hash, question compared) against a plain cosine
    on the whole prompt (what a cache that embeds the prompt does)."""
    rows, docs = longset.load()
    rows = rows[::every]
    pairs = [(longset.text(r, "a", docs), longset.text(r, "b", docs)) for r in rows]
    whole = cached_embeddings("long", [t for p in pairs for t in p], encode)
    plain = np.array([float(whole[a] @ whole[b]) for a, b in pairs])
    probe = SemanticCache(SemanticSettings(verifier=False), embedder=HashingEmbedder(8))
    keyed = [(probe.key_of(a), probe.key_of(b)) for a, b in pairs]
    qemb = cached_embeddings("long", [t for ka, kb in keyed for t in (ka[1], kb[1])], encode)
    va = np.stack([qemb[ka[1]] for ka, _ in keyed])
    vb = np.stack([qemb[kb[1]] for _, kb in keyed])
    ours = np.array(asyncio.run(_hits(SemanticSettings(), verifier, pairs, va, vb)))
    ((_, always),) = [v for k, v in other_modes().items() if k.endswith("'always')")]
    with_cross = np.array(asyncio.run(_hits(SemanticSettings(), always, pairs, va, vb)))
    out: list[dict[str, Any]] = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        out.append({"section": "long", "kind": kind,
                    "label": "paraphrase" if rows[idx[0]]["label"] else "near miss",
                    "pairs": len(idx), "ours_hit_rate": float(ours[idx].mean()),
                    "ours_cross_encoder_always_hit_rate": float(with_cross[idx].mean()),
                    f"cosine_{dev_cosine:.3f}_whole_prompt_hit_rate":
                        float((plain[idx] >= dev_cosine).mean())})  # fmt: skip
    return out
