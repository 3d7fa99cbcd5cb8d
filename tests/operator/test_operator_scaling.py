"""The autoscaler end to end: jobs pile up in JetStream, the worker Deployment follows."""

from __future__ import annotations

from typing import Any

import aiohttp
import kmock
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from natsflow_engine import layout


def _scaled_events(k8s: kmock.KubernetesEmulator) -> list[dict[str, Any]]:
    return [
        r.data
        for r in k8s
        if r.method == kmock.method.POST and r.resource is not None and r.resource.plural == "events"
        if isinstance(r.data, dict) and r.data.get("reason") == "Scaled"
    ]


@pytest.mark.parametrize("min_replicas", [0, 1])
async def test_backlog_scales_up_then_back_to_min_after_cooldown(
    running: Any, k8s: kmock.KubernetesEmulator, nc: Client, unique: str, min_replicas: int
) -> None:
    api, tenant, task_type = running.api, unique, "resize-image"
    await api.create(
        "TaskDefinition",
        tenant,
        "resize",
        {
            "taskType": task_type,
            "image": "example/worker:1",
            "module": "tasks:app",
            "concurrency": 500,  # ceil(500 / 50): up to 10 replicas can have jobs in flight
            "autoscaling": {
                "enabled": True,
                "minReplicas": min_replicas,
                "maxReplicas": 10,
                "targetPendingPerReplica": 50,
                "pollingInterval": "0.2s",
                "cooldownPeriod": "1s",
                "scaleDownStabilization": "1s",
            },
        },
    )

    async def replicas(count: int) -> dict[str, Any] | None:
        found = await api.deployment(tenant, "resize-worker")
        return found if found and found["spec"].get("replicas") == count else None

    await running.eventually(lambda: replicas(min_replicas))
    js = nc.jetstream()
    subject = layout.job_subject(tenant, task_type)
    for i in range(200):
        await js.publish(subject, b"{}", headers={"Nats-Msg-Id": f"{tenant}-{i}"})

    await running.eventually(lambda: replicas(4))  # ceil(200 / 50), reachable in one step from 0 or 1

    async def status_shows_backlog() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "resize")
        status = (obj or {}).get("status") or {}
        active = running.condition(obj, "ScalingActive").get("status") == "True"  # may come in a later patch
        return obj if status.get("pending") == 200 and status.get("replicas") == 4 and active else None

    obj = await running.eventually(status_shows_backlog)
    assert obj["status"]["desiredReplicas"] == 4
    assert obj["status"]["lastActiveTime"]
    assert running.condition(obj, "ScalingActive")["status"] == "True"

    await js.purge_stream(layout.STREAM_JOBS, subject=subject)  # the backlog drains
    await running.eventually(lambda: replicas(min_replicas), timeout=8)

    async def both_events() -> list[str] | None:  # Kopf posts events in the background
        messages = [str(e.get("message", "")) for e in _scaled_events(k8s)]
        moves = [m.partition(":")[0] for m in messages]  # "0 -> 4"
        # a poll may see the backlog while it is still being published ("0 -> 1", "1 -> 4")
        up = any(m.endswith(" -> 4") for m in moves)
        down = any(m.startswith("4 -> ") for m in moves) and moves[-1].endswith(f" -> {min_replicas}")
        return messages if up and down else None

    await running.eventually(both_events, timeout=5)

    async with aiohttp.ClientSession(f"http://127.0.0.1:{running.config.health_port}") as http:
        for path in ("/healthz", "/readyz"):
            async with http.get(path) as response:
                assert response.status == 200, path
        async with http.get("/metrics") as response:
            metrics = await response.text()
    assert (
        f'natsflow_autoscaler_decisions_total{{direction="up",taskdefinition="resize",tenant="{tenant}"}}'
        in metrics
    )
    assert f'natsflow_jobs_pending{{task_type="{task_type}",tenant="{tenant}"}} 0.0' in metrics


async def test_metric_error_keeps_replicas(running: Any, unique: str) -> None:
    """NATS cannot be read (natsRef points at a missing Secret): ScalingActive=False, count kept."""
    api, tenant = running.api, unique
    spec = {
        "taskType": "flaky",
        "image": "example/worker:1",
        "replicas": 2,
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5, "pollingInterval": "0.2s"},
    }
    await api.create("TaskDefinition", tenant, "flaky", spec)

    async def scaling_active() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "flaky")
        return obj if running.condition(obj, "ScalingActive").get("status") == "True" else None

    await running.eventually(scaling_active)
    await api.patch_spec("TaskDefinition", tenant, "flaky", {"natsRef": {"name": "no-such-secret"}})

    async def metric_unavailable() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "flaky")
        return obj if running.condition(obj, "ScalingActive").get("reason") == "MetricUnavailable" else None

    obj = await running.eventually(metric_unavailable)
    assert running.condition(obj, "ScalingActive")["status"] == "False"
    deployment = await api.deployment(tenant, "flaky-worker")
    assert deployment is not None and deployment["spec"]["replicas"] == 2


async def test_brings_own_deployment_is_scaled(running: Any, nc: Client, unique: str) -> None:
    """Without image/podTemplate the autoscaler scales the user's `<name>-worker` Deployment."""
    api, tenant = running.api, unique
    own = {"metadata": {"name": "mail-worker", "namespace": tenant}, "spec": {"replicas": 1}}
    await api.client.create(f"/apis/apps/v1/namespaces/{tenant}/deployments", own)
    scaling = {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "pollingInterval": "0.2s"}
    await api.create(
        "TaskDefinition",
        tenant,
        "mail",
        {"taskType": "mail", "concurrency": 40, "workerConcurrency": 5, "autoscaling": scaling},
    )
    js = nc.jetstream()
    await running.eventually(lambda: _consumer_exists(js, tenant))
    for i in range(40):  # 40 jobs at 5 per replica: 8, clamped to maxReplicas 3
        await js.publish(layout.job_subject(tenant, "mail"), b"{}", headers={"Nats-Msg-Id": f"{tenant}-{i}"})

    async def scaled() -> bool:
        found = await api.deployment(tenant, "mail-worker")
        return bool(found and found["spec"]["replicas"] == 3)

    await running.eventually(scaled)


async def _consumer_exists(js: Any, tenant: str) -> bool:
    try:
        await js.consumer_info(layout.STREAM_JOBS, layout.job_consumer(tenant, "mail"))
    except NotFoundError:
        return False
    return True
