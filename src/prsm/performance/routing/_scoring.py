"""The routing math, in one place: the post's load and score, how a node's reported load
ages, the key each strategy ranks nodes by, and the weighted round-robin schedule.

The balancer (:class:`~prsm.performance.routing.AILoadBalancer`) is the only implementation
of the strategies; it calls these functions whenever a node's key must be recomputed (the
``intelligent`` key has :func:`entry_load`'s and :func:`intelligent_score`'s arithmetic inline,
in one function, held to them bit for bit by tests/routing/test_intelligent_key.py), and the
snapshot and gauges call them to show the same figures.

**Load and staleness.** A node's load is the post's ``cpu·0.4 + memory·0.3 + queue·0.3``
(weights from :class:`~.settings.BalancerSettings`), each term a fraction in [0, 1]. What
this process sees of the node is always current: ``busy = in_flight / max_concurrency``
(capped at 1). What the node reports (cpu, memory, its own queue depth; from the poller or a
local worker) ages: a reading has weight ``w = 1`` for ``signal_ttl`` seconds, then ``w``
falls in :data:`SIGNAL_STEPS` + 1 equal steps (0.8, 0.6, 0.4, 0.2 with four steps) spread over
``signal_decay`` seconds, then ``0`` (stale). Each term blends the two:
``cpu = w·reported_cpu + (1 − w)·busy`` (likewise memory), ``queue = (w·reported_queue_depth +
in_flight) / capacity``; a term never reported uses ``busy`` (or no node queue). So a node
that publishes nothing, or whose poll failed long enough, is scored from what the gateway
sees — its in-flight requests and queueing here, and its latency through the performance
term — never from a silent zero. The weight changes only at known instants, so the
balancer recomputes a node's key at those instants (a timer) and otherwise only when the
node changes.

Keys (larger is better) per strategy:

* ``intelligent``: ``performance_weight · performance + load_weight · (1 − load)``;
* ``least_loaded`` and ``power_of_two``: ``1 − load``;
* ``latency``: ``−ewma_latency`` (a node never measured has 0: it is tried first);
* ``round_robin`` and ``weighted_round_robin``: none (a cursor over the members, or over a
  smooth weighted schedule).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._settings import BalancerSettings

if TYPE_CHECKING:
    from ._entry import NodeEntry
    from ._tracker import PerformanceTracker

#: Strategies that pick the eligible candidate with the largest key.
ARGMAX_STRATEGIES = frozenset({"intelligent", "least_loaded", "latency"})

#: Longest weighted round-robin schedule per member (bounds memory and build time).
WRR_MAX_SLOTS_PER_MEMBER = 16

#: Steps in which a reported load fades between ``signal_ttl`` and ``signal_ttl +
#: signal_decay`` (the weight takes SIGNAL_STEPS + 2 values: 1, then SIGNAL_STEPS fractions,
#: then 0).
SIGNAL_STEPS = 4

#: The key of a node that must not be picked.
EXCLUDED = -math.inf


def node_load(cpu: float, memory: float, queue: float, *, settings: BalancerSettings) -> float:
    """The post's load: ``cpu·0.4 + memory·0.3 + queue·0.3`` (weights from ``settings``);
    each argument a fraction in [0, 1]."""
    s = settings
    return s.cpu_weight * cpu + s.memory_weight * memory + s.queue_weight * queue


def intelligent_score(performance: float, load: float, settings: BalancerSettings) -> float:
    """The post's score: ``performance·0.6 + (1 − load)·0.4`` (weights from ``settings``)."""
    return settings.performance_weight * performance + settings.load_weight * (1.0 - load)


def _boundary(reported_at: float, k: int, s: BalancerSettings) -> float:
    """The instant the weight of a reading taken at ``reported_at`` takes its ``k+1``-th
    value (k = 0 … SIGNAL_STEPS). One expression for both the weight and its timer."""
    if k == SIGNAL_STEPS:
        return reported_at + s.signal_ttl + s.signal_decay
    return reported_at + s.signal_ttl + k * (s.signal_decay / SIGNAL_STEPS)


