"""The HTTP upstream: any OpenAI-compatible server (vLLM, Ollama, llama.cpp, a hosted API).

Each node's ``url`` is its OpenAI base URL (e.g. ``http://127.0.0.1:8000/v1``); requests go
over a pool of keep-alive connections per origin and client settings
(:class:`~prsm.performance.http.HttpPool`: TLS checks or a CA bundle, a proxy from
``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, a connection cap, connect and read timeouts, all
from the node's config). A node's ``timeout`` bounds a call (for streams: the wait for each
chunk); ``api_key_env`` names the environment variable holding its API key, read once and
sent as a bearer token (never logged, never put in metrics or errors). Bodies are passed
through as raw bytes. A request is never sent twice here: a connection failure after it was
written is raised, and the caller's retry policy decides (and counts) what happens next.

Failures become :class:`~prsm.performance.errors.UpstreamError`: 5xx, 408, 409, 425 and 429
answers and connection failures are retryable (:class:`UpstreamUnavailableError`), a timeout
is :class:`UpstreamTimeoutError`; the node's own faults (its key refused, a model or path it
lacks, a redirect) are :class:`UpstreamRejectedError` (counted against it, the next node
tried); other 4xx answers are the client's fault (``retryable=False``, status kept, the node's
message passed on with credentials redacted). A node's ``Retry-After`` (seconds or an HTTP
date) becomes the error's ``retry_after``.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson

from .._awaiting import await_with_timeout
from ..errors import (
    ConfigError,
    ConnectionFailed,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from ..http._client import HttpPool, content
from ..http._client_connection import ClientResponse
from ..http._pool_stream import PoolStream
from ..http._settings import HttpClientSettings
from ..routing._node import NodeSpec
from ..types import AIRequest, JSONBody, RequestKind, Response, passed_on
from ._base import failing_stream, node_detail, node_fault

PATHS = {
    RequestKind.CHAT: "/chat/completions",
    RequestKind.COMPLETION: "/completions",
    RequestKind.EMBEDDING: "/embeddings",
}
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


class _Usage(msgspec.Struct):
    total_tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Answer(msgspec.Struct):
    usage: _Usage | None = None


#: checks that an answer is a JSON object and reads its token count, skipping (not building)
#: everything else: the answer itself goes to the client as the bytes the node sent
_ANSWER = msgspec.json.Decoder(_Answer)


def _body(request: AIRequest) -> bytes:
    """The request body to send: the client's own bytes when they were passed on unread."""
    payload = request.payload
    if type(payload) is JSONBody:
        return payload.raw
    return orjson.dumps(payload)


def check_nodes(nodes: Iterable[NodeSpec], environ: Mapping[str, str] | None = None) -> None:
    """Fail at start-up, naming the node, when an HTTP node (one without a ``meta.upstream``
    tag) has no usable URL or its key variable is unset."""
    env = os.environ if environ is None else environ
    for node in nodes:
        if node.meta.get("upstream"):
            continue  # served by another upstream (e.g. local workers), not over HTTP
        if not node.url:
            raise ConfigError(f"node[{node.id}].url", "an HTTP node needs its base URL")
        parts = urlsplit(node.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"node[{node.id}].url", f"must be http(s)://host[:port][/path], got {node.url!r}"
            )
        if node.api_key_env and not env.get(node.api_key_env):
            raise ConfigError(
                f"node[{node.id}].api_key_env",
                f"the environment variable {node.api_key_env} is not set",
            )
        if node.ca_bundle is not None and not Path(node.ca_bundle).is_file():
            raise ConfigError(f"node[{node.id}].ca_bundle", f"no such file: {node.ca_bundle!r}")


