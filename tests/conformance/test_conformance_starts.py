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


async def test_call_activity_calls_a_global_task(kit, checkpoint):
    globals_ = (
        '<bpmn:globalUserTask id="approve_global" name="Approve" />'
        '<bpmn:globalScriptTask id="double_global"><bpmn:extensionElements>'
        '<zeebe:script expression="=n * 2" resultVariable="n2" /></bpmn:extensionElements></bpmn:globalScriptTask>'
    )
    body = (
        '<bpmn:startEvent id="s" />'
        '<bpmn:callActivity id="double" calledElement="double_global" />'
        '<bpmn:callActivity id="approve" calledElement="approve_global" />'
        '<bpmn:endEvent id="e" />' + chain("s", "double", "approve", "e")
    )
    await kit.deploy(model("p", body, globals_=globals_))
    iid = await kit.start_instance("p", {"n": 21})
    await checkpoint()
    [child] = await kit.instances("approve_global")
    [task] = await kit.user_tasks(child)
    assert task.name == "Approve" and task.variables["n2"] == 42
    await kit.complete_user_task(task.id, {"approved": True})
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.variables == {"n": 21, "n2": 42, "approved": True}


COLLABORATION = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:collaboration id="c">
    <bpmn:participant id="shop" processRef="shop_p" />
    <bpmn:participant id="bank" processRef="bank_p" />
    <bpmn:messageFlow id="mf1" sourceRef="ask" targetRef="request" />
    <bpmn:messageFlow id="mf2" sourceRef="answer" targetRef="reply" />
  </bpmn:collaboration>
  <bpmn:message id="m_req" name="payment-request"><bpmn:extensionElements>
    <zeebe:subscription correlationKey="=orderId" /></bpmn:extensionElements></bpmn:message>
  <bpmn:message id="m_rep" name="payment-reply"><bpmn:extensionElements>
    <zeebe:subscription correlationKey="=orderId" /></bpmn:extensionElements></bpmn:message>
  <bpmn:process id="shop_p" isExecutable="true">
    <bpmn:startEvent id="s" />
    <bpmn:intermediateThrowEvent id="ask"><bpmn:extensionElements><zeebe:ioMapping>
      <zeebe:input source="=orderId" target="orderId" /><zeebe:input source="=total" target="amount" />
      </zeebe:ioMapping></bpmn:extensionElements><bpmn:messageEventDefinition messageRef="m_req" />
    </bpmn:intermediateThrowEvent>
    <bpmn:intermediateCatchEvent id="reply"><bpmn:messageEventDefinition messageRef="m_rep" /></bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="e" />
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="ask" />
    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="reply" />
    <bpmn:sequenceFlow id="f3" sourceRef="reply" targetRef="e" />
  </bpmn:process>
  <bpmn:process id="bank_p" isExecutable="true">
    <bpmn:startEvent id="request"><bpmn:messageEventDefinition messageRef="m_req" /></bpmn:startEvent>
    <bpmn:endEvent id="answer"><bpmn:extensionElements><zeebe:ioMapping>
      <zeebe:input source="=orderId" target="orderId" /><zeebe:input source="=amount &lt; 100" target="approved" />
      </zeebe:ioMapping></bpmn:extensionElements><bpmn:messageEventDefinition messageRef="m_rep" /></bpmn:endEvent>
    <bpmn:sequenceFlow id="b1" sourceRef="request" targetRef="answer" />
  </bpmn:process>
</bpmn:definitions>
"""


async def test_message_flows_between_participants_deployed_together(kit, checkpoint):
    assert sorted(await kit.deploy(COLLABORATION)) == ["bank_p", "shop_p"]
    iid = await kit.start_instance("shop_p", {"orderId": "o-1", "total": 40})
    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.variables == {"orderId": "o-1", "total": 40, "approved": True}
    [bank] = await kit.instances("bank_p")
    assert (await kit.instance(bank)).completed_elements == ["request", "answer"]
