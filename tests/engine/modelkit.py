"""Wrap a process body in the Zeebe-dialect boilerplate Camunda Modeler writes."""

from __future__ import annotations

from itertools import pairwise

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn" '
    'exporter="Camunda Modeler" exporterVersion="5.30.0">\n'
)


def model(process_id: str, body: str, *, globals_: str = "") -> str:
    return f'{HEAD}{globals_}<bpmn:process id="{process_id}" isExecutable="true">\n{body}\n</bpmn:process>\n</bpmn:definitions>\n'


def flow(fid: str, source: str, target: str, condition: str | None = None) -> str:
    if condition is None:
        return f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}" />'
    cond = condition.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}">'
        f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{cond}</bpmn:conditionExpression>'
        "</bpmn:sequenceFlow>"
    )


def service(
    task_id: str, task_type: str, *, retries: int = 3, extra: str = "", kind: str = "serviceTask"
) -> str:
    return (
        f'<bpmn:{kind} id="{task_id}"><bpmn:extensionElements>'
        f'<zeebe:taskDefinition type="{task_type}" retries="{retries}" />{extra}'
        f"</bpmn:extensionElements></bpmn:{kind}>"
    )


def chain(*ids: str) -> str:
    """Sequence flows linking ``ids`` in order."""
    return "\n".join(flow(f"f_{a}_{b}", a, b) for a, b in pairwise(ids))
