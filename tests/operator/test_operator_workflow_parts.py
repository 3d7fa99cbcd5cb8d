"""What a Workflow deploys beside its processes: forms (inline and from a ConfigMap) that user
tasks resolve by formId through the API the console reads, and the processes' retention, which a
running engine applies to their ended instances."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from natsflow_engine import catalog, layout
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.server import ApiServer, ApiSettings
from natsflow_engine.runtime.definitions import ProcessRetention, get_latest
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.forms import get_form

LINKED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />
    <bpmn:userTask id="ask">
      <bpmn:extensionElements><zeebe:formDefinition formId="{form}" /><zeebe:userTask />
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""
STRAIGHT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def form(form_id: str, label: str = "Amount") -> str:
    return json.dumps(
        {"id": form_id, "type": "default", "components": [{"id": "c1", "key": "x", "label": label, "type": "number"}]}
    )


def _status(running: Any, tenant: str, name: str, **expected: Any) -> Any:
    async def probe() -> dict[str, Any] | None:
        obj = await running.api.get("Workflow", tenant, name)
        status = (obj or {}).get("status") or {}
        return obj if all(status.get(k) == v for k, v in expected.items()) else None

    return probe


def _reason(running: Any, tenant: str, name: str, kind: str, reason: str) -> Any:
    async def probe() -> dict[str, Any] | None:
        obj = await running.api.get("Workflow", tenant, name)
        return obj if running.condition(obj, kind).get("reason") == reason else None

    return probe


@pytest.fixture
async def served(nc: Client, unique: str) -> AsyncIterator[ApiClient]:
    """An engine and the request-reply API (what the console talks to) on the session's NATS."""
    engine = await Engine(nc, EngineSettings(fetch_timeout=0.2)).start()
    server = await ApiServer(nc, ApiSettings()).start()
    try:
        yield ApiClient(nc, unique, timeout=5.0)
    finally:
        await server.stop()
        await engine.stop(timeout=2.0)


async def test_forms_deploy_with_the_workflow_and_resolve_by_form_id(
    running: Any, nc: Client, unique: str, served: ApiClient
) -> None:
    api, tenant = running.api, unique
    await api.create_core("configmaps", tenant, "forms", {"data": {"approve.form": form("approve-form")}})
    spec = {
        "bpmn": LINKED.format(pid="review", form="review-form"),
        "forms": [form("review-form")],
        "formsFrom": [{"configMapKeyRef": {"name": "forms", "key": "approve.form"}}],
    }
    await api.create("Workflow", tenant, "review", spec)
    obj = await running.eventually(_status(running, tenant, "review", observedGeneration=1, version=1))
    assert obj["status"]["forms"] == [{"formId": "review-form", "version": 1}, {"formId": "approve-form", "version": 1}]
    assert "form review-form v1" in running.condition(obj, "Synced")["message"]
    kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
    assert json.loads((await get_form(kv, tenant, "approve-form")).source)["id"] == "approve-form"

    # the console's path: the user task names its form, the API resolves the id
    started = await served.start("review", {}, wait=True)
    async with asyncio.timeout(10):
        while not (tasks := await served.tasks(started.instance)):
            await asyncio.sleep(0.02)
    assert tasks[0].form_id == "review-form"
    assert json.loads((await served.form("review-form")).source) == json.loads(form("review-form"))

    # a changed form gets the next version; the process stays at its version
    await api.patch_spec("Workflow", tenant, "review", {**spec, "forms": [form("review-form", "Total")]})
    obj = await running.eventually(_status(running, tenant, "review", observedGeneration=2))
    assert obj["status"]["forms"][0] == {"formId": "review-form", "version": 2}
    assert obj["status"]["version"] == 1
    assert json.loads((await served.form("review-form")).source)["components"][0]["label"] == "Total"


