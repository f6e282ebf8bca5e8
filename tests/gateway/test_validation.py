"""Body validation (msgspec models) and the status each error of the tree gets."""

from __future__ import annotations

import orjson
import pytest

from prsm.performance.errors import (
    AuthenticationError,
    CircuitBreakerOpenError,
    DeadlineExceededError,
    NoCapableNodesError,
    OverloadedError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestValidationError,
    UnknownModelError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from prsm.performance.gateway._models import BODY, parse_body
from prsm.performance.gateway._responses import error_reply
from prsm.performance.types import JSONBody, RequestKind


def test_valid_chat_body_keeps_unknown_fields_for_the_upstream() -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":7,"stream":true}'
    typed = parse_body(RequestKind.CHAT, body)
    assert typed.model == "m" and typed.stream is True
    payload = JSONBody(body)
    assert payload.raw is body  # passed on as sent
    assert payload["seed"] == 7 and payload.get("missing", 1) == 1 and "stream" in payload
    assert dict(payload) == orjson.loads(body) and len(payload) == 4


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        (RequestKind.CHAT, b"{", BODY),
        (RequestKind.CHAT, b"[1, 2]", BODY),
        (RequestKind.CHAT, b'{"model": 5, "messages": []}', "model"),
        (RequestKind.CHAT, b'{"model": "m"}', "messages"),
        (RequestKind.CHAT, b'{"model": "m", "messages": []}', "messages"),
        (RequestKind.CHAT, b'{"model": "m", "messages": [{"role": "user", "content": 3}]}',
         "messages[0].content"),
        (RequestKind.CHAT, b'{"model": "m", "messages": [{"content": "x"}]}', "messages[0].role"),
        (RequestKind.CHAT,
         b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
         "temperature"),
        (RequestKind.CHAT,
         b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
         "max_tokens"),
        (RequestKind.COMPLETION, b'{"model": "m", "prompt": 5}', "prompt"),
        (RequestKind.EMBEDDING, b'{"model": "m"}', "input"),
    ],
)  # fmt: skip
def test_bad_bodies_name_the_field(kind: RequestKind, body: bytes, field: str) -> None:
    with pytest.raises(RequestValidationError) as err:
        parse_body(kind, body)
    assert err.value.field == field


def _status(exc: Exception) -> int:
    return error_reply(exc).status  # type: ignore[arg-type]


def test_statuses_of_each_error() -> None:
    assert _status(RequestValidationError(BODY, "malformed")) == 400
    assert _status(RequestValidationError("model", "expected str")) == 422
    assert _status(AuthenticationError("invalid API key")) == 401
    assert _status(PayloadTooLargeError(10, 5)) == 413
    assert _status(UnknownModelError("x", ["a", "b"])) == 404
    assert _status(NoCapableNodesError({"model:x"}, {})) == 503
    assert _status(CircuitBreakerOpenError("n", 3.0)) == 503
    assert _status(UpstreamUnavailableError("n", "connection refused")) == 503
    assert _status(UpstreamUnavailableError("n", "500", status=500)) == 502
    assert _status(DeadlineExceededError(1.0, 2, None)) == 504
    assert _status(UpstreamTimeoutError("n", "slow")) == 504
    assert _status(OverloadedError("queue", 10)) == 503


def test_error_body_is_openai_shaped_and_names_param() -> None:
    reply = error_reply(UnknownModelError("x", ["a", "b"]))
    err = orjson.loads(reply.body)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == "model" and err["code"] == "model_not_found"
    assert "a, b" in err["message"]
    bad = orjson.loads(error_reply(RequestValidationError("temperature", "x")).body)["error"]
    assert bad["param"] == "temperature"


def test_rate_limited_has_whole_second_retry_after() -> None:
    reply = error_reply(RateLimitedError("t", "requests per minute", 0.2))
    assert reply.status == 429
    assert dict(reply.headers)[b"retry-after"] == b"1"
    assert dict(error_reply(RateLimitedError("t", "x", 2.01)).headers)[b"retry-after"] == b"3"


def test_upstream_client_errors_are_passed_on_with_their_message_only() -> None:
    body = b'{"error": {"message": "context too long", "type": "invalid_request_error"}}'
    reply = error_reply(UpstreamError("n", "400", status=400, retryable=False, body=body))
    assert reply.status == 400 and reply.body != body and b"context too long" in reply.body
    assert error_reply(UpstreamError("n", "429", status=429)).status == 429
