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
until the incident is resolved. What the engine cannot even hand to a step (a definition it
cannot load, a record it cannot read or write) becomes an incident and history here too:
:func:`engine_incident`, :func:`unreadable_record`.

This module builds the step context, wires its parts (:mod:`~natsflow_engine.runtime.context`)
and applies the command; the parts do the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from natsflow_engine.bpmn.model import Process
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import varlog
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.activities import Activities
from natsflow_engine.runtime.adhoc import AdHocs
from natsflow_engine.runtime.compensation import Compensation
from natsflow_engine.runtime.conditions import Conditions
from natsflow_engine.runtime.context import (
    DEFAULT_STEP_LIMITS,
    MAX_ACTIVATIONS,
    StepContext,
    StepLimits,
    listener_trigger,
)
from natsflow_engine.runtime.events import Events
from natsflow_engine.runtime.expressions import Expressions
from natsflow_engine.runtime.joins import Joins
from natsflow_engine.runtime.loops import Loops
from natsflow_engine.runtime.multiple import Multiples
from natsflow_engine.runtime.scopes import ROOT, propagate
from natsflow_engine.runtime.starts import next_timer_start
from natsflow_engine.runtime.tokens import Tokens

__all__ = ["APPLIED_MEMORY", "MAX_ACTIVATIONS", "MESSAGE_MEMORY", "StepLimits", "StepResult", "engine_incident",
           "failed_launch", "step", "unreadable_record"]

log = logging.getLogger(__name__)

APPLIED_MEMORY = 32
"""How many recent command ids an instance remembers to recognise a redelivery."""

MESSAGE_MEMORY = 64
"""How many correlated message ids an instance remembers (a message correlates once per instance)."""

RUNAWAY_HISTORY = 100
"""History events kept from each end of a step stopped as an endless loop (the rest are
counted in one ``events-omitted`` event, so the record stays far below its size limit)."""


@dataclass
class StepResult:
    state: r.InstanceState
    effects: list[r.Effect] = field(default_factory=list)
    history: r.HistoryRecord | None = None
    changed: bool = True


