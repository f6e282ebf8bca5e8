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
``leader``: who leads, this pod's role, the Lease as last read).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from ..config import PRSMConfig
from ..errors import ConfigError, ScalingError
from ..scaling._elector import LeaderElector, LeaseStore

if TYPE_CHECKING:
    from ..clock import Clock
    from ..gateway._app import GatewayApp
    from ..monitoring._registry import MetricsRegistry
    from ..scaling._election import LeaderElectionSettings
    from ..scaling._scaler import PredictiveScaler
    from ._shared_pool import RemoteScaler

log = logging.getLogger("prsm.performance.scaling")


class LeaderScaler:
    """A :class:`~prsm.performance.scaling.PredictiveScaler` that scales only while this pod
    holds the Lease (a :class:`~prsm.performance.scaling._types.Scaler`)."""

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

    async def _changed(self, leading: bool) -> None:
        loop = self.scaler.loop
        if not leading:
            await loop.close()
            return
        # what an earlier term decided is stale: start afresh, but as if the last leader had
        # just asked for the replicas the Deployment has, so that none is removed before the
        # scale-down window has passed (the last leader's own window is not known here)
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
        self.scaler.start()

    def gate(self) -> str | None:
        """For the report receiver: ``None`` while this pod leads, else the leader's URL."""
        return None if self.elector.leading else self.elector.leader_url

    def start(self) -> None:
        self.elector.start()

    async def close(self) -> None:
        await self.elector.close(release=True)  # the loop stops first, then the Lease goes
        await self.scaler.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()

    def snapshot(self, last: int = 50) -> dict[str, Any]:
        return {**self.scaler.snapshot(last), "leader": self.elector.snapshot()}


def check_candidate(config: PRSMConfig, workers: int = 1) -> None:
    """A :class:`ConfigError` naming the field if this candidate cannot run: it reports its
    own load (``scaling_report.url`` and ``node``, the Deployment's node) and runs one
    gateway process."""
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
    if workers > 1:
        why = "a scaler candidate runs one gateway process (not serve --workers N)"
        raise ConfigError("kubernetes.leader_election.lease", why)
    candidate(config)  # its URL's variables are set


def candidate(config: PRSMConfig) -> tuple[str, str]:
    """This candidate's identity and URL (a :class:`ConfigError` naming
    ``kubernetes.leader_election.url`` if a variable in it is not set)."""
    try:
        return config.kubernetes.leader_election.resolve()
    except ConfigError as exc:
        raise ConfigError(f"kubernetes.leader_election.{exc.field}", exc.problem) from None


def attach_candidate(app: GatewayApp, config: PRSMConfig, make: RemoteScaler) -> None:
    """Stand for the Lease from startup, scaling while this pod holds it (see the module
    docstring); its own load is reported by its ``scaling_report`` reporter."""
    from ..scaling._lease_store import KubernetesLeaseStore
    from ._pod_links import attach_pod_receiver

    kube = config.kubernetes
    election = kube.leader_election
    identity, url = candidate(config)
    perf = app.perf

    async def stand(app: GatewayApp) -> None:
        scaler = make(perf.registry, perf.clock, perf.metrics)
        store = KubernetesLeaseStore(election.lease, kube.namespace, client=kube.api_client(),
                                     timeout=kube.timeout)  # fmt: skip
        standby = LeaderScaler(scaler, store, election, identity, url, clock=perf.clock,
                               metrics=perf.metrics)  # fmt: skip
        receiver = attach_pod_receiver(app, config, scaler.tracker)
        if receiver is not None:
            receiver.gate = standby.gate
        perf.attach_scaler(standby)  # the elector starts with the orchestrator

    app.on_startup.append(stand)
