"""``FakeKubernetesAPI``: the part of the Kubernetes API that scaling uses, on loopback.

It implements the contract of ``apps/v1`` Deployments and their ``scale`` subresource as the
API server does, so :class:`KubernetesBackend` is tested through the official client, wire
format included:

- ``GET  /apis/apps/v1/namespaces/NS/deployments/NAME`` (and ``/status``): the Deployment;
- ``GET  …/deployments/NAME/scale``: an ``autoscaling/v1`` ``Scale``;
- ``PATCH …/scale`` with ``application/merge-patch+json`` or
  ``application/strategic-merge-patch+json`` (``{"spec": {"replicas": N}}``) or
  ``application/json-patch+json`` (a list of operations on ``/spec/replicas``); a body of
  the wrong shape for its type is a 400, an unknown type 415, a bad count 422;
- ``PUT …/scale`` with a ``Scale`` (a stale ``metadata.resourceVersion`` is a 409);
- ``coordination.k8s.io/v1`` Leases (get, create, replace with ``resourceVersion`` and a
  409 on conflict: :mod:`._kube_fake_leases`), for leader election;
- unknown objects are 404s, and with a ``token`` a request without ``Bearer TOKEN`` is 401;
  errors are ``Status`` objects.

Pods become ready ``startup_time`` seconds after they are created (on ``clock``); removing
pods takes unready ones first, then the newest. :meth:`fail_next` answers the next requests
with an error (an API server outage). Standard library only: a threaded HTTP server.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._kube_fake_leases import LEASE_PATH, FakeLeases, status_obj as _status_obj

_PATH = re.compile(
    r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/?]+)(?P<sub>/scale|/status)?/?$"
)


@dataclass
class _Deployment:
    namespace: str
    name: str
    replicas: int
    pods: list[float] = field(default_factory=list)  # each pod's ready time
    generation: int = 1
    resource_version: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    uid: str = ""


class FakeKubernetesAPI:
    """See the module docstring. Start with :meth:`start` (or ``with``); :attr:`url` is the
    API server's address for ``kubernetes.client.Configuration.host``."""

    def __init__(
        self,
        *,
        startup_time: float = 0.0,
        clock: Callable[[], float] | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        import time

        self.startup_time = startup_time
        self.clock = clock or time.monotonic
        self.token = token
        self.host = host
        self.port = port
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, content type)
        self._deployments: dict[tuple[str, str], _Deployment] = {}
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._uids = itertools.count(1)
        self._leases = FakeLeases()

    # -- set-up ----------------------------------------------------------------------------
    def add_deployment(self, name: str, replicas: int = 1, namespace: str = "default") -> None:
        """Create a Deployment whose ``replicas`` pods are ready now."""
        now = self.clock()
        with self._lock:
            self._deployments[(namespace, name)] = _Deployment(
                namespace,
                name,
                replicas,
                [now] * replicas,
                labels={"app": name},
                uid=f"00000000-0000-0000-0000-{next(self._uids):012d}",
            )

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests with HTTP ``status``."""
        with self._lock:
            self._failures.extend([status] * count)

    def replicas(self, name: str, namespace: str = "default") -> int:
        with self._lock:
            return self._deployments[(namespace, name)].replicas

    def lease(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        """The Lease ``name`` as the API serves it (``None`` if there is none)."""
        with self._lock:
            return self._leases.leases.get((namespace, name))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeKubernetesAPI:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-kube-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeKubernetesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ---------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """One request → (status, JSON body)."""
        ctype = headers.get("content-type")
        with self._lock:
            self.requests.append((method, path, ctype))
            if self._failures:
                code = self._failures.pop(0)
                return code, _status_obj(code, "InternalError", "injected failure")
            if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
                return 401, _status_obj(401, "Unauthorized", "Unauthorized")
            lease = LEASE_PATH.match(path.split("?", 1)[0])
            if lease is not None:
                try:
                    doc = json.loads(body or b"null")
                except ValueError:
                    return 400, _status_obj(400, "BadRequest", "the body is not JSON")
                return self._leases.handle(method, lease["ns"], lease["name"], doc)
            m = _PATH.match(path.split("?", 1)[0])
            if m is None:
                return 404, _status_obj(404, "NotFound", f"the server could not find {path}")
            dep = self._deployments.get((m["ns"], m["name"]))
            if dep is None:
                return 404, _status_obj(
                    404, "NotFound", f'deployments.apps "{m["name"]}" not found'
                )
            sub = m["sub"] or ""
            if method == "GET":
                return 200, self._scale(dep) if sub == "/scale" else self._deployment(dep)
            if sub != "/scale" or method not in ("PATCH", "PUT"):
                return 405, _status_obj(
                    405, "MethodNotAllowed", f"{method} {path} is not supported here"
                )
            try:
                doc = json.loads(body or b"null")
            except ValueError:
                return 400, _status_obj(400, "BadRequest", "the body is not JSON")
            want = self._from_put(dep, doc) if method == "PUT" else self._from_patch(ctype, doc)
            if isinstance(want, tuple):
                return want
            self._resize(dep, want)
            return 200, self._scale(dep)

    def _from_put(self, dep: _Deployment, doc: Any) -> int | tuple[int, dict[str, Any]]:
        if not isinstance(doc, dict) or doc.get("kind") not in (None, "Scale"):
            return 400, _status_obj(400, "BadRequest", "expected a Scale object")
        rv = (doc.get("metadata") or {}).get("resourceVersion")
        if rv is not None and str(rv) != str(dep.resource_version):
            return 409, _status_obj(
                409,
                "Conflict",
                "Operation cannot be fulfilled on deployments.apps: the object has been "
                "modified; please apply your changes to the latest version and try again",
            )
        return _replicas((doc.get("spec") or {}).get("replicas"))

    def _from_patch(self, ctype: str | None, doc: Any) -> int | tuple[int, dict[str, Any]]:
        kind = (ctype or "").split(";")[0].strip().lower()
        if kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(doc, dict):
                return 400, _status_obj(400, "BadRequest", f"a {kind} body must be an object")
            spec = doc.get("spec")
            if not isinstance(spec, dict) or "replicas" not in spec:
                return 422, _status_obj(422, "Invalid", "spec.replicas: Required value")
            return _replicas(spec["replicas"])
        if kind == "application/json-patch+json":
            if not isinstance(doc, list):
                return 400, _status_obj(
                    400,
                    "BadRequest",
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
                )
            value: Any = None
            for op in doc:
                if not isinstance(op, dict) or op.get("path") != "/spec/replicas":
                    return 422, _status_obj(422, "Invalid", "only /spec/replicas can be patched")
                if op.get("op") not in ("replace", "add"):
                    return 422, _status_obj(422, "Invalid", f"unsupported op {op.get('op')!r}")
                value = op.get("value")
            return _replicas(value)
        return 415, _status_obj(
            415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {kind}"
        )

    def _resize(self, dep: _Deployment, replicas: int) -> None:
        now = self.clock()
        if replicas != dep.replicas:
            dep.generation += 1
        if replicas > len(dep.pods):
            dep.pods += [now + self.startup_time] * (replicas - len(dep.pods))
        elif replicas < len(dep.pods):
            # unready pods go first, then the newest (ready time sorts both)
            dep.pods = sorted(dep.pods)[:replicas]
        dep.replicas = replicas
        dep.resource_version += 1

    def _meta(self, dep: _Deployment) -> dict[str, Any]:
        return {
            "name": dep.name,
            "namespace": dep.namespace,
            "resourceVersion": str(dep.resource_version),
            "generation": dep.generation,
            "uid": dep.uid,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": dep.labels,
        }

    def _scale(self, dep: _Deployment) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": self._meta(dep),
            "spec": {"replicas": dep.replicas},
            "status": {
                "replicas": len(dep.pods),
                "selector": ",".join(f"{k}={v}" for k, v in dep.labels.items()),
            },
        }

    def _deployment(self, dep: _Deployment) -> dict[str, Any]:
        now = self.clock()
        ready = sum(1 for t in dep.pods if t <= now)
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self._meta(dep),
            "spec": {
                "replicas": dep.replicas,
                "selector": {"matchLabels": dep.labels},
                "template": {
                    "metadata": {"labels": dep.labels},
                    "spec": {"containers": [{"name": dep.name, "image": "example/model-server:1"}]},
                },
            },
            "status": {
                "observedGeneration": dep.generation,
                "replicas": len(dep.pods),
                "updatedReplicas": len(dep.pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "unavailableReplicas": len(dep.pods) - ready,
            },
        }


def _replicas(value: Any) -> int | tuple[int, dict[str, Any]]:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return 422, _status_obj(
            422,
            "Invalid",
            f"spec.replicas: Invalid value: {value!r}: must be greater than or equal to 0",
        )
    return value


class _Handler(BaseHTTPRequestHandler):
    api: FakeKubernetesAPI
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        code, doc = self.api.handle(self.command, self.path, headers, body)
        out = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests
        return
