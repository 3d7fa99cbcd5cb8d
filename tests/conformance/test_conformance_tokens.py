"""Token semantics the specification defines: startQuantity, completionQuantity, several
incoming flows into an activity, loopMaximum, timer cycles on intermediate catch events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest_engine import record_jobs
from modelkit import chain, event, flow, model, service, timer

from natsflow.errors import BpmnValidationError
from natsflow.testing import ProcessTestEngine


def _task(tid: str, job: str, attrs: str) -> str:
    return service(tid, job).replace(f'<bpmn:serviceTask id="{tid}"', f'<bpmn:serviceTask id="{tid}" {attrs}', 1)


async def test_completion_quantity_sends_tokens_and_start_quantity_waits_for_them(kit: ProcessTestEngine, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />' + _task("send", "w", 'completionQuantity="2"') + service("forward", "w")
        + _task("receive", "w", 'startQuantity="2"') + '<bpmn:endEvent id="e" />'
        + chain("s", "send", "forward", "receive", "e")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    ran = record_jobs(kit, "w")

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and sorted(ran) == ["forward", "forward", "receive", "send"]


async def test_start_quantity_counts_tokens_of_every_incoming_flow_and_keeps_waiting(
    kit: ProcessTestEngine, checkpoint
):
    body = (
        '<bpmn:startEvent id="s" />' + service("a", "w") + service("b", "w") + _task("both", "w", 'startQuantity="2"')
        + _task("three", "w", 'startQuantity="3"') + '<bpmn:endEvent id="e" />'
        + flow("f1", "s", "a") + flow("f2", "s", "b") + flow("f3", "a", "both") + flow("f4", "b", "both")
        + chain("both", "three", "e")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()

    @kit.task("w")
    async def w(job):
        return None

    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    # 'both' started once with a token from each flow; 'three' waits for two more tokens
    assert snap.completed_elements.count("both") == 1 and "three" not in snap.completed_elements
    assert snap.state == "active" and snap.incidents == []


async def test_several_incoming_flows_without_a_gateway_start_the_activity_per_token(
    kit: ProcessTestEngine, checkpoint
):
    body = (
        '<bpmn:startEvent id="s" />' + service("a", "w") + service("b", "w") + service("after", "w")
        + '<bpmn:endEvent id="e" />' + flow("f1", "s", "a") + flow("f2", "s", "b")
        + flow("f3", "a", "after") + flow("f4", "b", "after") + chain("after", "e")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()

    @kit.task("w")
    async def w(job):
        return None

    await kit.wait_until_idle()
    assert (await kit.instance(iid)).completed_elements.count("after") == 2


@pytest.mark.parametrize("attr", ['startQuantity="0"', 'completionQuantity="-1"', 'startQuantity="two"'])
async def test_quantities_below_one_are_refused_at_deploy(kit: ProcessTestEngine, attr: str):
    body = '<bpmn:startEvent id="s" />' + _task("t", "w", attr) + '<bpmn:endEvent id="e" />' + chain("s", "t", "e")
    with pytest.raises(BpmnValidationError, match="must be a whole number of at least 1"):
        await kit.deploy(model("p", body))


async def test_negative_loop_maximum_is_a_runtime_error(kit: ProcessTestEngine, checkpoint):
    looped = service("t", "w").replace(
        "</bpmn:serviceTask>",
        '<bpmn:standardLoopCharacteristics loopMaximum="-1"><bpmn:loopCondition>=true</bpmn:loopCondition>'
        "</bpmn:standardLoopCharacteristics></bpmn:serviceTask>",
    )
    await kit.deploy(model("p", '<bpmn:startEvent id="s" />' + looped + '<bpmn:endEvent id="e" />' + chain("s", "t", "e")))
    iid = await kit.start_instance("p")
    await checkpoint()
    [incident] = (await kit.instance(iid)).incidents
    assert incident.element_id == "t" and "loopMaximum is -1" in incident.message


async def test_timer_cycle_on_an_intermediate_catch_sends_a_token_each_time(kit: ProcessTestEngine, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />' + event("intermediateCatchEvent", "tick", timer("Cycle", "R3/PT1M"))
        + service("work", "w") + '<bpmn:endEvent id="e" />' + chain("s", "tick", "work", "e")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    ran = record_jobs(kit, "w")

    await checkpoint()
    await kit.advance_time(timedelta(minutes=1))
    await checkpoint()
    assert len(ran) == 1 and (await kit.instance(iid)).active_elements == ["tick"]
    await kit.advance_time(timedelta(minutes=5))
    snap = await kit.instance(iid)
    assert len(ran) == 3 and snap.state == "completed"


@pytest.mark.parametrize(("behavior", "alerts"), [("None", 3), ("One", 1), ("All", 0)])
async def test_multi_instance_behavior_throws_its_event_to_the_activity_boundaries(
    kit: ProcessTestEngine, checkpoint, behavior: str, alerts: int
):
    from modelkit import boundary, signal_def, signal_global

    ref = "" if behavior == "All" else f' {behavior.lower()}BehaviorEventRef="Done"'
    looped = service("t", "w").replace(
        "</bpmn:serviceTask>",
        f'<bpmn:multiInstanceLoopCharacteristics isSequential="true" behavior="{behavior}"{ref}>'
        "<bpmn:loopCardinality>3</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics></bpmn:serviceTask>",
    )
    body = (
        '<bpmn:startEvent id="s" />' + looped + boundary("caught", "t", signal_def("Sig"))
        + service("alert", "w") + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e2" />'
        + chain("s", "t", "e") + flow("fb", "caught", "alert") + chain("alert", "e2")
    )  # fmt: skip
    globals_ = signal_global("Sig", "done") + '<bpmn:signalEventDefinition id="Done" signalRef="Sig" />'
    await kit.deploy(model("p", body, globals_=globals_))
    iid = await kit.start_instance("p")
    await checkpoint()
    ran = record_jobs(kit, "w")

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    # the boundary took a token on for each thrown event; the activity was not interrupted
    assert snap.state == "completed" and ran.count("t") == 3 and ran.count("alert") == alerts


def _complex(definitions: str) -> str:
    return service("t", "w").replace(
        "</bpmn:serviceTask>",
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true" behavior="Complex">'
        f"<bpmn:loopCardinality>4</bpmn:loopCardinality>{definitions}"
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:serviceTask>",
    )


async def test_multi_instance_complex_behavior_cancels_the_rest_and_throws_its_event(
    kit: ProcessTestEngine, checkpoint
):
    from modelkit import boundary, signal_def, signal_global

    definitions = (
        # never holds: its event is never thrown
        "<bpmn:complexBehaviorDefinition><bpmn:condition>=numberOfCompletedInstances > 10</bpmn:condition>"
        '<bpmn:event><bpmn:signalEventDefinition signalRef="Other" /></bpmn:event></bpmn:complexBehaviorDefinition>'
        # holds after the second instance: the other two never start
        "<bpmn:complexBehaviorDefinition><bpmn:condition>=numberOfCompletedInstances >= 2 and "
        "numberOfActiveInstances = 0</bpmn:condition>"
        '<bpmn:event><bpmn:signalEventDefinition signalRef="Sig" /></bpmn:event></bpmn:complexBehaviorDefinition>'
    )
    body = (
        '<bpmn:startEvent id="s" />' + _complex(definitions) + boundary("caught", "t", signal_def("Sig"))
        + boundary("other", "t", signal_def("Other")) + service("alert", "w") + service("after", "w")
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e2" /><bpmn:endEvent id="e3" />'
        + chain("s", "t", "after", "e") + flow("fb", "caught", "alert") + chain("alert", "e2")
        + flow("fo", "other", "e3")
    )  # fmt: skip
    await kit.deploy(model("p", body, globals_=signal_global("Sig", "done") + signal_global("Other", "other")))
    iid = await kit.start_instance("p")
    await checkpoint()
    ran = record_jobs(kit, "w")

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert sorted(ran) == ["after", "alert", "t", "t"]
    assert "other" not in snap.completed_elements and "caught" in snap.completed_elements


@pytest.mark.parametrize(
    ("definitions", "problem"),
    [
        ("", "without a complexBehaviorDefinition"),
        ("<bpmn:complexBehaviorDefinition><bpmn:event><bpmn:signalEventDefinition signalRef=\"Sig\" />"
         "</bpmn:event></bpmn:complexBehaviorDefinition>", "without a condition"),
        ("<bpmn:complexBehaviorDefinition><bpmn:condition>=true</bpmn:condition><bpmn:event>"
         "<bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration></bpmn:timerEventDefinition>"
         "</bpmn:event></bpmn:complexBehaviorDefinition>", "a signal, message, escalation or error is needed"),
    ],
)
async def test_multi_instance_complex_behavior_is_checked_at_deploy(kit: ProcessTestEngine, definitions, problem):
    from modelkit import signal_global

    body = '<bpmn:startEvent id="s" />' + _complex(definitions) + '<bpmn:endEvent id="e" />' + chain("s", "t", "e")
    with pytest.raises(BpmnValidationError, match=problem):
        await kit.deploy(model("p", body, globals_=signal_global("Sig", "done")))
