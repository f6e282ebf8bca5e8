"""Optional OpenTelemetry trace export: each request as a span, its stages as child spans.

Off by default (``monitoring.traces``); needs the ``otel`` extra (``opentelemetry-sdk`` and
``opentelemetry-exporter-otlp-proto-http``). Spans follow the GenAI semantic conventions: the
request span is named ``"{gen_ai.operation.name} {gen_ai.request.model}"``, kind ``SERVER``,
with ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens``/``output_tokens``, ``server.address`` (the node) and
``error.type``; each stage (``parse``, ``auth``, ``cache``, ``route``, ``queue``,
``upstream``, ``respond``) is a child span with its measured duration, laid end to end in
that order from the request's start (``respond`` ends with the request).

Spans are made when the request has finished, from the timings it already recorded, and
handed to a ``BatchSpanProcessor`` (export happens on the SDK's own thread): the request
path pays the span objects, nothing on the network.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..errors import DependencyMissingError
from ._labels import OPERATIONS
from ._stages import RESPOND, STAGES


class RequestTracer:
    """Exports finished requests as spans (see the module docstring).

    ``exporter`` is any OpenTelemetry ``SpanExporter`` (default: OTLP over HTTP to
    ``endpoint``, or the SDK's ``OTEL_EXPORTER_OTLP_*`` settings); ``batch=False`` exports
    each span at once (tests with the SDK's ``InMemorySpanExporter``).
    """

    def __init__(
        self,
        *,
        service_name: str = "prsm-gateway",
        provider_name: str = "openai",
        endpoint: str | None = None,
        exporter: Any = None,
        batch: bool = True,
    ) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError as exc:
            raise DependencyMissingError(
                "opentelemetry-sdk", "otel", "OpenTelemetry trace export (monitoring.traces)"
            ) from exc
        if exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError as exc:
                raise DependencyMissingError(
                    "opentelemetry-exporter-otlp-proto-http", "otel", "OTLP trace export"
                ) from exc
            exporter = OTLPSpanExporter(endpoint=endpoint)
        self._trace = trace
        self.provider_name = provider_name
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("prsm.performance")
        self.spans = 0

    def request(
        self,
        *,
        request_id: str,
        kind: str,
        model: str,
        duration: float,
        stages: Sequence[float],
        node: str | None = None,
        error: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
        end_ns: int | None = None,
    ) -> None:
        """One finished request: ``duration`` seconds ending at ``end_ns`` (default: now),
        ``stages`` the seconds of each of :data:`~._stages.STAGES` (negative: not
        measured)."""
        trace = self._trace
        end = time.time_ns() if end_ns is None else end_ns
        start = end - int(duration * 1e9)
        operation = OPERATIONS.get(kind, kind)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": self.provider_name,
            "gen_ai.request.model": model,
            "prsm.request_id": request_id,
        }
        if node:
            attrs["server.address"] = node
        if input_tokens:
            attrs["gen_ai.usage.input_tokens"] = input_tokens
        if output_tokens:
            attrs["gen_ai.usage.output_tokens"] = output_tokens
        if error:
            attrs["error.type"] = error
        span = self.tracer.start_span(
            f"{operation} {model}",
            kind=trace.SpanKind.SERVER,
            start_time=start,
            attributes=attrs,
        )
        ctx = trace.set_span_in_context(span)
        at = start
        for index, (name, seconds) in enumerate(zip(STAGES, stages, strict=False)):
            if seconds < 0:
                continue
            took = int(seconds * 1e9)
            begin = end - took if index == RESPOND else at
            child = self.tracer.start_span(name, context=ctx, start_time=begin)
            child.end(end_time=begin + took)
            at = begin + took
        if error:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end(end_time=end)
        self.spans += 1

    def shutdown(self) -> None:
        """Export what is queued and stop."""
        self.provider.shutdown()
