"""OpenAI-style error bodies, and which HTTP status each error of the tree gets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from ..errors import (
    AuthenticationError,
    CircuitBreakerOpenError,
    ConfigError,
    DeadlineExceededError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PRSMError,
    RateLimitedError,
    RequestValidationError,
    RoutingError,
    UnknownModelError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ..upstreams._base import node_detail
from ._models import BODY


@dataclass(frozen=True, slots=True)
class ErrorReply:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


def error_body(
    message: str, kind: str, *, param: str | None = None, code: str | None = None
) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``"""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def _retry_after(seconds: float) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"retry-after", str(max(1, math.ceil(seconds))).encode()),)


def error_reply(exc: PRSMError) -> ErrorReply:
    """The status, body and headers answering ``exc``."""
    msg = str(exc)
    if isinstance(exc, RequestValidationError):
        if exc.field == BODY:
            return ErrorReply(400, error_body(msg, "invalid_request_error", code="invalid_json"))
        return ErrorReply(
            422,
            error_body(msg, "invalid_request_error", param=exc.field, code="invalid_value"),
        )
    if isinstance(exc, AuthenticationError):
        return ErrorReply(401, error_body(msg, "authentication_error", code="invalid_api_key"))
    if isinstance(exc, PermissionDeniedError):
        return ErrorReply(403, error_body(msg, "permission_error", code="forbidden"))
    if isinstance(exc, PayloadTooLargeError):
        return ErrorReply(413, error_body(msg, "invalid_request_error", code="payload_too_large"))
    if isinstance(exc, UnknownModelError):
        return ErrorReply(
            404,
            error_body(msg, "invalid_request_error", param="model", code="model_not_found"),
        )
    if isinstance(exc, RateLimitedError):
        return ErrorReply(
            429,
            error_body(msg, "rate_limit_error", code="rate_limit_exceeded"),
            _retry_after(exc.retry_after),
        )
    if isinstance(exc, OverloadedError):
        return ErrorReply(
            503,
            error_body(msg, "service_unavailable", code="overloaded"),
            _retry_after(exc.retry_after),
        )
    if isinstance(exc, (RoutingError, CircuitBreakerOpenError)):
        return ErrorReply(503, error_body(msg, "service_unavailable", code="no_healthy_node"))
    if isinstance(exc, (DeadlineExceededError, UpstreamTimeoutError)):
        return ErrorReply(504, error_body(msg, "timeout", code="upstream_timeout"))
    if isinstance(exc, UpstreamError):
        if not exc.retryable and exc.status is not None and 400 <= exc.status < 500:
            # the client's own request, as the node judged it: the node's status, our body
            # with the node's message only (credentials redacted), never its raw answer
            detail = node_detail(exc.body)
            said = f": {detail}" if detail else ""
            return ErrorReply(
                exc.status,
                error_body(
                    f"the model server rejected the request (HTTP {exc.status}){said}",
                    "invalid_request_error",
                    code="upstream_rejected",
                ),
            )
        if exc.status == 429:
            return ErrorReply(
                429,
                error_body(msg, "rate_limit_error", code="upstream_rate_limited"),
                _retry_after(exc.retry_after or 1),
            )
        if exc.status is None:  # could not reach any node that serves it
            return ErrorReply(503, error_body(msg, "service_unavailable", code="no_healthy_node"))
        return ErrorReply(502, error_body(msg, "upstream_error", code="bad_gateway"))
    if isinstance(exc, ConfigError):
        return ErrorReply(
            422, error_body(msg, "invalid_request_error", param=exc.field, code="invalid_value")
        )
    return ErrorReply(500, error_body(msg, "server_error", code=type(exc).__name__))
