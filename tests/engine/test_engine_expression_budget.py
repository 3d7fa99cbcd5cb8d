"""Hostile expressions end as incidents on their own instance; the engine keeps serving others.
FEEL's now()/today() read the step's clock (the test kit's virtual clock), not the machine's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelkit import chain, flow, model

from natsflow.testing import ProcessTestEngine


def _script(expression: str, result: str = "r", sid: str = "calc") -> str:
    return (
        f'<bpmn:scriptTask id="{sid}"><bpmn:extensionElements>'
        f'<zeebe:script expression="{expression}" resultVariable="{result}" />'
        f"</bpmn:extensionElements></bpmn:scriptTask>"
    )


def _scripted(pid: str, expression: str) -> str:
    body = '<bpmn:startEvent id="s" />' + _script(expression) + '<bpmn:endEvent id="e" />'
    return model(pid, body + chain("s", "calc", "e"))


async def test_a_runaway_script_becomes_an_incident_and_others_still_run(kit: ProcessTestEngine) -> None:
    await kit.deploy(_scripted("hostile", "=for x in 1..100000000 return x"))
    await kit.deploy(_scripted("normal", "=x + 1"))
    bad = await kit.start_instance("hostile")
    good = await kit.start_instance("normal", {"x": 41})
    await kit.wait_until_idle()
    snap = await kit.instance(bad)
    assert snap.state == "active"
    assert [(i.element_id, i.kind) for i in snap.incidents] == [("calc", "expression")]
    assert "more than the limit of" in snap.incidents[0].message
    other = await kit.instance(good)
    assert other.state == "completed" and other.variables["r"] == 42


async def test_a_script_past_its_step_budget_becomes_an_incident(kit: ProcessTestEngine) -> None:
    await kit.deploy(_scripted("steps", "=count(for i in 1..2000 return for j in 1..2000 return i + j)"))
    iid = await kit.start_instance("steps")
    await kit.wait_until_idle()
    (incident,) = (await kit.instance(iid)).incidents
    assert incident.element_id == "calc" and "exceeded its budget of" in incident.message


async def test_a_catastrophic_pattern_in_a_condition_is_evaluated_in_linear_time(kit: ProcessTestEngine) -> None:
    body = (
        '<bpmn:startEvent id="s" /><bpmn:exclusiveGateway id="gw" default="f_no" />'
        '<bpmn:endEvent id="yes" /><bpmn:endEvent id="no" />'
        + flow("f0", "s", "gw")
        + flow("f_yes", "gw", "yes", '=matches(s, "(a+)+$")')
        + flow("f_no", "gw", "no")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"s": "a" * 60 + "!"})
    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.completed_elements[-1] == "no"


async def test_a_pattern_that_cannot_run_arriving_at_run_time_is_an_incident(kit: ProcessTestEngine) -> None:
    await kit.deploy(_scripted("p", "=matches(s, pattern)"))
    iid = await kit.start_instance("p", {"s": "aa", "pattern": "(a)\\1"})
    await kit.wait_until_idle()
    (incident,) = (await kit.instance(iid)).incidents
    assert incident.element_id == "calc" and "back-references" in incident.message


async def test_now_and_today_read_the_virtual_clock() -> None:
    start = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
    async with ProcessTestEngine(start_time=start) as kit:
        body = (
            '<bpmn:startEvent id="s" />'
            + _script("=string(now())", "at", "first")
            + '<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
            '<bpmn:timeDuration>PT36H</bpmn:timeDuration></bpmn:timerEventDefinition>'
            "</bpmn:intermediateCatchEvent>"
            + _script("=string(today())", "day", "second")
            + '<bpmn:endEvent id="e" />'
        )
        await kit.deploy(model("p", body + chain("s", "first", "wait", "second", "e")))
        iid = await kit.start_instance("p")
        await kit.wait_until_idle()
        await kit.advance_time(timedelta(hours=36))
        await kit.wait_until_idle()
        snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert datetime.fromisoformat(snap.variables["at"]) == start
    assert snap.variables["day"] == "2031-03-05"
