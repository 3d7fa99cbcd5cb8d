"""TaskDefinition through the operator: consumer, catalog entry, Deployment, update, drift, delete."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, NotFoundError
from natsflow_engine import catalog, layout


async def _consumer(nc: Client, tenant: str, task_type: str) -> Any:
    try:
        return await nc.jetstream().consumer_info(layout.STREAM_JOBS, layout.job_consumer(tenant, task_type))
    except NotFoundError:
        return None


async def test_apply_update_drift_delete(running: Any, nc: Client, unique: str) -> None:
    api, tenant = running.api, unique
    spec = {
        "taskType": "charge-card",
        "image": "example/worker:1",
        "module": "tasks:app",
        "concurrency": 8,
        "timeout": "45s",
        "retries": 4,
    }
    await api.create("TaskDefinition", tenant, "charge", spec)

    async def ready() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "charge")
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    obj = await running.eventually(ready)
    assert obj["status"]["observedGeneration"] == 1
    assert {c["type"] for c in obj["status"]["conditions"]} >= {
        "Ready",
        "Validated",
        "Synced",
        "ConsumerReady",
        "WorkloadReady",
    }
    info = await _consumer(nc, tenant, "charge-card")
    assert (info.config.ack_wait, info.config.max_ack_pending, info.config.max_deliver) == (45.0, 8, 5)
    entry = await (await nc.jetstream().key_value(layout.BUCKET_TASKDEFS)).get(
        layout.taskdef_key(tenant, "charge-card")
    )
    record = catalog.decode_taskdef(entry.value or b"")
    assert (record.consumer, record.concurrency, record.module) == (info.name, 8, "tasks:app")

    deployment = await api.deployment(tenant, "charge-worker")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example/worker:1"
    assert container["args"] == ["worker", "tasks:app"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NATSFLOW_TENANT"] == tenant and env["NATSFLOW_TASK_TYPE"] == "charge-card"
    assert env["NATS_URL"] == running.config.nats_url
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]

    # update: the consumer and the Deployment follow, observedGeneration moves
    await api.patch_spec(
        "TaskDefinition",
        tenant,
        "charge",
        {"concurrency": 3, "backoff": ["1s", "5s"], "image": "example/worker:2"},
    )

    async def updated() -> Any:
        info = await _consumer(nc, tenant, "charge-card")
        obj = await api.get("TaskDefinition", tenant, "charge")
        done = (
            info
            and info.config.max_ack_pending == 3
            and (obj or {}).get("status", {}).get("observedGeneration") == 2
        )
        return info if done else None

    info = await running.eventually(updated)
    assert info.config.backoff == [1.0, 5.0]
    deployment = await api.deployment(tenant, "charge-worker")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "example/worker:2"

    # drift: delete the consumer behind the operator's back -> recreated by the timer
    await nc.jetstream().delete_consumer(layout.STREAM_JOBS, info.name)
    recreated = await running.eventually(lambda: _consumer(nc, tenant, "charge-card"))
    assert recreated.config.max_ack_pending == 3

    # delete: finalizer removes consumer and catalog entry
    await api.delete("TaskDefinition", tenant, "charge")

    async def gone() -> bool:
        return await api.get("TaskDefinition", tenant, "charge") is None

    await running.eventually(gone)
    assert await _consumer(nc, tenant, "charge-card") is None
    kv = await nc.jetstream().key_value(layout.BUCKET_TASKDEFS)
    try:
        await kv.get(layout.taskdef_key(tenant, "charge-card"))
        raise AssertionError("catalog entry still present")
    except KeyNotFoundError:
        pass


async def test_nats_ref_secret_retain_and_invalid_spec(
    running: Any, nc: Client, nats_url: str, unique: str
) -> None:
    """natsRef: connection and worker env from a Secret; Retain keeps NATS objects; a spec that
    slipped past the CRD schema is reported, not applied."""
    api, tenant = running.api, unique
    await api.create_core("secrets", tenant, "tenant-nats", {"stringData": {"url": nats_url}})
    spec = {
        "taskType": "ship",
        "image": "example/worker:1",
        "natsRef": {"name": "tenant-nats"},
        "deletionPolicy": "Retain",
        "replicas": 2,
    }
    await api.create("TaskDefinition", tenant, "ship", spec)

    async def ready() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "ship")
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    await running.eventually(ready)
    deployment = await api.deployment(tenant, "ship-worker")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NATS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "tenant-nats", "key": "url"}}
    assert "NATS_CREDS" not in env

    await api.delete("TaskDefinition", tenant, "ship")

    async def gone() -> bool:
        return await api.get("TaskDefinition", tenant, "ship") is None

    await running.eventually(gone)
    assert await _consumer(nc, tenant, "ship") is not None  # retained

    await api.create("TaskDefinition", tenant, "bad", {"taskType": "bad", "timeout": "5 minutes"})

    async def rejected() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "bad")
        return obj if running.condition(obj, "Validated").get("reason") == "InvalidSpec" else None

    obj = await running.eventually(rejected)
    assert "timeout" in running.condition(obj, "Validated")["message"]
    assert await _consumer(nc, tenant, "bad") is None


async def test_without_image_no_deployment(running: Any, nc: Client, unique: str) -> None:
    """Removing the image removes the Deployment (workers run elsewhere); consumer stays."""
    api, tenant = running.api, unique
    spec = {"taskType": "remote", "concurrency": 2, "image": "example/worker:1"}
    await api.create("TaskDefinition", tenant, "remote", spec)
    await running.eventually(lambda: api.deployment(tenant, "remote-worker"))
    await api.patch_spec("TaskDefinition", tenant, "remote", {"image": None})

    async def ready() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "remote")
        status = (obj or {}).get("status") or {}
        return (
            obj
            if status.get("observedGeneration") == 2
            and running.condition(obj, "Ready").get("status") == "True"
            else None
        )

    obj = await running.eventually(ready)
    assert "WorkloadReady" not in {c["type"] for c in obj["status"]["conditions"]}
    assert await api.deployment(tenant, "remote-worker") is None
    assert (await _consumer(nc, tenant, "remote")).config.max_ack_pending == 2


async def test_foreign_deployment_is_not_taken_over(running: Any, unique: str) -> None:
    api, tenant = running.api, unique
    foreign = {"metadata": {"name": "pay-worker", "namespace": tenant}, "spec": {"replicas": 7}}
    await api.client.create(f"/apis/apps/v1/namespaces/{tenant}/deployments", foreign)
    await api.create("TaskDefinition", tenant, "pay", {"taskType": "pay", "image": "example/worker:1"})

    async def conflict() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "pay")
        return obj if running.condition(obj, "WorkloadReady").get("reason") == "DeploymentConflict" else None

    obj = await running.eventually(conflict)
    assert running.condition(obj, "Ready")["status"] == "False"
    assert running.condition(obj, "ConsumerReady")["status"] == "True"
    deployment = await api.deployment(tenant, "pay-worker")
    assert deployment is not None and deployment["spec"] == {"replicas": 7}
