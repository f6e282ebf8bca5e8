"""The values that flow through the engine: requests, node descriptions, results.

These are plain data. Policies read them; drivers build and pass them on.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec
import orjson

from .errors import RequestValidationError

_ids = itertools.count(1)
_prefix = f"{os.getpid():x}"


def new_request_id() -> str:
    """A process-unique request id (cheap: a counter, not a UUID)."""
    return f"req-{_prefix}-{next(_ids)}"


CACHE_MODES = ("default", "no-cache", "no-store")


class JSONBody(Mapping[str, Any]):
    """A JSON object kept as the bytes it arrived as, decoded (orjson) only when read.

    The gateway hands request bodies on as these: an HTTP upstream sends ``raw`` unchanged,
    so a request that no cache or local worker reads is never decoded into Python objects
    nor encoded again. ``raw`` must hold a JSON object (the gateway has validated it).
    """

    __slots__ = ("_data", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The decoded object (decoded once)."""
        data = self._data
        if data is None:
            data = self._data = orjson.loads(self.raw)
        return data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"JSONBody({self.raw!r})"


class RequestKind(StrEnum):
    """What an OpenAI-compatible request asks for."""

    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"


@dataclass(slots=True)
class AIRequest:
    """One request to a model endpoint.

    ``required_capabilities`` is what the source post's balancer reads: every string in it
    must be among a node's capabilities. ``model`` adds the capability ``model:<name>``
    implicitly; ``context_tokens`` must fit the node's ``max_context``. ``timeout`` is the
    request's budget in seconds from when it is handled (its deadline); ``priority`` is
    larger-is-more-urgent. ``cache_mode`` is ``"default"`` (read and store),
    ``"no-cache"`` (do not answer from cache, but store the answer) or ``"no-store"``
    (neither read nor store).
    """

    model: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    required_capabilities: frozenset[str] = frozenset()
    kind: RequestKind = RequestKind.CHAT
    tenant: str = "default"
    priority: int = 0
    timeout: float | None = None
    context_tokens: int = 0
    stream: bool = False
    cache_mode: str = "default"
    id: str = field(default_factory=new_request_id)

    def __post_init__(self) -> None:
        if not isinstance(self.required_capabilities, frozenset):
            caps = self.required_capabilities
            if isinstance(caps, str) or not hasattr(caps, "__iter__"):
                raise RequestValidationError(
                    "required_capabilities", f"must be a set of strings, not {caps!r}"
                )
            self.required_capabilities = frozenset(caps)
        if self.timeout is not None and not self.timeout > 0:
            raise RequestValidationError("timeout", f"must be > 0 seconds, got {self.timeout!r}")
        if self.context_tokens < 0:
            raise RequestValidationError(
                "context_tokens", f"must be >= 0, got {self.context_tokens!r}"
            )
        if self.cache_mode not in CACHE_MODES:
            raise RequestValidationError(
                "cache_mode", f"must be one of {', '.join(CACHE_MODES)}, got {self.cache_mode!r}"
            )
        if not isinstance(self.kind, RequestKind):
            try:
                self.kind = RequestKind(self.kind)
            except ValueError:
                allowed = ", ".join(k.value for k in RequestKind)
                raise RequestValidationError(
                    "kind", f"unknown kind {self.kind!r}; allowed: {allowed}"
                ) from None

    @property
    def capabilities_needed(self) -> frozenset[str]:
        """Every capability a node must offer: the explicit ones plus ``model:<model>``."""
        if self.model:
            return self.required_capabilities | {f"model:{self.model}"}
        return self.required_capabilities


def checked_request(  # noqa: PLR0917 (positional: the hot path)
    model: str,
    payload: Mapping[str, Any],
    kind: RequestKind,
    tenant: str,
    timeout: float | None,
    stream: bool,
    cache_mode: str,
    request_id: str,
) -> AIRequest:
    """An :class:`AIRequest` of values already checked by the caller (the gateway's: a
    :class:`RequestKind`, a timeout > 0 or ``None``, one of :data:`CACHE_MODES`), with no
    required capabilities, priority 0 and no context tokens: what ``AIRequest(...)`` makes,
    without ``__post_init__``'s checks and its call (one a request on the hot path). It sets
    every field: tests/gateway/test_hot_path_values.py holds it to the class call."""
    r = _new_object(AIRequest)
    r.model = model
    r.payload = payload
    r.required_capabilities = _NO_CAPABILITIES
    r.kind = kind
    r.tenant = tenant
    r.priority = 0
    r.timeout = timeout
    r.context_tokens = 0
    r.stream = stream
    r.cache_mode = cache_mode
    r.id = request_id
    return r


