"""Custom resource models: the single source of the CRDs in ``crds/`` and of their reference doc.

Three namespaced kinds in ``natsflow.io/v1alpha1`` (namespace = tenant) and one cluster-scoped:

``Workflow``        a BPMN document, deployed to the workflows bucket
``TaskDefinition``  a task type: its jobs consumer, its catalog entry and its worker Deployment
``Trigger``         NATS messages on a subject that start instances of a process
``Tenant``          (cluster-scoped, named after the tenant's namespace) the tenant's NATS account

Field docstrings become the schema descriptions (``kubectl explain``). Validation that the
OpenAPI schema cannot express goes into CEL rules (``x-kubernetes-validations``) and is repeated
in pydantic validators, so ``natsflow apply`` (no API server) refuses the same manifests.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from natsflow_operator.podpolicy import pod_template_problems

__all__ = [
    "API_VERSION",
    "DURATION_PATTERN",
    "GROUP",
    "VERSION",
    "Autoscaling",
    "CamelModel",
    "NatsRef",
    "Parameter",
    "TaskDefinitionSpec",
    "TenantLimits",
    "TenantSite",
    "TenantSpec",
    "TriggerSpec",
    "WorkflowRetention",
    "WorkflowSpec",
    "describe_errors",
    "parse_duration",
    "parse_quantity",
]

GROUP = "natsflow.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
SUBJECT_PATTERN = r"^([^\s.*>]+|\*)(\.([^\s.*>]+|\*))*(\.>)?$|^>$"
LITERAL_SUBJECT = r"^[^\s.*>]+(\.[^\s.*>]+)*$"
STREAM_NAME = r"^[^\s.*>/\\]+$"
MODULE = r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.]*)?$"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
DnsName = Annotated[str, Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)]
Immutable: JsonDict = {
    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "field is immutable"}]
}


def describe_errors(exc: ValidationError) -> str:
    """A pydantic error as one line: ``field.path: problem; ...`` (condition messages, CLI)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}" for err in exc.errors()
    )


def parse_duration(text: str) -> float:
    """Seconds of a duration like ``1m30s``, ``200ms`` or ``0.5h``."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use numbers with ms, s, m or h, for example 1m30s")
    return sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(text))


class CamelModel(BaseModel):
    """Fields in snake_case, YAML in camelCase, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
    )


class NatsRef(CamelModel):
    """Reference to a Secret in the same namespace with the key ``url`` and optionally ``creds``."""

    name: DnsName
    """Name of the Secret."""


class ConfigMapKeyRef(CamelModel):
    name: DnsName
    """Name of the ConfigMap in the same namespace."""
    key: str = Field(pattern=CONFIG_KEY, max_length=253)
    """Key holding the document."""


class ConfigMapSource(CamelModel):
    config_map_key_ref: ConfigMapKeyRef
    """The ConfigMap key that holds the document."""


MAX_FORMS = 16
"""Forms of one Workflow, inline and from ConfigMaps each."""
MAX_INLINE_FORM = 65_536
"""Largest inline form, characters (a form from a ConfigMap may have the engine's 256 KiB)."""
MAX_RETENTION = "87600h"
"""Longest retention (ten years)."""


def _retention_rule(part: str) -> JsonDict:
    rule = f"duration(self) >= duration('1s') && duration(self) <= duration('{MAX_RETENTION}')"
    return {"x-kubernetes-validations": [{"rule": rule, "message": f"{part} must be between 1s and {MAX_RETENTION}"}]}


class WorkflowRetention(CamelModel):
    """How long ended instances of the Workflow's processes are kept; a part not set keeps the
    engine's configured retention (its Helm values)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.live) || !has(self.archive) || duration(self.archive) >= duration(self.live)",
                    "message": "archive must not be shorter than live",
                }
            ]
        }
    )
    live: Duration | None = Field(None, json_schema_extra=_retention_rule("live"))
    """Time an ended instance's record stays in the live bucket (at least 1s)."""
    archive: Duration | None = Field(None, json_schema_extra=_retention_rule("archive"))
    """Time its final record and history stay in the archive after it ended (``natsflow show``
    and the API find it there; at least 1s)."""

    @model_validator(mode="after")
    def _bounds(self) -> WorkflowRetention:
        limit = parse_duration(MAX_RETENTION)
        for part in ("live", "archive"):
            text = getattr(self, part)
            if text is not None and not 1.0 <= parse_duration(text) <= limit:
                raise ValueError(f"{part} must be between 1s and {MAX_RETENTION}")
        if self.live and self.archive and parse_duration(self.archive) < parse_duration(self.live):
            raise ValueError("archive must not be shorter than live")
        return self

    def seconds(self) -> tuple[float | None, float | None]:
        """(live, archive) in seconds; None where not set."""
        return (
            parse_duration(self.live) if self.live else None,
            parse_duration(self.archive) if self.archive else None,
        )


