"""Timers in every position: intermediate catch, boundary (interrupting, non-interrupting,
cycles), event sub-process start; values static or FEEL. Time moves on the virtual clock."""

from __future__ import annotations

from datetime import timedelta

from modelkit import boundary, chain, event, flow, model, service, timer, user_task

from natsflow.testing import ProcessTestEngine


async def test_intermediate_timer_catch_duration(kit: ProcessTestEngine, checkpoint):
    body = '<bpmn:startEvent id="s" />' + event("intermediateCatchEvent", "wait", timer("Duration", "PT10M"))
    body += '<bpmn:endEvent id="e" />' + chain("s", "wait", "e")
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    await kit.advance_time(timedelta(minutes=9))
    assert (await kit.instance(iid)).active_elements == ["wait"]
    await checkpoint()
    await kit.advance_time(timedelta(minutes=1))
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.completed_elements == ["s", "wait", "e"]


async def test_timer_value_from_feel_expression_and_date(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />'
        + event("intermediateCatchEvent", "d", timer("Duration", '=duration("PT" + string(mins) + "M")'))
        + event("intermediateCatchEvent", "at", timer("Date", "=deadline"))
        + '<bpmn:endEvent id="e" />' + chain("s", "d", "at", "e")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"mins": 5, "deadline": "2026-01-01T02:00:00Z"})
    await checkpoint()
    await kit.advance_time(timedelta(minutes=5))
    assert (await kit.instance(iid)).active_elements == ["at"]
    await kit.advance_time(timedelta(hours=2))
    assert (await kit.instance(iid)).state == "completed"


async def test_interrupting_timer_boundary_cancels_the_task(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />' + user_task("review")
        + boundary("late", "review", timer("Duration", "PT1H"))
        + '<bpmn:endEvent id="done" /><bpmn:endEvent id="escalated" />'
        + chain("s", "review", "done") + flow("f_late", "late", "escalated")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    await kit.advance_time(timedelta(hours=1))
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.completed_elements == ["s", "late", "escalated"]
    assert await kit.user_tasks(iid) == []


async def test_timer_boundary_does_not_fire_after_the_task_completed(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />' + user_task("review")
        + boundary("late", "review", timer("Duration", "PT1H"))
        + '<bpmn:endEvent id="done" /><bpmn:endEvent id="escalated" />'
        + chain("s", "review", "done") + flow("f_late", "late", "escalated")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    await kit.advance_time(timedelta(hours=2))
    snap = await kit.instance(iid)
    assert snap.completed_elements == ["s", "review", "done"]


async def test_non_interrupting_timer_cycle_boundary_rearms(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />' + user_task("review")
        + boundary("remind", "review", timer("Cycle", "R3/PT10M"), interrupting=False)
        + service("nudge", "nudge")
        + '<bpmn:endEvent id="done" /><bpmn:endEvent id="nudged" />'
        + chain("s", "review", "done") + flow("f1", "remind", "nudge") + flow("f2", "nudge", "nudged")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    nudges = []

    @kit.task("nudge")
    async def nudge(job):
        nudges.append(job.key)

    await checkpoint()
    await kit.advance_time(timedelta(minutes=25))
    assert len(nudges) == 2
    await checkpoint()
    await kit.advance_time(timedelta(hours=1))
    assert len(nudges) == 3  # R3: three repetitions, then no more
    snap = await kit.instance(iid)
    assert snap.active_elements == ["review"]
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.completed_elements.count("remind") == 3 and snap.completed_elements[-2:] == ["review", "done"]


async def test_timer_event_subprocess_interrupting(kit, checkpoint):
    esp = (
        '<bpmn:subProcess id="timeout" triggeredByEvent="true">'
        + event("startEvent", "ts", timer("Duration", "P1D"))
        + '<bpmn:endEvent id="te" />' + chain("ts", "te") + "</bpmn:subProcess>"
    )
    body = '<bpmn:startEvent id="s" />' + user_task("wait") + '<bpmn:endEvent id="e" />' + chain("s", "wait", "e") + esp
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    await kit.advance_time(timedelta(days=1))
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.completed_elements == ["s", "ts", "te", "timeout"]
    assert await kit.user_tasks(iid) == []


async def test_timer_event_subprocess_non_interrupting_runs_beside(kit, checkpoint):
    esp = (
        '<bpmn:subProcess id="ping" triggeredByEvent="true">'
        + event("startEvent", "ts", timer("Duration", "PT1H"), 'isInterrupting="false"')
        + service("notify", "notify") + '<bpmn:endEvent id="te" />' + chain("ts", "notify", "te") + "</bpmn:subProcess>"
    )
    body = '<bpmn:startEvent id="s" />' + user_task("wait") + '<bpmn:endEvent id="e" />' + chain("s", "wait", "e") + esp
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")

    @kit.task("notify")
    async def notify(job):
        return {"notified": True}

    await checkpoint()
    await kit.advance_time(timedelta(hours=1))
    snap = await kit.instance(iid)
    assert snap.state == "active" and snap.active_elements == ["wait"]
    assert snap.variables == {"notified": True}
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.completed_elements == ["s", "ts", "notify", "te", "ping", "wait", "e"]


async def test_timer_on_subprocess_boundary_terminates_its_contents(kit, checkpoint):
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" />' + service("slow", "slow")
        + '<bpmn:endEvent id="se" />' + chain("ss", "slow", "se") + "</bpmn:subProcess>"
    )
    body = (
        '<bpmn:startEvent id="s" />' + sub + boundary("to", "sub", timer("Duration", "PT30S"))
        + '<bpmn:endEvent id="ok" /><bpmn:endEvent id="timed_out" />'
        + chain("s", "sub", "ok") + flow("f_to", "to", "timed_out")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    await kit.advance_time(timedelta(seconds=30))
    snap = await kit.instance(iid)
    assert snap.completed_elements == ["s", "ss", "to", "timed_out"]
    assert {e.element_id for e in snap.history if e.type == "element-terminated"} == {"slow", "sub"}
