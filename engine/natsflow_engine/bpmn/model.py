"""The compiled, immutable BPMN model the interpreter runs.

The parser (:mod:`natsflow_engine.bpmn.parser`) turns XML into these structures once, at deploy
time; expressions are compiled then too. Nothing here does I/O or changes after construction.

One :class:`Process` holds every flow node of the process, nested sub-processes included, in
``nodes`` (keyed by id); ``parent`` on a node names its enclosing scope (the process id or a
sub-process id), and each scope lists its own children.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from natsflow_engine.errors import ValidationIssue

__all__ = [
    "Activity",
    "AdHoc",
    "CallActivity",
    "CancelTrigger",
    "CompensateTrigger",
    "ComplexBehavior",
    "ConditionalTrigger",
    "Definitions",
    "ErrorTrigger",
    "EscalationTrigger",
    "Event",
    "EventTrigger",
    "Expr",
    "FlowNode",
    "Gateway",
    "IoMapping",
    "LinkTrigger",
    "MessageTrigger",
    "MultiInstance",
    "MultipleTrigger",
    "Process",
    "Scope",
    "ScriptTask",
    "SequenceFlow",
    "SignalTrigger",
    "StandardLoop",
    "SubProcess",
    "TaskDefinition",
    "TerminateTrigger",
    "TimerTrigger",
    "triggers_of",
    "UserTaskDefinition",
]


class Expr(Protocol):
    """A value known at deploy time: a compiled FEEL expression or a static literal.

    Zeebe's rule: an attribute value starting with ``=`` is a FEEL expression, anything else
    is a static string. Both are wrapped in this protocol so the interpreter never cares.
    """

    @property
    def source(self) -> str: ...

    def evaluate(self, context: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class IoMapping:
    """``zeebe:input`` / ``zeebe:output``: evaluate ``source``, store at ``target`` (a dotted path)."""

    source: Expr
    target: str


@dataclass(frozen=True, slots=True)
class SequenceFlow:
    id: str
    source: str
    target: str
    line: int
    name: str | None = None
    condition: Expr | None = None


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """``zeebe:taskDefinition``: the job type and the number of retries."""

    type: Expr
    retries: Expr


@dataclass(frozen=True, slots=True)
class UserTaskDefinition:
    """``zeebe:assignmentDefinition`` and friends on a user task."""

    assignee: Expr | None = None
    candidate_groups: Expr | None = None
    candidate_users: Expr | None = None
    due_date: Expr | None = None
    follow_up_date: Expr | None = None
    form_key: str | None = None
    # added by the parser: Camunda 8 linked forms (formId), external forms, zeebe:userTask marker
    form_id: str | None = None
    external_form_reference: Expr | None = None
    zeebe_user_task: bool = False


@dataclass(frozen=True, slots=True)
class MultiInstance:
    """``multiInstanceLoopCharacteristics`` (Zeebe extension or standard ``loopCardinality``)."""

    sequential: bool
    input_collection: Expr | None = None
    input_element: str | None = None
    output_collection: str | None = None
    output_element: Expr | None = None
    completion_condition: Expr | None = None
    cardinality: Expr | None = None
    # ``behavior`` None / One / All / Complex (BPMN 2.0, 10.3.7): the event a completing instance
    # throws (every one for None, the first for One) to the activity's own boundary events;
    # for Complex, the ``complexBehaviorDefinition``s evaluated as each instance completes
    behavior: str = "All"
    behavior_event: SignalTrigger | MessageTrigger | EscalationTrigger | ErrorTrigger | None = None
    complex_behaviors: tuple[ComplexBehavior, ...] = ()


@dataclass(frozen=True, slots=True)
class ComplexBehavior:
    """A ``complexBehaviorDefinition``: when ``condition`` holds after an instance completed,
    the remaining instances are cancelled, the activity completes and ``event`` (its implicit
    throw event, if any) is thrown to the activity's own boundary events."""

    condition: Expr
    event: SignalTrigger | MessageTrigger | EscalationTrigger | ErrorTrigger | None = None


@dataclass(frozen=True, slots=True)
class StandardLoop:
    """``standardLoopCharacteristics``."""

    condition: Expr | None = None
    test_before: bool = False
    maximum: int | None = None


# --- event triggers (the event definition of an event) -------------------------------------


@dataclass(frozen=True, slots=True)
class TimerTrigger:
    kind: Literal["duration", "date", "cycle"]
    value: Expr


@dataclass(frozen=True, slots=True)
class MessageTrigger:
    name: Expr
    correlation_key: Expr | None = None


@dataclass(frozen=True, slots=True)
class ErrorTrigger:
    """``code`` None on a catch event means catch-all; on a throw event it is required."""

    code: str | None = None
    error_ref: str | None = None


@dataclass(frozen=True, slots=True)
class SignalTrigger:
    name: Expr


@dataclass(frozen=True, slots=True)
class EscalationTrigger:
    """``code`` None on a catch event means catch-all."""

    code: str | None = None


@dataclass(frozen=True, slots=True)
class LinkTrigger:
    name: str


@dataclass(frozen=True, slots=True)
class CompensateTrigger:
    activity_ref: str | None = None
    wait_for_completion: bool = True


@dataclass(frozen=True, slots=True)
class TerminateTrigger:
    pass


@dataclass(frozen=True, slots=True)
class CancelTrigger:
    """``cancelEventDefinition``: an end event directly in a transaction cancels it; a boundary
    event on a transaction catches that."""


@dataclass(frozen=True, slots=True)
class ConditionalTrigger:
    """``conditionalEventDefinition``: fires when its condition becomes true (see the
    interpreter's conditions, :mod:`natsflow_engine.runtime.conditions`)."""

    condition: Expr


@dataclass(frozen=True, slots=True)
class MultipleTrigger:
    """Several event definitions on one event (BPMN 2.0, 10.5.1): a catch waits for any one of
    them, or for all of them when ``parallel`` (``parallelMultiple``); a throw throws them all."""

    triggers: tuple[TimerTrigger | MessageTrigger | SignalTrigger | ConditionalTrigger, ...]
    parallel: bool = False


def triggers_of(trigger: EventTrigger | None) -> tuple[EventTrigger, ...]:
    """The event definitions of an event: each of a multiple one's, else its one (none: ())."""
    if isinstance(trigger, MultipleTrigger):
        return trigger.triggers
    return () if trigger is None else (trigger,)


EventTrigger = (
    TimerTrigger
    | MessageTrigger
    | ErrorTrigger
    | SignalTrigger
    | EscalationTrigger
    | LinkTrigger
    | CompensateTrigger
    | TerminateTrigger
    | CancelTrigger
    | ConditionalTrigger
    | MultipleTrigger
)


# --- flow nodes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowNode:
    """Any node a token can be at.

    ``kind`` is the BPMN element's local name (``serviceTask``, ``exclusiveGateway``,
    ``boundaryEvent`` …); the interpreter dispatches on it.
    """

    id: str
    kind: str
    line: int
    parent: str
    name: str | None = None
    incoming: tuple[str, ...] = ()
    outgoing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway(FlowNode):
    """exclusive / parallel / inclusive / eventBased / complex gateway."""

    default: str | None = None
    # complex gateway: when a converging one fires (``activationCount`` is the number of
    # incoming flows holding a token); None joins like an inclusive gateway
    activation: Expr | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(FlowNode):
    """start / end / intermediateCatch / intermediateThrow / boundary event.

    ``trigger`` None means a none event. ``attached_to`` and ``cancel_activity`` apply to
    boundary events; ``interrupting`` to start events of event sub-processes.
    """

    trigger: EventTrigger | None = None
    attached_to: str | None = None
    cancel_activity: bool = True
    interrupting: bool = True
    outputs: tuple[IoMapping, ...] = ()
    inputs: tuple[IoMapping, ...] = ()
    # A throwing message event / end event with a task definition runs as a job (Zeebe).
    task: TaskDefinition | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # A compensation boundary event: the activity (isForCompensation) its association points to.
    compensation_handler: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity(FlowNode):
    """Tasks, sub-processes and call activities."""

    inputs: tuple[IoMapping, ...] = ()
    outputs: tuple[IoMapping, ...] = ()
    boundaries: tuple[str, ...] = ()
    multi_instance: MultiInstance | None = None
    loop: StandardLoop | None = None
    default: str | None = None
    is_for_compensation: bool = False
    # tokens it waits for before it starts, tokens it sends on each outgoing flow (BPMN 2.0)
    start_quantity: int = 1
    completion_quantity: int = 1
    # service / send / business rule / script-as-job tasks
    task: TaskDefinition | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # user task
    user_task: UserTaskDefinition | None = None
    # receive task
    message: MessageTrigger | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptTask(Activity):
    """A script task with an inline FEEL expression (``zeebe:script``)."""

    script: Expr | None = None
    result_variable: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallActivity(Activity):
    called_element: Expr
    propagate_all_child_variables: bool = True
    propagate_all_parent_variables: bool = True
    # zeebe:calledElement bindingType (latest | deployment | versionTag) and versionTag
    binding_type: str = "latest"
    version_tag: str | None = None


