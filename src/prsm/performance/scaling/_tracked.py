"""``TrackedUpstream``: the request path's hooks into a :class:`LoadTracker`.

Wraps the upstream that serves the scaled replicas (the gateway's local workers, or the
pods of a scaled Deployment): each call or stream is one arrival, in service at once (the
replicas' own queue, e.g. a batcher, is inside the call), and finished with its duration and
whether it failed — the three O(1) calls the tracker takes. The arrival names its user, for
the sessions: the OpenAI ``user`` field of the request's body where it has one, else its
tenant (the API key's), unless that is the anonymous ``default``. Anything else the inner
upstream has (``aclose``, readings for the node poller) is reached through :attr:`inner`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from typing import Any, Protocol

from ..clock import Clock, SystemClock
from ..errors import UpstreamError
from ..routing._node import NodeSpec
from ..types import AIRequest, Response
from ..upstreams._base import Upstream


class LoadHooks(Protocol):
    """The request path's three calls into a tracker: a :class:`LoadTracker`, or what sends
    them to one in another process (a gateway process of ``serve --workers N``)."""

    def arrived(self, user: Hashable | None = None) -> None: ...

    def started(self, waited: float = 0.0, node: str | None = None) -> None: ...

    def finished(
        self, service_time: float, *, error: bool = False, node: str | None = None
    ) -> None: ...


def request_user(request: AIRequest) -> str | None:
    """Who sent ``request``: its body's ``user`` field, else its tenant (``None`` for the
    anonymous ``default`` tenant)."""
    user = request.payload.get("user")
    if isinstance(user, str) and user:
        return "user:" + user
    return None if request.tenant == "default" else "tenant:" + request.tenant


class TrackedUpstream:
    """Feeds ``tracker`` from every :meth:`execute` and :meth:`stream` of ``inner``."""

    def __init__(self, inner: Upstream, tracker: LoadHooks, *, clock: Clock | None = None):
        self.inner = inner
        self.tracker = tracker
        self.clock = clock or SystemClock()

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        tracker = self.tracker
        tracker.arrived(request_user(request))
        node_id = node.id
        tracker.started(node=node_id)
        start = self.clock.monotonic()
        try:
            response = await self.inner.execute(node, request)
        except UpstreamError as exc:
            # a client's bad request is not the replicas' load failing; anything else is
            tracker.finished(self.clock.monotonic() - start, error=exc.retryable, node=node_id)
            raise
        except BaseException:  # cancelled (the caller's deadline): it left service, unfinished
            tracker.finished(self.clock.monotonic() - start, error=True, node=node_id)
            raise
        tracker.finished(self.clock.monotonic() - start, node=node_id)
        return response

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        """``inner``'s stream, in service from its call to its end (a stream ended early by
        its consumer left service unfinished, as a cancelled call does)."""
        tracker = self.tracker
        tracker.arrived(request_user(request))
        tracker.started(node=node.id)
        start = self.clock.monotonic()
        failed = True
        try:
            async for chunk in self.inner.stream(node, request):  # type: ignore[attr-defined]
                yield chunk
            failed = False
        except UpstreamError as exc:
            failed = exc.retryable  # a client's bad request is not the replicas failing
            raise
        finally:
            tracker.finished(self.clock.monotonic() - start, error=failed, node=node.id)

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()


#: a node's requests in service, as one reporter (a gateway process, a gateway pod) holds them
Held = dict[str | None, int]


def check_load_events(events: object) -> list[list[Any]]:
    """``events`` as :class:`~prsm.performance.serve._pool_client.LoadReporter` sends them
    (``["a", user]``, ``["s", waited, node]``, ``["f", service_time, error, node]``; ``user``
    and ``node`` a string or ``None``), every one checked before any is played; a
    :class:`ValueError` naming the first that is not."""
    if not isinstance(events, list):
        raise ValueError(f"events must be a list, got {type(events).__name__}")
    for event in events:
        if not isinstance(event, list) or not event:
            raise ValueError(f"unknown load event {event!r}")
        kind, shape = event[0], _SHAPES.get(event[0]) if isinstance(event[0], str) else None
        if shape is None or len(event) != len(shape) + 1:
            raise ValueError(f"unknown load event {event!r}")
        for value, want in zip(event[1:], shape, strict=True):
            if not isinstance(value, want) or (want is _NUMBER and isinstance(value, bool)):
                raise ValueError(f"load event {kind!r} has a bad field: {event!r}")
    return events


_NUMBER = (int, float)
_TEXT = (str, type(None))
_SHAPES: dict[str, tuple[Any, ...]] = {"a": (_TEXT,), "s": (_NUMBER, _TEXT),
                                       "f": (_NUMBER, bool, _TEXT)}  # fmt: skip


def play_load(
    events: list[list[Any]], tracker: LoadHooks, held: Held, registry: Any = None
) -> None:
    """Play checked load ``events`` into ``tracker`` in order. Each request started is held
    against its node in ``held`` (and in ``registry``, a
    :class:`~prsm.performance.routing.NodeRegistry`, where it has the node: a drain waits for
    it); a finish with nothing held on its node (already ended by :func:`end_held`, or its
    start never arrived) is not played, so a request never ends twice."""
    for event in events:
        kind = event[0]
        if kind == "a":
            tracker.arrived(event[1])
        elif kind == "s":
            node = event[2]
            tracker.started(float(event[1]))
            held[node] = held.get(node, 0) + 1
            if registry is not None and node in registry:
                registry.acquire(node)
        else:
            node = event[3]
            if held.get(node, 0) <= 0:
                continue
            held[node] -= 1
            tracker.finished(float(event[1]), error=bool(event[2]))
            if registry is not None and node in registry:
                registry.release(node)


def end_held(tracker: LoadHooks, held: Held, registry: Any = None) -> int:
    """End as unfinished (an error) every request ``held`` still has in service (its reporter
    went away); how many."""
    ends = [["f", 0.0, True, node] for node, count in held.items() for _ in range(count)]
    play_load(ends, tracker, held, registry)
    held.clear()
    return len(ends)
