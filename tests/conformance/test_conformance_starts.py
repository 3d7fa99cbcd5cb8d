"""Timer start events (scheduled when deployed; cycles; redeploying replaces the schedule) and
conditions written without Zeebe's leading '='."""

from __future__ import annotations

from datetime import timedelta

from modelkit import chain, event, flow, model, timer

from natsflow.testing import ProcessTestEngine


async def test_timer_start_cycle_launches_instances_and_redeploy_replaces_it(kit: ProcessTestEngine):
    body = event("startEvent", "tick", timer("Cycle", "R3/PT1H")) + '<bpmn:endEvent id="e" />' + chain("tick", "e")
    await kit.deploy(model("hourly", body))
    await kit.wait_until_idle()
    assert await kit.instances("hourly") == []
    await kit.advance_time(timedelta(hours=2))
    assert len(await kit.instances("hourly")) == 2
    # version 2 every 30 minutes, at most twice: version 1's pending firing no longer launches
    body2 = event("startEvent", "tick", timer("Cycle", "R2/PT30M")) + '<bpmn:endEvent id="e2" />' + chain("tick", "e2")
    await kit.deploy(model("hourly", body2))
    await kit.wait_until_idle()
    await kit.advance_time(timedelta(hours=5))
    snaps = [await kit.instance(i) for i in await kit.instances("hourly")]
    assert [s.version for s in snaps] == [1, 1, 2, 2]
    assert all(s.state == "completed" for s in snaps)


async def test_timer_start_date_fires_once(kit):
    body = event("startEvent", "at", timer("Date", "2026-01-02T00:00:00Z")) + '<bpmn:endEvent id="e" />' + chain("at", "e")
    await kit.deploy(model("once", body))
    await kit.advance_time(timedelta(days=5))
    assert len(await kit.instances("once")) == 1


async def test_conditions_without_leading_equals_are_feel(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:exclusiveGateway id="gw" default="f2" />'
        '<bpmn:endEvent id="big" /><bpmn:endEvent id="small" />'
        + flow("f0", "s", "gw") + flow("f1", "gw", "big", "amount > 10") + flow("f2", "gw", "small")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"amount": 11})
    await checkpoint()
    assert (await kit.instance(iid)).completed_elements[-1] == "big"
