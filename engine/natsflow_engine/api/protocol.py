"""The wire format of the request-reply API: subjects, requests, replies and typed errors.

Every request is published to ``nf.api.<tenant>.<endpoint>`` (the tenant is part of the
subject so NATS account and subject permissions can scope a client to its tenant; the server
never reads a tenant from the body). Bodies are JSON objects decoded into the versioned msgspec
structs below; unknown fields are ignored, missing or mistyped fields give an ``invalid`` error.

Every reply is an envelope::

    {"v": 1, "result": {...}}                                   success
    {"v": 1, "error": {"code": "not_found", "message": "..."}}  failure

Error replies also carry the NATS micro headers ``Nats-Service-Error-Code`` and
``Nats-Service-Error``. See ``docs/api.md`` for every endpoint.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from natsflow_engine.errors import ApiError, NatsflowError, error_class, error_classes
from natsflow_engine.runtime.records import HistoryRecord

__all__ = [
    "API_PREFIX",
    "ENDPOINTS",
    "ERROR_CODES",
    "MAX_MESSAGE_TTL",
    "PROTOCOL_VERSION",
    "Accepted",
    "ActiveElement",
    "ApiErrorBody",
    "CancelRequest",
    "DeployReply",
    "DeployRequest",
    "DeployedVersion",
    "FormDeployReply",
    "FormGetReply",
    "FormGetRequest",
    "Empty",
    "HistoryReply",
    "HistoryRequest",
    "IncidentInfo",
    "IncidentListReply",
    "IncidentListRequest",
    "IncidentResolveRequest",
    "InstanceGetRequest",
    "InstanceListReply",
    "InstanceListRequest",
    "InstanceSummary",
    "InstanceView",
    "MessagePublishRequest",
    "PublishedReply",
    "Reply",
    "Request",
    "SetVariablesRequest",
    "SignalBroadcastRequest",
    "StartReply",
    "StartRequest",
    "TaskClaimRequest",
    "TaskCompleteRequest",
    "TaskListReply",
    "TaskListRequest",
    "TaskView",
    "TriggerListReply",
    "TriggerView",
    "WorkflowGetReply",
    "WorkflowGetRequest",
    "WorkflowListReply",
    "WorkflowSummary",
    "api_subject",
    "decode_error",
    "encode_error",
    "encode_exception",
    "encode_result",
]

PROTOCOL_VERSION: Final = 1
API_PREFIX: Final = "nf.api"

ERROR_CODES: Final = tuple(sorted(error_classes()))
"""Every error code, one per class of :mod:`natsflow_engine.errors` (see its tree)."""

MAX_MESSAGE_TTL: Final = 365 * 24 * 3600.0
"""Longest ``ttl`` of a published message, in seconds (a year)."""

Ttl = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_MESSAGE_TTL)]


def api_subject(tenant: str, endpoint: str) -> str:
    """``nf.api.<tenant>.<endpoint>``: where a client sends a request."""
    return f"{API_PREFIX}.{tenant}.{endpoint}"


class Request(msgspec.Struct, kw_only=True):
    """Base of every request body (``v`` is the protocol version the client speaks)."""

    v: int = PROTOCOL_VERSION


class _Out(msgspec.Struct, kw_only=True):
    """Base of every result (every field is always present in JSON)."""


# --- envelope ---------------------------------------------------------------------------------


class ApiErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class Reply(msgspec.Struct, kw_only=True):
    """The envelope of every reply; exactly one of ``result`` and ``error`` is set (an absent
    result decodes as an empty ``Raw``)."""

    v: int = PROTOCOL_VERSION
    result: msgspec.Raw = msgspec.Raw()
    error: ApiErrorBody | None = None


def encode_result(result: msgspec.Struct) -> bytes:
    return b'{"v":%d,"result":%s}' % (PROTOCOL_VERSION, msgspec.json.encode(result))


def encode_error(code: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    body = ApiErrorBody(code=code, message=message, details=details)
    return b'{"v":%d,"error":%s}' % (PROTOCOL_VERSION, msgspec.json.encode(body))


def encode_exception(exc: NatsflowError) -> bytes:
    """The error reply of ``exc``: its class's code, its message and its details."""
    return encode_error(exc.api_code, str(exc) or type(exc).__name__, exc.api_details())


def decode_error(error: ApiErrorBody) -> NatsflowError:
    """The exception an error reply stands for: the class of its code (or of the code's
    longest known prefix), else :class:`ApiError` with the code."""
    cls = error_class(error.code)
    if cls is None:
        return ApiError(error.code, error.message)
    return cls.from_api(error.message, error.details)


