"""The load balancer: exclusions, errors, agreement with the pure strategies, properties."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from prsm.performance.errors import NoCapableNodesError, UnknownModelError
from prsm.performance.routing._balancer import AILoadBalancer
from prsm.performance.routing._node import NodeMetrics, NodeSpec, NodeState
from prsm.performance.routing._registry import NodeRegistry
from prsm.performance.routing._settings import ROUTING_STRATEGIES, BalancerSettings
from prsm.performance.routing._strategies import StrategyState, choose
from prsm.performance.types import AIRequest


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


# -- properties ---------------------------------------------------------------------------

CAPS = ("chat", "tools", "vision")
MODELS = ("m1", "m2")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[AILoadBalancer, list[AIRequest], float]:
    n = draw(st.integers(1, 12))
    specs = []
    for i in range(n):
        specs.append(
            NodeSpec(
                f"n{i}",
                models=frozenset(draw(st.sets(st.sampled_from(MODELS)))),
                capabilities=frozenset(draw(st.sets(st.sampled_from(CAPS)))),
                max_context=draw(st.sampled_from([0, 4096, 32768])),
                max_concurrency=draw(st.integers(1, 3)),
                queue_size=draw(st.integers(0, 1)),
                weight=draw(st.sampled_from([0.5, 1.0, 3.0])),
            )
        )
    strategy = draw(st.sampled_from(ROUTING_STRATEGIES))
    b = AILoadBalancer(
        NodeRegistry(specs),
        settings=BalancerSettings(strategy=strategy),
        rng=random.Random(draw(st.integers(0, 1000))),
    )
    now = draw(st.floats(0, 100))
    for spec in specs:
        if draw(st.booleans()):
            b.registry.drain(spec.id)
        for _ in range(draw(st.integers(0, 4))):
            b.registry.acquire(spec.id)
        b.registry.update_metrics(
            spec.id, NodeMetrics(cpu=draw(st.floats(0, 1)), memory=draw(st.floats(0, 1)))
        )
        b.set_blocked(spec.id, draw(st.sampled_from([0.0, math.inf, now - 1, now + 1])))
        if draw(st.booleans()):
            b.tracker.record(spec.id, draw(st.floats(0, 5)), draw(st.booleans()), now)
    requests = [
        AIRequest(
            model=draw(st.sampled_from(("", *MODELS))),
            required_capabilities=frozenset(draw(st.sets(st.sampled_from(CAPS)))),
            context_tokens=draw(st.sampled_from([0, 1000, 8000, 100_000])),
        )
        for _ in range(draw(st.integers(1, 6)))
    ]
    return b, requests, now


def _eligible(b: AILoadBalancer, node_id: str, request: AIRequest, now: float) -> bool:
    e = b.registry.entry(node_id)
    if not request.capabilities_needed <= e.caps:
        return False
    if (
        request.context_tokens
        and e.spec.max_context
        and e.spec.max_context < request.context_tokens
    ):
        return False
    return (
        e.state is NodeState.ACTIVE
        and e.in_flight < e.capacity
        and b.exclusion(node_id, now) is None
        and (b._blocked.get(node_id, 0.0) <= now)
    )


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_never_picks_an_incapable_draining_full_or_open_node(
    world: tuple[AILoadBalancer, list[AIRequest], float],
) -> None:
    b, requests, now = world
    for request in requests:
        for _ in range(3):
            try:
                node = b.pick(request, now)
            except (NoCapableNodesError, UnknownModelError):
                assert not any(_eligible(b, e.id, request, now) for e in b.registry.entries())
                break
            assert _eligible(b, node.id, request, now)
            b.registry.acquire(node.id)  # picks change loads and fill nodes


@settings(max_examples=100, deadline=None)
@given(worlds(), st.sampled_from(["intelligent", "least_loaded", "latency", "round_robin",
                                  "weighted_round_robin"]))  # fmt: skip
def test_incremental_picks_equal_the_pure_strategy(
    world: tuple[AILoadBalancer, list[AIRequest], float], strategy: str
) -> None:
    b, requests, now = world
    b.settings = BalancerSettings(strategy=strategy, latency_explore=0.0)
    b.set_strategy(strategy)
    request = requests[0]
    state = StrategyState()
    for _ in range(4):
        cands = b.candidates(request, now)
        i, state = choose(strategy, cands, state, random.Random(0), b.settings)
        try:
            got = b.pick(request, now).id
        except (NoCapableNodesError, UnknownModelError):
            assert i is None
            return
        assert i is not None
        assert got == cands[i].node_id
        b.registry.acquire(got)  # the next pick sees the changed load (and the heap's update)


def test_many_updates_keep_the_heap_equal_to_the_pure_choice() -> None:
    b = _balancer(n=5)
    b.registry.update(NodeSpec("n0", models={"m"}, max_concurrency=50))
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
        cands = b.candidates(REQ, 0.0)
        i, _ = choose("intelligent", cands, StrategyState(), random.Random(0), b.settings)
        try:
            got = b.pick(REQ, 0.0).id
        except NoCapableNodesError:
            assert i is None
            continue
        assert i is not None and got == cands[i].node_id
    group = next(iter(b._groups.values()))
    assert group.heap is not None and len(group.heap) <= 2 * 5 + 16
