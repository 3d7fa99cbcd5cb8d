"""What the runtime can execute. Anything else is refused at deploy time, never skipped.

The parser already refuses what BPMN allows but natsflow never runs (choreographies, ...).
This module refuses what the parser understands but the interpreter does not execute yet,
naming the element and its line.
"""

from __future__ import annotations

from natsflow_engine.bpmn.model import (
    Activity,
    Definitions,
    Event,
    FlowNode,
    MessageTrigger,
    Process,
)
from natsflow_engine.errors import BpmnValidationError, ValidationIssue

__all__ = ["check_executable", "unsupported_reason"]

_ACTIVITIES = frozenset(
    {
        "task", "manualTask", "serviceTask", "sendTask", "businessRuleTask", "scriptTask", "userTask",
        "receiveTask", "subProcess", "transaction", "adHocSubProcess", "callActivity",
    }
)  # fmt: skip
_GATEWAYS = frozenset(
    {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
)


def unsupported_reason(process: Process, node: FlowNode) -> str | None:
    """Why ``node`` cannot run, or None when it can."""
    kind = node.kind
    if isinstance(node, Activity):
        return None if kind in _ACTIVITIES else f"'{kind}' elements are not supported"
    if isinstance(node, Event):
        trig = node.trigger
        if (
            kind in ("intermediateThrowEvent", "endEvent")
            and isinstance(trig, MessageTrigger)
            and node.task is None
            and node.id not in process.message_flows
        ):
            return "a message throw event needs a zeebe:taskDefinition (a worker sends it) or a message flow"
        return None
    if kind in _GATEWAYS:
        return None
    return f"'{kind}' elements are not supported"


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
