"""What a node's HTTP status means (issue 14, defect 4): its own 401/403/404/3xx count against
it and the next node is tried; a client's 400/422 does not; no node answer reaches a client
unsanitised."""

from __future__ import annotations

import random

import pytest

from prsm.performance.errors import (
    UpstreamError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from prsm.performance.gateway._responses import error_reply
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest
from prsm.performance.upstreams._base import (
    CallableUpstream,
    node_detail,
    parse_retry_after,
    redact,
)
from prsm.performance.upstreams._http import _status_error

KEY = "sk-live-0123456789abcdefghij"
LEAKY = (
    b'{"error": {"message": "Incorrect API key provided: ' + KEY.encode() + b". You can find "
    b'your key at https://example.com", "type": "invalid_request_error"}}'
)


@pytest.mark.parametrize("status", [301, 302, 307, 401, 403, 404, 405, 407, 410])
def test_the_nodes_own_faults_are_retryable_and_quote_nothing(status: int) -> None:
    err = _status_error("n1", status, LEAKY, retry_after=2.0)
    assert isinstance(err, UpstreamRejectedError)
    assert err.retryable and err.status == status and err.retry_after == 2.0
    assert KEY not in str(err) and "Incorrect API key" not in str(err)
    assert err.body == LEAKY  # kept for operators, never rendered


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_and_429_are_unavailable_and_quote_nothing(status: int) -> None:
    err = _status_error("n1", status, LEAKY)
    assert isinstance(err, UpstreamUnavailableError) and err.retryable
    assert KEY not in str(err)


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_clients_own_error_is_not_retried_and_keeps_the_nodes_message_redacted(
    status: int,
) -> None:
    body = b'{"object": "error", "message": "maximum context length is 4096 tokens", "code": 400}'
    err = _status_error("n1", status, body)
    assert type(err) is UpstreamError and not err.retryable and err.status == status
    assert "maximum context length is 4096 tokens" in str(err)
    leaky = _status_error("n1", status, LEAKY)
    assert KEY not in str(leaky) and "[redacted]" in str(leaky)


def test_redact_and_detail() -> None:
    text = redact(f"key {KEY}, Authorization: Bearer abc.def, api_key=xyz, eyJa.eyJb.c")
    assert KEY not in text and "abc.def" not in text and "xyz" not in text and "eyJ" not in text
    assert node_detail(b"<html><body>502 Bad Gateway</body></html>") is None
    assert node_detail(b'{"detail": "Not Found"}') == "Not Found"
    assert node_detail(b"x" * 10 + b" " + b"word " * 200) is not None
    long = node_detail(b"word " * 200, limit=50)
    assert long is not None and len(long) == 50 and long.endswith("…")
    assert node_detail(None) is None and node_detail(b"{}") is None


def test_retry_after_header_values() -> None:
    assert parse_retry_after(b"7", 0.0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0) == 0.0  # passed
    assert parse_retry_after(b"-3", 0.0) == 0.0
    assert parse_retry_after("soon", 0.0) is None and parse_retry_after(None, 0.0) is None
    assert parse_retry_after("inf", 0.0) is None


async def test_a_node_refusing_our_key_counts_against_it_and_the_next_one_answers() -> None:
    def handler(node: NodeSpec, request: AIRequest) -> str:
        if node.id == "bad-key":
            raise _status_error(node.id, 401, LEAKY)
        return f"from {node.id}"

    perf = PerformanceOrchestrator(
        load_balancing="round_robin",
        nodes=[NodeSpec("bad-key", models={"m"}), NodeSpec("good", models={"m"})],
        upstream=CallableUpstream(handler),
        rng=random.Random(0),
    )
    result = await perf.handle(AIRequest(model="m"))
    assert result.ok and result.node_id == "good" and result.attempts == 2
    assert perf.breakers.get("bad-key").snapshot.failures == 1
    failures = perf.metrics.registry.get_sample_value(
        "prsm_node_failures_total", {"node": "bad-key"}
    )
    assert failures == 1.0
    retried = perf.metrics.registry.get_sample_value(
        "prsm_orchestrator_retries_total", {"reason": "node_auth"}
    )
    assert retried == 1.0


def test_what_a_client_sees() -> None:
    # the node's own fault, every node failing: our 502, no word of the node's answer
    reply = error_reply(_status_error("n1", 401, LEAKY))
    assert reply.status == 502
    assert KEY.encode() not in reply.body and b"Incorrect API key" not in reply.body
    assert b'"type":"upstream_error"' in reply.body
    # the client's own error: the node's status and message, redacted, in our shape
    reply = error_reply(_status_error("n1", 400, LEAKY))
    assert reply.status == 400 and KEY.encode() not in reply.body
    assert b'"code":"upstream_rejected"' in reply.body and b"Incorrect API key" in reply.body
    # an error built by hand with a raw body: the body is still never passed on
    raw = UpstreamError("n1", "400", status=400, retryable=False, body=LEAKY)
    assert KEY.encode() not in error_reply(raw).body
    # a node's 429 Retry-After reaches the client (whole seconds, at least 1)
    limited = error_reply(UpstreamUnavailableError("n1", "429", status=429, retry_after=2.2))
    assert limited.status == 429 and dict(limited.headers)[b"retry-after"] == b"3"