class Empty(Request):
    """A request without parameters (``{}`` or an empty body)."""


# --- workflows --------------------------------------------------------------------------------


class DeployRequest(Request):
    source: str
    """The BPMN 2.0 XML document."""
    name: str | None = None
    """A resource name (usually the file name), shown in validation errors and listings."""


class DeployedVersion(_Out):
    process_id: str
    version: int
    created: bool
    """False when identical content was already the latest version (nothing new deployed)."""


class DeployReply(_Out):
    deployed: list[DeployedVersion]


class FormDeployReply(_Out):
    form_id: str
    version: int
    created: bool
    """False when the same form content was already deployed."""


class FormGetRequest(Request):
    form_id: str


class FormGetReply(_Out):
    form_id: str
    version: int
    source: str
    """The form's JSON schema, as deployed."""
    name: str | None = None
    deployed_at: str = ""


class WorkflowSummary(_Out):
    process_id: str
    version: int
    name: str | None = None
    deployed_at: str = ""
    source_hash: str = ""


class WorkflowListReply(_Out):
    workflows: list[WorkflowSummary]


class WorkflowGetRequest(Request):
    process_id: str
    version: int | None = None
    """A specific version; the latest when absent."""
    include_source: bool = False


class WorkflowGetReply(_Out):
    process_id: str
    version: int
    latest_version: int
    versions: list[int]
    name: str | None = None
    deployed_at: str = ""
    source_hash: str = ""
    source: str | None = None


# --- instances --------------------------------------------------------------------------------


class StartRequest(Request):
    process_id: str
    variables: dict[str, Any] = {}
    key: str | None = None
    """Idempotency key: the same key (per tenant and process) always names the same instance."""
    business_key: str | None = None
    version: int | None = None
    """A specific process version; the latest when absent."""
    wait: bool = False
    """Reply only once the engine created the instance record (bounded by a few seconds)."""


class StartReply(_Out):
    instance: str
    process_id: str
    duplicate: bool
    """True when the idempotency key had started an instance already (nothing new started)."""
    created: bool = False
    """With ``wait``: whether the instance record was seen before the reply."""


class CancelRequest(Request):
    instance: str
    reason: str = ""


class Accepted(_Out):
    """The command was accepted by JetStream; the engine applies it asynchronously."""

    id: str
    """The instance, task or incident the command is about."""
    instance: str
    accepted: bool = True


class SetVariablesRequest(Request):
    instance: str
    variables: dict[str, Any]
    scope: int | None = None
    """The element instance (``ei``) whose local variables change; the root scope when absent."""


class InstanceGetRequest(Request):
    instance: str


class ActiveElement(_Out):
    ei: int
    element_id: str
    parent: int
    job: str | None = None
    user_task: str | None = None
    incident: str | None = None


class IncidentInfo(_Out):
    id: str
    instance: str
    process_id: str
    element_id: str
    kind: str
    message: str
    at: str
    ei: int = 0
    retries: int | None = None
    """Retries the failed job had left (job incidents); resolving creates the job again with
    the task's retries."""


class InstanceView(_Out):
    id: str
    process_id: str
    version: int
    state: str
    variables: dict[str, Any]
    active_elements: list[ActiveElement]
    incidents: list[IncidentInfo]
    business_key: str | None = None
    started: str = ""
    ended: str | None = None
    step: int = 0
    parent: str | None = None


class InstanceListRequest(Request):
    """Filters of the instance index (every one optional); pages come in the order of the
    instances' last change of state, oldest first."""

    process_id: str | None = None
    state: str | None = None
    """active, completed, cancelled or failed."""
    business_key: str | None = None
    limit: int = 50
    """At most 1,000."""
    cursor: str | None = None
    """The ``cursor`` of the previous page."""
    version: int | None = None
    incidents: bool | None = None
    """True: only active instances with open incidents; False: only those without."""
    started_after: str | None = None
    """ISO 8601 time with a zone: instances started at or after it."""
    started_before: str | None = None
    """ISO 8601 time with a zone: instances started before it."""
    variables: dict[str, str | int | float | bool | None] | None = None
    """Equality on searchable variables (those the engine's index settings name)."""


class InstanceSummary(_Out):
    id: str
    process_id: str
    version: int
    state: str
    business_key: str | None = None
    started: str = ""
    ended: str | None = None
    incidents: int = 0


class InstanceListReply(_Out):
    instances: list[InstanceSummary]
    cursor: str | None = None
    """Pass it to get the next page; absent on the last page."""


class HistoryRequest(Request):
    instance: str
    after_step: int = 0
    """Only records of later steps."""
    limit: int = 1000


