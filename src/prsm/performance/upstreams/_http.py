"""The HTTP upstream: any OpenAI-compatible server (vLLM, Ollama, llama.cpp, a hosted API).

Each node's ``url`` is its OpenAI base URL (e.g. ``http://127.0.0.1:8000/v1``); requests go
over a pool of keep-alive connections per origin (:class:`~.pool.HttpPool`). A node's
``timeout`` bounds a call (for streams: the wait for each chunk); ``api_key_env`` names the
environment variable holding its API key, read once and sent as a bearer token (never logged,
never put in metrics or errors). Bodies are passed through as raw bytes.

Failures become :class:`~prsm.performance.errors.UpstreamError`: 5xx, 408 and 429 answers
and connection failures are retryable (:class:`UpstreamUnavailableError`), a timeout is
:class:`UpstreamTimeoutError`, other 4xx answers are the client's fault (``retryable=False``,
status and body kept so the gateway can pass them on).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson

from ..errors import ConfigError, UpstreamError, UpstreamTimeoutError, UpstreamUnavailableError
from ..http._client import ConnectionFailed, HttpPool, content, request_head
from ..routing._node import NodeSpec
from ..types import AIRequest, JSONBody, RequestKind, Response

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


class _Target:
    """What is prepared once per node: its pool and the head of each kind of request."""

    __slots__ = ("heads", "pool", "url")

    def __init__(self, url: str, pool: HttpPool, heads: dict[RequestKind, tuple[bytes, bytes]]):
        self.url = url
        self.pool = pool
        self.heads = heads


class HttpUpstream:
    """Executes and streams requests on OpenAI-compatible HTTP nodes (implements
    :class:`~prsm.performance.upstreams.StreamingUpstream`).

    ``default_timeout`` bounds a call to a node without its own ``timeout`` (for streams:
    each wait for a chunk); ``enforce_timeout=False`` leaves bounding ``execute`` to the
    caller, as the orchestrator does already (saving a timer per request). Connecting is
    bounded by ``connect_timeout`` either way.
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
        self._pools: dict[str, HttpPool] = {}
        self._targets: dict[str, _Target] = {}

    def _target(self, node: NodeSpec) -> _Target:
        target = self._targets.get(node.id)
        if target is not None and target.url == node.url:
            return target
        if not node.url:
            raise UpstreamError(node.id, "node has no url", retryable=True)
        parts = urlsplit(node.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get(origin)
        if pool is None:
            try:
                pool = self._pools[origin] = HttpPool(origin, connect_timeout=self.connect_timeout)
            except ValueError as exc:
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
        heads = {kind: request_head(base + p, parts.netloc, headers) for kind, p in PATHS.items()}
        target = self._targets[node.id] = _Target(node.url, pool, heads)
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
                    status, raw = await target.pool.request(data)
            else:  # the caller bounds the call (the orchestrator does, by node and deadline)
                status, raw = await target.pool.request(data)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(node.id, f"no answer within {seconds}s") from exc
        except (ConnectionFailed, OSError) as exc:
            raise UpstreamUnavailableError(node.id, f"{type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise _status_error(node.id, status, raw)
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
            return Response(status=status, raw=raw)
        return Response(
            status=status, tokens=usage.total_tokens, raw=raw,
            input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
        )  # fmt: skip

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        target = self._target(node)
        data = content(target.heads[request.kind], _body(request))
        seconds = node.timeout or self.default_timeout
        status: list[int] = []
        chunks = target.pool.stream(data, status=status)
        try:
            while True:
                try:
                    async with asyncio.timeout(seconds):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
                if status[0] != 200:
                    raise _status_error(node.id, status[0], chunk)
                yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeoutError(node.id, f"no chunk within {seconds}s") from exc
        except (ConnectionFailed, OSError) as exc:
            raise UpstreamUnavailableError(node.id, f"{type(exc).__name__}: {exc}") from exc
        finally:
            await chunks.aclose()

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


def _status_error(node_id: str, status: int, raw: bytes) -> UpstreamError:
    snippet = raw[:200].decode("utf-8", "replace")
    message = f"answered {status}: {snippet}"
    if status >= 500 or status in _RETRYABLE_4XX:
        return UpstreamUnavailableError(node_id, message, status=status, body=raw)
    return UpstreamError(node_id, message, status=status, retryable=False, body=raw)
