"""Trigger through the operator: capture stream, consumer, catalog entry, update, drift, delete."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.errors import KeyNotFoundError, NotFoundError
from natsflow_engine import catalog, layout


async def _record(nc: Client, tenant: str, name: str) -> catalog.TriggerRecord | None:
    kv = await nc.jetstream().key_value(layout.BUCKET_TRIGGERS)
    try:
        entry = await kv.get(layout.trigger_key(tenant, name))
    except KeyNotFoundError:
        return None
    return catalog.decode_trigger(entry.value or b"")


async def _consumer(nc: Client, stream: str, consumer: str) -> Any:
    try:
        return await nc.jetstream().consumer_info(stream, consumer)
    except NotFoundError:
        return None


async def test_capture_stream_update_drift_delete(running: Any, nc: Client, unique: str) -> None:
    api, tenant, js = running.api, unique, nc.jetstream()
    subject = f"{unique}.orders.created"
    spec = {
        "subject": subject,
        "workflowRef": {"processId": "order-process"},
        "variables": {"orderId": "payload.id"},
        "idempotencyKey": {"header": "Nats-Msg-Id"},
    }
    await api.create("Trigger", tenant, "orders", spec)

    async def ready() -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, "orders")
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    obj = await running.eventually(ready)
    stream, consumer = catalog.capture_stream(subject), catalog.trigger_consumer(tenant, "orders")
    assert obj["status"] == obj["status"] | {"stream": stream, "consumer": consumer, "captured": True}
    assert obj["status"]["observedGeneration"] == 1
    info = await _consumer(nc, stream, consumer)
    assert (info.config.filter_subject, info.config.max_deliver) == (subject, 5)
    record = await _record(nc, tenant, "orders")
    assert record is not None
    assert (record.process_id, record.variables, record.idempotency_header) == (
        "order-process",
        {"orderId": "payload.id"},
        "Nats-Msg-Id",
    )
    assert (await js.stream_info(stream)).config.subjects == [subject]

    # update: suspend, pin a version, fewer deliveries
    await api.patch_spec(
        "Trigger", tenant, "orders", {"suspend": True, "maxDeliver": 2, "workflowRef": {"version": 3}}
    )

    async def updated() -> catalog.TriggerRecord | None:
        found = await _record(nc, tenant, "orders")
        return found if found and found.suspended and found.version == 3 else None

    await running.eventually(updated)
    assert (await _consumer(nc, stream, consumer)).config.max_deliver == 2

    # drift: consumer deleted behind the operator's back comes back
    await js.delete_consumer(stream, consumer)
    await running.eventually(lambda: _consumer(nc, stream, consumer))

    # delete: consumer, record and the now unused capture stream go
    await api.delete("Trigger", tenant, "orders")

    async def gone() -> bool:
        return await api.get("Trigger", tenant, "orders") is None

    await running.eventually(gone)
    assert await _record(nc, tenant, "orders") is None
    try:
        await js.stream_info(stream)
        raise AssertionError("capture stream should be deleted with its last trigger")
    except NotFoundError:
        pass


async def test_existing_stream_is_used_and_retained(running: Any, nc: Client, unique: str) -> None:
    api, tenant, js = running.api, unique, nc.jetstream()
    stream = f"EVENTS_{unique}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{unique}.events.>"]))
    spec = {
        "subject": f"{unique}.events.signup",
        "workflowRef": {"processId": "welcome"},
        "idempotencyKey": {"expression": "payload.userId"},
        "deletionPolicy": "Retain",
    }
    await api.create("Trigger", tenant, "signup", spec)

    async def ready() -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, "signup")
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    obj = await running.eventually(ready)
    assert (obj["status"]["stream"], obj["status"]["captured"]) == (stream, False)
    consumer = catalog.trigger_consumer(tenant, "signup")
    assert await _consumer(nc, stream, consumer) is not None

    await api.delete("Trigger", tenant, "signup")

    async def gone() -> bool:
        return await api.get("Trigger", tenant, "signup") is None

    await running.eventually(gone)
    assert await _consumer(nc, stream, consumer) is not None  # retained
    assert await _record(nc, tenant, "signup") is not None
    await js.delete_stream(stream)


async def test_missing_declared_stream_is_reported(running: Any, unique: str) -> None:
    api, tenant = running.api, unique
    spec = {"subject": f"{unique}.x", "stream": f"NOPE_{unique}", "workflowRef": {"processId": "p"}}
    await api.create("Trigger", tenant, "nope", spec)

    async def reported() -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, "nope")
        return obj if running.condition(obj, "ConsumerReady").get("reason") == "StreamNotFound" else None

    obj = await running.eventually(reported)
    assert running.condition(obj, "Ready")["status"] == "False"
