"""The cross-encoder: the shipped LoRA adapter on the bundled MiniLM, and the
verifier that takes its probability as one more feature."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from prsm.performance._helper_process import HelperProcess
from prsm.performance.caching.semantic import SemanticCache, SemanticSettings, Verifier
from prsm.performance.caching.semantic._cascade import CascadeVerifier, load_verifier
from prsm.performance.caching.semantic._cross import CrossEncoder
from prsm.performance.caching.semantic._features import FEATURE_NAMES
from prsm.performance.caching.semantic._verifier import CROSS_FEATURE, CROSS_PATH
from prsm.performance.caching.semantic._verifier_helper import HelperVerifier, helper_verifier
from prsm.performance.embeddings._embedder import HashingEmbedder
from prsm.performance.errors import ConfigError


class RecordingCrossEncoder:
    """A test double: a fixed probability, and the pairs it was asked about."""

    def __init__(self, p: float) -> None:
        self.p = p
        self.calls: list[tuple[str, list[str]]] = []

    def load(self) -> None:
        pass

    def score(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        self.calls.append((query, list(candidates)))
        return np.full(len(candidates), self.p)


def test_the_cross_verifier_ships_with_its_adapter() -> None:
    v = Verifier.load(CROSS_PATH)
    assert v.cross_encoder is not None
    assert v.cross_encoder.adapter.is_file()
    assert v.cross_encoder.adapter.stat().st_size < 5_000_000
    assert v.meta["cross_encoder"]["trained_on"].startswith("qqp_pairs_dev")
    # the plain verifier has no such feature
    assert Verifier.load().cross_encoder is None


def test_only_candidates_no_rule_vetoes_reach_the_cross_encoder() -> None:
    fake = RecordingCrossEncoder(0.9)
    v = dataclasses.replace(Verifier.load(CROSS_PATH), cross_encoder=fake)  # type: ignore[arg-type]
    q = "How do I scroll up in Excel?"
    cands = ["How can I scroll up in Excel?", "How do I scroll down in Excel?"]
    probs = v.score(q, cands, [0.95, 0.93])
    assert fake.calls == [(q, ["How can I scroll up in Excel?"])]  # "down" is an antonym: vetoed
    assert probs[1] == 0.0
    x = v.features(q, cands, [0.95, 0.93])
    assert x.shape == (2, len(FEATURE_NAMES))  # the cross column is added by score()
    low = dataclasses.replace(v, cross_encoder=RecordingCrossEncoder(0.01))  # type: ignore[arg-type]
    assert low.score(q, cands[:1], [0.95])[0] < probs[0]  # the feature moves the probability


def test_parsed_texts_are_refused_when_the_cross_encoder_reads_texts() -> None:
    v = dataclasses.replace(Verifier.load(CROSS_PATH), cross_encoder=RecordingCrossEncoder(0.5))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="strings"):
        v.score(v.parse("How do I reset my router?"), ["How can I reset my router?"], [0.97])


def test_a_missing_adapter_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cross_encoder"):
        CrossEncoder(tmp_path / "nope.safetensors")


def test_a_verifier_file_without_the_cross_feature_is_refused(tmp_path: Path) -> None:
    import json

    data = json.loads(CROSS_PATH.read_text())
    data["features"] = [f for f in data["features"] if f != CROSS_FEATURE]
    bad = tmp_path / "v.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="other features"):
        Verifier.load(bad)


async def test_settings_select_the_cross_verifier() -> None:
    settings = SemanticSettings(model_runner="thread")
    on = SemanticCache(dataclasses.replace(settings, cross_encoder=True),
                       embedder=HashingEmbedder(16))  # fmt: skip
    off = SemanticCache(dataclasses.replace(settings, cross_encoder=False),
                        embedder=HashingEmbedder(16))  # fmt: skip
    assert isinstance(on.verifier, Verifier) and on.verifier.cross_encoder is not None
    assert isinstance(off.verifier, Verifier) and off.verifier.cross_encoder is None
    await on.aclose()
    await off.aclose()


@pytest.mark.integration
def test_the_real_cross_encoder_tells_a_paraphrase_from_another_question() -> None:
    pytest.importorskip("transformers")
    ce = CrossEncoder(Path(CROSS_PATH).with_name("cross_encoder.safetensors"), threads=1)
    p = ce.score(
        "How do I reset my router's password?",
        ["What is the way to reset the password of my router?", "How do I reset my iPhone?"],
    )
    assert p.shape == (2,)
    assert ((p >= 0) & (p <= 1)).all()
    assert p[0] > 0.5 > p[1]


def test_long_texts_are_cut_to_the_words_the_model_can_read_before_tokenizing() -> None:
    from prsm.performance.caching.semantic._cross import MAX_LENGTH, _head

    short = "How do I reset my router?"
    assert _head(short) == short
    long = " ".join(f"word{i}" for i in range(20_000))
    cut = _head(long)
    assert cut.split() == long.split()[:MAX_LENGTH]


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["always", "off"])
def test_in_a_helper_process_the_verifier_scores_as_in_this_one(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")
    import os

    q = "How do I reset my router's password?"
    cands = ["What is the way to reset the password of my router?", "How do I reset my iPhone?"]
    cos = [0.9, 0.8]
    here = load_verifier(mode=mode).score(q, cands, cos)
    remote = helper_verifier(None, mode, None, timeout=60.0)
    # nothing of the score runs in this process: not the features, not the model
    monkeypatch.setattr(Verifier, "features", _not_here)
    monkeypatch.setattr(CrossEncoder, "load", _not_here)
    there = remote.score(q, cands, cos)
    np.testing.assert_allclose(there, here, atol=1e-5)
    helper = remote._helper()
    assert isinstance(helper, HelperProcess)
    assert helper.pid is not None and helper.pid != os.getpid()
    # a helper that dies is started again, and the verifier loaded there again, on the next call
    helper.close()
    np.testing.assert_allclose(remote.score(q, cands, cos), here, atol=1e-5)
    assert helper.starts >= 2
    assert remote.counts.lookups == 2 and remote.counts.candidates == 4
    # from the event loop, without a thread: the same scores, counted the same
    there = asyncio.run(remote.ascore(q, cands, cos))
    np.testing.assert_allclose(there, here, atol=1e-5)
    assert remote.counts.lookups == 3 and remote.counts.candidates == 6


@pytest.mark.integration
def test_a_cascade_in_a_helper_counts_what_its_cross_encoder_scored() -> None:
    pytest.importorskip("transformers")
    local = load_verifier(mode="cascade")
    assert isinstance(local, CascadeVerifier)
    remote = helper_verifier(None, "cascade", (0.0, 1.0), timeout=60.0)  # every live candidate
    q = "How do I reset my router's password?"
    cands = ["What is the way to reset the password of my router?", "How do I reset my iPhone?"]
    p = remote.score(q, cands, [0.9, 0.8])
    live = int((local.base.score(q, cands, [0.9, 0.8]) > 0).sum())
    assert remote.counts.as_dict() == {"lookups": 1, "crossed_lookups": int(live > 0),
                                       "candidates": 2, "crossed_candidates": live}  # fmt: skip
    assert p.shape == (2,)
    assert remote.threshold == local.threshold
    assert remote.candidate_threshold == local.candidate_threshold


def _not_here(*args: object, **kwargs: object) -> None:
    raise AssertionError("scored in the calling process")


async def test_a_default_cache_runs_its_models_in_helpers_unless_told_otherwise() -> None:
    on = SemanticCache(SemanticSettings(cross_encoder="always"), embedder=HashingEmbedder(16))
    off = SemanticCache(SemanticSettings(cross_encoder="always", model_runner="thread"),
                        embedder=HashingEmbedder(16))  # fmt: skip
    assert isinstance(on.verifier, HelperVerifier)
    assert on.verifier.spec == (None, "always", None)
    assert isinstance(off.verifier, Verifier) and off.verifier.cross_encoder is not None
    default = SemanticCache(SemanticSettings(verifier=False))
    assert getattr(default.embedder, "helper", None) is True
    for cache in (on, off, default):
        await cache.aclose()


def test_model_runner_and_timeout_are_validated() -> None:
    with pytest.raises(ConfigError, match="model_runner"):
        SemanticSettings(model_runner="gpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="model_timeout"):
        SemanticSettings(model_timeout=0)


class _AsyncOnlyHelper:
    """A helper double that answers async calls only: the lookup path must await it."""

    name = "async only"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def call(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a blocking helper call from the cache")

    def prepare(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a blocking helper call from the cache")

    async def acall(self, func: object, args: tuple[object, ...], limit: float, *,
                    prepare: object = None) -> object:  # fmt: skip
        self.calls.append(getattr(func, "__name__", ""))
        if len(args) == 4:  # a score: (spec, query, candidates, cosines)
            return np.full(len(args[2]), 0.99), 0  # type: ignore[arg-type]
        return True


async def test_a_cache_awaits_its_helper_verifier_on_the_loop_without_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _AsyncOnlyHelper()
    monkeypatch.setattr(HelperVerifier, "_helper", lambda self: fake)
    emb = HashingEmbedder(16)
    cache = SemanticCache(SemanticSettings(cross_encoder="off", candidate_threshold=-1.0),
                          embedder=emb)  # fmt: skip
    assert isinstance(cache.verifier, HelperVerifier)
    v = emb.encode(["x"])[0]
    await cache.cache_result("How do I reset my router?", "answer", vector=v)
    hit = await cache.get_similar("How can I reset my router?", vector=v)
    assert hit is not None and hit["result"] == "answer" and hit.score == pytest.approx(0.99)
    assert "_score_in_helper" in fake.calls
    assert not cache._verify_pool._threads  # type: ignore[attr-defined]  # no worker thread ran
    await cache.aclose()


def test_loading_it_prints_no_load_report_and_keeps_the_verbosity() -> None:
    """The checkpoint's unused pooler weights made transformers print a warning table on
    every load ("BertModel LOAD REPORT ... UNEXPECTED"); held back for this known load, the
    verbosity restored after (a fresh process: loads are cached per process)."""
    import subprocess
    import sys

    code = (
        "import transformers.utils.logging as l\n"
        "from prsm.performance.caching.semantic._cross import CrossEncoder\n"
        "from pathlib import Path\n"
        "from prsm.performance.caching.semantic import _cross\n"
        "before = l.get_verbosity()\n"
        "adapter = Path(_cross.__file__).with_name('cross_encoder.safetensors')\n"
        "p = CrossEncoder(adapter).score('how old are you', ['what is your age'])\n"
        "print(float(p[0]), l.get_verbosity() == before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    prob, kept = done.stdout.split()
    assert 0.0 <= float(prob) <= 1.0 and kept == "True"
    assert "LOAD REPORT" not in done.stderr and "UNEXPECTED" not in done.stderr, done.stderr
