"""Status models of the custom resources (part of the generated CRD schemas).

The API server prunes status fields its schema does not declare, so everything the operator
writes into ``status`` is declared here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from natsflow_operator.models import CamelModel

__all__ = [
    "Condition",
    "StatusBase",
    "SiteStatus",
    "TaskDefinitionStatus",
    "TenantStatus",
    "TriggerStatus",
    "WorkflowStatus",
]


class Condition(CamelModel):
    """A Kubernetes condition (``metav1.Condition``)."""

    type: str
    """``Ready``, ``Validated``, ``Synced``, ``ConsumerReady``, ``WorkloadReady``, ``ScalingActive``,
    and the kstatus ``Stalled`` and ``Reconciling`` (present only while true)."""
    status: Literal["True", "False", "Unknown"]
    reason: str
    """CamelCase cause, for example ``InvalidBpmn``, ``NatsUnavailable``, ``ScaleUp``."""
    message: str = ""
    """Details for humans (validation errors with their BPMN line numbers)."""
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    """When ``status`` last changed."""
    observed_generation: int | None = None
    """The ``metadata.generation`` this condition describes."""


ConditionList = Annotated[
    list[Condition],
    Field(json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
]


class StatusBase(CamelModel):
    observed_generation: int | None = None
    """The ``metadata.generation`` the conditions describe."""
    conditions: ConditionList = Field(default_factory=list)


class DeployedProcessStatus(CamelModel):
    process_id: str
    version: int
    revision: int | None = None


class DeployedFormStatus(CamelModel):
    form_id: str
    version: int


class WorkflowStatus(StatusBase):
    version: int | None = None
    """Version of the (first) deployed process."""
    content_hash: str | None = None
    process_ids: list[str] = Field(default_factory=list)
    processes: list[DeployedProcessStatus] = Field(default_factory=list)
    revision: int | None = None
    """KV revision of the latest pointer of the first process."""
    forms: list[DeployedFormStatus] = Field(default_factory=list)
    """The forms deployed with the processes (``spec.forms`` and ``spec.formsFrom``)."""


class NatsStatus(StatusBase):
    nats_ref: str | None = None
    """The ``natsRef`` Secret whose NATS holds this object's consumer and entry (``(default)``:
    the operator's default connection); after ``natsRef`` changes they are removed from there."""


class TaskDefinitionStatus(NatsStatus):
    consumer: str | None = None
    subject: str | None = None
    deployment: str | None = None
    revision: int | None = None
    """KV revision of the catalog entry."""
    replicas: int | None = None
    desired_replicas: int | None = None
    pending: int | None = None
    """Backlog at the last poll: pending plus unacknowledged jobs."""
    last_active_time: str | None = Field(None, json_schema_extra={"format": "date-time"})
    last_scale_time: str | None = Field(None, json_schema_extra={"format": "date-time"})


class TriggerStatus(NatsStatus):
    stream: str | None = None
    consumer: str | None = None
    captured: bool | None = None
    """True when the operator created the capture stream for the subject."""
    revision: int | None = None


class SiteStatus(CamelModel):
    """The user of one remote site (``spec.sites``)."""

    name: str
    secret: str
    """Secret in the tenant namespace with its ``hub.creds`` and ``inbox-prefix``."""
    user: str
    """Public key of the site's NATS user (``U...``)."""
    inbox_prefix: str
    """Inbox prefix the site's clients connect with (their replies arrive only under it)."""
    credentials_expire_at: str = Field(json_schema_extra={"format": "date-time"})
    """Expiry of the site's credentials (re-issued before it)."""


class TenantStatus(StatusBase):
    account: str | None = None
    """Public key of the tenant's NATS account (``A...``)."""
    account_issued_at: str | None = Field(None, json_schema_extra={"format": "date-time"})
    """Issue time of the account JWT last pushed to the resolver."""
    credentials_expire_at: str | None = Field(None, json_schema_extra={"format": "date-time"})
    """Expiry of the platform user's credentials (re-issued before it)."""
    sites: list[SiteStatus] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """The users of the remote sites in ``spec.sites``."""