def step(
    process: Process | None,
    state: r.InstanceState | None,
    command: r.AnyCommand,
    now: datetime,
    limits: StepLimits = DEFAULT_STEP_LIMITS,
) -> StepResult:
    """Apply one command. ``state`` is None only for a launch of a new instance.

    ``process`` is the compiled model of the instance's process version (None when it could
    not be loaded: the command is refused with an incident). ``limits`` bound what the step
    may do (activations, call depth).
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
            parent=command.parent,
            v=r.STATE_VERSION,
        )
    elif command.id in state.applied:
        return StepResult(state, changed=False)
    assert process is not None
    before = varlog.snapshot(state)
    state.step += 1
    c = StepContext(process, state, Expressions(now), limits)
    c.tokens = Tokens(c)
    c.activities = Activities(c)
    c.events = Events(c)
    c.loops = Loops(c)
    c.joins = Joins(c)
    c.compensation = Compensation(c)
    c.conditions = Conditions(c)
    c.multiples = Multiples(c)
    c.adhocs = AdHocs(c)
    _Commands(c).apply(command)
    events = c.history if c.runaway is None else _omit_middle(c.history, RUNAWAY_HISTORY)
    history = _history(state, command, c.at, events)
    history.variables = varlog.changes(before, state)
    return StepResult(state, c.effects, history)


def _omit_middle(events: list[r.HistoryEvent], keep: int) -> list[r.HistoryEvent]:
    if len(events) <= 2 * keep:
        return events
    omitted = r.HistoryEvent(type="events-omitted", data={"count": len(events) - 2 * keep})
    return [*events[:keep], omitted, *events[-keep:]]


def failed_launch(command: r.Launch, message: str, now: datetime, kind: str = "launch-failed") -> StepResult:
    """A launch the engine cannot apply (its record would be too large, its process cannot be
    loaded or stepped): an instance in state ``failed`` with no variables and one incident
    saying why, so that the instance id the caller got names something. A calling instance
    is told (``ChildFinished`` with state ``failed``)."""
    at = now.isoformat()
    state = r.InstanceState(
        id=command.instance,
        tenant=command.tenant,
        process_id=command.process_id,
        version=command.version or 0,
        state="failed",
        business_key=command.business_key,
        started=at,
        ended=at,
        step=1,
        parent=command.parent,
        applied=[command.id],
        v=r.STATE_VERSION,
    )
    incident = r.Incident(
        id=f"{state.id}.{ROOT}.1", ei=ROOT, element_id=command.process_id, kind=kind, message=message, at=at
    )
    state.incidents.append(incident)
    event = r.HistoryEvent(
        type="incident-raised",
        element_id=command.process_id,
        ei=ROOT,
        data={"incident": incident.id, "kind": kind, "message": message},
    )
    effects: list[r.Effect] = []
    if command.parent is not None:
        effects.append(
            r.ChildFinished(
                id=f"{state.id}.done",
                tenant=command.parent.tenant,
                instance=command.parent.instance,
                ei=command.parent.ei,
                child=state.id,
                state="failed",
                error_message=message,
            )
        )
    return StepResult(state, effects, _history(state, command, at, [event]))


def engine_incident(
    state: r.InstanceState, command: r.AnyCommand, message: str, now: datetime, kind: str = "engine"
) -> StepResult:
    """The engine could not apply ``command`` (its definition is unavailable, the interpreter
    failed, the new record would be too large): an incident on the element instance the
    command is for (else the process), and the command counts as applied."""
    state.step += 1
    at = now.isoformat()
    ei = getattr(command, "ei", None) or ROOT
    element = state.eis[ei].el if ei in state.eis else state.process_id
    incident = r.Incident(
        id=f"{state.id}.{ei}.{state.step}", ei=ei, element_id=element, kind=kind, message=message, at=at
    )
    state.incidents.append(incident)
    state.applied = [*state.applied, command.id][-APPLIED_MEMORY:]
    event = r.HistoryEvent(
        type="incident-raised",
        element_id=element,
        ei=ei,
        data={"incident": incident.id, "kind": kind, "message": message},
    )
    return StepResult(state, [], _history(state, command, at, [event]))


def unreadable_record(command: r.AnyCommand, error: str, now: datetime) -> r.HistoryRecord:
    """History for an instance whose record does not decode: the incident is only in the
    history (the record stays as it is, for an operator to inspect or repair)."""
    return r.HistoryRecord(
        tenant=command.tenant,
        instance=command.instance,
        process_id="",
        step=0,
        at=now.isoformat(),
        command=type(command).__name__,
        state="unknown",
        events=[
            r.HistoryEvent(
                type="incident-raised",
                data={
                    "kind": "corrupt-record",
                    "command": command.id,
                    "message": f"the instance record cannot be read: {error}",
                },
            )
        ],
    )


def _history(
    state: r.InstanceState, command: r.AnyCommand, at: str, events: list[r.HistoryEvent]
) -> r.HistoryRecord:
    return r.HistoryRecord(
        tenant=state.tenant,
        instance=state.id,
        process_id=state.process_id,
        step=state.step,
        at=at,
        command=type(command).__name__,
        state=state.state,
        events=events,
    )


class _Commands:
    """Applies one command to the step context."""

    def __init__(self, c: StepContext) -> None:
        self.c = c
        self.s = c.s
        self.p = c.p

    def apply(self, command: r.AnyCommand) -> None:
        if self.s.state != "active" and not isinstance(command, r.Launch):
            log.info("instance %s is %s; ignoring %s", self.s.id, self.s.state, type(command).__name__)
        else:
            self.dispatch(command)
            self.drain()
        self.s.applied.append(command.id)
        if len(self.s.applied) > APPLIED_MEMORY:
            del self.s.applied[: len(self.s.applied) - APPLIED_MEMORY]

    def dispatch(self, command: r.AnyCommand) -> None:
        c = self.c
        match command:
            case r.Launch():
                self.launch(command)
            case r.JobCompleted():
                ei = self.waiting(command.ei, command.job)
                if ei is not None:
                    c.event("job-completed", ei.el, ei.key)
                    c.activities.complete_with(ei, command.variables)
            case r.JobFailed():
                ei = self.waiting(command.ei, command.job)
                if ei is not None and command.retries > 0 and (ei.retries or 0) > 1:
                    c.activities.retry_job(ei, command)
                elif ei is not None:
                    ei.retries = command.retries
                    c.raise_incident(ei, "job-failed", command.message or "job failed", phase="job")
            case r.JobError():
                ei = self.waiting(command.ei, command.job)
                if ei is not None:
                    ei.wait = None
                    c.tokens.throw_error(ei, command.code, command.message, command.variables)
            case r.UserTaskCompleted():
                self.user_task_completed(command)
            case r.SetVariables():
                self.set_variables(command)
            case r.Cancel():
                self.cancel(command)
            case r.ResolveIncident():
                self.resolve_incident(command)
            case r.TimerFired():
                ei = self.s.eis.get(command.ei)
                if ei is not None and isinstance(ei.wait, w.RetryWait) and ei.wait.timer == command.timer:
                    c.activities.create_job(ei, self.p.nodes[ei.el], ei.wait.attempt)
                elif ei is not None and isinstance(ei.wait, w.TimerWait) and ei.wait.timer == command.timer:
                    c.event("timer-fired", ei.el, ei.key)
                    c.events.trigger(ei, {}, fired=command.due)
                # else the token has gone on: a timer that is no longer wanted never acts
            case r.MessageCorrelated():
                self.message_correlated(command)
            case r.SignalReceived():
                ei = self.s.eis.get(command.ei)
                if ei is not None and isinstance(ei.wait, w.SignalWait) and ei.wait.name == command.name:
                    c.event("signal-received", ei.el, ei.key, name=command.name)
                    c.events.trigger(ei, command.variables)
            case r.ChildFinished():
                ei = self.s.eis.get(command.ei)
                if ei is not None and isinstance(ei.wait, w.ChildCall) and ei.wait.child == command.child:
                    c.activities.child_finished(ei, command)

    def drain(self) -> None:
        c = self.c
        while True:
            while c.queue:
                c.queue.popleft()[1]()
            if c.joins.fire_ready() or c.events.deliver_late_signals():
                continue
            if self.s.state != "active" or not c.conditions.evaluate():
                return

    def waiting(self, key: int, job: str) -> r.ElementInstance | None:
        ei = self.s.eis.get(key)
        if ei is None or ei.job != job:
            log.info("instance %s: job %s is not active (element instance %s); ignored", self.s.id, job, key)
            return None
        return ei

    def launch(self, cmd: r.Launch) -> None:
        c, s = self.c, self.s
        s.version = cmd.version or s.version
        root = r.ElementInstance(key=ROOT, el=self.p.id, parent=0, vars=dict(cmd.variables))
        c.add_ei(root)
        c.event("instance-started", self.p.id, ROOT, version=s.version)
        start = cmd.start_event or (self.p.start_events[0] if self.p.start_events else None)
        if start is None:
            c.raise_incident(root, "no-flow", f"process '{self.p.id}' has no none start event to start at")
            return
        c.events.arm_event_subprocesses(root, self.p.event_subprocesses)
        following = next_timer_start(cmd, self.p, c.x.now)
        if following is not None:
            c.effects.append(following)
        c.tokens.enqueue_enter(start, ROOT, None)

    def user_task_completed(self, cmd: r.UserTaskCompleted) -> None:
        c = self.c
        key = int(cmd.task.rsplit(".", 1)[-1])
        ei = self.s.eis.get(key)
        if ei is None or ei.user_task != cmd.task:
            log.info("instance %s: user task %s is not open; ignored", self.s.id, cmd.task)
            return
        c.effects.append(r.UserTaskDone(id=cmd.task, tenant=self.s.tenant))
        c.event("user-task-completed", ei.el, ei.key)
        c.activities.complete_with(ei, cmd.variables)

    def set_variables(self, cmd: r.SetVariables) -> None:
        scope = self.s.eis.get(cmd.ei if cmd.ei is not None else ROOT)
        if scope is None:
            return
        if scope.vars is None:
            scope.vars = {}
        scope.vars.update(cmd.variables)
        self.c.event("variables-set", scope.el, scope.key, names=sorted(cmd.variables))

    def cancel(self, cmd: r.Cancel) -> None:
        c = self.c
        c.tokens.end_instance("cancelled", cmd.reason or None)
        self.s.joins.clear()
        c.tokens.notify_parent("cancelled")

    def message_correlated(self, cmd: r.MessageCorrelated) -> None:
        if cmd.message_id in self.s.messages:
            return
        wanted = w.MessageWait(name=cmd.name, key=cmd.key)
        ei = self.s.eis.get(cmd.ei)
        if ei is None or ei.wait != wanted:
            ei = next((e for e in sorted(self.s.eis.values(), key=lambda e: e.key) if e.wait == wanted), None)
        if ei is None:
            return
        self.s.messages = [*self.s.messages, cmd.message_id][-MESSAGE_MEMORY:]
        self.c.event("message-correlated", ei.el, ei.key, name=cmd.name, message=cmd.message_id)
        self.c.events.trigger(ei, cmd.variables)

    def resolve_incident(self, cmd: r.ResolveIncident) -> None:
        c, s = self.c, self.s
        incident = next((i for i in s.incidents if i.id == cmd.incident), None)
        if incident is None:
            return
        s.incidents.remove(incident)
        ei = s.eis.get(incident.ei)
        c.event("incident-resolved", incident.element_id, incident.ei, incident=incident.id)
        if ei is None:
            return
        if cmd.variables:
            propagate(s, ei.key, cmd.variables)
        phase = ei.phase or "enter"
        ei.phase = None
        ei.incident = None
        node = self.p.nodes.get(ei.el)
        if phase == "done":
            phase = "job" if getattr(node, "task", None) is not None else "enter"
        if phase == "job":
            ei.attempt += 1
            ei.retries = None
            c.activities.create_job(ei, self.p.nodes[ei.el])
        elif phase == "complete":
            c.activities.complete_with(ei, {})
        elif phase == "arm":
            c.events.arm(ei, listener_trigger(self.p.nodes[ei.el], ei), ei.parent)
        elif phase == "leave":
            c.drop_ei(ei.key)
            c.tokens.leave(self.p.nodes[ei.el], ei.parent)
        elif ei.key == ROOT:
            if self.p.start_events:
                c.tokens.enqueue_enter(self.p.start_events[0], ROOT, None)
        else:
            c.drop_ei(ei.key)
            c.tokens.enqueue_enter(ei.el, ei.parent, ei.flow)
