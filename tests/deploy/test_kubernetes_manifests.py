"""The Kubernetes manifests (``deploy/kubernetes``) against the code they run.

* Every object is one the official client's models describe, field by field (a misspelt or
  misplaced key fails, naming its path).
* The kustomization lists every manifest and config file, and nothing else.
* Each Deployment's pod gets what its config needs: the config file it names is the one its
  ConfigMap mounts; with the environment the pod spec gives it (the Secret made as the
  kustomization's comment says, the downward API's name and IP), the config loads, the
  gateway may listen beyond loopback (the admin key's hash is there), the reporter's key is
  one the gateway accepts, and the candidate's Lease URL resolves to its own address.
* A real ``prsm-perf serve`` runs the candidate's config, pointed at :class:`FakeKubernetesAPI`
  instead of the cluster (the only override): it takes the Lease, its probes answer, and on
  SIGTERM it hands the Lease back. Every call it made, and the Deployment scaler's, is one the
  Role allows, and every right the Role grants is used (least privilege).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prsm.performance.config import PRSMConfig, load_config
from prsm.performance.gateway._settings import check_exposure, hash_key
from prsm.performance.scaling import FakeKubernetesAPI
from prsm.performance.serve._pod_links import check_pod_sections
from prsm.performance.serve._pod_report import report_key
from prsm.performance.serve._pod_standby import candidate
from tests.conftest import free_port
from tests.gateway.procs import Proc, wait_for

from ..benchmarks.quick import need

HERE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KEY = "the-admin-key-made-for-this-test-9b1e"
SECRET = {"prsm-admin": {"key": KEY, "sha256": f"[{hash_key(KEY)}]"}}
POD = {"metadata.name": "prsm-scalers-5d8f-x2k4p", "status.podIP": "127.0.0.1"}
TOKEN, TOKEN_ENV = "fake-api-token-77c3", "PRSM_TEST_MANIFEST_KUBE_TOKEN"


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"]
            for doc in yaml.safe_load_all((HERE / name).read_text()) if doc]  # fmt: skip


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


# -- the objects' fields ---------------------------------------------------------------------


def check_fields(value: Any, type_name: str, path: str) -> None:
    """``value`` fits the client's model ``type_name`` (recursively), else AssertionError."""
    import kubernetes.client as k8s

    if type_name.startswith("list["):
        assert isinstance(value, list), f"{path}: a list expected"
        for i, item in enumerate(value):
            check_fields(item, type_name[5:-1], f"{path}[{i}]")
        return
    if type_name.startswith(("dict(", "dict[")):  # the client writes both
        assert isinstance(value, dict), f"{path}: a mapping expected"
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check_fields(item, inner, f"{path}.{key}")
        return
    primitive: dict[str, type | tuple[type, ...]] = {
        "str": str, "int": int, "bool": bool, "object": (str, int)}  # fmt: skip
    if type_name in primitive:
        assert isinstance(value, primitive[type_name]), f"{path}: {type_name} expected"
        return
    model = getattr(k8s, type_name)
    assert isinstance(value, dict), f"{path}: a {type_name} expected"
    fields = {json: attr for attr, json in model.attribute_map.items()}
    for key, item in value.items():
        assert key in fields, f"{path}.{key}: not a field of {type_name}"
        check_fields(item, model.openapi_types[fields[key]], f"{path}.{key}")


def test_every_object_is_what_the_api_describes() -> None:
    need("kubernetes", extra="kubernetes")
    docs = manifests()
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Role", "RoleBinding", "Deployment",
                                         "Service", "PodDisruptionBudget"}  # fmt: skip
    for doc in docs:
        version = doc["apiVersion"].rsplit("/", 1)[-1].capitalize()
        check_fields(doc, f"{version}{doc['kind']}", doc["kind"])
    with pytest.raises(AssertionError, match="replica: not a field"):
        check_fields({"spec": {"replica": 2}}, "V1Deployment", "Deployment")


def test_the_kustomization_names_every_file_once() -> None:
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    files = {p.relative_to(HERE).as_posix() for p in HERE.rglob("*.yaml")}
    named = set(kustomization["resources"])
    named |= {f for gen in kustomization["configMapGenerator"] for f in gen["files"]}
    assert files - {"kustomization.yaml"} == named


# -- each pod's config -----------------------------------------------------------------------


