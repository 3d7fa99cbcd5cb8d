"""What the runtime can execute. Anything else is refused at deploy time, never skipped.

The parser already refuses what BPMN allows but natsflow never runs (complex gateways,
transactions, ...). This module refuses what the parser understands but the interpreter does
not execute yet, naming the element and its line.
"""

from __future__ import annotations

from natsflow.engine.bpmn.model import (
    Activity,
    CallActivity,
    Definitions,
    ErrorTrigger,
    Event,
    FlowNode,
    MessageTrigger,
    Process,
    SubProcess,
    TerminateTrigger,
)
from natsflow.errors import BpmnValidationError, ValidationIssue

__all__ = ["check_executable", "unsupported_reason"]

_ACTIVITIES = frozenset(
    {
        "task",
        "manualTask",
        "serviceTask",
        "sendTask",
        "businessRuleTask",
        "scriptTask",
        "userTask",
        "subProcess",
    }
)
_GATEWAYS = frozenset({"exclusiveGateway", "parallelGateway"})


def unsupported_reason(process: Process, node: FlowNode) -> str | None:
    """Why ``node`` cannot run yet, or None when it can."""
    kind = node.kind
    if isinstance(node, CallActivity):
        return "call activities are not supported yet"
    if isinstance(node, Activity):
        if kind not in _ACTIVITIES:
            return f"'{kind}' elements are not supported yet"
        if node.multi_instance is not None:
            return "multi-instance activities are not supported yet"
        if node.loop is not None:
            return "standard loops are not supported yet"
        if isinstance(node, SubProcess) and node.triggered_by_event:
            return "event sub-processes are not supported yet"
        if node.is_for_compensation:
            return "compensation handlers are not supported yet"
        return None
    if isinstance(node, Event):
        trig = node.trigger
        if kind == "startEvent":
            return None if trig is None else f"{_name(trig)} start events are not supported yet"
        if kind == "endEvent":
            if trig is None or isinstance(trig, ErrorTrigger | TerminateTrigger):
                return None
            if isinstance(trig, MessageTrigger) and node.task is not None:
                return None
            return f"{_name(trig)} end events are not supported yet"
        if kind == "intermediateThrowEvent":
            if trig is None or (isinstance(trig, MessageTrigger) and node.task is not None):
                return None
            return f"{_name(trig)} intermediate throw events are not supported yet"
        if kind == "boundaryEvent":
            return (
                None
                if isinstance(trig, ErrorTrigger)
                else f"{_name(trig)} boundary events are not supported yet"
            )
        return f"{_name(trig)} {kind} elements are not supported yet"
    if kind in _GATEWAYS:
        return None
    return f"'{kind}' elements are not supported yet"


def _name(trigger: object) -> str:
    if trigger is None:
        return "none"
    return type(trigger).__name__.removesuffix("Trigger").lower()


def check_executable(defs: Definitions, *, name: str | None = None) -> None:
    issues = []
    for process in defs.processes.values():
        if not process.executable:
            continue
        for node in process.nodes.values():
            reason = unsupported_reason(process, node)
            if reason:
                issues.append(ValidationIssue(node.id, node.line, reason))
    if issues:
        raise BpmnValidationError(issues, source=name)