def signal_weight(reported_at: float | None, now: float, settings: BalancerSettings) -> float:
    """How much a reading taken at ``reported_at`` counts at ``now`` (0 when never read)."""
    if reported_at is None:
        return 0.0
    if now < reported_at + settings.signal_ttl:
        return 1.0
    crossed = 1
    while crossed <= SIGNAL_STEPS and now >= _boundary(reported_at, crossed, settings):
        crossed += 1
    return 1.0 - crossed / (SIGNAL_STEPS + 1) if crossed <= SIGNAL_STEPS else 0.0


def signal_next_change(reported_at: float | None, now: float, settings: BalancerSettings) -> float:
    """The first instant after ``now`` at which :func:`signal_weight` changes (``inf``: never)."""
    if reported_at is None:
        return math.inf
    for k in range(SIGNAL_STEPS + 1):
        at = _boundary(reported_at, k, settings)
        if now < at:
            return at
    return math.inf


def signal_state(weight: float, reported: bool) -> str:
    """``fresh`` (full weight), ``aging`` (fading), ``stale`` (no weight left) or ``none``
    (never reported: scored from what this process sees)."""
    if not reported:
        return "none"
    return "fresh" if weight == 1.0 else "stale" if weight == 0.0 else "aging"


def entry_load(e: NodeEntry, now: float, settings: BalancerSettings) -> float:
    """The load of a registered node at ``now``: its reported readings blended by their age
    with what this process sees (see the module's docstring)."""
    in_flight = e.in_flight
    busy = in_flight / e.concurrency if in_flight < e.concurrency else 1.0
    m = e.metrics
    at = e.reported_at
    w = (
        0.0
        if at is None
        else 1.0
        if now < at + settings.signal_ttl
        else signal_weight(at, now, settings)
    )
    if w == 0.0:
        cpu = memory = busy
        waiting = 0.0
    else:
        rest = 1.0 - w
        cpu = busy if m.cpu is None else w * m.cpu + rest * busy
        memory = busy if m.memory is None else w * m.memory + rest * busy
        waiting = 0.0 if m.queue_depth is None else w * m.queue_depth
    queue = (waiting + in_flight) / e.capacity
    return node_load(cpu, memory, queue if queue < 1.0 else 1.0, settings=settings)


def make_key(
    strategy: str, settings: BalancerSettings, tracker: PerformanceTracker
) -> Callable[[NodeEntry, float], float]:
    """``key(entry, now)``: what ``strategy`` ranks an eligible node by (larger is better)."""
    s = settings
    if strategy == "intelligent":
        return _intelligent_key(settings, tracker)
    if strategy in ("least_loaded", "power_of_two"):
        return lambda e, now: 1.0 - entry_load(e, now, s)
    if strategy == "latency":
        return lambda e, now: -tracker.latency(e.id)
    return lambda e, now: 0.0


def _intelligent_key(
    s: BalancerSettings, tracker: PerformanceTracker
) -> Callable[[NodeEntry, float], float]:
    """The ``intelligent`` key: :func:`intelligent_score` of the node's performance and
    :func:`entry_load`, the same arithmetic in the same order, in one function (it runs
    about once a request: four calls fewer)."""
    scale = s.latency_scale

    def intelligent(e: NodeEntry, now: float) -> float:
        learned = tracker.stats(e.id)
        perf = learned.success_rate * scale / (scale + learned.latency)
        # entry_load(e, now, s), inline
        in_flight = e.in_flight
        busy = in_flight / e.concurrency if in_flight < e.concurrency else 1.0
        at = e.reported_at
        w = 0.0 if at is None else 1.0 if now < at + s.signal_ttl else signal_weight(at, now, s)
        if w == 0.0:
            cpu = memory = busy
            waiting = 0.0
        else:
            m = e.metrics
            rest = 1.0 - w
            cpu = busy if m.cpu is None else w * m.cpu + rest * busy
            memory = busy if m.memory is None else w * m.memory + rest * busy
            waiting = 0.0 if m.queue_depth is None else w * m.queue_depth
        queue = (waiting + in_flight) / e.capacity
        # node_load(cpu, memory, min(queue, 1)), then intelligent_score(perf, load), inline
        load = (
            s.cpu_weight * cpu
            + s.memory_weight * memory
            + s.queue_weight * (queue if queue < 1.0 else 1.0)
        )
        return s.performance_weight * perf + s.load_weight * (1.0 - load)

    return intelligent


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
