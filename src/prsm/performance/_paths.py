"""Where PRSM Performance keeps files: a cache directory (re-creatable: extracted models,
embedding caches) and a data directory (persistent state: the embedded L2 cache, the
content-addressed store, the semantic index, metrics history)."""

from __future__ import annotations

import os
from pathlib import Path

APP = "prsm-performance"


def cache_dir() -> Path:
    """``$PRSM_CACHE_DIR``, else ``$XDG_CACHE_HOME/prsm-performance`` (``~/.cache/...``)."""
    env = os.environ.get("PRSM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / APP


def data_dir() -> Path:
    """``$PRSM_DATA_DIR``, else ``$XDG_DATA_HOME/prsm-performance`` (``~/.local/share/...``)."""
    env = os.environ.get("PRSM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP
