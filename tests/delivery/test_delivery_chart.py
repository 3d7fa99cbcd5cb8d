"""charts/natsflow rendered by a real helm: lint, schema validation of every manifest, pod hardening.

Value combinations cover the defaults, a namespaced operator, the bundled NATS server and metrics.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
import yaml

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]

KUBE_VERSION = "1.35.0"  # kubernetes-validate schema version (strict: unknown fields are errors)
FULLNAME = "flow-natsflow"  # release "flow" (conftest) + chart name
NAMESPACE = "natsflow-system"
COMPONENTS = {"operator": "operator", "engine": "engine", "trigger-server": "trigger-server"}

COMBINATIONS: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    "namespaced": {"operator": {"watchNamespaces": ["tenant-a", "tenant-b"]}},
    "nats": {
        "nats": {
            "enabled": True,
            "credentialsSecret": {"name": "natsflow-nats-creds", "key": "sys.creds"},
            "server": {"persistence": {"enabled": True, "size": "5Gi", "storageClassName": "standard"}},
        }
    },
    "metrics": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "engine": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}},
        "image": {"digest": "sha256:" + "a" * 64},
    },
    "minimal": {"engine": {"enabled": False}, "triggerServer": {"enabled": False}},
}


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    return find(manifests, "Deployment") + find(manifests, "StatefulSet")


def env_of(container: Manifest) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize("combo", list(COMBINATIONS))
def test_helm_lint_strict(run_helm: Callable[..., subprocess.CompletedProcess[str]], combo: str) -> None:
    proc = run_helm("lint", COMBINATIONS[combo], "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("combo", list(COMBINATIONS))
def test_every_manifest_is_valid_kubernetes(render: Render, combo: str) -> None:
    manifests = render(COMBINATIONS[combo])
    assert manifests
    for m in manifests:
        where = f"{m.get('kind')}/{m.get('metadata', {}).get('name')}"
        assert yaml.safe_load(yaml.safe_dump(m)) == m, f"{where} does not survive a YAML round trip"
        if m["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # not a built-in kind: checked in test_service_monitor
        try:
            kubernetes_validate.validate(m, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{combo}: {where} is invalid: {exc.message} at {list(exc.path)}")
        labels = m["metadata"].get("labels", {})
        if m["kind"] != "CustomResourceDefinition":
            assert labels.get("app.kubernetes.io/part-of") == "natsflow", where
            assert labels.get("app.kubernetes.io/instance") == "flow", where
            assert labels.get("app.kubernetes.io/managed-by") == "Helm", where


def test_validation_really_rejects_a_broken_manifest(render: Render) -> None:
    deployment = find(render(), "Deployment")[0]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("combo", list(COMBINATIONS))
def test_pods_are_hardened(render: Render, combo: str) -> None:
    for w in workloads(render(COMBINATIONS[combo])):
        pod = w["spec"]["template"]["spec"]
        name = w["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["runAsNonRoot"] is True, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
        # readOnlyRootFilesystem needs a writable /tmp
        mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts or w["kind"] == "StatefulSet", name


@pytest.mark.parametrize("combo", ["defaults", "namespaced", "nats", "metrics"])
def test_components_probes_ports_args_env(render: Render, combo: str) -> None:
    manifests = render(COMBINATIONS[combo])
    for component in COMPONENTS:
        d = one(manifests, "Deployment", f"{FULLNAME}-{component}")
        tmpl = d["spec"]["template"]
        (c,) = tmpl["spec"]["containers"]
        assert c["args"][0] == component
        assert c["args"] == [component] or combo == "namespaced"
        assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
        env = env_of(c)
        assert env["NATSFLOW_LOG_FORMAT"] == "json"
        assert env["NATS_URL"] and env["NATS_URL"].startswith("nats://")
        assert env["NATSFLOW_HEALTH_PORT"] == "8080"
        ann = tmpl["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "8080"
        assert ann["prometheus.io/path"] == "/metrics"
        selector = d["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        assert selector.items() <= tmpl["metadata"]["labels"].items()
        (spread,) = tmpl["spec"]["topologySpreadConstraints"]
        assert spread["labelSelector"]["matchLabels"] == selector
        assert spread["topologyKey"] == "kubernetes.io/hostname"


def test_operator_runs_once_with_recreate_and_its_own_token(render: Render) -> None:
    manifests = render()
    op = one(manifests, "Deployment", f"{FULLNAME}-operator")
    assert op["spec"]["replicas"] == 1
    assert op["spec"]["strategy"] == {"type": "Recreate"}
    pod = op["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"{FULLNAME}-operator"
    assert pod["automountServiceAccountToken"] is True
    assert pod["containers"][0]["args"] == ["operator"]  # no --namespace: cluster-wide
    assert "NATSFLOW_WORKER_NATS_URL" not in env_of(pod["containers"][0])
    for component in ("engine", "trigger-server"):
        d = one(manifests, "Deployment", f"{FULLNAME}-{component}")
        pod = d["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, "engine and trigger server never call the API"
        assert pod["serviceAccountName"] == f"{FULLNAME}-workload"
        assert d["spec"]["replicas"] == 2
        assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert {sa["metadata"]["name"] for sa in find(manifests, "ServiceAccount")} == {
        f"{FULLNAME}-operator",
        f"{FULLNAME}-workload",
    }


def test_disruption_budgets_select_engine_and_trigger_server(render: Render) -> None:
    manifests = render()
    pdbs = {p["metadata"]["name"]: p for p in find(manifests, "PodDisruptionBudget")}
    assert set(pdbs) == {f"{FULLNAME}-engine", f"{FULLNAME}-trigger-server"}
    for name, pdb in pdbs.items():
        d = one(manifests, "Deployment", name)
        assert pdb["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["minAvailable"] == 1
    minimal = render(COMBINATIONS["minimal"])
    assert not find(minimal, "PodDisruptionBudget")
    assert [d["metadata"]["name"] for d in find(minimal, "Deployment")] == [f"{FULLNAME}-operator"]
    assert [s["metadata"]["name"] for s in find(minimal, "ServiceAccount")] == [f"{FULLNAME}-operator"]


def test_default_nats_connection_without_credentials(render: Render) -> None:
    manifests = render()
    assert not find(manifests, "StatefulSet")
    for d in find(manifests, "Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert env_of(c)["NATS_URL"] == "nats://nats.nats.svc:4222"  # resolvable from tenant namespaces
        assert "NATS_CREDS" not in env_of(c)
        assert "NATSFLOW_TENANT_MODE" not in env_of(c)  # nothing reads it: removed


def test_bundled_nats_and_credentials_secret(render: Render) -> None:
    manifests = render(COMBINATIONS["nats"])
    sts = one(manifests, "StatefulSet", f"{FULLNAME}-nats")
    svc = one(manifests, "Service", f"{FULLNAME}-nats")
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    (server,) = sts["spec"]["template"]["spec"]["containers"]
    assert server["command"] == ["nats-server"] and server["image"] == "natsflow:0.1.0"
    conf = one(manifests, "ConfigMap", f"{FULLNAME}-nats")["data"]["nats.conf"]
    assert "jetstream" in conf and "store_dir: /data" in conf
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "standard"
    for d in find(manifests, "Deployment"):
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = env_of(c)
        assert env["NATS_URL"] == f"nats://{FULLNAME}-nats.{NAMESPACE}.svc:4222"
        mount = next(m for m in c["volumeMounts"] if m["name"] == "nats-creds")
        assert mount["readOnly"] is True
        assert env["NATS_CREDS"] == f"{mount['mountPath']}/sys.creds"
        volume = next(v for v in pod["volumes"] if v["name"] == "nats-creds")
        assert volume["secret"]["secretName"] == "natsflow-nats-creds"
        assert volume["secret"]["items"] == [{"key": "sys.creds", "path": "sys.creds"}]


def test_operator_worker_defaults(render: Render) -> None:
    values = {
        "operator": {"workers": {"natsUrl": "nats://nats.example:4222", "credentialsSecret": "worker-creds"}}
    }
    op = one(render(values), "Deployment", f"{FULLNAME}-operator")
    (c,) = op["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["operator", "--worker-creds-secret", "worker-creds"]
    assert env_of(c)["NATSFLOW_WORKER_NATS_URL"] == "nats://nats.example:4222"


def test_explicit_nats_url_wins(render: Render) -> None:
    url = "tls://nats-a.nats:4222,tls://nats-b.nats:4222"
    manifests = render({"nats": {"enabled": True, "url": url}})
    for d in find(manifests, "Deployment"):
        assert env_of(d["spec"]["template"]["spec"]["containers"][0])["NATS_URL"] == url


def test_service_monitor_and_hpa(render: Render) -> None:
    manifests = render(COMBINATIONS["metrics"])
    (sm,) = find(manifests, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    selector = sm["spec"]["selector"]["matchLabels"]
    services = [s for s in find(manifests, "Service") if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in services} == {f"{FULLNAME}-{c}" for c in COMPONENTS}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    for s in services:
        assert endpoint["port"] in {p["name"] for p in s["spec"]["ports"]}
        d = one(manifests, "Deployment", s["metadata"]["name"])
        assert s["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}

    hpa = one(manifests, "HorizontalPodAutoscaler", f"{FULLNAME}-engine")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{FULLNAME}-engine"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    engine = one(manifests, "Deployment", f"{FULLNAME}-engine")
    assert "replicas" not in engine["spec"], "with an HPA the Deployment must not pin replicas"
    assert engine["spec"]["template"]["spec"]["containers"][0]["image"] == "natsflow@sha256:" + "a" * 64
    assert not find(render(), "ServiceMonitor") and not find(render(), "HorizontalPodAutoscaler")


def test_notes_explain_crd_upgrades(run_helm: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    proc = run_helm("install", {"operator": {"watchNamespaces": ["tenant-a"]}}, "--dry-run=client")
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "watching namespaces: tenant-a" in notes
    assert "kubectl apply --server-side -f charts/natsflow/crds/" in notes
