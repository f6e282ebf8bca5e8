"""Recording a stream from inside the streaming driver (:func:`~._stream.run_stream`).

What :class:`~prsm.performance.monitoring._record.RecordedStream` records, measured the same
way (its clock, its points in time; its end by the same function, ``record_stream_end``),
without a stream layer of its own: the driver calls :meth:`StreamMeter.chunk` as it hands
each chunk on, and :meth:`~StreamMeter.ok` or :meth:`~StreamMeter.failed` when the stream
ends. That saves a coroutine and an awaited call per chunk, and the wrapper's own
end-of-stream exception. A stream the caller abandons (closed or cancelled before its end) is
not recorded, as with the wrapper. Streams answered from the cache keep the wrapper (the
cache's stream says which tier answered).
"""

from __future__ import annotations

import time

from ..monitoring._record import record_failure, record_stream_end
from ..monitoring._recorder import RequestRecorder
from ..types import AIRequest, RequestKind

_now = time.perf_counter
#: each request kind's metric label (an enum's ``value`` is a property: a table is cheaper)
_KIND_LABELS = {kind: kind.value for kind in RequestKind}


class StreamMeter:
    """One stream's recording: time to the first chunk, each gap between chunks, and the
    output size (its ``data:`` events less the final ``[DONE]``), as the wrapper counts it."""

    __slots__ = ("events", "first", "kind", "last", "line", "recorder", "request", "s", "start")

    def __init__(self, recorder: RequestRecorder, request: AIRequest) -> None:
        self.recorder = recorder
        self.request = request
        kind = self.kind = _KIND_LABELS[request.kind]
        self.s = recorder.stream_children(kind, request.model)
        self.start = _now()
        self.first = self.last = 0.0
        self.events = 0
        self.line = True  # the next chunk begins a line

    def chunk(self, data: bytes) -> None:
        """``data`` goes to the caller now."""
        now = _now()
        if self.first:
            self.recorder.observe(self.s.itl, now - self.last)
        else:
            self.first = now
            self.recorder.observe(self.s.ttft, now - self.start)
        self.last = now
        # ``data:`` at the start of a line only: the answer's text may hold ``data:`` too
        # (within its JSON string; a newline there is escaped, so ``\ndata:`` begins a line)
        self.events += data.count(b"\ndata:") + (self.line and data.startswith(b"data:"))
        self.line = data.endswith(b"\n")

    #: the stream ended well (:func:`~prsm.performance.monitoring._record.record_stream_end`,
    #: shared with the wrapper; the method itself, so no call of its own per stream)
    ok = record_stream_end

    def failed(self, exc: BaseException) -> None:
        """The pipeline failed the stream with ``exc``."""
        record_failure(self.recorder, self.request, exc, _now() - self.start)
