"""How much of QQP's "wrong" is the labels: the audit and the ceiling it puts on any scorer.

QQP labels only the pairs it sampled, so two paraphrases that were never paired sit in
different classes and a hit on one for the other is counted wrong. A scorer reads the texts;
the missing label is not in them, so it cannot avoid those hits except by missing true ones at
the same rate.

``benchmarks/data/qqp_wrong_top1_judged.jsonl`` holds 200 test lookups whose top-1 neighbour
the protocol counts wrong: 40 drawn at random (fixed seeds) from each band of top-1 cosine, each
pair read and judged by hand, ``same_question`` true when a cache serving the cached
question's answer would have answered the lookup (a paraphrase) and false when it asks
something else (another entity, number, direction, scope). From the judged share of
paraphrases in each band, :func:`ceiling` estimates what a *perfect paraphrase judge* would
score under the protocol if it served every lookup whose top-1 is a paraphrase and nothing
else, band by band. It is an estimate, not a bound: a fitted scorer can also learn which kinds
of pairs QQP tended to label (ours, at low recall, already scores above this judge's curve).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _semantic_qqp as qqp

JUDGED = Path(__file__).resolve().parent / "data" / "qqp_wrong_top1_judged.jsonl"
AUDIT_BANDS = ((0.98, 1.01), (0.95, 0.98), (0.90, 0.95), (0.85, 0.90))


def label_audit(split: qqp.Split, samples: int = 12) -> tuple[list[dict[str, Any]], list[str]]:
    """The share of top-1 neighbours counted wrong per band of very high cosine, and a few
    such pairs for people to read."""
    top1, right = split.cos[:, 0], split.right[:, 0]
    rows: list[dict[str, Any]] = []
    for lo, hi in AUDIT_BANDS:
        band = (top1 >= lo) & (top1 < hi)
        wrong_share = float(1 - right[band].mean()) if band.any() else None
        rows.append({"section": "label-audit", "top1_cosine": f"[{lo:.2f}, {min(hi, 1.0):.2f}]",
                     "lookups": int(band.sum()), "counted_wrong": wrong_share})  # fmt: skip
    wrong = np.flatnonzero((top1 >= 0.95) & ~right)
    picked = np.random.default_rng(0).choice(wrong, size=min(samples, len(wrong)), replace=False)
    notes = [f"counted wrong at cosine {top1[j]:.3f}: {split.proto.lookups[j]!r} -> "
             f"{split.proto.cached[int(split.top[j, 0])]!r}" for j in picked.tolist()]  # fmt: skip
    return rows, notes


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson interval of a share ``k / n``."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


Judged = dict[tuple[float, float], tuple[int, int]]  # band -> (paraphrases, judged)


def load_judged(path: Path = JUDGED) -> Judged:
    """The judged pairs, counted per band."""
    out: Judged = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        band = (float(row["band"][0]), float(row["band"][1]))
        same, n = out.get(band, (0, 0))
        out[band] = (same + bool(row["same_question"]), n + 1)
    return out


def curve(bands: list[dict[str, float]], share_key: str, answerable: int) -> dict[str, Any]:
    """Serve whole bands, best first: the best F1 on the way, and the precision where recall
    reaches 0.50 (``None`` if it never does). A band adds its counted-right lookups and its
    counted-wrong ones times ``share_key``, the share of them that are paraphrases."""
    correct = served = 0.0
    best_f1, p_at_half = 0.0, None
    for b in bands:
        add_correct, add_served = b["correct"], b["correct"] + b["wrong"] * b[share_key]
        need = 0.5 * answerable - correct
        if p_at_half is None and 0 < need <= add_correct:  # recall 0.50 inside this band
            p_at_half = (correct + need) / (served + add_served * need / add_correct)
        correct, served = correct + add_correct, served + add_served
        if correct > 0:
            p, r = correct / served, correct / answerable
            best_f1 = max(best_f1, 2 * p * r / (p + r))
    return {"max_f1": best_f1, "precision_at_recall_0.50": p_at_half}


def ceiling(split: qqp.Split, judged: Judged) -> list[dict[str, Any]]:
    """Rows: each judged band, then the perfect paraphrase judge's curve (point estimate and
    with every band's paraphrase share at the low end of its 95 % interval, the judge's best
    case)."""
    top1, right = split.cos[:, 0], split.right[:, 0]
    bands: list[dict[str, float]] = []
    rows: list[dict[str, Any]] = []
    for (lo, hi), (same, n) in sorted(judged.items(), reverse=True):
        inside = (top1 >= lo) & (top1 < (hi if hi < 1.0 else 1.01))
        interval = _wilson(same, n)
        b = {"correct": int((inside & right).sum()), "wrong": int((inside & ~right).sum()),
             "share": same / n, "share_low": interval[0]}  # fmt: skip
        bands.append(b)
        rows.append({"section": "label-ceiling", "top1_cosine": f"[{lo:.2f}, {hi:.2f}]",
                     "counted_right": b["correct"], "counted_wrong": b["wrong"],
                     "judged": n, "paraphrase_share_of_wrong": b["share"],
                     "share_95pct": list(interval)})  # fmt: skip
    for label, key in (("estimate", "share"), ("judge's best case", "share_low")):
        rows.append({"section": "label-ceiling", "top1_cosine": f"perfect judge, {label}",
                     **curve(bands, key, split.answerable)})  # fmt: skip
    return rows
