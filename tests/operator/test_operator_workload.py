"""The worker Deployment: drift of a hand-edited template, replicas left to another scaler, Pod
Security ``restricted``, the podTemplate allow-list and the ServiceAccount label."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from natsflow_engine import layout
from natsflow_operator.autoscale import History, decide
from natsflow_operator.models import TaskDefinitionSpec
from natsflow_operator.podpolicy import pod_template_problems
from natsflow_operator.scaler import policy_of
from natsflow_operator.workload import NatsEnv, build_deployment
from pydantic import ValidationError

RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The checks of Pod Security Standards ``restricted`` (kubernetes.io/docs/concepts/security/
    pod-security-standards), written out independently of the operator's code."""
    bad = [f"{key}" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    pod_ctx = pod.get("securityContext") or {}
    for volume in pod.get("volumes") or []:
        if set(volume) - {"name"} - RESTRICTED_VOLUMES:
            bad.append(f"volume {volume['name']}")
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        ctx = container.get("securityContext") or {}
        name = container.get("name")
        if ctx.get("privileged"):
            bad.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: capabilities")
        if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")) or ctx.get("runAsNonRoot") is False:
            bad.append(f"{name}: runAsNonRoot")
        if 0 in (ctx.get("runAsUser"), pod_ctx.get("runAsUser")):
            bad.append(f"{name}: runAsUser 0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile")
        if any(p.get("hostPort") for p in container.get("ports") or []):
            bad.append(f"{name}: hostPort")
    return bad


def _pod(spec: dict[str, Any]) -> dict[str, Any]:
    parsed = TaskDefinitionSpec.model_validate(spec)
    deployment = build_deployment("shop", "w", parsed, NatsEnv(url="nats://x:4222"), replicas=None)
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_generated_pods_pass_pod_security_restricted() -> None:
    plain = _pod({"taskType": "t", "image": "example/worker:1"})
    assert restricted_violations(plain) == []
    assert plain["automountServiceAccountToken"] is False
    template = {
        "spec": {
            "containers": [
                {"name": "worker", "securityContext": {"runAsUser": 10001}},
                {"name": "sidecar", "image": "example/proxy:1"},
            ],
            "initContainers": [{"name": "init", "image": "example/init:1"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        }
    }
    pod = _pod({"taskType": "t", "image": "example/worker:1", "podTemplate": template})
    assert restricted_violations(pod) == []
    assert pod["containers"][0]["securityContext"]["runAsUser"] == 10001  # kept


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ({"spec": {"hostNetwork": True}}, "spec.hostNetwork"),
        ({"spec": {"hostPID": True}}, "spec.hostPID"),
        ({"spec": {"serviceAccountName": "admin"}}, "spec.serviceAccountName"),
        ({"spec": {"automountServiceAccountToken": True}}, "spec.automountServiceAccountToken"),
        ({"spec": {"nodeName": "n1"}}, "spec.nodeName"),
        ({"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}, "spec.volumes[0].hostPath"),
        ({"spec": {"containers": [{"name": "w", "securityContext": {"privileged": True}}]}}, "privileged"),
        (
            {"spec": {"containers": [{"name": "w", "securityContext": {"runAsUser": 0}}]}},
            "runAsUser must not be 0",
        ),
        ({"spec": {"securityContext": {"sysctls": []}}}, "spec.securityContext.sysctls"),
        (
            {"spec": {"containers": [{"name": "w", "ports": [{"containerPort": 80, "hostPort": 80}]}]}},
            "hostPort",
        ),
        (
            {"spec": {"initContainers": [{"name": "i", "securityContext": {"capabilities": {}}}]}},
            "capabilities",
        ),
        ({"metadata": {"ownerReferences": []}}, "metadata.ownerReferences"),
    ],
)
def test_pod_template_allow_list_refuses(template: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in pod_template_problems(template)), pod_template_problems(template)
    with pytest.raises(ValidationError, match="podTemplate"):
        TaskDefinitionSpec.model_validate({"taskType": "t", "image": "x", "podTemplate": template})


def test_autoscaler_target_is_one_pods_concurrency_and_replicas_stop_where_work_stops() -> None:
    spec = TaskDefinitionSpec.model_validate(
        {"taskType": "t", "concurrency": 32, "workerConcurrency": 8, "autoscaling": {"enabled": True}}
    )
    assert spec.autoscaling is not None
    policy = policy_of(spec, spec.autoscaling)
    assert policy.target == 8
    # 1,000 jobs waiting, but only 32 can be in flight: 4 pods of 8, not maxReplicas (10)
    assert decide(policy, 4, 1000, 0.0, History()).replicas == 4
    assert decide(policy, 1, 20, 0.0, History()).replicas == 3  # ceil(20 / 8)


async def _consumer(nc: Client, tenant: str, task_type: str) -> Any:
    try:
        return await nc.jetstream().consumer_info(layout.STREAM_JOBS, layout.job_consumer(tenant, task_type))
    except NotFoundError:
        return None


async def _drift_passes(running: Any, nc: Client, tenant: str, task_type: str, count: int = 2) -> None:
    """Wait until at least ``count - 1`` whole drift passes ran: each recreates a deleted consumer
    before it looks at the Deployment, so the second recreation follows a finished pass."""
    for _ in range(count):
        info = await running.eventually(lambda: _consumer(nc, tenant, task_type))
        await nc.jetstream().delete_consumer(layout.STREAM_JOBS, info.name)
    await running.eventually(lambda: _consumer(nc, tenant, task_type))


async def test_hand_edited_template_is_corrected_restart_mark_kept(
    running: Any, nc: Client, unique: str
) -> None:
    api, tenant = running.api, unique
    await api.create("TaskDefinition", tenant, "edit", {"taskType": "edit", "image": "example/worker:1"})
    original = await running.eventually(lambda: api.deployment(tenant, "edit-worker"))
    path = f"/apis/apps/v1/namespaces/{tenant}/deployments/edit-worker"
    await api.client.json_patch(
        path,
        [
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil/miner:1"},
            {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": True},
        ],
    )

    async def corrected() -> dict[str, Any] | None:
        found = await api.deployment(tenant, "edit-worker")
        pod = (found or {}).get("spec", {}).get("template", {}).get("spec", {})
        return found if pod.get("containers", [{}])[0].get("image") == "example/worker:1" else None

    fixed = await running.eventually(corrected)
    assert "hostNetwork" not in fixed["spec"]["template"]["spec"]
    assert fixed["spec"]["template"] == original["spec"]["template"]

    # `kubectl rollout restart` marks the template; that is not drift and the mark stays
    mark = {"kubectl.kubernetes.io/restartedAt": "2026-12-04T20:00:00Z"}
    await api.client.merge_patch(path, {"spec": {"template": {"metadata": {"annotations": mark}}}})
    await _drift_passes(running, nc, tenant, "edit")
    found = await api.deployment(tenant, "edit-worker")
    assert found is not None
    assert found["spec"]["template"]["metadata"]["annotations"] == mark


async def test_without_replicas_the_count_belongs_to_another_scaler(
    running: Any, nc: Client, unique: str
) -> None:
    api, tenant = running.api, unique
    await api.create("TaskDefinition", tenant, "hpa", {"taskType": "hpa", "image": "example/worker:1"})
    await running.eventually(lambda: api.deployment(tenant, "hpa-worker"))
    # an HorizontalPodAutoscaler (or KEDA) scales through the scale subresource
    scale = f"/apis/apps/v1/namespaces/{tenant}/deployments/hpa-worker/scale"
    await api.client.merge_patch(scale, {"spec": {"replicas": 5}})
    await _drift_passes(running, nc, tenant, "hpa")
    found = await api.deployment(tenant, "hpa-worker")
    assert found is not None and found["spec"]["replicas"] == 5

    # a fixed count in the TaskDefinition is the operator's again
    await api.patch_spec("TaskDefinition", tenant, "hpa", {"replicas": 2})

    async def fixed() -> bool:
        found = await api.deployment(tenant, "hpa-worker")
        return bool(found and found["spec"].get("replicas") == 2)

    await running.eventually(fixed)


async def test_pod_template_and_service_account_are_restricted(running: Any, unique: str) -> None:
    api, tenant = running.api, unique
    host = {"spec": {"hostNetwork": True, "containers": [{"name": "worker"}]}}
    await api.create(
        "TaskDefinition", tenant, "host", {"taskType": "host", "image": "x/y:1", "podTemplate": host}
    )

    async def refused(name: str, reason: str) -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, name)
        return obj if running.condition(obj, "Validated").get("reason") == reason else None

    obj = await running.eventually(lambda: refused("host", "InvalidSpec"))
    assert "spec.hostNetwork is not allowed" in running.condition(obj, "Validated")["message"]
    assert running.condition(obj, "Stalled")["status"] == "True"
    assert await api.deployment(tenant, "host-worker") is None

    await api.create_core("serviceaccounts", tenant, "powerful", {})
    spec = {"taskType": "sa", "image": "x/y:1", "serviceAccountName": "powerful"}
    await api.create("TaskDefinition", tenant, "sa", spec)
    obj = await running.eventually(lambda: refused("sa", "ServiceAccountNotAllowed"))
    assert "natsflow.io/worker" in running.condition(obj, "Validated")["message"]
    assert await api.deployment(tenant, "sa-worker") is None

    labelled = {"metadata": {"name": "runner", "namespace": tenant, "labels": {"natsflow.io/worker": "true"}}}
    await api.client.create(f"/api/v1/namespaces/{tenant}/serviceaccounts", labelled)
    await api.patch_spec("TaskDefinition", tenant, "sa", {"serviceAccountName": "runner"})
    deployment = await running.eventually(lambda: api.deployment(tenant, "sa-worker"))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runner" and "automountServiceAccountToken" not in pod
    assert restricted_violations(pod) == []
