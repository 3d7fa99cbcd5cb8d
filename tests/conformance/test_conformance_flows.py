"""Gateways (event-based, inclusive), call activities, event sub-processes (error, escalation),
terminate inside a sub-process, escalation, link events and compensation."""

from __future__ import annotations

from datetime import timedelta

from modelkit import (
    boundary,
    chain,
    error_global,
    escalation_def,
    escalation_global,
    event,
    flow,
    message_def,
    message_global,
    model,
    service,
    timer,
    user_task,
)

from natsflow import BpmnError
from natsflow.testing import ProcessTestEngine


async def test_event_based_gateway_first_event_wins(kit: ProcessTestEngine, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:eventBasedGateway id="ebg" />'
        + event("intermediateCatchEvent", "paid", message_def("Msg_paid"))
        + event("intermediateCatchEvent", "timeout", timer("Duration", "PT1H"))
        + '<bpmn:endEvent id="e_paid" /><bpmn:endEvent id="e_timeout" />'
        + flow("f0", "s", "ebg") + flow("f1", "ebg", "paid") + flow("f2", "ebg", "timeout")
        + flow("f3", "paid", "e_paid") + flow("f4", "timeout", "e_timeout")
    )
    await kit.deploy(model("p", body, globals_=message_global("Msg_paid", "paid")))
    fast = await kit.start_instance("p", {"orderId": "A"})
    slow = await kit.start_instance("p", {"orderId": "B"})
    await checkpoint()
    await kit.publish_message("paid", correlation_key="A")
    await checkpoint()
    await kit.advance_time(timedelta(hours=1))
    assert (await kit.instance(fast)).completed_elements == ["s", "ebg", "paid", "e_paid"]
    assert (await kit.instance(slow)).completed_elements == ["s", "ebg", "timeout", "e_timeout"]
    # the losing subscription is gone: a late message reaches nobody
    assert await kit.publish_message("paid", correlation_key="B") == 0


INCLUSIVE = (
    '<bpmn:startEvent id="s" /><bpmn:inclusiveGateway id="split" default="f_none" />'
    + service("a", "a") + service("b", "b") + '<bpmn:task id="none" />'
    + '<bpmn:inclusiveGateway id="join" /><bpmn:endEvent id="e" />'
    + flow("f0", "s", "split") + flow("f_a", "split", "a", "=wantA") + flow("f_b", "split", "b", "=wantB")
    + flow("f_none", "split", "none")
    + flow("f_a2", "a", "join") + flow("f_b2", "b", "join") + flow("f_none2", "none", "join") + flow("f9", "join", "e")
)


async def test_inclusive_split_and_join_waits_only_for_tokens_that_can_arrive(kit, checkpoint):
    await kit.deploy(model("p", INCLUSIVE))
    both = await kit.start_instance("p", {"wantA": True, "wantB": True})
    only_a = await kit.start_instance("p", {"wantA": True, "wantB": False})
    neither = await kit.start_instance("p", {"wantA": False, "wantB": False})
    await checkpoint()
    assert (await kit.instance(neither)).completed_elements == ["s", "split", "none", "join", "e"]

    @kit.task("a")
    async def a(job):
        return {"a": True}

    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(only_a)
    assert snap.state == "completed" and snap.completed_elements == ["s", "split", "a", "join", "e"]
    assert (await kit.instance(both)).active_elements == ["b"]  # the join still waits for b

    @kit.task("b")
    async def b(job):
        return {"b": True}

    await kit.wait_until_idle()
    snap = await kit.instance(both)
    assert snap.state == "completed" and snap.completed_elements.count("join") == 1


async def test_call_activity_passes_variables_in_and_out(kit, checkpoint):
    child = '<bpmn:startEvent id="cs" />' + service("work", "work") + '<bpmn:endEvent id="ce" />' + chain("cs", "work", "ce")
    call = (
        '<bpmn:callActivity id="call"><bpmn:extensionElements>'
        '<zeebe:calledElement processId="child" propagateAllChildVariables="false" />'
        '<zeebe:ioMapping><zeebe:output source="=result" target="childResult" /></zeebe:ioMapping>'
        "</bpmn:extensionElements></bpmn:callActivity>"
    )
    parent = '<bpmn:startEvent id="s" />' + call + '<bpmn:endEvent id="e" />' + chain("s", "call", "e")
    await kit.deploy(model("child", child))
    await kit.deploy(model("parent", parent))
    iid = await kit.start_instance("parent", {"n": 20})
    await checkpoint()
    [child_id] = await kit.instances("child")
    assert (await kit.instance(child_id)).variables == {"n": 20}

    @kit.task("work")
    async def work(job):
        return {"result": job.variables["n"] * 2, "noise": 1}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.variables == {"n": 20, "childResult": 40}
    assert (await kit.instance(child_id)).state == "completed"


