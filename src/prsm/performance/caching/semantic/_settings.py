"""Settings of the semantic cache (imports only the standard library and errors.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ...errors import ConfigError
from ..tiers._redis_idle import check_idle_timeout

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]
#: when the MiniLM cross-encoder scores a candidate: never, inside the plain verifier's
#: unsure band (the default), or always
CrossMode = Literal["off", "cascade", "always"]
#: where the embedding model and the cross-encoder run
ModelRunner = Literal["process", "thread"]


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
    * ``cross_encoder``: when the MiniLM cross-encoder (the bundled MiniLM with a LoRA
      adapter, ``verifier-cross.json``) re-scores a candidate. ``"cascade"`` (default): only
      candidates whose plain-verifier probability falls in the unsure band ``cross_band``
      (``None``: the band fitted on QQP dev, ``verifier-cascade.json``), so clear hits and
      clear misses pay nothing extra; ``"always"`` (or ``True``): every candidate no rule
      vetoes, one model pass a lookup; ``"off"`` (or ``False``): never (README, "The
      verifier").
    * ``model_runner``: where the bundled embedding model and the cross-encoder run.
      ``"process"`` (default): a helper process each, so the event loop never waits on
      their GIL or heap; ``"thread"``: a worker thread of this process (no helper, but a
      forward pass stalls the loop for milliseconds). ``model_timeout``: seconds one model
      call may take before its helper is stopped (and started again on the next call).
    * ``index``: ``flat`` (exact), ``hnsw`` (approximate), or ``auto``: flat until a
      namespace holds ``hnsw_min_entries`` entries, HNSW above; ``ivf``: faiss inverted
      lists (``ivf_lists`` cells, ``ivf_probe`` scanned a query), exact until
      ``ivf_train_at`` entries (default 40 per list), for namespaces of 200k entries and up.
    * ``max_entries``: per-namespace bound (least recently used evicted); ``ttl``: seconds an
      entry lives (``None``: forever).
    * ``bypass_temperature_above``: requests with a higher temperature skip the cache (their
      answers are meant to vary); ``assume_temperature`` is taken for requests that give
      none (OpenAI's default, 1.0: set it to 0 if your clients rely on a greedy default).
    * ``max_error_rate``: the wrong-hit rate a user accepts (``None``: the fixed threshold
      decides). With a bound, each lookup's threshold is learned online from outcomes (the
      verifier's or the application's feedback, ``explore_rate`` of would-be hits checked
      against the upstream) so that the served hits stay under it with ``error_confidence``;
      ``error_bounds`` sets a bound per namespace prefix (``{"acme/": 0.01}``; the longest
      matching prefix wins).
    * ``long_prompt_words``: a prompt longer than this is split into its shared context
      (which must match exactly, by hash) and its question (at most ``question_max_words``
      words: the last or the first short paragraph), which alone is compared.
    * ``tool_requests``: let requests that carry tool calls or tool results use the semantic
      cache (by default they bypass it); ``max_total_entries`` bounds all namespaces together.
    * ``redis_url``: entries live in Redis and every process follows a stream of inserts;
      without it they persist under ``data_dir`` (``None``: memory only). Its pooled
      connections idle for ``redis_idle_timeout`` seconds are closed (the next use reconnects).
    """

    enabled: bool = True
    threshold: float = 0.85
    top_k: int = 5
    verifier: bool = True
    verifier_path: str | None = None
    cross_encoder: CrossMode | bool = "cascade"
    cross_band: tuple[float, float] | None = None
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
    max_error_rate: float | None = None
    error_bounds: Mapping[str, float] = field(default_factory=dict)
    error_confidence: float = 0.95
    explore_rate: float = 0.05
    long_prompt_words: int = 150
    question_max_words: int = 80
    tool_requests: bool = False
    max_total_entries: int = 1_000_000
    redis_url: str | None = None
    redis_prefix: str = "prsm:semantic"
    redis_idle_timeout: float = 60.0
    data_dir: str | None = None
    embedding_batch: int = 32
    model_runner: ModelRunner = "process"
    model_timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.cross_encoder, bool):
            object.__setattr__(self, "cross_encoder", "always" if self.cross_encoder else "off")
        if self.cross_encoder not in ("off", "cascade", "always"):
            raise ConfigError(
                "cross_encoder", f"must be off, cascade or always, got {self.cross_encoder!r}"
            )
        if self.cross_band is not None:
            band = tuple(self.cross_band)
            if len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0:
                raise ConfigError(
                    "cross_band",
                    f"must be (low, high) with 0 <= low <= high <= 1, got {self.cross_band!r}",
                )
        for name in ("threshold", "candidate_threshold"):
            v = getattr(self, name)
            if v is not None and not -1.0 <= v <= 1.0:
                raise ConfigError(name, f"must be a cosine similarity in [-1, 1], got {v}")
        if self.verifier_threshold is not None and not 0.0 <= self.verifier_threshold <= 1.0:
            raise ConfigError(
                "verifier_threshold",
                f"must be a probability in [0, 1], got {self.verifier_threshold}",
            )
        for name in ("top_k", "hnsw_min_entries", "max_entries", "embedding_batch",
                     "long_prompt_words", "question_max_words", "max_total_entries"):  # fmt: skip
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
        if self.max_error_rate is not None and not 0.0 < self.max_error_rate < 1.0:
            raise ConfigError("max_error_rate", f"must be in (0, 1), got {self.max_error_rate}")
        for prefix, bound in self.error_bounds.items():
            if not isinstance(bound, (int, float)) or not 0.0 < bound < 1.0:
                raise ConfigError(f"error_bounds.{prefix}", f"must be in (0, 1), got {bound!r}")
        if not 0.5 <= self.error_confidence < 1.0:
            raise ConfigError(
                "error_confidence", f"must be in [0.5, 1), got {self.error_confidence}"
            )
        if not 0.0 <= self.explore_rate < 1.0:
            raise ConfigError("explore_rate", f"must be in [0, 1), got {self.explore_rate}")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(
                "redis_url", f"must be a redis://, rediss:// or unix:// URL, got {self.redis_url!r}"
            )
        if self.model_runner not in ("process", "thread"):
            raise ConfigError(
                "model_runner", f"must be process or thread, got {self.model_runner!r}"
            )
        if not self.model_timeout > 0:
            raise ConfigError("model_timeout", f"must be > 0 seconds, got {self.model_timeout}")
        if not self.redis_prefix:
            raise ConfigError("redis_prefix", "must not be empty")
        problem = check_idle_timeout(self.redis_idle_timeout)
        if problem is not None:
            raise ConfigError("redis_idle_timeout", problem)

    def bound_for(self, namespace: str) -> tuple[str, float] | None:
        """``(the prefix that sets it, the bound)`` for ``namespace``, or ``None``."""
        best = max((p for p in self.error_bounds if namespace.startswith(p)), key=len, default=None)
        if best is not None:
            return best, float(self.error_bounds[best])
        return ("", self.max_error_rate) if self.max_error_rate is not None else None
