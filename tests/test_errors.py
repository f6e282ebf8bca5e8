from __future__ import annotations

import inspect

from prsm.performance import errors
from prsm.performance.errors import (
    CircuitBreakerOpenError,
    NoCapableNodesError,
    PRSMError,
    UnknownModelError,
)


def test_every_error_is_in_the_tree_and_drawn() -> None:
    doc = errors.__doc__ or ""
    for name, obj in vars(errors).items():
        if (
            inspect.isclass(obj)
            and issubclass(obj, Exception)
            and obj.__module__ == errors.__name__
        ):
            assert issubclass(obj, PRSMError), name
            assert name in doc, f"{name} missing from the tree in errors.py's docstring"


def test_no_capable_nodes_message_names_both_sides() -> None:
    err = NoCapableNodesError({"vision"}, {"a": {"chat"}, "b": {"chat", "tools"}})
    msg = str(err)
    assert "vision" in msg and "a: [chat]" in msg and "b: [chat, tools]" in msg
    assert err.required == frozenset({"vision"})


def test_breaker_error_carries_time_left() -> None:
    err = CircuitBreakerOpenError("n1", 12.5)
    assert err.node_id == "n1" and err.retry_after == 12.5
    assert "12.500s" in str(err)


def test_unknown_model_lists_available() -> None:
    assert "a, b" in str(UnknownModelError("z", ["b", "a"]))
