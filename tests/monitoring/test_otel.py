"""OpenTelemetry trace export, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import pytest

from prsm.performance.monitoring import RequestTracer


def test_a_request_becomes_a_span_with_its_stages() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, StatusCode

    exporter = InMemorySpanExporter()
    tracer = RequestTracer(exporter=exporter, batch=False, service_name="gw-test")
    end = 2_000_000_000_000_000_000
    tracer.request(
        request_id="r1", kind="chat", model="m", duration=0.010,
        stages=[0.0001, 0.00001, 0.00002, 0.00001, -1.0, 0.009, 0.0002],
        node="n1", input_tokens=5, output_tokens=7, end_ns=end,
    )  # fmt: skip
    tracer.request(
        request_id="r2", kind="embedding", model="e", duration=0.5, stages=[-1.0] * 7,
        error="timeout", end_ns=end,
    )  # fmt: skip
    tracer.shutdown()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["chat m"]
    assert root.kind == SpanKind.SERVER
    assert root.attributes["gen_ai.operation.name"] == "chat"
    assert root.attributes["gen_ai.request.model"] == "m"
    assert root.attributes["gen_ai.usage.output_tokens"] == 7
    assert root.attributes["server.address"] == "n1"
    assert root.resource.attributes["service.name"] == "gw-test"
    assert root.end_time == end and root.start_time == end - 10_000_000
    children = [s for s in exporter.get_finished_spans() if s.parent is not None]
    names = [s.name for s in sorted(children, key=lambda s: s.start_time)]
    assert names == ["parse", "auth", "cache", "route", "upstream", "respond"]
    upstream = spans["upstream"]
    assert upstream.end_time - upstream.start_time == 9_000_000
    assert spans["respond"].end_time == end
    assert all(s.parent.span_id == root.context.span_id for s in children)
    failed = spans["embeddings e"]
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["error.type"] == "timeout"
