"""BPMN 2.0 XML (Camunda Modeler 8 / Zeebe dialect) -> the compiled model of :mod:`.model`.

:func:`parse_bpmn` loads the document with a hardened XML parser (:mod:`.xmlsafe`), builds every
process (:class:`ProcessBuilder`), checks the graph rules (:mod:`.validate`) and raises one
:class:`~natsflow_engine.errors.BpmnValidationError` listing every problem found.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from natsflow_engine.bpmn import zeebe
from natsflow_engine.bpmn.common import (
    BPMN_NS,
    Element,
    Issues,
    bpmn_children,
    describe,
    line_of,
    local_name,
    namespace_of,
    parse_bool,
    parse_quantity,
    text_of,
    zeebe_ext,
    zeebe_exts,
)
from natsflow_engine.bpmn.events import Globals, Role, message_trigger, mi_behavior, parse_trigger
from natsflow_engine.bpmn.expr import ExprCompiler, StaticExpr
from natsflow_engine.bpmn.instantiate import add_instantiating_starts
from natsflow_engine.bpmn.model import (
    Activity,
    CallActivity,
    CompensateTrigger,
    Definitions,
    Event,
    Expr,
    FlowNode,
    Gateway,
    MessageTrigger,
    Process,
    ScriptTask,
    SequenceFlow,
    SubProcess,
)
from natsflow_engine.bpmn.validate import validate_process
from natsflow_engine.bpmn.xmlsafe import load_document
from natsflow_engine.bpmn.zeebe import ad_hoc_of
from natsflow_engine.errors import BpmnValidationError

__all__ = ["DEFAULT_MAX_BYTES", "parse_bpmn"]

DEFAULT_MAX_BYTES = 4 * 1024 * 1024

EVENT_KINDS = frozenset(
    {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
)
GATEWAY_KINDS = frozenset(
    {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
)
JOB_TASK_KINDS = frozenset({"serviceTask", "sendTask", "businessRuleTask"})
ACTIVITY_KINDS = frozenset(
    {
        "task", "manualTask", "userTask", "receiveTask", "scriptTask", "callActivity", "subProcess",
        "transaction", "adHocSubProcess",
    }
    | JOB_TASK_KINDS
)
UNSUPPORTED = {
    "callChoreography": "choreographies",
    "subChoreography": "choreographies",
    "choreographyTask": "choreographies",
}
# BPMN elements that may sit in a process or sub-process without affecting execution.
IGNORED = frozenset(
    {
        "documentation", "extensionElements", "auditing", "monitoring", "property", "laneSet", "lane",
        "dataObject", "dataObjectReference", "dataStoreReference", "dataStore", "textAnnotation",
        "group", "association", "ioSpecification", "ioBinding", "dataInputAssociation",
        "dataOutputAssociation", "resourceRole", "performer", "humanPerformer", "potentialOwner",
        "correlationSubscription", "supports", "category", "categoryValue", "dataInput", "dataOutput",
        "inputSet", "outputSet",
        # children of a sub-process that describe the sub-process itself, not its contents
        "incoming", "outgoing", "multiInstanceLoopCharacteristics", "standardLoopCharacteristics",
        "completionCondition",
    }
)  # fmt: skip

ScopeKind = Literal["process", "sub", "esp"]
_START_ROLES: dict[ScopeKind, Role] = {"process": "start", "sub": "start_sub", "esp": "start_esp"}


@dataclass
class _Scope:
    id: str
    kind: ScopeKind
    children: list[str] = field(default_factory=list)


class ProcessBuilder:
    """Builds one :class:`Process` from its ``<process>`` element, reporting into ``ctx.issues``."""

    def __init__(self, ctx: ExprCompiler, g: Globals, el: Element, process_id: str) -> None:
        self.ctx = ctx
        self.issues = ctx.issues
        self.g = g
        self.el = el
        self.pid = process_id
        self.nodes: dict[str, FlowNode] = {}
        self.raw_flows: list[tuple[Element, str]] = []
        self.scopes: dict[str, _Scope] = {}
        self.associations: dict[str, list[str]] = {}

    # --- walking the XML ---------------------------------------------------------------------

    def build(self) -> Process:
        add_instantiating_starts(self.el)
        queue: deque[tuple[Element, _Scope]] = deque()
        root_scope = _Scope(self.pid, "process")
        self.scopes[self.pid] = root_scope
        queue.append((self.el, root_scope))
        while queue:
            el, scope = queue.popleft()
            for child in el:
                sub = self._child(child, scope)
                if sub is not None:
                    queue.append(sub)
        return self._finish()

    def _child(self, child: Element, scope: _Scope) -> tuple[Element, _Scope] | None:
        if not isinstance(child.tag, str):
            return None
        ns = namespace_of(child)
        name = local_name(child)
        if ns is not None and ns != BPMN_NS:
            return None  # another vendor's element: ignored
        where = "process" if scope.kind == "process" else "sub-process"
        label = f"'{child.get('id')}'" if child.get("id") else f"at line {line_of(child)}"
        if ns is None:
            self.issues.add(
                child, f"'{name}' {label} is not in the BPMN namespace ({BPMN_NS})", child.get("id") or None
            )
            return None
        if name in IGNORED:
            if name == "association":
                src, dst = (child.get("sourceRef") or "").strip(), (child.get("targetRef") or "").strip()
                if src and dst:
                    self.associations.setdefault(src, []).append(dst)
            return None
        if name in UNSUPPORTED:
            self.issues.add(child, f"'{name}' {label}: {UNSUPPORTED[name]} are not supported by natsflow")
            return None
        if name == "sequenceFlow":
            self.raw_flows.append((child, scope.id))
            return None
        if name not in EVENT_KINDS and name not in GATEWAY_KINDS and name not in ACTIVITY_KINDS:
            self.issues.add(
                child, f"'{name}' {label} in {where} '{scope.id}' is not a BPMN flow node natsflow can run"
            )
            return None
        node_id = (child.get("id") or "").strip()
        if not node_id:
            self.issues.add(child, f"'{name}' at line {line_of(child)} has no id")
            return None
        if node_id in self.nodes or node_id == self.pid:
            return None  # duplicate ids are reported once for the whole document
        base: dict[str, Any] = {
            "id": node_id,
            "kind": name,
            "line": line_of(child) or 0,
            "parent": scope.id,
            "name": child.get("name") or None,
        }
        if name in EVENT_KINDS:
            node: FlowNode = self._event(child, base, scope)
        elif name in GATEWAY_KINDS:
            node = Gateway(
                **base, default=(child.get("default") or "").strip() or None, activation=self._activation(child)
            )
        else:
            node = self._activity(child, base)
        self.nodes[node_id] = node
        scope.children.append(node_id)
        if isinstance(node, SubProcess):
            sub = _Scope(node_id, "esp" if node.triggered_by_event else "sub")
            self.scopes[node_id] = sub
            return child, sub
        return None

    def _activation(self, el: Element) -> Expr | None:
        """A complex gateway's ``activationCondition`` (FEEL, with or without the leading '=')."""
        cond = next(bpmn_children(el, "activationCondition"), None)
        if cond is None:
            return None
        what = f"the activation condition of complex gateway '{el.get('id')}'"
        return self.ctx.value(cond, cond.text or "", what, "feel")

    def _event(self, el: Element, base: dict[str, Any], scope: _Scope) -> Event:
        kind = base["kind"]
        what = describe(el)
        role: Role
        if kind == "startEvent":
            role = _START_ROLES[scope.kind]
        elif kind == "endEvent":
            role = "end"
        elif kind == "intermediateCatchEvent":
            role = "catch"
        elif kind == "intermediateThrowEvent":
            role = "throw"
        else:
            role = "boundary"
        parsed = parse_trigger(self.ctx, self.g, el, role)
        inputs, outputs = zeebe.io_mappings(self.ctx, el)
        extra: dict[str, Any] = {}
        if parsed.kind == "message" and role in ("end", "throw"):
            task = zeebe.task_definition(self.ctx, el)
            has_td = bool(zeebe_exts(el, "taskDefinition"))
            no_message = isinstance(parsed.trigger, MessageTrigger) and parsed.trigger.name.source == ""
            if not has_td and no_message and parsed.ok:
                self.issues.add(
                    el, f"{what} throws a message but has neither a zeebe:taskDefinition nor a message"
                )
            extra["task"] = task
            extra["headers"] = zeebe.headers(self.ctx, el)
        if role == "boundary":
            extra["attached_to"] = (el.get("attachedToRef") or "").strip() or None
            cancel = parse_bool(self.issues, el, "cancelActivity", True, what)
            if parsed.kind == "error" and not cancel:
                self.issues.add(el, f"{what} catches an error and must interrupt (cancelActivity='false')")
            extra["cancel_activity"] = cancel
        if role == "start_esp":
            interrupting = parse_bool(self.issues, el, "isInterrupting", True, what)
            if parsed.kind == "error" and not interrupting:
                self.issues.add(
                    el, f"{what} catches an error and must be interrupting (isInterrupting='false')"
                )
            extra["interrupting"] = interrupting
        return Event(**base, trigger=parsed.trigger, inputs=inputs, outputs=outputs, **extra)

    def _activity(self, el: Element, base: dict[str, Any]) -> Activity:
        kind = base["kind"]
        what = describe(el)
        inputs, outputs = zeebe.io_mappings(self.ctx, el)
        mi, loop = zeebe.loop_characteristics(self.ctx, el)
        if mi is not None:
            behavior, event, complex_behaviors = mi_behavior(self.ctx, self.g, el)
            mi = dataclasses.replace(mi, behavior=behavior, behavior_event=event, complex_behaviors=complex_behaviors)
        common: dict[str, Any] = {
            **base,
            "inputs": inputs,
            "outputs": outputs,
            "multi_instance": mi,
            "loop": loop,
            "default": (el.get("default") or "").strip() or None,
            "is_for_compensation": parse_bool(self.issues, el, "isForCompensation", False, what),
            "start_quantity": parse_quantity(self.issues, el, "startQuantity", what),
            "completion_quantity": parse_quantity(self.issues, el, "completionQuantity", what),
            "headers": zeebe.headers(self.ctx, el),
        }
        has_td = bool(zeebe_exts(el, "taskDefinition"))
        if kind in JOB_TASK_KINDS:
            if not has_td:
                if kind == "businessRuleTask" and zeebe_ext(el, "calledDecision") is not None:
                    self.issues.add(
                        el,
                        f"{what} calls a decision: DMN decisions are not supported; use a zeebe:taskDefinition",
                    )
                elif kind != "sendTask" or el.get("id") not in self.g.message_flow_sources:
                    # a send task on a message flow sends that flow's message itself
                    self.issues.add(el, f"{what} has no zeebe:taskDefinition with a job type")
            return Activity(**common, task=zeebe.task_definition(self.ctx, el))
        if kind == "scriptTask":
            script = zeebe.script(self.ctx, el)
            if script.present and has_td:
                self.issues.add(el, f"{what} has both a zeebe:script and a zeebe:taskDefinition")
            elif not script.present and not has_td:
                self.issues.add(
                    el, f"{what} has neither a zeebe:script expression nor a zeebe:taskDefinition"
                )
            return ScriptTask(
                **common,
                task=zeebe.task_definition(self.ctx, el),
                script=script.expression,
                result_variable=script.result_variable,
            )
        if kind == "userTask":
            return Activity(**common, user_task=zeebe.user_task(self.ctx, el))
        if kind == "receiveTask":
            return Activity(**common, message=message_trigger(self.ctx, self.g, el, el, needs_key=True))
        if kind == "callActivity":
            called = zeebe.called_element(self.ctx, el)
            if called.process_id is None:
                self.issues.add(el, f"{what} has no called process (zeebe:calledElement processId)")
            return CallActivity(
                **common,
                called_element=called.process_id or StaticExpr("", None),
                propagate_all_child_variables=called.propagate_child,
                propagate_all_parent_variables=called.propagate_parent,
                binding_type=called.binding_type,
                version_tag=called.version_tag,
            )
        if kind in ("subProcess", "transaction", "adHocSubProcess"):
            esp = kind == "subProcess" and parse_bool(self.issues, el, "triggeredByEvent", False, what)
            ad_hoc = ad_hoc_of(self.ctx, el, what) if kind == "adHocSubProcess" else None
            return SubProcess(**common, triggered_by_event=esp, ad_hoc=ad_hoc)
        return Activity(**common)  # task, manualTask: pass through

    # --- resolving references ----------------------------------------------------------------

    def _flows(self) -> dict[str, SequenceFlow]:
        flows: dict[str, SequenceFlow] = {}
        for el, scope_id in self.raw_flows:
            flow_id = (el.get("id") or "").strip()
            if not flow_id:
                self.issues.add(el, f"sequence flow at line {line_of(el)} has no id")
                continue
            if flow_id in flows or flow_id in self.nodes:
                continue  # duplicate id, reported document-wide
            ok = True
            ends: list[str] = []
            for attr in ("sourceRef", "targetRef"):
                ref = (el.get(attr) or "").strip()
                ends.append(ref)
                if not ref:
                    self.issues.add(el, f"sequence flow '{flow_id}' has no {attr}")
                    ok = False
                elif ref not in self.nodes:
                    self.issues.add(
                        el, f"sequence flow '{flow_id}' has {attr} '{ref}', which is not a flow node here"
                    )
                    ok = False
                elif self.nodes[ref].parent != scope_id:
                    self.issues.add(
                        el,
                        f"sequence flow '{flow_id}' (in '{scope_id}') has {attr} '{ref}' inside "
                        f"'{self.nodes[ref].parent}': sequence flows cannot cross a sub-process boundary",
                    )
                    ok = False
            cond_el = next(bpmn_children(el, "conditionExpression"), None)
            cond_text = text_of(cond_el)
            condition = None
            if cond_el is not None and cond_text is not None:
                condition = self.ctx.value(
                    cond_el, cond_text, f"the condition of sequence flow '{flow_id}'", "feel"
                )
            if ok:
                flows[flow_id] = SequenceFlow(
                    id=flow_id,
                    source=ends[0],
                    target=ends[1],
                    line=line_of(el) or 0,
                    name=el.get("name") or None,
                    condition=condition,
                )
        return flows

    def _boundaries(self) -> dict[str, list[str]]:
        attached: dict[str, list[str]] = {}
        for node in self.nodes.values():
            if not isinstance(node, Event) or node.kind != "boundaryEvent":
                continue
            what = f"boundary event '{node.id}'"
            target = self.nodes.get(node.attached_to or "")
            if node.attached_to is None:
                self.issues.add_at(node.id, node.line, f"{what} has no attachedToRef")
            elif target is None:
                self.issues.add_at(
                    node.id, node.line, f"{what} is attached to '{node.attached_to}', which does not exist"
                )
            elif not isinstance(target, Activity):
                self.issues.add_at(
                    node.id,
                    node.line,
                    f"{what} is attached to '{node.attached_to}', which is not an activity",
                )
            elif target.parent != node.parent:
                self.issues.add_at(
                    node.id, node.line, f"{what} is attached to '{target.id}', which is in another scope"
                )
            else:
                attached.setdefault(target.id, []).append(node.id)
        return attached

    def _finish(self) -> Process:
        flows = self._flows()
        incoming: dict[str, list[str]] = {}
        outgoing: dict[str, list[str]] = {}
        for flow in flows.values():
            outgoing.setdefault(flow.source, []).append(flow.id)
            incoming.setdefault(flow.target, []).append(flow.id)
        attached = self._boundaries()
        nodes: dict[str, FlowNode] = {}
        for node_id, node in self.nodes.items():
            changes: dict[str, Any] = {
                "incoming": tuple(incoming.get(node_id, ())),
                "outgoing": tuple(outgoing.get(node_id, ())),
            }
            if isinstance(node, Activity):
                changes["boundaries"] = tuple(attached.get(node_id, ()))
            if (
                isinstance(node, Event)
                and isinstance(node.trigger, CompensateTrigger)
                and node.kind == "boundaryEvent"
            ):
                handlers = [
                    t for t in self.associations.get(node_id, []) if isinstance(self.nodes.get(t), Activity)
                ]
                changes["compensation_handler"] = handlers[0] if handlers else None
            if isinstance(node, SubProcess):
                changes.update(self._scope_lists(self.scopes[node_id]))
            nodes[node_id] = dataclasses.replace(node, **changes)
        root = self._scope_lists(self.scopes[self.pid])
        return Process(
            id=self.pid,
            line=line_of(self.el) or 0,
            name=self.el.get("name") or None,
            executable=parse_bool(self.issues, self.el, "isExecutable", True, f"process '{self.pid}'"),
            nodes=nodes,
            flows=flows,
            all_start_events=tuple(
                c for c in self.scopes[self.pid].children if self.nodes[c].kind == "startEvent"
            ),
            version_tag=zeebe.version_tag(self.el),
            children=root["children"],
            start_events=root["start_events"],
            event_subprocesses=root["event_subprocesses"],
        )

    def _scope_lists(self, scope: _Scope) -> dict[str, tuple[str, ...]]:
        starts = [c for c in scope.children if self.nodes[c].kind == "startEvent"]
        if scope.kind != "esp":
            starts = [c for c in starts if _trigger_of(self.nodes[c]) is None]
        esps = [
            c
            for c in scope.children
            if isinstance(self.nodes[c], SubProcess) and self.scopes[c].kind == "esp"
        ]
        return {
            "children": tuple(scope.children),
            "start_events": tuple(starts),
            "event_subprocesses": tuple(esps),
        }


