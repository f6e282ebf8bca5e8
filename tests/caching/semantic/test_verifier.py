"""The verifier: word relations, features of near misses, rules that veto them, the JSON model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from prsm.performance.caching.semantic import SemanticCache, SemanticSettings, Verifier
from prsm.performance.caching.semantic._features import FEATURE_NAMES, pair_features
from prsm.performance.caching.semantic._lexicon import load_lexicon
from prsm.performance.caching.semantic._parse import MAX_WORDS, parse
from prsm.performance.caching.semantic._verifier import FORMAT, export_sklearn
from prsm.performance.clock import ManualClock
from prsm.performance.embeddings._embedder import HashingEmbedder
from prsm.performance.errors import ConfigError


@pytest.mark.parametrize(
    ("a", "b", "relation"),
    [
        ("buy", "purchase", "synonym"),
        ("repairing", "fixed", "synonym"),
        ("up", "down", "antonym"),
        ("increase", "decreasing", "antonym"),
        ("cat", "dog", "sibling"),
        ("lasagna", "risotto", "sibling"),
        ("convert", "conversion", "synonym"),
        ("bought", "buy", "same"),
        ("iphone", "pixel", "unknown"),
        ("dog", "animal", "hypernym"),
    ],
)
def test_lexicon_knows_how_words_relate(a: str, b: str, relation: str) -> None:
    lex = load_lexicon()
    assert lex.relation(a, b) == relation
    assert lex.relation(b, a) == relation
    assert "dog" in lex and "qwzx" not in lex


@pytest.mark.parametrize(
    ("a", "b", "cohyponyms"),
    [
        ("today", "tomorrow", True),  # both under "day", too general a parent for siblings
        ("morning", "evening", True),
        ("debug", "troubleshoot", False),  # verbs: no noun parent
        ("photo", "picture", False),  # one synset: synonyms, not co-hyponyms
        ("dog", "animal", False),  # parent and child
        ("qwzx", "dog", False),
    ],
)
def test_lexicon_finds_cohyponyms_under_any_parent(a: str, b: str, cohyponyms: bool) -> None:
    lex = load_lexicon()
    assert lex.cohyponyms(a, b) is cohyponyms
    assert lex.cohyponyms(b, a) is cohyponyms


def features(a: str, b: str) -> dict[str, float]:
    lex = load_lexicon()
    row = pair_features(parse(a, lex), parse(b, lex), 0.95, 0.95, lex, rank=0, next_cosine=0.5)
    return dict(zip(FEATURE_NAMES, row, strict=True))


@pytest.mark.parametrize(
    ("a", "b", "fires"),
    [
        ("How do I scroll up in Excel?", "How can I scroll down in Excel?", "qualifier_flip"),
        ("How do I enable dark mode?", "How do I disable dark mode?", "sub_one_antonym"),
        ("How long should I boil an egg?", "How long should I boil a potato?", "sub_one_sibling"),
        (
            "How do I convert Celsius to Fahrenheit?",
            "What's the formula for turning Fahrenheit into Celsius?",
            "role_flip",
        ),
        ("Is a kilogram heavier than a pound?", "Is a pound heavier than a kilogram?", "role_flip"),
        ("What is 5 miles in km?", "What is 5 km in miles?", "swap_around_relation"),
        ("What is 15% of 200?", "What is 25% of 200?", "number_mismatch"),
        ("Which birds can fly?", "Which birds cannot fly?", "negation_only_diff"),
        ("What is the capital of France?", "What is the capital of Germany?", "entity_only_swap"),
        ("Why did Amazon acquire Whole Foods?", "Why did Whole Foods acquire Amazon?", "exchange"),
        ("How do I mute myself on Zoom?", "How do I unmute myself on Zoom?", "sub_one_antonym"),
        (
            "How do I turn on Bluetooth on Windows?",
            "How do I turn off Bluetooth on Windows?",
            "qualifier_flip",
        ),
        ("Is the iPhone worth buying?", "Is the Pixel worth buying?", "entity_only_swap"),
        (
            "Is it cold in Oslo in the morning?",
            "Is it cold in Oslo in the evening?",
            "sub_one_cohyponym",
        ),
    ],
)
def test_features_see_what_cosine_misses(a: str, b: str, fires: str) -> None:
    assert features(a, b)[fires] == 1.0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I reset my iPhone?", "How can I reset my iPhone?"),
        ("Flights from Paris to London", "Cheap flights to London from Paris"),
        ("How do I fix a leaking faucet?", "How do I repair a leaking faucet?"),
        ("How do I debug a memory leak?", "How do I troubleshoot a memory leak?"),
        (
            "What is the difference between TCP and UDP?",
            "What is the difference between UDP and TCP?",
        ),
    ],
)
def test_paraphrases_fire_no_veto(a: str, b: str) -> None:
    f = features(a, b)
    vetoes = (
        "qualifier_flip",
        "sub_one_antonym",
        "sub_one_sibling",
        "role_flip",
        "number_mismatch",
        "negation_only_diff",
        "entity_only_swap",
        "pair_antonym",
        "sub_one_cohyponym",
    )
    assert [v for v in vetoes if f[v]] == []


def test_feature_cost_is_bounded_by_the_word_cap() -> None:
    lex = load_lexicon()
    long = "word " * 5000 + "What is the capital of France?"
    p = parse(long, lex)
    assert len(p.low) == MAX_WORDS
    assert len(pair_features(p, parse("capital of France", lex), 0.9, 0.9, lex, rank=0)) == len(
        FEATURE_NAMES
    )


def always_yes(rules: list[str]) -> Verifier:
    """A one-leaf model that says "same" (p = 0.99) unless a rule vetoes the pair."""
    tree = {
        "feature": [0],
        "threshold": [0.0],
        "left": [0],
        "right": [0],
        "value": [4.6],
        "leaf": [1],
        "depth": 0,
    }
    return Verifier.from_json(
        {
            "format": FORMAT,
            "features": list(FEATURE_NAMES),
            "baseline": 0.0,
            "threshold": 0.5,
            "candidate_threshold": 0.5,
            "rules": rules,
            "trees": [tree],
        }
    )


async def test_rules_reject_near_misses_and_keep_paraphrases(clock: ManualClock) -> None:
    verifier = always_yes(["role_flip", "entity_only_swap", "qualifier_flip"])
    emb = HashingEmbedder()
    cache = SemanticCache(SemanticSettings(), embedder=emb, verifier=verifier, clock=clock)
    v = emb.encode(["anything"])[0]  # one vector for all: cosine 1.0, only the verifier decides
    await cache.cache_result("How do I convert Celsius to Fahrenheit?", "x", vector=v)
    assert await cache.get_similar("How do I convert Fahrenheit into Celsius?", vector=v) is None
    hit = await cache.get_similar("How can I convert Celsius to Fahrenheit?", vector=v)
    assert hit is not None and hit.score == pytest.approx(0.99, abs=0.01)
    await cache.cache_result("What is the capital of France?", "Paris", "geo", vector=v)
    assert await cache.get_similar("What is the capital of Germany?", "geo", vector=v) is None
    await cache.cache_result("How do I zoom in on a map?", "pinch", "maps", vector=v)
    assert await cache.get_similar("How do I zoom out on a map?", "maps", vector=v) is None
    await cache.aclose()


def test_shipped_model_loads_and_scores() -> None:
    v = Verifier.load()
    assert 0.0 < v.threshold < 1.0 and -1.0 <= v.candidate_threshold <= 1.0
    assert v.meta["fitted_on"].startswith("qqp_pairs_dev.jsonl")
    p = v.score(
        "How do I reset my iPhone?",
        ["How can I reset my iPhone?", "How do I reset my Android phone?"],
        [0.95, 0.80],
    )
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
