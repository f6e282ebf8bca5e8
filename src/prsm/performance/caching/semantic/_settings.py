"""Settings of the semantic cache (imports only the standard library and errors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...errors import ConfigError

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]


def check_ivf(lists: int, probe: int, train_at: int | None) -> None:
    """Raise :class:`ConfigError` naming the ``ivf_*`` setting that is out of range."""
    if lists < 1:
        raise ConfigError("ivf_lists", f"must be >= 1, got {lists}")
    if not 1 <= probe <= lists:
        raise ConfigError("ivf_probe", f"must be in [1, ivf_lists={lists}], got {probe}")
    if train_at is not None and train_at < lists:
        raise ConfigError(
            "ivf_train_at",
            f"must be >= ivf_lists={lists} (k-means needs a point per cell), got {train_at}",
        )


@dataclass(frozen=True, slots=True)
class SemanticSettings:
    """How the semantic cache matches, verifies, bounds and shares its entries.

    * ``threshold``: cosine similarity the nearest entry must reach (the post's 0.85) when
      the verifier is off. With the verifier on, candidates whose cosine reaches
      ``candidate_threshold`` are re-scored by it and its probability must reach
      ``verifier_threshold`` (``None`` for either: the values fitted on QQP dev and shipped
      with the verifier).
    * ``top_k``: candidates taken from the index for the verifier to re-rank.
    * ``index``: ``flat`` (exact), ``hnsw`` (approximate), or ``auto``: flat until a
      namespace holds ``hnsw_min_entries`` entries, HNSW above; ``ivf``: faiss inverted
      lists (``ivf_lists`` cells, ``ivf_probe`` scanned a query), exact until
      ``ivf_train_at`` entries (default 40 per list), for namespaces of 200k entries and up.
    * ``max_entries``: per-namespace bound (least recently used evicted); ``ttl``: seconds an
      entry lives (``None``: forever).
    * ``bypass_temperature_above``: requests with a higher temperature skip the cache (their
      answers are meant to vary); ``assume_temperature`` is taken for requests that give
      none (OpenAI's default, 1.0: set it to 0 if your clients rely on a greedy default).
    * ``adaptive``: per-entry thresholds learned from feedback, keeping the estimated
      wrong-hit rate of each entry under ``max_wrong_hit_rate`` (vCache's idea).
    * ``redis_url``: entries live in Redis and every process follows a stream of inserts;
      without it they persist under ``data_dir`` (``None``: memory only).
    """

    enabled: bool = True
    threshold: float = 0.85
    top_k: int = 5
    verifier: bool = True
    verifier_path: str | None = None
    verifier_threshold: float | None = None
    candidate_threshold: float | None = None
    index: IndexKind = "auto"
    hnsw_min_entries: int = 5_000
    hnsw_connectivity: int = 16
    hnsw_expansion_add: int = 128
    hnsw_expansion_search: int = 64
    ivf_lists: int = 4096
    ivf_probe: int = 16
    ivf_train_at: int | None = None
    max_entries: int = 100_000
    ttl: float | None = 86_400.0
    bypass_temperature_above: float = 0.7
    assume_temperature: float = 1.0
    adaptive: bool = False
    max_wrong_hit_rate: float = 0.05
    adaptive_confidence: float = 0.9
    redis_url: str | None = None
    redis_prefix: str = "prsm:semantic"
    data_dir: str | None = None
    embedding_batch: int = 32

    def __post_init__(self) -> None:
        for name in ("threshold", "candidate_threshold"):
            v = getattr(self, name)
            if v is not None and not -1.0 <= v <= 1.0:
                raise ConfigError(name, f"must be a cosine similarity in [-1, 1], got {v}")
        if self.verifier_threshold is not None and not 0.0 <= self.verifier_threshold <= 1.0:
            raise ConfigError(
                "verifier_threshold",
                f"must be a probability in [0, 1], got {self.verifier_threshold}",
            )
        for name in ("top_k", "hnsw_min_entries", "max_entries", "embedding_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.hnsw_connectivity < 2:
            raise ConfigError("hnsw_connectivity", f"must be >= 2, got {self.hnsw_connectivity}")
        for name in ("hnsw_expansion_add", "hnsw_expansion_search"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.index not in ("auto", "flat", "hnsw", "ivf"):
            raise ConfigError("index", f"must be auto, flat, hnsw or ivf, got {self.index!r}")
        check_ivf(self.ivf_lists, self.ivf_probe, self.ivf_train_at)
        if self.ttl is not None and not self.ttl > 0:
            raise ConfigError("ttl", f"must be > 0 seconds or null, got {self.ttl}")
        if self.bypass_temperature_above < 0:
            raise ConfigError(
                "bypass_temperature_above", f"must be >= 0, got {self.bypass_temperature_above}"
            )
        if self.assume_temperature < 0:
            raise ConfigError("assume_temperature", f"must be >= 0, got {self.assume_temperature}")
        if not 0.0 < self.max_wrong_hit_rate < 1.0:
            raise ConfigError(
                "max_wrong_hit_rate", f"must be in (0, 1), got {self.max_wrong_hit_rate}"
            )
        if not 0.5 <= self.adaptive_confidence < 1.0:
            raise ConfigError(
                "adaptive_confidence", f"must be in [0.5, 1), got {self.adaptive_confidence}"
            )
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(
                "redis_url", f"must be a redis://, rediss:// or unix:// URL, got {self.redis_url!r}"
            )
        if not self.redis_prefix:
            raise ConfigError("redis_prefix", "must not be empty")
