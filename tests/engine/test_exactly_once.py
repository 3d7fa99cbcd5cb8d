"""Exactly-once effects: redelivered commands, republished effects, a crash between the state
write and the publishes, and two engine replicas sharing one command stream."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import msgspec
import nats
import pytest
from modelkit import chain, model, service
from nats.js.errors import KeyNotFoundError
from natsflow_engine import layout
from natsflow_engine.natsutil import list_keys
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.setup import LayoutSettings, ensure_layout, open_buckets
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.store import Effect, EffectPublisher
from natsflow_engine.worker import Worker

from natsflow.testing import ProcessTestEngine

MODELS = Path(__file__).parent / "models"
TWO_TASKS = model(
    "two",
    '<bpmn:startEvent id="s" />'
    + service("a", "a")
    + service("b", "b")
    + '<bpmn:endEvent id="e" />'
    + chain("s", "a", "b", "e"),
)


async def steps_of(kit: ProcessTestEngine, iid: str) -> list[int]:
    return [rec.step for rec in await kit.history(iid)]


async def test_redelivered_command_changes_state_once(kit: ProcessTestEngine):
    await kit.deploy(TWO_TASKS)
    iid = await kit.start_instance("two")
    await kit.wait_until_idle()
    state = await kit._state(iid)
    ei = next(e for e in state.eis.values() if e.job)
    done = r.JobCompleted(
        id=f"{ei.job}.done", tenant=kit.tenant, instance=iid, job=ei.job or "", ei=ei.key, variables={"n": 1}
    )
    # the same command twice, under different message ids so JetStream cannot drop the second
    for suffix in ("x", "y"):
        await kit.js.publish(
            layout.command_subject(kit.tenant, iid), r.encode(done), headers={"Nats-Msg-Id": done.id + suffix}
        )
    await kit.wait_until_idle()
    after = await kit._state(iid)
    assert after.step == state.step + 1
    assert [e.el for e in after.eis.values() if e.job] == ["b"]
    jobs = await kit.js.stream_info(layout.STREAM_JOBS)
    assert jobs.state.messages == 2  # job a (never consumed) and job b: no duplicate of b
    assert await steps_of(kit, iid) == [1, 2]


async def test_effects_republished_by_another_replica_are_deduplicated(kit: ProcessTestEngine):
    await kit.deploy(TWO_TASKS)
    iid = await kit.start_instance("two")
    await kit.wait_until_idle()
    before = (await kit.js.stream_info(layout.STREAM_JOBS)).state.messages
    await kit.restart_engine()  # the new replica has never seen this instance's outbox flushed
    await kit._send(r.SetVariables(id="sv1", tenant=kit.tenant, instance=iid, variables={"k": 1}))
    await kit.wait_until_idle()
    assert (await kit.js.stream_info(layout.STREAM_JOBS)).state.messages == before
    assert await steps_of(kit, iid) == [1, 2]
    assert (await kit.instance(iid)).variables == {"k": 1}


class CrashAfterWrite(EffectPublisher):
    """Dies (for one command) after the state record was written and before its effects are published."""

    crashes = 0

    async def publish(self, effects: list[Effect]) -> None:
        if any(isinstance(item, r.Job) for item in effects) and CrashAfterWrite.crashes == 0:
            CrashAfterWrite.crashes += 1
            raise ConnectionError("simulated crash between KV write and publish")
        await super().publish(effects)


async def test_crash_between_state_write_and_publish_is_repaired_by_redelivery():
    with EmbeddedNatsServer() as server:
        nc = await nats.connect(server.url)
        settings = LayoutSettings(command_ack_wait=1.0)
        await ensure_layout(nc.jetstream(), settings)
        buckets = await open_buckets(nc.jetstream())
        await deploy_definitions(buckets[layout.BUCKET_WORKFLOWS], "default", TWO_TASKS)
        engine = await Engine(nc, EngineSettings(fetch_timeout=0.2), layout_settings=settings).start()
        real = engine.store.effects
        engine.store.effects = CrashAfterWrite(real.js, real.usertasks, real.timers, real.messaging, real.clock)
        runs: Counter[str] = Counter()
        worker = Worker(nc=nc)

        @worker.task("a")
        async def a(job):
            runs[job.key] += 1

        @worker.task("b")
        async def b(job):
            runs[job.key] += 1

        await worker.start()
        iid = r.new_id()
        await nc.jetstream().publish(
            layout.command_subject("default", iid),
            r.encode(r.Launch(id=f"launch.{iid}", tenant="default", instance=iid, process_id="two")),
        )
        kv = buckets[layout.BUCKET_INSTANCES]
        for _ in range(500):
            try:
                entry = await kv.get(layout.instance_key("default", iid))
            except KeyNotFoundError:
                entry = None
            if entry is not None and r.decode_state(entry.value or b"").state == "completed":
                break
            await asyncio.sleep(0.02)
        state = r.decode_state((await kv.get(layout.instance_key("default", iid))).value or b"")
        assert CrashAfterWrite.crashes == 1
        assert state.state == "completed"
        assert sorted(runs.values()) == [1, 1]  # each job ran once, although its step was repaired
        await worker.stop()
        await engine.stop()
        await nc.close()


async def test_two_replicas_complete_1000_instances_without_duplicates_or_loss():
    count = 1000
    with EmbeddedNatsServer() as server:
        ncs = [await nats.connect(server.url) for _ in range(3)]
        js = ncs[0].jetstream()
        await ensure_layout(js)
        buckets = await open_buckets(js)
        await deploy_definitions(buckets[layout.BUCKET_WORKFLOWS], "default", MODELS / "reference.bpmn")
        engines = [await Engine(nc, EngineSettings(fetch_timeout=0.2)).start() for nc in ncs[:2]]
        runs: Counter[str] = Counter()
        worker = Worker(nc=ncs[2])

        @worker.task("check", concurrency=64)
        async def check(job):
            runs[job.instance_id] += 1
            return {"checked": True}

        completed: set[str] = set()
        history_steps: Counter[tuple[str, int]] = Counter()
        done = asyncio.Event()
        decoder = msgspec.json.Decoder(r.HistoryRecord)

        async def on_history(msg):
            rec = decoder.decode(msg.data)
            history_steps[(rec.instance, rec.step)] += 1
            if rec.state == "completed":
                completed.add(rec.instance)
                if len(completed) == count:
                    done.set()

        sub = await ncs[2].subscribe("nf.hist.default.>", cb=on_history)
        await worker.start()
        ids = [r.new_id() for _ in range(count)]
        await asyncio.gather(
            *(
                js.publish(
                    layout.command_subject("default", iid),
                    r.encode(
                        r.Launch(
                            id=f"launch.{iid}",
                            tenant="default",
                            instance=iid,
                            process_id="reference",
                            variables={"amount": n},
                        )
                    ),
                    headers={"Nats-Msg-Id": f"launch.{iid}"},
                )
                for n, iid in enumerate(ids)
            )
        )
        await asyncio.wait_for(done.wait(), timeout=60)
        await sub.unsubscribe()
        assert completed == set(ids)
        assert set(runs) == set(ids) and set(runs.values()) == {1}
        # plain subscribers also see republished (deduplicated) effects; the stream keeps one per step
        states = [
            r.decode_state(
                (await buckets[layout.BUCKET_INSTANCES].get(layout.instance_key("default", i))).value or b""
            )
            for i in ids
        ]
        hist = await js.stream_info(layout.STREAM_HISTORY)
        assert hist.state.messages == sum(s.step for s in states) == 2 * count
        assert set(history_steps) == {(i, n) for i in ids for n in (1, 2)}
        assert all(e.steps > 0 for e in engines), [e.steps for e in engines]
        keys = await list_keys(buckets[layout.BUCKET_INSTANCES], "default.*")
        assert len(keys) == count
        await worker.stop()
        for e in engines:
            await e.stop()
        for nc in ncs:
            await nc.close()


@pytest.mark.parametrize("size", [2 * 1024 * 1024])
async def test_oversized_variables_raise_an_incident_not_a_crash(kit: ProcessTestEngine, size: int):
    await kit.deploy(TWO_TASKS)
    iid = await kit.start_instance("two")

    @kit.task("a")
    async def a(job):
        return {
            "blob": "x" * (size // 2)
        }  # under the worker's message limit, too big for the record with a copy

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "active"
    assert snap.incidents and snap.incidents[0].kind in {"payload", "job-failed"}
    assert "limit" in snap.incidents[0].message
