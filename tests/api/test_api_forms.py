"""Camunda forms (``.form`` JSON) deployed through the API and linked by user tasks (formId)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from api_kit import Api

from natsflow.errors import InvalidInputError, NotFoundError, PayloadTooLargeError

FORM: dict[str, Any] = {
    "id": "review-form",
    "type": "default",
    "components": [{"id": "c1", "key": "x", "label": "Amount", "type": "number"}],
}
LINKED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="linked" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />
    <bpmn:userTask id="ask">
      <bpmn:extensionElements><zeebe:formDefinition formId="review-form" /><zeebe:userTask />
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


async def test_a_form_deploys_versions_and_is_read_back(api: Api) -> None:
    source = json.dumps(FORM)
    first = await api.client.deploy_form(source, name="review.form")
    assert (first.form_id, first.version, first.created) == ("review-form", 1, True)
    again = await api.client.deploy_form(source, name="review.form")
    assert (again.version, again.created) == (1, False)
    changed = {**FORM, "components": [*FORM["components"], {"id": "c2", "key": "ok", "type": "checkbox"}]}
    assert (await api.client.deploy_form(json.dumps(changed))).version == 2
    read = await api.client.form("review-form")
    assert (read.version, json.loads(read.source)) == (2, changed)
    with pytest.raises(NotFoundError, match="form 'absent' is not deployed"):
        await api.client.form("absent")


async def test_a_user_task_names_its_linked_form(api: Api) -> None:
    await api.client.deploy_form(json.dumps(FORM), name="review.form")
    await api.client.deploy(LINKED, name="linked.bpmn")
    started = await api.client.start("linked", {}, wait=True)
    async with asyncio.timeout(10):
        while not (tasks := await api.client.tasks(started.instance)):
            await asyncio.sleep(0.02)
    assert tasks[0].form_id == "review-form" and tasks[0].form_key is None
    assert json.loads((await api.client.form(tasks[0].form_id)).source) == FORM


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1]", "a form is a JSON object"),
        ('{"components": []}', "id must be the form id"),
        ('{"id": "f"}', "components must be a list"),
        ('{"id": "f", "components": [], "type": "other"}', "type must be default"),
        (json.dumps({"id": "x" * 300, "components": []}), "form id"),
    ],
)
async def test_a_bad_form_is_refused_with_the_field_named(api: Api, source: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await api.client.deploy_form(source, name="bad.form")


async def test_a_form_over_the_payload_limit_is_refused(api: Api) -> None:
    huge = json.dumps({**FORM, "padding": "x" * 70_000})
    with pytest.raises(PayloadTooLargeError):
        await api.client.deploy_form(huge)
