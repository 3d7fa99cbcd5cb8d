"""Dead letters, live changes of definitions (suspend, change, remove), retries."""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client
from natsflow_engine import catalog, layout
from natsflow_engine.runtime import records as r
from natsflow_engine.triggers.deadletter import DLQ_STREAM
from natsflow_engine.triggers.server import TriggerServer, TriggerSettings
from trigger_kit import SIMPLE, deploy, instance_count, put_trigger, running_engine, wait_for

FAST = TriggerSettings(stats_interval=0.1, retry_delay=0.05)


def _record(tenant: str, subject: str, **kw: object) -> catalog.TriggerRecord:
    fields: dict[str, object] = {
        "tenant": tenant,
        "name": "t",
        "subject": subject,
        "stream": "",
        "process_id": "p",
        "consumer": catalog.trigger_consumer(tenant, "t"),
        "idempotency_expression": "payload.id",
    }
    fields.update(kw)
    return catalog.TriggerRecord(**fields)  # type: ignore[arg-type]


async def _state(nc: Client, tenant: str, key: str) -> r.InstanceState | None:
    kv = await nc.jetstream().key_value(layout.BUCKET_INSTANCES)
    iid = layout.idempotent_instance_id(tenant, "p", key)
    try:
        return r.decode_state((await kv.get(layout.instance_key(tenant, iid))).value or b"")
    except Exception:
        return None


async def test_malformed_messages_are_dead_lettered_and_the_next_good_one_launches(
    nc: Client, unique: str
) -> None:
    tenant, js = unique, nc.jetstream()
    await deploy(nc, tenant, SIMPLE.format(pid="p"))
    subject = f"dl.{unique}.in"
    await put_trigger(nc, _record(tenant, subject, variables={"x": "payload.x"}))
    settings = TriggerSettings(stats_interval=0.1, max_payload=2000)
    async with running_engine(nc), TriggerServer(nc, settings) as server:
        runner = await server.wait_ready(tenant, "t")
        assert runner.stream == catalog.capture_stream(subject)  # created: no stream stored the subject
        await js.publish(subject, b"{not json", headers={"Trace": "abc"})
        await js.publish(subject, json.dumps({"id": "big", "x": "y" * 5000}).encode())
        await js.publish(subject, json.dumps({"id": "good", "x": 1}).encode())
        await wait_for(lambda: _state(nc, tenant, "good"))
        dlq = await js.subscribe(f"nf.dlq.{tenant}.t", stream=DLQ_STREAM, ordered_consumer=True)
        letters = [await dlq.next_msg(timeout=5), await dlq.next_msg(timeout=5)]
        await dlq.unsubscribe()
        key = layout.trigger_key(tenant, "t")
        await wait_for(lambda: _stats(nc, key, lambda s: s.rejected == 2), timeout=5)
    assert letters[0].data == b"{not json"
    assert letters[0].headers is not None and letters[0].headers["Trace"] == "abc"
    assert letters[0].headers["Natsflow-Dead-Letter-Reason"].startswith("payload: payload is not JSON")
    assert letters[0].headers["Natsflow-Source-Subject"] == subject
    assert letters[1].headers is not None and letters[1].headers["Natsflow-Dead-Letter-Reason"].startswith(
        "too_large"
    )
    assert await instance_count(nc, tenant) == 1
    state = await _state(nc, tenant, "good")
    assert state is not None and state.root_vars() == {"x": 1}


async def _stats(nc: Client, key: str, check):  # type: ignore[no-untyped-def]
    from natsflow_engine.triggers.stats import decode_stats

    kv = await nc.jetstream().key_value("nf_trigger_stats")
    try:
        stats = decode_stats((await kv.get(key)).value)
    except Exception:
        return None
    return stats if check(stats) else None


