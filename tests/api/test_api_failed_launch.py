"""A launch the engine cannot apply (its record would be over the size limit) is a failed
instance that the API shows with the reason, and a start that waits answers ``too_large``."""

from __future__ import annotations

import asyncio

import pytest
from api_kit import Api
from natsflow_engine.errors import PayloadTooLargeError

# a script that makes twenty copies of a 30 KB variable: the request is small, the record is not
GROWER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="grower" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="grow" />
    <bpmn:scriptTask id="grow"><bpmn:extensionElements>
      <zeebe:script expression="=for i in 1..20 return x" resultVariable="copies" />
    </bpmn:extensionElements></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="grow" targetRef="wait" />
    <bpmn:userTask id="wait" />
  </bpmn:process>
</bpmn:definitions>
"""


async def test_a_launch_over_the_record_limit_is_a_failed_instance_with_the_reason(api: Api) -> None:
    await api.client.deploy(GROWER)
    started = await api.client.start("grower", {"x": "a" * 30_000})
    async with asyncio.timeout(30):
        while not (incidents := await api.client.incidents(started.instance)):
            await asyncio.sleep(0.05)
    [incident] = incidents
    assert incident.kind == "payload"
    assert "the instance record would be 1.2 MB" in incident.message
    assert "the limit is 1 MB (1048576 bytes)" in incident.message
    view = await api.client.instance(started.instance)
    assert view.state == "failed" and view.variables == {}
    listed = await api.client.incidents(process_id="grower")
    assert [i.instance for i in listed] == [started.instance]


async def test_a_start_that_waits_answers_too_large(api: Api) -> None:
    await api.client.deploy(GROWER)
    with pytest.raises(PayloadTooLargeError, match=r"was not started: the instance record would be .* the limit is 1 MB"):
        await api.client.start("grower", {"x": "a" * 30_000}, wait=True)