def pod_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as Kubernetes fills it in."""
    env = {}
    for var in container.get("env", []):
        source = var.get("valueFrom")
        if source is None:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[var["name"]] = SECRET[ref["name"]][ref["key"]]
        else:
            env[var["name"]] = POD[source["fieldRef"]["fieldPath"]]
    return env


def pod_config(name: str) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """The config file the Deployment ``name``'s gateway reads (through its ConfigMap mount),
    the environment its pod spec gives it, and its container."""
    spec = objects("Deployment")[name]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = container["args"]
    assert args[:2] == ["serve", "--config"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    directory, file = args[2].rsplit("/", 1)
    assert volumes[mounts[directory]]["configMap"]["name"] == "prsm-config"
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    (generated,) = [g for g in kustomization["configMapGenerator"] if g["name"] == "prsm-config"]
    (path,) = [HERE / f for f in generated["files"] if f.rsplit("/", 1)[-1] == file]
    return path, pod_env(container), container


@pytest.mark.parametrize("deployment", ["prsm-scalers", "prsm-gateway"])
def test_each_pod_gets_what_its_config_needs(
    monkeypatch: pytest.MonkeyPatch, deployment: str
) -> None:
    path, env, container = pod_config(deployment)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config: PRSMConfig = load_config(path)
    gw = config.gateway
    check_exposure(gw, gw.host)  # it listens beyond loopback: the admin key's hash is set
    assert gw.host == "0.0.0.0" and hash_key(KEY) in gw.admin_key_sha256
    assert report_key(config.scaling_report) == KEY  # what it reports with, the scalers take
    check_pod_sections(config)
    assert [p["containerPort"] for p in container["ports"]] == [gw.port]
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    pod = objects("Deployment")[deployment]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > gw.shutdown_grace + 5  # after the preStop
    kube = config.kubernetes
    if deployment == "prsm-scalers":
        assert pod["serviceAccountName"] == "prsm-scaler"
        assert kube.namespace == kustomization["namespace"]
        assert candidate(config) == (POD["metadata.name"], f"http://127.0.0.1:{gw.port}")
        assert config.nodes[0]["id"] == kube.node == config.scaling_report.node
    else:
        assert pod["automountServiceAccountToken"] is False and not kube.enabled
        service = config.scaling_report.url.removeprefix("http://").split(":")[0]
        selector = objects("Service")[service]["spec"]["selector"]
        labels = objects("Deployment")["prsm-scalers"]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()  # reports reach the candidates


# -- the Role against the calls --------------------------------------------------------------

API = re.compile(r"/apis/(?P<group>[^/]+)/v1/namespaces/(?P<ns>[^/]+)/(?P<res>[^/?]+)"
                 r"(?:/(?P<name>[^/?]+))?(?P<sub>/scale)?")  # fmt: skip
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}


def rights(method: str, path: str) -> tuple[str, str, str, str | None]:
    m = API.match(path)
    assert m is not None, path
    return m["group"], m["res"] + (m["sub"] or ""), VERBS[method], m["name"]


def allowed(rules: list[dict[str, Any]], right: tuple[str, str, str, str | None]) -> list[int]:
    group, resource, verb, name = right
    return [i for i, r in enumerate(rules) if group in r["apiGroups"] and resource in
            r["resources"] and verb in r["verbs"] and (
                "resourceNames" not in r or name in r["resourceNames"])]  # fmt: skip


@pytest.mark.integration
def test_the_role_grants_what_the_candidate_calls_and_no_more(tmp_path: Path) -> None:
    need("kubernetes", extra="kubernetes")
    from prsm.performance.scaling import KubernetesBackend

    path, env, _ = pod_config("prsm-scalers")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeKubernetesAPI(token=TOKEN) as api:
        config = load_config(path, environ=env)
        api.add_deployment(config.kubernetes.deployment, namespace=config.kubernetes.namespace)
        # the cluster's API server is the fake one, the pod's address loopback: nothing else
        moved = {"PRSM_KUBERNETES__IN_CLUSTER": "false", "PRSM_KUBERNETES__HOST": api.url,
                 "PRSM_KUBERNETES__TOKEN_ENV": TOKEN_ENV, TOKEN_ENV: TOKEN,
                 "PRSM_KUBERNETES__LEADER_ELECTION__URL": f"http://${{POD_IP}}:{port}",
                 "PRSM_SCALING_REPORT__URL": url}  # fmt: skip
        pod = Proc(["serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
                   port, {**env, **moved})  # fmt: skip
        try:
            lease = config.kubernetes.leader_election.lease
            namespace = config.kubernetes.namespace
            held = wait_for(lambda: (api.lease(lease, namespace) or {}).get("spec", {}))
            assert held.get("holderIdentity") == POD["metadata.name"], held
            for probe in ("/readyz", "/healthz"):
                assert httpx.get(url + probe, timeout=10).status_code == 200
        finally:
            pod.stop()  # SIGTERM: the leader hands the Lease back
        assert (api.lease(lease, namespace) or {})["spec"]["holderIdentity"] == ""
        kube = load_config(path, environ={**env, **moved}).kubernetes
        backend = KubernetesBackend(kube.deployment, kube.namespace,
                                    client=kube.api_client({TOKEN_ENV: TOKEN}))  # fmt: skip

        async def scale() -> None:
            await backend.scale_to(2)
            await backend.close()

        asyncio.run(scale())
        assert api.replicas(kube.deployment, kube.namespace) == 2
        (role,) = objects("Role").values()
        used = set()
        calls = {rights(method, p) for method, p, _ in api.requests}
        for right in calls:
            grants = allowed(role["rules"], right)
            assert grants, f"the Role does not allow {right}"
            used |= {(i, right[2]) for i in grants}
        granted = {(i, verb) for i, rule in enumerate(role["rules"]) for verb in rule["verbs"]}
        assert granted == used, f"granted but never used: {granted - used}"
        assert ("coordination.k8s.io", "leases", "update", lease) in calls  # renewed, released
        (binding,) = objects("RoleBinding").values()
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prsm-scaler"}]
