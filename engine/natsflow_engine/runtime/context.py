"""The step context: what one interpreter step works on, and the interfaces of its parts.

A step is carried out by collaborators, each an object made for the step with this context:
:class:`~natsflow_engine.runtime.tokens.Tokens` (moving tokens, gateways, ending and
terminating), :class:`~natsflow_engine.runtime.activities.Activities` (jobs, user tasks, calls,
completing), :class:`~natsflow_engine.runtime.events.Events` (catching and throwing events),
:class:`~natsflow_engine.runtime.loops.Loops`, :class:`~natsflow_engine.runtime.joins.Joins`
and :class:`~natsflow_engine.runtime.compensation.Compensation`. They reach each other only
through the context, typed by the protocols below, so no part imports another and none
imports the interpreter, which builds the context and wires the parts.

The context owns the step's record (``s``), history events (``history``), effects, the queue of tokens
still to move, and incidents; expressions and the clock are in ``x``
(:class:`~natsflow_engine.runtime.expressions.Expressions`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from natsflow_engine.bpmn.model import (
    Activity,
    ConditionalTrigger,
    Event,
    EventTrigger,
    FlowNode,
    Gateway,
    MultipleTrigger,
    Process,
    SubProcess,
)
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.expressions import Expressions

__all__ = [
    "DEFAULT_STEP_LIMITS",
    "MAX_ACTIVATIONS",
    "listener_trigger",
    "Part",
    "ActivitiesPart",
    "CompensationPart",
    "ConditionsPart",
    "AdHocsPart",
    "MultiplesPart",
    "EventsPart",
    "JoinsPart",
    "LoopsPart",
    "StepContext",
    "StepLimits",
    "TokensPart",
]

@dataclass(frozen=True)
class StepLimits:
    """What one step of one instance may do before the instance gets an incident."""

    max_activations: int = 50_000
    """Element activations in one step (a loop that makes no progress: no wait state between
    its rounds); past it, an incident "possible endless loop at <element>". Multi-instance
    iterations and the elements inside them count."""
    max_call_depth: int = 100
    """Instances in a chain of call activities (the root is depth 0); a call past it raises an
    incident on the call activity instead of launching (A calls B calls A grows no further)."""


DEFAULT_STEP_LIMITS = StepLimits()
MAX_ACTIVATIONS = DEFAULT_STEP_LIMITS.max_activations
"""The default of :attr:`StepLimits.max_activations`."""


class TokensPart(Protocol):
    def enqueue_enter(self, node_id: str, scope: int, flow: str | None) -> None: ...
    def pass_through(self, node: FlowNode, scope: int) -> None: ...
    def leave(self, node: FlowNode, scope: int, context_key: int | None = None) -> None: ...
    def token_ended(self, scope: int) -> None: ...
    def scope_idle(self, scope: int) -> bool: ...
    def complete_scope(self, scope: int) -> None: ...
    def end_instance(self, state: str, reason: str | None) -> None: ...
    def notify_parent(self, outcome: str, *, code: str | None = None, message: str = "") -> None: ...
    def terminate(self, ei: r.ElementInstance) -> None: ...
    def terminate_children(self, scope: int) -> None: ...
    def throw_error(
        self,
        source: r.ElementInstance,
        code: str,
        message: str,
        variables: Mapping[str, Any],
        *,
        from_end: FlowNode | None = None,
    ) -> None: ...


class ActivitiesPart(Protocol):
    def enter_activity(self, node: Activity | Event, scope: int, flow: str | None) -> None: ...
    def start_activity(self, ei: r.ElementInstance, node: Activity | Event) -> None: ...
    def create_job(self, ei: r.ElementInstance, node: FlowNode, attempt: int = 1) -> None: ...
    def retry_job(self, ei: r.ElementInstance, failed: r.JobFailed) -> None: ...
    def child_finished(self, ei: r.ElementInstance, cmd: r.ChildFinished) -> None: ...
    def complete_with(self, ei: r.ElementInstance, variables: Mapping[str, Any]) -> None: ...


class EventsPart(Protocol):
    def arm(self, ei: r.ElementInstance, trigger: EventTrigger | None, ctx_key: int) -> bool: ...
    def release(self, ei: r.ElementInstance) -> None: ...
    def arm_boundaries(self, owner: r.ElementInstance, node: FlowNode) -> bool: ...
    def arm_event_subprocesses(self, scope: r.ElementInstance, esp_ids: tuple[str, ...]) -> None: ...
    def trigger(self, ei: r.ElementInstance, variables: dict[str, Any], fired: str | None = None) -> None: ...
    def close_listeners(self, owner: int) -> None: ...
    def enter_event(self, node: Event, scope: int, flow: str | None) -> None: ...
    def enter_event_gateway(self, node: Gateway, scope: int, flow: str | None) -> None: ...
    def catch_error(self, current: r.ElementInstance, code: str, variables: dict[str, Any]) -> bool: ...
    def deliver_late_signals(self) -> bool: ...
    def escalation_from_child(self, call: r.ElementInstance, code: str) -> None: ...
    def fire_catch(self, node: Event, scope: int, variables: dict[str, Any]) -> None: ...
    def send_message_flows(self, node: Event | Activity, scope: int) -> bool: ...
    def broadcast_signal(self, node: Event, scope: int) -> bool: ...


class LoopsPart(Protocol):
    def enter_body(self, node: Activity, scope: int, flow: str | None) -> None: ...
    def iteration_completed(self, inner: r.ElementInstance, iteration: w.Iteration) -> None: ...


class JoinsPart(Protocol):
    def arrive_parallel(self, node: Gateway, scope: int, flow: str | None) -> bool: ...
    def arrive_inclusive(self, node: Gateway, scope: int, flow: str | None) -> None: ...
    def arrive_complex(self, node: Gateway, scope: int, flow: str | None) -> None: ...
    def arrive_quantity(self, node: Activity, scope: int, flow: str | None) -> bool: ...
    def take_inclusive(self, node: Gateway, scope: int, flow: str | None) -> None: ...
    def fire_ready(self) -> bool: ...
    def waiting_in(self, scope: int) -> bool: ...
    def clear(self, scope: int) -> None: ...


class MultiplesPart(Protocol):
    def enter_catch(self, node: Event, trigger: MultipleTrigger, scope: int, flow: str | None) -> None: ...
    def fired(self, listener: r.ElementInstance, variables: dict[str, Any]) -> None: ...
    def throw(self, node: Event, trigger: MultipleTrigger, scope: int) -> bool: ...
    def parallel_fired(self, ei: r.ElementInstance, node: Event, trigger: MultipleTrigger, keep: bool) -> bool: ...


class AdHocsPart(Protocol):
    def start(self, ei: r.ElementInstance, node: SubProcess) -> None: ...
    def token_ended(self, ei: r.ElementInstance) -> None: ...


class ConditionsPart(Protocol):
    def arm(self, ei: r.ElementInstance, trigger: ConditionalTrigger) -> bool: ...
    def evaluate(self) -> bool: ...


class CompensationPart(Protocol):
    def record(self, node: FlowNode, ei: r.ElementInstance) -> None: ...
    def throw(self, node: Event, scope: int, flow: str | None) -> None: ...
    def handler_done(self, handler: w.CompensationHandler) -> None: ...
    def cancel(self, node: Event, scope: int) -> None: ...


@dataclass(eq=False, slots=True)
class StepContext:
    p: Process
    s: r.InstanceState
    x: Expressions
    limits: StepLimits = DEFAULT_STEP_LIMITS
    history: list[r.HistoryEvent] = field(default_factory=list)
    effects: list[r.Effect] = field(default_factory=list)
    queue: deque[tuple[int, Callable[[], None]]] = field(default_factory=deque)  # (scope, move)
    pending: dict[int, int] = field(default_factory=dict)  # scope key -> tokens queued towards it
    activations: int = 0
    # signals thrown by this instance in this step -> the element instances they reached
    signals: dict[str, set[int]] = field(default_factory=dict)
    runaway: str | None = None  # the element where the step stopped an endless loop
    # element instances by parent key, built on first use and kept by add_ei / drop_ei (every
    # change to ``s.eis`` in a step goes through them), so finding a scope's children does not
    # scan the record: a scope with n children ends in O(n), not O(n * all element instances)
    kids: dict[int, dict[int, r.ElementInstance]] | None = None
    tokens: TokensPart = field(init=False)
    activities: ActivitiesPart = field(init=False)
    events: EventsPart = field(init=False)
    loops: LoopsPart = field(init=False)
    joins: JoinsPart = field(init=False)
    compensation: CompensationPart = field(init=False)
    conditions: ConditionsPart = field(init=False)
    multiples: MultiplesPart = field(init=False)
    adhocs: AdHocsPart = field(init=False)

    @property
    def at(self) -> str:
        return self.x.at

    def event(self, type_: str, node_id: str | None = None, key: int | None = None, **data: Any) -> None:
        self.history.append(r.HistoryEvent(type=type_, element_id=node_id, ei=key, data=data or None))

    def passed(self, node: FlowNode, **data: Any) -> int:
        """An element that activates and completes in the same instant (nothing is stored)."""
        key = self.new_key()
        self.event("element-activated", node.id, key)
        self.event("element-completed", node.id, key, **data)
        return key

    def activate(self, node: FlowNode) -> bool:
        """Count one element activation; False (and remember where) past the step's limit."""
        self.activations += 1
        if self.activations <= self.limits.max_activations:
            return True
        self.runaway = self.runaway or node.id
        return False

    def endless_loop(self, ei: r.ElementInstance) -> None:
        """The step passed its activation limit at ``ei``: the token stops there, with an incident."""
        if ei.incident:
            return
        self.raise_incident(
            ei, "endless-loop", f"possible endless loop at {ei.el}: more than {self.limits.max_activations} "
            "element activations in one step without a wait state"
        )

    def new_key(self) -> int:
        key = self.s.seq
        self.s.seq += 1
        return key

    def effect_id(self) -> str:
        return f"{self.s.id}.{self.s.step}.{len(self.effects)}"

    def new_ei(
        self,
        node: FlowNode,
        scope: int,
        flow: str | None,
        vars_: dict[str, Any] | None = None,
        role: w.Role | None = None,
    ) -> r.ElementInstance:
        ei = r.ElementInstance(key=self.new_key(), el=node.id, parent=scope, vars=vars_, flow=flow, role=role)
        self.add_ei(ei)
        return ei

    def add_ei(self, ei: r.ElementInstance) -> None:
        self.s.eis[ei.key] = ei
        if self.kids is not None:
            self.kids.setdefault(ei.parent, {})[ei.key] = ei

    def drop_ei(self, key: int) -> None:
        ei = self.s.eis.pop(key, None)
        if ei is not None and self.kids is not None:
            siblings = self.kids.get(ei.parent)
            if siblings is not None:
                siblings.pop(key, None)

    def children(self, scope: int) -> list[r.ElementInstance]:
        """The element instances whose parent is ``scope``, in the record's order."""
        if self.kids is None:
            self.kids = {}
            for ei in self.s.eis.values():
                self.kids.setdefault(ei.parent, {})[ei.key] = ei
        found = self.kids.get(scope)
        return list(found.values()) if found else []

    def enqueue(self, scope: int, move: Callable[[], None]) -> None:
        """Queue a token towards ``scope`` (the scope is busy until it has moved)."""
        self.pending[scope] = self.pending.get(scope, 0) + 1
        self.queue.append((scope, move))

    def drop_queued(self, scope: int) -> None:
        """Forget the tokens queued towards ``scope`` (an interrupting event took it over)."""
        kept = deque(item for item in self.queue if item[0] != scope)
        self.pending[scope] = self.pending.get(scope, 0) - (len(self.queue) - len(kept))
        self.queue = kept

    def arrived(self, scope: int) -> bool:
        """A queued token moves now: False when its scope or the instance ended meanwhile."""
        self.pending[scope] -= 1
        return scope in self.s.eis and self.s.state == "active"

    def raise_incident(
        self, ei: r.ElementInstance, kind: str, message: str, *, phase: w.Phase | None = None
    ) -> None:
        """The token waits at ``ei`` until the incident is resolved (then it resumes at ``phase``)."""
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


def listener_trigger(node: FlowNode, ei: r.ElementInstance) -> EventTrigger | None:
    """The event definition ``ei`` waits for: the one of its listener index on an event with
    several, else the node's own (its message, for a receive task)."""
    trigger = getattr(node, "trigger", None) or getattr(node, "message", None)
    if isinstance(trigger, MultipleTrigger):
        index = ei.role.i if isinstance(ei.role, w.Listener) else 0
        return trigger.triggers[index]
    return trigger


class Part:
    """A part of the step: works on the context ``c`` (``s`` its record, ``p`` its process)."""

    __slots__ = ("c", "p", "s")

    def __init__(self, c: StepContext) -> None:
        self.c = c
        self.s = c.s
        self.p = c.p
