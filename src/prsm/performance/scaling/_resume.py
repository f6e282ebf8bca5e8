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
  last decision, or for more than ``max_replicas``: not restored;
- ``after_takeover``: records made at or after the take-over (the old leader's clock ahead
  of the new one's): not replayed (:meth:`Replayer.drop_late`);
- ``too_close``: a record less than half an interval before the next (the old leader's
  last, just before the take-over, or a step asked for out of turn; a carried pair a
  standby merged): not replayed nor served on (a standby drops such records too,
  :func:`~._replay.spaced`; counted by the loop);
- ``sessions``: what a record's decision read of the sessions, over another window than
  this loop's session tracker's: replayed as if it read none.

A replay is counted (``prsm_scaling_replays_total{outcome}``) ``ok``, or ``diverged`` when
one of its decisions — after the policy's ``warmup`` from the first, its windows filled —
asked for other replicas than the record says the old leader did (logged, the first named),
or ``partial`` when it cannot match the old leader's: its records begin after the old
leader's last fit (the fresh state fits on another history), the carried history begins
after what that fit read, a decision is missing (a gap of more than 1.5 intervals: a step
that failed there, or records lost), its last records were made after the take-over, a
record's reading of the sessions was refused, the policy reads the users' sessions (the
session floor) and the last leader's were not carried (:mod:`._session_carry`: its answers
had none, or they were refused), or the floor's error headroom is on and the records do not
reach back far enough to rebuild its errors (:func:`~._replay.errors_exact_from`: an older
leader's, which kept only the forecast's :attr:`~._predictive.PredictivePolicy.memory`, or a
younger leader's; its decisions are compared from where they are rebuilt).

A replay that runs past ``budget`` seconds (real time, checked before each decision) is
abandoned: ``prsm_scaling_replays_total{outcome="failed"}``,
and the leader goes on from its fresh state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..monitoring._registry import MetricsRegistry
from ._replay import StepRecord, errors_exact_from, prime, refits, replay, replay_start
from ._types import LoadSeries, ScalingPolicy

log = logging.getLogger("prsm.performance.scaling")

#: decisions replayed per worker-thread call (the event loop runs between chunks)
REPLAY_CHUNK = 128
#: the longest a replay may take by default (real seconds)
REPLAY_BUDGET = 60.0
REFUSED = ("concurrency", "refit", "pending_up", "after_takeover", "too_close", "sessions")


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
        session_window: tuple[float, float] | None = None,
    ) -> None:
        self.policy = policy
        self.deployment = deployment
        self.span = span
        self.concurrency = concurrency
        self.max_replicas = max_replicas
        self.budget = budget
        self.session_window = session_window  # the session tracker's
        #: whether the last leader's users' sessions were carried (:mod:`._session_carry`)
        self.sessions_carried = False
        self._unread = 0  # records whose reading of the sessions was refused
        self._errors: tuple[float, bool] | None = None  # (rebuilt from, exactly): the floor's
        #: the last replay: decisions replayed, from when, seconds it took (``None``: none)
        self.replayed: dict[str, Any] | None = None
        self._late = 0  # records of the carried ones made after the take-over (not replayed)
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

    def refuse(self, reason: str, count: int) -> None:
        """Count ``count`` records (or parts) refused for ``reason`` (one of :data:`REFUSED`)."""
        self._m_refused.labels(self.deployment, reason).inc(count)

    def drop_late(self, dropped: int, since: float) -> None:
        """``dropped`` records made at or after the take-over at ``since``: counted, logged."""
        self._late = dropped
        if dropped:
            self.refuse("after_takeover", dropped)
            log.warning("%d of the last leader's decision record(s) were made at or after this "
                        "pod took over (%.3f; its clock ahead of this one's): not replayed",
                        dropped, since)  # fmt: skip

    def _partial(
        self, records: Sequence[StepRecord], start: int, load: LoadSeries | None
    ) -> list[str]:
        """Why the replay cannot match the old leader's decisions ([]: it can)."""
        why = []
        first = records[start]
        if start == 0 and (first.fitted_at is not None or first.burst_fitted_at is not None):
            why.append(f"its records begin ({first.now:.0f}) after its last fit")
        if load is not None and first.load_start is not None and load.start > first.load_start:
            why.append(f"the carried history starts at {load.start:.0f}, after the "
                       f"{first.load_start:.0f} its fit read")  # fmt: skip
        step = self.policy.interval
        gaps = [a.now for a, b in itertools.pairwise(records[start:]) if b.now - a.now > 1.5 * step]
        if gaps:
            why.append(f"{len(gaps)} gap(s) in its records (the first after {gaps[0]:.0f})")
        if self._late:
            why.append(f"its last {self._late} record(s) were made after the take-over")
        if self._unread:
            why.append(f"{self._unread} record(s)' reading of the sessions was refused")
        if getattr(self.policy, "reads_sessions", False) and not self.sessions_carried:
            why.append("the session floor reads the users' sessions, and the last leader's "
                       "were not carried")  # fmt: skip
        if self._errors is not None and not self._errors[1]:
            why.append(f"the session floor's error headroom reads forecasts made before its "
                       f"records (they begin at {records[0].now:.0f}; its errors are rebuilt "
                       f"from {self._errors[0]:.0f})")  # fmt: skip
        return why

    def _usable(self, records: Sequence[StepRecord]) -> tuple[StepRecord, ...]:
        oldest = records[-1].now - self.span
        kept = tuple(r for r in records if r.now >= oldest)
        other = [i for i, r in enumerate(kept) if r.concurrency != self.concurrency]
        if other:
            self.refuse("concurrency", len(other))
            log.warning("%d of the last leader's decision record(s) are of another concurrency "
                        "than this loop's (%d, e.g. %d): only the %d after the last of them are "
                        "replayed", len(other), self.concurrency, kept[other[-1]].concurrency,
                        len(kept) - other[-1] - 1)  # fmt: skip
            kept = kept[other[-1] + 1 :]
        window = self.session_window
        unread = [window is not None and r.sessions is not None and r.sessions[2:] != window
                  for r in kept]  # fmt: skip
        self._unread = sum(unread)
        if self._unread:
            self.refuse("sessions", self._unread)
            log.warning("%d of the last leader's decision record(s) read the sessions over "
                        "another window than this tracker's %s: replayed as if they read "
                        "none", self._unread, window)  # fmt: skip
            kept = tuple(dataclasses.replace(r, sessions=None) if u else r
                         for r, u in zip(kept, unread, strict=True))  # fmt: skip
        return kept

    def _pending(self, last: StepRecord) -> tuple[float, int] | None:
        pending = last.pending_up
        if pending is None:
            return None
        asked, target = pending
        too_many = self.max_replicas is not None and target > self.max_replicas
        if not last.now - self.span <= asked <= last.now or too_many:
            self.refuse("pending_up", 1)
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
            self.refuse("refit", refused)
            log.warning("%d refit(s) the last leader's records claim came less than %.0f s after "
                        "the last one of their kind: replayed without refitting", refused,
                        gap)  # fmt: skip
        began = time.perf_counter()  # real time: what the replay costs this process
        warmup = float(getattr(self.policy, "warmup", 0.0))
        compare_from = records[start].now + warmup
        span = getattr(self.policy, "session_errors_span", None)
        step = self.policy.interval
        self._errors = None if span is None else errors_exact_from(records, span, step)
        if self._errors is not None:  # (decisions whose headroom is not rebuilt may differ)
            compare_from = max(compare_from, self._errors[0])
        diverged: list[tuple[float, int, int]] = []
        try:
            state = self.policy.initial_state()
            for i in range(0, start if span is not None else 0, REPLAY_CHUNK):  # the errors
                work = functools.partial(prime, deadline=began + self.budget)
                chunk = records[i : min(i + REPLAY_CHUNK, start)]
                state = await asyncio.to_thread(work, self.policy, chunk, state)
            for i in range(start, len(records), REPLAY_CHUNK):
                j = min(i + REPLAY_CHUNK, len(records))
                chunk, refit = records[i:j], plan[i - start : j - start]
                work = functools.partial(replay, compare_from=compare_from,
                                         deadline=began + self.budget)  # fmt: skip
                state, differ = await asyncio.to_thread(
                    work, self.policy, chunk, load, state, refit
                )
                diverged += differ
        except Exception:
            self._outcome("failed")
            log.exception("replaying the last leader's %d decision(s) failed: the new leader "
                          "starts from a fresh state", len(records) - start)  # fmt: skip
            return None
        took = time.perf_counter() - began
        partial = self._partial(records, start, load)
        if diverged:
            self._outcome("diverged")
            at, theirs, ours = diverged[0]
            log.warning("%d replayed decision(s) differ from the last leader's (the first at "
                        "%.0f: %d replicas, it asked for %d)%s", len(diverged), at, ours, theirs,
                        f"; {'; '.join(partial)}" if partial else "")  # fmt: skip
        elif partial:
            self._outcome("partial")
            log.warning("the replay cannot match the last leader's decisions until its next "
                        "refit: %s", "; ".join(partial))  # fmt: skip
        else:
            self._outcome("ok")
        self.replayed = {"decisions": len(records) - start, "held": len(records),
                         "from": records[start].now, "until": records[-1].now,
                         "diverged": len(diverged), "partial": partial,
                         "seconds": round(took, 4)}  # fmt: skip
        self._m_seconds.labels(self.deployment).set(took)
        log.info("the new leader replayed the last leader's %d decision(s) (%.0f s of them) in "
                 "%.3f s", len(records) - start, records[-1].now - records[start].now,
                 took)  # fmt: skip
        return Resumed(state, self._pending(records[-1]))
