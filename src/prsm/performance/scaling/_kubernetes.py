"""``KubernetesBackend``: replicas are a Deployment's pods; scaling patches its ``scale``
subresource with the official ``kubernetes`` client
(``pip install 'prsm-performance[kubernetes]'``).

``scale_to(n)`` sends ``PATCH /apis/apps/v1/namespaces/NS/deployments/NAME/scale`` with the
merge patch ``{"spec": {"replicas": n}}`` (content type ``application/merge-patch+json``,
set explicitly: the client would otherwise label a dict body a JSON patch, which an API server
rejects). ``status()`` reads the Deployment: ``spec.replicas`` asked for, ``status.readyReplicas``
serving, the difference starting. Kubernetes itself drains removed pods (they leave the
Service's endpoints, get SIGTERM and their ``terminationGracePeriodSeconds``): give the
serving container a ``preStop`` hook or graceful shutdown so that what it holds finishes.

The client is synchronous: calls run in a worker thread. Its :class:`ApiException` and
connection errors become :class:`~prsm.performance.errors.ScalingError` (with the HTTP status),
which the controller retries. On a real cluster, RBAC must allow ``get`` on
``deployments`` and ``get``, ``patch`` on ``deployments/scale`` in the namespace.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ConfigError, DependencyMissingError, ScalingError
from ._controller import ReplicaStatus
from ._election import LeaderElectionSettings
from ._types import check_positive

T = TypeVar("T")


def _kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError as exc:
        raise DependencyMissingError(
            "kubernetes", "kubernetes", "the Kubernetes scaling backend"
        ) from exc
    return kubernetes


async def call_api(name: str, what: str, fn: Callable[[], T],
                   errors: Mapping[int, type[ScalingError]] | None = None) -> T:  # fmt: skip
    """``fn()``, a blocking call of the official client, in a thread. Its API errors become
    a :class:`ScalingError` (or ``errors``' class for their status) naming ``name`` and
    ``what``, with the status; transport errors (connection refused, reset, time-outs:
    urllib3's are not all OSErrors) a :class:`ScalingError` too."""
    import urllib3

    k8s = _kubernetes()
    try:
        return await asyncio.to_thread(fn)
    except k8s.client.exceptions.ApiException as exc:
        kind = (errors or {}).get(exc.status, ScalingError)
        reason = getattr(exc, "reason", "") or ""
        raise kind(name, f"{what}: {reason} {exc.body or ''}".strip(), status=exc.status) from exc
    except (OSError, TimeoutError, urllib3.exceptions.HTTPError) as exc:
        raise ScalingError(name, f"{what}: {type(exc).__name__}: {exc}") from exc


def kubernetes_api_client(
    *,
    host: str | None = None,
    token: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    verify_ssl: bool = True,
) -> Any:
    """A ``kubernetes.client.ApiClient``: in the cluster (a service account), from a
    kubeconfig (``kubeconfig``/``context``; default ``~/.kube/config``), or for ``host``
    with a bearer ``token``."""
    k8s = _kubernetes()
    if in_cluster:
        k8s.config.load_incluster_config()
        return k8s.client.ApiClient()
    if host is None:
        config = k8s.client.Configuration()
        k8s.config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=config
        )
        return k8s.client.ApiClient(config)
    config = k8s.client.Configuration()
    config.host = host
    config.verify_ssl = verify_ssl
    if token is not None:
        # the client (v36+) reads the token and its prefix under "BearerToken"
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
    return k8s.client.ApiClient(config)


class KubernetesBackend:
    """See the module docstring. ``client`` is a ``kubernetes.client.ApiClient`` (see
    :func:`kubernetes_api_client`); ``timeout`` bounds each API call (seconds)."""

    def __init__(
        self,
        deployment: str,
        namespace: str = "default",
        *,
        client: Any = None,
        timeout: float = 10.0,
    ) -> None:
        if not deployment:
            raise ScalingError("kubernetes", "deployment: give the Deployment's name")
        k8s = _kubernetes()
        self.deployment = deployment
        self.namespace = namespace
        self.timeout = timeout
        self._client = client if client is not None else kubernetes_api_client()
        self._apps = k8s.client.AppsV1Api(self._client)

    @property
    def name(self) -> str:
        return f"kubernetes:{self.namespace}/{self.deployment}"

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        return await call_api(self.name, what, fn)

    async def status(self) -> ReplicaStatus:
        dep = await self._call(
            "read deployment",
            lambda: self._apps.read_namespaced_deployment(
                self.deployment, self.namespace, _request_timeout=self.timeout
            ),
        )
        return _status(dep)

    async def scale_to(self, replicas: int) -> ReplicaStatus:
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ScalingError(self.name, f"replicas must be a whole number >= 0, got {replicas!r}")
        await self._call(
            f"patch scale to {replicas}",
            lambda: self._apps.patch_namespaced_deployment_scale(
                self.deployment,
                self.namespace,
                {"spec": {"replicas": replicas}},
                _content_type="application/merge-patch+json",
                _request_timeout=self.timeout,
            ),
        )
        return await self.status()

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


def _status(dep: Any) -> ReplicaStatus:
    spec = int(dep.spec.replicas or 0)
    st = dep.status
    ready = int((st.ready_replicas if st is not None else 0) or 0)
    total = int((st.replicas if st is not None else 0) or 0)
    return ReplicaStatus(
        ready=min(ready, spec),
        starting=max(0, spec - ready),
        draining=max(0, total - spec),
        target=spec,
    )


@dataclass(frozen=True, slots=True)
class KubernetesScalingSettings:
    """The config's ``kubernetes`` section: with ``orchestrator.auto_scaling``, ``prsm-perf
    serve`` scales this Deployment instead of its local workers.

    ``deployment`` (empty: off) in ``namespace`` runs the pods behind the configured node
    ``node`` (a Service's URL); each pod takes ``replica_concurrency`` requests at once, so the
    node takes ``ready pods × replica_concurrency``. The API is reached in the cluster
    (``in_cluster``: the pod's service account), through a kubeconfig (``kubeconfig``,
    ``context``; default ``~/.kube/config``), or at ``host`` with the bearer token held by the
    environment variable ``token_env`` (the token itself is never in the config);
    ``verify_ssl`` checks the API server's certificate; ``timeout`` bounds each API call.

    ``leader_election`` (:class:`~._election.LeaderElectionSettings`; off without a
    ``lease``): several pods with this section stand by for each other, the one holding the
    Lease scales; ``timeout`` must then fit in ``lease_duration - renew_deadline``, so that a
    call a leader started ends before another pod can take over."""

    deployment: str = ""
    namespace: str = "default"
    node: str = ""
    replica_concurrency: int = 8
    in_cluster: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    host: str | None = None
    token_env: str | None = None
    verify_ssl: bool = True
    timeout: float = 10.0
    leader_election: LeaderElectionSettings = field(default_factory=LeaderElectionSettings)

    def __post_init__(self) -> None:
        rc = self.replica_concurrency
        if isinstance(rc, bool) or not isinstance(rc, int) or rc < 1:
            raise ConfigError("replica_concurrency", f"must be a whole number >= 1, got {rc!r}")
        check_positive("timeout", self.timeout)
        election = self.leader_election
        if not self.deployment:
            if election.enabled:
                raise ConfigError("leader_election.lease", "goes with deployment")
            return
        if election.enabled and self.timeout > election.margin:
            raise ConfigError(
                "timeout",
                f"must be at most leader_election.lease_duration - renew_deadline "
                f"({election.margin:g} s) with leader election, got {self.timeout!r}",
            )
        if not self.node:
            raise ConfigError("node", "name the configured node whose pods the Deployment runs")
        if not self.namespace:
            raise ConfigError("namespace", "must not be empty")
        if self.in_cluster and (self.host or self.kubeconfig):
            raise ConfigError("in_cluster", "give in_cluster, host or kubeconfig, not several")
        if self.host and self.kubeconfig:
            raise ConfigError("host", "give host (with token_env) or kubeconfig, not both")
        if self.token_env and not self.host:
            raise ConfigError("token_env", "a token goes with host (the API server's URL)")

    @property
    def enabled(self) -> bool:
        return bool(self.deployment)

    def api_client(self, environ: Mapping[str, str] = os.environ) -> Any:
        """The ``kubernetes`` client these settings describe (the token read from
        ``token_env``, which must be set)."""
        token = None
        if self.token_env:
            token = environ.get(self.token_env)
            if not token:
                raise ConfigError("kubernetes.token_env", f"${self.token_env} is not set")
        return kubernetes_api_client(
            host=self.host, token=token, kubeconfig=self.kubeconfig, context=self.context,
            in_cluster=self.in_cluster, verify_ssl=self.verify_ssl,
        )  # fmt: skip
