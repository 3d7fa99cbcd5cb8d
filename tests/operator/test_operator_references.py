"""References follow Kubernetes habits: ``workflowRef.name`` names a Workflow object, a
TaskDefinition's ``taskType`` defaults to its name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
from click.testing import CliRunner
from nats.aio.client import Client
from natsflow_engine import catalog, layout
from natsflow_operator.cli import apply_cmd

PROCESS = """
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="{pid}-s"/><bpmn:endEvent id="{pid}-e"/>
    <bpmn:sequenceFlow id="{pid}-f" sourceRef="{pid}-s" targetRef="{pid}-e"/>
  </bpmn:process>"""


def bpmn(*pids: str) -> str:
    body = "".join(PROCESS.format(pid=p) for p in pids)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
        'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">'
        f"{body}\n</bpmn:definitions>\n"
    )


async def _record(nc: Client, tenant: str, name: str) -> catalog.TriggerRecord | None:
    kv = await nc.jetstream().key_value(layout.BUCKET_TRIGGERS)
    try:
        entry = await kv.get(layout.trigger_key(tenant, name))
    except Exception:
        return None
    return catalog.decode_trigger(entry.value or b"")


async def test_workflow_ref_names_a_workflow_object(running: Any, nc: Client, unique: str) -> None:
    api, tenant = running.api, unique
    await api.create(
        "Trigger", tenant, "early", {"subject": f"{tenant}.a", "workflowRef": {"name": "orders"}}
    )

    async def waiting() -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, "early")
        return obj if running.condition(obj, "Reconciling").get("reason") == "WorkflowNotFound" else None

    await running.eventually(waiting)  # retried: the Workflow may come later (Argo CD sync order)
    await api.create("Workflow", tenant, "orders", {"bpmn": bpmn("order-process")})

    async def ready(name: str) -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, name)
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    await running.eventually(lambda: ready("early"))
    record = await _record(nc, tenant, "early")
    assert record is not None and record.process_id == "order-process"

    await api.create("Workflow", tenant, "pair", {"bpmn": bpmn("pick-a", "pick-b")})
    spec = {"subject": f"{tenant}.b", "workflowRef": {"name": "pair"}}
    await api.create("Trigger", tenant, "vague", spec)

    async def stalled() -> dict[str, Any] | None:
        obj = await api.get("Trigger", tenant, "vague")
        return obj if running.condition(obj, "Stalled").get("reason") == "AmbiguousProcess" else None

    obj = await running.eventually(stalled)
    assert "pick-a, pick-b" in running.condition(obj, "Validated")["message"]
    await api.patch_spec("Trigger", tenant, "vague", {"workflowRef": {"name": "pair", "processId": "pick-b"}})
    await running.eventually(lambda: ready("vague"))
    record = await _record(nc, tenant, "vague")
    assert record is not None and record.process_id == "pick-b"


async def test_task_type_defaults_to_the_name(running: Any, nc: Client, unique: str) -> None:
    api, tenant = running.api, unique
    await api.create("TaskDefinition", tenant, "send-mail", {"concurrency": 3})

    async def consumer() -> Any:
        try:
            return await nc.jetstream().consumer_info(
                layout.STREAM_JOBS, layout.job_consumer(tenant, "send-mail")
            )
        except Exception:
            return None

    info = await running.eventually(consumer)
    assert info.config.max_ack_pending == 3


def test_apply_resolves_workflow_ref_name_and_task_type(nats_url: str, unique: str, tmp_path: Path) -> None:
    import asyncio

    workflow = {"apiVersion": "natsflow.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "orders"}}
    (tmp_path / "all.yaml").write_text(
        "\n---\n".join(
            [
                _yaml({**workflow, "spec": {"bpmn": bpmn("order-process")}}),
                _yaml(
                    {
                        "apiVersion": "natsflow.io/v1alpha1",
                        "kind": "Trigger",
                        "metadata": {"name": "t"},
                        "spec": {"subject": f"{unique}.orders", "workflowRef": {"name": "orders"}},
                    }
                ),
                _yaml(
                    {
                        "apiVersion": "natsflow.io/v1alpha1",
                        "kind": "TaskDefinition",
                        "metadata": {"name": "pack"},
                    }
                ),
            ]
        )
    )
    result = CliRunner().invoke(apply_cmd, ["-f", str(tmp_path), "--nats-url", nats_url, "--tenant", unique])
    assert result.exit_code == 0, result.stdout

    async def read() -> tuple[str | None, int]:
        nc = await nats.connect(nats_url)
        try:
            record = await _record(nc, unique, "t")
            info = await nc.jetstream().consumer_info(layout.STREAM_JOBS, layout.job_consumer(unique, "pack"))
            return (record.process_id if record else None), info.config.max_ack_pending
        finally:
            await nc.close()

    assert asyncio.run(read()) == ("order-process", 32)


def _yaml(obj: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(obj)
