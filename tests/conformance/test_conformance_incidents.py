"""Incident placement and lifetime, and output mappings on the catch events that take an event's
variables into the process (Zeebe is the reference)."""

from __future__ import annotations

from pathlib import Path

from modelkit import chain, error_global, flow, message_def, message_global, model, service, user_task

from natsflow import BpmnError
from natsflow.testing import ProcessTestEngine

# A non-interrupting message event sub-process whose message name evaluates to null: arming its
# start raises an incident while the main flow waits at a user task.
ESP_INCIDENT = (Path(__file__).parents[1] / "models" / "esp-incident.bpmn").read_text()


async def test_incident_on_event_subprocess_start_closes_when_instance_completes(kit: ProcessTestEngine, checkpoint):
    await kit.deploy(ESP_INCIDENT)
    iid = await kit.start_instance("esp-incident", {"orderId": "o-1"})
    await kit.wait_until_idle()
    [incident] = (await kit.instance(iid)).incidents
    assert incident.element_id == "ms"
    await checkpoint()
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.incidents == []  # the instance ended: nothing is left to resolve


async def test_uncaught_error_end_event_in_subprocess_raises_incident_at_the_end_event(kit, checkpoint):
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" />'
        '<bpmn:endEvent id="boom"><bpmn:errorEventDefinition errorRef="Err_x" /></bpmn:endEvent>'
        + chain("ss", "boom") + "</bpmn:subProcess>"
    )
    body = '<bpmn:startEvent id="s" />' + user_task("wait") + sub + '<bpmn:endEvent id="e" />' + chain("s", "wait", "sub", "e")
    await kit.deploy(model("p", body, globals_=error_global("Err_x", "X")))
    iid = await kit.start_instance("p")
    await kit.wait_until_idle()
    await checkpoint()
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    snap = await kit.instance(iid)
    assert snap.state == "active"
    assert [(i.element_id, i.kind) for i in snap.incidents] == [("boom", "unhandled-error")]
    assert snap.active_elements == ["sub", "boom"]


MAPPING = (
    '<bpmn:extensionElements><zeebe:ioMapping>'
    '<zeebe:output source="=reason" target="why" />'
    '</zeebe:ioMapping></bpmn:extensionElements>'
)


async def test_error_boundary_output_mapping_takes_the_error_variables(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />' + service("risky", "risky")
        + '<bpmn:boundaryEvent id="caught" attachedToRef="risky">' + MAPPING
        + '<bpmn:errorEventDefinition errorRef="Err_x" /></bpmn:boundaryEvent>'
        + user_task("after") + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e2" />'
        + chain("s", "risky", "e") + flow("f", "caught", "after") + flow("g", "after", "e2")
    )
    await kit.deploy(model("p", body, globals_=error_global("Err_x", "X")))

    @kit.task("risky")
    async def risky(job):
        raise BpmnError("X", "no stock", variables={"reason": "out of stock"})

    iid = await kit.start_instance("p")
    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.active_elements == ["after"]
    assert snap.variables == {"why": "out of stock"}  # the outputs decide what reaches the process


async def test_message_boundary_output_mapping_takes_the_message_variables(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />' + user_task("wait")
        + '<bpmn:boundaryEvent id="got" attachedToRef="wait">' + MAPPING + message_def("Msg_c")
        + "</bpmn:boundaryEvent>" + user_task("after") + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e2" />'
        + chain("s", "wait", "e") + flow("f", "got", "after") + flow("g", "after", "e2")
    )
    await kit.deploy(model("p", body, globals_=message_global("Msg_c", "cancelled")))
    iid = await kit.start_instance("p", {"orderId": "o-1"})
    await kit.wait_until_idle()
    await checkpoint()
    assert await kit.publish_message("cancelled", correlation_key="o-1", variables={"reason": "changed mind"}) == 1
    snap = await kit.instance(iid)
    assert snap.active_elements == ["after"]
    assert snap.variables == {"orderId": "o-1", "why": "changed mind"}
