"""The semantic cache: embed the query, search the namespace's index, verify, answer.

``get_similar(query, namespace)`` returns a :class:`SemanticMatch` — a mapping with the
source post's keys (``hit["result"]``, ``hit["similarity_score"]``,
``hit["original_query"]``) and the same as attributes — or ``None``;
``cache_result(query, result, namespace)`` keeps a new answer. Namespaces are opaque strings;
:class:`SemanticResponseCache` builds them from tenant, model, the parameters that change an
answer and the conversation so far, so entries never cross them.

Lookup: a long prompt is split (:mod:`._prompt`: its context must match exactly, its question
is compared) → the embedding (micro-batched with concurrent lookups) → top-k candidates from
the namespace's index → expired ones dropped → with the verifier on, every candidate over the
verifier's cosine floor is scored by it **in its helper process**, awaited on the event loop
(with ``model_runner="thread"``, in a worker thread; never on the event loop itself), and
the most probable one wins if it passes the threshold; without it, the nearest one wins if its
cosine passes ``threshold``. With an error bound (``max_error_rate``/``error_bounds``) the
threshold is learned online (:mod:`._bound`): unsure lookups explore (a miss whose upstream
answer is compared with the cached one when it is stored) and feedback on served hits counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ...clock import Clock, SystemClock
from ...embeddings._embedder import Embedder, SentenceTransformerEmbedder, normalise
from ...errors import CacheError
from ...monitoring._registry import MetricsRegistry
from . import _bound as bound
from ._cascade import AnyVerifier, load_verifier
from ._match import SemanticMatch, same_answer
from ._namespaces import Namespace, Namespaces, NamespaceStats
from ._prompt import SEP, scoped, split_prompt
from ._settings import SemanticSettings
from ._store import Entry, EntryStore, MemoryStore
from ._store_redis import RedisStore
from ._store_sqlite import SQLiteStore
from ._verifier_helper import HelperVerifier, helper_verifier

log = logging.getLogger(__name__)


class SemanticCache:
    """Near-duplicate answers by meaning, namespaced, bounded, shared through a store."""

    def __init__(
        self,
        settings: SemanticSettings | None = None,
        *,
        embedder: Embedder | None = None,
        store: EntryStore | None = None,
        verifier: AnyVerifier | HelperVerifier | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
        judge: Callable[[Any, Any], bool] = same_answer,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = s = settings or SemanticSettings()
        self._own_embedder = embedder is None
        helper = s.model_runner == "process"
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(
            max_batch=s.embedding_batch, helper=helper, timeout=s.model_timeout
        )
        self.dim = self.embedder.dim
        self.clock = clock or SystemClock()
        if store is None:
            if s.redis_url:
                store = RedisStore(s.redis_url, prefix=s.redis_prefix, dim=self.dim,
                                   idle_timeout=s.redis_idle_timeout, clock=self.clock)  # fmt: skip
            elif s.data_dir:
                store = SQLiteStore(s.data_dir, dim=self.dim, sleep=self.clock.sleep)
            else:
                store = MemoryStore()
        self.store = store
        if verifier is None and s.verifier:
            path = None if s.verifier_path is None else str(s.verifier_path)
            verifier = (
                helper_verifier(path, str(s.cross_encoder), s.cross_band, s.model_timeout)
                if helper else load_verifier(path, mode=str(s.cross_encoder), band=s.cross_band)
            )  # fmt: skip
        self.verifier = verifier if s.verifier else None
        self.judge = judge
        self.rng = rng or random.Random(0)
        self._verify_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prsm-verify")
        self._entries = Namespaces(s, self.dim)
        self._bounds: dict[str, bound.BoundState] = {}
        self._pending: OrderedDict[tuple[str, str], tuple[int, float, Any]] = OrderedDict()
        self._started = False
        self._start_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
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
        self._m_feedback = m.counter("semantic_feedback", "Feedback on served hits", ["verdict"])

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the stored entries, follow other writers, start loading the models.

        Idempotent; the first lookup or store calls it when nobody did.
        """
        async with self._start_lock:
            if self._started:
                return
            for entry in await self.store.load(self.clock.time()):
                self._insert(entry)
            loop = asyncio.get_running_loop()
            self._tasks.append(loop.create_task(self._follow()))
            if isinstance(self.embedder, SentenceTransformerEmbedder):
                self._tasks.append(loop.create_task(self.embedder.warm()))
            if isinstance(self.verifier, HelperVerifier):
                self._tasks.append(loop.create_task(self.verifier.awarm()))
            elif self.verifier is not None:
                self._tasks.append(loop.create_task(self._in_pool(self.verifier.warm)))
            self._started = True

    async def _in_pool(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._verify_pool, fn)

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
        for task in self._tasks:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.store.aclose()
        self._verify_pool.shutdown(wait=True)
        if self._own_embedder and isinstance(self.embedder, SentenceTransformerEmbedder):
            self.embedder.close()

    # -- the post's API -----------------------------------------------------------------
    def key_of(self, query: str, namespace: str = "default") -> tuple[str, str]:
        """``(namespace, text)`` the cache compares for ``query``: for a long prompt, the
        namespace scoped to its context's hash and the question alone."""
        s = self.settings
        context, text = split_prompt(
            query, long_words=s.long_prompt_words, question_words=s.question_max_words
        )
        return scoped(namespace, context), text

    async def get_similar(
        self, query: str, namespace: str = "default", *, vector: np.ndarray | None = None
    ) -> SemanticMatch | None:
        """The cached answer of the most similar verified query in ``namespace``, or None.
        (``vector``, if given, is the embedding of :meth:`key_of`'s text.)"""
        if not self._started:
            await self.start()
        namespace, text = self.key_of(query, namespace)
        ns = self._entries.get(namespace)
        if ns is None or not ns.entries:
            if ns is not None:
                ns.stats.misses += 1
            self._m_miss.inc()
            return None
        self._entries.touch(namespace)
        q = await self._vector(text, vector)
        t0 = time.perf_counter()
        match = await self._match(text, q, namespace, ns)
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
        namespace, text = self.key_of(query, namespace)
        explored = self._pending.pop((namespace, text), None)
        if explored is not None:
            key, score, cached = explored
            self._learn(namespace, key, score, self.judge(cached, result))
        q = await self._vector(text, vector)
        now = self.clock.time()
        life = ttl if ttl is not None else self.settings.ttl
        try:
            key = await self.store.next_key()
        except Exception as exc:
            self._store_failed("next_key", exc)
            raise CacheError("semantic", f"cannot allocate an entry key: {exc}") from exc
        entry = Entry(key, namespace, text, result, q, now, None if life is None else now + life)
        evicted = self._insert(entry)
        self._entries[namespace].stats.stores += 1
        try:
            await self.store.put(entry)
            if evicted:
                await self.store.delete(evicted)
        except Exception as exc:  # the in-process copy still serves; counted and logged
            self._store_failed("put", exc)
        return key

    async def feedback(self, match: SemanticMatch, *, correct: bool) -> bool:
        """The application's verdict on a served hit; teaches the namespace's error bound.
        Returns whether a bound learned from it (``False`` when none is set)."""
        self._m_feedback.labels("right" if correct else "wrong").inc()
        return self._learn(match.namespace, match.key, match.score, correct)

    async def invalidate(self, namespace: str) -> int:
        """Forget every entry of ``namespace`` (and of its long-prompt contexts)."""
        names = [n for n in self._entries if n == namespace or n.startswith(namespace + SEP)]
        keys = self._entries.drop(names)
        self._forget_bounds(keys)
        try:
            await self.store.delete(keys)
        except Exception as exc:
            self._store_failed("delete", exc)
        return len(keys)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-namespace counters (entries, hits, misses, explored, stores, evictions, ...)."""
        out = {}
        for name, ns in self._entries.items():
            ns.stats.entries = len(ns.entries)
            out[name] = {k: getattr(ns.stats, k) for k in NamespaceStats.__slots__}
        return out

    def thresholds(self) -> dict[str, float]:
        """The threshold each error bound has learned (by the prefix that sets it)."""
        return {prefix: st.threshold for prefix, st in self._bounds.items()}

    def __len__(self) -> int:
        return len(self._entries)

    # -- internals ----------------------------------------------------------------------
    async def _vector(self, query: str, vector: np.ndarray | None) -> np.ndarray:
        if vector is not None:
            given: np.ndarray = normalise(vector)[0]
            return given
        t0 = time.perf_counter()
        q: np.ndarray = (await self.embedder.embed([query]))[0]
        self._m_embed.observe(time.perf_counter() - t0)
        return q

    def _floor(self) -> float:
        s = self.settings
        if self.verifier is None:
            return s.threshold
        return s.candidate_threshold if s.candidate_threshold is not None else (
            self.verifier.candidate_threshold)  # fmt: skip

    async def _candidates(self, q: np.ndarray, ns: Namespace) -> list[tuple[float, Entry]]:
        scores, keys = ns.index.search(q, self.settings.top_k)
        now = self.clock.time()
        cands: list[tuple[float, Entry]] = []
        expired: list[int] = []
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
        return cands

    async def _match(
        self, query: str, q: np.ndarray, namespace: str, ns: Namespace
    ) -> SemanticMatch | None:
        s = self.settings
        floor = self._floor()
        cands = [(c, e) for c, e in await self._candidates(q, ns) if c >= floor]
        if not cands:
            self._miss(ns)
            return None
        if self.verifier is not None:
            verifier = self.verifier
            texts = [e.query for _, e in cands]
            cosines = [c for c, _ in cands]
            if isinstance(verifier, HelperVerifier):  # scored in its helper, awaited here
                probs = await verifier.ascore(query, texts, cosines)
            else:
                probs = await self._in_pool(lambda: verifier.score(query, texts, cosines))
            best = int(np.argmax(probs))
            confidence = float(probs[best])
            bar = s.verifier_threshold if s.verifier_threshold is not None else (
                verifier.threshold)  # fmt: skip
        else:
            best, confidence, bar = 0, cands[0][0], s.threshold
        cosine, entry = cands[best]
        setting = s.bound_for(namespace)
        if setting is not None:
            state = self._bound_state(*setting)
            if not bound.decide(state, entry.key, confidence, explore_rate=s.explore_rate,
                                rng=self.rng):  # fmt: skip
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

    def _bound_state(self, prefix: str, rate: float) -> bound.BoundState:
        state = self._bounds.get(prefix)
        if state is None:
            state = self._bounds[prefix] = bound.BoundState(rate)
        return state

    def _learn(self, namespace: str, key: int, score: float, right: bool) -> bool:
        setting = self.settings.bound_for(namespace)
        if setting is None:
            return False
        state = self._bound_state(*setting)
        bound.observe(state, key, score, right, confidence=self.settings.error_confidence)
        return True

    def _on_remote_add(self, entry: Entry) -> None:
        self._insert(entry)

    def _on_remote_delete(self, keys: Sequence[int]) -> None:
        self._forget(keys)

    def _miss(self, ns: Namespace) -> None:
        ns.stats.misses += 1
        self._m_miss.inc()

    def _insert(self, entry: Entry) -> list[int]:
        evicted = self._entries.insert(entry)
        self._forget_bounds(evicted)
        return evicted

    def _forget(self, keys: Sequence[int]) -> list[int]:
        gone = self._entries.forget(keys)
        self._forget_bounds(gone)
        return gone

    def _forget_bounds(self, keys: list[int]) -> None:
        if keys:
            for state in self._bounds.values():
                bound.forget(state, keys)

    def _store_failed(self, op: str, exc: BaseException) -> None:
        self.store_errors += 1
        self._m_errors.inc()
        log.warning("semantic store %s failed: %s", op, exc)
