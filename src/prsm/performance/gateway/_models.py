"""The OpenAI request shapes the gateway checks (msgspec typed models), and body parsing.

Only the fields the gateway relies on are typed; every other field is allowed and passed on
to the upstream unchanged. A body that is not JSON (or not a JSON object) is a 400; a field
of the wrong type, or a required field missing, is a 422 naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from ..errors import RequestValidationError
from ..types import RequestKind

#: the ``field`` of a RequestValidationError for a body that is not a JSON object (400)
BODY = "(body)"


class ChatMessage(msgspec.Struct):
    role: str
    content: str | list[Any] | None = None
    name: str | None = None


class ChatRequest(msgspec.Struct):
    model: str
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stop: str | list[str] | None = None
    user: str | None = None


class CompletionRequest(msgspec.Struct):
    model: str
    prompt: str | list[Any]
    stream: bool | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stop: str | list[str] | None = None
    user: str | None = None


class EmbeddingRequest(msgspec.Struct):
    model: str
    input: str | list[Any]
    encoding_format: str | None = None
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None


_DECODERS: dict[RequestKind, msgspec.json.Decoder[Any]] = {
    RequestKind.CHAT: msgspec.json.Decoder(ChatRequest),
    RequestKind.COMPLETION: msgspec.json.Decoder(CompletionRequest),
    RequestKind.EMBEDDING: msgspec.json.Decoder(EmbeddingRequest),
}
_AT = re.compile(r" - at `\$(.*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def _field_of(message: str) -> tuple[str, str]:
    """(field path, problem) from a msgspec validation message."""
    path = ""
    m = _AT.search(message)
    if m:
        path = m.group(1)
        message = message[: m.start()]
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}"
        message = "is required"
    field = path.lstrip(".") or BODY
    problem = message[0].lower() + message[1:] if message else "invalid"
    return field, problem


def parse_body(kind: RequestKind, body: bytes) -> Any:
    """Check ``body`` against the shape of ``kind``; returns its typed view (the body itself
    goes on as :class:`~prsm.performance.types.JSONBody`, decoded only where it is read).

    Raises :class:`RequestValidationError` with ``field == BODY`` for a body that is not a
    JSON object, or naming the field that is wrong.
    """
    try:
        typed = _DECODERS[kind].decode(body)
    except msgspec.ValidationError as exc:
        field, problem = _field_of(str(exc))
        if field == BODY:
            raise RequestValidationError(BODY, f"must be a JSON object: {problem}") from None
        raise RequestValidationError(field, problem) from None
    except msgspec.DecodeError as exc:
        raise RequestValidationError(BODY, f"malformed JSON: {exc}") from None
    return typed
