"""Every element of the engine core, each scenario run twice: steady, and with the engine
replaced by a fresh one at a wait state (state must come from NATS; no step applied twice)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from modelkit import chain, flow, model, service

from natsflow import BpmnError
from natsflow.testing import ProcessTestEngine


def no_repeats(elements: list[str], allowed: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    repeated = {e for e, n in Counter(elements).items() if n > 1} - allowed
    assert not repeated, f"elements completed more than once: {repeated}"


async def test_none_start_and_end(kit: ProcessTestEngine, checkpoint):
    await kit.deploy(model("p", '<bpmn:startEvent id="s" /><bpmn:endEvent id="e" />' + chain("s", "e")))
    iid = await kit.start_instance("p", {"x": 1})
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.completed_elements == ["s", "e"]
    assert snap.variables == {"x": 1}


async def test_untyped_and_manual_tasks_pass_through(kit, checkpoint):
    body = '<bpmn:startEvent id="s" /><bpmn:task id="t" /><bpmn:manualTask id="m" /><bpmn:endEvent id="e" />'
    await kit.deploy(model("p", body + chain("s", "t", "m", "e")))
    iid = await kit.start_instance("p")
    await checkpoint()
    assert (await kit.instance(iid)).completed_elements == ["s", "t", "m", "e"]


async def test_service_task_io_mappings_headers_and_variables(kit, checkpoint):
    io = (
        '<zeebe:ioMapping><zeebe:input source="=order.total * 2" target="doubled" />'
        '<zeebe:output source="=receipt.id" target="receiptId" /></zeebe:ioMapping>'
        '<zeebe:taskHeaders><zeebe:header key="channel" value="web" /></zeebe:taskHeaders>'
    )
    body = '<bpmn:startEvent id="s" />' + service("pay", "pay", extra=io) + '<bpmn:endEvent id="e" />'
    await kit.deploy(model("p", body + chain("s", "pay", "e")))
    iid = await kit.start_instance("p", {"order": {"total": 21}})
    await checkpoint()
    jobs = []

    @kit.task("pay")
    async def pay(job):
        jobs.append(job)
        return {"receipt": {"id": "R-1"}, "noise": True}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert len(jobs) == 1
    assert jobs[0].variables["doubled"] == 42
    assert jobs[0].headers == {"channel": "web"}
    assert jobs[0].element_id == "pay" and jobs[0].instance_id == iid and jobs[0].retries_left == 2
    # output mapping: only receiptId leaves the task; 'doubled' and 'noise' stay local
    assert snap.variables == {"order": {"total": 21}, "receiptId": "R-1"}


async def test_send_and_business_rule_tasks_run_as_jobs(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />'
        + service("send", "notify", kind="sendTask")
        + service("rule", "score", kind="businessRuleTask")
        + '<bpmn:endEvent id="e" />'
    )
    await kit.deploy(model("p", body + chain("s", "send", "rule", "e")))
    iid = await kit.start_instance("p")
    await checkpoint()

    @kit.task("notify")
    async def notify(job):
        return {"notified": True}

    @kit.task("score")
    async def score(job):
        return {"score": 7 if job.variables["notified"] else 0}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.completed_elements == ["s", "send", "rule", "e"]
    assert snap.variables == {"notified": True, "score": 7}


async def test_user_task_assignment_and_completion(kit, checkpoint):
    ut = (
        '<bpmn:userTask id="approve" name="Approve order"><bpmn:extensionElements>'
        '<zeebe:userTask /><zeebe:assignmentDefinition assignee="=owner" candidateGroups="sales, managers" />'
        "</bpmn:extensionElements></bpmn:userTask>"
    )
    await kit.deploy(
        model(
            "p", '<bpmn:startEvent id="s" />' + ut + '<bpmn:endEvent id="e" />' + chain("s", "approve", "e")
        )
    )
    iid = await kit.start_instance("p", {"owner": "ann"})
    await checkpoint()
    tasks = await kit.user_tasks(iid)
    assert [(t.element_id, t.assignee, t.candidate_groups, t.name) for t in tasks] == [
        ("approve", "ann", ["sales", "managers"], "Approve order")
    ]
    assert (await kit.instance(iid)).active_elements == ["approve"]
    await kit.complete_user_task(tasks[0].id, {"approved": True})
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.variables == {"owner": "ann", "approved": True}
    assert await kit.user_tasks(iid) == []
    # completing again changes nothing
    await kit.complete_user_task(tasks[0].id, {"approved": False})
    assert (await kit.instance(iid)).variables["approved"] is True


async def test_script_task_evaluates_feel(kit, checkpoint):
    script = (
        '<bpmn:scriptTask id="calc"><bpmn:extensionElements>'
        '<zeebe:script expression="=sum(for i in items return i.price * i.qty)" resultVariable="total" />'
        "</bpmn:extensionElements></bpmn:scriptTask>"
    )
    await kit.deploy(
        model(
            "p", '<bpmn:startEvent id="s" />' + script + '<bpmn:endEvent id="e" />' + chain("s", "calc", "e")
        )
    )
    iid = await kit.start_instance("p", {"items": [{"price": 2, "qty": 3}, {"price": 10, "qty": 1}]})
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.variables["total"] == 16
    assert snap.completed_elements == ["s", "calc", "e"]


XOR = (
    '<bpmn:startEvent id="s" /><bpmn:exclusiveGateway id="gw" default="f_low" />'
    '<bpmn:endEvent id="high" /><bpmn:endEvent id="mid" /><bpmn:endEvent id="low" />'
    + flow("f0", "s", "gw")
    + flow("f_high", "gw", "high", "=amount > 100")
    + flow("f_mid", "gw", "mid", "=amount > 10")
    + flow("f_low", "gw", "low")
)


async def test_exclusive_gateway_takes_first_true_condition_else_default(kit, checkpoint):
    await kit.deploy(model("p", XOR))
    ids = {a: await kit.start_instance("p", {"amount": a}) for a in (500, 50, 5)}
    await checkpoint()
    ends = {a: (await kit.instance(i)).completed_elements[-1] for a, i in ids.items()}
    assert ends == {500: "high", 50: "mid", 5: "low"}


async def test_exclusive_gateway_without_match_raises_incident_and_resumes(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:exclusiveGateway id="gw" /><bpmn:endEvent id="yes" /><bpmn:endEvent id="no" />'
        + flow("f0", "s", "gw")
        + flow("f1", "gw", "yes", "=ok = true")
        + flow("f2", "gw", "no", "=ok = false")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {})
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.state == "active"
    assert [(i.element_id, i.kind) for i in snap.incidents] == [("gw", "no-flow")]
    assert "no outgoing sequence flow" in snap.incidents[0].message
    await kit.resolve_incident(iid, snap.incidents[0].id, {"ok": True})
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.incidents == []
    assert snap.completed_elements == ["s", "gw", "yes"]


async def test_parallel_split_and_join(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" /><bpmn:parallelGateway id="join" />'
        + service("a", "a")
        + service("b", "b")
        + '<bpmn:endEvent id="e" />'
        + flow("f0", "s", "fork")
        + flow("fa", "fork", "a")
        + flow("fb", "fork", "b")
        + flow("fa2", "a", "join")
        + flow("fb2", "b", "join")
        + flow("f9", "join", "e")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    assert sorted((await kit.instance(iid)).active_elements) == ["a", "b"]

    @kit.task("a")
    async def a(job):
        return {"a": 1}

    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.state == "active" and snap.active_elements == ["b"]

    @kit.task("b")
    async def b(job):
        return {"b": 2}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.completed_elements == ["s", "fork", "a", "b", "join", "e"]
    assert snap.variables == {"a": 1, "b": 2}


async def test_implicit_split_and_uncontrolled_merge(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:task id="split" />'
        '<bpmn:task id="left" /><bpmn:task id="right" />'
        + service("merge", "merge")
        + '<bpmn:endEvent id="e" />'
        + flow("f0", "s", "split")
        + flow("f1", "split", "left")
        + flow("f2", "split", "right")
        + flow("f3", "left", "merge")
        + flow("f4", "right", "merge")
        + flow("f5", "merge", "e")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    calls = []

    @kit.task("merge")
    async def merge(job):
        calls.append(job.key)
        return None

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert len(calls) == 2 and len(set(calls)) == 2  # the merge task runs once per arriving token
    assert Counter(snap.completed_elements) == Counter(
        {"s": 1, "split": 1, "left": 1, "right": 1, "merge": 2, "e": 2}
    )


async def test_embedded_subprocess_has_local_scope(kit, checkpoint):
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:extensionElements><zeebe:ioMapping>'
        '<zeebe:input source="=1" target="local" /><zeebe:output source="=local + shared" target="result" />'
        "</zeebe:ioMapping></bpmn:extensionElements>"
        '<bpmn:startEvent id="ss" />'
        + service("inner", "inner")
        + '<bpmn:endEvent id="se" />'
        + chain("ss", "inner", "se")
        + "</bpmn:subProcess>"
    )
    await kit.deploy(
        model("p", '<bpmn:startEvent id="s" />' + sub + '<bpmn:endEvent id="e" />' + chain("s", "sub", "e"))
    )
    iid = await kit.start_instance("p", {"shared": 10})
    await checkpoint()
    seen = {}

    @kit.task("inner")
    async def inner(job):
        seen.update(job.variables)
        return {"local": 5, "shared": 20}  # 'local' updates the sub-process scope, 'shared' the process

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert seen == {"local": 1, "shared": 10}
    assert snap.state == "completed"
    assert snap.completed_elements == ["s", "ss", "inner", "se", "sub", "e"]
    assert snap.variables == {"shared": 20, "result": 25}  # 'local' died with its scope


def error_globals(*codes: str) -> str:
    return "".join(f'<bpmn:error id="err_{c}" name="{c}" errorCode="{c}" />' for c in codes)


async def test_error_end_event_caught_by_boundary_on_subprocess(kit, checkpoint):
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss" />'
        + service("work", "work")
        + '<bpmn:endEvent id="boom"><bpmn:errorEventDefinition errorRef="err_E1" /></bpmn:endEvent>'
        + chain("ss", "work", "boom")
        + "</bpmn:subProcess>"
    )
    body = (
        '<bpmn:startEvent id="s" />'
        + sub
        + '<bpmn:boundaryEvent id="catch" attachedToRef="sub"><bpmn:errorEventDefinition errorRef="err_E1" /></bpmn:boundaryEvent>'
        + '<bpmn:endEvent id="ok" /><bpmn:endEvent id="handled" />'
        + chain("s", "sub", "ok")
        + flow("fc", "catch", "handled")
    )
    await kit.deploy(model("p", body, globals_=error_globals("E1")))
    iid = await kit.start_instance("p")
    await checkpoint()

    @kit.task("work")
    async def work(job):
        return {"worked": True}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.completed_elements == ["s", "ss", "work", "boom", "catch", "handled"]
    assert "sub" not in snap.completed_elements  # interrupted, not completed


async def test_worker_bpmn_error_by_code_and_catch_all(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />'
        + service("charge", "charge")
        + '<bpmn:boundaryEvent id="declined" attachedToRef="charge"><bpmn:errorEventDefinition errorRef="err_DECLINED" /></bpmn:boundaryEvent>'
        + '<bpmn:boundaryEvent id="any" attachedToRef="charge"><bpmn:errorEventDefinition /></bpmn:boundaryEvent>'
        + '<bpmn:endEvent id="paid" /><bpmn:endEvent id="e_declined" /><bpmn:endEvent id="e_any" />'
        + chain("s", "charge", "paid")
        + flow("f1", "declined", "e_declined")
        + flow("f2", "any", "e_any")
    )
    await kit.deploy(model("p", body, globals_=error_globals("DECLINED")))
    declined = await kit.start_instance("p", {"code": "DECLINED"})
    other = await kit.start_instance("p", {"code": "FRAUD"})
    await checkpoint()

    @kit.task("charge")
    async def charge(job):
        raise BpmnError(
            job.variables["code"], "card problem", variables={"reason": job.variables["code"].lower()}
        )

    await kit.wait_until_idle()
    d, o = await kit.instance(declined), await kit.instance(other)
    assert d.completed_elements == ["s", "declined", "e_declined"] and d.variables["reason"] == "declined"
    assert o.completed_elements == ["s", "any", "e_any"] and o.variables["reason"] == "fraud"


async def test_uncaught_bpmn_error_raises_incident(kit, checkpoint):
    body = '<bpmn:startEvent id="s" />' + service("charge", "charge") + '<bpmn:endEvent id="e" />'
    await kit.deploy(model("p", body + chain("s", "charge", "e")))
    iid = await kit.start_instance("p")
    await checkpoint()

    @kit.task("charge")
    async def charge(job):
        raise BpmnError("NOPE", "nobody catches this")

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "active"
    assert [(i.element_id, i.kind) for i in snap.incidents] == [("charge", "unhandled-error")]
    assert "NOPE" in snap.incidents[0].message


async def test_terminate_end_event_ends_every_branch(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />'
        + service("slow", "slow")
        + '<bpmn:endEvent id="stop"><bpmn:terminateEventDefinition /></bpmn:endEvent><bpmn:endEvent id="e" />'
        + flow("f0", "s", "fork")
        + flow("f1", "fork", "slow")
        + flow("f2", "fork", "stop")
        + flow("f3", "slow", "e")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    ran = []

    @kit.task("slow")
    async def slow(job):
        ran.append(job.key)
        return None

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed"  # Camunda 8: terminate end completes the instance
    assert snap.completed_elements == ["s", "fork", "stop"]
    assert any(e.type == "element-terminated" and e.element_id == "slow" for e in snap.history)


async def test_job_retries_exhausted_raise_incident_then_resolve_retries(kit, checkpoint):
    body = '<bpmn:startEvent id="s" />' + service("flaky", "flaky", retries=2) + '<bpmn:endEvent id="e" />'
    await kit.deploy(model("p", body + chain("s", "flaky", "e")))
    iid = await kit.start_instance("p")
    await checkpoint()
    attempts: list[int] = []
    healthy = False

    @kit.task("flaky")
    async def flaky(job):
        attempts.append(job.retries_left)
        if not healthy:
            raise RuntimeError("downstream unavailable")
        return {"done": True}

    await kit.advance_time(timedelta(seconds=1))  # the default back-off before the second attempt
    snap = await kit.instance(iid)
    assert attempts == [1, 0]  # retries="2": two attempts in all, as in Zeebe
    assert [(i.element_id, i.kind) for i in snap.incidents] == [("flaky", "job-failed")]
    assert "RuntimeError: downstream unavailable" in snap.incidents[0].message
    await checkpoint()
    healthy = True
    await kit.resolve_incident(iid, snap.incidents[0].id)
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.variables == {"done": True}
    assert len(attempts) == 3  # two attempts, then one after resolving


async def test_cancel_removes_waiting_work(kit, checkpoint):
    ut = '<bpmn:userTask id="review" />'
    body = '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />' + ut + service("job", "never")
    body += flow("f0", "s", "fork") + flow("f1", "fork", "review") + flow("f2", "fork", "job")
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    assert len(await kit.user_tasks(iid)) == 1
    await kit.cancel_instance(iid)
    snap = await kit.instance(iid)
    assert snap.state == "cancelled" and snap.active_elements == []
    assert await kit.user_tasks(iid) == []
    assert {e.element_id for e in snap.history if e.type == "element-terminated"} == {"review", "job"}


async def test_broken_expression_is_an_incident_not_a_crash(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:exclusiveGateway id="gw" default="f2" />'
        '<bpmn:endEvent id="big" /><bpmn:endEvent id="small" />'
        + flow("f0", "s", "gw")
        + flow("f1", "gw", "big", "=amount > 10")
        + flow("f2", "gw", "small")
    )
    typed = (
        '<bpmn:startEvent id="s" />'
        + service("t", "=kind")
        + '<bpmn:endEvent id="e" />'
        + chain("s", "t", "e")
    )
    await kit.deploy(model("cond", body))
    await kit.deploy(model("typed", typed))
    await kit.deploy(model("good", '<bpmn:startEvent id="s" /><bpmn:endEvent id="e" />' + chain("s", "e")))
    cond = await kit.start_instance("cond", {})  # amount missing: the condition is null, not boolean
    typed_iid = await kit.start_instance("typed", {})  # job type expression gives null
    await checkpoint()
    ok = await kit.start_instance("good")
    await kit.wait_until_idle()
    snap = await kit.instance(cond)
    assert snap.state == "active" and [(i.element_id, i.kind) for i in snap.incidents] == [
        ("gw", "expression")
    ]
    assert "amount > 10" in snap.incidents[0].message
    snap = await kit.instance(typed_iid)
    assert [(i.element_id, i.kind) for i in snap.incidents] == [("t", "expression")]
    assert (await kit.instance(ok)).state == "completed"
    await kit.resolve_incident(cond, (await kit.instance(cond)).incidents[0].id, {"amount": 50})
    snap = await kit.instance(cond)
    assert snap.state == "completed" and snap.completed_elements == ["s", "gw", "big"]
    no_repeats(snap.completed_elements)