DeletionPolicy = Literal["Delete", "Retain"]


class _Common(CamelModel):
    nats_ref: NatsRef | None = None
    """NATS connection of this object; the operator's default (``--nats-url``) when absent."""
    deletion_policy: DeletionPolicy = "Delete"
    """``Delete`` removes the NATS objects with the resource; ``Retain`` leaves them in NATS."""


class WorkflowSpec(_Common):
    """A BPMN 2.0 document (Camunda 8 dialect). Every executable process in it is deployed."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.bpmn) != has(self.bpmnFrom)",
                    "message": "set exactly one of bpmn and bpmnFrom",
                }
            ]
        }
    )
    bpmn: str | None = Field(None, min_length=1, max_length=102_400)
    """The BPMN XML, inline (at most 100 KiB)."""
    bpmn_from: ConfigMapSource | None = None
    """Where to read the BPMN XML from instead of ``bpmn``."""
    forms: list[Annotated[str, Field(min_length=2, max_length=MAX_INLINE_FORM)]] = Field(
        default_factory=list, max_length=MAX_FORMS
    )
    """Camunda forms (``.form`` JSON documents, each at most 64 KiB) that the user tasks link
    by ``formId``; deployed with the processes."""
    forms_from: list[ConfigMapSource] = Field(default_factory=list, max_length=MAX_FORMS)
    """ConfigMap keys that hold more forms (each at most 256 KiB)."""
    retention: WorkflowRetention | None = None
    """How long ended instances of these processes are kept."""

    @model_validator(mode="after")
    def _one_source(self) -> WorkflowSpec:
        if (self.bpmn is None) == (self.bpmn_from is None):
            raise ValueError("set exactly one of bpmn and bpmnFrom")
        return self


PARAMETER_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
ParameterType = Literal["string", "number", "boolean", "object", "array", "any"]
UNIQUE_NAMES: JsonDict = {
    "x-kubernetes-validations": [
        {"rule": "self.all(p, self.exists_one(q, q.name == p.name))", "message": "names must be unique"}
    ]
}


class Parameter(CamelModel):
    """A variable a task type takes (``parameters``: an input mapping's target) or gives back
    (``results``)."""

    name: str = Field(min_length=1, max_length=128, pattern=PARAMETER_NAME)
    """Variable name."""
    type: ParameterType = "any"
    """JSON type of the value: ``string``, ``number``, ``boolean``, ``object``, ``array`` or ``any``."""
    required: bool = False
    """A service task of this type must map it (parameters only)."""
    description: str | None = Field(None, max_length=1024)


def _unique(params: list[Parameter], field: str) -> list[Parameter]:
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"{field}: names must be unique")
    return params


class Autoscaling(CamelModel):
    """Replicas of the worker Deployment follow the consumer's backlog (pending + in flight)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must not exceed maxReplicas",
                }
            ]
        }
    )
    enabled: bool = False
    """Turn the autoscaler on; the operator then owns ``spec.replicas`` of the Deployment."""
    min_replicas: int = Field(0, ge=0, le=1000)
    """Fewest replicas; 0 allows scaling to zero after ``cooldownPeriod`` without jobs."""
    max_replicas: int = Field(10, ge=1, le=1000)
    """Most replicas."""
    target_pending_per_replica: int | None = Field(None, ge=1, le=1_000_000)
    """Backlog one replica should carry; defaults to ``workerConcurrency``."""
    activation_threshold: int = Field(0, ge=0)
    """From zero replicas, scale up only when the backlog exceeds this."""
    polling_interval: Duration = "15s"
    """How often the backlog is read."""
    cooldown_period: Duration = "5m"
    """Time without backlog before scaling to zero (only with ``minReplicas: 0``)."""
    scale_down_stabilization: Duration = "5m"
    """Scale down to the highest recommendation seen within this window."""

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class EnvVar(CamelModel):
    name: str = Field(min_length=1)
    value: str | None = None
    value_from: dict[str, Any] | None = None
    """As in a Pod spec (``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``...)."""


