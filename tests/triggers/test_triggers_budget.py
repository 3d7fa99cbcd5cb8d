"""A trigger mapping that goes past its FEEL budget dead-letters that message, and only that one."""

from __future__ import annotations

import json

from nats.aio.client import Client
from natsflow_engine import catalog
from natsflow_engine.triggers.deadletter import DLQ_STREAM
from natsflow_engine.triggers.server import TriggerServer, TriggerSettings
from trigger_kit import SIMPLE, deploy, instance_count, put_trigger, running_engine, wait_for

HOSTILE = "count(for i in 1..payload.n return for j in 1..payload.n return j)"


async def test_a_mapping_past_its_budget_dead_letters_the_message(nc: Client, unique: str) -> None:
    tenant, js = unique, nc.jetstream()
    await deploy(nc, tenant, SIMPLE.format(pid="p"))
    subject = f"budget.{unique}.in"
    record = catalog.TriggerRecord(
        tenant=tenant,
        name="t",
        subject=subject,
        stream="",
        process_id="p",
        consumer=catalog.trigger_consumer(tenant, "t"),
        idempotency_expression="payload.id",
        variables={"cells": HOSTILE},
    )
    await put_trigger(nc, record)
    async with running_engine(nc), TriggerServer(nc, TriggerSettings(stats_interval=0.1)) as server:
        await server.wait_ready(tenant, "t")
        await js.publish(subject, json.dumps({"id": "hostile", "n": 5000}).encode())
        await js.publish(subject, json.dumps({"id": "fine", "n": 3}).encode())
        dlq = await js.subscribe(f"nf.dlq.{tenant}.t", stream=DLQ_STREAM, ordered_consumer=True)
        letter = await dlq.next_msg(timeout=20)
        await dlq.unsubscribe()
        await wait_for(lambda: _one(nc, tenant))
    assert json.loads(letter.data)["id"] == "hostile"
    assert letter.headers is not None
    reason = letter.headers["Natsflow-Dead-Letter-Reason"]
    assert reason.startswith("mapping: variable 'cells'") and "exceeded its budget of" in reason


async def _one(nc: Client, tenant: str) -> bool:
    return await instance_count(nc, tenant) == 1
