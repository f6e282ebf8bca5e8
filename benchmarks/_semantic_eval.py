"""The project's own sets through the real :class:`SemanticCache`: near misses and paraphrases
per kind and split, long prompts, and how long a lookup holds the event loop.

Each pair gets its own namespace: ``a`` is cached, ``b`` looked up; a hit on a near miss is a
wrong answer, a hit on a paraphrase a right one. Vectors come from the bundled MiniLM (cached
on disk like QQP's); everything else is the default ``SemanticCache`` (or the mode named).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import _semantic_long as longset, _semantic_sets as sets
from benchmarks._qqp import cached_embeddings
from prsm.performance.caching.semantic import SemanticCache, SemanticSettings, Verifier
from prsm.performance.caching.semantic._cascade import AnyVerifier, CascadeVerifier, load_verifier
from prsm.performance.caching.semantic._settings import ModelRunner
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


async def _loop_stall(runner: ModelRunner, words: int, lookups: int) -> dict[str, Any]:
    """The longest the event loop went without running while ``lookups`` lookups of a
    ``words``-word prompt were verified against five candidates each, by the default verifier
    (the cascade) run as ``model_runner=runner``."""
    emb = HashingEmbedder(64)
    settings = SemanticSettings(long_prompt_words=10 * words, candidate_threshold=-1.0,
                                model_runner=runner)  # fmt: skip
    cache = SemanticCache(settings, embedder=emb)
    v = emb.encode(["x"])[0]
    filler = " ".join(f"word{i % 97}" for i in range(words))
    for i in range(5):
        await cache.cache_result(f"{filler} question {i}?", i, vector=v)
    await cache.get_similar(filler, vector=v)  # warm: the lexicon and the model load
    verifier = cache.verifier
    before = verifier.counts.as_dict() if isinstance(verifier, CascadeVerifier) else {}
    # the beat allocates nothing that lives: a histogram of 10 µs bins and running maxima
    # (a list of millions of samples made its own multi-millisecond pauses as it grew)
    bins = [0] * (_BINS + 1)
    gap_bins = [0] * (_BINS + 1)
    most = {"held": 0.0, "gap": 0.0}
    stop = False

    async def beat() -> None:
        # wall gaps include the OS taking the core away (this machine is shared); the event
        # loop thread's own CPU time between two beats is what code on the loop held it for
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not stop:
            await asyncio.sleep(0)
            now, cpu = time.perf_counter(), time.thread_time()
            held = cpu - last_cpu
            bins[min(int(held * 1e5), _BINS)] += 1
            gap_bins[min(int((now - last) * 1e5), _BINS)] += 1
            most["held"] = max(most["held"], held)
            most["gap"] = max(most["gap"], now - last)
            last, last_cpu = now, cpu

    task = asyncio.ensure_future(beat())
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    for i in range(lookups):
        await cache.get_similar(f"{filler} question {i} again?", vector=v)
    per = (time.perf_counter() - t0) / lookups
    stop = True
    await task
    after = verifier.counts.as_dict() if isinstance(verifier, CascadeVerifier) else {}
    await cache.aclose()
    crossed = after.get("crossed_lookups", 0) - before.get("crossed_lookups", 0)
    return {"model_runner": runner, "words": words, "lookups": lookups, "lookup_ms": per * 1e3,
            "cross_encoder_lookups": crossed,
            "loop_hold_max_ms": most["held"] * 1e3, "loop_hold_p99_ms": _p99(bins) * 1e3,
            "wall_gap_max_ms": most["gap"] * 1e3,
            "wall_gap_p99_ms": _p99(gap_bins) * 1e3}  # fmt: skip


_BINS = 2000  # 10 µs each: 20 ms, then one bin for longer


def _p99(bins: list[int]) -> float:
    """The 99th percentile of a histogram of 10 µs bins (the bin's upper edge), seconds."""
    total, seen = sum(bins), 0
    for i, n in enumerate(bins):
        seen += n
        if seen >= 0.99 * total:
            return (i + 1) * 1e-5
    return 0.0


def loop_rows(quick: bool) -> list[dict[str, Any]]:
    """The loop's longest step with the models in their helper process (the default) and
    in a thread of this process."""
    sizes = (50, 2000) if quick else (50, 500, 2000, 20000)
    return [{"section": "event-loop",
             **asyncio.run(_loop_stall(runner, w, 20 if quick else n))}
            for runner, n in (("process", 200), ("thread", 100)) for w in sizes]  # fmt: skip