def _immutable_without_default(schema: JsonDict) -> None:
    """``taskType`` defaults to the object's name, which the schema cannot say: no default."""
    schema.pop("default", None)
    schema.update(Immutable)


class TaskDefinitionSpec(_Common):
    """A task type: the durable jobs consumer, its catalog entry and (optionally) the workers."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.backoff) || size(self.backoff) <= self.retries",
                    "message": "backoff may list at most `retries` delays",
                }
            ]
        }
    )

    task_type: str = Field("", max_length=255, json_schema_extra=_immutable_without_default)
    """The job type of the service tasks (``zeebe:taskDefinition type``); ``metadata.name`` when
    absent. Immutable."""
    module: str | None = Field(None, pattern=MODULE)
    """Python object of the worker app, ``package.module:app``; the container runs ``worker <module>``."""
    image: str | None = Field(None, min_length=1)
    """Worker image. Without ``image`` and ``podTemplate`` no Deployment is created."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[str] | None = None
    """Container entrypoint; the image's when absent."""
    args: list[str] | None = None
    """Container arguments; ``["worker", module]`` when absent."""
    env: list[EnvVar] = Field(default_factory=list)
    """Extra environment variables of the worker container."""
    resources: dict[str, Any] | None = None
    """Container resources (requests, limits), as in a Pod spec."""
    service_account_name: DnsName | None = None
    """ServiceAccount of the worker pods; it must carry the label ``natsflow.io/worker: "true"``
    (set by whoever administers the namespace). Without it pods mount no API token."""
    pod_template: dict[str, Any] | None = None
    """A PodTemplateSpec; the worker container is the first one (or the one named ``worker``).
    Only the fields of the allow-list in docs/operator.md are accepted; the operator adds a
    securityContext that passes the Pod Security ``restricted`` level."""
    replicas: int | None = Field(None, ge=0, le=1000)
    """Replicas when autoscaling is off. Unset: the Deployment starts with one and the operator
    never changes the count (leave it unset when an HPA, KEDA or ``kubectl scale`` owns it)."""
    concurrency: int = Field(32, ge=1, le=100_000)
    """Jobs in flight across all workers (consumer ``max_ack_pending``)."""
    worker_concurrency: int = Field(16, ge=1, le=100_000)
    """Jobs one worker pod takes at once (the ``concurrency=`` of its ``@app.task``; 16 is the
    worker SDK's default). The autoscaler's default target per replica, and with ``concurrency``
    the most replicas that can have work: ``ceil(concurrency / workerConcurrency)``."""
    timeout: Duration = "5m"
    """Time a worker may hold a job before it is redelivered (consumer ``ack_wait``)."""
    retries: int = Field(3, ge=0, le=1000)
    """Attempts after the first before the job becomes an incident (``max_deliver`` - 1); the
    model's ``retries`` bound them too."""
    backoff: list[Duration] = Field(default_factory=list, max_length=50)
    """Delays between attempts after a failure, on the engine's clock; the last one repeats.
    Empty: 1 s, doubling, at most 60 s."""
    autoscaling: Autoscaling | None = None
    parameters: list[Parameter] = Field(default_factory=list, max_length=100, json_schema_extra=UNIQUE_NAMES)
    """Variables the jobs take; the modeler warns about a service task of this type whose input
    mappings leave out a required one, name an unknown one, or give a literal of another type."""
    results: list[Parameter] = Field(default_factory=list, max_length=100, json_schema_extra=UNIQUE_NAMES)
    """Variables the jobs complete with (documentation for the modeler)."""

    @model_validator(mode="before")
    @classmethod
    def _type_from_name(cls, data: Any, info: ValidationInfo) -> Any:
        name = (info.context or {}).get("name")
        if isinstance(data, dict) and name and not data.get("taskType", data.get("task_type")):
            return {**data, "taskType": name}
        return data

    @model_validator(mode="after")
    def _backoff_fits(self) -> TaskDefinitionSpec:
        if not self.task_type:
            raise ValueError("taskType is required when the object's name is not known")
        _unique(self.parameters, "parameters")
        _unique(self.results, "results")
        if len(self.backoff) > self.retries:  # JetStream requires max_deliver > len(backoff)
            raise ValueError("backoff may list at most `retries` delays")
        if self.pod_template is not None and (problems := pod_template_problems(self.pod_template)):
            raise ValueError("podTemplate: " + "; ".join(problems))
        return self


