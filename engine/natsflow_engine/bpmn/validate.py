"""Graph rules checked on a built :class:`Process`: starts, gateways, defaults, links, compensation.

Element-level rules (job types, messages, timers, expressions) are checked while building; see
:mod:`.parser`, :mod:`.events` and :mod:`.zeebe`.
"""

from __future__ import annotations

from natsflow_engine.bpmn.common import Issues
from natsflow_engine.bpmn.model import (
    Activity,
    CancelTrigger,
    CompensateTrigger,
    Event,
    FlowNode,
    Gateway,
    LinkTrigger,
    MessageTrigger,
    Process,
    SignalTrigger,
    SubProcess,
    TimerTrigger,
)

__all__ = ["validate_process"]

_GATEWAY_WORDS = {
    "exclusiveGateway": "exclusive gateway",
    "inclusiveGateway": "inclusive gateway",
    "parallelGateway": "parallel gateway",
    "eventBasedGateway": "event-based gateway",
    "complexGateway": "complex gateway",
}


def _word(node: FlowNode) -> str:
    if node.kind in _GATEWAY_WORDS:
        return _GATEWAY_WORDS[node.kind]
    if isinstance(node, SubProcess):
        if node.kind in ("transaction", "adHocSubProcess"):
            return "transaction" if node.kind == "transaction" else "ad-hoc sub-process"
        return "event sub-process" if node.triggered_by_event else "sub-process"
    words = "".join(" " + ch.lower() if ch.isupper() else ch for ch in node.kind)
    return words


def _say(node: FlowNode) -> str:
    return f"{_word(node)} '{node.id}'"


def validate_process(process: Process, issues: Issues) -> None:
    """Report every graph-level problem of ``process`` into ``issues``."""
    _scopes(process, issues)
    for node in process.nodes.values():
        if isinstance(node, Gateway):
            _gateway(process, node, issues)
        elif isinstance(node, Event):
            _event(process, node, issues)
        if isinstance(node, Activity):
            _activity(process, node, issues)
    _links(process, issues)


def _scopes(process: Process, issues: Issues) -> None:
    # the process itself
    # an event sub-process start is no way to start an instance: it needs one to listen in
    if process.children and not process.all_start_events:
        issues.add_at(
            process.id,
            process.line,
            f"process '{process.id}' has flow nodes but no start event, so no instance can ever start "
            "(the start event of an event sub-process does not start the process)",
        )
    if len(process.start_events) > 1:
        ids = ", ".join(f"'{s}'" for s in process.start_events)
        issues.add_at(
            process.id,
            process.line,
            f"process '{process.id}' has {len(process.start_events)} none start events ({ids}); at most one is allowed",
        )
    for node in process.nodes.values():
        if not isinstance(node, SubProcess):
            continue
        if node.triggered_by_event:
            if len(node.start_events) != 1:
                issues.add_at(
                    node.id,
                    node.line,
                    f"event sub-process '{node.id}' needs exactly one start event with a trigger "
                    f"(message, timer, signal, error or escalation); it has {len(node.start_events)}",
                )
            if node.incoming or node.outgoing:
                issues.add_at(
                    node.id,
                    node.line,
                    f"event sub-process '{node.id}' must not have incoming or outgoing sequence flows",
                )
            if node.boundaries:
                issues.add_at(
                    node.id, node.line, f"event sub-process '{node.id}' cannot have boundary events"
                )
            continue
        content = [c for c in node.children if c not in node.event_subprocesses]
        if node.ad_hoc is not None:
            if node.start_events:
                issues.add_at(node.id, node.line, f"ad-hoc sub-process '{node.id}' must not have start events")
            continue
        if content and not node.start_events:
            issues.add_at(
                node.id, node.line, f"sub-process '{node.id}' has flow nodes but no none start event"
            )
        elif len(node.start_events) > 1:
            issues.add_at(
                node.id,
                node.line,
                f"sub-process '{node.id}' has {len(node.start_events)} none start events; exactly one is allowed",
            )


def _flow_has_condition(process: Process, flow_id: str) -> bool:
    flow = process.flows.get(flow_id)
    return flow is not None and flow.condition is not None


def _check_default(process: Process, node: Gateway | Activity, issues: Issues) -> None:
    if node.default is None:
        return
    if node.default not in node.outgoing:
        issues.add_at(
            node.id,
            node.line,
            f"{_say(node)} has a default flow '{node.default}' that is not one of its outgoing flows",
        )
    elif _flow_has_condition(process, node.default):
        issues.add_at(
            node.id, node.line, f"{_say(node)} has a default flow '{node.default}' with a condition"
        )


