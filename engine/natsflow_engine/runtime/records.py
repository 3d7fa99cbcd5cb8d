"""Wire records: commands, jobs, history, and the instance state record.

Every record is a msgspec Struct with a version field ``v``; decoders ignore unknown fields, so
a newer writer never breaks an older reader. A change that an old reader would misread bumps
``v`` and adds a migration in :mod:`natsflow_engine.runtime.migrate` with golden files per
version under ``tests/golden/`` (the instance state record is at version 2, :data:`STATE_VERSION`;
:func:`decode_state` migrates older ones).

All records are JSON on the wire (readable with ``nats kv get`` / ``nats sub``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from natsflow_engine.runtime.migrate import RecordMigrationError, upgrade
from natsflow_engine.runtime.waits import JobWait, Listener, Phase, Role, UserTaskWait, Wait

__all__ = [
    "COMMAND_TYPES",
    "STATE_VERSION",
    "AnyCommand",
    "Effect",
    "Cancel",
    "ChildFinished",
    "Command",
    "ElementInstance",
    "HistoryEvent",
    "HistoryRecord",
    "VariableChange",
    "Incident",
    "InstanceState",
    "Job",
    "JobCompleted",
    "JobError",
    "JobFailed",
    "Launch",
    "MessagePublish",
    "MessageCorrelated",
    "Outbox",
    "ParentRef",
    "ResolveIncident",
    "SetVariables",
    "SignalReceived",
    "TimerFired",
    "TimerSpec",
    "SignalBroadcast",
    "Unsubscribe",
    "Subscribe",
    "TimerCancel",
    "UserTask",
    "UserTaskCompleted",
    "UserTaskDone",
    "command_decoder",
    "decode_state",
    "encode",
    "new_id",
]

RECORD_VERSION = 1
"""The version of commands, jobs, effects and history records."""

STATE_VERSION = 2
"""The version of the instance state record; :mod:`natsflow_engine.runtime.migrate` reads the
older ones."""


class _Record(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="t"):
    v: int = RECORD_VERSION


# --- commands: what the engine consumes --------------------------------------------------------


class Command(_Record):
    """A request to change one instance. ``id`` is unique and deterministic where it can be
    (job completions use the job key, effects of a step use ``<instance>.<step>.<n>``), so a
    republished command is recognised."""

    id: str
    tenant: str
    instance: str


class ParentRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where a child instance (call activity) reports back."""

    tenant: str
    instance: str
    ei: int
    element_id: str
    depth: int = 1
    """The child's depth in its call tree (the root instance, with no parent, is depth 0)."""


class Launch(Command, tag="launch"):
    process_id: str
    version: int | None = None  # None: the latest version when the engine applies the launch
    variables: dict[str, Any] = {}
    business_key: str | None = None
    start_event: str | None = None  # a specific start event (message/timer/signal start)
    parent: ParentRef | None = None
    timer_cycle: dict[str, Any] | None = None  # a timer start's cycle: the launch schedules the next one


class JobCompleted(Command, tag="job-completed"):
    job: str
    ei: int
    variables: dict[str, Any] = {}


class JobFailed(Command, tag="job-failed"):
    """A worker failed a job. With ``retries`` left (as in Zeebe, the attempts still allowed) the
    engine creates the job again after ``backoff`` seconds on its clock; with none it raises an
    incident."""

    job: str
    ei: int
    message: str
    retries: int = 0
    backoff: float = 0.0


class JobError(Command, tag="job-error"):
    """A worker threw a BPMN error."""

    job: str
    ei: int
    code: str
    message: str = ""
    variables: dict[str, Any] = {}


class UserTaskCompleted(Command, tag="user-task-completed"):
    task: str
    variables: dict[str, Any] = {}


class Cancel(Command, tag="cancel"):
    reason: str = ""


class ResolveIncident(Command, tag="resolve-incident"):
    incident: str
    variables: dict[str, Any] = {}


class SetVariables(Command, tag="set-variables"):
    variables: dict[str, Any]
    ei: int | None = None  # None: the root scope


class TimerFired(Command, tag="timer-fired"):
    ei: int
    timer: str
    due: str


class MessageCorrelated(Command, tag="message-correlated"):
    ei: int
    name: str
    message_id: str
    key: str = ""
    variables: dict[str, Any] = {}


