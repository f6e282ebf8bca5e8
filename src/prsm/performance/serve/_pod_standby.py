"""Several scaler pods, one leading: ``kubernetes.leader_election`` in ``prsm-perf serve``.

Every gateway pod with the ``kubernetes`` section and a ``leader_election.lease`` is a
*candidate*. Each runs a :class:`~prsm.performance.scaling._elector.LeaderElector` on the
Lease; the one that holds it scales the Deployment (its
:class:`~prsm.performance.scaling.PredictiveScaler`'s loop runs only while it leads, from a
fresh policy state whose scale-down window holds the Deployment's current replicas), and the
others stand by. Every candidate reports its own node's load as a
reporting pod does (its ``scaling_report`` section, ``url`` usually itself on loopback), and
every candidate takes reports: one that does not lead answers 503 with the leader's URL (read
from the Lease's annotation), where the reporter sends them; so reporting pods need no access
to the Kubernetes API, only a ``url`` that reaches some candidate (the candidates' Service).

A leader that cannot renew the Lease within ``renew_deadline`` stops its loop before any
other candidate may take the Lease (``lease_duration`` after it last saw it change); a leader
that shuts down hands the Lease back, so a standby takes over at its next round.
:class:`LeaderScaler` is what the orchestrator runs and ``/admin/scaling`` shows (with
``leader``: who leads, this pod's role, the Lease as last read; ``warm``: the history held).

**A warm standby** (``warm_interval``, :mod:`._pod_warm`): a candidate that stands by fetches
the leader's scaling history from ``GET /admin/scaling/history`` (which only the leader
answers, 503 with the leader's URL elsewhere); when it takes the Lease its loop reads that
history for the steps before the take-over, so its first forecast is the old leader's; it
also replays the old leader's decisions and takes over its users' sessions.

**``serve --workers N``** on a candidate: the serving parent alone stands for the Lease (one
elector per pod) and, while it leads, scales and takes the reports, which the gateway
processes hand on to it (:func:`link_candidate`); they answer 503 with the leader's URL while
the parent does not lead (as it last pushed; it pushes whenever who leads changes) and ask it
for the history a standby fetches. Each gateway process reports its own node's load through
its ``scaling_report`` reporter, as a single-process candidate does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..config import PRSMConfig
from ..errors import ConfigError, ScalingError
from ..scaling._elector import LeaderElector, LeaseStore
from ..scaling._session_carry import freeze, sessions_body
from ..scaling._warm import history_body
from ._pod_report import report_key

if TYPE_CHECKING:
    from ..clock import Clock
    from ..gateway._app import GatewayApp
    from ..monitoring._registry import MetricsRegistry
    from ..scaling._election import LeaderElectionSettings
    from ..scaling._loop import ScalingLoop
    from ..scaling._pods import PodLoadReceiver
    from ..scaling._replay import StepRecord
    from ..scaling._scaler import PredictiveScaler
    from ..scaling._session_state import FrozenSessions
    from ..scaling._tracker import LoadTracker
    from ..scaling._types import LoadSeries
    from ._pod_resend import LateResender
    from ._pod_warm import WarmMirror
    from ._pool_client import SharedPoolUpstream
    from ._shared_pool import RemoteScaler

#: ``GET /admin/scaling/history?since=T[&sessions=1]``'s answer (status, JSON body)
HistoryRoute = Callable[[float, bool], Awaitable[tuple[int, bytes]]]

log = logging.getLogger("prsm.performance.scaling")


def _history(
    load: LoadSeries,
    since: float,
    service_time: float | None,
    startup_time: float | None,
    records: tuple[StepRecord, ...],
    *,
    users: FrozenSessions | None,
) -> bytes:
    sessions = sessions_body(users) if users is not None else None
    return orjson.dumps(history_body(load, since, service_time, startup_time, records,
                                     sessions=sessions))  # fmt: skip


class LeaderScaler:
    """A :class:`~prsm.performance.scaling.PredictiveScaler` that scales only while this pod
    holds the Lease (a :class:`~prsm.performance.scaling._types.Scaler`); with a
    :attr:`mirror` (a :class:`~._pod_warm.WarmMirror`) it holds the leader's history while it
    stands by, and its loop reads it from the take-over on (:mod:`~..scaling._warm`)."""

    def __init__(
        self,
        scaler: PredictiveScaler,
        store: LeaseStore,
        settings: LeaderElectionSettings,
        identity: str,
        url: str,
        *,
        clock: Clock,
        metrics: MetricsRegistry,
    ) -> None:
        self.scaler = scaler
        self.store = store
        self.clock = clock
        self.elector = LeaderElector(store, settings, identity, url, clock=clock,
                                     on_change=self._changed, metrics=metrics)  # fmt: skip
        self.mirror: WarmMirror | None = None
        #: this pod's report receiver (:meth:`take_reports`)
        self.receiver: PodLoadReceiver | None = None
        #: sends a report handed on after this pod stopped leading to the leader
        self.late: LateResender | None = None

    @property
    def tracker(self) -> LoadTracker:
        return self.scaler.tracker

    @property
    def loop(self) -> ScalingLoop:
        return self.scaler.loop

    async def _changed(self, leading: bool) -> None:
        loop = self.scaler.loop
        if not leading:
            await loop.close()
            self._end_term()
            return
        # what an earlier term decided is stale: start afresh, but as if the last leader had
        # just asked for the replicas the Deployment has, so that none is removed before the
        # scale-down window has passed; where the last leader's decisions are carried, the
        # loop replays them before its first step (that state replaces this one), and decides
        # as that leader would have
        state = loop.policy.initial_state()
        try:
            status = await self.scaler.controller.status(loop.deployment)
        except (ScalingError, OSError) as exc:
            log.warning("the new leader could not read the Deployment (%s): it starts without "
                        "the scale-down hold", exc)  # fmt: skip
        else:
            state = dataclasses.replace(state, recommendations=((self.clock.time(),
                                                                 status.desired),))  # fmt: skip
        loop.state = state
        if self.mirror is not None and await self.mirror.settle():
            log.info("the new leader waited for the warm standby's fetch in flight")
        held = self.mirror.held if self.mirror is not None else None
        loop.carry_over(held, self.clock.time())  # the last leader's history, where held
        if held is not None:
            log.info("the new leader's forecast reads %d step(s) of the last leader's history "
                     "and replays its last %d decision(s)", len(held.load),
                     len(loop.records))  # fmt: skip
        self.scaler.start()

    def _end_term(self) -> None:
        """What this pod holds of a term once it ends (its loop stopped; a standby takes no
        reports, :meth:`gate`): the arrivals per step, the service times and the users'
        sessions, as observed. Not the window since its last decision (a new term's first
        decision counts from here), nor the requests in flight or queued, nor the reporters
        with those they held in service: those requests go on at the next leader, which
        counts them; a re-elected pod starts with nothing in flight it does not see and no
        failure it did not observe (ended here, held requests would count as failures)."""
        if self.receiver is not None:
            self.receiver.end_term()
        self.tracker.end_term()

    def take_reports(self, receiver: PodLoadReceiver) -> None:
        """``receiver`` (this pod's, over :attr:`tracker`) plays reports only while this pod
        leads, and forgets its reporters when a term ends."""
        receiver.gate = self.gate
        self.receiver = receiver

    def gate(self) -> str | None:
        """For the report receiver: ``None`` while this pod leads, else the leader's URL."""
        return None if self.elector.leading else self.elector.leader_url

    async def history(self, since: float, sessions: bool = False) -> tuple[int, bytes]:
        """``GET /admin/scaling/history?since=T[&sessions=1]`` (the admin key checked
        already): while this pod leads, the steps its policy reads from ``since`` on
        (:func:`history_body`), with its decisions' records and, where asked (``sessions``:
        an older standby never asks, and its bound on an answer has no room for them), its
        users' sessions, else 503 with the leader's URL. What changes on the event loop is
        taken there (:func:`freeze`: the sessions' tracker saves what it changes of it until
        the answer is built); the answer is built and written in a worker thread."""
        leader = self.gate()
        if leader is not None:
            error = {"message": "this pod does not lead the scaling", "type": "unavailable"}
            return 503, orjson.dumps({"error": error, "leader": leader})
        loop = self.loop
        load, records = loop.load(), tuple(loop.records)  # copies; the records are frozen
        tracker = loop.tracker.sessions
        users = freeze(tracker) if sessions else None  # (thawed once the answer is built)
        try:
            return 200, await asyncio.to_thread(_history, load, since, loop.service_time(),
                                                loop.startup_time, records,
                                                users=users)  # fmt: skip
        finally:
            if users is not None:
                tracker.thaw(users)

    def resend(self, report: dict[str, Any], leader: str) -> None:
        """A report a gateway process handed on after this pod stopped leading: sent on to
        ``leader`` (:mod:`._pod_resend`), where :attr:`late` is set."""
        if self.late is not None:
            self.late(report, leader)

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when who leads changes and after each fetch of the history."""
        self.elector.listeners.append(listener)
        if self.mirror is not None:
            self.mirror.listeners.append(listener)

    def start(self) -> None:
        self.elector.start()
        if self.mirror is not None:
            self.mirror.start()

    async def close(self) -> None:
        await self.elector.close(release=True)  # the loop stops first, then the Lease goes
        if self.mirror is not None:
            await self.mirror.close()
        if self.late is not None:
            await self.late.close()
        await self.scaler.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()

    def snapshot(self, last: int = 50) -> dict[str, Any]:
        warm = {"warm": self.mirror.snapshot()} if self.mirror is not None else {}
        if self.late is not None:
            warm["late_reports"] = self.late.snapshot()
        return {**self.scaler.snapshot(last), "leader": self.elector.snapshot(), **warm}


def check_candidate(config: PRSMConfig) -> None:
    """A :class:`ConfigError` naming the field if this candidate cannot run: it reports its
    own load (``scaling_report.url`` and ``node``, the Deployment's node, with the key that
    also fetches the leader's history)."""
    kube = config.kubernetes
    if not kube.leader_election.enabled:
        return
    report = config.scaling_report
    if not report.enabled:
        raise ConfigError("scaling_report.url", "a scaler candidate reports its own load: give "
                          "its own gateway (e.g. http://127.0.0.1:8080) or the candidates' "
                          "Service")  # fmt: skip
    if report.node != kube.node:
        raise ConfigError("scaling_report.node", f"must be kubernetes.node ({kube.node!r})")
    candidate(config)  # its URL's variables are set
    report_key(report)  # and its key
    if kube.leader_election.warm_interval > 0:
        check_replay(config)


def check_replay(config: PRSMConfig) -> None:
    """A :class:`ConfigError` naming ``scaling.interval`` if a new leader's replay
    (:mod:`~prsm.performance.scaling._replay`) needs more decisions than the
    :data:`~prsm.performance.scaling._replay.MAX_RECORDS` a leader serves."""
    from ..scaling._predictive import PredictivePolicy
    from ..scaling._replay import MAX_RECORDS
    from ..scaling._sessions import SessionTracker

    policy = PredictivePolicy(config.scaling)
    memory = policy.replay_memory(SessionTracker().window[1])  # (a scaler's tracker's)
    if memory / policy.interval + 1 > MAX_RECORDS:
        raise ConfigError(
            "scaling.interval",
            f"{policy.interval:g} s decisions over the {memory:g} s a new leader's replay "
            f"reads (scaling.predictor.refit_interval and the longest window, or "
            f"session_error_span) are more than the {MAX_RECORDS} records a leader serves: "
            f"lengthen interval or shorten refit_interval (or session_error_span)",
        )


def candidate(config: PRSMConfig) -> tuple[str, str]:
    """This candidate's identity and URL (a :class:`ConfigError` naming
    ``kubernetes.leader_election.url`` if a variable in it is not set)."""
    try:
        return config.kubernetes.leader_election.resolve()
    except ConfigError as exc:
        raise ConfigError(f"kubernetes.leader_election.{exc.field}", exc.problem) from None


Standby = Callable[["PredictiveScaler", "Clock", "MetricsRegistry"], LeaderScaler]


def standby(config: PRSMConfig) -> Standby:
    """What makes this candidate's :class:`LeaderScaler` over its Deployment's scaler: the
    Lease's store and, with ``warm_interval``, the leader's history mirrored (checked now)."""
    from ..scaling._lease_store import KubernetesLeaseStore

    check_candidate(config)
    kube, report = config.kubernetes, config.scaling_report
    election = kube.leader_election
    identity, url = candidate(config)
    key = report_key(report)

    def make(scaler: PredictiveScaler, clock: Clock, metrics: MetricsRegistry) -> LeaderScaler:
        from ._pod_warm import WarmMirror

        store = KubernetesLeaseStore(election.lease, kube.namespace, client=kube.api_client(),
                                     timeout=kube.timeout)  # fmt: skip
        leader = LeaderScaler(scaler, store, election, identity, url, clock=clock,
                              metrics=metrics)  # fmt: skip
        from ._pod_resend import LateResender

        leader.late = LateResender(key, url, timeout=report.timeout, metrics=metrics)
        if election.warm_interval > 0:
            leader.mirror = WarmMirror(leader.elector, key, step=scaler.tracker.step,
                                       interval=election.warm_interval, timeout=report.timeout,
                                       clock=clock, metrics=metrics,
                                       keep=scaler.loop.replay_span,
                                       decisions=scaler.policy.interval)  # fmt: skip
        return leader

    return make


def attach_candidate(app: GatewayApp, config: PRSMConfig, make: RemoteScaler) -> None:
    """Stand for the Lease from startup, scaling while this pod holds it (see the module
    docstring); its own load is reported by its ``scaling_report`` reporter."""
    from ._pod_links import attach_pod_receiver

    wrap = standby(config)
    perf = app.perf

    async def stand(app: GatewayApp) -> None:
        leader = wrap(make(perf.registry, perf.clock, perf.metrics), perf.clock, perf.metrics)
        receiver = attach_pod_receiver(app, config, leader.tracker)
        if receiver is not None:
            leader.take_reports(receiver)
        app.admin.scaling_history = leader.history
        perf.attach_scaler(leader)  # the elector starts with the orchestrator

    app.on_startup.append(stand)


def parent_gate(latest: Mapping[str, Any] | None) -> str | None:
    """Under ``serve --workers N``, in a gateway process: ``None`` while the serving parent
    leads (as its last pushed snapshot says), else the leader's URL ("" if none is known)."""
    leader = (latest or {}).get("leader") or {}
    return None if leader.get("leading") else str(leader.get("leader_url") or "")


def link_candidate(
    config: PRSMConfig, timeout: float
) -> Callable[[GatewayApp, SharedPoolUpstream], None]:
    """In a gateway process of a candidate pod under ``serve --workers N`` (the serving parent
    stands for the Lease and scales while it leads): what, once linked to the parent, hands
    the reports it takes to the parent while the parent leads (503 with the leader's URL
    otherwise) and asks the parent for its history; its own node's load is reported by its
    ``scaling_report`` reporter, as every candidate's."""
    from ._pod_links import forward_pod_reports

    check_candidate(config)

    def linked(app: GatewayApp, link: SharedPoolUpstream) -> None:
        view = app.perf.scaler  # the parent's scaler, as its pushed snapshots show it

        def gate() -> str | None:
            return parent_gate(getattr(view, "latest", None))

        async def history(since: float, sessions: bool) -> tuple[int, bytes]:
            try:
                reply = await link.call({"op": "history", "since": since,
                                         "sessions": sessions}, timeout)  # fmt: skip
            except (OSError, TimeoutError) as exc:
                error = {"message": f"the serving parent cannot be reached now: {exc}",
                         "type": "unavailable"}  # fmt: skip
                return 503, orjson.dumps({"error": error})
            return int(reply["status"]), bytes(reply["body"])

        forward_pod_reports(app, config, link, gate=gate)
        app.admin.scaling_history = history

    return linked
