"""The label-ceiling arithmetic of the semantic benchmark, on numbers worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks._semantic_audit import JUDGED, curve, load_judged


def test_curve_serves_bands_best_first_and_interpolates_recall_half() -> None:
    bands = [
        {"correct": 40.0, "wrong": 20.0, "share": 0.5},  # serves 40 right + 10 paraphrases
        {"correct": 40.0, "wrong": 40.0, "share": 0.25},  # serves 40 right + 10 paraphrases
    ]
    out = curve(bands, "share", answerable=100)
    # recall 0.50 needs 10 of the second band's 40 right: a quarter of its 50 served
    assert out["precision_at_recall_0.50"] == pytest.approx(50 / 62.5)
    # after both bands: P = 80/100, R = 0.80
    assert out["max_f1"] == pytest.approx(0.8)


def test_curve_without_reaching_recall_half() -> None:
    out = curve([{"correct": 10.0, "wrong": 0.0, "share": 1.0}], "share", answerable=100)
    assert out["precision_at_recall_0.50"] is None
    assert out["max_f1"] == pytest.approx(2 * 1.0 * 0.1 / 1.1)


def test_load_judged_counts_per_band(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    rows = [([0.9, 1.0], True), ([0.9, 1.0], False), ([0.8, 0.9], True)]
    path.write_text("".join(json.dumps({"band": b, "same_question": s}) + "\n" for b, s in rows))
    assert load_judged(path) == {(0.9, 1.0): (1, 2), (0.8, 0.9): (1, 1)}


def test_shipped_judgements_cover_five_bands_of_forty() -> None:
    judged = load_judged(JUDGED)
    assert len(judged) == 5
    assert all(n == 40 for _, n in judged.values())
