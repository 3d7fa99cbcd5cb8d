"""The index after a step whose index write failed: the redelivered command repairs the entry
(before, a record still in the engine's cache had its outbox republished but not its entry)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import nats
from modelkit import chain, model, service
from natsflow_engine import layout
from natsflow_engine.index import find_entry
from natsflow_engine.natsutil import list_kv_keys
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.setup import LayoutSettings, ensure_layout, open_buckets
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.store import EffectPublisher

ONE_TASK = model(
    "one",
    '<bpmn:startEvent id="s" />' + service("a", "a") + '<bpmn:endEvent id="e" />' + chain("s", "a", "e"),
)


class LosesTheFirstEntry(EffectPublisher):
    """The connection fails (once) while the launch writes the instance's index entry: the
    record is written, its effects and index entry are not."""

    failed = 0

    async def send(self, subject: str, data: bytes, headers: dict[str, str]) -> Awaitable[int]:
        if subject.startswith(f"$KV.{layout.BUCKET_INDEX}.") and not self.failed:
            LosesTheFirstEntry.failed += 1
            raise ConnectionError("simulated connection loss while writing the index entry")
        return await super().send(subject, data, headers)


async def test_an_index_write_lost_with_its_step_is_repaired_when_the_command_comes_again() -> None:
    with EmbeddedNatsServer() as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        settings = LayoutSettings(command_ack_wait=1.0)
        await ensure_layout(js, settings)
        buckets = await open_buckets(js)
        await deploy_definitions(buckets[layout.BUCKET_WORKFLOWS], "default", ONE_TASK)
        engine_settings = EngineSettings(fetch_timeout=0.2, redelivery_delay=0.1)
        engine = await Engine(nc, engine_settings, layout_settings=settings).start()
        real = engine.store.effects
        engine.store.effects = LosesTheFirstEntry(
            real.js, real.usertasks, real.timers, real.messaging, real.clock, publisher=real.publisher
        )
        iid = r.new_id()
        await js.publish(
            layout.command_subject("default", iid),
            r.encode(r.Launch(id=f"launch.{iid}", tenant="default", instance=iid, process_id="one")),
        )
        try:  # no worker: the instance waits at its job, and only the redelivered launch writes
            async with asyncio.timeout(60):
                while (found := await find_entry(js, "default", iid)) is None:
                    await asyncio.sleep(0.05)
            assert LosesTheFirstEntry.failed == 1
            assert (found.entry.state, found.entry.incidents) == ("active", 0)
            keys = await list_kv_keys(js, layout.BUCKET_INDEX, "default.>")
            assert [k.split(".")[1] for k in keys] == ["active"] and keys[0].endswith(iid)
        finally:
            await engine.stop()
            await nc.close()
