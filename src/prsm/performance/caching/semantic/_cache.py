"""The semantic cache: embed the query, search the namespace's index, verify, answer.

``get_similar(query, namespace)`` returns a :class:`SemanticMatch` (the cached result, the
cosine similarity, the original query) or ``None``; ``cache_result(query, result, namespace)``
keeps a new answer. Namespaces are opaque strings; :class:`SemanticResponseCache` builds them
from tenant, model and the parameters that change an answer, so entries never cross them.

Lookup: the embedding (micro-batched with concurrent lookups) → top-k candidates from the
namespace's index → expired ones dropped → with the verifier on, every candidate over the
verifier's cosine floor is re-scored by it and the most probable one wins if its probability
passes the threshold; without it, the nearest one wins if its cosine passes ``threshold``.
With ``adaptive`` on, a winner is served only when its own evidence says its wrong-hit rate is
under the bound; otherwise the lookup explores (a miss whose upstream answer is compared with
the cached one when it is stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...clock import Clock, SystemClock
from ...embeddings._embedder import Embedder, SentenceTransformerEmbedder, normalise
from ...errors import CacheError
from ...monitoring._registry import MetricsRegistry
from . import _adaptive as adaptive
from ._index import make_index
from ._settings import SemanticSettings
from ._store import Entry, EntryStore, MemoryStore, RedisStore, SQLiteStore
from ._verifier import Verifier

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    """A semantic hit: the cached result, its cosine similarity and the query it answered."""

    result: Any
    similarity: float
    original_query: str
    namespace: str
    key: int
    score: float


@dataclass(slots=True)
class NamespaceStats:
    entries: int = 0
    hits: int = 0
    misses: int = 0
    explored: int = 0
    stores: int = 0
    evictions: int = 0
    expirations: int = 0


@dataclass(slots=True)
class _Namespace:
    index: Any
    entries: OrderedDict[int, Entry] = field(default_factory=OrderedDict)
    stats: NamespaceStats = field(default_factory=NamespaceStats)


def same_answer(a: Any, b: Any) -> bool:
    """Default judge for adaptive feedback: equal after folding case and white space."""

    def norm(x: Any) -> Any:
        return " ".join(x.lower().split()) if isinstance(x, str) else x

    return bool(norm(a) == norm(b))


class SemanticCache:
    """Near-duplicate answers by meaning, namespaced, bounded, shared through Redis if set."""

    def __init__(
        self,
        settings: SemanticSettings | None = None,
        *,
        embedder: Embedder | None = None,
        store: EntryStore | None = None,
        verifier: Verifier | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
        judge: Callable[[Any, Any], bool] = same_answer,
    ) -> None:
        self.settings = s = settings or SemanticSettings()
        self._own_embedder = embedder is None
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(
            max_batch=s.embedding_batch
        )
        self.dim = self.embedder.dim
        if store is None:
            if s.redis_url:
                store = RedisStore(s.redis_url, prefix=s.redis_prefix, dim=self.dim)
            elif s.data_dir:
                store = SQLiteStore(s.data_dir, dim=self.dim)
            else:
                store = MemoryStore()
        self.store = store
        if verifier is None and s.verifier:
            verifier = Verifier.load(s.verifier_path)
        self.verifier = verifier if s.verifier else None
        self.clock = clock or SystemClock()
        self.judge = judge
        self._ns: dict[str, _Namespace] = {}
        self._where: dict[int, str] = {}
        self._pooled = adaptive.PooledEvidence()
        self._evidence: dict[int, adaptive.EntryEvidence] = {}
        self._pending: OrderedDict[tuple[str, str], tuple[int, float, Any]] = OrderedDict()
        self._started = False
        self._start_lock = asyncio.Lock()
        self._follower: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None
        self.store_errors = 0
        m = metrics or MetricsRegistry()
        lookups = m.counter("semantic_lookups", "Semantic cache lookups by outcome", ["outcome"])
        self._m_hit = lookups.labels("hit")
        self._m_miss = lookups.labels("miss")
        self._m_explore = lookups.labels("explore")
        stage = m.histogram("semantic_lookup_seconds", "Semantic lookup time by stage", ["stage"])
        self._m_embed = stage.labels("embed")
        self._m_search = stage.labels("search")
        self._m_errors = m.counter("semantic_store_errors", "Semantic store failures")

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the stored entries, follow other writers, start loading the embedding model.

        Idempotent; the first lookup or store calls it when nobody did.
        """
        async with self._start_lock:
            if self._started:
                return
            for entry in await self.store.load(self.clock.time()):
                self._insert(entry)
            loop = asyncio.get_running_loop()
            self._follower = loop.create_task(self._follow())
            if isinstance(self.embedder, SentenceTransformerEmbedder):
                self._warming = loop.create_task(self.embedder.warm())
            self._started = True

    async def _follow(self) -> None:
        while True:
            try:
                await self.store.follow(self._on_remote_add, self._on_remote_delete)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store outage: counted, logged, retried
                self._store_failed("follow", exc)
                await self.clock.sleep(1.0)

    async def aclose(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
        await self.store.aclose()
        if self._own_embedder and isinstance(self.embedder, SentenceTransformerEmbedder):
            self.embedder.close()

    # -- the post's API -----------------------------------------------------------------
    async def get_similar(
        self, query: str, namespace: str = "default", *, vector: np.ndarray | None = None
    ) -> SemanticMatch | None:
        """The cached answer of the most similar verified query in ``namespace``, or None."""
        if not self._started:
            await self.start()
        ns = self._ns.get(namespace)
        if ns is None or not ns.entries:
            if ns is not None:
                ns.stats.misses += 1
            self._m_miss.inc()
            return None
        q = await self._vector(query, vector)
        t0 = time.perf_counter()
        match = await self._match(query, q, namespace, ns)
        self._m_search.observe(time.perf_counter() - t0)
        return match

    async def cache_result(
        self,
        query: str,
        result: Any,
        namespace: str = "default",
        *,
        vector: np.ndarray | None = None,
        ttl: float | None = None,
    ) -> int:
        """Keep ``result`` as the answer to ``query`` in ``namespace``; returns its key."""
        if not self._started:
            await self.start()
        explored = self._pending.pop((namespace, query), None)
        if explored is not None:
            key, score, cached = explored
            evidence = self._evidence.setdefault(key, adaptive.EntryEvidence())
            adaptive.observe(self._pooled, evidence, score, self.judge(cached, result))
        q = await self._vector(query, vector)
        now = self.clock.time()
        life = ttl if ttl is not None else self.settings.ttl
        try:
            key = await self.store.next_key()
        except Exception as exc:
            self._store_failed("next_key", exc)
            raise CacheError("semantic", f"cannot allocate an entry key: {exc}") from exc
        entry = Entry(key, namespace, query, result, q, now, None if life is None else now + life)
        evicted = self._insert(entry)
        self._ns[namespace].stats.stores += 1
        try:
            await self.store.put(entry)
            if evicted:
                await self.store.delete(evicted)
        except Exception as exc:  # the in-process copy still serves; counted and logged
            self._store_failed("put", exc)
        return key

    async def invalidate(self, namespace: str) -> int:
        """Forget every entry of ``namespace``; returns how many."""
        ns = self._ns.pop(namespace, None)
        if ns is None:
            return 0
        keys = list(ns.entries)
        for k in keys:
            self._where.pop(k, None)
            self._evidence.pop(k, None)
        try:
            await self.store.delete(keys)
        except Exception as exc:
            self._store_failed("delete", exc)
        return len(keys)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-namespace counters (entries, hits, misses, explored, stores, evictions, ...)."""
        out = {}
        for name, ns in self._ns.items():
            ns.stats.entries = len(ns.entries)
            out[name] = {k: getattr(ns.stats, k) for k in NamespaceStats.__slots__}
        return out

    def __len__(self) -> int:
        return len(self._where)

    # -- internals ----------------------------------------------------------------------
    async def _vector(self, query: str, vector: np.ndarray | None) -> np.ndarray:
        if vector is not None:
            given: np.ndarray = normalise(vector)[0]
            return given
        t0 = time.perf_counter()
        q: np.ndarray = (await self.embedder.embed([query]))[0]
        self._m_embed.observe(time.perf_counter() - t0)
        return q

    async def _match(
        self, query: str, q: np.ndarray, namespace: str, ns: _Namespace
    ) -> SemanticMatch | None:
        s = self.settings
        scores, keys = ns.index.search(q, s.top_k)
        now = self.clock.time()
        cands: list[tuple[float, Entry]] = []
        expired: list[int] = []
        floor = self.verifier.candidate_threshold if self.verifier else s.threshold
        if self.verifier and s.candidate_threshold is not None:
            floor = s.candidate_threshold
        for score, key in zip(scores.tolist(), keys.tolist(), strict=True):
            entry = ns.entries.get(int(key))
            if entry is None:
                continue
            if entry.expired(now):
                expired.append(entry.key)
            else:
                cands.append((float(score), entry))
        if expired:
            ns.stats.expirations += len(self._forget(expired))
            try:
                await self.store.delete(expired)
            except Exception as exc:
                self._store_failed("delete", exc)
        if not cands or cands[0][0] < floor:
            self._miss(ns)
            return None
        if self.verifier is not None:
            cosines = np.array([c for c, _ in cands], dtype=np.float32)
            probs = self.verifier.score(
                query,
                q,
                [e.query for _, e in cands],
                np.stack([e.vector for _, e in cands]),
                cosines,
            )
            probs = np.where(cosines >= floor, probs, -1.0)
            best = int(np.argmax(probs))
            confidence = float(probs[best])
            bar = (
                s.verifier_threshold
                if s.verifier_threshold is not None
                else self.verifier.threshold
            )
        else:
            best = 0
            confidence = cands[0][0]
            bar = s.threshold
        cosine, entry = cands[best]
        if s.adaptive:
            if not adaptive.should_serve(
                self._pooled,
                self._evidence.get(entry.key),
                confidence,
                max_wrong_rate=s.max_wrong_hit_rate,
                confidence=s.adaptive_confidence,
            ):
                ns.stats.explored += 1
                self._m_explore.inc()
                self._pending[(namespace, query)] = (entry.key, confidence, entry.result)
                if len(self._pending) > 10_000:
                    self._pending.popitem(last=False)
                return None
        elif confidence < bar:
            self._miss(ns)
            return None
        ns.entries.move_to_end(entry.key)
        ns.stats.hits += 1
        self._m_hit.inc()
        return SemanticMatch(entry.result, cosine, entry.query, namespace, entry.key, confidence)

    def _on_remote_add(self, entry: Entry) -> None:
        self._insert(entry)

    def _on_remote_delete(self, keys: Sequence[int]) -> None:
        self._forget(keys)

    def _miss(self, ns: _Namespace) -> None:
        ns.stats.misses += 1
        self._m_miss.inc()

    def _namespace(self, name: str) -> _Namespace:
        ns = self._ns.get(name)
        if ns is None:
            s = self.settings
            index = make_index(
                s.index,
                self.dim,
                switch_at=s.hnsw_min_entries,
                connectivity=s.hnsw_connectivity,
                expansion_add=s.hnsw_expansion_add,
                expansion_search=s.hnsw_expansion_search,
                ivf_lists=s.ivf_lists,
                ivf_probe=s.ivf_probe,
                ivf_train_at=s.ivf_train_at,
            )
            ns = self._ns[name] = _Namespace(index)
        return ns

    def _insert(self, entry: Entry) -> list[int]:
        """Put ``entry`` in its namespace's index; returns the keys evicted to make room."""
        ns = self._namespace(entry.namespace)
        ns.index.add([entry.key], entry.vector[None, :])
        ns.entries[entry.key] = entry
        ns.entries.move_to_end(entry.key)
        self._where[entry.key] = entry.namespace
        evicted: list[int] = []
        while len(ns.entries) > self.settings.max_entries:
            old, _ = ns.entries.popitem(last=False)
            ns.index.remove([old])
            self._where.pop(old, None)
            self._evidence.pop(old, None)
            ns.stats.evictions += 1
            evicted.append(old)
        return evicted

    def _forget(self, keys: Sequence[int]) -> list[int]:
        gone = []
        for key in keys:
            name = self._where.pop(int(key), None)
            if name is None:
                continue
            ns = self._ns[name]
            ns.entries.pop(int(key), None)
            ns.index.remove([int(key)])
            self._evidence.pop(int(key), None)
            gone.append(int(key))
        return gone

    def _store_failed(self, op: str, exc: BaseException) -> None:
        self.store_errors += 1
        self._m_errors.inc()
        log.warning("semantic store %s failed: %s", op, exc)
