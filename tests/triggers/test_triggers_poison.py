"""Messages that can never launch are dead-lettered on their first delivery, not retried."""

from __future__ import annotations

from nats.aio.client import Client
from natsflow_engine import catalog, layout
from natsflow_engine.triggers.server import TriggerServer, TriggerSettings
from natsflow_engine.triggers.stats import TriggerStats, decode_stats
from trigger_kit import SIMPLE, deploy, put_trigger, running_engine, wait_for


async def _stats(nc: Client, key: str) -> TriggerStats | None:
    kv = await nc.jetstream().key_value("nf_trigger_stats")
    try:
        stats = decode_stats((await kv.get(key)).value)
    except Exception:
        return None
    return stats if stats.rejected else None


async def test_a_deeply_nested_payload_is_dead_lettered_at_once(nc: Client, unique: str) -> None:
    tenant, js = unique, nc.jetstream()
    await deploy(nc, tenant, SIMPLE.format(pid="p"))
    subject = f"deep.{unique}.in"
    record = catalog.TriggerRecord(
        tenant=tenant,
        name="t",
        subject=subject,
        stream="",
        process_id="p",
        consumer=catalog.trigger_consumer(tenant, "t"),
        max_deliver=20,
    )
    await put_trigger(nc, record)
    settings = TriggerSettings(stats_interval=0.1, retry_delay=0.05)
    async with running_engine(nc), TriggerServer(nc, settings) as server:
        await server.wait_ready(tenant, "t")
        dlq = await nc.subscribe(f"nf.dlq.{tenant}.t")
        depth = 100_000
        await js.publish(subject, b"[" * depth + b"]" * depth)
        letter = await dlq.next_msg(timeout=10)
        await dlq.unsubscribe()
        stats = await wait_for(lambda: _stats(nc, layout.trigger_key(tenant, "t")), timeout=5)
    assert letter.headers is not None
    assert letter.headers["Natsflow-Dead-Letter-Reason"] == "payload: payload is nested too deeply"
    assert letter.data == b"[" * depth + b"]" * depth
    assert (stats.received, stats.redelivered, stats.rejected) == (1, 0, 1)  # refused, never retried
