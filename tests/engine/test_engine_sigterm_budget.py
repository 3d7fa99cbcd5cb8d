"""SIGTERM stops ``natsflow engine`` within its grace period while it evaluates hostile
expressions: every evaluation is bounded by its budget, so the event loop is never held long."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from nats.aio.client import Client
from natsflow_engine.api.client import ApiClient

GRACE_PERIOD = 30.0  # seconds: the chart's terminationGracePeriodSeconds (Kubernetes' default)

# Without a budget this runs 10^10 iterations (hours); with it, one evaluation is ~0.1 s.
WORST = "=count(for i in 1..100000 return for j in 1..100000 return j)"

MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="worst" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="calc"/>
    <bpmn:scriptTask id="calc">
      <bpmn:extensionElements><zeebe:script expression="{WORST}" resultVariable="r"/></bpmn:extensionElements>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="calc" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>
"""


async def test_sigterm_stops_the_engine_mid_evaluation_within_its_grace_period(
    nats_url: str, nc: Client, unique: str
) -> None:
    env = {**os.environ, "NATS_URL": nats_url, "NATSFLOW_TENANT": unique}
    engine = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from natsflow.cli import main; main()",
        "engine",
        "--health-port",
        "0",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert engine.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"engine running" not in await engine.stderr.readline():
                pass
        api = ApiClient(nc, unique)
        await api.deploy(MODEL)
        started = [(await api.start("worst")).instance for _ in range(30)]
        async with asyncio.timeout(30):  # the engine is busy with them: the first incident is up
            while not (incidents := await _incidents(api, started[0])):
                await asyncio.sleep(0.05)
        engine.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        async with asyncio.timeout(GRACE_PERIOD):
            code = await engine.wait()
        stopped_after = loop.time() - signalled
    finally:
        if engine.returncode is None:
            engine.kill()
            await engine.wait()
    assert code == 0, f"exit code {code}"
    assert stopped_after < GRACE_PERIOD
    assert "exceeded its budget" in incidents[0]


async def _incidents(api: ApiClient, instance: str) -> list[str]:
    return [i.message for i in (await api.instance(instance)).incidents]