def _trigger_of(node: FlowNode) -> object:
    return node.trigger if isinstance(node, Event) else None


def _duplicate_ids(root: Element, issues: Issues) -> None:
    seen: dict[str, int | None] = {}
    for el in root.iter():
        if namespace_of(el) != BPMN_NS:
            continue
        el_id = el.get("id")
        if not el_id:
            continue
        if el_id in seen:
            first = seen[el_id]
            issues.add(el, f"duplicate id '{el_id}' (first used at line {first})")
        else:
            seen[el_id] = line_of(el)


_GLOBAL_TASKS = {
    "globalTask": "task",
    "globalUserTask": "userTask",
    "globalScriptTask": "scriptTask",
    "globalManualTask": "manualTask",
    "globalBusinessRuleTask": "businessRuleTask",
}


def _global_tasks(root: Element) -> list[tuple[str, Element]]:
    return [(kind, el) for name, kind in _GLOBAL_TASKS.items() for el in bpmn_children(root, name)]


def _process_around(task: Element, gid: str, kind: str) -> Element:
    """A global task is callable like a process: wrap it as start -> task -> end, so a call
    activity whose calledElement names it runs it."""
    ns = f"{{{BPMN_NS}}}"
    process = etree.Element(f"{ns}process", id=gid, isExecutable="true")
    process.sourceline = task.sourceline
    etree.SubElement(process, f"{ns}startEvent", id=f"{gid}__start")
    body = etree.SubElement(process, f"{ns}{kind}", id=f"{gid}__task", name=task.get("name") or gid)
    for child in task:
        body.append(copy.deepcopy(child))
    body.sourceline = task.sourceline
    etree.SubElement(process, f"{ns}endEvent", id=f"{gid}__end")
    etree.SubElement(process, f"{ns}sequenceFlow", id=f"{gid}__f1", sourceRef=f"{gid}__start", targetRef=f"{gid}__task")
    etree.SubElement(process, f"{ns}sequenceFlow", id=f"{gid}__f2", sourceRef=f"{gid}__task", targetRef=f"{gid}__end")
    return process


