"""Transactions and cancel events (compensation triggered by cancel), error boundaries on a
transaction, and compensation event sub-processes."""

from __future__ import annotations

from conftest_engine import record_jobs
from modelkit import boundary, chain, error_global, event, flow, model, service

from natsflow import BpmnError
from natsflow.testing import ProcessTestEngine

COMPENSATE = "<bpmn:compensateEventDefinition />"


def compensable(task_id: str, handler_id: str) -> str:
    """A service task with a compensation boundary event whose handler is another service task."""
    handler = service(handler_id, "undo").replace(
        f'<bpmn:serviceTask id="{handler_id}"', f'<bpmn:serviceTask id="{handler_id}" isForCompensation="true"', 1
    )
    return (
        service(task_id, "do") + boundary(f"{task_id}_comp", task_id, COMPENSATE) + handler
        + f'<bpmn:association id="{task_id}_assoc" sourceRef="{task_id}_comp" targetRef="{handler_id}" />'
    )  # fmt: skip


def transaction(body: str) -> str:
    inner = (
        '<bpmn:startEvent id="ts" />' + compensable("book", "unbook")
        + '<bpmn:exclusiveGateway id="decide" default="f_ok" />'
        + event("endEvent", "cancel_end", "<bpmn:cancelEventDefinition />") + '<bpmn:endEvent id="ok_end" />'
        + chain("ts", "book", "decide") + flow("f_cancel", "decide", "cancel_end", "=cancel")
        + flow("f_ok", "decide", "ok_end")
    )  # fmt: skip
    return f'<bpmn:transaction id="tx">{inner}</bpmn:transaction>{body}'


TX = transaction(
    '<bpmn:startEvent id="s" />' + boundary("cancelled", "tx", "<bpmn:cancelEventDefinition />")
    + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e_cancelled" />'
    + chain("s", "tx", "e") + flow("fc", "cancelled", "e_cancelled")
)  # fmt: skip


async def test_cancel_end_event_compensates_the_transaction_and_leaves_by_its_cancel_boundary(
    kit: ProcessTestEngine, checkpoint
):
    await kit.deploy(model("p", TX))
    cancelled = await kit.start_instance("p", {"cancel": True})
    kept = await kit.start_instance("p", {"cancel": False})
    await checkpoint()
    ran = record_jobs(kit, "do")

    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(cancelled)
    # the cancel end event waits for the handler, which runs before the transaction ends
    assert snap.active_elements == ["tx", "cancel_end", "unbook"]

    @kit.task("undo")
    async def undo(job):
        ran.append(job.element_id)
        return None

    await kit.wait_until_idle()
    snap = await kit.instance(cancelled)
    assert snap.state == "completed" and "e_cancelled" in snap.completed_elements and "e" not in snap.completed_elements
    normal = await kit.instance(kept)
    assert normal.state == "completed" and "e" in normal.completed_elements
    assert sorted(ran) == ["book", "book", "unbook"]  # only the cancelled transaction compensated


async def test_error_boundary_on_a_transaction(kit: ProcessTestEngine, checkpoint):
    body = (
        '<bpmn:transaction id="tx"><bpmn:startEvent id="ts" />' + service("work", "work")
        + '<bpmn:endEvent id="te" />' + chain("ts", "work", "te") + "</bpmn:transaction>"
        + '<bpmn:startEvent id="s" />' + boundary("failed", "tx", '<bpmn:errorEventDefinition errorRef="Err" />')
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e_failed" />'
        + chain("s", "tx", "e") + flow("ff", "failed", "e_failed")
    )  # fmt: skip
    await kit.deploy(model("p", body, globals_=error_global("Err", "FAILED")))
    iid = await kit.start_instance("p")
    await checkpoint()

    @kit.task("work")
    async def work(job):
        raise BpmnError("FAILED", "no seats")

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and "e_failed" in snap.completed_elements


async def test_compensation_event_sub_process_compensates_what_completed_in_its_sub_process(
    kit: ProcessTestEngine, checkpoint
):
    esp = (
        '<bpmn:subProcess id="comp_esp" triggeredByEvent="true">'
        + event("startEvent", "comp_start", COMPENSATE) + event("intermediateThrowEvent", "comp_inner", COMPENSATE)
        + '<bpmn:endEvent id="comp_end" />' + chain("comp_start", "comp_inner", "comp_end") + "</bpmn:subProcess>"
    )  # fmt: skip
    sub = (
        '<bpmn:subProcess id="sub">' + esp + '<bpmn:startEvent id="ss" />' + compensable("book", "unbook")
        + '<bpmn:endEvent id="se" />' + chain("ss", "book", "se") + "</bpmn:subProcess>"
    )  # fmt: skip
    body = (
        '<bpmn:startEvent id="s" />' + sub + service("check", "check")
        + event("intermediateThrowEvent", "undo_all", COMPENSATE) + '<bpmn:endEvent id="e" />'
        + chain("s", "sub", "check", "undo_all", "e")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    ran = record_jobs(kit, "do")

    await kit.wait_until_idle()
    await checkpoint()  # the sub-process completed; the instance waits at 'check'
    assert (await kit.instance(iid)).active_elements == ["check"]

    @kit.task("check")
    async def check(job):
        return None

    @kit.task("undo")
    async def undo(job):
        ran.append(job.element_id)
        return None

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and ran == ["book", "unbook"]
    assert "comp_esp" in snap.completed_elements
