"""``LeaderElector``: the thin async driver of :func:`~._election.decide`.

Every ``retry_period`` (sooner, at its renew deadline, while it leads) it reads the Lease,
asks the pure decision what to write, writes it (create, or replace at the version read) and
folds the outcome into its state; a 409 conflict or an unreachable API only counts (and, at
the renew deadline, makes the leader step down). While it leads, each Lease call is given up
at its renew deadline (on the injected clock), so a hung API call cannot keep a leader past
it. Whenever leading starts or stops, ``on_change(leading)`` is awaited (the scaler starts or
stops). :meth:`close` (on shutdown) hands the Lease back so that a standby takes over at its
next round instead of after ``lease_duration``.

Metrics: ``prsm_scaling_leader`` (1 while leading), ``prsm_scaling_leader_transitions_total
{to="leader"|"standby"}`` and ``prsm_scaling_lease_errors_total{kind="conflict"|"error"}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from .._awaiting import stop_task
from ..clock import Clock
from ..errors import ScalingError
from ..monitoring._registry import MetricsRegistry
from ._election import (
    ElectionState,
    LeaderElectionSettings,
    LeaseRecord,
    Write,
    decide,
    failed,
    released,
    written,
)
from ._lease_store import LeaseConflict

log = logging.getLogger("prsm.performance.scaling")
T = TypeVar("T")


class LeaseStore(Protocol):
    """Where the Lease lives (:class:`~._lease_store.KubernetesLeaseStore`)."""

    async def get(self) -> LeaseRecord | None: ...

    async def create(self, record: LeaseRecord) -> LeaseRecord: ...

    async def replace(self, record: LeaseRecord) -> LeaseRecord: ...


class LeaderElector:
    """See the module docstring."""

    def __init__(
        self,
        store: LeaseStore,
        settings: LeaderElectionSettings,
        identity: str,
        url: str,
        *,
        clock: Clock,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.identity = identity
        self.url = url
        self.clock = clock
        self.on_change = on_change
        self.state = ElectionState()
        self.last_error: str | None = None
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        #: called after a round in which who leads (as this pod sees it) changed
        self.listeners: list[Callable[[], None]] = []
        self._told: tuple[bool, str] = (False, "")
        registry = metrics if metrics is not None else MetricsRegistry()
        self._m_leader = registry.gauge("scaling_leader", "1 while this pod leads the scaling.")
        moves = registry.plain(
            "counter", "scaling_leader_transitions", "This pod's changes of role.", ["to"]
        )
        self._m_moves = {to: moves.labels(to) for to in ("leader", "standby")}
        errors = registry.plain("counter", "scaling_lease_errors",
                                "Failed Lease reads and writes, by kind.", ["kind"])  # fmt: skip
        self._m_errors = {kind: errors.labels(kind) for kind in ("conflict", "error")}
        self._m_leader.set(0)

    @property
    def leading(self) -> bool:
        """Whether this pod may act as the leader now (within its renew deadline)."""
        return self.state.leads(self.clock.monotonic(), self.settings)

    @property
    def leader_url(self) -> str:
        """The current leader's URL as last read ("" if none is known)."""
        if self.leading:
            return self.url
        seen = self.state.observed
        if seen is None or not seen.holder or seen.holder == self.identity:
            return ""
        expires = self.state.expires()
        return seen.url if expires is not None and self.clock.monotonic() < expires else ""

    async def round(self) -> None:
        """Read, decide, write; the outcome folded into :attr:`state`; the listeners told if
        who leads changed."""
        self.rounds += 1
        try:
            await self._round()
        finally:
            seen = (self.leading, self.leader_url)
            if seen != self._told:
                self._told = seen
                for listener in self.listeners:
                    try:  # the election goes on whatever a listener does
                        listener()
                    except Exception:
                        log.exception("a listener of the leader election failed")

    async def _round(self) -> None:
        try:
            lease = await self._bounded(self.store.get())
        except (ScalingError, TimeoutError) as exc:
            await self._failed("error", str(exc))
            return
        clock = self.clock
        now, wall = clock.monotonic(), clock.time()
        decision, state = decide(
            lease, self.state, self.settings, me=self.identity, url=self.url, now=now, wall=wall
        )
        await self._set(state)
        if decision.write is Write.NONE or decision.record is None:
            return
        sent = clock.monotonic()
        write = self.store.create if decision.write is Write.CREATE else self.store.replace
        try:
            record = await self._bounded(write(decision.record))
        except LeaseConflict as exc:
            await self._failed("conflict", str(exc))
            return
        except (ScalingError, TimeoutError) as exc:
            await self._failed("error", str(exc))
            return
        self.last_error = None
        if decision.write is not Write.RENEW:
            log.info("%s took the Lease (%s)", self.identity, decision.reason)
        await self._set(written(record, self.identity, sent, clock.monotonic(), self.state))

    async def _bounded(self, call: Awaitable[T]) -> T:
        """``call``; while leading, given up (:class:`TimeoutError`) at the renew deadline on
        :attr:`clock`, so that a hung API call cannot keep a leader past it."""
        if not self.state.leading or self.state.renewed_at is None:
            return await call
        left = self.state.renewed_at + self.settings.renew_deadline - self.clock.monotonic()
        work = asyncio.ensure_future(call)
        deadline = asyncio.ensure_future(self.clock.sleep(max(0.0, left)))
        try:
            await asyncio.wait({work, deadline}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            deadline.cancel()
        if not work.done():
            await stop_task(work)
            raise TimeoutError("the renew deadline passed during a Lease call")
        return work.result()

    async def _failed(self, kind: str, why: str) -> None:
        self._m_errors[kind].inc()
        self.last_error = why
        if self.state.leading:
            log.warning("%s could not renew its Lease: %s", self.identity, why)
        await self._set(failed(self.clock.monotonic(), self.state, self.settings))

    async def _set(self, state: ElectionState) -> None:
        was, self.state = self.state.leading, state
        if state.leading == was:
            return
        self._m_leader.set(1 if state.leading else 0)
        self._m_moves["leader" if state.leading else "standby"].inc()
        if state.leading:
            log.warning("%s leads the scaling from now on", self.identity)
        else:
            log.warning("%s stopped leading the scaling (%s)", self.identity, self.last_error
                        or "another pod holds the Lease")  # fmt: skip
        if self.on_change is not None:
            await self.on_change(state.leading)

    def delay(self) -> float:
        """Until the next round: ``retry_period``, or the renew deadline if sooner."""
        wait = self.settings.retry_period
        if self.state.leading and self.state.renewed_at is not None:
            left = self.state.renewed_at + self.settings.renew_deadline - self.clock.monotonic()
            wait = min(wait, max(0.0, left))
        return wait

    async def run(self) -> None:
        """Rounds until cancelled."""
        while True:
            await self.round()
            await self.clock.sleep(self.delay())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"leader election {self.identity}")

    async def close(self, release: bool = True) -> None:
        """Stop the rounds; with ``release``, a leader hands the Lease back (best effort: if
        that fails, the standby takes over when the lease expires)."""
        task, self._task = self._task, None
        await stop_task(task)
        seen = self.state.observed
        if release and self.state.leading and seen is not None and seen.holder == self.identity:
            await self._set(ElectionState(seen, self.state.observed_at, False, None))
            try:
                try:
                    await self.store.replace(released(seen, self.clock.time()))
                except LeaseConflict:  # a renewal the stop cut short may have landed: read again
                    current = await self.store.get()
                    if current is None or current.holder != self.identity:
                        return  # another candidate holds it already
                    await self.store.replace(released(current, self.clock.time()))
            except ScalingError as exc:
                log.warning("%s could not release its Lease (it expires in %d s): %s",
                            self.identity, seen.duration, exc)  # fmt: skip
            else:
                log.info("%s released the Lease", self.identity)

    def snapshot(self) -> dict[str, Any]:
        """For ``/admin/scaling``: who leads, this pod's role, the Lease as last read."""
        seen = self.state.observed
        return {"identity": self.identity, "leading": self.leading,
                "holder": seen.holder if seen is not None else None,
                "leader_url": self.leader_url, "transitions": seen.transitions if seen else None,
                "lease_duration": self.settings.lease_duration,
                "renew_deadline": self.settings.renew_deadline,
                "retry_period": self.settings.retry_period, "rounds": self.rounds,
                "last_error": self.last_error}  # fmt: skip
