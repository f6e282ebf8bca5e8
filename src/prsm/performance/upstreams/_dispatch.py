"""``DispatchUpstream``: one upstream for the orchestrator, many behind it, chosen per node.

Nodes say which upstream serves them in ``node.meta["upstream"]`` (local workers say
``"local"``); nodes that say nothing go to ``default`` (typically the HTTP upstream)::

    upstream = DispatchUpstream({"local": local_model_upstream}, default=http_upstream)

Streaming goes to the chosen upstream's ``stream`` when it has one; otherwise it is a
non-retryable error naming the node.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

from ..errors import UpstreamError, UpstreamRejectedError
from ..routing._node import NodeSpec
from ..types import AIRequest, Response
from ._base import Upstream, can_stream, failing_stream

META_KEY = "upstream"


class DispatchUpstream:
    """Routes each call to ``routes[node.meta["upstream"]]``, else to ``default``."""

    def __init__(self, routes: Mapping[str, Upstream], *, default: Upstream | None = None):
        if not routes and default is None:
            raise ValueError("routes: give at least one upstream, or a default")
        self.routes = dict(routes)
        self.default = default

    def add_route(self, tag: str, upstream: Upstream) -> None:
        """Serve nodes whose ``meta["upstream"]`` is ``tag`` with ``upstream`` from now on
        (e.g. local workers that finished starting after the orchestrator was built)."""
        self.routes[tag] = upstream

    def upstream_for(self, node: NodeSpec) -> Upstream:
        """The upstream that serves ``node``; when there is none the node is misconfigured:
        an :class:`UpstreamRejectedError` (counted against it, the next node tried)."""
        tag = node.meta.get(META_KEY)
        if tag is not None:
            found = self.routes.get(str(tag))
            if found is not None:
                return found
            raise UpstreamRejectedError(
                node.id, f"node asks for upstream {tag!r}; known: {sorted(self.routes)}"
            )
        if self.default is None:
            raise UpstreamRejectedError(
                node.id, f"node names no upstream and there is no default; known: "
                f"{sorted(self.routes)}",
            )  # fmt: skip
        return self.default

    def execute(self, node: NodeSpec, request: AIRequest) -> Coroutine[Any, Any, Response]:
        # the chosen upstream's own coroutine, not one wrapped in another (one frame less a
        # request); a node naming an unknown upstream raises here, when called
        return self.upstream_for(node).execute(node, request)

    def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        # the chosen upstream's own stream, not one wrapped in another generator (one layer
        # less a chunk); an error is raised by the first step, as a generator's would be
        try:
            upstream = self.upstream_for(node)
            if not can_stream(upstream):
                raise UpstreamError(node.id, "this node's upstream cannot stream", retryable=False)
        except UpstreamError as exc:
            return failing_stream(exc)
        return upstream.stream(node, request)

    async def aclose(self) -> None:
        """Close every upstream that has ``aclose`` (each once)."""
        seen: set[int] = set()
        for upstream in [*self.routes.values(), self.default]:
            if upstream is None or id(upstream) in seen:
                continue
            seen.add(id(upstream))
            close = getattr(upstream, "aclose", None)
            if close is not None:
                result = close()
                if inspect.isawaitable(result):
                    await result
