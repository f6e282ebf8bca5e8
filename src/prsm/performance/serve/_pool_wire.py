"""The shared pool's replies on the wire (:mod:`._shared_pool`): a node in full, and an
error as a gateway process turns it back into an upstream error."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import UpstreamError, WorkerError
from ..routing._node import NodeSpec


def node_dict(node: NodeSpec) -> dict[str, Any]:
    """``node`` in full, as MessagePack carries it (``NodeSpec(**it)`` on the other side)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        out[f.name] = sorted(value) if isinstance(value, frozenset) else value
    out["meta"] = dict(node.meta)
    return out


def error_reply(ident: int, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, UpstreamError):
        return {"id": ident, "ok": False, "status": exc.status, "message": str(exc),
                "retryable": exc.retryable}  # fmt: skip
    retryable = isinstance(exc, (WorkerError, OSError))
    return {"id": ident, "ok": False, "status": 503 if retryable else 500,
            "message": f"{type(exc).__name__}: {exc}", "retryable": retryable}  # fmt: skip
