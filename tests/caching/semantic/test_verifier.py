"""The verifier: features of near misses, rules that veto them, the shipped JSON model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from prsm.performance.caching.semantic import SemanticCache, SemanticSettings, Verifier
from prsm.performance.caching.semantic._features import FEATURE_NAMES, pair_features
from prsm.performance.caching.semantic._verifier import FORMAT, export_sklearn
from prsm.performance.clock import ManualClock
from prsm.performance.embeddings._embedder import HashingEmbedder
from prsm.performance.errors import ConfigError


def features(a: str, b: str) -> dict[str, float]:
    return dict(
        zip(FEATURE_NAMES, pair_features(a, b, 0.95, 0.95, rank=0, next_cosine=0.5), strict=True)
    )


def test_features_see_what_cosine_misses() -> None:
    f = features(
        "How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"
    )
    assert f["direction_swap"] == 1.0
    assert (
        features("What is the capital of France?", "What is the capital of Germany?")["entity_swap"]
        == 1.0
    )
    assert features("What is 15% of 200?", "What is 25% of 200?")["number_mismatch"] == 1.0
    assert (
        features("Is coffee good for you?", "Is coffee not good for you?")["negation_mismatch"]
        == 1.0
    )
    para = features("How do I reset my iPhone?", "How can I reset my iPhone?")
    for name in ("direction_swap", "entity_swap", "number_mismatch", "negation_mismatch"):
        assert para[name] == 0.0
    assert para["jaccard_content"] == 1.0


def always_yes(rules: list[str]) -> Verifier:
    """A one-leaf model that says "same" (p = 0.99) unless a rule vetoes the pair."""
    tree = {"feature": [0], "threshold": [0.0], "left": [0], "right": [0], "value": [4.6],
            "leaf": [1], "depth": 0}  # fmt: skip
    return Verifier.from_json({
        "format": FORMAT, "features": list(FEATURE_NAMES), "baseline": 0.0,
        "threshold": 0.5, "candidate_threshold": 0.5, "rules": rules, "trees": [tree],
    })  # fmt: skip


async def test_rules_reject_near_misses_and_keep_paraphrases(clock: ManualClock) -> None:
    verifier = always_yes(["direction_swap", "entity_swap", "number_mismatch"])
    emb = HashingEmbedder()
    cache = SemanticCache(SemanticSettings(), embedder=emb, verifier=verifier, clock=clock)
    v = emb.encode(["anything"])[0]  # one vector for all: cosine 1.0, only the verifier decides
    await cache.cache_result("How do I convert Celsius to Fahrenheit?", "x", vector=v)
    assert await cache.get_similar("How do I convert Fahrenheit to Celsius?", vector=v) is None
    hit = await cache.get_similar("How can I convert Celsius to Fahrenheit?", vector=v)
    assert hit is not None and hit.score == pytest.approx(0.99, abs=0.01)
    await cache.cache_result("What is the capital of France?", "Paris", "geo", vector=v)
    assert await cache.get_similar("What is the capital of Germany?", "geo", vector=v) is None


def test_shipped_model_loads_and_scores() -> None:
    v = Verifier.load()
    assert 0.0 < v.threshold < 1.0 and -1.0 <= v.candidate_threshold <= 1.0
    assert v.meta["fitted_on"] == "qqp_pairs_dev.jsonl"
    p = v.score("How do I reset my iPhone?", np.zeros(3), ["How can I reset my iPhone?",
                "How do I reset my Android phone?"], np.zeros((2, 3)),
                np.array([0.95, 0.80], dtype=np.float32))  # fmt: skip
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()
    assert p[0] > p[1]


def test_bad_model_files_are_config_errors(tmp_path: Any) -> None:
    bad = tmp_path / "v.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        Verifier.load(bad)
    with pytest.raises(ConfigError, match="no such file"):
        Verifier.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="format"):
        Verifier.from_json({"format": "other"})


def test_export_matches_sklearn() -> None:
    ensemble = pytest.importorskip("sklearn.ensemble")
    rng = np.random.default_rng(0)
    x = rng.random((400, len(FEATURE_NAMES)))
    y = (x[:, 0] + 0.3 * x[:, 5] > 0.7).astype(int)
    model = ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    data = export_sklearn(model, threshold=0.5, candidate_threshold=0.5, meta={})
    ours = Verifier.from_json(data).predict(x[:50])
    assert np.allclose(ours, model.predict_proba(x[:50])[:, 1], atol=1e-9)