def _gateway(process: Process, node: Gateway, issues: Issues) -> None:
    if node.kind == "parallelGateway":
        if node.default is not None:
            issues.add_at(node.id, node.line, f"{_say(node)} cannot have a default flow")
        for flow_id in node.outgoing:
            if _flow_has_condition(process, flow_id):
                issues.warn_at(
                    node.id,
                    node.line,
                    f"{_say(node)} has a conditional outgoing flow '{flow_id}': a parallel gateway ignores "
                    "conditions (BPMN 2.0, 13.4.3), every outgoing flow is taken",
                )
        return
    _check_default(process, node, issues)
    if node.kind == "exclusiveGateway" and len(node.outgoing) > 1:
        for flow_id in node.outgoing:
            if flow_id != node.default and not _flow_has_condition(process, flow_id):
                issues.add_at(
                    node.id,
                    node.line,
                    f"{_say(node)} has an outgoing flow '{flow_id}' with neither a condition nor being the default",
                )
    if node.kind == "eventBasedGateway":
        if len(node.outgoing) < 2:
            issues.add_at(node.id, node.line, f"{_say(node)} needs at least two outgoing flows")
        for flow_id in node.outgoing:
            flow = process.flows[flow_id]
            if flow.condition is not None:
                issues.add_at(node.id, node.line, f"{_say(node)} has a conditional outgoing flow '{flow_id}'")
            target = process.nodes[flow.target]
            if not _waits_for_event(target):
                issues.add_at(
                    node.id,
                    node.line,
                    f"{_say(node)} leads via '{flow_id}' to {_say(target)}, which is not an intermediate "
                    "catch event (message, timer, signal) or a receive task",
                )


def _waits_for_event(node: FlowNode) -> bool:
    if node.kind == "receiveTask":
        return True
    return (
        isinstance(node, Event)
        and node.kind == "intermediateCatchEvent"
        and isinstance(node.trigger, MessageTrigger | TimerTrigger | SignalTrigger)
    )


def _event(process: Process, node: Event, issues: Issues) -> None:
    if node.kind == "startEvent" and node.incoming:
        issues.add_at(node.id, node.line, f"{_say(node)} must not have incoming sequence flows")
    if node.kind == "endEvent" and node.outgoing:
        issues.add_at(node.id, node.line, f"{_say(node)} must not have outgoing sequence flows")
    if node.kind == "boundaryEvent" and node.incoming:
        issues.add_at(node.id, node.line, f"{_say(node)} must not have incoming sequence flows")
    trigger = node.trigger
    if isinstance(trigger, CancelTrigger):
        where = process.nodes.get(node.attached_to or node.parent)
        if where is None or where.kind != "transaction":
            place = "attached to" if node.kind == "boundaryEvent" else "directly inside"
            issues.add_at(node.id, node.line, f"cancel event '{node.id}' must be {place} a transaction")
    if isinstance(trigger, LinkTrigger):
        if node.kind == "intermediateCatchEvent" and node.incoming:
            issues.add_at(
                node.id, node.line, f"link catch event '{node.id}' must not have incoming sequence flows"
            )
        if node.kind == "intermediateThrowEvent" and node.outgoing:
            issues.add_at(
                node.id, node.line, f"link throw event '{node.id}' must not have outgoing sequence flows"
            )
    if isinstance(trigger, CompensateTrigger):
        if trigger.activity_ref is not None:
            target = process.nodes.get(trigger.activity_ref)
            if not isinstance(target, Activity):
                issues.add_at(
                    node.id,
                    node.line,
                    f"{_say(node)} compensates '{trigger.activity_ref}', which is not an activity of this process",
                )
        if node.kind == "boundaryEvent":
            if node.outgoing:
                issues.add_at(
                    node.id, node.line, f"compensation {_say(node)} must not have outgoing sequence flows"
                )
            handler = process.nodes.get(node.compensation_handler or "")
            if handler is None:
                issues.add_at(
                    node.id,
                    node.line,
                    f"compensation {_say(node)} has no association to a compensation handler activity",
                )
            elif isinstance(handler, Activity) and not handler.is_for_compensation:
                issues.add_at(
                    node.id,
                    node.line,
                    f"compensation {_say(node)} points to '{handler.id}', which is not isForCompensation='true'",
                )


def _activity(process: Process, node: Activity, issues: Issues) -> None:
    _check_default(process, node, issues)
    if node.is_for_compensation and (node.incoming or node.outgoing):
        issues.add_at(
            node.id,
            node.line,
            f"compensation handler {_say(node)} must not have incoming or outgoing sequence flows",
        )


def _links(process: Process, issues: Issues) -> None:
    catches: dict[tuple[str, str], str] = {}
    for node in process.nodes.values():
        if (
            isinstance(node, Event)
            and node.kind == "intermediateCatchEvent"
            and isinstance(node.trigger, LinkTrigger)
        ):
            key = (node.parent, node.trigger.name)
            if key in catches:
                issues.add_at(
                    node.id,
                    node.line,
                    f"link catch event '{node.id}' uses the link name '{node.trigger.name}' of '{catches[key]}' "
                    "in the same scope",
                )
            else:
                catches[key] = node.id
    for node in process.nodes.values():
        if (
            isinstance(node, Event)
            and node.kind == "intermediateThrowEvent"
            and isinstance(node.trigger, LinkTrigger)
            and (node.parent, node.trigger.name) not in catches
        ):
            issues.add_at(
                node.id,
                node.line,
                f"link throw event '{node.id}' has no link catch event named '{node.trigger.name}' in the same scope",
            )