async def test_call_activity_child_cancelled_with_parent_and_errors_propagate(kit, checkpoint):
    child = '<bpmn:startEvent id="cs" />' + user_task("wait") + '<bpmn:endEvent id="ce" />' + chain("cs", "wait", "ce")
    failing = (
        '<bpmn:startEvent id="fs" />' + service("fail", "fail") + '<bpmn:endEvent id="fe" />' + chain("fs", "fail", "fe")
    )
    call = '<bpmn:callActivity id="call"><bpmn:extensionElements><zeebe:calledElement processId="=target" />' \
           "</bpmn:extensionElements></bpmn:callActivity>"
    parent = (
        '<bpmn:startEvent id="s" />' + call
        + boundary("caught", "call", '<bpmn:errorEventDefinition errorRef="Err_b" />')
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e_err" />' + chain("s", "call", "e") + flow("f", "caught", "e_err")
    )
    await kit.deploy(model("child", child))
    await kit.deploy(model("failing", failing))
    await kit.deploy(model("parent", parent, globals_=error_global("Err_b", "BOOM")))
    waiting = await kit.start_instance("parent", {"target": "child"})
    await checkpoint()
    [child_id] = await kit.instances("child")
    await kit.cancel_instance(waiting)
    assert (await kit.instance(child_id)).state == "cancelled"

    @kit.task("fail")
    async def fail(job):
        raise BpmnError("BOOM", "child failed")

    erring = await kit.start_instance("parent", {"target": "failing"})
    await kit.wait_until_idle()
    snap = await kit.instance(erring)
    assert snap.state == "completed" and snap.completed_elements == ["s", "caught", "e_err"]


async def test_error_event_subprocess_catches_and_terminate_inside_subprocess_ends_only_it(kit, checkpoint):
    esp = (
        '<bpmn:subProcess id="on_error" triggeredByEvent="true">'
        '<bpmn:startEvent id="es"><bpmn:errorEventDefinition errorRef="Err_x" /></bpmn:startEvent>'
        '<bpmn:endEvent id="ee" />' + chain("es", "ee") + "</bpmn:subProcess>"
    )
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" /><bpmn:parallelGateway id="fork" />'
        + user_task("inner") + '<bpmn:endEvent id="stop"><bpmn:terminateEventDefinition /></bpmn:endEvent>'
        + flow("a", "ss", "fork") + flow("b", "fork", "inner") + flow("c", "fork", "stop") + "</bpmn:subProcess>"
    )
    body = (
        '<bpmn:startEvent id="s" />' + sub + service("risky", "risky") + '<bpmn:endEvent id="e" />'
        + chain("s", "sub", "risky", "e") + esp
    )
    await kit.deploy(model("p", body, globals_=error_global("Err_x", "X")))

    @kit.task("risky")
    async def risky(job):
        raise BpmnError("X", "caught by the event sub-process")

    iid = await kit.start_instance("p")
    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    # terminate ended the sub-process only; the process went on to 'risky', whose error the ESP caught
    assert snap.completed_elements == ["s", "ss", "fork", "stop", "sub", "es", "ee", "on_error"]


async def test_escalation_boundary_interrupting_non_interrupting_and_uncaught(kit, checkpoint):
    late = escalation_global("Esc_late", "LATE")
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" />'
        + event("intermediateThrowEvent", "warn", escalation_def("Esc_late")) + user_task("inner")
        + '<bpmn:endEvent id="se" />' + chain("ss", "warn", "inner", "se") + "</bpmn:subProcess>"
    )
    body = (
        '<bpmn:startEvent id="s" />' + sub + boundary("esc", "sub", escalation_def("Esc_late"), interrupting=False)
        + service("notify", "notify") + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e2" />'
        + chain("s", "sub", "e") + flow("f1", "esc", "notify") + flow("f2", "notify", "e2")
    )
    await kit.deploy(model("p", body, globals_=late))
    plain = (
        '<bpmn:startEvent id="s" />' + event("intermediateThrowEvent", "warn", escalation_def("Esc_late"))
        + '<bpmn:endEvent id="e" />' + chain("s", "warn", "e")
    )
    await kit.deploy(model("uncaught", plain, globals_=late))

    @kit.task("notify")
    async def notify(job):
        return {"notified": True}

    iid = await kit.start_instance("p")
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.active_elements == ["sub", "inner"] and snap.variables == {"notified": True}
    u = await kit.start_instance("uncaught")
    await kit.wait_until_idle()
    snap = await kit.instance(u)
    assert snap.state == "completed" and snap.incidents == []  # an uncaught escalation is no incident


