"""Recording requests: our names and the OpenTelemetry GenAI names, bounded labels, the SLA
bucket, the Server-Timing header."""

from __future__ import annotations

import pytest

from prsm.performance.errors import (
    CircuitBreakerOpenError,
    DeadlineExceededError,
    NoCapableNodesError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from prsm.performance.monitoring import (
    REQUEST_STAGES,
    MetricsRegistry,
    RequestRecorder,
    classify_error,
    server_timing,
)


def recorder(**kw: object) -> RequestRecorder:
    return RequestRecorder(MetricsRegistry(), **kw)  # type: ignore[arg-type]


def test_one_request_lands_in_our_families_and_the_genai_ones() -> None:
    r = recorder(latency_objective=0.3)
    r.request("chat", "m", "t1", "n1", "ok", "", 0.25, 0.2, 11, 7, "miss", 2e-6, 1e-6)
    get = r.registry.registry.get_sample_value
    labels = {"operation": "chat", "model": "m", "outcome": "ok", "error_type": ""}
    assert get("prsm_request_duration_seconds_count", labels) == 1.0
    assert get("prsm_request_duration_seconds_bucket", {**labels, "le": "0.3"}) == 1.0
    up = {"operation": "chat", "model": "m", "node": "n1", "error_type": ""}
    assert get("prsm_upstream_duration_seconds_sum", up) == pytest.approx(0.2)
    tok = {"operation": "chat", "model": "m", "node": "n1"}
    assert get("prsm_tokens_sum", {**tok, "type": "input"}) == 11.0
    assert get("prsm_tokens_sum", {**tok, "type": "output"}) == 7.0
    assert get("prsm_cache_lookups_total", {"result": "miss"}) == 1.0
    assert get("prsm_request_stage_seconds_count", {"stage": "cache"}) == 1.0
    assert get("prsm_request_stage_seconds_count", {"stage": "route"}) == 1.0
    assert get("prsm_request_stage_seconds_sum", {"stage": "upstream"}) == pytest.approx(0.2)
    genai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "m"}  # fmt: skip
    assert get("gen_ai_server_request_duration_seconds_count", {**genai, "error_type": ""}) == 1
    assert (
        get(
            "gen_ai_server_request_duration_seconds_bucket",
            {**genai, "error_type": "", "le": "0.32"},
        )
        == 1.0
    )  # the semantic convention's own bounds
    assert get("gen_ai_client_operation_duration_seconds_count",
               {**genai, "server_address": "n1", "error_type": ""}) == 1.0  # fmt: skip
    assert get("gen_ai_client_token_usage_sum", {**genai, "gen_ai_token_type": "input"}) == 11
    assert r.take_tenants() == {"t1"}
    assert r.take_tenants() == set()


def test_operation_names_follow_the_semantic_convention() -> None:
    r = recorder()
    r.request("embedding", "e", "t", "n", "ok", "", 0.01)
    r.request("completion", "c", "t", "n", "ok", "", 0.01)
    text = r.registry.exposition().decode()
    assert 'gen_ai_operation_name="embeddings"' in text
    assert 'gen_ai_operation_name="text_completion"' in text


def test_labels_past_the_limit_become_other() -> None:
    r = recorder(label_limit=2)
    for model in ("a", "b", "c", "d"):
        r.request("chat", model, "t", f"n-{model}", "ok", "", 0.01)
    get = r.registry.registry.get_sample_value
    other = {"operation": "chat", "model": "_OTHER", "outcome": "ok", "error_type": ""}
    assert get("prsm_request_duration_seconds_count", other) == 2.0
    assert len(r.duration.children) == 3
    r.request("chat", "a", "t", None, "cache_hit", "", 0.001, cache="some-new-tier")
    assert get("prsm_cache_lookups_total", {"result": "_OTHER"}) == 1.0


def test_streams_and_stages() -> None:
    r = recorder()
    s = r.stream_children("chat", "m")
    assert r.stream_children("chat", "m") is s
    r.observe(s.ttft, 0.05)
    r.observe(s.itl, 0.01)
    r.observe(s.tpot, 0.012)
    r.gateway_stages(1e-4, 2e-6, 3e-5)
    r.stage(REQUEST_STAGES.index("queue"), 0.002)
    get = r.registry.registry.get_sample_value
    genai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "m"}  # fmt: skip
    assert get("gen_ai_server_time_to_first_token_seconds_count", genai) == 1.0
    assert get("gen_ai_server_time_per_output_token_seconds_count", genai) == 1.0
    assert get("gen_ai_client_operation_time_per_output_chunk_seconds_count", genai) == 1.0
    for stage in ("parse", "auth", "respond", "queue"):
        assert get("prsm_request_stage_seconds_count", {"stage": stage}) == 1.0


def test_two_recorders_on_one_registry_share_its_families() -> None:
    reg = MetricsRegistry()
    a, b = RequestRecorder(reg), RequestRecorder(reg)
    a.request("chat", "m", "t", "n", "ok", "", 0.1)
    b.request("chat", "m", "t", "n", "ok", "", 0.1)
    labels = {"operation": "chat", "model": "m", "outcome": "ok", "error_type": ""}
    assert reg.registry.get_sample_value("prsm_request_duration_seconds_count", labels) == 2.0


def test_classify_error_is_low_cardinality() -> None:
    assert classify_error(UpstreamTimeoutError("n", "slow")) == "timeout"
    assert classify_error(UpstreamUnavailableError("n", "down")) == "unavailable"
    assert classify_error(UpstreamError("n", "bad", status=503)) == "503"
    assert classify_error(UpstreamError("n", "odd")) == "upstream"
    assert classify_error(DeadlineExceededError(1.0, 2, None)) == "deadline"
    assert classify_error(CircuitBreakerOpenError("n", 3.0)) == "breaker_open"
    assert classify_error(NoCapableNodesError((), {})) == "no_capable_nodes"
    assert classify_error(KeyError("x")) == "_OTHER"


def test_server_timing_lists_measured_stages_in_milliseconds() -> None:
    stages = [4.1e-5, 2e-6, -1.0, 2e-6, -1.0, 0.0123, 2e-5]
    assert server_timing(stages, 0.0124) == (
        b"parse;dur=0.041, auth;dur=0.002, route;dur=0.002, upstream;dur=12.300, "
        b"respond;dur=0.020, total;dur=12.400"
    )
    assert server_timing([-1.0] * 7, 0.001) == b"total;dur=1.000"


def test_bad_objective_is_refused() -> None:
    with pytest.raises(ValueError, match="latency_objective"):
        recorder(latency_objective=0)
