"""Events an instance throws to itself: signals reach the instance's own boundaries, event
sub-processes and catches in the step that throws them, whatever NATS stores first."""

from __future__ import annotations

import pytest
from conftest_engine import record_jobs
from modelkit import boundary, chain, event, flow, model, service, signal_def, signal_global

from natsflow.testing import ProcessTestEngine

SIGNAL = signal_global("Sig", "ping")


async def test_signal_thrown_inside_a_sub_process_reaches_its_non_interrupting_boundary(
    kit: ProcessTestEngine, checkpoint
):
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" />' + service("before", "w")
        + event("intermediateThrowEvent", "throw", signal_def("Sig")) + service("after", "w")
        + '<bpmn:endEvent id="se" />' + chain("ss", "before", "throw", "after", "se") + "</bpmn:subProcess>"
    )  # fmt: skip
    body = (
        '<bpmn:startEvent id="s" />' + sub + boundary("caught", "sub", signal_def("Sig"), interrupting=False)
        + service("on_signal", "w") + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e2" />'
        + chain("s", "sub", "e") + flow("fb", "caught", "on_signal") + chain("on_signal", "e2")
    )  # fmt: skip
    # each instance its own signal name: signals are broadcast, one instance's must not reach another
    await kit.deploy(model("p", body, globals_=signal_global("Sig", "=sig")))
    iids = [await kit.start_instance("p", {"sig": f"ping-{n}"}) for n in range(5)]
    await checkpoint()

    @kit.task("w")
    async def w(job):
        return None

    await kit.wait_until_idle()
    for iid in iids:  # every run, not some: the catch does not race the throw
        snap = await kit.instance(iid)
        assert snap.state == "completed"
        assert snap.completed_elements.count("caught") == 1 and snap.completed_elements.count("on_signal") == 1
        assert snap.completed_elements.count("after") == 1  # non-interrupting: the thrower goes on


async def test_signal_end_event_of_a_sub_process_reaches_the_interrupting_boundary(kit: ProcessTestEngine, checkpoint):
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" />' + service("work", "w")
        + event("endEvent", "se", signal_def("Sig")) + chain("ss", "work", "se") + "</bpmn:subProcess>"
    )  # fmt: skip
    body = (
        '<bpmn:startEvent id="s" />' + sub + boundary("caught", "sub", signal_def("Sig"))
        + '<bpmn:endEvent id="e_normal" /><bpmn:endEvent id="e_signal" />'
        + chain("s", "sub", "e_normal") + flow("fb", "caught", "e_signal")
    )  # fmt: skip
    await kit.deploy(model("p", body, globals_=SIGNAL))
    iid = await kit.start_instance("p")
    await checkpoint()

    @kit.task("w")
    async def w(job):
        return None

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and "e_signal" in snap.completed_elements
    assert "e_normal" not in snap.completed_elements


async def test_own_signal_starts_an_interrupting_event_sub_process_before_the_thrower_goes_on(
    kit: ProcessTestEngine, checkpoint
):
    esp = (
        '<bpmn:subProcess id="esp" triggeredByEvent="true">'
        + event("startEvent", "es", signal_def("Sig"), 'isInterrupting="true"') + service("handle", "w")
        + '<bpmn:endEvent id="ee" />' + chain("es", "handle", "ee") + "</bpmn:subProcess>"
    )  # fmt: skip
    sub = (
        '<bpmn:subProcess id="sub">' + esp + '<bpmn:startEvent id="ss" />' + service("first", "w")
        + event("intermediateThrowEvent", "throw", signal_def("Sig")) + service("never", "w")
        + '<bpmn:endEvent id="se" />' + chain("ss", "first", "throw", "never", "se") + "</bpmn:subProcess>"
    )  # fmt: skip
    body = '<bpmn:startEvent id="s" />' + sub + '<bpmn:endEvent id="e" />' + chain("s", "sub", "e")
    await kit.deploy(model("p", body, globals_=SIGNAL))
    iid = await kit.start_instance("p")
    await checkpoint()
    ran = record_jobs(kit, "w")

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and ran == ["first", "handle"]
    # the broadcast left the instance alone: nothing caught the signal twice
    assert snap.completed_elements.count("esp") == 1