async def test_link_events_jump_within_the_scope(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />'
        + event("intermediateThrowEvent", "go", '<bpmn:linkEventDefinition name="next" />')
        + event("intermediateCatchEvent", "arrive", '<bpmn:linkEventDefinition name="next" />')
        + user_task("t") + '<bpmn:endEvent id="e" />' + chain("s", "go") + chain("arrive", "t", "e")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    assert (await kit.instance(iid)).completed_elements == ["s", "go", "arrive"]


async def test_compensation_runs_handlers_in_reverse_order(kit, checkpoint):
    def compensable(task_id: str, undo_id: str) -> str:
        return (
            service(task_id, task_id)
            + boundary(f"cb_{task_id}", task_id, "<bpmn:compensateEventDefinition />")
            + service(undo_id, undo_id).replace(f'id="{undo_id}"', f'id="{undo_id}" isForCompensation="true"')
            + f'<bpmn:association id="as_{task_id}" associationDirection="One" sourceRef="cb_{task_id}" '
            f'targetRef="{undo_id}" />'
        )

    body = (
        '<bpmn:startEvent id="s" />' + compensable("book_hotel", "cancel_hotel")
        + compensable("book_flight", "cancel_flight")
        + event("intermediateThrowEvent", "undo", "<bpmn:compensateEventDefinition />")
        + '<bpmn:endEvent id="e" />' + chain("s", "book_hotel", "book_flight", "undo", "e")
    )
    await kit.deploy(model("p", body))
    calls: list[str] = []
    for task_type in ("book_hotel", "book_flight", "cancel_hotel", "cancel_flight"):
        def make(name: str):
            async def handler(job):
                calls.append(name)
            return handler
        kit.task(task_type)(make(task_type))
    iid = await kit.start_instance("p")
    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert calls == ["book_hotel", "book_flight", "cancel_flight", "cancel_hotel"]
    assert snap.completed_elements[-3:] == ["cancel_hotel", "undo", "e"]


async def test_escalation_event_subprocess_and_interrupting_boundary(kit, checkpoint):
    late = escalation_global("Esc_late", "LATE")
    esp = (
        '<bpmn:subProcess id="on_late" triggeredByEvent="true">'
        + event("startEvent", "es", escalation_def("Esc_late"))
        + '<bpmn:endEvent id="ee" />' + chain("es", "ee") + "</bpmn:subProcess>"
    )
    body = (
        '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />' + user_task("other")
        + event("intermediateThrowEvent", "warn", escalation_def("Esc_late")) + '<bpmn:endEvent id="e" />'
        + flow("f0", "s", "fork") + flow("f1", "fork", "other") + flow("f2", "fork", "warn") + flow("f3", "warn", "e")
        + esp
    )
    await kit.deploy(model("esp", body, globals_=late))
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" />'
        + event("endEvent", "raise", escalation_def("Esc_late")) + chain("ss", "raise") + "</bpmn:subProcess>"
    )
    bnd = (
        '<bpmn:startEvent id="s" />' + sub + boundary("caught", "sub", escalation_def("Esc_late"))
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e_esc" />' + chain("s", "sub", "e") + flow("fx", "caught", "e_esc")
    )
    await kit.deploy(model("bnd", bnd, globals_=late))
    a = await kit.start_instance("esp")
    b = await kit.start_instance("bnd")
    await checkpoint()
    snap = await kit.instance(a)
    assert snap.state == "completed"  # the interrupting escalation sub-process ended 'other' too
    assert snap.completed_elements == ["s", "fork", "es", "ee", "on_late"]  # 'warn' was interrupted too
    assert await kit.user_tasks(a) == []
    assert (await kit.instance(b)).completed_elements == ["s", "ss", "raise", "caught", "e_esc"]


async def test_signal_event_subprocess_and_compensation_end_event_with_activity_ref(kit, checkpoint):
    from modelkit import signal_def, signal_global

    esp = (
        '<bpmn:subProcess id="on_sig" triggeredByEvent="true">'
        + event("startEvent", "ss", signal_def("Sig_audit"), 'isInterrupting="false"')
        + '<bpmn:endEvent id="se" />' + chain("ss", "se") + "</bpmn:subProcess>"
    )
    undo = service("undo_a", "undo").replace('id="undo_a"', 'id="undo_a" isForCompensation="true"')
    body = (
        '<bpmn:startEvent id="s" />' + service("a", "work") + service("b", "work")
        + boundary("cb_a", "a", "<bpmn:compensateEventDefinition />") + undo
        + '<bpmn:association id="as_a" associationDirection="One" sourceRef="cb_a" targetRef="undo_a" />'
        + user_task("hold")
        + event("endEvent", "rollback", '<bpmn:compensateEventDefinition activityRef="a" />')
        + chain("s", "a", "b", "hold", "rollback") + esp
    )
    await kit.deploy(model("p", body, globals_=signal_global("Sig_audit", "audit")))
    undone = []

    @kit.task("work")
    async def work(job):
        return None

    @kit.task("undo")
    async def undo_handler(job):
        undone.append(job.element_id)

    iid = await kit.start_instance("p")
    await kit.wait_until_idle()
    await checkpoint()
    assert await kit.broadcast_signal("audit") == 1
    snap = await kit.instance(iid)
    assert snap.active_elements == ["hold"] and snap.completed_elements[-3:] == ["ss", "se", "on_sig"]
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    snap = await kit.instance(iid)
    assert undone == ["undo_a"] and snap.state == "completed"
    assert snap.completed_elements[-2:] == ["undo_a", "rollback"]
