"""The ``Upstream`` edge: how a request reaches a node, and the in-process implementation.

An upstream executes one request on one node and returns a :class:`Response`, raising an
:class:`~prsm.performance.errors.UpstreamError` (or subclass) when the node fails. Errors
with ``retryable=False`` (a client's 4xx) are not counted against the node's breaker and are
not retried elsewhere.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import UpstreamError
from ..routing._node import NodeSpec
from ..types import AIRequest, Response


@runtime_checkable
class Upstream(Protocol):
    """Executes requests on nodes."""

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        """Run ``request`` on ``node``; raise :class:`UpstreamError` on failure."""
        ...


@runtime_checkable
class StreamingUpstream(Upstream, Protocol):
    """An upstream that can also stream an answer chunk by chunk (server-sent events)."""

    def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        """Yield the answer's chunks as the node sends them."""
        ...


Handler = Callable[[NodeSpec, AIRequest], Any]


class CallableUpstream:
    """An in-process upstream: one Python callable (sync or async) per node, or one for all.

    >>> async def echo(node, request):
    ...     return {"node": node.id, "echo": request.payload}
    >>> upstream = CallableUpstream(echo)

    The callable's return value becomes ``Response.content`` (a :class:`Response` returned
    as is). Any exception it raises that is not already an :class:`UpstreamError` is wrapped
    in one (retryable), so the breaker and retries see it.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        per_node: Mapping[str, Handler] | None = None,
    ) -> None:
        if handler is None and not per_node:
            raise ValueError("handler: give a callable, or per_node callables")
        self._default = handler
        self._per_node = dict(per_node or {})

    def set_handler(self, node_id: str, handler: Handler) -> None:
        """Use ``handler`` for ``node_id`` from now on."""
        self._per_node[node_id] = handler

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        handler = self._per_node.get(node.id, self._default)
        if handler is None:
            raise UpstreamError(node.id, "no handler registered for this node", retryable=True)
        try:
            out = handler(node, request)
            if inspect.isawaitable(out):
                out = await out
        except UpstreamError:
            raise
        except Exception as exc:  # wrapped, never swallowed: the caller sees the cause
            raise UpstreamError(node.id, f"{type(exc).__name__}: {exc}") from exc
        if isinstance(out, Response):
            return out
        return Response(content=out)
