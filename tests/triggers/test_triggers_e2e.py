"""A trigger end to end: definition in KV, engine, trigger server and worker on the real server."""

from __future__ import annotations

import json

import msgspec
from nats.aio.client import Client
from natsflow_engine import catalog, layout
from natsflow_engine.runtime import records as r
from natsflow_engine.triggers.server import TriggerServer, TriggerSettings
from natsflow_engine.worker import Worker
from trigger_kit import SERVICE, deploy, instance_count, put_trigger, running_engine, wait_for


async def test_trigger_launches_instances_that_complete(nc: Client, unique: str) -> None:
    tenant = unique
    await deploy(nc, tenant, SERVICE.format(pid="order", task="charge"))
    subject = f"shop.{unique}.orders"
    record = catalog.TriggerRecord(
        tenant=tenant,
        name="orders",
        subject=subject,
        stream="",
        consumer=catalog.trigger_consumer(tenant, "orders"),
        process_id="order",
        variables={"amount": "payload.amount * 2", "source": "subject"},
        idempotency_expression="payload.orderId",
    )
    await put_trigger(nc, record)
    charged: list[int] = []
    worker = Worker(tenant=tenant, nc=nc)

    @worker.task("charge")
    async def charge(job):  # type: ignore[no-untyped-def]
        charged.append(job.variables["amount"])
        return {"charged": True}

    async with running_engine(nc):
        await worker.start()
        try:
            async with TriggerServer(nc, TriggerSettings()) as server:
                await server.wait_ready(tenant, "orders")
                js = nc.jetstream()
                for n in range(5):
                    await js.publish(subject, json.dumps({"orderId": f"o-{n}", "amount": n}).encode())
                kv = await js.key_value(layout.BUCKET_INSTANCES)

                async def all_completed() -> bool:
                    if await instance_count(nc, tenant) < 5:
                        return False
                    for n in range(5):
                        iid = layout.idempotent_instance_id(tenant, "order", f"o-{n}")
                        state = r.decode_state((await kv.get(layout.instance_key(tenant, iid))).value or b"")
                        if state.state != "completed":
                            return False
                    return True

                await wait_for(all_completed)
                assert sorted(charged) == [0, 2, 4, 6, 8]
                iid = layout.idempotent_instance_id(tenant, "order", "o-3")
                state = r.decode_state((await kv.get(layout.instance_key(tenant, iid))).value or b"")
                assert state.root_vars() == {"amount": 6, "source": subject, "charged": True}
        finally:
            await worker.stop(timeout=2.0)
    assert await instance_count(nc, tenant) == 5
    stats = await (await nc.jetstream().key_value("nf_trigger_stats")).get(
        layout.trigger_key(tenant, "orders")
    )
    doc = msgspec.json.decode(stats.value or b"{}")
    assert (doc["received"], doc["launched"]) == (5, 5)
