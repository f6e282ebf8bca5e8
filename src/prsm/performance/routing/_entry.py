"""One registered node's entry in the :class:`~._registry.NodeRegistry`: its spec, admin
state, reported load and in-flight count."""

from __future__ import annotations

from dataclasses import replace

from ._node import NodeMetrics, NodeSpec, NodeState

_NO_READING = NodeMetrics()


class NodeEntry:
    """One registered node: its spec, admin state, reported load and in-flight count.

    ``metrics`` is the last good reading, taken at ``reported_at`` (monotonic seconds;
    ``None``: never) from ``source`` (``"reported"`` for readings pushed by callers,
    ``"worker"``, ``"vllm"``, ``"tgi"``…). ``poll_error`` and ``poll_failures`` describe the
    last failed polls since the last good one; ``polled_at`` is the last poll's time.
    ``seq`` orders nodes by registration.
    """

    __slots__ = (
        "capacity",
        "caps",
        "concurrency",
        "id",
        "in_flight",
        "metrics",
        "poll_error",
        "poll_failures",
        "polled_at",
        "reported_at",
        "seq",
        "source",
        "spec",
        "state",
    )

    def __init__(self, spec: NodeSpec, seq: int = 0) -> None:
        self.id = spec.id
        self.seq = seq
        self.state = NodeState.ACTIVE
        self.metrics = _NO_READING
        self.reported_at: float | None = None
        self.source = "none"
        self.poll_error: str | None = None
        self.poll_failures = 0
        self.polled_at: float | None = None
        self.in_flight = 0
        self.set_spec(spec)

    def set_spec(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.caps = spec.all_capabilities
        self.capacity = spec.capacity
        self.concurrency = spec.max_concurrency

    @property
    def full(self) -> bool:
        """True when it holds as many requests as it can run and queue."""
        return self.in_flight >= self.capacity

    def live_metrics(self) -> NodeMetrics:
        """Its last reported metrics with this process's in-flight count."""
        return replace(self.metrics, in_flight=self.in_flight)
