"""Workflow through the operator: deploy, new version on change, invalid BPMN, ConfigMap, delete."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from natsflow_engine import layout
from natsflow_engine.natsutil import list_keys
from natsflow_engine.runtime.definitions import get_latest

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="https://example.com">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:serviceTask id="work" name="{label}">
      <bpmn:extensionElements><zeebe:taskDefinition type="work"/></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="{end}"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def bpmn(pid: str = "order", label: str = "Work", end: str = "end") -> str:
    return BPMN.format(pid=pid, label=label, end=end)


async def _keys(nc: Client, tenant: str) -> list[str]:
    return sorted(await list_keys(await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS), f"{tenant}.>"))


def _status_is(running: Any, api: Any, tenant: str, name: str, **expected: Any) -> Any:
    async def probe() -> dict[str, Any] | None:
        obj = await api.get("Workflow", tenant, name)
        status = (obj or {}).get("status") or {}
        return obj if all(status.get(k) == v for k, v in expected.items()) else None

    return probe


async def test_deploy_update_delete(running: Any, nc: Client, unique: str) -> None:
    api, tenant = running.api, unique
    await api.create("Workflow", tenant, "order", {"bpmn": bpmn()})
    obj = await running.eventually(_status_is(running, api, tenant, "order", observedGeneration=1, version=1))
    assert running.condition(obj, "Ready")["status"] == "True"
    assert running.condition(obj, "Validated")["status"] == "True"
    assert running.condition(obj, "Synced")["status"] == "True"
    assert obj["status"]["processIds"] == ["order"]
    kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
    latest = await get_latest(kv, tenant, "order")
    assert (latest.version, latest.source_hash) == (1, obj["status"]["contentHash"])

    # a changed document deploys version 2; observedGeneration follows
    await api.patch_spec("Workflow", tenant, "order", {"bpmn": bpmn(label="Work harder")})
    obj = await running.eventually(_status_is(running, api, tenant, "order", observedGeneration=2, version=2))
    assert (await get_latest(kv, tenant, "order")).version == 2

    # drift: the latest pointer and versions purged behind the operator's back come back
    for key in await _keys(nc, tenant):
        await kv.purge(key)

    async def redeployed() -> Any:
        return (await _keys(nc, tenant)) == [f"{tenant}.order.latest", f"{tenant}.order.v1"]

    await running.eventually(redeployed)  # both keys: the version first, then the pointer
    assert (await get_latest(kv, tenant, "order")).source_hash == obj["status"]["contentHash"]

    await api.delete("Workflow", tenant, "order")

    async def gone() -> bool:
        return await api.get("Workflow", tenant, "order") is None

    await running.eventually(gone)
    # undeployed: no latest pointer, the version stays for instances in flight (the drift step
    # above purged every key, so the redeployed document is v1 again)
    assert await _keys(nc, tenant) == [f"{tenant}.order.v1"]


async def test_invalid_bpmn_reports_line_and_writes_nothing(running: Any, nc: Client, unique: str) -> None:
    api, tenant = running.api, unique
    await api.create("Workflow", tenant, "broken", {"bpmn": bpmn(end="nowhere")})

    async def invalid() -> dict[str, Any] | None:
        obj = await api.get("Workflow", tenant, "broken")
        return obj if running.condition(obj, "Validated").get("status") == "False" else None

    obj = await running.eventually(invalid)
    validated = running.condition(obj, "Validated")
    assert validated["reason"] == "InvalidBpmn"
    assert "line 10" in validated["message"] and "nowhere" in validated["message"]
    assert running.condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["observedGeneration"] == 1
    assert await _keys(nc, tenant) == []

    # fixing the document deploys it
    await api.patch_spec("Workflow", tenant, "broken", {"bpmn": bpmn(pid="fixed")})
    await running.eventually(_status_is(running, api, tenant, "broken", observedGeneration=2, version=1))
    assert await _keys(nc, tenant) == [f"{tenant}.fixed.latest", f"{tenant}.fixed.v1"]


async def test_bpmn_from_configmap_and_retain(running: Any, nc: Client, unique: str) -> None:
    api, tenant = running.api, unique
    spec = {
        "bpmnFrom": {"configMapKeyRef": {"name": "models", "key": "refund.bpmn"}},
        "deletionPolicy": "Retain",
    }
    await api.create("Workflow", tenant, "refund", spec)

    async def missing() -> dict[str, Any] | None:
        obj = await api.get("Workflow", tenant, "refund")
        return obj if running.condition(obj, "Validated").get("reason") == "ConfigMapNotFound" else None

    await running.eventually(missing)
    await api.create_core("configmaps", tenant, "models", {"data": {"refund.bpmn": bpmn(pid="refund")}})
    await running.eventually(_status_is(running, api, tenant, "refund", version=1, processIds=["refund"]))

    await api.delete("Workflow", tenant, "refund")

    async def gone() -> bool:
        return await api.get("Workflow", tenant, "refund") is None

    await running.eventually(gone)
    kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
    assert (await get_latest(kv, tenant, "refund")).version == 1  # retained
    try:
        await kv.get(layout.workflow_key(tenant, "refund", 2))
        raise AssertionError("no second version expected")
    except KeyNotFoundError:
        pass


# ----- deletion: never breaks running instances or another Workflow object's processes -----


def _deployed(running: Any, tenant: str, name: str, version: int) -> Any:
    async def probe() -> dict[str, Any] | None:
        obj = await running.api.get("Workflow", tenant, name)
        return obj if ((obj or {}).get("status") or {}).get("version") == version else None

    return probe


def _gone(running: Any, tenant: str, name: str) -> Any:
    async def probe() -> bool:
        return await running.api.get("Workflow", tenant, name) is None

    return probe


async def test_delete_keeps_versions_and_recreating_continues_numbering(
    running: Any, nc: Client, unique: str
) -> None:
    api, tenant = running.api, unique
    await api.create("Workflow", tenant, "order", {"bpmn": bpmn()})
    await running.eventually(_deployed(running, tenant, "order", 1))
    await api.patch_spec("Workflow", tenant, "order", {"bpmn": bpmn(label="v2")})
    await running.eventually(_deployed(running, tenant, "order", 2))

    await api.delete("Workflow", tenant, "order")
    await running.eventually(_gone(running, tenant, "order"))
    # instances of v1 and v2 may still run: their definitions stay; no new instance can start
    assert await _keys(nc, tenant) == [f"{tenant}.order.v1", f"{tenant}.order.v2"]

    await api.create("Workflow", tenant, "order", {"bpmn": bpmn(label="v3")})
    await running.eventually(_deployed(running, tenant, "order", 3))
    kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
    assert (await get_latest(kv, tenant, "order")).version == 3


async def test_rename_in_git_keeps_the_new_objects_process(running: Any, nc: Client, unique: str) -> None:
    api, tenant = running.api, unique
    await api.create("Workflow", tenant, "orders-old", {"bpmn": bpmn()})
    await running.eventually(_deployed(running, tenant, "orders-old", 1))
    # Argo CD applies the renamed object and prunes the old one
    await api.create("Workflow", tenant, "orders", {"bpmn": bpmn()})
    await running.eventually(_deployed(running, tenant, "orders", 1))
    await api.delete("Workflow", tenant, "orders-old")
    await running.eventually(_gone(running, tenant, "orders-old"))

    kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
    assert (await get_latest(kv, tenant, "order")).version == 1
    assert await _keys(nc, tenant) == [f"{tenant}.order.latest", f"{tenant}.order.v1"]

    # the last object that holds the process undeploys it (its versions stay)
    await api.delete("Workflow", tenant, "orders")
    await running.eventually(_gone(running, tenant, "orders"))
    assert await _keys(nc, tenant) == [f"{tenant}.order.v1"]
