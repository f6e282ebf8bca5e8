from __future__ import annotations

import pytest

from prsm.performance import AIRequest, NodeMetrics, NodeSpec, RequestKind, RequestValidationError
from prsm.performance.errors import ConfigError
from prsm.performance.routing._node import node_from_mapping


def test_request_defaults_and_capabilities() -> None:
    r = AIRequest(model="m", required_capabilities={"chat"})  # type: ignore[arg-type]
    assert r.required_capabilities == frozenset({"chat"})
    assert r.capabilities_needed == frozenset({"chat", "model:m"})
    assert r.kind is RequestKind.CHAT
    assert r.id != AIRequest().id


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"context_tokens": -1}, "context_tokens"),
        ({"kind": "video"}, "kind"),
        ({"cache_mode": "sometimes"}, "cache_mode"),
        ({"required_capabilities": "chat"}, "required_capabilities"),
    ],
)
def test_request_validation_names_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        AIRequest(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_kind_from_string() -> None:
    assert AIRequest(kind="embedding").kind is RequestKind.EMBEDDING  # type: ignore[arg-type]


def test_node_spec_capabilities_and_validation() -> None:
    n = NodeSpec(id="a", models={"m1"}, capabilities={"chat"})  # type: ignore[arg-type]
    assert n.all_capabilities == frozenset({"chat", "model:m1"})
    assert n.capacity == 64
    assert n.with_changes(queue_size=4).capacity == 68
    for kwargs, field in [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"queue_size": -1}, "queue_size"),
        ({"weight": 0}, "weight"),
        ({"cost_per_1k_tokens": -1}, "cost_per_1k_tokens"),
        ({"models": "m"}, "models"),
        ({"timeout": 0}, "timeout"),
    ]:
        with pytest.raises(ConfigError, match=field):
            NodeSpec(id="a", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty"):
        NodeSpec(id="")


def test_node_metrics_bounds() -> None:
    NodeMetrics(cpu=0.5, memory=1.0, queue_depth=3)
    with pytest.raises(ConfigError, match="cpu"):
        NodeMetrics(cpu=1.5)
    with pytest.raises(ConfigError, match="in_flight"):
        NodeMetrics(in_flight=-1)


def test_node_from_mapping() -> None:
    n = node_from_mapping({"id": "x", "models": ["a", "b"], "max_context": 8192})
    assert n.models == frozenset({"a", "b"})
    with pytest.raises(ConfigError, match="unknown field"):
        node_from_mapping({"id": "x", "modles": ["a"]})
    with pytest.raises(ConfigError, match="list of strings"):
        node_from_mapping({"id": "x", "models": "a"})
