"""Several event definitions on boundary events, event sub-process starts and process start
events (BPMN 2.0, 10.5.1): multiple (any one of them triggers) and parallel multiple (each of
them is needed), steady and with the engine restarted at the wait states."""

from __future__ import annotations

from datetime import timedelta

import pytest
from modelkit import (
    boundary,
    chain,
    event,
    flow,
    message_def,
    message_global,
    model,
    signal_def,
    signal_global,
    timer,
    user_task,
)

from natsflow.errors import BpmnValidationError
from natsflow.testing import ProcessTestEngine

GLOBALS = message_global("Msg", "cancel-order") + signal_global("Sig", "shutdown")


def _waiting_task(boundaries: str, attrs: str = "") -> str:
    return (
        '<bpmn:startEvent id="s" />' + user_task("work") + boundaries + '<bpmn:endEvent id="e" />'
        + '<bpmn:endEvent id="e_b" />' + chain("s", "work", "e") + flow("fb", "b", "e_b")
    )  # fmt: skip


@pytest.mark.parametrize("which", ["message", "timer"])
async def test_multiple_boundary_interrupts_on_whichever_of_its_events_comes_first(
    kit: ProcessTestEngine, checkpoint, which: str
):
    definitions = message_def("Msg") + timer("Duration", "PT1H")
    await kit.deploy(model("p", _waiting_task(boundary("b", "work", definitions)), globals_=GLOBALS))
    iid = await kit.start_instance("p", {"orderId": "o-1"})
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["work"]
    if which == "message":
        assert await kit.publish_message("cancel-order", correlation_key="o-1") == 1
    else:
        await kit.advance_time(timedelta(hours=1))
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.completed_elements[-2:] == ["b", "e_b"]
    # the other definition was released with the task: nothing fires later
    await kit.advance_time(timedelta(hours=2))
    assert await kit.publish_message("cancel-order", correlation_key="o-1") == 0
    assert (await kit.instance(iid)).completed_elements.count("b") == 1


async def test_parallel_multiple_non_interrupting_boundary_fires_once_each_happened(
    kit: ProcessTestEngine, checkpoint
):
    definitions = message_def("Msg") + signal_def("Sig")
    b = boundary("b", "work", definitions, interrupting=False).replace(
        'cancelActivity="false"', 'cancelActivity="false" parallelMultiple="true"'
    )
    await kit.deploy(model("p", _waiting_task(b), globals_=GLOBALS))
    iid = await kit.start_instance("p", {"orderId": "o-1"})
    await checkpoint()
    assert await kit.broadcast_signal("shutdown") == 1
    await checkpoint()
    assert "b" not in (await kit.instance(iid)).completed_elements  # one of two: nothing yet
    assert await kit.publish_message("cancel-order", correlation_key="o-1") == 1
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.completed_elements.count("b") == 1 and snap.active_elements == ["work"]
    # armed again: each definition is needed once more
    assert await kit.publish_message("cancel-order", correlation_key="o-1") == 1
    assert (await kit.instance(iid)).completed_elements.count("b") == 1
    assert await kit.broadcast_signal("shutdown") == 1
    snap = await kit.instance(iid)
    assert snap.completed_elements.count("b") == 2 and snap.active_elements == ["work"]
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    assert (await kit.instance(iid)).state == "completed"


def _esp(start: str) -> str:
    return (
        '<bpmn:subProcess id="esp" triggeredByEvent="true">' + start + '<bpmn:endEvent id="ee" />'
        + chain("es", "ee") + "</bpmn:subProcess>"
    )  # fmt: skip


async def test_multiple_event_sub_process_start_interrupts_on_either_event(kit: ProcessTestEngine, checkpoint):
    start = event("startEvent", "es", signal_def("Sig") + timer("Duration", "PT1H"))
    body = _esp(start) + '<bpmn:startEvent id="s" />' + user_task("work") + '<bpmn:endEvent id="e" />'
    await kit.deploy(model("p", body + chain("s", "work", "e"), globals_=GLOBALS))
    by_timer = await kit.start_instance("p")
    await checkpoint()
    await kit.advance_time(timedelta(hours=1))
    snap = await kit.instance(by_timer)
    assert snap.state == "completed" and "es" in snap.completed_elements and "work" not in snap.completed_elements
    by_signal = await kit.start_instance("p")
    await checkpoint()
    assert await kit.broadcast_signal("shutdown") == 1
    assert (await kit.instance(by_signal)).state == "completed"


async def test_parallel_multiple_event_sub_process_start_needs_each_event(kit: ProcessTestEngine, checkpoint):
    start = event("startEvent", "es", signal_def("Sig") + timer("Duration", "PT1H"), 'parallelMultiple="true"')
    body = _esp(start) + '<bpmn:startEvent id="s" />' + user_task("work") + '<bpmn:endEvent id="e" />'
    await kit.deploy(model("p", body + chain("s", "work", "e"), globals_=GLOBALS))
    iid = await kit.start_instance("p")
    await checkpoint()
    await kit.advance_time(timedelta(hours=1))
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["work"]  # the timer alone is not enough
    assert await kit.broadcast_signal("shutdown") == 1
    snap = await kit.instance(iid)
    assert snap.state == "completed" and "es" in snap.completed_elements


async def test_multiple_process_start_event_starts_on_any_of_its_events(kit: ProcessTestEngine, checkpoint):
    conditional = (
        '<bpmn:conditionalEventDefinition><bpmn:condition xsi:type="bpmn:tFormalExpression">=go'
        "</bpmn:condition></bpmn:conditionalEventDefinition>"
    )
    definitions = message_def("Msg") + signal_def("Sig") + timer("Date", "2026-06-01T00:00:00Z") + conditional
    start = event("startEvent", "s", definitions)
    body = start + user_task("work") + '<bpmn:endEvent id="e" />' + chain("s", "work", "e")
    plain = message_global("Msg", "cancel-order", key="=x") + signal_global("Sig", "shutdown")
    await kit.deploy(model("p", body, globals_=plain))
    assert await kit.publish_message("cancel-order", variables={"via": "message"}) == 1
    assert await kit.broadcast_signal("shutdown", variables={"via": "signal"}) == 1
    assert len(await kit.evaluate_conditions({"go": True, "via": "condition"})) == 1
    assert await kit.evaluate_conditions({"go": False}) == []
    await kit.advance_time(timedelta(days=365))
    await checkpoint()
    snaps = [await kit.instance(i) for i in await kit.instances("p")]
    assert len(snaps) == 4 and all(s.active_elements == ["work"] for s in snaps)
    assert sorted(str(s.variables.get("via")) for s in snaps) == ["None", "condition", "message", "signal"]


@pytest.mark.parametrize(
    ("definitions", "attrs", "problem"),
    [
        (message_def("Msg") + signal_def("Sig"), 'parallelMultiple="true"', "is parallel multiple"),
        (timer("Duration", "PT1H") + timer("Duration", "PT2H"), "", "several timer definitions"),
    ],
)
async def test_process_start_events_natsflow_cannot_run_are_refused_with_the_reason(
    kit: ProcessTestEngine, definitions: str, attrs: str, problem: str
):
    body = event("startEvent", "s", definitions, attrs) + '<bpmn:endEvent id="e" />' + chain("s", "e")
    with pytest.raises(BpmnValidationError, match=problem):
        await kit.deploy(model("p", body, globals_=GLOBALS))
