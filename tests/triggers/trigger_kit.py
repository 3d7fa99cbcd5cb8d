"""Helpers shared by the trigger tests (not a test module)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.client import Client
from natsflow_engine import catalog, layout
from natsflow_engine.natsutil import list_kv_keys
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.setup import ensure_layout, open_buckets

SIMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""

SERVICE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="charge" />
    <bpmn:serviceTask id="charge">
      <bpmn:extensionElements><zeebe:taskDefinition type="{task}" /></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="charge" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


async def deploy(nc: Client, tenant: str, source: str) -> None:
    js = nc.jetstream()
    await ensure_layout(js)
    buckets = await open_buckets(js)
    await deploy_definitions(buckets[layout.BUCKET_WORKFLOWS], tenant, source)


async def put_trigger(nc: Client, record: catalog.TriggerRecord) -> int:
    await ensure_layout(nc.jetstream())
    kv = await nc.jetstream().key_value(layout.BUCKET_TRIGGERS)
    return await kv.put(layout.trigger_key(record.tenant, record.name), catalog.encode_record(record))


async def instance_count(nc: Client, tenant: str) -> int:
    return len(await list_kv_keys(nc.jetstream(), layout.BUCKET_INSTANCES, f"{tenant}.*"))


async def wait_for(check, timeout: float = 20.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``await check()`` until it returns a truthy value; return that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met in {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


@asynccontextmanager
async def running_engine(nc: Client) -> AsyncIterator[Engine]:
    engine = await Engine(nc, EngineSettings(fetch_timeout=0.2)).start()
    try:
        yield engine
    finally:
        await bounded_stop(engine.stop(timeout=2.0), "engine")


async def bounded_stop(stopping, what: str, limit: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Await a stop; if it hangs, print every task's stack (diagnosis) and fail."""
    try:
        async with asyncio.timeout(limit):
            await stopping
    except TimeoutError:
        import sys

        for task in asyncio.all_tasks():
            print(f"--- {task.get_name()}", file=sys.stderr)
            task.print_stack(limit=8, file=sys.stderr)
        raise AssertionError(f"{what} did not stop within {limit}s") from None


@asynccontextmanager
async def watchdog(seconds: float) -> AsyncIterator[None]:
    """If the block runs longer than ``seconds``, print every task's stack once (hang diagnosis)."""
    import sys

    async def bark() -> None:
        await asyncio.sleep(seconds)
        print(f"\n=== watchdog: still running after {seconds}s; tasks:", file=sys.stderr)
        for task in asyncio.all_tasks():
            print(f"--- {task.get_name()}", file=sys.stderr)
            task.print_stack(limit=12, file=sys.stderr)

    dog = asyncio.create_task(bark())
    try:
        yield
    finally:
        dog.cancel()
