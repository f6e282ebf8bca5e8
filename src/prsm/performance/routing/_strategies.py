"""The routing strategies as pure functions: a snapshot of candidates, a state and an injected
:class:`random.Random` in; a choice and the new state out.

``choose`` is the reference: the simulator and the tests call it directly, and
:class:`~prsm.performance.routing.AILoadBalancer` computes the same choice from
incrementally kept arrays (one key per node, recomputed only when that node changes), so a
pick does not loop over the nodes in Python.

Keys (larger is better) per strategy:

* ``intelligent``: ``performance_weight · performance + load_weight · (1 − load)``;
* ``least_loaded`` and ``power_of_two``: ``1 − load``;
* ``latency``: ``−ewma_latency`` (a node never measured has 0: it is tried first);
* ``round_robin`` and ``weighted_round_robin``: none (a cursor over the members, or over a
  smooth weighted schedule).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ._settings import BalancerSettings

#: Strategies that pick the eligible candidate with the largest key.
ARGMAX_STRATEGIES = frozenset({"intelligent", "least_loaded", "latency"})

#: Longest weighted round-robin schedule per member (bounds memory and build time).
WRR_MAX_SLOTS_PER_MEMBER = 16


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a strategy sees of one node. ``eligible`` is false for nodes that must not be
    picked (draining, full, breaker open, already tried); they keep their place so cursors
    stay stable."""

    node_id: str
    load: float = 0.0
    performance: float = 1.0
    latency: float = 0.0
    weight: float = 1.0
    eligible: bool = True


@dataclass(frozen=True, slots=True)
class StrategyState:
    """A strategy's memory between picks: the round-robin cursor."""

    cursor: int = 0


def node_load(
    cpu: float,
    memory: float,
    queue_depth: int,
    in_flight: int,
    capacity: int,
    *,
    settings: BalancerSettings,
) -> float:
    """The post's load: ``cpu·0.4 + memory·0.3 + queue·0.3`` (weights from ``settings``);
    ``queue`` is ``(queue_depth + in_flight) / capacity`` capped at 1."""
    queue = min((queue_depth + in_flight) / capacity, 1.0)
    s = settings
    return s.cpu_weight * cpu + s.memory_weight * memory + s.queue_weight * queue


def intelligent_score(performance: float, load: float, settings: BalancerSettings) -> float:
    """The post's score: ``performance·0.6 + (1 − load)·0.4`` (weights from ``settings``)."""
    return settings.performance_weight * performance + settings.load_weight * (1.0 - load)


def strategy_key(
    strategy: str, performance: float, load: float, latency: float, settings: BalancerSettings
) -> float:
    """The key (larger is better) ``strategy`` ranks an eligible node by."""
    if strategy == "intelligent":
        return intelligent_score(performance, load, settings)
    if strategy == "latency":
        return -latency
    if strategy in ("least_loaded", "power_of_two"):
        return 1.0 - load
    return 0.0


def wrr_schedule(weights: Sequence[float]) -> tuple[int, ...]:
    """A smooth weighted round-robin cycle over member indices (stride scheduling).

    Weights are made integers relative to the smallest (so 1, 2, 3 gives a cycle of 6 in
    which member 2 appears 3 times, spread out), bounded to
    :data:`WRR_MAX_SLOTS_PER_MEMBER` slots per member on average.
    """
    n = len(weights)
    if n == 0:
        return ()
    low = min(weights)
    ints = [max(1, round(w / low)) for w in weights]
    total = sum(ints)
    limit = WRR_MAX_SLOTS_PER_MEMBER * n
    if total > limit:
        scale = limit / total
        ints = [max(1, round(i * scale)) for i in ints]
        total = sum(ints)
    heap = [(0.5 / ints[i], i) for i in range(n)]
    heapq.heapify(heap)
    out: list[int] = []
    for _ in range(total):
        pass_value, i = heapq.heappop(heap)
        out.append(i)
        heapq.heappush(heap, (pass_value + 1.0 / ints[i], i))
    return tuple(out)


def choose(
    strategy: str,
    candidates: Sequence[Candidate],
    state: StrategyState,
    rng: random.Random,
    settings: BalancerSettings,
) -> tuple[int | None, StrategyState]:
    """The index of the candidate ``strategy`` picks (``None`` if none is eligible) and the new
    state. Ties go to the earliest candidate."""
    n = len(candidates)
    if strategy == "round_robin":
        for step in range(n):
            i = (state.cursor + step) % n
            if candidates[i].eligible:
                return i, StrategyState(i + 1)
        return None, state
    if strategy == "weighted_round_robin":
        schedule = wrr_schedule([c.weight for c in candidates])
        for step in range(len(schedule)):
            pos = (state.cursor + step) % len(schedule)
            i = schedule[pos]
            if candidates[i].eligible:
                return i, StrategyState(pos + 1)
        return None, state
    eligible = [i for i, c in enumerate(candidates) if c.eligible]
    if not eligible:
        return None, state
    if strategy == "power_of_two":
        if len(eligible) == 1:
            return eligible[0], state
        a, b = rng.sample(eligible, 2)
        ka = 1.0 - candidates[a].load
        kb = 1.0 - candidates[b].load
        return (a if ka >= kb else b), state
    explore = settings.latency_explore
    if strategy == "latency" and explore > 0.0 and rng.random() < explore:
        return rng.choice(eligible), state
    best = eligible[0]
    best_key = _key(strategy, candidates[best], settings)
    for i in eligible[1:]:
        k = _key(strategy, candidates[i], settings)
        if k > best_key:
            best, best_key = i, k
    return best, state


def _key(strategy: str, c: Candidate, settings: BalancerSettings) -> float:
    return strategy_key(strategy, c.performance, c.load, c.latency, settings)