_NO_CAPABILITIES: frozenset[str] = frozenset()
_UNREAD: Any = object()


class Response:
    """What an upstream returned for one request.

    ``content`` is the decoded answer (an OpenAI-shaped dict for HTTP upstreams, anything
    for in-process callables); ``raw`` optionally keeps the exact bytes to pass through.
    Given ``raw`` without ``content``, the content is decoded from it (orjson) when first
    read: a pass-through answer that nothing inspects is never decoded.
    """

    __slots__ = ("_content", "headers", "input_tokens", "output_tokens", "queue_seconds", "raw",
                 "status", "tokens")  # fmt: skip

    def __init__(
        self,
        content: Any = _UNREAD,
        status: int = 200,
        tokens: int = 0,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        queue_seconds: float = -1.0,
    ) -> None:
        if content is _UNREAD and raw is None:
            raise TypeError("Response needs content, raw bytes, or both")
        self._content = content
        self.status = status
        self.tokens = tokens
        self.raw = raw
        self.headers: Mapping[str, str] = {} if headers is None else headers
        #: the answer's ``usage.prompt_tokens`` and ``completion_tokens`` when it gave them
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        #: how long the request waited in the node's own queue (a local batcher's), when the
        #: upstream knows; negative: unknown
        self.queue_seconds = queue_seconds

    @property
    def content(self) -> Any:
        content = self._content
        if content is _UNREAD:
            assert self.raw is not None
            content = self._content = orjson.loads(self.raw)
        return content

    @content.setter
    def content(self, value: Any) -> None:
        self._content = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (self.content, self.status, self.tokens, self.raw, dict(self.headers)) == (
            other.content, other.status, other.tokens, other.raw, dict(other.headers)
        )  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        content = "<unread>" if self._content is _UNREAD else repr(self._content)
        return (
            f"Response(content={content}, status={self.status}, tokens={self.tokens}, "
            f"raw={'None' if self.raw is None else f'<{len(self.raw)} bytes>'})"
        )


def passed_on(raw: bytes, tokens: int, input_tokens: int, output_tokens: int) -> Response:
    """A node's 200 answer passed on as the bytes it sent (its content decoded when first
    read): what ``Response(status=200, tokens=tokens, raw=raw, input_tokens=...,
    output_tokens=...)`` makes, without a call by keyword through the class (one a request on
    the hot path: a class call with keywords passes them as a dict to ``__init__``)."""
    r = _new_object(Response)
    r._content = _UNREAD
    r.status = 200
    r.tokens = tokens
    r.raw = raw
    r.headers = {}
    r.input_tokens = input_tokens
    r.output_tokens = output_tokens
    r.queue_seconds = -1.0
    return r


_new_object = object.__new__


class ExecutionResult(msgspec.Struct):
    """The outcome of running one request on one node (what ``update_performance_model`` reads).

    ``latency`` is in seconds; ``error`` is set when ``ok`` is false; ``attempts`` counts
    the nodes tried (``handle`` retries on the next node); ``cache`` names the tier that
    answered, when one did. A struct (made in C, at less than half the cost of a dataclass's
    ``__init__``: one a request); made, compared and shown as a dataclass would be.
    """

    request_id: str
    node_id: str | None
    ok: bool
    latency: float
    response: Response | None = None
    error: BaseException | None = None
    attempts: int = 1
    cache: str | None = None
    similarity: float | None = None
    timings: dict[str, float] = {}  # (a new dict for each result made without)

    @property
    def content(self) -> Any:
        """The response content, or ``None`` when the call failed."""
        return self.response.content if self.response is not None else None