class WorkflowRef(CamelModel):
    """The process to start: a Workflow object of the namespace (``name``), and the process in
    it when it holds several (``processId``). ``processId`` alone (a deployed process id, without
    a Workflow object) is the older form, still accepted."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.name) || has(self.processId)",
                    "message": "set name (and processId if needed)",
                }
            ]
        }
    )
    name: DnsName | None = None
    """Name of a Workflow object in the same namespace."""
    process_id: str | None = Field(None, min_length=1, max_length=255)
    """Id of the process (``bpmn:process id``); required when the Workflow holds several processes."""
    version: int | None = Field(None, ge=1)
    """Pinned version; the latest deployed version when absent."""

    @model_validator(mode="after")
    def _named(self) -> WorkflowRef:
        if self.name is None and self.process_id is None:
            raise ValueError("set name (and processId if needed)")
        return self

    def pick(self, deployed: list[str]) -> tuple[str | None, str]:
        """(process id, "") from the processes the named Workflow deployed, or (None, reason)."""
        if self.process_id is not None:
            if self.process_id in deployed:
                return self.process_id, ""
            return None, "ProcessNotInWorkflow"
        if len(deployed) == 1:
            return deployed[0], ""
        return None, "AmbiguousProcess"


class IdempotencyKey(CamelModel):
    """How to derive the launch's idempotency key from a message (one of the two)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.header) != has(self.expression)",
                    "message": "set one of header and expression",
                }
            ]
        }
    )
    header: str | None = Field(None, min_length=1, max_length=256)
    """A message header, usually ``Nats-Msg-Id``."""
    expression: str | None = Field(None, min_length=1, max_length=4096)
    """A FEEL expression over ``payload``, ``headers`` and ``subject``."""

    @model_validator(mode="after")
    def _one(self) -> IdempotencyKey:
        if (self.header is None) == (self.expression is None):
            raise ValueError("set one of header and expression")
        return self


class TriggerSpec(_Common):
    """Messages on ``subject`` start instances of a process."""

    subject: str = Field(min_length=1, max_length=1024, pattern=SUBJECT_PATTERN)
    """NATS subject (wildcards allowed) whose messages start instances."""
    stream: str | None = Field(None, pattern=STREAM_NAME, max_length=255)
    """Stream that stores the subject; found by subject, or a capture stream is created, when absent."""
    workflow_ref: WorkflowRef
    variables: dict[str, str] = Field(default_factory=dict)
    """Instance variables: name -> FEEL expression over ``payload``, ``headers`` and ``subject``."""
    idempotency_key: IdempotencyKey | None = None
    suspend: bool = False
    """Stop starting instances; messages wait in the stream."""
    dead_letter_subject: str | None = Field(None, pattern=LITERAL_SUBJECT, max_length=1024)
    """Where messages that cannot start an instance are published (default ``nf.dlq.<tenant>.<trigger>``,
    kept seven days in the ``NF_DLQ`` stream)."""
    max_deliver: int = Field(5, ge=1, le=1000)
    """Attempts per message before it goes to ``deadLetterSubject``."""


QUANTITY = r"^[1-9][0-9]{0,14}(Ki|Mi|Gi|Ti)?$"
_BINARY = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
Quantity = Annotated[str, Field(pattern=QUANTITY, max_length=17)]


def parse_quantity(text: str) -> int:
    """Bytes of a positive quantity with an optional binary suffix: ``512``, ``64Ki``, ``1Gi``."""
    match = re.fullmatch(r"([1-9][0-9]{0,14})(Ki|Mi|Gi|Ti)?", text)
    if match is None:
        raise ValueError(f"invalid quantity {text!r}: a positive integer with Ki, Mi, Gi or Ti, like 256Mi")
    return int(match.group(1)) * _BINARY[match.group(2) or ""]


