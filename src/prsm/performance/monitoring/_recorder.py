"""Recording each request on the hot path: what it was, how it ended, where its time went.

:class:`RequestRecorder` keeps plain families (:mod:`._plain`) in the injected registry, so a
recorded request costs a dictionary look-up and one or two appends of its observations to the
registry's batch (:mod:`._batch`), added up with numpy at the next read or every few hundred
requests (the goal: ≤ 2 µs a request, measured by ``benchmarks/monitoring.py``). The same
observations are exported twice at scrape time: under our ``prsm_*`` names and, through
:class:`~._plain.HistogramView`, under the OpenTelemetry GenAI semantic-convention names in
Prometheus form (their bucket bounds are among ours, so the merged counts are exact).

Families (labels in braces; every label set is bounded, see ``label_limit``):

* ``prsm_request_duration_seconds{operation,model,outcome,error_type}`` — what a caller of
  the pipeline waited; ``outcome`` is ``ok``, ``error`` or ``cache_hit``. Its bounds include
  the latency objective, so ``le="<objective>"`` counts requests within the SLA exactly.
  Also exported as ``gen_ai_server_request_duration_seconds``.
* ``prsm_upstream_duration_seconds{operation,model,node,error_type}`` — the answering node's
  time (``gen_ai_client_operation_duration_seconds``, ``server_address`` = the node).
* ``prsm_tokens{operation,model,node,type}`` — tokens per request, ``type`` ``input`` or
  ``output`` (``gen_ai_client_token_usage``); its ``_sum`` is the token throughput.
* ``prsm_request_stage_seconds{stage}`` — one per stage of :data:`STAGES`.
* ``prsm_time_to_first_token_seconds{operation,model}`` (``gen_ai_server_time_to_first_token
  _seconds``), ``prsm_time_per_output_token_seconds{operation,model}``
  (``gen_ai_server_time_per_output_token_seconds``) and ``prsm_inter_chunk_seconds
  {operation,model}``, one per chunk after the first (``gen_ai_client_operation_time_per_
  output_chunk_seconds``): streams only.
* ``prsm_cache_lookups_total{result}`` — ``miss`` or the tier that answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._labels import CACHE_RESULTS, OPERATIONS, OTHER, BoundedLabel, classify_error
from ._plain import LATENCY_BUCKETS, HistogramView, PlainHistogram
from ._registry import MetricsRegistry
from ._stages import REQUEST_STAGES, STAGES, server_timing

#: the package's names from this module (the stages and the error label are defined in
#: :mod:`._stages` and :mod:`._labels`)
__all__ = ["REQUEST_STAGES", "RequestRecorder", "classify_error", "server_timing"]


#: OpenTelemetry GenAI semantic conventions' advised bucket boundaries.
GENAI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GENAI_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
GENAI_TPOT_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
GENAI_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip


def union(*bounds: tuple[float, ...]) -> tuple[float, ...]:
    """Sorted distinct bounds of several bucket sets."""
    return tuple(sorted({float(b) for bs in bounds for b in bs}))


class _Children:
    """The children one (operation, model, node, outcome, error type) records into."""

    __slots__ = ("duration", "tokens_in", "tokens_out", "upstream")

    def __init__(
        self,
        duration: PlainHistogram,
        upstream: PlainHistogram | None,
        tokens_in: PlainHistogram,
        tokens_out: PlainHistogram,
    ) -> None:
        self.duration = duration
        self.upstream = upstream
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out


class _StreamChildren:
    __slots__ = ("itl", "tpot", "ttft")

    def __init__(self, ttft: PlainHistogram, tpot: PlainHistogram, itl: PlainHistogram) -> None:
        self.ttft = ttft
        self.tpot = tpot
        self.itl = itl


class RequestRecorder:
    """Records requests into ``registry`` (see the module docstring for the families).

    ``latency_objective`` (seconds) is added to the duration buckets so the SLA share is exact;
    ``label_limit`` bounds the distinct models and nodes seen in labels (the rest are
    ``_OTHER``); ``provider`` is the ``gen_ai_provider_name`` label (OpenAI-compatible nodes:
    ``openai``). ``tenants`` collects the tenants seen since the monitor last took them (for
    "active users").
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        *,
        latency_objective: float = 1.0,
        label_limit: int = 100,
        provider: str = "openai",
    ) -> None:
        if not latency_objective > 0:
            raise ValueError(f"latency_objective must be > 0 seconds, got {latency_objective!r}")
        self.registry = registry
        self.latency_objective = float(latency_objective)
        self.provider = provider
        self._models = BoundedLabel(label_limit)
        self._nodes = BoundedLabel(label_limit)
        self.duration_bounds = union(
            LATENCY_BUCKETS, GENAI_DURATION_BUCKETS, (self.latency_objective,)
        )
        self.duration = registry.plain(
            "histogram", "request_duration_seconds",
            "Time a caller of the pipeline waited, by outcome.",
            ("operation", "model", "outcome", "error_type"), self.duration_bounds,
        )  # fmt: skip
        self.upstream = registry.plain(
            "histogram", "upstream_duration_seconds", "Time of the answering node.",
            ("operation", "model", "node", "error_type"),
            union(LATENCY_BUCKETS, GENAI_DURATION_BUCKETS),
        )  # fmt: skip
        self.tokens = registry.plain(
            "histogram", "tokens", "Tokens per request, by type (input, output).",
            ("operation", "model", "node", "type"), GENAI_TOKEN_BUCKETS,
        )  # fmt: skip
        stage = registry.plain(
            "histogram", "request_stage_seconds", "Time of each stage of a request.", ("stage",)
        )
        self.stage_family = stage
        self.stage_children: tuple[PlainHistogram, ...] = tuple(stage.labels(s) for s in STAGES)
        (self._stage_parse, self._stage_auth, self._stage_cache, self._stage_route, _,
         self._stage_up, self._stage_respond) = self.stage_children  # fmt: skip
        self._batch = registry.batch
        self._rows = registry.batch.rows
        self._limit = registry.batch.limit
        self.ttft = registry.plain(
            "histogram", "time_to_first_token_seconds",
            "Streams: time from the request to its first chunk.", ("operation", "model"),
            union(LATENCY_BUCKETS, GENAI_TTFT_BUCKETS),
        )  # fmt: skip
        self.tpot = registry.plain(
            "histogram", "time_per_output_token_seconds",
            "Streams: time per output chunk after the first (decode speed).",
            ("operation", "model"), union(LATENCY_BUCKETS, GENAI_TPOT_BUCKETS),
        )  # fmt: skip
        self.itl = registry.plain(
            "histogram", "inter_chunk_seconds", "Streams: time between consecutive chunks.",
            ("operation", "model"), union(LATENCY_BUCKETS, GENAI_TPOT_BUCKETS),
        )  # fmt: skip
        lookups = registry.plain(
            "counter", "cache_lookups", "Cache look-ups, by the tier that answered (or miss).",
            ("result",),
        )  # fmt: skip
        self.cache_lookups = lookups
        self._cache_children: dict[str, Any] = {}
        self._children: dict[tuple[str, str, str | None, str, str], _Children] = {}
        self._streams: dict[tuple[str, str], _StreamChildren] = {}
        self.tenants: set[str] = set()
        self._register_views()

    # -- the OpenTelemetry GenAI names -----------------------------------------------------

    def _register_views(self) -> None:
        provider = self.provider

        def op(v: tuple[str, ...]) -> str:
            return OPERATIONS.get(v[0], v[0])

        def model(v: tuple[str, ...]) -> str:
            return v[1]

        def prov(v: tuple[str, ...]) -> str:
            return provider

        def label(i: int) -> Callable[[tuple[str, ...]], str]:
            return lambda v: v[i]

        common: dict[str, Callable[[tuple[str, ...]], str]] = {
            "gen_ai_operation_name": op,
            "gen_ai_provider_name": prov,
            "gen_ai_request_model": model,
        }
        views = [
            HistogramView(
                self.duration, "gen_ai_server_request_duration_seconds",
                "Generative AI server request duration such as time-to-last byte or last "
                "output token.", GENAI_DURATION_BUCKETS, {**common, "error_type": label(3)},
            ),
            HistogramView(
                self.upstream, "gen_ai_client_operation_duration_seconds",
                "GenAI operation duration.", GENAI_DURATION_BUCKETS,
                {**common, "server_address": label(2), "error_type": label(3)},
            ),
            HistogramView(
                self.tokens, "gen_ai_client_token_usage", "Number of input and output tokens used.",
                GENAI_TOKEN_BUCKETS, {**common, "gen_ai_token_type": label(3)},
            ),
            HistogramView(
                self.ttft, "gen_ai_server_time_to_first_token_seconds",
                "Time to generate first token for successful responses.", GENAI_TTFT_BUCKETS,
                common,
            ),
            HistogramView(
                self.tpot, "gen_ai_server_time_per_output_token_seconds",
                "Time per output token generated after the first token for successful "
                "responses.", GENAI_TPOT_BUCKETS, common,
            ),
            HistogramView(
                self.itl, "gen_ai_client_operation_time_per_output_chunk_seconds",
                "Time per output chunk, recorded for each chunk received after the first one.",
                GENAI_TPOT_BUCKETS, common,
            ),
        ]  # fmt: skip
        for view in views:
            if self.registry.get(view.name) is None:  # a second recorder on it shares them
                self.registry.register(view.name, view)

    # -- the hot path ----------------------------------------------------------------------

    def _new_children(
        self, key: tuple[str, str, str | None, str, str]
    ) -> tuple[tuple[str, str, str | None, str, str], _Children]:
        operation, model, node, outcome, err = key
        model = self._models(model)
        node_label = self._nodes(node) if node is not None else ""
        bounded = (operation, model, node_label if node is not None else None, outcome, err)
        children = self._children.get(bounded)
        if children is None:
            children = _Children(
                self.duration.labels(operation, model, outcome, err),
                self.upstream.labels(operation, model, node_label, err) if node else None,
                self.tokens.labels(operation, model, node_label, "input"),
                self.tokens.labels(operation, model, node_label, "output"),
            )
            self._children[bounded] = children
        return bounded, children

    def request(  # noqa: PLR0917  positional on purpose: half the call cost of keywords
        self,
        operation: str,
        model: str,
        tenant: str,
        node: str | None,
        outcome: str,
        error: str,
        duration: float,
        upstream: float = 0.0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache: str | None = None,
        cache_s: float = -1.0,
        route_s: float = -1.0,
    ) -> None:
        """Record one finished request.

        ``outcome`` is ``ok``, ``error`` (then ``error`` names what, see :func:`classify_error`;
        empty otherwise) or ``cache_hit``; ``duration`` is what the caller waited and
        ``upstream`` the answering ``node``'s time (also the ``upstream`` stage). ``cache`` is
        the look-up's result when the cache was consulted (the tier that answered, or
        ``"miss"``); ``cache_s`` and ``route_s`` the cache and route stages (negative: not
        measured).
        """
        key = (operation, model, node, outcome, error)
        c = self._children.get(key)
        if c is None:
            bounded, c = self._new_children(key)
            if bounded == key:
                self._children[key] = c
        # each observation is (the child's slot, the value), appended to the registry's batch;
        # the usual cases in one append each
        rows = self._rows
        u = c.upstream
        if u is None:
            rows += (c.duration.slot, duration)
        elif input_tokens and output_tokens:  # a node's answer with its usage
            rows += (c.duration.slot, duration, u.slot, upstream, self._stage_up.slot, upstream,
                     c.tokens_in.slot, input_tokens, c.tokens_out.slot, output_tokens)  # fmt: skip
            input_tokens = output_tokens = 0  # recorded
        else:
            rows += (c.duration.slot, duration, u.slot, upstream, self._stage_up.slot, upstream)
        if input_tokens:
            rows += (c.tokens_in.slot, input_tokens)
        if output_tokens:
            rows += (c.tokens_out.slot, output_tokens)
        if cache is not None:
            counter = self._cache_children.get(cache)
            if counter is None:
                counter = self._cache_child(cache)
            counter.value += 1.0
        if route_s >= 0.0:
            if cache_s >= 0.0:
                rows += (self._stage_cache.slot, cache_s, self._stage_route.slot, route_s)
            else:
                rows += (self._stage_route.slot, route_s)
        elif cache_s >= 0.0:
            rows += (self._stage_cache.slot, cache_s)
        self.tenants.add(tenant)
        if len(rows) >= self._limit:
            self._batch.flush()

    def stage(self, index: int, seconds: float) -> None:
        """Record ``seconds`` spent in stage ``STAGES[index]`` (``upstream`` is recorded by
        :meth:`request`)."""
        rows = self._rows
        rows += (self.stage_children[index].slot, seconds)
        if len(rows) >= self._limit:
            self._batch.flush()

    def gateway_stages(self, parse: float, auth: float, respond: float) -> None:
        """Record the gateway's own stages of one request."""
        rows = self._rows
        rows += (self._stage_parse.slot, parse, self._stage_auth.slot, auth,
                 self._stage_respond.slot, respond)  # fmt: skip
        if len(rows) >= self._limit:
            self._batch.flush()

    def _cache_child(self, result: str) -> Any:
        child = self._cache_children.get(result)
        if child is None:
            name = result if result in CACHE_RESULTS else OTHER
            child = self.cache_lookups.labels(name)
            if name == result:
                self._cache_children[result] = child
        return child

    def stream_children(self, operation: str, model: str) -> _StreamChildren:
        """The children a stream of (``operation``, ``model``) records into (keep them for its
        chunks)."""
        key = (operation, model)
        s = self._streams.get(key)
        if s is None:
            m = self._models(model)
            s = self._streams.get((operation, m))
            if s is None:
                s = _StreamChildren(
                    self.ttft.labels(operation, m),
                    self.tpot.labels(operation, m),
                    self.itl.labels(operation, m),
                )
                self._streams[(operation, m)] = s
            if m == model:
                self._streams[key] = s
        return s

    def observe(self, h: PlainHistogram, seconds: float) -> None:
        """One observation into a stream child (``ttft``, ``tpot``, ``itl``) or another of
        this recorder's children (``h.observe`` inline: one call less a chunk)."""
        rows = self._rows
        rows += (h.slot, seconds)
        if len(rows) >= self._limit:
            self._batch.flush()

    def take_tenants(self) -> set[str]:
        """The tenants seen since the last call (the monitor calls it once per interval)."""
        seen, self.tenants = self.tenants, set()
        return seen
