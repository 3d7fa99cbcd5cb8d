"""Hostile processes end somewhere visible: launches that cannot be applied become failed
instances with the reason, endless loops become incidents, recursive calls stop at the call
depth limit and cancelling the root cancels the whole call tree. Nothing is redelivered."""

from __future__ import annotations

import re
from itertools import pairwise

from modelkit import chain, flow, model, user_task
from natsflow_engine import layout

from natsflow.testing import ProcessTestEngine


def _script(expression: str, result: str, sid: str) -> str:
    return (
        f'<bpmn:scriptTask id="{sid}"><bpmn:extensionElements>'
        f'<zeebe:script expression="{expression}" resultVariable="{result}" />'
        f"</bpmn:extensionElements></bpmn:scriptTask>"
    )


def _call(cid: str, process_id: str) -> str:
    return (
        f'<bpmn:callActivity id="{cid}"><bpmn:extensionElements>'
        f'<zeebe:calledElement processId="{process_id}" propagateAllChildVariables="false" />'
        f"</bpmn:extensionElements></bpmn:callActivity>"
    )


async def _nothing_pending(kit: ProcessTestEngine) -> None:
    await kit.wait_until_idle()
    info = await kit.js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
    assert info.num_pending == 0 and info.num_ack_pending == 0 and info.num_redelivered == 0


async def test_a_launch_whose_record_is_too_large_becomes_a_failed_instance(kit: ProcessTestEngine) -> None:
    body = (
        '<bpmn:startEvent id="s" />' + _script("=x", "y", "copy") + user_task("wait") + '<bpmn:endEvent id="e" />'
        + chain("s", "copy", "wait", "e")
    )
    await kit.deploy(model("doubler", body))
    iid = await kit.start_instance("doubler", {"x": "a" * 600_000})  # twice that is over 1 MB
    await _nothing_pending(kit)
    snap = await kit.instance(iid)
    assert snap.state == "failed"
    assert snap.variables == {}
    [incident] = snap.incidents
    assert incident.kind == "payload"
    assert re.match(r"the instance record would be \d\.\d MB \(\d+ bytes\); the limit is 1 MB", incident.message)
    assert "the limit is 1 MB (1048576 bytes)" in incident.message


async def test_a_ten_thousand_task_sequence_becomes_a_failed_instance(kit: ProcessTestEngine) -> None:
    ids = ["s", *(f"t{n}" for n in range(10_000)), "e"]
    body = (
        '<bpmn:startEvent id="s" />' + "".join(f'<bpmn:task id="{i}" />' for i in ids[1:-1])
        + '<bpmn:endEvent id="e" />' + "".join(flow(f"f{n}", a, b) for n, (a, b) in enumerate(pairwise(ids)))
    )
    await kit.deploy(model("long", body))
    iid = await kit.start_instance("long")
    await _nothing_pending(kit)
    snap = await kit.instance(iid)
    assert snap.state == "failed"
    assert [i.kind for i in snap.incidents] == ["payload"]
    assert "the limit is 1 MB" in snap.incidents[0].message


def _loop(before_wait: bool) -> str:
    head = ["s", "gw", "t"] if before_wait else ["s", "ut", "gw", "t"]
    return (
        '<bpmn:startEvent id="s" />' + (user_task("ut") if not before_wait else "")
        + '<bpmn:exclusiveGateway id="gw" /><bpmn:task id="t" />'
        + chain(*head) + flow("back", "t", "gw")
    )


async def test_an_endless_loop_before_the_first_wait_is_an_incident(kit: ProcessTestEngine) -> None:
    await kit.deploy(model("spin", _loop(before_wait=True)))
    iid = await kit.start_instance("spin")
    await _nothing_pending(kit)
    snap = await kit.instance(iid)
    assert snap.state == "active"
    [incident] = snap.incidents
    assert incident.kind == "endless-loop"
    assert incident.message.startswith("possible endless loop at ")
    assert incident.element_id in ("gw", "t")


async def test_an_endless_loop_after_a_wait_is_an_incident_not_a_size_error(kit: ProcessTestEngine) -> None:
    await kit.deploy(model("spin-later", _loop(before_wait=False)))
    iid = await kit.start_instance("spin-later")
    await kit.wait_until_idle()
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    await _nothing_pending(kit)
    snap = await kit.instance(iid)
    assert [i.kind for i in snap.incidents] == ["endless-loop"]
    assert "possible endless loop at" in snap.incidents[0].message


def _recursive() -> tuple[str, str]:
    a = '<bpmn:startEvent id="s" />' + _call("callB", "rec-b") + '<bpmn:endEvent id="e" />' + chain("s", "callB", "e")
    b = '<bpmn:startEvent id="s" />' + _call("callA", "rec-a") + '<bpmn:endEvent id="e" />' + chain("s", "callA", "e")
    return model("rec-a", a), model("rec-b", b)


async def test_recursive_calls_stop_at_the_call_depth_and_cancelling_the_root_cancels_the_tree(
    kit: ProcessTestEngine,
) -> None:
    for source in _recursive():
        await kit.deploy(source)
    root = await kit.start_instance("rec-a")
    await _nothing_pending(kit)
    everyone = await kit.instances()
    depth = kit.engine.settings.limits.max_call_depth
    assert len(everyone) == depth + 1  # the root and one instance per level
    deepest = [s for s in [await kit.instance(i) for i in everyone] if s.incidents]
    assert len(deepest) == 1
    assert deepest[0].incidents[0].kind == "call-depth"
    assert f"the limit is {depth}" in deepest[0].incidents[0].message
    await kit.cancel_instance(root)
    await _nothing_pending(kit)
    states = {(await kit.instance(i)).state for i in await kit.instances()}
    assert states == {"cancelled"}


async def test_cancelling_the_root_while_its_call_tree_grows_cancels_every_child(kit: ProcessTestEngine) -> None:
    for source in _recursive():
        await kit.deploy(source)
    root = await kit.start_instance("rec-a")
    await kit.cancel_instance(root)  # the chain is still being launched
    await _nothing_pending(kit)
    everyone = await kit.instances()
    assert len(everyone) <= kit.engine.settings.limits.max_call_depth + 1
    states = {(await kit.instance(i)).state for i in everyone}
    assert states == {"cancelled"}


async def test_a_call_to_a_process_that_is_not_deployed_is_an_incident_on_the_caller(kit: ProcessTestEngine) -> None:
    body = '<bpmn:startEvent id="s" />' + _call("call", "missing") + '<bpmn:endEvent id="e" />' + chain("s", "call", "e")
    await kit.deploy(model("caller", body))
    iid = await kit.start_instance("caller")
    await _nothing_pending(kit)
    snap = await kit.instance(iid)
    assert [(i.element_id, i.kind) for i in snap.incidents] == [("call", "child-failed")]
    assert "could not start" in snap.incidents[0].message
