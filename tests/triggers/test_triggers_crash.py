"""A message the trigger server dies on every time ends in the dead-letter stream: after the
consumer's last delivery, the max-deliveries advisory makes the next trigger server (a restarted
replica) dead-letter it with the reason, count it, and never launch from it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from crashing_trigger_server import CRASH_CODE
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from natsflow_engine import catalog, layout
from natsflow_engine.triggers.deadletter import ensure_dlq_stream
from natsflow_engine.triggers.server import TriggerServer, TriggerSettings
from natsflow_engine.triggers.stats import decode_stats
from trigger_kit import SIMPLE, deploy, instance_count, put_trigger, wait_for

MAX_DELIVER = 2
SCRIPT = Path(__file__).with_name("crashing_trigger_server.py")


async def _crash_once(url: str) -> int:
    """Run a crashing trigger server until it exits; its exit code."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), url, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(90):  # a correctness deadline: start, pull, die (ack wait 1 s)
            return await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_message_that_kills_the_trigger_server_is_dead_lettered(
    nc: Client, nats_url: str, unique: str
) -> None:
    tenant, js = unique, nc.jetstream()
    await deploy(nc, tenant, SIMPLE.format(pid="p"))
    subject, stream = f"crash.{unique}.in", f"CRASH_{unique}"
    consumer = catalog.trigger_consumer(tenant, "t")
    await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=consumer,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=1.0,  # a dead process's delivery is handed out again after a second
            max_deliver=MAX_DELIVER,
        ),
    )
    record = catalog.TriggerRecord(
        tenant=tenant, name="t", subject=subject, stream=stream, process_id="p", consumer=consumer,
        max_deliver=MAX_DELIVER,
    )  # fmt: skip
    await put_trigger(nc, record)
    await ensure_dlq_stream(js)
    dlq = await js.subscribe(
        layout.dead_letter_subject(tenant, "t"), stream=layout.STREAM_DEAD_LETTERS, ordered_consumer=True
    )
    ack = await js.publish(subject, b'{"order": 1}', headers={"X-Order": "1"})

    # each delivery kills the process that got it, before any handler code could react
    for _ in range(MAX_DELIVER):
        assert await _crash_once(nats_url) == CRASH_CODE
    info = await js.consumer_info(stream, consumer)
    assert info.delivered.consumer_seq == MAX_DELIVER and info.num_pending == 0

    # the replica that pulls next gets the advisory and keeps the message with the reason
    async with TriggerServer(nc, TriggerSettings(stats_interval=0.1)) as server:
        await server.wait_ready(tenant, "t")
        letter = await dlq.next_msg(timeout=30)
        key = layout.trigger_key(tenant, "t")
        stats_kv = await js.key_value("nf_trigger_stats")

        async def rejected() -> int:
            try:
                return decode_stats((await stats_kv.get(key)).value).rejected
            except Exception:
                return 0

        assert await wait_for(rejected, timeout=30) == 1
    await dlq.unsubscribe()
    headers = letter.headers or {}
    assert letter.data == b'{"order": 1}' and headers["X-Order"] == "1"
    assert headers["Natsflow-Dead-Letter-Reason"].startswith(f"gave up after {MAX_DELIVER} deliveries")
    assert headers["Natsflow-Source-Sequence"] == f"{stream}:{ack.seq}"
    assert headers["Natsflow-Source-Subject"] == subject and headers["Natsflow-Trigger"] == "t"
    assert await instance_count(nc, tenant) == 0  # nothing was launched from it