COLLABORATION = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:message id="Msg" name="order-placed" />
  <bpmn:collaboration id="c">
    <bpmn:participant id="shop_p" processRef="shop" />
    <bpmn:participant id="store_p" processRef="store" />
    <bpmn:messageFlow id="mf" sourceRef="send" targetRef="receive" />
  </bpmn:collaboration>
  <bpmn:process id="shop" isExecutable="true">
    <bpmn:startEvent id="s" />
    <bpmn:sendTask id="send" messageRef="Msg" />
    <bpmn:endEvent id="e" />
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="send" />
    <bpmn:sequenceFlow id="f2" sourceRef="send" targetRef="e" />
  </bpmn:process>
  <bpmn:process id="store" isExecutable="true">
    <bpmn:receiveTask id="receive" messageRef="Msg" instantiate="true" />
    <bpmn:serviceTask id="pack"><bpmn:extensionElements><zeebe:taskDefinition type="pack" />
    </bpmn:extensionElements></bpmn:serviceTask>
    <bpmn:endEvent id="e2" />
    <bpmn:sequenceFlow id="g1" sourceRef="receive" targetRef="pack" />
    <bpmn:sequenceFlow id="g2" sourceRef="pack" targetRef="e2" />
  </bpmn:process>
</bpmn:definitions>
"""


async def test_send_task_on_a_message_flow_starts_the_instantiating_receive_task(kit: ProcessTestEngine, checkpoint):
    # neither a job type on the send task nor a none start event nor a correlation key is needed
    await kit.deploy(COLLABORATION)
    shop = await kit.start_instance("shop")
    await kit.wait_until_idle()
    await checkpoint()
    assert (await kit.instance(shop)).completed_elements == ["s", "send", "e"]
    [store] = await kit.instances("store")
    snap = await kit.instance(store)
    assert snap.active_elements == ["pack"] and snap.completed_elements == ["receive__instantiate", "receive"]

    @kit.task("pack")
    async def pack(job):
        return None

    await kit.wait_until_idle()
    assert (await kit.instance(store)).state == "completed"


async def test_multiple_catch_continues_on_the_first_of_its_events(kit: ProcessTestEngine, checkpoint):
    from datetime import timedelta

    from modelkit import message_def, message_global, timer

    body = (
        '<bpmn:startEvent id="s" />'
        + event("intermediateCatchEvent", "either", message_def("Msg") + timer("Duration", "PT1H"))
        + '<bpmn:endEvent id="e" />' + chain("s", "either", "e")
    )  # fmt: skip
    await kit.deploy(model("p", body, globals_=message_global("Msg", "paid")))
    by_message = await kit.start_instance("p", {"orderId": "A"})
    by_timer = await kit.start_instance("p", {"orderId": "B"})
    await checkpoint()
    assert (await kit.instance(by_message)).active_elements == ["either"]
    assert await kit.publish_message("paid", correlation_key="A") == 1
    await checkpoint()
    await kit.advance_time(timedelta(hours=1))
    for iid in (by_message, by_timer):
        snap = await kit.instance(iid)
        assert snap.state == "completed" and snap.completed_elements == ["s", "either", "e"]
    # the other definitions were released: a late message reaches nobody
    assert await kit.publish_message("paid", correlation_key="B") == 0


async def test_parallel_multiple_catch_waits_for_each_of_its_events(kit: ProcessTestEngine, checkpoint):
    globals_ = signal_global("SigA", "a") + signal_global("SigB", "b")
    body = (
        '<bpmn:startEvent id="s" />'
        + event("intermediateCatchEvent", "both", signal_def("SigA") + signal_def("SigB"), 'parallelMultiple="true"')
        + '<bpmn:endEvent id="e" />' + chain("s", "both", "e")
    )  # fmt: skip
    await kit.deploy(model("p", body, globals_=globals_))
    iid = await kit.start_instance("p")
    await checkpoint()
    await kit.broadcast_signal("b")
    await kit.broadcast_signal("b")  # the same definition again counts once
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["both"]
    await kit.broadcast_signal("a")
    assert (await kit.instance(iid)).state == "completed"


async def test_multiple_throw_throws_each_signal_and_reaches_catches_armed_in_the_same_step(
    kit: ProcessTestEngine, checkpoint
):
    globals_ = signal_global("SigA", "a") + signal_global("SigB", "b")
    body = (
        '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />'
        + event("intermediateThrowEvent", "throw", signal_def("SigA") + signal_def("SigB"))
        + event("intermediateCatchEvent", "catch_b", signal_def("SigB")) + service("after", "w")
        + '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        + flow("f0", "s", "fork") + flow("f1", "fork", "throw") + flow("f2", "fork", "catch_b")
        + chain("throw", "e1") + chain("catch_b", "after", "e2")
    )  # fmt: skip
    await kit.deploy(model("p", body, globals_=globals_))
    iid = await kit.start_instance("p")
    await checkpoint()
    # the throw ran before the catch was armed, in the same step: the catch still got it
    assert (await kit.instance(iid)).active_elements == ["after"]


@pytest.mark.parametrize("interrupting", [False, True])
async def test_escalation_a_called_process_does_not_catch_reaches_the_call_activity(
    kit: ProcessTestEngine, checkpoint, interrupting: bool
):
    from modelkit import escalation_def, escalation_global, user_task

    child = (
        '<bpmn:startEvent id="cs" /><bpmn:parallelGateway id="cfork" />' + user_task("child_work")
        + event("endEvent", "esc_end", escalation_def("Esc")) + '<bpmn:endEvent id="ce" />'
        + flow("c0", "cs", "cfork") + flow("c1", "cfork", "esc_end") + flow("c2", "cfork", "child_work")
        + chain("child_work", "ce")
    )  # fmt: skip
    call = '<bpmn:callActivity id="call"><bpmn:extensionElements><zeebe:calledElement processId="child" />' \
           "</bpmn:extensionElements></bpmn:callActivity>"
    parent = (
        '<bpmn:startEvent id="s" />' + call
        + boundary("escalated", "call", escalation_def("Esc"), interrupting=interrupting)
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e_esc" />'
        + chain("s", "call", "e") + flow("fb", "escalated", "e_esc")
    )  # fmt: skip
    await kit.deploy(model("child", child, globals_=escalation_global("Esc", "LATE")))
    await kit.deploy(model("parent", parent, globals_=escalation_global("Esc", "LATE")))
    iid = await kit.start_instance("parent")
    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    [child_id] = await kit.instances("child")
    child_snap = await kit.instance(child_id)
    assert "escalated" in snap.completed_elements and "e_esc" in snap.completed_elements
    if interrupting:  # the call activity and its child ended
        assert snap.state == "completed" and child_snap.state == "cancelled"
    else:  # the child goes on, the call activity waits for it
        assert snap.active_elements == ["call"] and child_snap.active_elements == ["child_work"]


async def test_instantiating_event_based_gateway_starts_an_instance_on_one_of_its_messages(
    kit: ProcessTestEngine, checkpoint
):
    from modelkit import message_def, message_global

    body = (
        '<bpmn:eventBasedGateway id="ebg" instantiate="true" />'
        + event("intermediateCatchEvent", "paid", message_def("MsgPaid"))
        + event("intermediateCatchEvent", "cancelled", message_def("MsgCancel"))
        + service("ship", "w") + '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        + flow("f1", "ebg", "paid") + flow("f2", "ebg", "cancelled") + chain("paid", "ship", "e1")
        + chain("cancelled", "e2")
    )  # fmt: skip
    globals_ = message_global("MsgPaid", "paid") + message_global("MsgCancel", "cancelled")
    await kit.deploy(model("p", body, globals_=globals_))
    assert await kit.publish_message("paid", correlation_key="A", variables={"orderId": "A"}) == 1
    await checkpoint()
    [iid] = await kit.instances("p")
    snap = await kit.instance(iid)
    assert snap.active_elements == ["ship"] and snap.completed_elements == ["paid__instantiate", "paid"]
    assert snap.variables == {"orderId": "A"}
