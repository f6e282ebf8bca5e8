"""The balancer's ``intelligent`` key (one function, its arithmetic inline) is bit for bit
``intelligent_score(performance, entry_load(...))`` as the public functions compute it (what
the snapshot and the score gauge show), for any valid weights, any node size and load, any
reading (none, partial, fresh, fading, stale, read in the future) and any learned figures (none
yet, failures, zero, infinite or NaN latency)."""

from __future__ import annotations

import math

from hypothesis import given, strategies as st

from prsm.performance.routing._entry import NodeEntry
from prsm.performance.routing._node import NodeMetrics, NodeSpec
from prsm.performance.routing._scoring import entry_load, intelligent_score, make_key
from prsm.performance.routing._settings import BalancerSettings
from prsm.performance.routing._tracker import PerformanceTracker

FRACTION = st.floats(0.0, 1.0)
SECONDS = st.floats(0.0, 1e6)


@st.composite
def _settings(draw: st.DrawFn) -> BalancerSettings:
    perf, cpu = draw(FRACTION), draw(FRACTION)
    memory = draw(st.floats(0.0, 1.0 - cpu))
    return BalancerSettings(
        performance_weight=perf, load_weight=1.0 - perf,
        cpu_weight=cpu, memory_weight=memory, queue_weight=1.0 - cpu - memory,
        latency_scale=draw(st.floats(1e-6, 1e3)),
        signal_ttl=draw(st.floats(1e-3, 1e3)), signal_decay=draw(st.floats(0.0, 1e3)),
    )  # fmt: skip


METRICS = st.builds(
    NodeMetrics,
    cpu=st.none() | FRACTION,
    memory=st.none() | FRACTION,
    queue_depth=st.none() | st.integers(0, 10_000),
)
OUTCOMES = st.lists(
    st.tuples(st.floats(0.0) | st.just(math.nan), st.booleans(), SECONDS), max_size=6
)


def _bits(x: float) -> str:
    return repr(x)  # (exact for every double: -0.0 and nan told apart from 0.0 and numbers)


@given(
    s=_settings(),
    concurrency=st.integers(1, 64),
    queue_size=st.integers(0, 64),
    in_flight=st.integers(0, 200),
    reading=st.none() | st.tuples(METRICS, SECONDS),
    outcomes=OUTCOMES,
    now=SECONDS,
)
def test_intelligent_key_is_the_public_score_bit_for_bit(  # noqa: PLR0917
    s: BalancerSettings,
    concurrency: int,
    queue_size: int,
    in_flight: int,
    reading: tuple[NodeMetrics, float] | None,
    outcomes: list[tuple[float, bool, float]],
    now: float,
) -> None:
    tracker = PerformanceTracker(s)
    for latency, ok, at in outcomes:
        tracker.record("n", latency, ok, at)
    e = NodeEntry(NodeSpec("n", max_concurrency=concurrency, queue_size=queue_size))
    e.in_flight = in_flight
    if reading is not None:
        e.metrics, e.reported_at = reading
    key = make_key("intelligent", s, tracker)
    perf = tracker.stats("n").performance(s.latency_scale)
    assert _bits(key(e, now)) == _bits(intelligent_score(perf, entry_load(e, now, s), s))
