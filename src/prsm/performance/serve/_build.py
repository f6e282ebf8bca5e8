"""Building the gateway from a config, and running it (one or more worker processes) on its
own HTTP/1.1 server (:mod:`.http1`; the app is also a plain ASGI app).

:func:`build_orchestrator` turns :class:`~prsm.performance.config.PRSMConfig` into a
:class:`~prsm.performance.orchestrator.PerformanceOrchestrator` whose upstream is an
:class:`~prsm.performance.upstreams.HttpUpstream` over the configured nodes;
:func:`app_from_config` puts the gateway app in front of it; :func:`serve` runs it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._helper_host import HelperHost
from .._paths import cache_dir, data_dir
from ..config import PRSMConfig, load_config
from ..errors import ConfigError
from ..gateway._admin import node_spec
from ..gateway._app import GatewayApp
from ..gateway._settings import check_exposure
from ..routing._node import NodeSpec
from ..upstreams._dispatch import DispatchUpstream
from ..upstreams._http import HttpUpstream, check_nodes
from ._local_workers import attach_local_workers, attach_to_parent
from ._pod_links import attach_pod_reporter, check_pod_sections, receives_reports
from ._process_metrics import process_name
from ._processes import run_native, run_native_workers
from ._remote_scaling import (
    attach_remote_scaler,
    remote_reporter,
    remote_scaler,
    remote_section,
)
from ._shared_pool import POOL_SOCKET_ENV, PoolHost, pool_socket

if TYPE_CHECKING:
    from ._pod_standby import Standby

log = logging.getLogger(__name__)

#: environment variable through which worker processes find the config file
CONFIG_ENV = "PRSM_GATEWAY_CONFIG_FILE"


def config_nodes(config: PRSMConfig) -> list[NodeSpec]:
    """The config's nodes as :class:`NodeSpec` (each checked: URL, API key variable); a node
    without its own ``timeout`` gets the gateway's ``upstream_timeout``."""
    default = config.gateway.upstream_timeout
    nodes = [with_default_timeout(node_spec(n), default) for n in config.nodes]
    check_nodes(nodes)
    return nodes


def with_default_timeout(spec: NodeSpec, seconds: float) -> NodeSpec:
    """``spec``, with ``timeout=seconds`` if it has none."""
    return spec if spec.timeout is not None else spec.with_changes(timeout=seconds)


def build_orchestrator(config: PRSMConfig) -> Any:
    """The pipeline the gateway serves: the config's nodes behind an HTTP upstream."""
    from ..orchestrator._orchestrator import PerformanceOrchestrator

    gw = config.gateway
    nodes = config_nodes(config)
    http = HttpUpstream(  # the orchestrator bounds each call by node timeout and deadline
        default_timeout=gw.upstream_timeout,
        connect_timeout=gw.connect_timeout,
        enforce_timeout=False,
    )
    # nodes tagged meta.upstream (e.g. local workers) go to the upstreams added as routes
    upstream = DispatchUpstream({}, default=http)
    config = dataclasses.replace(config, nodes=())  # nodes are added checked, below
    perf = PerformanceOrchestrator.from_config(config, upstream=upstream)
    for spec in nodes:
        perf.add_node(spec)
    return perf


def app_from_config(config: PRSMConfig) -> GatewayApp:
    """The gateway app for ``config``, with its local model workers (started with the app)
    and its monitoring (history, alerts, traces as the config says)."""
    perf = build_orchestrator(config)
    attach_monitoring(perf, config)
    app = GatewayApp(perf, config.gateway)
    app.admin.analytics = config.analytics
    if config.monitoring.traces:
        from ..monitoring._otel import RequestTracer

        app.tracer = RequestTracer(
            service_name=config.monitoring.service_name,
            provider_name=config.monitoring.provider,
            endpoint=config.monitoring.otlp_endpoint,
        )
    scaling = config.scaling if config.orchestrator.auto_scaling else None
    remote = remote_section(config) if scaling is not None else None
    check_pod_sections(config)
    attach_pod_reporter(app, config)  # to the pod that scales the Deployment, if configured
    shared = pool_socket()
    if shared is not None:
        # serve --workers N: the serving parent holds the model pool and scales the replicas
        # (report their load there), and links the gateway processes (/metrics shows all)
        local = config.workers if config.workers.enabled and config.workers.count > 0 else None
        # the section checked now (a ConfigError naming its field), whichever link is made
        report = remote_reporter(app, config, remote) if remote is not None else None
        if remote is not None and config.kubernetes.leader_election.enabled:
            from ._pod_standby import link_candidate  # the parent stands for the Lease

            report = link_candidate(config, config.scaling_report.timeout)
        attach_to_parent(app, shared, local, on_link=report, follow=remote == "ray")
        return app
    if remote is not None:  # it scales the Deployment or the Ray actors instead
        attach_remote_scaler(app, config, remote)
        scaling = None
    attach_local_workers(app, config.workers, scaling)
    return app