@dataclass(frozen=True, slots=True)
class AdHoc:
    """What makes a sub-process ad hoc (``adHocSubProcess``; see
    :mod:`natsflow_engine.runtime.adhoc`)."""

    sequential: bool = False  # ordering="Sequential"
    completion_condition: Expr | None = None
    cancel_remaining: bool = True  # cancelRemainingInstances
    active_elements: Expr | None = None  # zeebe:adHoc activeElementsCollection


@dataclass(frozen=True, slots=True, kw_only=True)
class SubProcess(Activity):
    """Embedded sub-process (``kind`` ``transaction`` for a transaction sub-process);
    ``triggered_by_event`` marks an event sub-process.

    ``start_events`` are its none start events (where a plain activation starts); for an event
    sub-process it is its one start event, which carries the trigger. ``event_subprocesses`` the
    ids of event sub-processes directly inside it.
    """

    children: tuple[str, ...] = ()
    start_events: tuple[str, ...] = ()
    event_subprocesses: tuple[str, ...] = ()
    triggered_by_event: bool = False
    ad_hoc: AdHoc | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Process:
    id: str
    line: int
    name: str | None = None
    children: tuple[str, ...] = ()
    start_events: tuple[str, ...] = ()
    event_subprocesses: tuple[str, ...] = ()
    executable: bool = True
    nodes: Mapping[str, FlowNode] = field(default_factory=dict)
    flows: Mapping[str, SequenceFlow] = field(default_factory=dict)
    # start events of the process itself, by trigger (message/timer/signal starts included)
    all_start_events: tuple[str, ...] = ()
    # message flows of a collaboration leaving this process: throwing node id -> the message
    # catches they lead to (in this or another process deployed with it)
    message_flows: Mapping[str, tuple[MessageTrigger, ...]] = field(default_factory=dict)
    version_tag: str | None = None

    def node(self, node_id: str) -> FlowNode:
        return self.nodes[node_id]

    def scope(self, scope_id: str) -> Process | SubProcess:
        """The process itself or a sub-process, by id."""
        if scope_id == self.id:
            return self
        node = self.nodes[scope_id]
        assert isinstance(node, SubProcess), scope_id
        return node


Scope = Process | SubProcess


@dataclass(frozen=True, slots=True, kw_only=True)
class Definitions:
    """One deployed BPMN document."""

    processes: Mapping[str, Process]
    source_hash: str
    # Camunda Modeler writes global <error>/<message>/<signal>/<escalation> elements; the
    # triggers above already carry the resolved names and codes.
    target_namespace: str | None = None
    # the name given to parse_bpmn (or the file name of a Path)
    name: str | None = None
    # what the specification says to ignore and natsflow ignores (logged at deploy)
    warnings: tuple[ValidationIssue, ...] = ()