@pytest.mark.parametrize(
    ("forms", "message"),
    [
        (["{not json"], "forms[0] is not JSON"),
        ([json.dumps({"id": "f"})], "forms[0]: components must be a list"),
        ([form("same"), form("same", "Other")], "forms[1]: form id 'same' is also the id of forms[0]"),
    ],
    ids=["not-json", "no-components", "duplicate-id"],
)
async def test_a_bad_form_is_a_typed_condition_and_nothing_is_deployed(
    running: Any, nc: Client, unique: str, forms: list[str], message: str
) -> None:
    api, tenant = running.api, unique
    await api.create("Workflow", tenant, "bad", {"bpmn": STRAIGHT.format(pid="bad"), "forms": forms})
    obj = await running.eventually(_reason(running, tenant, "bad", "Validated", "InvalidForm"))
    assert message in running.condition(obj, "Validated")["message"]
    assert running.condition(obj, "Ready")["status"] == "False"
    kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
    with pytest.raises(KeyNotFoundError):
        await kv.get(layout.workflow_latest_key(tenant, "bad"))  # the process waits for its forms


async def test_a_missing_form_config_map_is_reported(running: Any, unique: str) -> None:
    api, tenant = running.api, unique
    spec = {
        "bpmn": STRAIGHT.format(pid="waits"),
        "formsFrom": [{"configMapKeyRef": {"name": "absent", "key": "a.form"}}],
    }
    await api.create("Workflow", tenant, "waits", spec)
    obj = await running.eventually(_reason(running, tenant, "waits", "Validated", "ConfigMapNotFound"))
    assert f"ConfigMap {tenant}/absent does not exist" in running.condition(obj, "Validated")["message"]


async def test_retention_reaches_the_process_and_the_engine_applies_it(
    running: Any, nc: Client, unique: str, served: ApiClient
) -> None:
    api, tenant = running.api, unique
    spec: dict[str, Any] = {"bpmn": STRAIGHT.format(pid="brief"), "retention": {"live": "1s", "archive": "1h"}}
    await api.create("Workflow", tenant, "brief", spec)
    await running.eventually(_status(running, tenant, "brief", observedGeneration=1, version=1))
    workflows = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
    latest = await get_latest(workflows, tenant, "brief")
    assert latest.retention == ProcessRetention(live=1.0, archive=3600.0)

    # the engine runs with the default retention (live records kept for ever): the Workflow's wins
    records = await nc.jetstream().key_value(layout.BUCKET_INSTANCES)
    ended = (await served.start("brief", {}, wait=True)).instance

    async def gone() -> bool:
        try:
            await records.get(layout.instance_key(tenant, ended))
        except KeyNotFoundError:
            return True
        return False

    await running.eventually(gone)
    assert (await served.instance(ended)).state == "completed"  # from the archive

    # removing the field gives the process the engine's retention again
    await api.patch_spec("Workflow", tenant, "brief", {"retention": None})  # a merge patch removes it
    await running.eventually(_status(running, tenant, "brief", observedGeneration=2))

    async def cleared() -> bool:
        return (await get_latest(workflows, tenant, "brief")).retention is None

    await running.eventually(cleared)


async def test_task_definition_parameters_and_results_reach_the_catalog(running: Any, nc: Client, unique: str) -> None:
    api, tenant = running.api, unique
    spec: dict[str, Any] = {
        "taskType": "charge-card",
        "parameters": [{"name": "amount", "type": "number", "required": True, "description": "What to charge"}],
        "results": [{"name": "paymentId", "type": "string"}],
    }
    await api.create("TaskDefinition", tenant, "charge", spec)

    async def published() -> catalog.TaskDefRecord | None:
        try:  # the operator creates the bucket on its first connection
            kv = await nc.jetstream().key_value(layout.BUCKET_TASKDEFS)
            entry = await kv.get(layout.taskdef_key(tenant, "charge-card"))
        except (BucketNotFoundError, KeyNotFoundError):
            return None
        record = catalog.decode_taskdef(entry.value or b"")
        return record if record.parameters else None

    record = await running.eventually(published)
    assert record.parameters == [
        catalog.ParameterRecord(name="amount", type="number", required=True, description="What to charge")
    ]
    assert record.results == [catalog.ParameterRecord(name="paymentId", type="string")]

    # duplicate names are refused (the CRD's CEL rule, the model's validator here)
    await api.create("TaskDefinition", tenant, "twice", {**spec, "parameters": [{"name": "a"}, {"name": "a"}]})

    async def refused() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "twice")
        return obj if running.condition(obj, "Validated").get("reason") == "InvalidSpec" else None

    obj = await running.eventually(refused)
    assert "parameters: names must be unique" in running.condition(obj, "Validated")["message"]