class TenantLimits(CamelModel):
    """What the tenant's NATS account may use; an absent limit is unlimited."""

    memory: Quantity | None = None
    """JetStream memory storage, bytes with an optional Ki/Mi/Gi/Ti suffix."""
    disk: Quantity | None = None
    """JetStream file storage (natsflow's streams and buckets are files), as ``memory``."""
    streams: int | None = Field(default=None, ge=1, le=100_000)
    """JetStream streams (every KV bucket is a stream; natsflow's layout needs about a dozen)."""
    consumers: int | None = Field(default=None, ge=1, le=1_000_000)
    """JetStream consumers (one per TaskDefinition and Trigger, plus the engine's)."""
    connections: int | None = Field(default=None, ge=1, le=1_000_000)
    """Client connections at once (engine, API and trigger replicas, workers)."""
    payload: Quantity | None = None
    """Largest message, as ``memory`` (the server's own max_payload still applies)."""


TenantDeletionPolicy = Literal["Retain", "Delete"]
SITE_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
JS_DOMAIN = r"^[A-Za-z0-9_-]{1,64}$"
SITE_SUBJECT = r"^[^\s.*>$_]([^\s.*>]*)(\.([^\s.*>]+|\*))*(\.>)?$"
"""A subject a site may publish to: its first token is a literal that starts with neither
``$`` (``$JS``, ``$KV``, ``$SYS``) nor ``_`` (inboxes)."""
MAX_SITES = 32
SITE_SUBJECT_RULE: JsonDict = {
    "x-kubernetes-validations": [
        {
            "rule": "self.all(s, s != 'nf' && !s.startsWith('nf.'))",
            "message": "subjects under nf. are natsflow's own",
        }
    ]
}


class TenantSite(CamelModel):
    """A remote site (``docs/remote-sites.md``): a leaf node server at another site connects
    to the platform's NATS servers as a user the operator mints in the tenant's account, written
    as the Secret ``natsflow-site-<name>`` (keys ``hub.creds`` and ``inbox-prefix``) in the
    tenant namespace."""

    name: str = Field(min_length=1, max_length=63, pattern=SITE_NAME)
    """Site name (a DNS label); names the Secret and the site's inbox prefix."""
    task_types: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=100
    )
    """Task types whose workers run at the site: the site may read the info of, pull from and
    acknowledge on their job consumers (created at the hub by their TaskDefinitions)."""
    publish: list[Annotated[str, Field(min_length=1, max_length=255, pattern=SITE_SUBJECT)]] = Field(
        default_factory=list, max_length=100, json_schema_extra=SITE_SUBJECT_RULE
    )
    """Subjects applications at the site publish to (a Trigger's subject, as the Trigger names
    it); the first token is a literal, and natsflow's own subjects (``nf.``, ``$...``, ``_...``)
    are refused."""
    js_domain: str = Field("hub", pattern=JS_DOMAIN)
    """JetStream domain of the platform's servers (``nats.server.jetstream.domain``): the
    site's JetStream requests are addressed to ``$JS.<domain>.API``."""

    @model_validator(mode="after")
    def _own_subjects(self) -> TenantSite:
        for subject in self.publish:
            if subject == "nf" or subject.startswith("nf."):
                raise ValueError(f"publish: {subject!r}: subjects under nf. are natsflow's own")
        if len(set(self.task_types)) != len(self.task_types):
            raise ValueError("taskTypes: task types must be unique")
        return self


class TenantSpec(CamelModel):
    """A tenant (its name is the tenant's namespace) and the limits of its NATS account."""

    limits: TenantLimits = Field(default_factory=lambda: TenantLimits())
    deletion_policy: TenantDeletionPolicy = "Retain"
    """On deletion the account's users are always revoked. ``Retain`` keeps the account's keys
    and JetStream data (a Tenant of the same name gets them back); ``Delete`` deletes every
    stream of the account, removes its JWT from the resolver and forgets its keys."""
    sites: list[TenantSite] = Field(
        default_factory=list, max_length=MAX_SITES, json_schema_extra=UNIQUE_NAMES
    )
    """Remote sites whose leaf node servers connect to the platform's NATS servers; removing one
    revokes its user and deletes its Secret."""

    @model_validator(mode="after")
    def _unique_sites(self) -> TenantSpec:
        names = [site.name for site in self.sites]
        if len(set(names)) != len(names):
            raise ValueError("sites: names must be unique")
        return self
