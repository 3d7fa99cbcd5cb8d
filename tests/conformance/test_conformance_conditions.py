"""Conditional events: intermediate catch, boundaries, event sub-process starts. A condition is
evaluated when armed and after every step of the instance, and fires when it becomes true."""

from __future__ import annotations

from modelkit import boundary, chain, event, flow, model, service, user_task

from natsflow.testing import ProcessTestEngine


def conditional(expression: str) -> str:
    cond = expression.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<bpmn:conditionalEventDefinition><bpmn:condition xsi:type="bpmn:tFormalExpression">'
        f"{cond}</bpmn:condition></bpmn:conditionalEventDefinition>"
    )


async def test_intermediate_catch_waits_until_another_branch_makes_its_condition_true(
    kit: ProcessTestEngine, checkpoint
):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />'
        + event("intermediateCatchEvent", "wait", conditional("=approved = true"))
        + service("approve", "approve") + '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        + flow("f0", "s", "fork") + flow("f1", "fork", "wait") + flow("f2", "fork", "approve")
        + chain("wait", "e1") + chain("approve", "e2")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"approved": False})
    already = await kit.start_instance("p", {"approved": True})
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["wait", "approve"]
    assert (await kit.instance(already)).active_elements == ["approve"]  # true when armed: passed

    @kit.task("approve")
    async def approve(job):
        return {"approved": True}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.completed_elements.count("wait") == 1


async def test_non_interrupting_boundary_fires_each_time_its_condition_becomes_true(
    kit: ProcessTestEngine, checkpoint
):
    body = (
        '<bpmn:startEvent id="s" />' + user_task("review")
        + boundary("hot", "review", conditional("=level > 5"), interrupting=False)
        + service("alert", "alert") + service("tick", "tick")
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e_alert" /><bpmn:endEvent id="e_tick" />'
        + '<bpmn:parallelGateway id="fork" />'
        + flow("f0", "s", "fork") + flow("f1", "fork", "review") + flow("f2", "fork", "tick")
        + chain("review", "e") + flow("fh", "hot", "alert") + chain("alert", "e_alert")
        + flow("ft", "tick", "tick_more") + '<bpmn:exclusiveGateway id="tick_more" default="f_done" />'
        + flow("f_again", "tick_more", "tick", "=count(levels) > 0") + flow("f_done", "tick_more", "e_tick")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    # the level goes 1 -> 7 -> 9 -> 2 -> 8: it becomes true twice (7 and 8), 9 keeps it true
    iid = await kit.start_instance("p", {"level": 1, "levels": [7, 9, 2, 8]})
    await checkpoint()
    alerts: list[int] = []

    @kit.task("alert")
    async def alert(job):
        alerts.append(job.variables["level"])
        return None

    @kit.task("tick")
    async def tick(job):
        levels = job.variables["levels"]
        return {"level": levels[0], "levels": levels[1:]}

    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.active_elements == ["review"] and snap.completed_elements.count("hot") == 2
    assert len(alerts) == 2


async def test_interrupting_boundary_true_when_armed_never_starts_the_sub_process(kit: ProcessTestEngine, checkpoint):
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" />' + service("inner", "inner")
        + '<bpmn:endEvent id="se" />' + chain("ss", "inner", "se") + "</bpmn:subProcess>"
    )  # fmt: skip
    body = (
        '<bpmn:startEvent id="s" />' + sub + boundary("stop", "sub", conditional("=stop"))
        + user_task("after_stop") + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e2" />'
        + chain("s", "sub", "e") + flow("fb", "stop", "after_stop") + chain("after_stop", "e2")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    stopped = await kit.start_instance("p", {"stop": True})
    running = await kit.start_instance("p", {"stop": False})
    await checkpoint()
    snap = await kit.instance(stopped)
    assert snap.active_elements == ["after_stop"] and "inner" not in snap.completed_elements
    assert (await kit.instance(running)).active_elements == ["sub", "inner"]


async def test_event_sub_process_with_a_conditional_start_interrupts_its_scope(kit: ProcessTestEngine, checkpoint):
    esp = (
        '<bpmn:subProcess id="esp" triggeredByEvent="true">'
        + event("startEvent", "es", conditional("=cancelled"), 'isInterrupting="true"')
        + '<bpmn:endEvent id="ee" />' + chain("es", "ee") + "</bpmn:subProcess>"
    )  # fmt: skip
    body = (
        esp + '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />' + user_task("work")
        + service("check", "check") + '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        + flow("f0", "s", "fork") + flow("f1", "fork", "work") + flow("f2", "fork", "check")
        + chain("work", "e1") + chain("check", "e2")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"cancelled": False})
    await checkpoint()

    @kit.task("check")
    async def check(job):
        return {"cancelled": True}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and "esp" in snap.completed_elements
    assert "work" not in snap.completed_elements and await kit.user_tasks(iid) == []


