"""Changing ``natsRef`` moves the object's NATS objects; the old connection keeps nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from natsflow_engine import layout
from natsflow_engine.natsutil import list_keys
from natsflow_engine.server import EmbeddedNatsServer


@pytest.fixture(scope="module")
def second_server() -> Iterator[EmbeddedNatsServer]:
    with EmbeddedNatsServer() as server:
        yield server


@pytest.fixture
async def nc2(second_server: EmbeddedNatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(second_server.url)
    yield client
    await client.close()


async def _has_consumer(nc: Client, tenant: str, task_type: str) -> bool:
    try:
        await nc.jetstream().consumer_info(layout.STREAM_JOBS, layout.job_consumer(tenant, task_type))
    except NotFoundError:
        return False
    return True


async def test_changed_nats_ref_removes_the_old_consumer_and_delete_the_new(
    running: Any, nc: Client, nc2: Client, second_server: EmbeddedNatsServer, unique: str
) -> None:
    api, tenant = running.api, unique
    await api.create("TaskDefinition", tenant, "ship", {"taskType": "ship"})

    async def recorded() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "ship")
        return obj if ((obj or {}).get("status") or {}).get("natsRef") == "(default)" else None

    await running.eventually(recorded)
    assert await _has_consumer(nc, tenant, "ship")

    await api.create_core("secrets", tenant, "second", {"stringData": {"url": second_server.url}})
    await api.patch_spec("TaskDefinition", tenant, "ship", {"natsRef": {"name": "second"}})

    async def moved() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "ship")
        status = (obj or {}).get("status") or {}
        return obj if status.get("natsRef") == "second" and status.get("observedGeneration") == 2 else None

    await running.eventually(moved)
    assert await _has_consumer(nc2, tenant, "ship")
    assert not await _has_consumer(nc, tenant, "ship")
    kv = await nc.jetstream().key_value(layout.BUCKET_TASKDEFS)
    assert await list_keys(kv, f"{tenant}.>") == []

    await api.delete("TaskDefinition", tenant, "ship")

    async def gone() -> bool:
        return await api.get("TaskDefinition", tenant, "ship") is None

    await running.eventually(gone)
    assert not await _has_consumer(nc2, tenant, "ship")


async def test_delete_before_the_change_was_reconciled_cleans_both(
    running: Any, nc: Client, nc2: Client, second_server: EmbeddedNatsServer, unique: str
) -> None:
    """status.natsRef still names the default connection; the spec names the second server."""
    api, tenant = running.api, unique
    await api.create_core("secrets", tenant, "second", {"stringData": {"url": second_server.url}})
    await api.create("Trigger", tenant, "t", {"subject": f"{tenant}.in", "workflowRef": {"processId": "p"}})

    async def ready() -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, "t")
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    obj = await running.eventually(ready)
    stream, consumer = obj["status"]["stream"], obj["status"]["consumer"]
    # both at once, as `kubectl apply` of a changed manifest followed by `kubectl delete` may be
    await api.patch_spec("Trigger", tenant, "t", {"natsRef": {"name": "second"}})
    await api.delete("Trigger", tenant, "t")

    async def gone() -> bool:
        return await api.get("Trigger", tenant, "t") is None

    await running.eventually(gone)
    with pytest.raises(NotFoundError):
        await nc.jetstream().consumer_info(stream, consumer)