def _attach_message_flows(root: Element, processes: dict[str, Process]) -> None:
    """Message flows between participants deployed together: a throwing message event sends
    the message its flow's target waits for (name and correlation key of the target's message,
    the key evaluated in the sender). Flows to or from a black-box pool carry nothing."""
    owner = {node_id: pid for pid, p in processes.items() for node_id in p.nodes}
    flows: dict[str, dict[str, list[MessageTrigger]]] = {}
    for collab in bpmn_children(root, "collaboration"):
        for mf in bpmn_children(collab, "messageFlow"):
            src, dst = (mf.get("sourceRef") or "").strip(), (mf.get("targetRef") or "").strip()
            if src not in owner or dst not in owner:
                continue
            target = processes[owner[dst]].nodes[dst]
            trigger = getattr(target, "trigger", None) or getattr(target, "message", None)
            if not isinstance(trigger, MessageTrigger) or not processes[owner[src]].executable:
                continue  # documentation only: nothing waits for a message there
            flows.setdefault(owner[src], {}).setdefault(src, []).append(trigger)
    for pid, by_source in flows.items():
        processes[pid] = dataclasses.replace(
            processes[pid], message_flows={k: tuple(v) for k, v in by_source.items()}
        )


def parse_bpmn(
    source: bytes | str | Path, *, name: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Definitions:
    """Parse and validate a BPMN 2.0 document; raise :class:`BpmnValidationError` listing every
    problem found."""
    if name is None and isinstance(source, Path):
        name = source.name
    doc = load_document(source, max_bytes=max_bytes, name=name)
    root = doc.root
    issues = Issues()
    ctx = ExprCompiler(issues)
    g = Globals.collect(root)
    _duplicate_ids(root, issues)
    processes: dict[str, Process] = {}
    for el in bpmn_children(root, "process"):
        pid = (el.get("id") or "").strip()
        if not pid:
            issues.add(el, f"process at line {line_of(el)} has no id")
            continue
        if pid in processes:
            continue
        executable = parse_bool(issues, el, "isExecutable", True, f"process '{pid}'")
        issues.muted = not executable  # problems of non-executable processes do not block a deploy
        try:
            process = ProcessBuilder(ctx, g, el, pid).build()
            validate_process(process, issues)
        finally:
            issues.muted = False
        processes[pid] = process
    for kind, el in _global_tasks(root):
        gid = (el.get("id") or "").strip()
        if gid and gid not in processes:
            processes[gid] = ProcessBuilder(ctx, g, _process_around(el, gid, kind), gid).build()
    for collab in bpmn_children(root, "collaboration"):
        for participant in bpmn_children(collab, "participant"):
            ref = (participant.get("processRef") or "").strip()
            if ref and ref not in processes and ref.rsplit(":", 1)[-1] not in processes:
                issues.add(
                    participant,
                    f"participant '{participant.get('id')}' refers to process '{ref}', which is not defined",
                )
    _attach_message_flows(root, processes)
    if not any(p.executable for p in processes.values()):
        issues.add(root, "the document has no executable process (a <process> with isExecutable='true')")
    if issues:
        raise BpmnValidationError(issues.items, source=name)
    return Definitions(
        processes=processes,
        source_hash=hashlib.sha256(doc.data).hexdigest(),
        target_namespace=root.get("targetNamespace"),
        name=name,
        warnings=tuple(issues.warnings),
    )
