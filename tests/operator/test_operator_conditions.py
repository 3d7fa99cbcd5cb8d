"""Conditions as Kubernetes tools read them: per-condition ``observedGeneration`` and kstatus."""

from __future__ import annotations

from typing import Any


def _types(obj: dict[str, Any]) -> set[str]:
    return {c["type"] for c in obj["status"]["conditions"]}


async def test_invalid_update_keeps_synced_at_the_generation_it_describes(running: Any, unique: str) -> None:
    api, tenant = running.api, unique
    await api.create("TaskDefinition", tenant, "pay", {"taskType": "pay", "timeout": "30s"})

    async def ready() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "pay")
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    obj = await running.eventually(ready)
    assert not _types(obj) & {"Stalled", "Reconciling"}  # kstatus: Current

    # the API server's schema would refuse this; a spec that slips past it must not be
    # reported as synced at the new generation
    await api.patch_spec("TaskDefinition", tenant, "pay", {"timeout": "5 minutes"})

    async def rejected() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "pay")
        return obj if running.condition(obj, "Validated").get("observedGeneration") == 2 else None

    obj = await running.eventually(rejected)
    assert obj["status"]["observedGeneration"] == 2
    assert running.condition(obj, "Validated")["status"] == "False"
    synced = running.condition(obj, "Synced")
    assert synced["status"] == "True" and synced["observedGeneration"] == 1  # generation 1 stays applied
    ready_cond = running.condition(obj, "Ready")
    assert (ready_cond["status"], ready_cond["observedGeneration"]) == ("False", 2)
    stalled = running.condition(obj, "Stalled")  # kstatus: Failed
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert "Reconciling" not in _types(obj)

    await api.patch_spec("TaskDefinition", tenant, "pay", {"timeout": "5m"})
    obj = await running.eventually(ready)
    assert {c["observedGeneration"] for c in obj["status"]["conditions"]} == {3}
    assert not _types(obj) & {"Stalled", "Reconciling"}


async def test_retrying_is_reconciling_not_stalled(running: Any, unique: str, nats_url: str) -> None:
    api, tenant = running.api, unique
    await api.create("Trigger", tenant, "t", {
        "subject": f"{tenant}.orders", "workflowRef": {"processId": "order"}, "natsRef": {"name": "later"},
    })  # fmt: skip

    async def waiting() -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, "t")
        return obj if running.condition(obj, "Reconciling").get("status") == "True" else None

    obj = await running.eventually(waiting)
    assert running.condition(obj, "Reconciling")["reason"] == "NatsSecretNotFound"
    assert "Stalled" not in _types(obj)

    await api.create_core("secrets", tenant, "later", {"stringData": {"url": nats_url}})

    async def ready() -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, "t")
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    obj = await running.eventually(ready)
    assert not _types(obj) & {"Stalled", "Reconciling"}