def standby_of(config: PRSMConfig) -> Standby | None:
    """A candidate's (``kubernetes.leader_election``, with auto-scaling) wrapping of its
    Deployment's scaler under ``serve --workers N``: the serving parent stands for the Lease
    (one elector per pod) and scales while it leads."""
    if not (config.orchestrator.auto_scaling and config.kubernetes.leader_election.enabled):
        return None
    from ._pod_standby import standby

    return standby(config)


def attach_monitoring(perf: Any, config: PRSMConfig) -> None:
    """Give ``perf`` the monitor of the config's ``monitoring``, ``history`` and ``alerts``.

    With several gateway processes (``serve --workers N``) they share one history file, each
    series labelled with its process (``instance="gateway-K"``), and only the first evaluates
    alert rules (one notification per alert, not N)."""
    from ..monitoring._monitor import build_monitor

    name = process_name()
    worker = name.startswith("gateway-")
    perf.monitor = build_monitor(
        perf.recorder,
        perf,
        monitoring=config.monitoring,
        history=config.history,
        alerts=config.alerts,
        interval=config.orchestrator.monitoring_interval,
        labels=(("instance", name),) if worker else (),
        evaluate_alerts=not worker or name == "gateway-0",
        clock=perf.clock,
    )


def app_factory() -> GatewayApp:
    """What each server worker calls: the config file named by ``PRSM_GATEWAY_CONFIG_FILE``."""
    path = os.environ.get(CONFIG_ENV) or None
    return app_from_config(load_config(path))


def unusable_path(exc: OSError) -> ConfigError:
    """A directory or file the gateway could not create or open at start-up, as an error
    naming the path and the setting that chose it (``PRSM_DATA_DIR``, ``PRSM_CACHE_DIR``, or a
    path in the config)."""
    path = Path(exc.filename).expanduser()
    field = "path"
    for env, root in (("PRSM_DATA_DIR", data_dir()), ("PRSM_CACHE_DIR", cache_dir())):
        if path == root or root in path.parents:
            field = env
            break
    why = exc.strerror or type(exc).__name__
    fix = f"set {field} to" if field != "path" else "choose in the config"
    return ConfigError(field, f"cannot create or open {str(path)!r} ({why}); {fix} a "
                       "directory this user can write")  # fmt: skip


def serve(
    config_path: str | Path | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Load the config (failing at once, naming the file and field, if it is wrong) and run
    the gateway on its own HTTP/1.1 server (:mod:`.http1`; ``workers`` processes) until
    SIGINT/SIGTERM, then shut down gracefully: stop accepting, let in-flight requests and
    streams finish within ``shutdown_grace``, exit."""
    config = load_config(config_path)
    gw = config.gateway
    host = host or gw.host
    port = gw.port if port is None else port
    workers = workers or gw.workers
    if workers < 1:
        raise ConfigError("workers", f"must be >= 1, got {workers}")
    try:  # build and check everything here, before any worker starts
        check_exposure(gw, host)  # no open admin API beyond loopback
        app = app_from_config(config)
    except ConfigError as exc:
        if exc.source is None and config_path is not None:
            raise ConfigError(exc.field, exc.problem, source=str(config_path)) from None
        raise
    except OSError as exc:
        if exc.filename is None:  # not a path (a socket, a process): not ours to name
            raise
        raise unusable_path(exc) from exc
    os.environ[CONFIG_ENV] = str(Path(config_path).resolve()) if config_path is not None else ""
    where = f"http://{host}:{port}"
    local = config.workers.count if config.workers.enabled else 0
    print(
        f"prsm-perf serve: listening on {where} (OpenAI API at {where}/v1; "
        f"{len(config.nodes)} configured node(s); {local} local embedding worker(s); "
        f"{workers} server worker(s); metrics at {where}/metrics)",
        flush=True,
    )
    if workers == 1:
        run_native(app, host, port)
        return
    scaling = config.scaling if config.orchestrator.auto_scaling else None
    remote = remote_scaler(config)
    # one model pool, one scaler, and the link between the gateway processes (/metrics)
    host_pool = PoolHost(config.workers if local else None, scaling, remote,
                         pods=receives_reports(config), standby=standby_of(config))  # fmt: skip
    host_pool.start()
    os.environ[POOL_SOCKET_ENV] = host_pool.path
    section = remote_section(config) if remote is not None else None
    held = ["local model pool"] if local else []
    held += [f"{section} scaler"] if section is not None else []
    what = " and ".join(held) or "gateway processes' metrics"
    print(f"prsm-perf serve: {what} shared at unix:{host_pool.path}", flush=True)
    helpers = HelperHost()  # one set of helpers (the semantic cache's models) for them all
    helpers.start()
    os.environ.update(helpers.env())
    try:
        run_native_workers(host, port, workers)
    finally:
        for name in (*helpers.env(), POOL_SOCKET_ENV):
            os.environ.pop(name, None)
        helpers.stop()
        host_pool.stop()