def retry_after(value: bytes | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (delta seconds or an HTTP date), or
    ``None`` when absent or unreadable."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _answer_error(node_id: str, response: ClientResponse) -> UpstreamError:
    """The error for a non-200 answer, with the node's ``Retry-After``."""
    return _status_error(
        node_id,
        response.status,
        response.body,
        retry_after=retry_after(response.header(b"retry-after")),
    )


def _connection_error(node_id: str, exc: ConnectionFailed | OSError) -> UpstreamError:
    if isinstance(exc, ConnectionFailed) and exc.sent:
        why = f"{exc} (after the request was sent: the node may have acted on it)"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return UpstreamUnavailableError(node_id, why)


class _NodeErrors:
    """A node's stream failures as its errors (the pool's stream raises them itself: no
    layer around it): a timeout as :class:`UpstreamTimeoutError`, a connection failure as
    the retryable error of :func:`_connection_error`, a non-200 answer as its status says."""

    __slots__ = ("node_id", "seconds")

    def __init__(self, node_id: str, seconds: float) -> None:
        self.node_id = node_id
        self.seconds = seconds  # the limit a timeout is reported with

    def timed_out(self) -> UpstreamTimeoutError:
        """No chunk came within the node's limit."""
        return UpstreamTimeoutError(self.node_id, f"no chunk within {self.seconds}s")

    def raised(self, exc: BaseException) -> BaseException | None:
        if isinstance(exc, TimeoutError):
            return self.timed_out()
        if isinstance(exc, (ConnectionFailed, OSError)):
            return _connection_error(self.node_id, exc)
        return None

    def answered(self, response: ClientResponse) -> BaseException:
        return _answer_error(self.node_id, response)


class _Target:
    """What is prepared once per node: its pool, the head of each kind of request, and how
    its stream failures are named."""

    __slots__ = ("errors", "heads", "node", "pool")

    def __init__(
        self,
        node: NodeSpec,
        pool: HttpPool,
        heads: dict[RequestKind, tuple[bytes, bytes]],
        errors: _NodeErrors,
    ):
        self.node = node
        self.pool = pool
        self.heads = heads
        self.errors = errors


class HttpUpstream:
    """Executes and streams requests on OpenAI-compatible HTTP nodes (implements
    :class:`~prsm.performance.upstreams.StreamingUpstream`).

    ``default_timeout`` bounds a call to a node without its own ``timeout`` (for streams:
    each wait for a chunk); ``enforce_timeout=False`` leaves bounding calls and chunk waits to
    the caller, as the orchestrator does already (its deadline, first-token and idle limits;
    saving a timer per request). Connecting is bounded by ``connect_timeout`` either way.
    """

    def __init__(
        self,
        *,
        default_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        enforce_timeout: bool = True,
    ) -> None:
        if not default_timeout > 0:
            raise ConfigError("default_timeout", f"must be > 0, got {default_timeout}")
        if not connect_timeout > 0:
            raise ConfigError("connect_timeout", f"must be > 0, got {connect_timeout}")
        self.default_timeout = default_timeout
        self.connect_timeout = connect_timeout
        self.enforce_timeout = enforce_timeout
        self._pools: dict[tuple[str, HttpClientSettings], HttpPool] = {}
        self._targets: dict[str, _Target] = {}

    def client_settings(self, node: NodeSpec) -> HttpClientSettings:
        """How the client talks to ``node``: its own options, else this upstream's."""
        return HttpClientSettings(
            connect_timeout=node.connect_timeout or self.connect_timeout,
            read_timeout=node.read_timeout,
            max_connections=node.max_connections or 0,
            verify=node.tls_verify,
            ca_bundle=node.ca_bundle,
        )

    def _target(self, node: NodeSpec) -> _Target:
        target = self._targets.get(node.id)
        if target is not None and target.node is node:
            return target
        return self._new_target(node)

    def _new_target(self, node: NodeSpec) -> _Target:
        """What a request to ``node`` needs, made once (a method of its own: its comprehension
        would make :meth:`_target`'s names closure cells, made on every request)."""
        if not node.url:
            raise UpstreamError(node.id, "node has no url", retryable=True)
        parts = urlsplit(node.url)
        origin = (f"{parts.scheme}://{parts.netloc}", self.client_settings(node))
        pool = self._pools.get(origin)
        if pool is None:
            try:
                pool = self._pools[origin] = HttpPool(*origin)
            except (ValueError, ConfigError) as exc:
                raise UpstreamError(node.id, str(exc), retryable=True) from None
        headers: dict[str, str] = {}
        if node.api_key_env:
            key = os.environ.get(node.api_key_env)
            if not key:
                raise UpstreamError(
                    node.id,
                    f"the environment variable {node.api_key_env} (its api_key_env) is not set",
                    retryable=True,
                )
            headers["Authorization"] = f"Bearer {key}"
        base = parts.path.rstrip("/")
        heads = {kind: pool.request_head(base + p, headers) for kind, p in PATHS.items()}
        errors = _NodeErrors(node.id, node.timeout or self.default_timeout)
        target = self._targets[node.id] = _Target(node, pool, heads, errors)
        return target

    def forget_node(self, node_id: str) -> None:
        """Drop what was prepared for a node (e.g. after its key variable changed)."""
        self._targets.pop(node_id, None)

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        target = self._target(node)
        data = content(target.heads[request.kind], _body(request))
        seconds = node.timeout or self.default_timeout
        try:
            if self.enforce_timeout:
                async with asyncio.timeout(seconds):
                    response = await target.pool.request(data)
            else:  # the caller bounds the call (the orchestrator does, by node and deadline)
                response = await target.pool.request(data)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(node.id, f"no answer within {seconds}s") from exc
        except (ConnectionFailed, OSError) as exc:
            raise _connection_error(node.id, exc) from exc
        status, raw = response.status, response.body
        if status != 200:
            raise _answer_error(node.id, response)
        try:
            answer = _ANSWER.decode(raw)
        except msgspec.ValidationError:  # JSON, but not the OpenAI shape: decode it whole
            return _loose_answer(node.id, status, raw)
        except msgspec.DecodeError as exc:
            raise UpstreamError(
                node.id, f"answered 200 with a body that is not JSON: {exc}"
            ) from exc
        usage = answer.usage
        if usage is None:
            return passed_on(raw, 0, 0, 0)
        return passed_on(raw, usage.total_tokens, usage.prompt_tokens, usage.completion_tokens)

    def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        try:
            target = self._target(node)
            data = content(target.heads[request.kind], _body(request))
        except Exception as exc:  # raised by the first step, as a generator's would be
            return failing_stream(exc)
        # (pool.stream; no response object: the node's errors read a non-200 answer's)
        chunks = PoolStream(target.pool, data, None, target.errors)
        if not self.enforce_timeout:  # the caller bounds each wait (the orchestrator does)
            return chunks
        return _BoundedStream(target.errors, chunks)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
        self._targets.clear()

    async def __aenter__(self) -> HttpUpstream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _BoundedStream:
    """A node's stream whose every wait for a chunk is bounded here (``enforce_timeout``):
    past its limit, an :class:`UpstreamTimeoutError` and the stream is closed. An iterator
    object, not an async generator: no loop bookkeeping per stream (the loop tracks every
    async generator, in a weak set), and no timeout context per chunk (the shared tick
    timers)."""

    __slots__ = ("_chunks", "_errors")

    def __init__(self, errors: _NodeErrors, chunks: PoolStream) -> None:
        self._errors = errors
        self._chunks = chunks

    def __aiter__(self) -> _BoundedStream:
        return self

    async def __anext__(self) -> bytes:
        chunks = self._chunks
        try:
            return await await_with_timeout(chunks.__anext__(), self._errors.seconds)
        except TimeoutError as exc:
            await chunks.aclose()
            raise self._errors.timed_out() from exc

    async def aclose(self) -> None:
        """Stop early: the connection is closed unless its answer was complete."""
        await self._chunks.aclose()


def _loose_answer(node_id: str, status: int, raw: bytes) -> Response:
    """An answer that is JSON but not shaped as expected (``usage`` of another type, not an
    object at all): passed on as it is, with the token count read where it can be."""
    try:
        parsed: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(node_id, f"answered 200 with a body that is not JSON: {exc}") from exc
    tokens = 0
    usage = parsed.get("usage") if isinstance(parsed, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
        tokens = usage["total_tokens"]
    return Response(content=parsed, status=status, tokens=tokens, raw=raw)


def _status_error(
    node_id: str, status: int, raw: bytes, *, retry_after: float | None = None
) -> UpstreamError:
    """The error for a node's non-200 answer ``raw`` (``retry_after``: its ``Retry-After``,
    seconds, when the caller read one).

    5xx, 408, 409, 425 and 429: :class:`UpstreamUnavailableError` (retryable, counted against
    the node). The node's own fault — its credentials refused (401, 403, 407), a model or path
    it lacks (404, 405, 410), a redirect (3xx): :class:`UpstreamRejectedError` (counted against
    it, the next node tried). Neither message quotes the node's answer (it may echo our key);
    the answer stays in ``body`` for operators. Any other 4xx is about the client's own request:
    not retried, not counted, and the message carries only what :func:`node_detail` keeps
    of the node's answer (its error message, credentials redacted).
    """
    if status >= 500 or status in _RETRYABLE_4XX:
        return UpstreamUnavailableError(
            node_id, f"answered {status}", status=status, body=raw, retry_after=retry_after
        )
    fault = node_fault(status)
    if fault is not None:
        return UpstreamRejectedError(
            node_id, f"answered {status}: {fault}", status=status, body=raw,
            retry_after=retry_after,
        )  # fmt: skip
    detail = node_detail(raw)
    message = f"rejected the request ({status})" + (f": {detail}" if detail else "")
    return UpstreamError(node_id, message, status=status, retryable=False, body=raw)
