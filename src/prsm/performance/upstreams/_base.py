"""The ``Upstream`` edge: how a request reaches a node, and the in-process implementation.

An upstream executes one request on one node and returns a :class:`Response`, raising an
:class:`~prsm.performance.errors.UpstreamError` (or subclass) when the node fails. Errors
with ``retryable=False`` (a client's 4xx) are not counted against the node's breaker and are
not retried elsewhere; every other error is the node's, counted against it and retried as the
orchestrator's retry policy decides.

Also here, for every upstream: what a node's HTTP status means (:func:`node_fault`), what of
a node's error answer may be shown to a client (:func:`node_detail`: its message, secrets
redacted), and reading a ``Retry-After`` header (:func:`parse_retry_after`).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping
from email.utils import parsedate_to_datetime
from types import CoroutineType
from typing import Any, Protocol, TypeGuard, runtime_checkable

import orjson

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


_STREAMING: dict[type, bool] = {}


def can_stream(upstream: Upstream) -> TypeGuard[StreamingUpstream]:
    """``isinstance(upstream, StreamingUpstream)``, remembered per class: a runtime Protocol
    check looks up every member on each call (profiled: about 5 % of the gateway's CPU on
    streamed requests, which check it twice each). Upstreams define ``stream`` on the class,
    so the answer is the class's."""
    kind = type(upstream)
    known = _STREAMING.get(kind)
    if known is None:
        known = _STREAMING[kind] = isinstance(upstream, StreamingUpstream)
    return known


Handler = Callable[[NodeSpec, AIRequest], Any]

#: what a handler returns that is never awaitable (checked first: ``inspect.isawaitable`` is
#: an ABC check, slow on the hot path)
_PLAIN = frozenset({str, bytes, dict, list, tuple, int, float, bool, type(None), Response})


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
            kind = type(out)
            if kind is CoroutineType or (kind not in _PLAIN and inspect.isawaitable(out)):
                out = await out
        except UpstreamError:
            raise
        except Exception as exc:  # wrapped, never swallowed: the caller sees the cause
            raise UpstreamError(node.id, f"{type(exc).__name__}: {exc}") from exc
        if type(out) is Response or isinstance(out, Response):
            return out
        return Response(out)


#: Statuses that are the node's own fault, not the client's, and what each says about it.
_NODE_FAULTS = {
    401: "it refused our credentials",
    403: "it refused our credentials",
    404: "it does not serve this model or path",
    405: "it does not serve this path",
    407: "its proxy refused our credentials",
    410: "it no longer serves this model",
}


def node_fault(status: int) -> str | None:
    """What ``status`` says about the node when it is the node's own fault (its credentials,
    a model or path it lacks, a redirect: counted against it, the next node tried), or
    ``None`` when it is not (a 2xx, a 5xx or 429 — retryable for other reasons — or a 4xx
    about the client's own request)."""
    if 300 <= status < 400:
        return "it redirected (check the node's url)"
    return _NODE_FAULTS.get(status)


_REDACTED = "[redacted]"
_SECRETS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+"), r"\1 " + _REDACTED),
    (
        re.compile(
            r"(?i)\b(api[_-]?key|access[_-]?token|token|secret|password|authorization)"
            r"(\"?\s*[:=]\s*\"?)[^\s\"',;}&]+"
        ),
        r"\1\2" + _REDACTED,
    ),
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"), _REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), _REDACTED),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), _REDACTED),
    (re.compile(r"[A-Za-z0-9_\-+=]{32,}"), _REDACTED),
)


def redact(text: str) -> str:
    """``text`` with whatever looks like a credential replaced by ``[redacted]``: bearer and
    basic tokens, ``api_key=…``-style pairs, ``sk-…`` keys, AWS key ids, JWTs, and any run of
    32 or more token characters."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def node_detail(body: bytes | None, limit: int = 300) -> str | None:
    """What a node said about a request it refused, safe to show the client: the message of
    its OpenAI-style error (``error.message``, or a top-level ``message`` / ``detail``),
    else its plain-text body (never HTML), whitespace collapsed, credentials redacted and at
    most ``limit`` characters; ``None`` when it said nothing usable."""
    if not body:
        return None
    text: str | None = None
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raw = body[: limit * 4].decode("utf-8", "replace").strip()
        if raw and not raw.startswith("<"):
            text = raw
    else:
        if isinstance(parsed, dict):
            err = parsed.get("error")
            for candidate in (
                err.get("message") if isinstance(err, dict) else err,
                parsed.get("message"),
                parsed.get("detail"),
            ):
                if isinstance(candidate, str) and candidate.strip():
                    text = candidate
                    break
    if text is None:
        return None
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | bytes | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date, read
    against ``now``, the wall-clock time in seconds since the epoch); ``None`` when absent or
    unreadable; never negative."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


async def failing_stream(exc: BaseException) -> AsyncIterator[bytes]:
    """A stream whose first step raises ``exc`` (what preparing it raised: a stream's
    failures come from its steps, as a generator's would)."""
    raise exc
    yield b""  # a generator (never reached)
