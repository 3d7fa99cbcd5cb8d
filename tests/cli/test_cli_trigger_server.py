"""End to end with the real front doors: ``natsflow apply -f`` (Workflow + Trigger manifests),
``natsflow trigger-server`` as a process, an engine and a worker; ``natsflow triggers``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from cli_kit import Stack
from natsflow_engine import layout
from natsflow_engine.worker import Worker

MANIFESTS = """apiVersion: natsflow.io/v1alpha1
kind: Workflow
metadata:
  name: orders
spec:
  bpmn: |
    <?xml version="1.0" encoding="UTF-8"?>
    <bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
        xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
      <bpmn:process id="order" isExecutable="true">
        <bpmn:startEvent id="start"/>
        <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="charge"/>
        <bpmn:serviceTask id="charge">
          <bpmn:extensionElements><zeebe:taskDefinition type="charge-{tenant}"/></bpmn:extensionElements>
        </bpmn:serviceTask>
        <bpmn:sequenceFlow id="f2" sourceRef="charge" targetRef="end"/>
        <bpmn:endEvent id="end"/>
      </bpmn:process>
    </bpmn:definitions>
---
apiVersion: natsflow.io/v1alpha1
kind: Trigger
metadata:
  name: order-created
spec:
  subject: shop.{tenant}.orders
  workflowRef:
    processId: order
  variables:
    orderId: payload.id
    amount: payload.total
  idempotencyKey:
    header: Nats-Msg-Id
"""


async def test_apply_trigger_server_process_and_triggers_listing(stack: Stack, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFESTS.format(tenant=stack.tenant))
    applied = await stack.invoke("apply", "-f", str(manifest))
    assert applied.exit_code == 0, applied.output
    assert "trigger.natsflow.io/order-created" in applied.stdout

    env = {**os.environ, "NATS_URL": stack.url, "NATSFLOW_TENANT": stack.tenant}
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from natsflow.cli import main; main()",
        "trigger-server",
        "--health-port",
        "0",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert server.stderr is not None
    worker = Worker(tenant=stack.tenant, nc=stack.nc)

    @worker.task(f"charge-{stack.tenant}")
    async def charge(job):  # type: ignore[no-untyped-def]
        return {"charged": job.variables["amount"]}

    await worker.start()
    try:
        async with asyncio.timeout(20):
            while b"trigger server running" not in await server.stderr.readline():
                pass
            js = stack.nc.jetstream()
            while True:  # the trigger server binds the operator's consumer
                info = await js.consumer_info(
                    f"NF_TRG_shop=2e{stack.tenant}=2eorders", f"trg_{stack.tenant}_order-created"
                )
                if info.num_waiting:
                    break
                await asyncio.sleep(0.05)
            for n in range(3):
                body = json.dumps({"id": f"o{n}", "total": 10 * n}).encode()
                await js.publish(f"shop.{stack.tenant}.orders", body, headers={"Nats-Msg-Id": f"msg-{n}"})
            while len(done := (await stack.api.instances(state="completed")).instances) < 3:
                await asyncio.sleep(0.05)
        iid = layout.idempotent_instance_id(stack.tenant, "order", "msg-2")
        assert (await stack.api.instance(iid)).variables == {"orderId": "o2", "amount": 20, "charged": 20}
        assert len(done) == 3
        async with asyncio.timeout(10):
            while True:  # counters are merged into KV about once a second
                listed = json.loads((await stack.invoke("triggers", "-o", "json")).stdout)
                if listed[0]["launched"] == 3:
                    break
                await asyncio.sleep(0.2)
        assert (listed[0]["name"], listed[0]["received"], listed[0]["rejected"]) == ("order-created", 3, 0)
    finally:
        await worker.stop(timeout=2.0)
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await server.wait()
    assert code == 0  # graceful stop on SIGTERM
