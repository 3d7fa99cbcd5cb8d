"""Kopf handlers of ``Workflow``: validate the BPMN, deploy it, keep it deployed, remove it.

Create, resume and spec updates run one idempotent reconcile; a timer repeats it every
``drift_interval`` seconds, which redeploys a process whose entries were deleted from the
bucket and picks up changes of a ``bpmnFrom`` ConfigMap (ConfigMaps are not watched).

Deletion (and a process leaving the document) undeploys: the ``latest`` pointer goes, every
version stays for the instances in flight, and a process another Workflow object of the
namespace also holds (a rename in Git: the new object exists before the old one is pruned) is
left alone.
"""

from __future__ import annotations

from typing import Any

import kopf
from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.errors import BpmnValidationError
from pydantic import ValidationError

from natsflow_operator.conditions import Cond
from natsflow_operator.context import (
    RETRYABLE,
    MissingReference,
    OperatorContext,
    write_status,
)
from natsflow_operator.handlers import register_delete, register_reconcile
from natsflow_operator.kube import paths
from natsflow_operator.models import GROUP, VERSION, WorkflowSpec, describe_errors
from natsflow_operator.reconcile import apply_workflow, delete_workflow
from natsflow_operator.workflow_parts import process_retention

__all__ = ["register"]

RESOURCE = (GROUP, VERSION, "workflows")


async def reconcile(
    ctx: OperatorContext,
    *,
    body: kopf.Body,
    drift: bool,
    logger: kopf.Logger,
    patch: kopf.Patch,
    previous_ref: str | None = None,
) -> None:
    """Validate and deploy; write conditions; raise ``TemporaryError`` when NATS is unavailable."""
    status, namespace, name = body.status, str(body.metadata.namespace), str(body.metadata.name)
    generation = body.metadata.get("generation")
    now = ctx.now()

    def report(*conds: Cond, **fields: Any) -> bool:
        return write_status(patch, status, conds, generation=generation, now=now, fields=fields)

    try:
        spec = WorkflowSpec.model_validate(dict(body.spec))
    except ValidationError as exc:
        report(Cond("Validated", False, "InvalidSpec", describe_errors(exc)))
        return
    try:
        source = await ctx.bpmn_source(namespace, spec)
        forms = await ctx.form_sources(namespace, spec)
        handle, _ = await ctx.nats_for(namespace, spec.nats_ref)
        outcome = await apply_workflow(
            handle,
            namespace,
            name,
            source,
            previous=list(status.get("processIds") or []),
            prune=spec.deletion_policy == "Delete",
            claims=lambda: claimed_elsewhere(ctx, namespace, name),
            forms=forms,
            retention=process_retention(spec.retention),
        )
    except MissingReference as exc:
        kind = "Validated" if exc.reason.startswith("ConfigMap") else "Synced"
        report(Cond(kind, False, exc.reason, str(exc)))
        raise kopf.TemporaryError(str(exc), delay=ctx.config.retry_delay) from exc
    except RETRYABLE as exc:
        reason, message = ctx.failure(exc, namespace, spec.nats_ref)
        report(Cond("Synced", False, reason, message))
        raise kopf.TemporaryError(f"{reason}: {message}", delay=ctx.config.retry_delay) from exc
    logger.debug("reconciled (%s): %s", "drift check" if drift else "change", outcome.action)
    changed = report(*outcome.conditions, **outcome.status)
    if outcome.action == "invalid" and changed:
        logger.warning("Workflow not deployed: %s", outcome.message)
        reason = next((c.reason for c in outcome.conditions if c.status is not True), "InvalidBpmn")
        kopf.warn(body, reason=reason, message=outcome.message[:1000])
    elif outcome.action not in ("unchanged", "invalid"):
        message = ", ".join(f"{p['processId']} v{p['version']}" for p in outcome.status["processes"])
        if drift:
            kopf.warn(body, reason="DriftCorrected", message=f"redeployed {message}")
        else:
            kopf.info(body, reason="Deployed", message=message)


async def claimed_elsewhere(ctx: OperatorContext, namespace: str, name: str) -> frozenset[str] | None:
    """Process ids the namespace's other Workflow objects hold (deployed, or in their document
    when not reconciled yet); ``None`` when one of them cannot be read (keep everything)."""
    listing = await ctx.kube.get(paths.custom_list(GROUP, VERSION, "workflows", namespace)) or {}
    claimed: set[str] = set()
    for item in listing.get("items") or []:
        meta = item.get("metadata") or {}
        if meta.get("name") == name or meta.get("deletionTimestamp"):
            continue
        if ids := (item.get("status") or {}).get("processIds"):
            claimed.update(str(i) for i in ids)
            continue
        try:
            spec = WorkflowSpec.model_validate(item.get("spec") or {})
            source = await ctx.bpmn_source(namespace, spec)
            defs = parse_bpmn(source, name=str(meta.get("name")))
        except (ValidationError, BpmnValidationError):
            continue  # an invalid Workflow never deployed anything
        except MissingReference:
            return None
        claimed.update(p.id for p in defs.processes.values() if p.executable)
    return frozenset(claimed)


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Attach the Workflow handlers to ``registry``."""

    register_reconcile(registry, ctx, RESOURCE, "workflow", reconcile)

    async def remove(handle: Any, namespace: str, name: str, spec: Any, body: kopf.Body) -> None:
        keep = await claimed_elsewhere(ctx, namespace, name)
        if keep is None:
            kopf.warn(body, reason="Retained", message="another Workflow cannot be read; processes stay")
            return
        await delete_workflow(handle, namespace, name, list(body.status.get("processIds") or []), keep=keep)

    register_delete(registry, ctx, RESOURCE, "workflow", WorkflowSpec, remove, "processes")