class SignalReceived(Command, tag="signal-received"):
    ei: int
    name: str
    variables: dict[str, Any] = {}


class ChildFinished(Command, tag="child-finished"):
    """A called instance ended: completed (with its variables), errored, or was cancelled; or
    (``escalation``, ``error_code`` the escalation code) it threw an escalation nothing in it
    caught, and goes on."""

    ei: int
    child: str
    state: str  # completed | cancelled | error | escalation
    variables: dict[str, Any] = {}
    error_code: str | None = None
    error_message: str = ""


COMMAND_TYPES = (
    Launch,
    JobCompleted,
    JobFailed,
    JobError,
    UserTaskCompleted,
    Cancel,
    ResolveIncident,
    SetVariables,
    TimerFired,
    MessageCorrelated,
    SignalReceived,
    ChildFinished,
)
AnyCommand = (
    Launch
    | JobCompleted
    | JobFailed
    | JobError
    | UserTaskCompleted
    | Cancel
    | ResolveIncident
    | SetVariables
    | TimerFired
    | MessageCorrelated
    | SignalReceived
    | ChildFinished
)

command_decoder: msgspec.json.Decoder[AnyCommand] = msgspec.json.Decoder(AnyCommand)


# --- jobs: what workers consume -----------------------------------------------------------------


class Job(_Record, tag="job"):
    key: str  # <instance>.<ei>.<attempt>: unique per attempt, the JetStream message id
    tenant: str
    instance: str
    process_id: str
    version: int
    element_id: str
    ei: int
    type: str
    retries: int
    headers: dict[str, str] = {}
    variables: dict[str, Any] = {}
    created: str = ""
    attempt: int = 1  # 1 for the first attempt, counting the retries after failures


# --- user tasks --------------------------------------------------------------------------------


class UserTask(_Record, tag="user-task"):
    id: str  # <instance>.<ei>
    tenant: str
    instance: str
    process_id: str
    element_id: str
    ei: int
    name: str | None = None
    assignee: str | None = None
    candidate_groups: list[str] = []
    candidate_users: list[str] = []
    due_date: str | None = None
    follow_up_date: str | None = None
    form_key: str | None = None
    form_id: str | None = None  # a deployed form (``zeebe:formDefinition formId``)
    variables: dict[str, Any] = {}
    created: str = ""


class UserTaskDone(_Record, tag="user-task-done"):
    """Effect: remove the open-task index entry."""

    id: str
    tenant: str


class TimerSpec(_Record, tag="timer"):
    """Effect: fire a ``timer-fired`` command at ``due`` (RFC 3339, UTC)."""

    id: str
    tenant: str
    instance: str
    ei: int
    due: str
    launch: Launch | None = None  # a timer start event: the command to send when due


class TimerCancel(_Record, tag="timer-cancel"):
    """Effect: a timer whose token has gone; its schedule can be dropped (firing it is harmless)."""

    id: str
    tenant: str
    instance: str


class Subscribe(_Record, tag="subscribe"):
    """Effect: an element instance waits for a message (name, correlation key) or a signal."""

    kind: str  # message | signal
    tenant: str
    instance: str
    ei: int
    element_id: str
    name: str
    key: str = ""


class Unsubscribe(_Record, tag="unsubscribe"):
    kind: str
    tenant: str
    instance: str
    ei: int
    name: str
    key: str = ""


class MessagePublish(_Record, tag="message-publish"):
    """Effect: a throwing message event with a message flow to a participant deployed with it."""

    id: str
    tenant: str
    name: str
    key: str = ""
    variables: dict[str, Any] = {}
    ttl: float = 3600.0  # seconds the message waits for a receiver that is not there yet


class SignalBroadcast(_Record, tag="signal-broadcast"):
    """Effect: a signal throw/end event; every waiting catch of the tenant receives it, except
    those of ``origin``, the throwing instance (it delivered the signal to itself in its step)."""

    id: str
    tenant: str
    name: str
    variables: dict[str, Any] = {}
    origin: str | None = None


# --- history: one record per step --------------------------------------------------------------


class HistoryEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``type`` is one of: instance-started, instance-completed, instance-cancelled,
    element-activated, element-completed, element-terminated, job-created, user-task-created,
    incident-raised, incident-resolved, variables-set, error-thrown, message-subscribed,
    timer-scheduled, job-failed (with retries left)."""

    type: str
    element_id: str | None = None
    ei: int | None = None
    data: dict[str, Any] | None = None


class VariableChange(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A variable a step set, with its new value when that is small (see
    :mod:`natsflow_engine.runtime.varlog`): ``size`` (bytes of JSON) instead of ``value`` when
    it is not; ``ei`` is the scope (1: the process)."""

    ei: int
    name: str
    value: Any = None
    size: int | None = None


