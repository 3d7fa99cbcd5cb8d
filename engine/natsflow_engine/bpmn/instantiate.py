"""Receive tasks and event-based gateways that start a process (``instantiate="true"``,
BPMN 2.0, 10.3.3 and 10.5.6).

A receive task with ``instantiate="true"`` and no incoming sequence flow, and each message
catch (intermediate catch event or receive task) after an event-based gateway with
``instantiate="true"`` and no incoming flow, is where an instance starts when its message
arrives. The parser gives it a message start event of its own, ``<id>__instantiate``, with a
flow ``<id>__instantiate_flow`` to it; entered over that flow it completes at once (the message
that started the instance is the one it waited for). The start event is what message starts
index, so nothing else needs to know.
"""

from __future__ import annotations

import copy

from lxml import etree

from natsflow_engine.bpmn.common import Element, bpmn_children

__all__ = ["INSTANTIATE_FLOW", "add_instantiating_starts", "instantiate_flow"]

INSTANTIATE_FLOW = "__instantiate_flow"


def instantiate_flow(task_id: str) -> str:
    return f"{task_id}{INSTANTIATE_FLOW}"


def add_instantiating_starts(process: Element) -> None:
    """Add the start events and flows of the instantiating receive tasks and event-based
    gateways directly in ``process``."""
    flows = list(bpmn_children(process, "sequenceFlow"))
    targets = {(f.get("targetRef") or "").strip() for f in flows}
    by_id = {(el.get("id") or "").strip(): el for el in process}
    starting: list[Element] = []
    for el in list(bpmn_children(process, "receiveTask")) + list(bpmn_children(process, "eventBasedGateway")):
        el_id = (el.get("id") or "").strip()
        if (el.get("instantiate") or "").strip().lower() != "true" or not el_id or el_id in targets:
            continue
        if etree.QName(el).localname == "receiveTask":
            starting.append(el)
            continue
        for f in flows:  # the message catches after an instantiating event-based gateway
            if (f.get("sourceRef") or "").strip() == el_id:
                target = by_id.get((f.get("targetRef") or "").strip())
                if target is not None:
                    starting.append(target)
    for el in starting:
        _start_at(process, el)


def _start_at(process: Element, el: Element) -> None:
    el_id = (el.get("id") or "").strip()
    ns = f"{{{etree.QName(el).namespace}}}"
    if etree.QName(el).localname == "receiveTask":
        definition = etree.Element(f"{ns}messageEventDefinition")
        if el.get("messageRef"):
            definition.set("messageRef", el.get("messageRef") or "")
    else:
        found = next(iter(bpmn_children(el, "messageEventDefinition")), None)
        if found is None:
            return  # only a message can start an instance here; the model is refused elsewhere
        definition = copy.deepcopy(found)
        if "id" in definition.attrib:
            del definition.attrib["id"]
    start = etree.SubElement(process, f"{ns}startEvent", id=f"{el_id}__instantiate")
    start.sourceline = el.sourceline
    start.append(definition)
    flow = etree.SubElement(
        process, f"{ns}sequenceFlow", id=instantiate_flow(el_id), sourceRef=start.get("id") or "", targetRef=el_id
    )
    flow.sourceline = el.sourceline
