"""The cross-encoder's part of the semantic benchmark: its training rows, its scores.

The cross-encoder (``caching/semantic/_cross.py``) is fine-tuned on QQP **dev** only by
``benchmarks/_semantic_cross_train.py``, on a machine with a GPU (on two shared CPU cores one
training step of 256 pairs took ~100 s; on an H200 a whole 2-epoch fit takes ~30 s). The rows
are what the tree verifier is fitted on — every dev lookup's top-5 candidates, labelled by
the protocol's classes — plus dev's labelled pairs whose ``b`` is a lookup, each tagged with
its lookup's fold (the folds of :func:`benchmarks._semantic_qqp.fit_verifier`), so that the
training script's 5 out-of-fold models give each dev row a score from a model that never saw
its lookup; a sixth model, fitted on all of dev, is the one shipped and scores the sets.

    python -m benchmarks.semantic --export-cross DIR     # DIR/data.json.gz + DIR/base/
    python benchmarks/_semantic_cross_train.py           # there, with DIR beside it; OUT=...
    python -m benchmarks.semantic --fit --cross-encoder OUT   # verifier-cross.json
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _semantic_sets as sets_mod
from benchmarks._qqp import fold, load_pairs
from benchmarks._semantic_qqp import TOP_K, CrossEncoderScores, Split

FOLDS = 5
ADAPTER = "cross_encoder.safetensors"


def fold_of_lookups(n: int) -> np.ndarray:
    """Each lookup's fold, exactly as :func:`fit_verifier` draws them."""
    folds: np.ndarray = np.random.default_rng(0).integers(0, FOLDS, n)
    return folds


def export(dev: Split, test: Split, out: Path) -> dict[str, int]:
    """The training rows (dev), the rows to score (test candidates, the sets) and the base
    model in half precision (what travels to the GPU machine)."""
    from safetensors.torch import load_file, save_file

    from prsm.performance.embeddings._model import model_path

    p, n = dev.proto, len(dev.proto.lookups)
    folds = fold_of_lookups(n)
    rows = [{"q": p.lookups[j], "c": p.cached[int(i)], "y": int(dev.right[j, r]),
             "f": int(folds[j])}
            for j in range(n) for r, i in enumerate(dev.top[j].tolist())]  # fmt: skip
    at = {fold(t): j for j, t in enumerate(p.lookups)}
    lab = [{"q": b, "c": a, "y": y, "f": int(folds[at[fold(b)]])}
           for a, b, y in load_pairs("dev") if fold(b) in at]  # fmt: skip
    tp = test.proto
    trows = [{"q": tp.lookups[j], "c": tp.cached[int(i)]}
             for j in range(len(tp.lookups)) for i in test.top[j].tolist()]  # fmt: skip
    srows = [{"q": r["b"], "c": r["a"]} for r in sets_mod.load()]
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "data.json.gz", "wt") as fh:
        json.dump({"dev": rows, "lab": lab, "test": trows, "sets": srows}, fh)
    base, dst = model_path(), out / "base"
    dst.mkdir(exist_ok=True)
    weights = load_file(str(base / "model.safetensors"))
    half = {k: v.half().contiguous() for k, v in weights.items()}
    save_file(half, str(dst / "model.safetensors"))
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):  # fmt: skip
        shutil.copy(base / name, dst)
    return {"dev_rows": len(rows), "labelled": len(lab), "test_rows": len(trows),
            "set_rows": len(srows)}  # fmt: skip


def cross_scores(where: str | Path, dev: Split) -> CrossEncoderScores:
    """The training script's output (``oof.npy``, ``sets.npy``, the adapter) for the fit."""
    d = Path(where)
    oof = np.load(d / "oof.npy")
    if oof.shape != (dev.top.size,) or np.isnan(oof).any() or dev.top.shape[1] != TOP_K:
        raise ValueError(f"{d / 'oof.npy'}: not an out-of-fold score for each dev row")
    every = np.load(d / "sets.npy")
    rows = sets_mod.load()
    if len(every) != len(rows):
        raise ValueError(f"{d / 'sets.npy'}: {len(every)} scores for {len(rows)} set pairs")
    fit = np.array([i for i, r in enumerate(rows) if r["split"] == "fit"])
    meta: dict[str, Any] = {"trained_on": "qqp_pairs_dev.jsonl (candidate rows + labelled pairs)",
                            "adapter": ADAPTER, "scores_from": d.name}  # fmt: skip
    return CrossEncoderScores(dev=oof, sets=every[fit], adapter=ADAPTER, meta=meta)
