"""Status conditions (Kubernetes ``metav1.Condition``) and the outcome of one reconciliation.

Every kind reports a summary ``Ready`` plus the conditions that apply to it:

``Validated``      the spec (BPMN, expressions, references) is acceptable
``Synced``         the catalog / definition entry in NATS KV matches the spec
``ConsumerReady``  the durable JetStream consumer exists with the declared settings
``WorkloadReady``  the worker Deployment exists (TaskDefinitions with an image)
``ScalingActive``  the autoscaler can read the backlog (informational; not part of Ready)

Beside ``Ready``, the kstatus conditions (abnormal-true, present only while true) let Flux and
other kstatus readers tell a failing object from one in progress:

``Stalled``        a human must act: the spec, the BPMN, a conflict or a permission is wrong
``Reconciling``    not ready yet, and the operator keeps retrying (NATS, a missing Secret...)

Each condition carries the ``observedGeneration`` it describes: a condition this pass did not
re-evaluate keeps the generation it was computed for.

Pure functions: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["READY_PARTS", "STALLED_REASONS", "Cond", "Outcome", "kstatus", "merge_conditions", "summary"]

READY_PARTS = ("Validated", "Synced", "ConsumerReady", "WorkloadReady")
"""Condition types whose conjunction is ``Ready``."""
STALLED_REASONS = frozenset(
    {
        "InvalidSpec",
        "InvalidBpmn",
        "InvalidForm",
        "InvalidTenant",
        "DeploymentConflict",
        "ServiceAccountNotAllowed",
        "NatsPermissionDenied",
        "Forbidden",
        "AmbiguousProcess",
        "ProcessNotInWorkflow",
    }
)
"""Reasons retrying cannot fix: someone has to change the spec or the cluster (kstatus
``Stalled``, Argo CD ``Degraded``). Every other failing reason is retried (``Reconciling``)."""
DERIVED = ("Ready", "Stalled", "Reconciling")


@dataclass(frozen=True)
class Cond:
    """A condition before it gets its timestamps: ``status`` is True, False or None (Unknown)."""

    type: str
    status: bool | None
    reason: str
    message: str = ""

    @property
    def text(self) -> str:
        return "Unknown" if self.status is None else str(self.status)


@dataclass
class Outcome:
    """What one apply or delete did to NATS, in terms both front doors can report."""

    kind: str
    tenant: str
    name: str
    action: str
    """``created``, ``updated``, ``unchanged``, ``deleted``, ``retained``, ``invalid`` or ``failed``."""
    conditions: list[Cond] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    """Kind-specific status fields (camelCase, as in the CRD)."""

    @property
    def ok(self) -> bool:
        return all(c.status is True for c in self.conditions)

    @property
    def message(self) -> str:
        failed = [c for c in self.conditions if c.status is not True]
        return "; ".join(f"{c.type}: {c.message or c.reason}" for c in failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.tenant,
            "name": self.name,
            "action": self.action,
            "ok": self.ok,
            "conditions": [
                {"type": c.type, "status": c.text, "reason": c.reason, "message": c.message}
                for c in self.conditions
            ],
            "status": self.status,
        }


def summary(conditions: Iterable[Cond]) -> Cond:
    """``Ready`` from the parts in :data:`READY_PARTS`: True only when every present part is."""
    parts = [c for c in conditions if c.type in READY_PARTS]
    for c in parts:
        if c.status is False:
            return Cond("Ready", False, c.reason, c.message)
    for c in parts:
        if c.status is None:
            return Cond("Ready", None, c.reason, c.message)
    return Cond("Ready", True, "Reconciled", "")


def kstatus(conditions: Iterable[Cond]) -> list[Cond]:
    """``Stalled`` or ``Reconciling`` (or neither, when ``Ready``) from the parts."""
    parts = [c for c in conditions if c.type in READY_PARTS]
    for c in parts:
        if c.status is False and c.reason in STALLED_REASONS:
            return [Cond("Stalled", True, c.reason, c.message)]
    ready = summary(parts)
    if ready.status is True:
        return []
    return [Cond("Reconciling", True, ready.reason, ready.message)]


def merge_conditions(
    existing: Sequence[Mapping[str, Any]] | None,
    updates: Iterable[Cond],
    *,
    generation: int | None,
    now: datetime,
    drop: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The new ``status.conditions``: ``updates`` replace conditions of the same type, ``drop``
    removes types that no longer apply, others stay (with the ``observedGeneration`` they had);
    ``Ready``, ``Stalled`` and ``Reconciling`` are recomputed.

    ``lastTransitionTime`` changes only when a condition's status changes.
    """
    by_type: dict[str, dict[str, Any]] = {str(c.get("type")): dict(c) for c in existing or ()}
    for gone in drop:
        by_type.pop(gone, None)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    current = {
        t: Cond(t, _parse(c.get("status")), str(c.get("reason", "")), str(c.get("message", "")))
        for t, c in by_type.items()
    }
    fresh = set(DERIVED)
    for cond in updates:
        current[cond.type] = cond
        fresh.add(cond.type)
    for derived in DERIVED:
        current.pop(derived, None)
    ordered = [summary(current.values()), *kstatus(current.values()), *current.values()]
    result = []
    for cond in ordered:
        old = by_type.get(cond.type)
        changed = old is None or old.get("status") != cond.text
        item: dict[str, Any] = {
            "type": cond.type,
            "status": cond.text,
            "reason": cond.reason,
            "message": cond.message[:32_000],
            "lastTransitionTime": stamp if changed or not old else old.get("lastTransitionTime", stamp),
        }
        if cond.type not in fresh and old is not None:
            if old.get("observedGeneration") is not None:
                item["observedGeneration"] = old["observedGeneration"]
        elif generation is not None:
            item["observedGeneration"] = generation
        result.append(item)
    return result


def _parse(status: Any) -> bool | None:
    return True if status == "True" else False if status == "False" else None
