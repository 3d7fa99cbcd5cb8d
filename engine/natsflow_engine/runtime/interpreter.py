"""The interpreter: a pure function ``(process, state, command, now) -> (state, effects, history)``.

No I/O and no clock reads happen here; the adapter (:mod:`natsflow_engine.runtime.engine`)
loads the state, calls :func:`step`, writes the state and publishes the effects. Because it is
pure and deterministic, a step can be re-run after a revision conflict, replayed in tests, and
its effects get deterministic ids (``<instance>.<step>.<n>``, job keys
``<instance>.<element instance>.<attempt>``).

Tokens move through the graph until each one waits (at a job, a user task, a join, ...) or
ends. Only waiting things are stored, as element instances (``InstanceState.eis``); scopes
(the process, sub-processes) are element instances too, and hold local variables.

Failures inside a step never escape as exceptions: a broken expression, a missing flow, an
unhandled BPMN error become an *incident* on the element instance, and the token waits there
until the incident is resolved.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from natsflow_engine.bpmn.model import (
    Activity,
    CallActivity,
    CompensateTrigger,
    ErrorTrigger,
    EscalationTrigger,
    Event,
    FlowNode,
    Gateway,
    LinkTrigger,
    MessageTrigger,
    Process,
    ScriptTask,
    SignalTrigger,
    SubProcess,
    TerminateTrigger,
)
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.compensation import CompensationMixin
from natsflow_engine.runtime.events import EventsMixin
from natsflow_engine.runtime.joins import JoinsMixin
from natsflow_engine.runtime.loops import LoopsMixin
from natsflow_engine.runtime.scopes import ROOT, apply_mappings, context_of, propagate
from natsflow_engine.runtime.starts import next_timer_start

__all__ = ["MAX_ACTIVATIONS", "StepResult", "step"]

log = logging.getLogger(__name__)

MAX_ACTIVATIONS = 10_000
"""Element activations one step may perform before the instance gets an incident (runaway loop)."""

APPLIED_MEMORY = 32
"""How many recent command ids an instance remembers to recognise a redelivery."""

_JOB_ELEMENTS = frozenset({"serviceTask", "sendTask", "businessRuleTask", "scriptTask"})
_PASS_THROUGH = frozenset({"task", "manualTask"})


def _json_value(value: Any) -> Any:
    from natsflow_engine.feel import to_json_value

    return to_json_value(value)


@dataclass
class StepResult:
    state: r.InstanceState
    effects: list[Any] = field(default_factory=list)
    history: r.HistoryRecord | None = None
    changed: bool = True


def step(process: Process | None, state: r.InstanceState | None, command: Any, now: datetime) -> StepResult:
    """Apply one command. ``state`` is None only for a launch of a new instance.

    ``process`` is the compiled model of the instance's process version (None when it could
    not be loaded: the command is refused with an incident).
    """
    if state is None:
        if not isinstance(command, r.Launch):
            raise NatsflowError(f"instance {command.instance} does not exist (command {command.id})")
        state = r.InstanceState(
            id=command.instance,
            tenant=command.tenant,
            process_id=command.process_id,
            version=command.version or 0,
            business_key=command.business_key,
            started=now.isoformat(),
            v=r.STATE_VERSION,
            parent=command.parent,
        )
    elif command.id in state.applied:
        return StepResult(state, changed=False)
    assert process is not None
    runner = _Step(process, state, now, command)
    runner.run(command)
    return runner.result()


class _Step(EventsMixin, LoopsMixin, JoinsMixin, CompensationMixin):
    def __init__(self, process: Process, state: r.InstanceState, now: datetime, command: Any) -> None:
        self.p = process
        self.s = state
        self.now = now
        self.at = now.isoformat()
        self.command = command
        self.events: list[r.HistoryEvent] = []
        self.effects: list[Any] = []
        self.queue: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self.pending: dict[int, int] = {}  # scope key -> tokens queued towards it
        self.activations = 0
        self.s.step += 1

    # --- driver -------------------------------------------------------------------------------

    def run(self, command: Any) -> None:
        handler = getattr(self, "on_" + type(command).__name__, None)
        if handler is None:
            log.warning("instance %s: command type %s not handled", self.s.id, type(command).__name__)
        elif self.s.state != "active" and not isinstance(command, r.Launch):
            log.info("instance %s is %s; ignoring %s", self.s.id, self.s.state, type(command).__name__)
        else:
            handler(command)
            self.drain()
        self.s.applied.append(command.id)
        if len(self.s.applied) > APPLIED_MEMORY:
            del self.s.applied[: len(self.s.applied) - APPLIED_MEMORY]

    def drain(self) -> None:
        while True:
            while self.queue:
                fn, args = self.queue.popleft()
                fn(*args)
            if not self.fire_inclusive_joins():
                return

    def result(self) -> StepResult:
        history = r.HistoryRecord(
            tenant=self.s.tenant,
            instance=self.s.id,
            process_id=self.s.process_id,
            step=self.s.step,
            at=self.at,
            command=type(self.command).__name__,
            state=self.s.state,
            events=self.events,
        )
        return StepResult(self.s, self.effects, history)

    def event(self, type_: str, node_id: str | None = None, key: int | None = None, **data: Any) -> None:
        self.events.append(r.HistoryEvent(type=type_, element_id=node_id, ei=key, data=data or None))

    def new_key(self) -> int:
        key = self.s.seq
        self.s.seq += 1
        return key

    def effect_id(self) -> str:
        return f"{self.s.id}.{self.s.step}.{len(self.effects)}"

    # --- commands -----------------------------------------------------------------------------

    def on_Launch(self, cmd: r.Launch) -> None:
        self.s.version = cmd.version or self.s.version
        root = r.ElementInstance(key=ROOT, el=self.p.id, parent=0, vars=dict(cmd.variables))
        self.s.eis[ROOT] = root
        self.event("instance-started", self.p.id, ROOT, version=self.s.version)
        start = cmd.start_event or (self.p.start_events[0] if self.p.start_events else None)
        if start is None:
            self.raise_incident(root, "no-flow", f"process '{self.p.id}' has no none start event to start at")
            return
        self.arm_event_subprocesses(root, self.p.event_subprocesses)
        following = next_timer_start(cmd, self.p, self.now)
        if following is not None:
            self.effects.append(following)
        self.enqueue_enter(start, ROOT, None)

    def on_JobCompleted(self, cmd: r.JobCompleted) -> None:
        ei = self.waiting(cmd.ei, job=cmd.job)
        if ei is None:
            return
        self.event("job-completed", ei.el, ei.key)
        self.complete_with(ei, cmd.variables)

    def on_JobFailed(self, cmd: r.JobFailed) -> None:
        ei = self.waiting(cmd.ei, job=cmd.job)
        if ei is None:
            return
        ei.retries = cmd.retries
        self.raise_incident(ei, "job-failed", cmd.message or "job failed", phase="job")

    def on_JobError(self, cmd: r.JobError) -> None:
        ei = self.waiting(cmd.ei, job=cmd.job)
        if ei is None:
            return
        ei.wait = None
        self.throw_error(ei, cmd.code, cmd.message, cmd.variables)

    def on_UserTaskCompleted(self, cmd: r.UserTaskCompleted) -> None:
        key = int(cmd.task.rsplit(".", 1)[-1])
        ei = self.s.eis.get(key)
        if ei is None or ei.user_task != cmd.task:
            log.info("instance %s: user task %s is not open; ignored", self.s.id, cmd.task)
            return
        self.effects.append(r.UserTaskDone(id=cmd.task, tenant=self.s.tenant))
        self.event("user-task-completed", ei.el, ei.key)
        self.complete_with(ei, cmd.variables)

    def on_SetVariables(self, cmd: r.SetVariables) -> None:
        target = cmd.ei if cmd.ei is not None else ROOT
        scope = self.s.eis.get(target)
        if scope is None:
            return
        if scope.vars is None:
            scope.vars = {}
        scope.vars.update(cmd.variables)
        self.event("variables-set", scope.el, scope.key, names=sorted(cmd.variables))

    def on_Cancel(self, cmd: r.Cancel) -> None:
        root = self.s.eis[ROOT]
        self.terminate_children(ROOT)
        self.s.joins.clear()
        self.s.state = "cancelled"
        self.s.ended = self.at
        self.s.incidents.clear()
        self.event("instance-cancelled", root.el, ROOT, reason=cmd.reason or None)
        self.notify_parent("cancelled")

    def on_ResolveIncident(self, cmd: r.ResolveIncident) -> None:
        incident = next((i for i in self.s.incidents if i.id == cmd.incident), None)
        if incident is None:
            return
        self.s.incidents.remove(incident)
        ei = self.s.eis.get(incident.ei)
        self.event("incident-resolved", incident.element_id, incident.ei, incident=incident.id)
        if ei is None:
            return
        if cmd.variables:
            propagate(self.s, ei.key, cmd.variables)
        phase = ei.phase or "enter"
        ei.phase = None
        ei.incident = None
        node = self.p.nodes.get(ei.el)
        if phase == "done":
            phase = "job" if getattr(node, "task", None) is not None else "enter"
        if phase == "job":
            ei.attempt += 1
            ei.retries = None
            self.create_job(ei, self.p.nodes[ei.el])
        elif phase == "complete":
            self.complete_with(ei, {})
        elif phase == "arm":
            node = self.p.nodes[ei.el]
            trigger = getattr(node, "trigger", None) or getattr(node, "message", None)
            self.arm(ei, trigger, ei.parent)
        elif phase == "leave":
            del self.s.eis[ei.key]
            self.leave(self.p.nodes[ei.el], ei.parent)
        elif ei.key == ROOT:
            self.on_Launch_retry()
        else:
            del self.s.eis[ei.key]
            self.enqueue_enter(ei.el, ei.parent, ei.flow)

    def on_Launch_retry(self) -> None:
        if self.p.start_events:
            self.enqueue_enter(self.p.start_events[0], ROOT, None)

    # --- token movement -----------------------------------------------------------------------

    def enqueue_enter(self, node_id: str, scope: int, flow: str | None) -> None:
        self.pending[scope] = self.pending.get(scope, 0) + 1
        self.queue.append((self.enter, (node_id, scope, flow)))

    def enter(self, node_id: str, scope: int, flow: str | None) -> None:
        self.pending[scope] -= 1
        if scope not in self.s.eis or self.s.state != "active":
            return  # the scope was terminated or the instance ended while this token was queued
        self.activations += 1
        node = self.p.nodes[node_id]
        if self.activations > MAX_ACTIVATIONS:
            ei = self.new_ei(node, scope, flow)
            self.raise_incident(
                ei, "engine", f"more than {MAX_ACTIVATIONS} activations in one step (endless loop?)"
            )
            return
        kind = node.kind
        if isinstance(node, Gateway):
            self.enter_gateway(node, scope, flow)
        elif isinstance(node, Event):
            self.enter_event(node, scope, flow)
        elif isinstance(node, Activity):
            self.enter_activity(node, scope, flow)
        else:  # pragma: no cover - the support check refuses other kinds at deploy
            raise NatsflowError(f"element kind {kind} cannot be executed")

    def new_ei(
        self, node: FlowNode, scope: int, flow: str | None, vars_: dict[str, Any] | None = None
    ) -> r.ElementInstance:
        ei = r.ElementInstance(key=self.new_key(), el=node.id, parent=scope, vars=vars_, flow=flow)
        self.s.eis[ei.key] = ei
        return ei

    def pass_through(self, node: FlowNode, scope: int) -> None:
        """An element that activates and completes in the same instant."""
        key = self.new_key()
        self.event("element-activated", node.id, key)
        self.event("element-completed", node.id, key)
        self.leave(node, scope)

    def leave(self, node: FlowNode, scope: int, context_key: int | None = None) -> None:
        """Take the outgoing flows of a completed node (conditions on activities honoured)."""
        flows = [self.p.flows[f] for f in node.outgoing]
        if not flows:
            self.token_ended(scope)
            return
        if any(f.condition is not None for f in flows):
            ctx = context_of(self.s, context_key or scope)
            chosen = []
            default = getattr(node, "default", None)
            try:
                for f in flows:
                    if f.id != default and (f.condition is None or _condition(f.condition, ctx)):
                        chosen.append(f)
            except NatsflowError as exc:
                ei = self.new_ei(node, scope, None)
                self.raise_incident(ei, "expression", f"sequence flow condition failed: {exc}", phase="leave")
                return
            if not chosen and default:
                chosen = [self.p.flows[default]]
            flows = chosen
            if not flows:
                ei = self.new_ei(node, scope, None)
                self.raise_incident(
                    ei,
                    "no-flow",
                    f"no outgoing sequence flow of '{node.id}' has a true condition",
                    phase="leave",
                )
                return
        for f in flows:
            self.enqueue_enter(f.target, scope, f.id)

    def token_ended(self, scope: int) -> None:
        if self.scope_idle(scope):
            self.complete_scope(scope)

    def scope_idle(self, scope: int) -> bool:
        if self.pending.get(scope, 0):
            return False
        prefix = f"{scope}/"
        if any(k.startswith(prefix) for k in self.s.joins):
            return False
        return not any(
            ei.parent == scope and not ei.listener for ei in self.s.eis.values()
        )

    def complete_scope(self, scope: int) -> None:
        ei = self.s.eis.get(scope)
        if ei is None:
            return
        if scope == ROOT:
            self.s.state = "completed"
            self.s.ended = self.at
            self.event("instance-completed", ei.el, ROOT)
            self.notify_parent("completed")
            return
        self.complete_with(ei, {})

    # --- gateways -----------------------------------------------------------------------------

    def enter_gateway(self, node: Gateway, scope: int, flow: str | None) -> None:
        if node.kind == "eventBasedGateway":
            self.enter_event_gateway(node, scope, flow)
            return
        if node.kind == "inclusiveGateway":
            if len(node.incoming) > 1:
                self.s.joins.setdefault(f"{scope}/{node.id}", []).append(flow or "")
                return  # fired by fire_inclusive_joins once no other token can arrive
            self.take_inclusive(node, scope, flow)
            return
        if node.kind == "parallelGateway" and len(node.incoming) > 1:
            key = f"{scope}/{node.id}"
            arrived = self.s.joins.setdefault(key, [])
            arrived.append(flow or "")
            if not all(f in arrived for f in node.incoming):
                return
            for f in node.incoming:
                arrived.remove(f)
            if not arrived:
                del self.s.joins[key]
        if node.kind == "exclusiveGateway" and (len(node.outgoing) > 1 or node.default):
            self.take_exclusive(node, scope, flow)
            return
        if node.kind == "parallelGateway":
            ekey = self.new_key()
            self.event("element-activated", node.id, ekey)
            self.event("element-completed", node.id, ekey)
            for f in node.outgoing:
                self.enqueue_enter(self.p.flows[f].target, scope, f)
            if not node.outgoing:
                self.token_ended(scope)
            return
        self.pass_through(node, scope)

    def take_exclusive(self, node: Gateway, scope: int, flow: str | None) -> None:
        ctx = context_of(self.s, scope)
        chosen = None
        try:
            for fid in node.outgoing:
                f = self.p.flows[fid]
                if fid == node.default:
                    continue
                if f.condition is None or _condition(f.condition, ctx):
                    chosen = fid
                    break
        except NatsflowError as exc:
            self.raise_incident(self.new_ei(node, scope, flow), "expression", f"condition failed: {exc}")
            return
        chosen = chosen or node.default
        if chosen is None:
            self.raise_incident(
                self.new_ei(node, scope, flow),
                "no-flow",
                f"no outgoing sequence flow of exclusive gateway '{node.id}' has a true condition"
                " and there is no default flow",
            )
            return
        key = self.new_key()
        self.event("element-activated", node.id, key)
        self.event("element-completed", node.id, key, flow=chosen)
        self.enqueue_enter(self.p.flows[chosen].target, scope, chosen)

    # --- events -------------------------------------------------------------------------------

    def enter_event(self, node: Event, scope: int, flow: str | None) -> None:
        trig = node.trigger
        if node.task is not None:  # message throw / end event implemented by a worker
            self.enter_activity(node, scope, flow)
            return
        if node.kind == "startEvent":
            self.pass_through(node, scope)  # already triggered: a plain start, or one a launch named
            return
        if node.kind == "intermediateCatchEvent":
            self.enter_catch(node, scope, flow)
            return
        if isinstance(trig, LinkTrigger):
            self.throw_link(node, scope)
            return
        if isinstance(trig, SignalTrigger) and not self.broadcast_signal(node, scope):
            return
        if isinstance(trig, MessageTrigger) and not self.send_message_flows(node, scope):
            return
        if isinstance(trig, EscalationTrigger):
            key = self.new_key()
            self.event("element-activated", node.id, key)
            if node.kind == "endEvent":  # an end event is done whatever catches the escalation
                self.event("element-completed", node.id, key)
                if not self.throw_escalation(None, scope, trig.code or ""):
                    self.token_ended(scope)
                return
            if self.throw_escalation(None, scope, trig.code or ""):
                self.event("element-terminated", node.id, key)  # its own scope was interrupted
                return
            self.event("element-completed", node.id, key)
            self.leave(node, scope)
            return
        if isinstance(trig, CompensateTrigger):
            self.throw_compensation(node, scope, flow)
            return
        if node.kind == "endEvent":
            if isinstance(trig, ErrorTrigger):
                key = self.new_key()
                self.event("element-activated", node.id, key)
                self.event("element-completed", node.id, key)
                scope_ei = self.s.eis[scope]
                self.throw_error(scope_ei, trig.code or "", "", {}, from_end=node)
                return
            if isinstance(trig, TerminateTrigger):
                key = self.new_key()
                self.event("element-activated", node.id, key)
                self.event("element-completed", node.id, key)
                self.terminate_children(scope)
                self.s.joins = {k: v for k, v in self.s.joins.items() if not k.startswith(f"{scope}/")}
                self.complete_scope(scope)
                return
            key = self.new_key()
            self.event("element-activated", node.id, key)
            self.event("element-completed", node.id, key)
            self.token_ended(scope)
            return
        # none start, none intermediate throw
        self.pass_through(node, scope)

    # --- activities ---------------------------------------------------------------------------

    def enter_activity(self, node: Activity | Event, scope: int, flow: str | None) -> None:
        if isinstance(node, Activity) and (node.multi_instance is not None or node.loop is not None):
            self.enter_loop_body(node, scope, flow)
            return
        ei = self.new_ei(node, scope, flow)
        self.event("element-activated", node.id, ei.key)
        if not self.arm_boundaries(ei, node):
            return
        self.start_activity(ei, node)

    def start_activity(self, ei: r.ElementInstance, node: Activity | Event) -> None:
        """Input mappings, then the activity's own behaviour."""
        try:
            if node.inputs:
                local = apply_mappings(
                    node.inputs,
                    context_of(self.s, ei.parent if ei.vars is None else ei.key),
                    convert=_json_value,
                )
                ei.vars = {**(ei.vars or {}), **local}
        except NatsflowError as exc:
            self.raise_incident(ei, "expression", f"input mapping failed: {exc}")
            return
        self.activate(ei, node)

    def activate(self, ei: r.ElementInstance, node: Activity | Event) -> None:
        kind = node.kind
        if node.task is not None:
            self.create_job(ei, node)
        elif isinstance(node, ScriptTask) and node.script is not None:
            try:
                value = _json_value(node.script.evaluate(context_of(self.s, ei.key)))
            except NatsflowError as exc:
                self.raise_incident(ei, "expression", f"script failed: {exc}")
                return
            self.complete_with(ei, {node.result_variable: value} if node.result_variable else {})
        elif kind == "userTask":
            self.create_user_task(ei, node)
        elif kind == "receiveTask":
            self.arm(ei, getattr(node, "message", None), ei.key)
        elif isinstance(node, CallActivity):
            self.call(ei, node)
        elif isinstance(node, SubProcess):
            if not node.start_events:
                self.raise_incident(ei, "no-flow", f"sub-process '{node.id}' has no none start event")
                return
            if ei.vars is None:
                ei.vars = {}
            self.arm_event_subprocesses(ei, node.event_subprocesses)
            self.enqueue_enter(node.start_events[0], ei.key, None)
        elif kind in _PASS_THROUGH or kind in ("intermediateThrowEvent", "endEvent"):
            self.complete_with(ei, {})
        else:  # pragma: no cover - refused at deploy by the support check
            self.raise_incident(ei, "engine", f"element kind '{kind}' is not supported")

    def create_job(self, ei: r.ElementInstance, node: FlowNode) -> None:
        task = getattr(node, "task", None)
        assert task is not None
        ctx = context_of(self.s, ei.key)
        try:
            job_type = task.type.evaluate(ctx)
            if not isinstance(job_type, str) or not job_type:
                raise NatsflowError(
                    f"job type expression '{task.type.source}' gave {job_type!r}, not a string"
                )
            retries = ei.retries if ei.retries is not None else int(task.retries.evaluate(ctx))
        except (NatsflowError, ValueError, TypeError) as exc:
            self.raise_incident(ei, "expression", f"task definition failed: {exc}", phase="job")
            return
        ei.retries = retries
        job = r.Job(
            key=f"{self.s.id}.{ei.key}.{ei.attempt}",
            tenant=self.s.tenant,
            instance=self.s.id,
            process_id=self.s.process_id,
            version=self.s.version,
            element_id=node.id,
            ei=ei.key,
            type=job_type,
            retries=retries,
            headers=dict(getattr(node, "headers", {}) or {}),
            variables=dict(ctx),
            created=self.at,
        )
        ei.wait = r.JobWait(key=job.key)
        self.effects.append(job)
        self.event("job-created", node.id, ei.key, job=job.key, type=job_type)

    def create_user_task(self, ei: r.ElementInstance, node: Activity | Event) -> None:
        spec = getattr(node, "user_task", None)
        ctx = context_of(self.s, ei.key)
        task_id = f"{self.s.id}.{ei.key}"

        def ev(expr: Any) -> Any:
            return None if expr is None else _json_value(expr.evaluate(ctx))

        try:
            assignee = ev(spec.assignee) if spec else None
            groups = ev(spec.candidate_groups) if spec else None
            users = ev(spec.candidate_users) if spec else None
            due = ev(spec.due_date) if spec else None
            follow = ev(spec.follow_up_date) if spec else None
        except NatsflowError as exc:
            self.raise_incident(ei, "expression", f"user task assignment failed: {exc}")
            return
        task = r.UserTask(
            id=task_id,
            tenant=self.s.tenant,
            instance=self.s.id,
            process_id=self.s.process_id,
            element_id=node.id,
            ei=ei.key,
            name=node.name,
            assignee=None if assignee is None else str(assignee),
            candidate_groups=_str_list(groups),
            candidate_users=_str_list(users),
            due_date=None if due is None else str(due),
            follow_up_date=None if follow is None else str(follow),
            form_key=spec.form_key if spec else None,
            variables=dict(ctx),
            created=self.at,
        )
        ei.wait = r.UserTaskWait(task=task_id)
        self.effects.append(task)
        self.event("user-task-created", node.id, ei.key, task=task_id, assignee=task.assignee)

    def complete_with(self, ei: r.ElementInstance, variables: Mapping[str, Any]) -> None:
        """Complete an element instance: merge result variables, apply output mappings, leave."""
        node = self.p.nodes[ei.el] if ei.key != ROOT else None
        if node is None:
            return
        outputs = getattr(node, "outputs", ())
        try:
            if outputs:
                if variables:
                    ei.vars = {**(ei.vars or {}), **variables}
                result = apply_mappings(outputs, context_of(self.s, ei.key), convert=_json_value)
                propagate(self.s, ei.parent, result)
            elif variables:
                propagate(self.s, ei.key, variables)
        except NatsflowError as exc:
            self.raise_incident(ei, "expression", f"output mapping failed: {exc}", phase="complete")
            return
        self.close_listeners(ei.key)
        self.terminate_children(ei.key)  # leftovers of a scope (none in a clean finish)
        del self.s.eis[ei.key]
        self.event("element-completed", node.id, ei.key)
        self.record_compensable(node, ei)
        if isinstance(ei.role, r.Iteration):
            self.iteration_completed(ei, ei.role)
            return
        if isinstance(ei.role, r.CompensationHandler):
            self.compensation_done(ei.role)
            return
        self.leave(node, ei.parent, ei.parent)

    # --- errors, termination, incidents -------------------------------------------------------

    def throw_error(
        self,
        source: r.ElementInstance,
        code: str,
        message: str,
        variables: Mapping[str, Any],
        *,
        from_end: FlowNode | None = None,
    ) -> None:
        """Find the innermost catcher of ``code`` (boundary or error event sub-process, from the
        source outwards); a called instance passes an uncaught error to its call activity;
        otherwise the error becomes an incident."""
        self.event("error-thrown", source.el, source.key, code=code, message=message or None)
        current: r.ElementInstance | None = source
        while current is not None:
            if self.catch_error(current, code, dict(variables)):
                return
            if current.key == ROOT:
                break
            current = self.s.eis.get(current.parent)
        if self.s.parent is not None:
            self.terminate_children(ROOT)
            self.s.state = "cancelled"
            self.s.ended = self.at
            self.event("instance-cancelled", self.p.id, ROOT, reason=f"error {code} passed to the caller")
            self.notify_parent("error", code=code, message=message)
            return
        msg = f"unhandled BPMN error '{code}'" + (f": {message}" if message else "")
        if source.key == ROOT:
            assert from_end is not None  # an error end event directly in the process
            self.raise_incident(self.new_ei(from_end, ROOT, None), "unhandled-error", msg, phase="done")
            return
        self.raise_incident(source, "unhandled-error", msg, phase="done")

    def find_error_boundary(self, node: FlowNode, code: str) -> Event | None:
        catch_all = None
        for bid in getattr(node, "boundaries", ()):
            b = self.p.nodes[bid]
            if isinstance(b, Event) and isinstance(b.trigger, ErrorTrigger):
                if b.trigger.code is None:
                    catch_all = catch_all or b
                elif b.trigger.code == code:
                    return b
        return catch_all

    def fire_boundary(self, boundary: Event, scope: int, variables: dict[str, Any]) -> None:
        self.pending[scope] -= 1
        if scope not in self.s.eis or self.s.state != "active":
            return
        self.fire_catch(boundary, scope, variables)

    def terminate(self, ei: r.ElementInstance) -> None:
        self.close_listeners(ei.key)
        self.release(ei)
        if isinstance(ei.wait, r.ChildCall):
            child = ei.wait.child
            self.effects.append(
                r.Cancel(
                    id=f"{self.s.id}.{ei.key}.cancel",
                    tenant=self.s.tenant,
                    instance=child,
                    reason=f"the calling instance {self.s.id} ended '{ei.el}'",
                )
            )
        self.terminate_children(ei.key)
        self.s.joins = {k: v for k, v in self.s.joins.items() if not k.startswith(f"{ei.key}/")}
        if ei.user_task is not None:
            self.effects.append(r.UserTaskDone(id=ei.user_task, tenant=self.s.tenant))
        if ei.incident:
            self.s.incidents = [i for i in self.s.incidents if i.ei != ei.key]
        self.s.eis.pop(ei.key, None)
        self.event("element-terminated", ei.el, ei.key)

    def terminate_children(self, scope: int) -> None:
        for child in [e for e in self.s.eis.values() if e.parent == scope]:
            self.terminate(child)

    def raise_incident(
        self, ei: r.ElementInstance, kind: str, message: str, *, phase: r.Phase | None = None
    ) -> None:
        incident = r.Incident(
            id=f"{self.s.id}.{ei.key}.{self.s.step}",
            ei=ei.key,
            element_id=ei.el,
            kind=kind,
            message=message,
            at=self.at,
        )
        ei.incident = incident.id
        if phase is not None:
            ei.phase = phase
        self.s.incidents.append(incident)
        self.event("incident-raised", ei.el, ei.key, incident=incident.id, kind=kind, message=message)

    def waiting(self, key: int, *, job: str) -> r.ElementInstance | None:
        ei = self.s.eis.get(key)
        if ei is None or ei.job != job:
            log.info("instance %s: job %s is not active (element instance %s); ignored", self.s.id, job, key)
            return None
        return ei

    def notify_parent(self, outcome: str, *, code: str | None = None, message: str = "") -> None:
        parent = self.s.parent
        if parent is None:
            return
        self.effects.append(
            r.ChildFinished(
                id=f"{self.s.id}.done",
                tenant=parent.tenant,
                instance=parent.instance,
                ei=parent.ei,
                child=self.s.id,
                state=outcome,
                variables=dict(self.s.root_vars()) if outcome == "completed" else {},
                error_code=code,
                error_message=message,
            )
        )

    # --- call activities ----------------------------------------------------------------------

    def call(self, ei: r.ElementInstance, node: CallActivity) -> None:
        ctx = context_of(self.s, ei.key)
        try:
            process_id = node.called_element.evaluate(ctx)
            if not isinstance(process_id, str) or not process_id:
                raise NatsflowError(f"called element expression gave {process_id!r}, not a process id")
        except NatsflowError as exc:
            self.raise_incident(ei, "expression", f"call activity failed: {exc}")
            return
        if node.propagate_all_parent_variables:
            variables = dict(ctx)
        else:
            variables = dict(ei.vars or {})
        child = "c" + hashlib.sha256(f"{self.s.id}/{ei.key}/{ei.attempt}".encode()).hexdigest()[:31]
        ei.wait = r.ChildCall(child=child)
        self.effects.append(
            r.Launch(
                id=f"launch.{child}",
                tenant=self.s.tenant,
                instance=child,
                process_id=process_id,
                variables=variables,
                parent=r.ParentRef(tenant=self.s.tenant, instance=self.s.id, ei=ei.key, element_id=node.id),
            )
        )
        self.event("child-launched", node.id, ei.key, child=child, process=process_id)

    def on_ChildFinished(self, cmd: r.ChildFinished) -> None:
        ei = self.s.eis.get(cmd.ei)
        if ei is None or not isinstance(ei.wait, r.ChildCall) or ei.wait.child != cmd.child:
            return
        node = self.p.nodes[ei.el]
        ei.wait = None
        if cmd.state == "completed":
            keep_all = getattr(node, "propagate_all_child_variables", True)
            self.complete_with(ei, cmd.variables if keep_all or getattr(node, "outputs", ()) else {})
        elif cmd.state == "error":
            self.throw_error(ei, cmd.error_code or "", cmd.error_message, {})
        else:
            self.raise_incident(
                ei, "child-cancelled", f"the called instance {cmd.child} was cancelled", phase="enter"
            )


def _condition(expr: Any, context: Mapping[str, Any]) -> bool:
    """Conditions must be boolean (Zeebe): anything else is an incident, not a silent false."""
    value = expr.evaluate(context)
    if isinstance(value, bool):
        return value
    raise NatsflowError(f"condition '{expr.source}' must be true or false, but was {value!r}")


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]
