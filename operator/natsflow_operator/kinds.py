"""The kinds: names, scope, spec and status models, printer columns. Read by the CRD generator,
the RBAC rules and the tests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from natsflow_operator.models import CamelModel, TaskDefinitionSpec, TenantSpec, TriggerSpec, WorkflowSpec
from natsflow_operator.status import (
    StatusBase,
    TaskDefinitionStatus,
    TenantStatus,
    TriggerStatus,
    WorkflowStatus,
)

__all__ = ["KINDS", "KindInfo"]


class KindInfo(BaseModel):
    kind: str
    plural: str
    singular: str
    short_names: list[str]
    spec: type[CamelModel]
    status: type[StatusBase]
    columns: list[dict[str, Any]]
    description: str
    namespaced: bool = True


def _ready_columns(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    ready = '.status.conditions[?(@.type=="Ready")]'
    return [
        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
        {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason"},
        *extra,
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo(
            kind="Workflow",
            plural="workflows",
            singular="workflow",
            short_names=["nfwf"],
            spec=WorkflowSpec,
            status=WorkflowStatus,
            description="A BPMN document deployed to natsflow.",
            columns=_ready_columns(
                {"name": "Version", "type": "integer", "jsonPath": ".status.version"},
                {"name": "Processes", "type": "string", "jsonPath": ".status.processIds"},
            ),
        ),
        KindInfo(
            kind="TaskDefinition",
            plural="taskdefinitions",
            singular="taskdefinition",
            short_names=["nftd"],
            spec=TaskDefinitionSpec,
            status=TaskDefinitionStatus,
            description="A task type: jobs consumer, catalog entry and worker Deployment.",
            columns=_ready_columns(
                {"name": "Type", "type": "string", "jsonPath": ".spec.taskType"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
                {"name": "Pending", "type": "integer", "jsonPath": ".status.pending"},
            ),
        ),
        KindInfo(
            kind="Trigger",
            plural="triggers",
            singular="trigger",
            short_names=["nftrg"],
            spec=TriggerSpec,
            status=TriggerStatus,
            description="NATS messages on a subject that start process instances.",
            columns=_ready_columns(
                {"name": "Subject", "type": "string", "jsonPath": ".spec.subject"},
                {"name": "Process", "type": "string", "jsonPath": ".spec.workflowRef.processId"},
                {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"},
            ),
        ),
        KindInfo(
            kind="Tenant",
            plural="tenants",
            singular="tenant",
            short_names=["nftenant"],
            spec=TenantSpec,
            status=TenantStatus,
            description="A tenant (named after its namespace): its NATS account, limits and credentials.",
            namespaced=False,
            columns=_ready_columns(
                {"name": "Account", "type": "string", "jsonPath": ".status.account"},
                {"name": "Deletion", "type": "string", "jsonPath": ".spec.deletionPolicy"},
            ),
        ),
    )
}
