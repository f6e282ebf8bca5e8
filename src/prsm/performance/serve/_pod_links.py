"""``prsm-perf serve`` with several gateway pods in front of one Deployment: the pods with a
``scaling_report`` section report their node's load to the pod with the ``kubernetes``
section, which scales the Deployment from every pod's load (see
:mod:`prsm.performance.scaling._pods`).

- A reporting pod routes its node through a tracked upstream whose hooks are a
  :class:`~._pod_report.PodLoadReporter` (:func:`attach_pod_reporter`); under
  ``serve --workers N`` each gateway process reports on its own (its own instance).
- The scaler pod answers ``POST /admin/scaling/load`` (admin key) with a
  :class:`~prsm.performance.scaling._pods.PodLoadReceiver` over its scaler's tracker
  (:func:`attach_pod_receiver`); under ``serve --workers N`` the serving parent holds the
  receiver with the scaler, and each gateway process checks a report and hands it on, parsed,
  over the parent's socket (``{"op": "pods", "report"}``, :func:`forward_pod_reports`);
  on a candidate of a leader election, while the parent leads (as it last told them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from ..config import PRSMConfig
from ..errors import ConfigError
from ..scaling._pods import PodLoadReceiver, ReportError, ScalingReportSettings, parse_report
from ..upstreams._dispatch import META_KEY
from ._process_metrics import process_name

if TYPE_CHECKING:
    from ..gateway._app import GatewayApp
    from ..scaling._tracked import LoadHooks
    from ..scaling._tracker import LoadTracker
    from ._pool_client import SharedPoolUpstream

#: the route the reported node is moved onto (tracked)
REPORTED = "reported"


def check_pod_sections(config: PRSMConfig) -> None:
    """A :class:`ConfigError` if the pod both scales the Deployment and reports to another
    (unless it is a candidate of a leader election: it reports to whichever leads)."""
    if config.kubernetes.leader_election.enabled:
        from ._pod_standby import check_candidate

        check_candidate(config)
        return
    if config.scaling_report.enabled and config.kubernetes.enabled:
        raise ConfigError(
            "scaling_report.url",
            "this pod scales the Deployment (kubernetes.deployment): it takes the other pods' "
            "reports and sends none",
        )


def receives_reports(config: PRSMConfig) -> tuple[ScalingReportSettings, str] | None:
    """The settings and node of the reports this pod takes: it scales a Deployment."""
    if config.orchestrator.auto_scaling and config.kubernetes.enabled:
        return config.scaling_report, config.kubernetes.node
    return None


def attach_pod_reporter(app: GatewayApp, config: PRSMConfig) -> None:
    """With a ``scaling_report`` url: report the node's load to the scaler pod from startup
    (the node and the key's variable checked now, a :class:`ConfigError` naming the field)."""
    from ..scaling._tracked import TrackedUpstream
    from ._local_workers import _dispatcher
    from ._pod_report import PodLoadReporter, pod_identity, report_key

    settings = config.scaling_report
    if not settings.enabled:
        return
    perf = app.perf
    if settings.node not in perf.registry:
        known = sorted(n.id for n in perf.registry.nodes())
        raise ConfigError("scaling_report.node", f"no configured node {settings.node!r}; {known}")
    tag = perf.registry.get(settings.node).meta.get(META_KEY)
    if tag is not None:
        raise ConfigError("scaling_report.node", f"node {settings.node!r} is served by {tag!r}")
    key = report_key(settings)

    async def start_reporting(app: GatewayApp) -> None:
        pod, instance = pod_identity(process_name())
        reporter = PodLoadReporter(settings, key, pod=pod, instance=instance, clock=perf.clock,
                                   metrics=app.metrics)  # fmt: skip
        dispatcher = _dispatcher(app)
        if dispatcher.default is None:
            raise ConfigError("scaling_report.node", "the gateway has no HTTP upstream")
        hooks: LoadHooks = reporter
        dispatcher.add_route(REPORTED, TrackedUpstream(dispatcher.default, hooks, clock=perf.clock))
        spec = perf.registry.get(settings.node)
        perf.registry.upsert(spec.with_changes(meta={**spec.meta, META_KEY: REPORTED}))
        app.admin.scaling_report = reporter.snapshot
        reporter.start()
        app.on_shutdown.append(lambda app: reporter.aclose())

    app.on_startup.append(start_reporting)


def attach_pod_receiver(
    app: GatewayApp, config: PRSMConfig, tracker: LoadTracker
) -> PodLoadReceiver | None:
    """On the scaler pod (one gateway process): take the other pods' reports into
    ``tracker`` (the scaler's), expiring silent ones, until the app shuts down."""
    found = receives_reports(config)
    if found is None:
        return None
    settings, node = found
    receiver = PodLoadReceiver(tracker, settings, node, clock=app.perf.clock,
                               metrics=app.metrics)  # fmt: skip
    app.admin.scaling_load = receiver.accept
    app.admin.scaling_pods = receiver.snapshot
    task = asyncio.create_task(receiver.run(), name="prsm-pod-load-leases")

    async def stop(app: GatewayApp) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.on_shutdown.append(stop)
    return receiver


def forward_pod_reports(
    app: GatewayApp,
    config: PRSMConfig,
    link: SharedPoolUpstream,
    *,
    gate: Callable[[], str | None] | None = None,
) -> None:
    """In a gateway process of the scaler pod under ``serve --workers N``: check each report
    (400, 413 as the receiver would answer) and hand it to the serving parent (202), or 503
    if the parent cannot be reached now (the reporter sends it again). ``gate`` (a candidate
    of a leader election): the leader's URL while the parent does not lead, answered with 503
    as the receiver would."""
    found = receives_reports(config)
    if found is None:
        return
    settings, node = found

    def accept(body: bytes) -> tuple[int, bytes]:
        leader = gate() if gate is not None else None
        if leader is not None:
            error = {"message": "this pod does not lead the scaling", "type": "unavailable"}
            return 503, orjson.dumps({"error": error, "leader": leader})
        try:
            report = parse_report(body, node, settings.max_events)
        except ReportError as exc:
            error = {"message": str(exc), "type": "invalid_request_error"}
            return exc.status, orjson.dumps({"error": error})
        if not link.send_now({"op": "pods", "report": report}):
            error = {"message": "the serving parent's scaler cannot be reached now",
                     "type": "unavailable"}  # fmt: skip
            return 503, orjson.dumps({"error": error})
        return 202, orjson.dumps({"accepted": True})

    app.admin.scaling_load = accept
