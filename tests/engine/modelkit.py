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


def timer(kind: str, value: str) -> str:
    """A timer event definition; kind is Duration, Date or Cycle."""
    return (
        f'<bpmn:timerEventDefinition><bpmn:time{kind} xsi:type="bpmn:tFormalExpression">{value}'
        f"</bpmn:time{kind}></bpmn:timerEventDefinition>"
    )


def message_global(ref: str, name: str, key: str = "=orderId") -> str:
    return (
        f'<bpmn:message id="{ref}" name="{name}"><bpmn:extensionElements>'
        f'<zeebe:subscription correlationKey="{key}" /></bpmn:extensionElements></bpmn:message>'
    )


def message_def(ref: str) -> str:
    return f'<bpmn:messageEventDefinition messageRef="{ref}" />'


def signal_global(ref: str, name: str) -> str:
    return f'<bpmn:signal id="{ref}" name="{name}" />'


def signal_def(ref: str) -> str:
    return f'<bpmn:signalEventDefinition signalRef="{ref}" />'


def escalation_global(ref: str, code: str) -> str:
    return f'<bpmn:escalation id="{ref}" name="{code}" escalationCode="{code}" />'


def escalation_def(ref: str | None = None) -> str:
    return f'<bpmn:escalationEventDefinition escalationRef="{ref}" />' if ref else "<bpmn:escalationEventDefinition />"


def error_global(ref: str, code: str) -> str:
    return f'<bpmn:error id="{ref}" name="{code}" errorCode="{code}" />'


def event(kind: str, eid: str, definition: str = "", attrs: str = "") -> str:
    return f'<bpmn:{kind} id="{eid}" {attrs}>{definition}</bpmn:{kind}>'


def boundary(bid: str, attached: str, definition: str, *, interrupting: bool = True) -> str:
    flag = "" if interrupting else ' cancelActivity="false"'
    return f'<bpmn:boundaryEvent id="{bid}" attachedToRef="{attached}"{flag}>{definition}</bpmn:boundaryEvent>'


def user_task(tid: str) -> str:
    return f'<bpmn:userTask id="{tid}"><bpmn:extensionElements><zeebe:userTask /></bpmn:extensionElements></bpmn:userTask>'