class HistoryReply(_Out):
    records: list[HistoryRecord]
    more: bool = False
    """True when ``limit`` cut the list; ask again with ``after_step`` of the last record."""


# --- messages and signals ---------------------------------------------------------------------


class MessagePublishRequest(Request):
    name: str
    correlation_key: str = ""
    variables: dict[str, Any] = {}
    ttl: Ttl = 0.0
    """Seconds the message is buffered when no subscription waits for it yet (at most a year)."""
    message_id: str | None = None
    """De-duplicates repeated publications of the same message."""


class SignalBroadcastRequest(Request):
    name: str
    variables: dict[str, Any] = {}


class PublishedReply(_Out):
    accepted: bool
    detail: Any = None


class ConditionalEvaluateRequest(Request):
    """Evaluate the root-level conditional start events of the tenant's latest process versions
    (Camunda 8.9's conditional evaluation) with ``variables``; each that holds starts an instance."""

    variables: dict[str, Any] = {}
    process_id: str | None = None
    """Only this process's conditional start events (``not_found`` when it is not deployed)."""
    evaluation_id: str | None = None
    """Idempotency: the same id starts nothing twice (instance ids derive from it)."""
    max_starts: int = 100
    """At most this many instances (1 to 1000); when more start events hold, nothing starts
    and the reply is ``invalid``."""


class ConditionalStartView(_Out):
    process_id: str
    version: int
    start_event: str
    instance: str


class ConditionalErrorView(_Out):
    process_id: str
    version: int
    start_event: str
    error: str


class ConditionalEvaluateReply(_Out):
    started: list[ConditionalStartView]
    failed: list[ConditionalErrorView] = []
    """Start events whose condition could not be evaluated (or was not boolean): nothing started there."""


# --- user tasks -------------------------------------------------------------------------------


class TaskListRequest(Request):
    instance: str | None = None
    assignee: str | None = None
    limit: int = 200


class TaskView(_Out):
    id: str
    instance: str
    process_id: str
    element_id: str
    name: str | None = None
    assignee: str | None = None
    candidate_groups: list[str] = []
    candidate_users: list[str] = []
    due_date: str | None = None
    follow_up_date: str | None = None
    form_key: str | None = None
    form_id: str | None = None
    """A deployed form the task links (``form-get`` reads its schema)."""
    created: str = ""
    variables: dict[str, Any] = {}


class TaskListReply(_Out):
    tasks: list[TaskView]


class TaskCompleteRequest(Request):
    task: str
    variables: dict[str, Any] = {}


class TaskClaimRequest(Request):
    task: str
    assignee: str | None
    """The new assignee; ``None`` releases the task."""
    force: bool = False
    """Take the task over even when someone else holds it."""


# --- incidents --------------------------------------------------------------------------------


class IncidentListRequest(Request):
    instance: str | None = None
    process_id: str | None = None
    limit: int = 500


class IncidentListReply(_Out):
    incidents: list[IncidentInfo]


class IncidentResolveRequest(Request):
    incident: str
    variables: dict[str, Any] = {}


# --- triggers ---------------------------------------------------------------------------------


class TriggerView(_Out):
    name: str
    subject: str
    process_id: str
    stream: str
    consumer: str
    version: int | None = None
    suspended: bool = False
    received: int = 0
    launched: int = 0
    duplicates: int = 0
    rejected: int = 0
    redelivered: int = 0
    last_error: str | None = None
    last_error_at: str | None = None
    pending: int | None = None
    """Messages waiting on the trigger's consumer (None when the consumer is missing)."""


class TriggerListReply(_Out):
    triggers: list[TriggerView]


ENDPOINTS: Final[dict[str, type[Request]]] = {
    "deploy": DeployRequest,
    "form-deploy": DeployRequest,
    "form-get": FormGetRequest,
    "workflow-list": Empty,
    "workflow-get": WorkflowGetRequest,
    "instance-start": StartRequest,
    "instance-cancel": CancelRequest,
    "instance-get": InstanceGetRequest,
    "instance-set-variables": SetVariablesRequest,
    "instance-list": InstanceListRequest,
    "instance-history": HistoryRequest,
    "message-publish": MessagePublishRequest,
    "signal-broadcast": SignalBroadcastRequest,
    "conditional-evaluate": ConditionalEvaluateRequest,
    "task-list": TaskListRequest,
    "task-complete": TaskCompleteRequest,
    "task-claim": TaskClaimRequest,
    "incident-list": IncidentListRequest,
    "incident-resolve": IncidentResolveRequest,
    "trigger-list": Empty,
}
"""Endpoint name (last subject token) -> request type."""
