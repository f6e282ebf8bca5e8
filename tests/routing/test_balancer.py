"""The load balancer: exclusions, errors, signal ages, and agreement with the brute-force
reference (``reference.py``) under random sequences of events."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from prsm.performance.clock import ManualClock
from prsm.performance.errors import NoCapableNodesError, UnknownModelError
from prsm.performance.routing._balancer import AILoadBalancer
from prsm.performance.routing._node import NodeMetrics, NodeSpec
from prsm.performance.routing._registry import NodeRegistry
from prsm.performance.routing._settings import ROUTING_STRATEGIES, BalancerSettings
from prsm.performance.types import AIRequest

from .reference import Reference, capable, choose, eligible


def _balancer(strategy: str = "intelligent", n: int = 4, **kw: object) -> AILoadBalancer:
    reg = NodeRegistry([NodeSpec(f"n{i}", models={"m"}, max_concurrency=2) for i in range(n)])
    s = BalancerSettings(strategy=strategy, latency_explore=0.0, **kw)  # type: ignore[arg-type]
    return AILoadBalancer(reg, settings=s, rng=random.Random(1))


REQ = AIRequest(model="m")


def test_intelligent_prefers_performance_and_low_load() -> None:
    b = _balancer()
    b.registry.update_metrics("n0", NodeMetrics(cpu=0.9, memory=0.9))
    b.tracker.record("n1", 2.0, True, 0.0)
    assert b.pick(REQ, 0.0).id == "n2"
    b.registry.acquire("n2")  # in flight raises its load: the next idle one wins
    assert b.pick(REQ, 0.0).id == "n3"


def test_draining_full_and_blocked_nodes_are_never_picked() -> None:
    b = _balancer(n=3)
    b.registry.drain("n0")
    b.registry.acquire("n1")
    b.registry.acquire("n1")  # full: max_concurrency 2, no queue
    b.set_blocked("n2", 10.0)
    with pytest.raises(NoCapableNodesError) as info:
        b.pick(REQ, 5.0)
    err = info.value
    assert err.reason == "every capable node is excluded"
    assert err.excluded["n0"] == "draining"
    assert err.excluded["n1"].startswith("full (2/2")
    assert err.excluded["n2"].startswith("breaker open, 5.000s left")
    assert "model:m" in str(err) and "n2 (breaker open" in str(err)
    assert b.pick(REQ, 10.0).id == "n2"  # the open period ended: lifted lazily
    b.set_blocked("n2", math.inf)
    with pytest.raises(NoCapableNodesError, match="probes at their limit"):
        b.pick(REQ, 11.0)
    b.set_blocked("n2", 0.0)
    b.registry.activate("n0")
    assert b.pick(REQ, 11.0).id in {"n0", "n2"}


def test_exclude_skips_tried_nodes() -> None:
    b = _balancer(n=2)
    first = b.pick(REQ, 0.0).id
    second = b.pick(REQ, 0.0, exclude={first}).id
    assert second != first
    with pytest.raises(NoCapableNodesError) as info:
        b.pick(REQ, 0.0, exclude={"n0", "n1"})
    assert info.value.excluded == {"n0": "already tried", "n1": "already tried"}


def test_unknown_model_and_missing_capability_errors() -> None:
    b = _balancer(n=2)
    with pytest.raises(UnknownModelError) as unknown:
        b.pick(AIRequest(model="gpt-9"), 0.0)
    assert unknown.value.available == ["m"]
    with pytest.raises(NoCapableNodesError) as info:
        b.pick(AIRequest(model="m", required_capabilities={"vision"}), 0.0)
    assert info.value.required == {"vision", "model:m"}
    assert info.value.offered == {"n0": {"model:m"}, "n1": {"model:m"}}
    assert "required [model:m, vision]" in str(info.value)


def test_node_changes_at_run_time_take_effect() -> None:
    b = _balancer("round_robin", n=2)
    assert [b.pick(REQ, 0.0).id for _ in range(3)] == ["n0", "n1", "n0"]
    b.registry.add(NodeSpec("n9", models={"m"}))
    assert {b.pick(REQ, 0.0).id for _ in range(6)} == {"n0", "n1", "n9"}
    b.registry.remove("n0")
    b.registry.update(NodeSpec("n1", models={"other"}))
    assert {b.pick(REQ, 0.0).id for _ in range(4)} == {"n9"}


def test_weighted_round_robin_follows_weights() -> None:
    reg = NodeRegistry([NodeSpec("a", models={"m"}), NodeSpec("b", models={"m"}, weight=3.0)])
    b = AILoadBalancer(reg, settings=BalancerSettings(strategy="weighted_round_robin"))
    picks = [b.pick(REQ, 0.0).id for _ in range(40)]
    assert picks.count("b") == 30


def test_latency_strategy_learns() -> None:
    b = _balancer("latency", n=3)
    b.tracker.record("n0", 0.3, True, 0.0)
    b.tracker.record("n1", 0.1, True, 0.0)
    b.tracker.record("n2", 0.2, True, 0.0)
    assert b.pick(REQ, 0.0).id == "n1"
    b.set_strategy("least_loaded")
    b.registry.acquire("n0")
    assert b.pick(REQ, 0.0).id == "n1"


async def test_route_request_is_the_posts_call() -> None:
    b = _balancer(n=1)
    assert (await b.route_request(REQ)).id == "n0"


def test_stale_readings_fade_into_what_the_gateway_sees() -> None:
    clock = ManualClock()
    reg = NodeRegistry([NodeSpec(f"n{i}", models={"m"}, max_concurrency=4) for i in range(2)])
    s = BalancerSettings(strategy="least_loaded", signal_ttl=5.0, signal_decay=10.0)
    b = AILoadBalancer(reg, settings=s, clock=clock)
    reg.update_metrics("n0", NodeMetrics(cpu=1.0, memory=1.0, queue_depth=3))  # stamped at 0
    reg.acquire("n1")  # n1: idle by its own account (it reports nothing), one in flight here
    assert b.pick(REQ, clock.monotonic()).id == "n1"
    report = b.load_report("n0")
    assert (report["state"], report["weight"], report["source"]) == ("fresh", 1.0, "reported")
    clock.advance(16.0)  # n0's reading is stale: both are scored from what we see
    assert b.load_report("n0")["state"] == "stale"
    assert b.pick(REQ, clock.monotonic()).id == "n0"  # no timer missed: its key was recomputed
    reg.poll_failed("n0", "timeout after 2.0s", clock.monotonic())
    report = b.load_report("n0")
    assert (report["poll_error"], report["poll_failures"]) == ("timeout after 2.0s", 1)
    assert report["age"] == pytest.approx(16.0)
    assert b.load_report("n1")["state"] == "none"


def test_registry_adopts_the_balancers_clock() -> None:
    clock = ManualClock(start=100.0)
    reg = NodeRegistry([NodeSpec("a", models={"m"})])
    AILoadBalancer(reg, clock=clock)
    reg.update_metrics("a", NodeMetrics(cpu=0.5))
    assert reg.entry("a").reported_at == 100.0
    own = NodeRegistry(clock=ManualClock(start=7.0))
    AILoadBalancer(own, clock=clock)
    assert own.clock.monotonic() == 7.0


def test_added_and_removed_nodes_edit_groups_in_place() -> None:
    b = _balancer("least_loaded", n=3)
    assert b.pick(REQ, 0.0).id == "n0"
    group = next(iter(b._groups.values()))
    b.registry.add(NodeSpec("n9", models={"m"}, max_concurrency=2))
    b.registry.remove("n0")
    assert next(iter(b._groups.values())) is group  # no rebuild
    assert group.ids == [None, "n1", "n2", "n9"]
    assert b.pick(REQ, 0.0).id == "n1"
    for i in range(20):  # many removals: the group is compacted (rebuilt) at some point
        b.registry.add(NodeSpec(f"x{i}", models={"m"}))
        b.registry.remove(f"x{i}")
    assert b.pick(REQ, 0.0).id == "n1"
    assert len(next(iter(b._groups.values())).ids) < 24


# -- agreement with the reference -------------------------------------------------------------

CAPS = ("chat", "tools", "vision")
MODELS = ("m1", "m2")
DETERMINISTIC = ("intelligent", "least_loaded", "latency", "round_robin", "weighted_round_robin")


@st.composite
def node_specs(draw: st.DrawFn, name: str) -> NodeSpec:
    return NodeSpec(
        name,
        models=frozenset(draw(st.sets(st.sampled_from(MODELS), min_size=1))),
        capabilities=frozenset(draw(st.sets(st.sampled_from(CAPS)))),
        max_context=draw(st.sampled_from([0, 4096, 32768])),
        max_concurrency=draw(st.integers(1, 3)),
        queue_size=draw(st.integers(0, 1)),
        weight=draw(st.sampled_from([0.5, 1.0, 3.0])),
    )


requests = st.builds(
    AIRequest,
    model=st.sampled_from(("", *MODELS)),
    required_capabilities=st.frozensets(st.sampled_from(CAPS), max_size=2),
    context_tokens=st.sampled_from([0, 1000, 8000, 100_000]),
)
fraction = st.floats(0, 1)
events = st.one_of(
    st.tuples(st.just("pick"), st.integers(0, 3), st.sets(st.integers(0, 15), max_size=2)),
    st.tuples(st.just("acquire"), st.integers(0, 15)),
    st.tuples(st.just("release"), st.integers(0, 15)),
    st.tuples(
        st.just("report"),
        st.integers(0, 15),
        fraction,
        st.one_of(st.none(), fraction),
        st.one_of(st.none(), st.integers(0, 5)),
    ),
    st.tuples(st.just("report"), st.integers(0, 15), st.none(), st.none(), st.none()),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 2.5, 4.0, 7.0, 30.0])),
    st.tuples(st.just("block"), st.integers(0, 15), st.sampled_from([0.0, math.inf, 1.0, 9.0])),
    st.tuples(st.just("learn"), st.integers(0, 15), st.floats(0, 5), st.booleans()),
    st.tuples(st.just("drain"), st.integers(0, 15), st.booleans()),
    st.tuples(st.just("add"), node_specs("new")),
    st.tuples(st.just("remove"), st.integers(0, 15)),
    st.tuples(st.just("update"), st.integers(0, 15), node_specs("upd")),
)


def _pick_or_none(
    b: AILoadBalancer, request: AIRequest, now: float, exclude: set[str]
) -> str | None:
    try:
        return b.pick(request, now, exclude=exclude).id
    except (NoCapableNodesError, UnknownModelError):
        return None


def _check_power_of_two(
    ref: Reference, b: AILoadBalancer, request: AIRequest, now: float, exclude: set[str]
) -> str | None:
    got = _pick_or_none(b, request, now, exclude)
    ok = [
        e for e in b.registry.entries() if capable(b, e, request) and eligible(ref, e, now, exclude)
    ]
    if got is None:
        assert not ok
        return None
    assert got in {e.id for e in ok}
    keys = sorted(ref.key(b, e, now, "power_of_two", request) for e in ok)
    if len(keys) >= 2 and keys[0] < keys[1]:  # one strictly worst: never the winner of two
        assert ref.key(b, b.registry.entry(got), now, "power_of_two", request) > keys[0]
    return got


@settings(max_examples=300, deadline=None)
@given(
    st.lists(node_specs("n"), min_size=1, max_size=8),
    st.sampled_from(ROUTING_STRATEGIES),
    st.lists(requests, min_size=1, max_size=4),
    st.lists(events, min_size=5, max_size=60),
    st.integers(0, 1000),
)
def test_balancer_equals_the_brute_force_reference(
    specs: list[NodeSpec],
    strategy: str,
    reqs: list[AIRequest],
    script: list[tuple[object, ...]],
    seed: int,
) -> None:
    clock = ManualClock()
    specs = [s.with_changes(id=f"n{i}") for i, s in enumerate(specs)]
    reg = NodeRegistry(specs)
    settings_ = BalancerSettings(
        strategy=strategy, latency_explore=0.0, signal_ttl=5.0, signal_decay=10.0
    )
    b = AILoadBalancer(reg, settings=settings_, rng=random.Random(seed), clock=clock)
    ref = Reference()
    version = reg.version
    added = 0

    def check(request: AIRequest, now: float, exclude: set[str]) -> str | None:
        if strategy == "power_of_two":
            return _check_power_of_two(ref, b, request, now, exclude)
        want = choose(ref, b, request, now, exclude)
        got = _pick_or_none(b, request, now, exclude)
        assert got == want, (strategy, request, now, exclude)
        return got

    def node(i: object) -> str | None:
        ids = [e.id for e in reg.entries()]
        return ids[int(i) % len(ids)] if ids else None  # type: ignore[call-overload]

    for event in script:
        op, *args = event
        now = clock.monotonic()
        target = node(args[0]) if args and isinstance(args[0], int) else None
        if op == "pick":
            request = reqs[int(args[0]) % len(reqs)]  # type: ignore[call-overload]
            exclude = {n for i in args[1] if (n := node(i)) is not None}  # type: ignore[attr-defined]
            got = check(request, now, exclude)
            if got is not None:
                reg.acquire(got)  # picks change loads and fill nodes
        elif op == "advance":
            clock.advance(float(args[0]))  # type: ignore[arg-type]
        elif op == "add":
            spec = args[0].with_changes(id=f"a{added}")  # type: ignore[attr-defined]
            added += 1
            reg.add(spec)
            ref.membership_changed(reg.entry(spec.id), reg)
        elif target is None:
            continue
        elif op == "acquire":
            reg.acquire(target)
        elif op == "release":
            reg.release(target)
        elif op == "report":
            reg.update_metrics(
                target,
                NodeMetrics(cpu=args[1], memory=args[2], queue_depth=args[3]),  # type: ignore[arg-type]
            )
        elif op == "block":
            until = float(args[1])  # type: ignore[arg-type]
            until = until if until in (0.0, math.inf) else now + until
            b.set_blocked(target, until)
            ref.block(target, until)
        elif op == "learn":
            b.tracker.record(target, float(args[1]), bool(args[2]), now)  # type: ignore[arg-type]
        elif op == "drain":
            (reg.drain if args[1] else reg.activate)(target)
        elif op == "remove":
            entry = reg.entry(target)
            reg.remove(target)
            ref.block(target, 0.0)
            ref.membership_changed(entry, reg)
        elif op == "update":
            reg.update(args[1].with_changes(id=target))  # type: ignore[attr-defined]
        if reg.version != version:  # the request shapes changed: schedules are drawn again
            version = reg.version
            ref.redraw_schedules()
        for request in reqs:  # after every event, every request shape agrees
            check(request, clock.monotonic(), set())


@settings(max_examples=60, deadline=None)
@given(st.lists(node_specs("n"), min_size=2, max_size=10), st.integers(0, 100))
def test_round_robin_serves_every_eligible_node_in_turn(specs: list[NodeSpec], seed: int) -> None:
    specs = [s.with_changes(id=f"n{i}", models=frozenset({"m"})) for i, s in enumerate(specs)]
    b = AILoadBalancer(NodeRegistry(specs), settings=BalancerSettings(strategy="round_robin"))
    picks = [b.pick(REQ, 0.0).id for _ in range(2 * len(specs))]
    assert picks == [s.id for s in specs] * 2


def test_many_updates_keep_the_heap_equal_to_the_reference() -> None:
    b = _balancer(n=5)
    b.registry.update(NodeSpec("n0", models={"m"}, max_concurrency=50))
    ref = Reference()
    rng = random.Random(7)
    for step in range(400):
        node_id = f"n{rng.randrange(5)}"
        action = rng.random()
        if action < 0.4:
            b.registry.acquire(node_id)
        elif action < 0.8:
            b.registry.release(node_id)
        else:
            b.tracker.record(node_id, rng.uniform(0, 2), rng.random() < 0.8, float(step))
        assert _pick_or_none(b, REQ, 0.0, set()) == choose(ref, b, REQ, 0.0)
    group = next(iter(b._groups.values()))
    assert group.heap is not None and len(group.heap) <= 2 * 5 + 16
