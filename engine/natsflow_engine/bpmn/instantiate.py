"""Receive tasks that start a process (``instantiate="true"``, BPMN 2.0, 10.3.3).

A receive task with ``instantiate="true"`` and no incoming sequence flow is where an instance
starts when its message arrives. The parser gives it a message start event of its own,
``<task id>__instantiate``, with a flow ``<task id>__instantiate_flow`` to the task; the task,
entered over that flow, completes at once (the message that started the instance is the one it
waited for). The start event is what message starts index, so nothing else needs to know.
"""

from __future__ import annotations

from lxml import etree

from natsflow_engine.bpmn.common import Element, bpmn_children

__all__ = ["INSTANTIATE_FLOW", "add_instantiating_starts", "instantiate_flow"]

INSTANTIATE_FLOW = "__instantiate_flow"


def instantiate_flow(task_id: str) -> str:
    return f"{task_id}{INSTANTIATE_FLOW}"


def add_instantiating_starts(process: Element) -> None:
    """Add the start event and flow of every instantiating receive task directly in ``process``."""
    targets = {(f.get("targetRef") or "").strip() for f in bpmn_children(process, "sequenceFlow")}
    for task in list(bpmn_children(process, "receiveTask")):
        task_id = (task.get("id") or "").strip()
        if (task.get("instantiate") or "").strip().lower() != "true" or not task_id or task_id in targets:
            continue
        ns = f"{{{etree.QName(task).namespace}}}"
        start = etree.SubElement(process, f"{ns}startEvent", id=f"{task_id}__instantiate")
        start.sourceline = task.sourceline
        definition = etree.SubElement(start, f"{ns}messageEventDefinition")
        if task.get("messageRef"):
            definition.set("messageRef", task.get("messageRef") or "")
        flow = etree.SubElement(
            process, f"{ns}sequenceFlow", id=instantiate_flow(task_id),
            sourceRef=start.get("id") or "", targetRef=task_id,
        )  # fmt: skip
        flow.sourceline = task.sourceline