async def test_definitions_change_live(nc: Client, unique: str) -> None:
    tenant, js = unique, nc.jetstream()
    await deploy(nc, tenant, SIMPLE.format(pid="p"))
    subject = f"live.{unique}.in"
    async with running_engine(nc), TriggerServer(nc, FAST) as server:
        await put_trigger(nc, _record(tenant, subject, variables={"v": "1"}))  # added after start
        await server.wait_ready(tenant, "t")
        await js.publish(subject, b'{"id": "a"}')
        assert (await wait_for(lambda: _state(nc, tenant, "a"))).root_vars() == {"v": 1}

        await put_trigger(nc, _record(tenant, subject, variables={"v": "2"}, suspended=True))
        await wait_for(lambda: _true(layout.trigger_key(tenant, "t") in server.suspended))
        await js.publish(subject, b'{"id": "b"}')  # waits in the stream
        await asyncio.sleep(0.5)
        assert await _state(nc, tenant, "b") is None

        await put_trigger(nc, _record(tenant, subject, variables={"v": "3"}))  # resumed, new mapping
        assert (await wait_for(lambda: _state(nc, tenant, "b"))).root_vars() == {"v": 3}

        kv = await js.key_value(layout.BUCKET_TRIGGERS)
        await kv.delete(layout.trigger_key(tenant, "t"))
        await wait_for(lambda: _true(layout.trigger_key(tenant, "t") not in server.runners))
        await js.publish(subject, b'{"id": "c"}')
        await asyncio.sleep(0.5)
        assert await _state(nc, tenant, "c") is None


async def _true(value: bool) -> bool:
    return value


async def test_missing_process_is_retried_then_dead_lettered(nc: Client, unique: str) -> None:
    tenant, js = unique, nc.jetstream()
    subject = f"np.{unique}.in"
    await put_trigger(nc, _record(tenant, subject, max_deliver=3))
    async with TriggerServer(nc, FAST) as server:
        await server.wait_ready(tenant, "t")
        dlq = await nc.subscribe(f"nf.dlq.{tenant}.t")
        await js.publish(subject, b'{"id": "x"}')
        letter = await dlq.next_msg(timeout=10)
        await dlq.unsubscribe()
    assert letter.headers is not None
    reason = letter.headers["Natsflow-Dead-Letter-Reason"]
    assert reason.startswith("gave up after 3 attempts") and "is not deployed" in reason


async def test_unusable_expression_stops_the_trigger_without_losing_messages(nc: Client, unique: str) -> None:
    tenant, js = unique, nc.jetstream()
    await deploy(nc, tenant, SIMPLE.format(pid="p"))
    subject = f"bad.{unique}.in"
    async with running_engine(nc), TriggerServer(nc, FAST) as server:
        await put_trigger(nc, _record(tenant, subject))
        await server.wait_ready(tenant, "t")
        await put_trigger(nc, _record(tenant, subject, variables={"v": "payload.("}))
        key = layout.trigger_key(tenant, "t")
        await wait_for(lambda: _stats(nc, key, lambda s: "syntax" in (s.last_error or "")))
        await js.publish(subject, b'{"id": "kept"}')
        await asyncio.sleep(0.3)
        assert await _state(nc, tenant, "kept") is None
        await put_trigger(nc, _record(tenant, subject, variables={"v": "payload.id"}))
        assert (await wait_for(lambda: _state(nc, tenant, "kept"))).root_vars() == {"v": "kept"}


async def test_dead_letter_subject_without_a_stream_falls_back_to_nf_dlq(nc: Client, unique: str) -> None:
    """A custom dead-letter subject nobody stores must not swallow the message."""
    tenant, js = unique, nc.jetstream()
    await deploy(nc, tenant, SIMPLE.format(pid="p"))
    subject, custom = f"dlfb.{unique}.in", f"nowhere.{unique}.dead"
    await put_trigger(nc, _record(tenant, subject, dead_letter_subject=custom))
    async with running_engine(nc), TriggerServer(nc, FAST) as server:
        await server.wait_ready(tenant, "t")
        await js.publish(subject, b"{not json")
        dlq = await js.subscribe(f"nf.dlq.{tenant}.t", stream=DLQ_STREAM, ordered_consumer=True)
        letter = await dlq.next_msg(timeout=10)
        await dlq.unsubscribe()
    assert letter.data == b"{not json"
    assert letter.headers is not None
    assert letter.headers["Natsflow-Dead-Letter-Subject"] == custom
    assert letter.headers["Natsflow-Dead-Letter-Reason"].startswith("payload")
