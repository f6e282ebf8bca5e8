"""A new leader's replay of the last leader's decision records (:mod:`._replay`), guarded.

The records come from another pod (:mod:`._warm`: checked field by field there); what a
replay costs and what it restores is bounded here, each refusal counted
(``prsm_scaling_replay_refused_records_total{reason}``) and logged:

- ``concurrency``: a record of another concurrency than this loop's (the Erlang C sizing
  loops over replicas × concurrency): only the records after the last such are replayed;
- ``refit``: a refit claimed less than the policy's ``refit_gap`` after the last one of its
  kind honoured (:func:`~._replay.refits`; a genuine leader refits at most every
  ``refit_interval``): decided without refitting;
- ``pending_up``: a pending scale-up asked outside the last ``span`` seconds or after the
  last decision, or for more than ``max_replicas``: not restored.

A replay that runs past ``budget`` seconds (real time, checked between chunks of
:data:`REPLAY_CHUNK` decisions) is abandoned: ``prsm_scaling_replays_total{outcome="failed"}``,
and the leader goes on from its fresh state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..monitoring._registry import MetricsRegistry
from ._replay import StepRecord, refits, replay, replay_start
from ._types import LoadSeries, ScalingPolicy

log = logging.getLogger("prsm.performance.scaling")

#: decisions replayed per worker-thread call (the event loop runs between chunks)
REPLAY_CHUNK = 128
#: the longest a replay may take by default (real seconds)
REPLAY_BUDGET = 60.0
REFUSED = ("concurrency", "refit", "pending_up")


class ReplayAbandoned(RuntimeError):
    """A replay that ran past its time budget."""


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a replay restores: the policy's state and the last leader's pending scale-up."""

    state: Any
    pending_up: tuple[float, int] | None


class Replayer:
    """See the module docstring; one per loop."""

    def __init__(
        self,
        policy: ScalingPolicy[Any],
        deployment: str,
        metrics: MetricsRegistry,
        *,
        span: float,
        concurrency: int,
        max_replicas: int | None,
        budget: float = REPLAY_BUDGET,
    ) -> None:
        self.policy = policy
        self.deployment = deployment
        self.span = span
        self.concurrency = concurrency
        self.max_replicas = max_replicas
        self.budget = budget
        #: the last replay: decisions replayed, from when, seconds it took (``None``: none)
        self.replayed: dict[str, Any] | None = None
        labels = ["deployment"]
        self._m_replays = metrics.counter(
            "scaling_replays", "A new leader's replays of the last one's decisions",
            ["deployment", "outcome"],
        )  # fmt: skip
        self._m_seconds = metrics.gauge(
            "scaling_replay_seconds", "How long the last replay took (real time)", labels
        )
        self._m_refused = metrics.counter(
            "scaling_replay_refused_records",
            "Parts of the last leader's decision records a replay refused, by reason",
            ["deployment", "reason"],
        )

    def _outcome(self, outcome: str) -> None:
        self._m_replays.labels(self.deployment, outcome).inc()

    def _refuse(self, reason: str, count: int) -> None:
        self._m_refused.labels(self.deployment, reason).inc(count)

    def _usable(self, records: Sequence[StepRecord]) -> tuple[StepRecord, ...]:
        oldest = records[-1].now - self.span
        kept = tuple(r for r in records if r.now >= oldest)
        other = [i for i, r in enumerate(kept) if r.concurrency != self.concurrency]
        if other:
            self._refuse("concurrency", len(other))
            log.warning("%d of the last leader's decision record(s) are of another concurrency "
                        "than this loop's (%d, e.g. %d): only the %d after the last of them are "
                        "replayed", len(other), self.concurrency, kept[other[-1]].concurrency,
                        len(kept) - other[-1] - 1)  # fmt: skip
            kept = kept[other[-1] + 1 :]
        return kept

    def _pending(self, last: StepRecord) -> tuple[float, int] | None:
        pending = last.pending_up
        if pending is None:
            return None
        asked, target = pending
        too_many = self.max_replicas is not None and target > self.max_replicas
        if not last.now - self.span <= asked <= last.now or too_many:
            self._refuse("pending_up", 1)
            log.warning("the last leader's pending scale-up (asked at %.0f for %d) is not "
                        "restored: not within its last %.0f s of decisions (until %.0f) or over "
                        "%s replicas", asked, target, self.span, last.now,
                        self.max_replicas)  # fmt: skip
            return None
        return pending

    async def run(self, records: Sequence[StepRecord], load: LoadSeries | None) -> Resumed | None:
        """Replay ``records`` from a fresh state (from the first decision at which the old
        leader refitted); ``None`` where nothing is restored (counted, logged)."""
        if not records:
            return None
        records = self._usable(records)
        if not records:
            self._outcome("failed")
            log.warning("none of the last leader's decision records can be replayed: the new "
                        "leader starts from a fresh state")  # fmt: skip
            return None
        start = replay_start(records)
        gap = float(getattr(self.policy, "refit_gap", 0.0))
        plan, refused = refits(records, start, gap)
        if refused:
            self._refuse("refit", refused)
            log.warning("%d refit(s) the last leader's records claim came less than %.0f s after "
                        "the last one of their kind: replayed without refitting", refused,
                        gap)  # fmt: skip
        began = time.perf_counter()  # real time: what the replay costs this process
        try:
            state = self.policy.initial_state()
            for i in range(start, len(records), REPLAY_CHUNK):
                if i > start and time.perf_counter() - began > self.budget:
                    raise ReplayAbandoned(f"over its budget of {self.budget:g} s after "
                                          f"{i - start} decision(s)")  # fmt: skip
                j = min(i + REPLAY_CHUNK, len(records))
                chunk, refit = records[i:j], plan[i - start : j - start]
                state = await asyncio.to_thread(replay, self.policy, chunk, load, state, refit)
        except Exception:
            self._outcome("failed")
            log.exception("replaying the last leader's %d decision(s) failed: the new leader "
                          "starts from a fresh state", len(records) - start)  # fmt: skip
            return None
        took = time.perf_counter() - began
        first = records[start].load_start if start < len(records) else None
        if load is not None and first is not None and load.start > first:
            self._outcome("partial")
            log.warning("the carried history starts at %.0f, after the %.0f the last leader's fit "
                        "read: the replayed forecast differs from its own until the next refit",
                        load.start, first)  # fmt: skip
        self.replayed = {"decisions": len(records) - start, "held": len(records),
                         "from": records[start].now, "until": records[-1].now,
                         "seconds": round(took, 4)}  # fmt: skip
        self._outcome("ok")
        self._m_seconds.labels(self.deployment).set(took)
        log.info("the new leader replayed the last leader's %d decision(s) (%.0f s of them) in "
                 "%.3f s", len(records) - start, records[-1].now - records[start].now,
                 took)  # fmt: skip
        return Resumed(state, self._pending(records[-1]))
