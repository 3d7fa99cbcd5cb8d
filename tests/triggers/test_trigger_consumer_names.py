"""Trigger consumers get injective names; one under its old name hands over its position."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError
from natsflow_engine import layout
from natsflow_engine.triggers.consumers import ensure_trigger_consumer


async def test_a_trigger_consumer_under_its_old_name_is_replaced_at_its_position(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    tenant, name, subject = f"t-{unique}", "orders", f"orders.{unique}"
    stream = f"S_{unique}"
    await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
    await js.publish(subject, b"before the consumer")  # never delivered: the old consumer started at NEW
    legacy = layout.legacy_trigger_consumer(tenant, name)
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=legacy, filter_subject=subject, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
        ),
    )
    for n in range(3):
        await js.publish(subject, f"m{n}".encode())
    sub = await js.pull_subscribe_bind(durable=legacy, stream=stream)
    [first] = await sub.fetch(1, timeout=5)
    assert first.data == b"m0"
    await first.ack_sync()
    await sub.unsubscribe()

    new = layout.trigger_consumer(tenant, name)
    config = ConsumerConfig(
        durable_name=new, filter_subject=subject, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW
    )
    assert await ensure_trigger_consumer(js, stream, config, tenant, name)
    with pytest.raises(NotFoundError):
        await js.consumer_info(stream, legacy)
    sub = await js.pull_subscribe_bind(durable=new, stream=stream)
    got = [m.data for m in await sub.fetch(2, timeout=5)]
    assert got == [b"m1", b"m2"]
    await sub.unsubscribe()
    await js.delete_stream(stream)
