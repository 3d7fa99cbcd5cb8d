"""The engine's consumer keeps its state in nats-server's memory, and comes back when a
restarted standalone server has forgotten it (``LayoutSettings.command_consumer_memory``)."""

from __future__ import annotations

import asyncio

import nats
from modelkit import chain, model, service
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.setup import LayoutSettings, ensure_engine_consumer, ensure_layout, open_buckets
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.worker import Job, Worker

ONE_TASK = model(
    "one",
    '<bpmn:startEvent id="s" />' + service("a", "a") + '<bpmn:endEvent id="e" />' + chain("s", "a", "e"),
)


async def _completed(kv: KeyValue, iid: str) -> bool:
    try:
        entry = await kv.get(layout.instance_key("default", iid))
    except KeyNotFoundError:
        return False
    return r.decode_state(entry.value or b"").state == "completed"


async def _launch_and_wait(nc: Client, kv: KeyValue) -> str:
    iid = r.new_id()
    await nc.jetstream().publish(
        layout.command_subject("default", iid),
        r.encode(r.Launch(id=f"launch.{iid}", tenant="default", instance=iid, process_id="one")),
    )
    async with asyncio.timeout(60):
        while not await _completed(kv, iid):
            await asyncio.sleep(0.05)
    return iid


async def test_the_engine_creates_its_consumer_again_after_the_server_forgot_it() -> None:
    with EmbeddedNatsServer() as server:
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = nc.jetstream()
        await ensure_layout(js)
        info = await js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
        assert info.config.mem_storage  # no state file rewritten on every acknowledgement
        buckets = await open_buckets(js)
        await deploy_definitions(buckets[layout.BUCKET_WORKFLOWS], "default", ONE_TASK)
        engine = await Engine(nc, EngineSettings(fetch_timeout=0.2)).start()
        worker = Worker(nc=nc)

        @worker.task("a")
        async def a(job: Job) -> None:
            return None

        await worker.start()
        try:
            await _launch_and_wait(nc, buckets[layout.BUCKET_INSTANCES])
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)  # same port and store: streams back, consumer not
            async with asyncio.timeout(60):
                while not nc.is_connected:
                    await asyncio.sleep(0.05)
            await _launch_and_wait(nc, buckets[layout.BUCKET_INSTANCES])
            assert engine._loop is not None and engine._loop.recreated >= 1
            assert (await js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)).config.mem_storage
        finally:
            await worker.stop()
            await engine.stop()
            await nc.close()


async def test_an_existing_consumer_keeps_its_storage_when_the_engine_reconfigures_it() -> None:
    with EmbeddedNatsServer() as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_layout(js, LayoutSettings(command_consumer_memory=False))
        info = await js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
        assert not info.config.mem_storage
        await ensure_engine_consumer(js, LayoutSettings(command_ack_wait=7.0), update=True)
        info = await js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
        assert not info.config.mem_storage and info.config.ack_wait == 7.0
        await js.delete_consumer(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
        await ensure_engine_consumer(js)  # created anew: in memory
        assert (await js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)).config.mem_storage
        await nc.close()