async def test_a_condition_that_is_not_boolean_is_an_incident_resolved_by_arming_again(
    kit: ProcessTestEngine, checkpoint
):
    body = (
        '<bpmn:startEvent id="s" />' + event("intermediateCatchEvent", "wait", conditional("=flag"))
        + '<bpmn:endEvent id="e" />' + chain("s", "wait", "e")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    [incident] = (await kit.instance(iid)).incidents
    assert incident.element_id == "wait" and incident.kind == "expression"
    await kit.resolve_incident(iid, incident.id, {"flag": True})
    assert (await kit.instance(iid)).state == "completed"


async def test_process_conditional_start_events_start_when_evaluated_with_variables(
    kit: ProcessTestEngine, checkpoint
):
    # two conditional starts in one process, one in another, one that fails to evaluate
    big = (
        event("startEvent", "large", conditional("=amount > 100")) + event("startEvent", "vip", conditional("=vip"))
        + user_task("review") + '<bpmn:endEvent id="e" />' + chain("large", "review", "e") + flow("f9", "vip", "review")
    )  # fmt: skip
    small = event("startEvent", "low", conditional("=amount <= 100")) + '<bpmn:endEvent id="e" />' + chain("low", "e")
    await kit.deploy(model("big", big))
    await kit.deploy(model("small", small))
    assert await kit.evaluate_conditions({"amount": 5, "vip": False}) != []
    [iid_small] = await kit.instances("small")
    assert (await kit.instance(iid_small)).state == "completed"
    started = await kit.evaluate_conditions({"amount": 500, "vip": True})
    assert len(started) == 2 and sorted(started) == sorted(await kit.instances("big"))
    await checkpoint()
    first = []
    for iid in started:
        snap = await kit.instance(iid)
        assert snap.active_elements == ["review"] and snap.variables == {"amount": 500, "vip": True}
        first.append(snap.completed_elements[0])
    assert sorted(first) == ["large", "vip"]
    # only the named process; a repeated evaluation id starts nothing more
    again = await kit.evaluate_conditions({"amount": 5}, process_id="small", evaluation_id="e-1")
    assert len(again) == 1
    assert await kit.evaluate_conditions({"amount": 5}, process_id="small", evaluation_id="e-1") == again
    assert len(await kit.instances("small")) == 2


async def test_process_conditional_start_evaluation_is_bounded_and_typed(kit: ProcessTestEngine):
    import pytest

    from natsflow.errors import InvalidInputError, NotFoundError

    for pid in ("a", "b"):
        await kit.deploy(model(pid, event("startEvent", "s", conditional("=go")) + '<bpmn:endEvent id="e" />' + chain("s", "e")))
    with pytest.raises(InvalidInputError, match=r"2 conditional start events hold .* more than max_starts"):
        await kit.evaluate_conditions({"go": True}, max_starts=1)
    assert await kit.instances() == []  # nothing started
    with pytest.raises(InvalidInputError, match="max_starts must be between 1 and 1000"):
        await kit.evaluate_conditions({"go": True}, max_starts=0)
    with pytest.raises(NotFoundError):
        await kit.evaluate_conditions({"go": True}, process_id="nothere")
    # a condition that is not boolean for these variables starts nothing
    assert await kit.evaluate_conditions({"go": "yes"}) == []
    assert await kit.evaluate_conditions({}) == []