class HistoryRecord(_Record, tag="history"):
    """One step. ``variables`` (absent in records written before it existed) lists the
    variables the step set, with bounded values, so that a replay can show them as they were."""

    tenant: str
    instance: str
    process_id: str
    step: int
    at: str
    command: str
    state: str
    events: list[HistoryEvent] = []
    variables: list[VariableChange] = []


# --- the instance state record ----------------------------------------------------------------


class ElementInstance(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An element instance that waits or is a scope.

    ``key`` is unique within the instance; the root process scope has key 1 and parent 0.
    ``vars`` holds local variables (scopes and activities with input mappings); ``wait`` what
    the element waits for; ``role`` what it is beyond an element waiting for itself; ``flow``
    the sequence flow its token came by (entering it again after an incident takes it again);
    ``compensable`` (scopes) the completed activities with a compensation handler, in order.
    """

    key: int
    el: str
    parent: int
    vars: dict[str, Any] | None = None
    wait: Wait | None = None
    role: Role | None = None
    flow: str | None = None
    attempt: int = 0
    retries: int | None = None
    incident: str | None = None
    phase: Phase | None = None
    compensable: list[str] = []

    @property
    def job(self) -> str | None:
        """The key of the job this element waits for."""
        return self.wait.key if isinstance(self.wait, JobWait) else None

    @property
    def user_task(self) -> str | None:
        """The id of the user task this element waits for."""
        return self.wait.task if isinstance(self.wait, UserTaskWait) else None

    @property
    def listener(self) -> bool:
        return isinstance(self.role, Listener)


class Incident(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    ei: int
    element_id: str
    kind: str  # job-failed | expression | no-flow | unhandled-error | payload | engine
    message: str
    at: str


Effect = (
    Job
    | UserTask
    | UserTaskDone
    | TimerSpec
    | TimerCancel
    | Subscribe
    | Unsubscribe
    | SignalBroadcast
    | MessagePublish
    | AnyCommand
)
"""What a step asks the engine to publish (besides its history record)."""

Outbox = list[Effect | HistoryRecord]


class InstanceState(msgspec.Struct, kw_only=True, omit_defaults=True):
    v: int = 1  # a record without a version is a version 1 record; new records get STATE_VERSION
    id: str
    tenant: str
    process_id: str
    version: int
    state: str = "active"  # active | completed | cancelled | failed
    business_key: str | None = None
    started: str = ""
    ended: str | None = None
    seq: int = 2  # next element-instance key (1 is the root scope)
    step: int = 0
    eis: dict[int, ElementInstance] = {}
    joins: dict[str, list[str]] = {}
    incidents: list[Incident] = []
    applied: list[str] = []
    parent: ParentRef | None = None
    messages: list[str] = []  # ids of messages correlated lately (a message correlates once per instance)
    outbox: Outbox = []
    outbox_cmd: str | None = None
    outbox_at: str | None = None

    def root_vars(self) -> dict[str, Any]:
        root = self.eis.get(1)
        if root is None or root.vars is None:
            return {}
        return root.vars


_state_decoder = msgspec.json.Decoder(InstanceState)
_encoder = msgspec.json.Encoder()


def encode(record: msgspec.Struct) -> bytes:
    return _encoder.encode(record)


def decode_state(data: bytes) -> InstanceState:
    """Decode an instance record of any version (older ones are migrated)."""
    state = _state_decoder.decode(data)
    if state.v == STATE_VERSION:
        return state
    try:
        current = upgrade(msgspec.json.decode(data))
    except RecordMigrationError as exc:
        raise msgspec.DecodeError(str(exc)) from exc
    return _state_decoder.decode(_encoder.encode(current))


def new_id() -> str:
    """A new instance id: 64-bit nanosecond timestamp and 32 random bits, in hex (for launchers:
    the API, the test kit; the interpreter derives its ids from the command).

    Ids sort by creation time (for one clock), fit a KV key and a subject token.
    """
    return f"{time.time_ns():016x}{os.urandom(4).hex()}"
